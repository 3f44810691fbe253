//! Documents in Redis: a snapshot hash and an update stream per notebook (see the module
//! docs of [`super`] for the keys, the numbering and compaction).

use redis::Value;

use super::{COMPACTION_LEASE, RedisStore, entry_id, entry_seq, scripts};
use crate::ids;
use crate::store::{StoreError, StoredDocument};

/// A load's answer: whether the notebook exists, the snapshot and the seq it covers, and the
/// stream's entries.
type Loaded = (bool, (Option<Vec<u8>>, Option<u64>), Value);

impl RedisStore {
    pub(super) async fn load_doc(&self, id: &str) -> Result<StoredDocument, StoreError> {
        // One MULTI block: a compaction (one script) lands wholly before or after it, so the
        // snapshot and the entries are from the same moment.
        let (exists, (state, seq), entries): Loaded = redis::pipe()
            .atomic()
            .exists(self.keys.notebook(id))
            .cmd("HMGET")
            .arg(self.keys.snapshot(id))
            .arg("state")
            .arg("seq")
            .cmd("XRANGE")
            .arg(self.keys.updates(id))
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn())
            .await?;
        if !exists {
            return Err(StoreError::NotFound("notebook"));
        }
        let covered = seq.unwrap_or(0);
        let mut last_seq = covered;
        let mut updates = Vec::new();
        for entry in parse_entries(&self.keys.updates(id), entries)? {
            if entry.seq > covered {
                last_seq = entry.seq;
                updates.push(entry.update);
            }
        }
        Ok(StoredDocument {
            snapshot: state,
            updates,
            last_seq,
        })
    }

    pub(super) async fn append(&self, id: &str, updates: &[Vec<u8>]) -> Result<u64, StoreError> {
        if updates.is_empty() {
            return Ok(self.load_doc(id).await?.last_seq);
        }
        let mut invocation = scripts::APPEND.prepare_invoke();
        invocation
            .key(self.keys.notebook(id))
            .key(self.keys.updates(id))
            .key(self.keys.snapshot(id))
            .arg(ids::now_ms())
            .arg(&*self.node);
        for update in updates {
            invocation.arg(update.as_slice());
        }
        let last: Option<String> = invocation.invoke_async(&mut self.conn()).await?;
        let last = last.ok_or(StoreError::NotFound("notebook"))?;
        entry_seq(&last).ok_or_else(|| StoreError::Corrupt {
            key: self.keys.updates(id),
            reason: format!("unexpected entry id {last}"),
        })
    }

    pub(super) async fn fold(
        &self,
        id: &str,
        snapshot: &[u8],
        up_to_seq: u64,
    ) -> Result<(), StoreError> {
        let lease = self.keys.compacting(id);
        let taken: Option<String> = redis::cmd("SET")
            .arg(&lease)
            .arg(&*self.node)
            .arg("NX")
            .arg("PX")
            .arg(COMPACTION_LEASE.as_millis() as u64)
            .query_async(&mut self.conn())
            .await?;
        if taken.is_none() {
            // Another node is folding this stream right now; its snapshot will do.
            tracing::debug!(doc_id = %id, "compaction skipped: another node holds the lease");
            return Ok(());
        }
        let result: Result<bool, _> = scripts::COMPACT
            .key(self.keys.notebook(id))
            .key(self.keys.snapshot(id))
            .key(self.keys.updates(id))
            .arg(snapshot)
            .arg(up_to_seq)
            .arg(entry_id(up_to_seq + 1))
            .invoke_async(&mut self.conn())
            .await;
        let released: Result<(), _> = scripts::RELEASE
            .key(&lease)
            .arg(&*self.node)
            .invoke_async(&mut self.conn())
            .await;
        if let Err(err) = released {
            tracing::debug!(error = %err, "compaction lease not released; it expires");
        }
        result?;
        Ok(())
    }
}

/// One decoded stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number.
    pub seq: u64,
    /// The node that appended it (empty if unknown).
    pub node: String,
    /// The v1 update.
    pub update: Vec<u8>,
}

/// Decodes an `XRANGE` reply (or one stream's entries of an `XREAD` reply).
pub fn parse_entries(key: &str, reply: Value) -> Result<Vec<Entry>, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let Value::Array(items) = reply else {
        return match reply {
            Value::Nil => Ok(Vec::new()),
            _ => Err(corrupt("stream reply is not an array")),
        };
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let (id, fields): (String, Vec<Vec<u8>>) =
            redis::from_redis_value(item).map_err(|e| corrupt(&e.to_string()))?;
        let seq = entry_seq(&id).ok_or_else(|| corrupt("entry id is not 0-{seq}"))?;
        let mut update = None;
        let mut node = String::new();
        for pair in fields.chunks_exact(2) {
            match pair[0].as_slice() {
                b"u" => update = Some(pair[1].clone()),
                b"n" => node = String::from_utf8_lossy(&pair[1]).into_owned(),
                _ => {}
            }
        }
        let update = update.ok_or_else(|| corrupt("entry without an update"))?;
        entries.push(Entry { seq, node, update });
    }
    Ok(entries)
}
