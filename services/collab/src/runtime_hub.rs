//! The collab side of the link to runtime nodes, over one of two transports.
//!
//! - The control WebSocket (default): a runtime opens `GET /internal/runtime` with the
//!   service credential and keeps it open; the collab service sends it [`Command`]s as JSON
//!   text frames and waits for the matching [`Reply`]. One runtime per collab node.
//! - Redis ([`redis`], with `--redis-url`): commands go to the runtime node holding the
//!   notebook's lease, or to the stream every runtime node reads when nobody holds it, and
//!   replies come back on this node's reply list; any collab node reaches any runtime node.
//!   Collab nodes also mark dead the kernels of runtimes that vanished ([`orphans`]), so a
//!   deployment whose runtime nodes all died shows it.
//!
//! HTTP handlers use [`RuntimeHub::call`] either way, with one request type and get its
//! answer type back (or the runtime's [`Refusal`]); with no runtime reachable they get
//! [`HubError::NoRuntime`] at once instead of a request that hangs.
//!
//! The link is two-way: runtimes send [`Ask`]s up it (a running cell's secret) and this
//! node answers each in a task of its own ([`answer`]), down the same WebSocket or, through
//! Redis, to the asking node's queue.

mod orphans;
pub mod redis;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tandem_protocol::ids::NotebookId;
use tandem_protocol::kernel::{SecretFailure, SecretText};
use tandem_protocol::runtime::{
    Answer, Ask, AskBody, AskOutcome, Command, Refusal, Reply, Request, Up,
};
use tokio::sync::{mpsc, oneshot};

use crate::App;
use crate::auth::Caller;
use crate::error::ApiError;

/// Commands buffered for a runtime before callers wait.
const COMMAND_QUEUE: usize = 256;

