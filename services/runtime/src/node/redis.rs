//! A runtime node's link through Redis (key layout in [`tandem_protocol::redis_link`]).
//!
//! - Ownership: a notebook's session runs on the node holding its lease
//!   (`SET lease node NX PX 10000`). A node claims the lease before it starts a session,
//!   renews it every 3 s while the session lives, and deletes it when the session ends or the
//!   node stops. A command that reaches a node which does not own its notebook is forwarded
//!   to the owner.
//! - Work: the node pops its own queue (commands for notebooks it owns) and reads the shared
//!   unassigned stream as one consumer of the group of all runtime nodes, so exactly one node
//!   takes a notebook nobody owns. Replies go to the asking collab node's reply list.
//! - Asks (a running cell's secret) go to the shared asks list that every collab node pops;
//!   the answer comes back on this node's queue, beside its commands.
//! - Liveness: a heartbeat in the nodes sorted set tells collab nodes that some runtime is
//!   there. Every node scans the sessions hash each second: a notebook whose owner's lease
//!   expired (the node died) is claimed for cleanup by exactly one node (a script deletes the
//!   entry only while it still names the dead owner), which joins the document and marks the
//!   kernel dead, so collaborators see it within the lease's lifetime; the next execute then
//!   goes to the unassigned stream and starts a kernel on a live node.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::{StreamReadOptions, StreamReadReply};
use tandem_protocol::redis_link::{self as keys, AskEnvelope, Envelope, Queued};
use tandem_protocol::runtime::{ErrorCode, Outcome, Refusal, Reply};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Node, RedisConfig};

mod orphans;

/// Seconds one blocking read waits; between two reads a loop notices shutdown.
const BLOCK_SECONDS: f64 = 1.0;

/// How often the sessions hash is scanned for notebooks of vanished nodes.
const ORPHAN_SCAN: Duration = Duration::from_secs(1);

/// Wait after a Redis failure before trying again, so an outage does not spin.
const RETRY: Duration = Duration::from_millis(500);

/// Claims or renews a lease. KEYS: lease, sessions hash; ARGV: node, ttl ms, notebook.
/// Returns the owner after the call (this node when the claim or renewal succeeded).
const CLAIM: &str = r"
local owner = redis.call('GET', KEYS[1])
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
  return ARGV[1]
end
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
end
return owner
";

/// Releases a lease this node holds. KEYS: lease, sessions hash; ARGV: node, notebook.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
";

/// Releases a lease this node holds, keeping its sessions entry. KEYS: lease; ARGV: node.
const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// The node's side of Redis.
struct Link {
    node: Arc<Node>,
    prefix: String,
    /// This runtime node's id: its queue's name and the lease holder's value.
    id: String,
    conn: ConnectionManager,
    /// Notebooks whose lease this node holds, and whether their session has started (a lease
    /// claimed for a session still starting must not be released by the upkeep).
    owned: Mutex<HashMap<String, bool>>,
}

