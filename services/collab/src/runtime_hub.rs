//! The collab side of the control channel to runtime nodes.
//!
//! A runtime opens `GET /internal/runtime` with the service credential and keeps it open;
//! the collab service sends it [`Command`]s as JSON text frames and waits for the matching
//! [`Reply`]. HTTP handlers use [`RuntimeHub::call`]; with no runtime connected they get
//! [`HubError::NoRuntime`] at once instead of a request that hangs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tandem_protocol::runtime::{Command, Reply};
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
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

struct Link {
    id: u64,
    commands: mpsc::Sender<Command>,
    pending: Pending,
}

/// The connected runtime (one per collab node until scale-out assigns notebooks to nodes).
#[derive(Default)]
pub struct RuntimeHub {
    link: Mutex<Option<Link>>,
    next: AtomicU64,
}

impl RuntimeHub {
    /// Sends the command built from a fresh request number and waits for the reply.
    pub async fn call(
        &self,
        timeout: Duration,
        make: impl FnOnce(u64) -> Command,
    ) -> Result<Reply, HubError> {
        let request = self.next.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let commands = {
            let link = self.lock();
            let link = link.as_ref().ok_or(HubError::NoRuntime)?;
            lock(&link.pending).insert(request, reply);
            link.commands.clone()
        };
        commands
            .send(make(request))
            .await
            .map_err(|_| HubError::Disconnected)?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(HubError::Disconnected),
            Err(_) => Err(HubError::Timeout(timeout)),
        }
    }

    /// Whether a runtime is connected.
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
    let tracker = app.tracker.clone();
    Ok(upgrade.on_upgrade(move |socket| tracker.track_future(serve(app, socket))))
}

async fn serve(app: App, socket: WebSocket) {
    let (id, mut commands, pending) = app.runtimes.attach();
    tracing::info!(link = id, "runtime connected");
    let (mut sink, mut stream) = socket.split();
    let shutdown = app.rooms_shutdown.clone();
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { break };
                let Ok(text) = serde_json::to_string(&command) else { continue };
                if sink.send(WsMessage::Text(text.into())).await.is_err() {
                    break;
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => match serde_json::from_str::<Reply>(&text) {
                    Ok(reply) => {
                        if let Some(waiter) = lock(&pending).remove(&reply.request()) {
                            let _ = waiter.send(reply);
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "malformed reply from the runtime"),
                },
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            () = shutdown.cancelled() => break,
        }
    }
    app.runtimes.detach(id);
    let _ = sink.send(WsMessage::Close(None)).await;
    tracing::info!(link = id, "runtime disconnected");
}
