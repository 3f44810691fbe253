//! Runtime commands through Redis: any collab node reaches the runtime node that owns a
//! notebook (key layout in [`tandem_protocol::redis_link`]).
//!
//! A call wraps the [`Command`] in an [`Envelope`] naming this node's reply list and a
//! deadline, then pushes it to the queue of the node holding the notebook's lease or, when no
//! live node holds it, adds it to the unassigned stream, from which exactly one runtime node
//! (a consumer group) takes it and claims the lease. A task on a connection of its own pops
//! this node's reply list and hands each [`Reply`] to the call waiting for its request number.
//!
//! Asks from runtime nodes (a running cell's secret) come the other way: every collab node
//! pops the shared asks list ([`RedisHub::serve_asks`]) and pushes each answer to the asking
//! runtime node's queue.
//!
//! Delivery is at most once (a runtime node acknowledges a stream entry before handling it,
//! so nothing runs twice). A call therefore does not retry: while it waits it checks each
//! second that the node holding its command (the owner it was queued for, or with a stream
//! entry any runtime node) still has a live heartbeat, and answers [`HubError::RuntimeLost`]
//! as soon as not, rather than waiting for its timeout in silence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tandem_protocol::redis_link::{self as keys, AskEnvelope, Envelope, Queued};
use tandem_protocol::runtime::{Command, Reply};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::HubError;

/// How long one blocking pop of the reply list waits, in seconds; between two pops the task
/// notices shutdown.
const POP_SECONDS: f64 = 1.0;

/// Entries the unassigned stream keeps at most (approximately): consumed entries are deleted,
/// so only a backlog nobody reads could grow it.
const UNASSIGNED_MAXLEN: usize = 10_000;

/// How often a waiting call checks that the runtime node that has its command is alive.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

/// Wait after a failed pop before the next, so a Redis outage does not spin.
const RETRY: Duration = Duration::from_millis(500);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

/// The Redis transport of a collab node.
pub struct RedisHub {
    client: redis::Client,
    prefix: String,
    /// This collab node's id: its reply list's name.
    node: String,
    conn: ConnectionManager,
    pending: Pending,
}

impl RedisHub {
    /// Connects to `url`, and starts the reply task on `tracker` until `stop`.
    pub async fn connect(
        url: &str,
        prefix: &str,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("parsing --redis-url")?;
        let conn = ConnectionManager::new(client.clone())
            .await
            .context("connecting to Redis for the runtime link")?;
        let replies = popping(&client)
            .await
            .context("connecting to Redis for runtime replies")?;
        let node = crate::ids::new_token()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect::<String>();
        let pending = Pending::default();
        let key = keys::replies_key(prefix, &node);
        let span = tracing::info_span!("runtime_replies", collab_node = %node);
        tracker.spawn(reply_loop(replies, key, pending.clone(), stop).instrument(span));
        tracing::info!(collab_node = %node, "runtime link through Redis");
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            node,
            conn,
            pending,
        })
    }

    /// Sends `command` to the notebook's runtime node and waits up to `timeout` for its reply.
    pub async fn call(&self, timeout: Duration, command: Command) -> Result<Reply, HubError> {
        let mut conn = self.conn.clone();
        let live: u64 = conn
            .zcount(keys::nodes_key(&self.prefix), keys::now_ms(), "+inf")
            .await?;
        if live == 0 {
            return Err(HubError::NoRuntime);
        }
        let request = command.request;
        let notebook = command.notebook_id.to_string();
        let envelope = Envelope {
            reply_to: self.node.clone(),
            deadline_ms: keys::deadline_after(timeout),
            hops: 0,
            command,
        };
        let json = serde_json::to_string(&envelope)?;
        let (reply, answer) = oneshot::channel();
        lock(&self.pending).insert(request, reply);
        let sent = self.send(&mut conn, &notebook, &json).await;
        let owner = match sent {
            Ok(owner) => owner,
            Err(err) => {
                lock(&self.pending).remove(&request);
                return Err(err.into());
            }
        };
        let result = self
            .wait(&mut conn, answer, owner.as_deref(), timeout)
            .await;
        lock(&self.pending).remove(&request);
        result
    }

    /// Waits for the reply, checking every [`LIVENESS_CHECK`] that someone can still give it:
    /// the owner the command was queued for is alive, or (sent to the stream) some runtime
    /// node is. A caller whose runtime died learns it then, not at its timeout.
    async fn wait(
        &self,
        conn: &mut ConnectionManager,
        mut answer: oneshot::Receiver<Reply>,
        owner: Option<&str>,
        timeout: Duration,
    ) -> Result<Reply, HubError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let check = tokio::time::Instant::now() + LIVENESS_CHECK;
            tokio::select! {
                reply = &mut answer => return reply.map_err(|_| HubError::Disconnected),
                () = tokio::time::sleep_until(deadline.min(check)) => {}
            }
            let alive = self.alive(conn, owner).await.unwrap_or(true);
            if !alive {
                return Err(HubError::RuntimeLost);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HubError::Timeout(timeout));
            }
        }
    }

    /// Whether `owner`'s heartbeat is live, or with no owner whether any runtime node's is.
    async fn alive(
        &self,
        conn: &mut ConnectionManager,
        owner: Option<&str>,
    ) -> redis::RedisResult<bool> {
        let key = keys::nodes_key(&self.prefix);
        let now = keys::now_ms();
        match owner {
            Some(owner) => {
                let expires: Option<f64> = conn.zscore(&key, owner).await?;
                Ok(expires.is_some_and(|at| at > now as f64))
            }
            None => Ok(conn.zcount::<_, _, _, u64>(&key, now, "+inf").await? > 0),
        }
    }

    /// Pushes an encoded envelope to the owner's queue, or to the unassigned stream; returns
    /// the owner it was queued for.
    async fn send(
        &self,
        conn: &mut ConnectionManager,
        notebook: &str,
        json: &str,
    ) -> redis::RedisResult<Option<String>> {
        let owner: Option<String> = conn.get(keys::lease_key(&self.prefix, notebook)).await?;
        match owner {
            Some(owner) => {
                let queue = keys::queue_key(&self.prefix, &owner);
                tracing::debug!(doc_id = %notebook, runtime_node = %owner, "command to the owner");
                push(conn, &queue, json).await?;
                Ok(Some(owner))
            }
            None => {
                tracing::debug!(doc_id = %notebook, "command to the unassigned stream");
                redis::cmd("XADD")
                    .arg(keys::unassigned_key(&self.prefix))
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(UNASSIGNED_MAXLEN)
                    .arg("*")
                    .arg(keys::FIELD)
                    .arg(json)
                    .query_async::<()>(conn)
                    .await?;
                Ok(None)
            }
        }
    }

    /// Starts the watch that marks dead the kernels of vanished runtimes in notebooks this
    /// node has open ([`super::orphans`]), on `tracker` until `stop`.
    pub fn watch_orphans(
        &self,
        rooms: crate::room::Rooms,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) {
        let span = tracing::info_span!("runtime_orphans", collab_node = %self.node);
        tracker.spawn(
            super::orphans::watch(self.conn.clone(), self.prefix.clone(), rooms, stop)
                .instrument(span),
        );
    }

    /// Starts answering runtime nodes' asks (the shared asks list) with `app`, on `tracker`
    /// until `stop`.
    pub async fn serve_asks(
        &self,
        app: crate::App,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let popper = popping(&self.client)
            .await
            .context("connecting to Redis for runtime asks")?;
        let span = tracing::info_span!("runtime_asks", collab_node = %self.node);
        let asks = Asks {
            key: keys::asks_key(&self.prefix),
            prefix: self.prefix.clone(),
            conn: self.conn.clone(),
            app,
        };
        tracker.spawn(asks.serve(popper, stop).instrument(span));
        Ok(())
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), HubError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }
}

