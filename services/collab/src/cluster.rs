//! Collab nodes sharing one Redis: what each node learns from the others.
//!
//! With `--redis-url` every node's store is the same [`RedisStore`], and a [`Cluster`] carries
//! what rooms on different nodes must tell each other:
//! - **document updates**: every node appends its clients' updates to the notebook's stream
//!   (`{prefix}:doc:{id}:updates`, durable before anyone sees them). A room follows the stream
//!   from the position it loaded ([`Cluster::follow`]) and applies and relays to its own
//!   clients the entries other nodes wrote. One reader task per node ([`feed`]) multiplexes
//!   every followed stream over one blocking `XREAD`, so a node holds three Redis
//!   connections however many rooms it has.
//! - **room messages** on the pub/sub channel `{prefix}:room:{id}` ([`RoomMessage`]):
//!   awareness updates of each node's clients (and their removal when they leave), a query
//!   for them when a room loads, and a notice when a node compacted the stream.
//! - **access events** on `{prefix}:access`: sharing changes, deletions and sign-outs, so a
//!   revocation on one node cuts the sockets on every node ([`crate::auth::events`]).
//!
//! Pub/sub is best effort: a message sent while a node is disconnected from Redis is lost.
//! Awareness heals itself (clients renew their state every 15 s, and states not renewed for
//! 30 s are dropped, which is also how a dead node's clients disappear); document updates never
//! depend on it.
//!
//! # Layout
//! - [`feed`]: the stream reader.
//! - [`bus`]: pub/sub: subscriptions, dispatch, and the publisher task.

pub mod bus;
pub mod feed;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::events::{AccessEvent, AccessEvents};
use crate::store::StoreError;
use crate::store::redis::{Entry, Keys, RedisStore, entry_id, parse_entries};

/// What a room hears from the other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteEvent {
    /// An entry of the notebook's update stream (including the node's own, in order).
    Entry(Entry),
    /// A message another node published on the notebook's channel.
    Room(RoomMessage),
}

/// A message between the rooms of one notebook on different nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomMessage {
    /// An awareness update (v1 encoded) of the sender's clients.
    Awareness(Vec<u8>),
    /// A room just loaded: every node answers with its clients' awareness.
    AwarenessQuery,
    /// The sender folded the stream into a snapshot up to this seq and trimmed it.
    Compacted(u64),
}

impl RoomMessage {
    /// `[node id length][node id][kind][payload]`.
    fn encode(&self, node: &str) -> Vec<u8> {
        let (kind, payload): (u8, Vec<u8>) = match self {
            RoomMessage::Awareness(update) => (b'a', update.clone()),
            RoomMessage::AwarenessQuery => (b'q', Vec::new()),
            RoomMessage::Compacted(seq) => (b'c', seq.to_string().into_bytes()),
        };
        let node = node.as_bytes();
        let mut out = Vec::with_capacity(node.len() + payload.len() + 2);
        out.push(node.len() as u8);
        out.extend_from_slice(node);
        out.push(kind);
        out.extend_from_slice(&payload);
        out
    }

    /// The sender and the message, if `bytes` is one.
    fn decode(bytes: &[u8]) -> Option<(&str, Self)> {
        let (&len, rest) = bytes.split_first()?;
        let node = std::str::from_utf8(rest.get(..len as usize)?).ok()?;
        let (&kind, payload) = rest.get(len as usize..)?.split_first()?;
        let message = match kind {
            b'a' => RoomMessage::Awareness(payload.to_vec()),
            b'q' => RoomMessage::AwarenessQuery,
            b'c' => RoomMessage::Compacted(std::str::from_utf8(payload).ok()?.parse().ok()?),
            _ => return None,
        };
        Some((node, message))
    }
}

/// A room's subscription to its notebook's stream and channel; dropping it ends both.
pub struct Follow {
    /// Events in the order they happened on each source.
    pub events: mpsc::UnboundedReceiver<RemoteEvent>,
    notebook: String,
    id: u64,
    cluster: Cluster,
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.cluster.inner.feed.unfollow(&self.notebook, self.id);
        self.cluster.inner.bus.leave(&self.notebook, self.id);
    }
}

struct Inner {
    node: Arc<str>,
    keys: Keys,
    conn: redis::aio::ConnectionManager,
    feed: feed::Feed,
    bus: bus::Bus,
    next_id: std::sync::atomic::AtomicU64,
}

/// This node's link to the other collab nodes (see the module docs).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.node)
            .finish()
    }
}

impl Cluster {
    /// Starts the stream reader and the pub/sub link of the node whose store is `store`.
    /// Access events published on `access` reach the other nodes (through `relayed`, the
    /// receiving end of [`AccessEvents::relayed`]) and theirs are re-published on it.
    pub async fn start(
        store: &RedisStore,
        access: AccessEvents,
        relayed: mpsc::UnboundedReceiver<AccessEvent>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Self, StoreError> {
        let node: Arc<str> = store.node().into();
        let keys = store.keys().clone();
        let feed = feed::Feed::start(store, tracker, shutdown.clone()).await?;
        let bus = bus::Bus::start(store, access, relayed, tracker, shutdown).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                node,
                keys,
                conn: store.connection(),
                feed,
                bus,
                next_id: std::sync::atomic::AtomicU64::new(1),
            }),
        })
    }

    /// This node's id (the `n` of the stream entries it appends).
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Follows a notebook: its stream entries after `from` (the position its room loaded) and
    /// the other nodes' messages about it. Returns once the channel subscription is in place.
    pub async fn follow(&self, notebook: &str, from: u64) -> Result<Follow, StoreError> {
        let id = self
            .inner
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, events) = mpsc::unbounded_channel();
        let follow = Follow {
            events,
            notebook: notebook.to_owned(),
            id,
            cluster: self.clone(),
        };
        self.inner
            .bus
            .join(&self.inner.keys, notebook, id, tx.clone())
            .await?;
        self.inner
            .feed
            .follow(&self.inner.keys, notebook, from, id, tx)
            .await;
        Ok(follow)
    }

    /// The seq of the first entry after `position` still in `notebook`'s stream.
    pub async fn next_seq_after(
        &self,
        notebook: &str,
        position: u64,
    ) -> Result<Option<u64>, StoreError> {
        let key = self.inner.keys.updates(notebook);
        let reply: redis::Value = redis::cmd("XRANGE")
            .arg(&key)
            .arg(format!("({}", entry_id(position)))
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.inner.conn.clone())
            .await?;
        Ok(parse_entries(&key, reply)?.first().map(|e| e.seq))
    }

    /// Publishes a message to the rooms of `notebook` on the other nodes (in order, without
    /// waiting).
    pub fn publish(&self, notebook: &str, message: &RoomMessage) {
        self.inner.bus.publish(
            room_channel(&self.inner.keys, notebook),
            message.encode(&self.inner.node),
        );
    }
}

/// The pub/sub channel of a notebook's rooms.
fn room_channel(keys: &Keys, notebook: &str) -> String {
    format!("{}:room:{notebook}", keys.prefix())
}

/// The pub/sub channel of access events.
fn access_channel(keys: &Keys) -> String {
    format!("{}:access", keys.prefix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_messages_round_trip() {
        for message in [
            RoomMessage::Awareness(vec![1, 2, 3]),
            RoomMessage::AwarenessQuery,
            RoomMessage::Compacted(42),
        ] {
            let bytes = message.encode("node-1");
            assert_eq!(RoomMessage::decode(&bytes), Some(("node-1", message)));
        }
        assert_eq!(RoomMessage::decode(&[9, b'x']), None);
        assert_eq!(RoomMessage::decode(&[]), None);
    }
}
