//! The stream reader: one task per node reads every followed notebook's update stream with one
//! blocking `XREAD` on a connection of its own, and hands each room the entries after its
//! position, in order.
//!
//! The set of streams changes while the reader blocks; following a new notebook appends to
//! this node's wake stream (`{prefix}:node:{node}:wake`, always part of the `XREAD`), which
//! ends the block at once so the next read includes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::RemoteEvent;
use crate::store::StoreError;
use crate::store::redis::{Keys, RedisStore, entry_id, parse_entries};

/// How long one `XREAD` blocks when nothing arrives. It only bounds how long a dead
/// connection goes unnoticed; new entries and new follows end the block at once.
const BLOCK: Duration = Duration::from_secs(5);

/// Entries taken per stream and read, so one busy notebook cannot starve the others.
const READ_COUNT: usize = 512;

/// Waits between failed reads (Redis down or restarting), doubling up to the maximum.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// How long a wake stream outlives the last time it was used (it belongs to one process).
const WAKE_TTL: Duration = Duration::from_secs(3600);

struct Followed {
    key: String,
    /// The last entry delivered (or the lowest position a follower asked for).
    position: u64,
    /// Bumped when the position moves back for a new follower: a read already in flight
    /// then delivers nothing for this stream, and the next read starts from the new position.
    generation: u64,
    subs: HashMap<u64, UnboundedSender<RemoteEvent>>,
}

type Follows = Arc<Mutex<HashMap<String, Followed>>>;

/// The node's stream reader.
pub(crate) struct Feed {
    follows: Follows,
    conn: ConnectionManager,
    wake_key: String,
}

impl Feed {
    /// Starts the reader task on its own connection.
    pub(crate) async fn start(
        store: &RedisStore,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Self, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(BLOCK + Duration::from_secs(5)))
            .set_number_of_retries(3);
        let reader = store
            .client()
            .get_connection_manager_with_config(config)
            .await?;
        let follows: Follows = Arc::default();
        let wake_key = format!("{}:node:{}:wake", store.keys().prefix(), store.node());
        let task = read_loop(follows.clone(), reader, wake_key.clone(), shutdown);
        tracker.spawn(task.instrument(tracing::info_span!("stream_reader")));
        Ok(Self {
            follows,
            conn: store.connection(),
            wake_key,
        })
    }

    /// Delivers the entries of `notebook`'s stream after `from` to `tx`, as subscriber `id`.
    pub(crate) async fn follow(
        &self,
        keys: &Keys,
        notebook: &str,
        from: u64,
        id: u64,
        tx: UnboundedSender<RemoteEvent>,
    ) {
        {
            let mut follows = lock(&self.follows);
            let followed = follows
                .entry(notebook.to_owned())
                .or_insert_with(|| Followed {
                    key: keys.updates(notebook),
                    position: from,
                    generation: 0,
                    subs: HashMap::new(),
                });
            if from < followed.position {
                followed.position = from;
                followed.generation += 1;
            }
            followed.subs.insert(id, tx);
        }
        let woken: Result<(), _> = redis::pipe()
            .cmd("XADD")
            .arg(&self.wake_key)
            .arg("MAXLEN")
            .arg(1)
            .arg("*")
            .arg("w")
            .arg(1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&self.wake_key)
            .arg(WAKE_TTL.as_millis() as u64)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await;
        if let Err(err) = woken {
            // The reader still picks the stream up when its current block ends.
            tracing::warn!(error = %err, "cannot wake the stream reader");
        }
    }

    /// Stops delivering to subscriber `id` of `notebook`.
    pub(crate) fn unfollow(&self, notebook: &str, id: u64) {
        let mut follows = lock(&self.follows);
        if let Some(followed) = follows.get_mut(notebook) {
            followed.subs.remove(&id);
            if followed.subs.is_empty() {
                follows.remove(notebook);
            }
        }
    }
}

fn lock(follows: &Follows) -> std::sync::MutexGuard<'_, HashMap<String, Followed>> {
    // Only plain map updates happen under the lock; a panic cannot leave it half-done.
    follows.lock().unwrap_or_else(|p| p.into_inner())
}

async fn read_loop(
    follows: Follows,
    mut conn: ConnectionManager,
    wake_key: String,
    shutdown: CancellationToken,
) {
    let mut wake_id = "0-0".to_owned();
    let mut retry = RETRY_MIN;
    loop {
        // (stream key, notebook, position, generation) of every followed stream.
        let streams: Vec<(String, String, u64, u64)> = lock(&follows)
            .iter()
            .map(|(notebook, f)| (f.key.clone(), notebook.clone(), f.position, f.generation))
            .collect();
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&wake_key);
        for (key, ..) in &streams {
            cmd.arg(key);
        }
        cmd.arg(&wake_id);
        for (_, _, position, _) in &streams {
            cmd.arg(entry_id(*position));
        }
        let reply: redis::RedisResult<Value> = tokio::select! {
            reply = cmd.query_async(&mut conn) => reply,
            () = shutdown.cancelled() => return,
        };
        let reply = match reply {
            Ok(reply) => {
                retry = RETRY_MIN;
                reply
            }
            Err(err) => {
                tracing::warn!(error = %err, "reading the update streams failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    () = shutdown.cancelled() => return,
                }
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        let by_key: HashMap<&str, (&str, u64)> = streams
            .iter()
            .map(|(key, notebook, _, generation)| (key.as_str(), (notebook.as_str(), *generation)))
            .collect();
        for (key, entries) in stream_replies(reply) {
            if key == wake_key {
                if let Value::Array(items) = &entries
                    && let Some(Value::Array(last)) = items.last()
                    && let Some(Value::BulkString(id)) = last.first()
                {
                    wake_id = String::from_utf8_lossy(id).into_owned();
                }
                continue;
            }
            let Some(&(notebook, generation)) = by_key.get(key.as_str()) else {
                continue;
            };
            let entries = match parse_entries(&key, entries) {
                Ok(entries) => entries,
                Err(err) => {
                    tracing::error!(error = %err, "unreadable stream entries skipped");
                    continue;
                }
            };
            let mut follows = lock(&follows);
            let Some(followed) = follows.get_mut(notebook) else {
                continue;
            };
            if followed.generation != generation {
                continue;
            }
            for entry in entries {
                if entry.seq <= followed.position {
                    continue;
                }
                followed.position = entry.seq;
                followed
                    .subs
                    .retain(|_, tx| tx.send(RemoteEvent::Entry(entry.clone())).is_ok());
            }
        }
    }
}

/// The (stream key, entries) pairs of an `XREAD` reply, RESP2 (array) or RESP3 (map).
fn stream_replies(reply: Value) -> Vec<(String, Value)> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Map(pairs) => pairs,
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let entries = pair.pop()?;
                    let key = pair.pop()?;
                    Some((key, entries))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .filter_map(|(key, entries)| match key {
            Value::BulkString(key) => Some((String::from_utf8(key).ok()?, entries)),
            Value::SimpleString(key) => Some((key, entries)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis::entry_seq;

    #[test]
    fn xread_replies_of_both_protocols_are_read() {
        let entries = Value::Array(vec![]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"k".to_vec()),
            entries.clone(),
        ])]);
        let resp3 = Value::Map(vec![(Value::BulkString(b"k".to_vec()), entries.clone())]);
        for reply in [resp2, resp3] {
            assert_eq!(
                stream_replies(reply),
                vec![("k".to_owned(), entries.clone())]
            );
        }
        assert!(stream_replies(Value::Nil).is_empty());
        assert_eq!(entry_seq("0-7"), Some(7));
    }
}