/// Serves commands from Redis until `stop`, then shuts every session down and releases the
/// node's leases.
pub(super) async fn run(
    node: Arc<Node>,
    config: RedisConfig,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let client = redis::Client::open(config.url.as_str()).context("parsing --redis-url")?;
    let connect = || async {
        loop {
            // Blocking reads (BLPOP, XREADGROUP BLOCK) must not outlive the response timeout
            // (500 ms by default): an abandoned read may still take an entry off Redis.
            let config = redis::aio::ConnectionManagerConfig::new().set_response_timeout(Some(
                Duration::from_secs_f64(BLOCK_SECONDS) + Duration::from_secs(5),
            ));
            match ConnectionManager::new_with_config(client.clone(), config).await {
                Ok(conn) => return Some(conn),
                Err(err) => tracing::warn!(error = %err, "Redis unavailable; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY * 4) => {}
                () = stop.cancelled() => return None,
            }
        }
    };
    let (Some(conn), Some(queue_conn), Some(stream_conn)) =
        (connect().await, connect().await, connect().await)
    else {
        node.shutdown().await;
        return Ok(());
    };
    let id = format!(
        "rt-{}-{:012x}",
        std::process::id(),
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            & 0xffff_ffff_ffff
    );
    let link = Arc::new(Link {
        node: node.clone(),
        prefix: config.prefix,
        id,
        conn,
        owned: Mutex::default(),
    });
    tracing::info!(runtime_node = %link.id, "runtime node taking work from Redis");
    let span = tracing::info_span!("runtime_node", runtime_node = %link.id);
    let tasks = [
        tokio::spawn(
            link.clone()
                .own_queue(queue_conn, stop.clone())
                .instrument(span.clone()),
        ),
        tokio::spawn(
            link.clone()
                .unassigned(stream_conn, stop.clone())
                .instrument(span.clone()),
        ),
        tokio::spawn(link.clone().asks(stop.clone()).instrument(span.clone())),
        tokio::spawn(link.clone().upkeep(stop.clone()).instrument(span)),
    ];
    for task in tasks {
        let _ = task.await;
    }
    node.config.ready.set(false);
    node.shutdown().await;
    link.release_all().await;
    Ok(())
}

impl Link {
    /// Pops this node's queue: commands for notebooks it owns.
    async fn own_queue(self: Arc<Self>, mut conn: ConnectionManager, stop: CancellationToken) {
        let key = keys::queue_key(&self.prefix, &self.id);
        loop {
            let popped = tokio::select! {
                popped = conn.blpop::<_, Option<(String, String)>>(&key, BLOCK_SECONDS) => popped,
                () = stop.cancelled() => return,
            };
            match popped {
                Ok(Some((_, json))) => self.received(&json).await,
                Ok(None) => {}
                Err(err) => self.failed(&err, &stop).await,
            }
        }
    }

    /// Carries the node's asks to the collab nodes (the asks list) while the link runs.
    async fn asks(self: Arc<Self>, stop: CancellationToken) {
        let mut outbox = self.node.secrets.outbox().await;
        let key = keys::asks_key(&self.prefix);
        loop {
            let ask = tokio::select! {
                Some(ask) = outbox.recv() => ask,
                () = stop.cancelled() => break,
            };
            let envelope = AskEnvelope {
                reply_to: self.id.clone(),
                deadline_ms: keys::deadline_after(crate::secrets::LOOKUP_TIMEOUT),
                ask,
            };
            // On failure its lookup times out; the cell gets a clear error.
            self.push(&key, &envelope, "send an ask to the collab nodes")
                .await;
        }
        drop(outbox);
        self.node.secrets.link_dropped();
    }

    /// Reads the unassigned stream as one consumer of the runtime nodes' group.
    async fn unassigned(self: Arc<Self>, mut conn: ConnectionManager, stop: CancellationToken) {
        let key = keys::unassigned_key(&self.prefix);
        let options = StreamReadOptions::default()
            .group(keys::GROUP, &self.id)
            .count(1)
            .block((BLOCK_SECONDS * 1000.0) as usize);
        let mut group_ready = false;
        loop {
            if !group_ready {
                group_ready = self.create_group(&mut conn, &key).await;
            }
            let (streams, ids) = ([key.as_str()], [">"]);
            let read = tokio::select! {
                read = conn.xread_options::<_, _, Option<StreamReadReply>>(
                    &streams, &ids, &options,
                ) => read,
                () = stop.cancelled() => return,
            };
            let entries = match read {
                Ok(Some(reply)) => reply.keys.into_iter().flat_map(|k| k.ids),
                Ok(None) => continue,
                Err(err) => {
                    // The group is gone when Redis lost its data (a restart without AOF).
                    group_ready = false;
                    self.failed(&err, &stop).await;
                    continue;
                }
            };
            for entry in entries.collect::<Vec<_>>() {
                // Acknowledged before it is handled: a node that dies meanwhile loses the
                // command, and its caller gets a timeout rather than a second execution.
                let acked: redis::RedisResult<()> = redis::pipe()
                    .xack(&key, keys::GROUP, &[&entry.id])
                    .ignore()
                    .xdel(&key, &[&entry.id])
                    .ignore()
                    .query_async(&mut conn)
                    .await;
                if let Err(err) = acked {
                    tracing::warn!(error = %err, "cannot acknowledge a command");
                }
                match entry.get::<String>(keys::FIELD) {
                    Some(json) => self.received(&json).await,
                    None => tracing::warn!(id = %entry.id, "stream entry without a command"),
                }
            }
        }
    }

    /// Creates the consumer group (from the stream's start, so commands added before any node
    /// ran are seen; stale ones are dropped by their deadline).
    async fn create_group(&self, conn: &mut ConnectionManager, key: &str) -> bool {
        let created: redis::RedisResult<()> =
            conn.xgroup_create_mkstream(key, keys::GROUP, "0").await;
        match created {
            Ok(()) => true,
            Err(err) if err.code() == Some("BUSYGROUP") => true,
            Err(err) => {
                tracing::warn!(error = %err, "cannot create the runtime consumer group");
                false
            }
        }
    }

    /// Logs a Redis failure, marks the node not ready, and waits a little.
    async fn failed(&self, err: &redis::RedisError, stop: &CancellationToken) {
        tracing::warn!(error = %err, "Redis read failed");
        self.node.config.ready.set(false);
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = stop.cancelled() => {}
        }
    }

    async fn received(self: &Arc<Self>, json: &str) {
        match serde_json::from_str::<Queued>(json) {
            // Completions must not hold up the commands queued behind them.
            Ok(Queued::Command(envelope)) if envelope.command.body.is_query() => {
                let link = Arc::clone(self);
                tokio::spawn(async move { link.dispatch(envelope).await });
            }
            Ok(Queued::Command(envelope)) => self.dispatch(envelope).await,
            Ok(Queued::Answer(answer)) => self.node.secrets.answered(answer),
            Err(err) => tracing::warn!(error = %err, "malformed command envelope"),
        }
    }

    /// Runs a command here if this node owns (or now claims) its notebook, else forwards it
    /// to the owner.
    async fn dispatch(&self, mut envelope: Envelope) {
        if keys::now_ms() > envelope.deadline_ms {
            tracing::debug!(
                request = envelope.command.request,
                "dropping an expired command"
            );
            return;
        }
        let notebook = envelope.command.notebook_id.to_string();
        let starts_session = envelope.command.body.starts_kernel();
        let owner = if self.node.running(&notebook).await.is_some() {
            Ok(self.id.clone())
        } else if starts_session {
            self.claim(&notebook).await
        } else {
            let mut conn = self.conn.clone();
            conn.get::<_, Option<String>>(keys::lease_key(&self.prefix, &notebook))
                .await
                .map(|owner| owner.unwrap_or_else(|| self.id.clone()))
        };
        let request = envelope.command.request;
        let owner = match owner {
            Ok(owner) => owner,
            Err(err) => {
                let reply = error(request, format!("the runtime could not reach Redis: {err}"));
                self.reply(&envelope.reply_to, &reply).await;
                return;
            }
        };
        if owner != self.id {
            if envelope.hops >= keys::MAX_HOPS {
                let reply = error(
                    request,
                    "the notebook's runtime is moving; try again".into(),
                );
                self.reply(&envelope.reply_to, &reply).await;
                return;
            }
            envelope.hops += 1;
            tracing::debug!(doc_id = %notebook, runtime_node = %owner, "forwarding to the owner");
            self.forward(&owner, &envelope).await;
            return;
        }
        let reply = self.node.handle(envelope.command).await;
        if starts_session {
            let running = self.node.running(&notebook).await.is_some();
            if running {
                self.owned.lock().await.insert(notebook, true);
            } else {
                // Refused before a session started (a kernel limit, a bad cell): let go.
                self.release(&notebook).await;
            }
        }
        self.reply(&envelope.reply_to, &reply).await;
    }

    /// Claims the notebook's lease; returns the owner afterwards.
    async fn claim(&self, notebook: &str) -> redis::RedisResult<String> {
        let mut conn = self.conn.clone();
        let owner: String = redis::Script::new(CLAIM)
            .key(keys::lease_key(&self.prefix, notebook))
            .key(keys::sessions_key(&self.prefix))
            .arg(&self.id)
            .arg(keys::LEASE_TTL_MS)
            .arg(notebook)
            .invoke_async(&mut conn)
            .await?;
        if owner == self.id {
            self.owned
                .lock()
                .await
                .entry(notebook.to_owned())
                .or_insert(false);
        }
        Ok(owner)
    }

    async fn release(&self, notebook: &str) {
        self.owned.lock().await.remove(notebook);
        let mut conn = self.conn.clone();
        let released: redis::RedisResult<i64> = redis::Script::new(RELEASE)
            .key(keys::lease_key(&self.prefix, notebook))
            .key(keys::sessions_key(&self.prefix))
            .arg(&self.id)
            .arg(notebook)
            .invoke_async(&mut conn)
            .await;
        if let Err(err) = released {
            tracing::warn!(error = %err, doc_id = %notebook, "cannot release a lease; it expires");
        }
    }

    /// Lets go of the lease alone, leaving the sessions entry for the orphan watch.
    async fn release_lease(&self, notebook: &str) {
        self.owned.lock().await.remove(notebook);
        let mut conn = self.conn.clone();
        let released: redis::RedisResult<i64> = redis::Script::new(RELEASE_LEASE)
            .key(keys::lease_key(&self.prefix, notebook))
            .arg(&self.id)
            .invoke_async(&mut conn)
            .await;
        if let Err(err) = released {
            tracing::warn!(error = %err, doc_id = %notebook, "cannot release a lease; it expires");
        }
    }

    async fn release_all(&self) {
        let owned: Vec<String> = self.owned.lock().await.keys().cloned().collect();
        for notebook in owned {
            self.release(&notebook).await;
        }
        let mut conn = self.conn.clone();
        let _: redis::RedisResult<()> = conn.zrem(keys::nodes_key(&self.prefix), &self.id).await;
    }

    async fn forward(&self, owner: &str, envelope: &Envelope) {
        let queue = keys::queue_key(&self.prefix, owner);
        self.push(&queue, envelope, "forward a command").await;
    }

    async fn reply(&self, collab: &str, reply: &Reply) {
        let list = keys::replies_key(&self.prefix, collab);
        self.push(&list, reply, "send a reply").await;
    }

    /// Appends `frame` (JSON) to the list `key`, which lingers [`keys::QUEUE_TTL_MS`] after
    /// its reader went away; a failure is logged as "cannot {what}" (whoever waits for it
    /// times out, or is told its runtime stopped).
    async fn push(&self, key: &str, frame: &impl serde::Serialize, what: &str) {
        let Ok(json) = serde_json::to_string(frame) else {
            return;
        };
        let mut conn = self.conn.clone();
        let sent: redis::RedisResult<()> = redis::pipe()
            .rpush(key, json)
            .ignore()
            .pexpire(key, keys::QUEUE_TTL_MS as i64)
            .ignore()
            .query_async(&mut conn)
            .await;
        if let Err(err) = sent {
            tracing::warn!(error = %err, "cannot {what}");
        }
    }

    /// Heartbeat, lease renewal and the watch for notebooks of vanished nodes.
    async fn upkeep(self: Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(ORPHAN_SCAN);
        let renew_every = (keys::LEASE_RENEW_MS / ORPHAN_SCAN.as_millis() as u64).max(1);
        let mut tick = 0u64;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = stop.cancelled() => return,
            }
            if tick.is_multiple_of(renew_every) {
                let beat = self.heartbeat().await;
                self.node.config.ready.set(beat.is_ok());
                if let Err(err) = beat {
                    tracing::warn!(error = %err, "Redis heartbeat failed");
                    continue;
                }
                self.renew().await;
            }
            tick += 1;
            if let Err(err) = self.scan_orphans().await {
                tracing::warn!(error = %err, "cannot scan for orphaned notebooks");
            }
        }
    }

    async fn heartbeat(&self) -> redis::RedisResult<()> {
        let now = keys::now_ms();
        let key = keys::nodes_key(&self.prefix);
        let mut conn = self.conn.clone();
        redis::pipe()
            .zadd(&key, &self.id, now + keys::LEASE_TTL_MS)
            .ignore()
            .zrembyscore(&key, "-inf", now)
            .ignore()
            .query_async(&mut conn)
            .await
    }

    /// Renews the leases of live sessions and releases those of ended ones. A lease taken by
    /// another node (after this one stalled past the TTL) ends the session here: two kernels
    /// must never write one notebook.
    async fn renew(&self) {
        let owned: Vec<(String, bool)> = self
            .owned
            .lock()
            .await
            .iter()
            .map(|(notebook, started)| (notebook.clone(), *started))
            .collect();
        for (notebook, started) in owned {
            let running = self.node.running(&notebook).await;
            if running.is_none() && started {
                if self.node.lost(&notebook).await {
                    // Its kernel ended unseen: keep the sessions entry so the orphan watch
                    // (of any node, this one included, or of a collab node with the notebook
                    // open) marks it dead once someone reaches the notebook.
                    self.release_lease(&notebook).await;
                } else {
                    self.release(&notebook).await;
                }
                continue;
            }
            match self.claim(&notebook).await {
                Ok(owner) if owner == self.id => {}
                Ok(owner) => {
                    tracing::warn!(
                        doc_id = %notebook,
                        runtime_node = %owner,
                        "lease lost; stopping the session"
                    );
                    self.owned.lock().await.remove(&notebook);
                    let session = self
                        .node
                        .notebooks
                        .lock()
                        .await
                        .get_mut(&notebook)
                        .and_then(|entry| entry.session.take());
                    if let Some(session) = session {
                        session.shutdown().await;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, doc_id = %notebook, "cannot renew a lease")
                }
            }
        }
    }
}

fn error(request: u64, message: String) -> Reply {
    Reply {
        request,
        outcome: Outcome::Error(Refusal::new(ErrorCode::RuntimeError, message)),
    }
}