/// A connection for blocking pops. They hold their connection, so they get one of their own,
/// whose response timeout outlasts the pop (the default 500 ms would abandon a pop that then
/// still takes an entry off the list: a lost entry).
async fn popping(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new().set_response_timeout(Some(
        Duration::from_secs_f64(POP_SECONDS) + Duration::from_secs(5),
    ));
    ConnectionManager::new_with_config(client.clone(), config).await
}

/// A collab node's side of the asks list.
struct Asks {
    key: String,
    prefix: String,
    /// For answers (not the popping connection).
    conn: ConnectionManager,
    app: crate::App,
}

impl Asks {
    /// Pops asks and answers each in a task of its own (a lookup reads the store).
    async fn serve(self, popper: ConnectionManager, stop: CancellationToken) {
        let asks = Arc::new(self);
        let key = asks.key.clone();
        pop_each(
            popper,
            &key,
            "runtime asks",
            stop,
            |json| match serde_json::from_str::<AskEnvelope>(&json) {
                Ok(envelope) if keys::now_ms() > envelope.deadline_ms => {
                    tracing::debug!(ask = envelope.ask.ask, "dropping an expired ask");
                }
                Ok(envelope) => {
                    let asks = Arc::clone(&asks);
                    tokio::spawn(async move { asks.answer(envelope).await });
                }
                Err(err) => tracing::warn!(error = %err, "malformed ask from a runtime node"),
            },
        )
        .await;
    }

    async fn answer(&self, envelope: AskEnvelope) {
        let answer = super::answer(&self.app, envelope.ask).await;
        let Ok(json) = serde_json::to_string(&Queued::Answer(answer)) else {
            return;
        };
        let queue = keys::queue_key(&self.prefix, &envelope.reply_to);
        if let Err(err) = push(&mut self.conn.clone(), &queue, &json).await {
            tracing::warn!(error = %err, "cannot send an answer to a runtime node");
        }
    }
}

/// Appends `json` to the list `key`, which lingers [`keys::QUEUE_TTL_MS`] after its reader
/// went away.
async fn push(conn: &mut ConnectionManager, key: &str, json: &str) -> redis::RedisResult<()> {
    redis::pipe()
        .rpush(key, json)
        .ignore()
        .pexpire(key, keys::QUEUE_TTL_MS as i64)
        .ignore()
        .query_async(conn)
        .await
}

/// Pops the list `key` (`what`, for the log) until `stop`, handing each entry to `handle`; a
/// failed pop is logged and retried after [`RETRY`], so a Redis outage does not spin.
async fn pop_each(
    mut conn: ConnectionManager,
    key: &str,
    what: &str,
    stop: CancellationToken,
    mut handle: impl FnMut(String),
) {
    loop {
        let popped = tokio::select! {
            popped = conn.blpop::<_, Option<(String, String)>>(key, POP_SECONDS) => popped,
            () = stop.cancelled() => return,
        };
        match popped {
            Ok(Some((_, json))) => handle(json),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, "cannot read {what} from Redis");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }
}

/// Pops this node's reply list and wakes the calls waiting for each reply.
async fn reply_loop(
    conn: ConnectionManager,
    key: String,
    pending: Pending,
    stop: CancellationToken,
) {
    pop_each(
        conn,
        &key,
        "runtime replies",
        stop,
        |json| match serde_json::from_str::<Reply>(&json) {
            Ok(reply) => {
                if let Some(waiter) = lock(&pending).remove(&reply.request) {
                    let _ = waiter.send(reply);
                }
            }
            Err(err) => tracing::warn!(error = %err, "malformed reply from a runtime node"),
        },
    )
    .await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
