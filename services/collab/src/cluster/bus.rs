//! Pub/sub between nodes: one RESP3 connection receives every subscribed channel's messages
//! (pushed to a dispatcher that hands them to the rooms, or to the access bus), resubscribing
//! by itself after a reconnect; a publisher task sends this node's messages in order, a batch
//! per round trip, over the store's connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{RemoteEvent, RoomMessage, access_channel, room_channel};
use crate::auth::events::{AccessEvent, AccessEvents};
use crate::store::StoreError;
use crate::store::redis::{Keys, RedisStore};

/// Messages sent per pipeline at most.
const PUBLISH_BATCH: usize = 256;

/// How long the publisher goes on after shutdown began, so rooms closing their connections
/// can still tell the other nodes that their clients left.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

type Subscribers = Arc<Mutex<HashMap<String, HashMap<u64, UnboundedSender<RemoteEvent>>>>>;

enum Outgoing {
    Publish(String, Vec<u8>),
    /// A room left its channel: unsubscribe if nobody else on this node follows it.
    Leave(String),
}

/// The node's pub/sub link.
pub(crate) struct Bus {
    keys: Keys,
    subscribers: Subscribers,
    /// Subscribing and unsubscribing take turns, so a room joining a channel that another
    /// room of the same notebook is leaving never ends up unsubscribed.
    pubsub: Arc<tokio::sync::Mutex<ConnectionManager>>,
    outgoing: UnboundedSender<Outgoing>,
}

impl Bus {
    pub(crate) async fn start(
        store: &RedisStore,
        access: AccessEvents,
        relayed: UnboundedReceiver<AccessEvent>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Self, StoreError> {
        let keys = store.keys().clone();
        let node: Arc<str> = store.node().into();
        let subscribers: Subscribers = Arc::default();
        let dispatch = dispatcher(
            node.clone(),
            access_channel(&keys),
            subscribers.clone(),
            access,
        );
        let info = store.client().get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let config = ConnectionManagerConfig::new()
            .set_push_sender(dispatch)
            .set_automatic_resubscription();
        let mut pubsub = client.get_connection_manager_with_config(config).await?;
        pubsub.subscribe(access_channel(&keys)).await?;
        let pubsub = Arc::new(tokio::sync::Mutex::new(pubsub));
        let (outgoing, queue) = mpsc::unbounded_channel();
        let publisher = Publisher {
            conn: store.connection(),
            queue,
            relayed,
            node,
            access_channel: access_channel(&keys),
            subscribers: subscribers.clone(),
            pubsub: pubsub.clone(),
        };
        tracker.spawn(
            publisher
                .run(shutdown)
                .instrument(tracing::info_span!("publisher")),
        );
        Ok(Self {
            keys,
            subscribers,
            pubsub,
            outgoing,
        })
    }

    /// Hands the messages of `notebook`'s channel to `tx`, as subscriber `id`.
    pub(crate) async fn join(
        &self,
        keys: &Keys,
        notebook: &str,
        id: u64,
        tx: UnboundedSender<RemoteEvent>,
    ) -> Result<(), StoreError> {
        let channel = room_channel(keys, notebook);
        let mut pubsub = self.pubsub.lock().await;
        let first = {
            let mut subscribers = lock(&self.subscribers);
            let subs = subscribers.entry(channel.clone()).or_default();
            subs.insert(id, tx);
            subs.len() == 1
        };
        if first && let Err(err) = pubsub.subscribe(&channel).await {
            lock(&self.subscribers)
                .get_mut(&channel)
                .map(|subs| subs.remove(&id));
            return Err(err.into());
        }
        Ok(())
    }

    /// Stops handing `notebook`'s messages to subscriber `id`.
    pub(crate) fn leave(&self, notebook: &str, id: u64) {
        let channel = room_channel(&self.keys, notebook);
        let empty = {
            let mut subscribers = lock(&self.subscribers);
            let subs = subscribers.entry(channel.clone()).or_default();
            subs.remove(&id);
            subs.is_empty()
        };
        if empty {
            let _ = self.outgoing.send(Outgoing::Leave(channel));
        }
    }

    /// Queues a message for `channel`.
    pub(crate) fn publish(&self, channel: String, payload: Vec<u8>) {
        // The publisher only stops at shutdown, when nobody is listening any more.
        let _ = self.outgoing.send(Outgoing::Publish(channel, payload));
    }
}

fn lock(
    subscribers: &Subscribers,
) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u64, UnboundedSender<RemoteEvent>>>> {
    // Only plain map updates happen under the lock; a panic cannot leave it half-done.
    subscribers.lock().unwrap_or_else(|p| p.into_inner())
}

/// Routes pushed pub/sub messages: access events to the access bus, room messages to the
/// rooms that follow the channel. Messages this node sent itself are skipped.
fn dispatcher(
    node: Arc<str>,
    access_channel: String,
    subscribers: Subscribers,
    access: AccessEvents,
) -> impl Fn(PushInfo) -> Result<(), Infallible> + Send + Sync + 'static {
    move |info: PushInfo| {
        if info.kind == PushKind::Disconnection {
            tracing::info!("pub/sub connection lost; reconnecting");
        }
        if info.kind != PushKind::Message {
            return Ok(());
        }
        let mut data = info.data.into_iter();
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
            (data.next(), data.next())
        else {
            return Ok(());
        };
        let channel = String::from_utf8_lossy(&channel);
        if channel == access_channel {
            match decode_access(&payload) {
                Some((from, event)) if *from != *node => access.publish_local(event),
                Some(_) => {}
                None => tracing::debug!("unreadable access event skipped"),
            }
            return Ok(());
        }
        let Some((from, message)) = RoomMessage::decode(&payload) else {
            tracing::debug!(%channel, "unreadable room message skipped");
            return Ok(());
        };
        if from == &*node {
            return Ok(());
        }
        if let Some(subs) = lock(&subscribers).get_mut(channel.as_ref()) {
            subs.retain(|_, tx| tx.send(RemoteEvent::Room(message.clone())).is_ok());
        }
        Ok(())
    }
}