/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// No runtime node is connected.
    #[error("no runtime is connected")]
    NoRuntime,
    /// The runtime disconnected before answering.
    #[error("the runtime disconnected before answering")]
    Disconnected,
    /// The runtime did not answer in time.
    #[error("the runtime did not answer within {0:?}")]
    Timeout(Duration),
    /// The runtime node that had the command stopped (its heartbeat lapsed) before
    /// answering, or no live runtime node is left to take it.
    #[error("the runtime node handling this request stopped before answering; run it again")]
    RuntimeLost,
    /// Redis, which carries commands to runtime nodes, failed.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A command could not be encoded.
    #[error("encoding a command: {0}")]
    Encode(#[from] serde_json::Error),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

struct Link {
    id: u64,
    commands: mpsc::Sender<Command>,
    pending: Pending,
}

/// The way to the runtime nodes.
#[derive(Default)]
pub struct RuntimeHub {
    /// The control WebSocket's runtime, when commands go that way.
    link: Mutex<Option<Link>>,
    /// Set when commands go through Redis instead.
    redis: Option<redis::RedisHub>,
    next: AtomicU64,
}

impl RuntimeHub {
    /// A hub reaching runtime nodes through Redis (see [`redis`]).
    pub fn with_redis(redis: redis::RedisHub) -> Self {
        Self {
            redis: Some(redis),
            ..Self::default()
        }
    }

    /// Sends `request` about `notebook_id` to its runtime and waits for the answer: the
    /// request type's response, or the runtime's refusal.
    pub async fn call<R: Request>(
        &self,
        timeout: Duration,
        notebook_id: &NotebookId,
        request: R,
    ) -> Result<Result<R::Response, Refusal>, HubError> {
        let command = Command {
            request: self.next.fetch_add(1, Ordering::Relaxed),
            notebook_id: notebook_id.clone(),
            body: request.into(),
        };
        let result = match &self.redis {
            Some(redis) => redis.call(timeout, command).await,
            None => self.call_socket(timeout, command).await,
        }
        .map(|reply: Reply| tandem_protocol::runtime::answer::<R>(reply.outcome));
        crate::metrics::runtime_call(match &result {
            Ok(Err(_)) => "refused",
            Ok(Ok(_)) => "ok",
            Err(_) => "unavailable",
        });
        result
    }

    /// Whether runtimes are reached through Redis.
    pub fn through_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// The Redis transport, when runtimes are reached through it.
    pub fn redis(&self) -> Option<&redis::RedisHub> {
        self.redis.as_ref()
    }

    /// Whether the link the node depends on works: Redis answers a PING when runtimes are
    /// reached through it. A collab node without a runtime connected is still ready: it
    /// serves documents, and execute says that no runtime is there.
    pub async fn ready(&self) -> Result<(), HubError> {
        match &self.redis {
            Some(redis) => redis.ping().await,
            None => Ok(()),
        }
    }

    async fn call_socket(&self, timeout: Duration, command: Command) -> Result<Reply, HubError> {
        let (reply, answer) = oneshot::channel();
        let commands = {
            let link = self.lock();
            let link = link.as_ref().ok_or(HubError::NoRuntime)?;
            lock(&link.pending).insert(command.request, reply);
            link.commands.clone()
        };
        commands
            .send(command)
            .await
            .map_err(|_| HubError::Disconnected)?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(HubError::Disconnected),
            Err(_) => Err(HubError::Timeout(timeout)),
        }
    }

    /// Whether a runtime is connected over the control WebSocket.
    pub fn connected(&self) -> bool {
        self.lock().is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Link>> {
        self.link
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn attach(&self) -> (u64, mpsc::Receiver<Command>, Pending) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let pending = Pending::default();
        // A reconnecting runtime replaces its old link; calls waiting on the old one fail
        // when its pending map is dropped.
        *self.lock() = Some(Link {
            id,
            commands,
            pending: pending.clone(),
        });
        (id, rx, pending)
    }

    fn detach(&self, id: u64) {
        let mut link = self.lock();
        if link.as_ref().is_some_and(|l| l.id == id) {
            *link = None;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Answers a runtime's ask: the secret a running cell reads, for the person who ran it. The
/// value is never logged; a refusal carries the API's error code and sentence.
pub(crate) async fn answer(app: &App, ask: Ask) -> Answer {
    let outcome = match &ask.body {
        AskBody::Secret { user_id, name } => {
            match crate::api::secrets::for_cell(
                app,
                ask.notebook_id.as_str(),
                user_id.as_str(),
                name,
            )
            .await
            {
                Ok(value) => AskOutcome::Secret {
                    value: SecretText(value),
                },
                Err(error) => {
                    tracing::info!(doc_id = %ask.notebook_id, secret = %name, code = error.code, "secret refused to a runtime");
                    AskOutcome::Refused(SecretFailure::new(error.code, &error.message))
                }
            }
        }
    };
    Answer {
        ask: ask.ask,
        outcome,
    }
}

/// `GET /internal/runtime`: the control WebSocket, for the service credential only.
pub async fn route(
    State(app): State<App>,
    caller: Caller,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if !matches!(caller, Caller::Service) {
        return Err(ApiError::forbidden(
            "only runtimes may open the control channel",
        ));
    }
    if app.runtimes.through_redis() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "use_redis",
            "this collab node reaches runtimes through Redis: start the runtime with the same \
             --redis-url",
        ));
    }
    let tracker = app.tracker.clone();
    Ok(upgrade.on_upgrade(move |socket| tracker.track_future(serve(app, socket))))
}

async fn serve(app: App, socket: WebSocket) {
    let (id, mut commands, pending) = app.runtimes.attach();
    tracing::info!(link = id, "runtime connected");
    let (mut sink, mut stream) = socket.split();
    let shutdown = app.rooms_shutdown.clone();
    // Answers to the runtime's asks, each looked up in a task of its own.
    let (answers, mut answered) = mpsc::unbounded_channel::<Answer>();
    loop {
        let text = tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { break };
                serde_json::to_string(&command)
            }
            Some(answer) = answered.recv() => serde_json::to_string(&answer),
            frame = stream.next() => {
                match frame {
                    Some(Ok(WsMessage::Text(text))) => match serde_json::from_str::<Up>(&text) {
                        Ok(Up::Reply(reply)) => {
                            if let Some(waiter) = lock(&pending).remove(&reply.request) {
                                let _ = waiter.send(reply);
                            }
                        }
                        Ok(Up::Ask(ask)) => {
                            let (app, answers) = (app.clone(), answers.clone());
                            tokio::spawn(async move {
                                let _ = answers.send(answer(&app, ask).await);
                            });
                        }
                        Err(err) => tracing::warn!(error = %err, "malformed frame from the runtime"),
                    },
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
                continue;
            }
            () = shutdown.cancelled() => break,
        };
        let Ok(text) = text else { continue };
        if sink.send(WsMessage::Text(text.into())).await.is_err() {
            break;
        }
    }
    app.runtimes.detach(id);
    let _ = sink.send(WsMessage::Close(None)).await;
    tracing::info!(link = id, "runtime disconnected");
}