/// The task that sends this node's messages in order, a batch per round trip, and unsubscribes
/// from the channels that rooms left.
struct Publisher {
    /// The store's connection, which the messages go out on.
    conn: ConnectionManager,
    /// What the rooms and the bus queued.
    queue: UnboundedReceiver<Outgoing>,
    /// Access events of this node, for the other nodes.
    relayed: UnboundedReceiver<AccessEvent>,
    /// This node, named in its access events: every node's dispatcher skips its own.
    node: Arc<str>,
    /// Where access events go.
    access_channel: String,
    /// Consulted on a leave: the channel stays subscribed while a room on this node follows it.
    subscribers: Subscribers,
    /// The subscribing connection, taken in turn with [`Bus::join`].
    pubsub: Arc<tokio::sync::Mutex<ConnectionManager>>,
}

impl Publisher {
    /// Publishes until its queues close, or until [`SHUTDOWN_GRACE`] after `shutdown`.
    async fn run(mut self, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        let stopping = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                n = self.queue.recv_many(&mut batch, PUBLISH_BATCH) => if n == 0 { return },
                event = self.relayed.recv() => match event {
                    Some(event) => batch.push(Outgoing::Publish(
                        self.access_channel.clone(),
                        encode_access(&self.node, &event),
                    )),
                    None => return,
                },
                () = &mut stopping => return,
            }
            let mut pipe = redis::pipe();
            let mut published = 0;
            for outgoing in batch.drain(..) {
                match outgoing {
                    Outgoing::Publish(channel, payload) => {
                        pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
                        published += 1;
                    }
                    Outgoing::Leave(channel) => self.leave(&channel).await,
                }
            }
            if published > 0 {
                let sent: redis::RedisResult<()> = pipe.query_async(&mut self.conn).await;
                if let Err(err) = sent {
                    // Best effort: awareness renews itself and access events are re-checked on
                    // the next request.
                    tracing::warn!(error = %err, messages = published, "publishing failed");
                }
            }
        }
    }

    /// Unsubscribes from `channel` unless a room on this node follows it again.
    async fn leave(&self, channel: &str) {
        let mut pubsub = self.pubsub.lock().await;
        let still_followed = {
            let mut subscribers = lock(&self.subscribers);
            let followed = subscribers.get(channel).is_some_and(|s| !s.is_empty());
            if !followed {
                subscribers.remove(channel);
            }
            followed
        };
        if !still_followed && let Err(err) = pubsub.unsubscribe(channel).await {
            tracing::debug!(error = %err, %channel, "unsubscribe failed");
        }
    }
}

fn encode_access(node: &str, event: &AccessEvent) -> Vec<u8> {
    let (kind, id) = match event {
        AccessEvent::Notebook(id) => ("notebook", id),
        AccessEvent::SessionEnded(hash) => ("session_ended", hash),
        AccessEvent::UserSignedOut(user) => ("user_signed_out", user),
    };
    serde_json::json!({ "node": node, "kind": kind, "id": id })
        .to_string()
        .into_bytes()
}

fn decode_access(bytes: &[u8]) -> Option<(String, AccessEvent)> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let node = value["node"].as_str()?.to_owned();
    let id = value["id"].as_str()?.to_owned();
    let event = match value["kind"].as_str()? {
        "notebook" => AccessEvent::Notebook(id),
        "session_ended" => AccessEvent::SessionEnded(id),
        "user_signed_out" => AccessEvent::UserSignedOut(id),
        _ => return None,
    };
    Some((node, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_events_round_trip() {
        for event in [
            AccessEvent::Notebook("n".into()),
            AccessEvent::SessionEnded("h".into()),
            AccessEvent::UserSignedOut("u".into()),
        ] {
            let bytes = encode_access("node", &event);
            assert_eq!(decode_access(&bytes), Some(("node".to_owned(), event)));
        }
    }
}
