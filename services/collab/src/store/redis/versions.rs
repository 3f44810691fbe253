//! Versions in Redis: a list of version ids per notebook (oldest first) and a hash per version
//! (`created_at`, `kind`, `name`, `authors` as a JSON array, `state`), both keyed by the
//! notebook, so a version of another notebook is simply absent. The notebook's deletion
//! script removes them.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use redis::{Script, Value};

use super::RedisStore;
use crate::store::versions::{VersionKind, VersionRecord};
use crate::store::{StoreError, VersionStore};

/// `KEYS`: the notebook, its version list, the version's hash; `ARGV`: the version id, then
/// field/value pairs. Stores the version only while the notebook exists; returns whether it
/// did.
static INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], unpack(ARGV, 2))
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
",
    )
});

/// `KEYS[1]`: the version list; `ARGV`: the prefix of version hashes (`…:version:{nb}:`), the
/// number n of versions to drop, their n ids, then (id, authors JSON) pairs of versions whose
/// authors change (only if they still exist).
static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local prefix, n = ARGV[1], tonumber(ARGV[2])
for i = 3, 2 + n do
  redis.call('DEL', prefix .. ARGV[i])
  redis.call('LREM', KEYS[1], 0, ARGV[i])
end
for i = 3 + n, #ARGV, 2 do
  if redis.call('EXISTS', prefix .. ARGV[i]) == 1 then
    redis.call('HSET', prefix .. ARGV[i], 'authors', ARGV[i + 1])
  end
end
return 1
",
    )
});

/// Fields read for a listing (everything but the state).
const FIELDS: [&str; 4] = ["created_at", "kind", "name", "authors"];

impl RedisStore {
    /// `{p}:notebook:{id}:versions`: the notebook's version ids, oldest first. Also named in
    /// the notebook deletion script.
    fn version_list(&self, notebook_id: &str) -> String {
        format!("{}:notebook:{notebook_id}:versions", self.keys.prefix())
    }

    /// `{p}:version:{notebook}:`, the prefix of the notebook's version hashes.
    fn version_prefix(&self, notebook_id: &str) -> String {
        format!("{}:version:{notebook_id}:", self.keys.prefix())
    }

    fn version_key(&self, notebook_id: &str, version_id: &str) -> String {
        format!("{}{version_id}", self.version_prefix(notebook_id))
    }
}

fn parse_record(
    notebook_id: &str,
    id: &str,
    fields: &[Option<Vec<u8>>],
    key: &str,
) -> Result<VersionRecord, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    let text = |i: usize| {
        fields
            .get(i)
            .and_then(Option::as_ref)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let created_at_ms = text(0)
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| corrupt("missing created_at".into()))?;
    let kind = text(1)
        .and_then(|k| VersionKind::parse(&k))
        .ok_or_else(|| corrupt("missing or unknown kind".into()))?;
    let author_ids = match text(3) {
        Some(json) => serde_json::from_str(&json).map_err(|e| corrupt(format!("authors: {e}")))?,
        None => Vec::new(),
    };
    Ok(VersionRecord {
        id: id.to_owned(),
        notebook_id: notebook_id.to_owned(),
        created_at_ms,
        kind,
        name: text(2),
        author_ids,
    })
}

#[async_trait]
impl VersionStore for RedisStore {
    async fn insert_version(
        &self,
        version: &VersionRecord,
        state: &[u8],
    ) -> Result<(), StoreError> {
        let nb = &version.notebook_id;
        let authors = serde_json::Value::from(version.author_ids.clone()).to_string();
        let mut invocation = INSERT.prepare_invoke();
        invocation
            .key(self.keys.notebook(nb))
            .key(self.version_list(nb))
            .key(self.version_key(nb, &version.id))
            .arg(&version.id)
            .arg("created_at")
            .arg(version.created_at_ms)
            .arg("kind")
            .arg(version.kind.as_str())
            .arg("authors")
            .arg(authors)
            .arg("state")
            .arg(state);
        if let Some(name) = &version.name {
            invocation.arg("name").arg(name);
        }
        let stored: bool = invocation.invoke_async(&mut self.conn()).await?;
        if stored {
            Ok(())
        } else {
            Err(StoreError::NotFound("notebook"))
        }
    }

    async fn versions(&self, notebook_id: &str) -> Result<Vec<VersionRecord>, StoreError> {
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(self.version_list(notebook_id))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(self.version_key(notebook_id, id))
                .arg(&FIELDS[..]);
        }
        let rows: Vec<Vec<Option<Vec<u8>>>> = pipe.query_async(&mut self.conn()).await?;
        let mut records = Vec::with_capacity(ids.len());
        for (id, fields) in ids.iter().zip(rows).rev() {
            // Listed but gone (a prune between the two reads).
            if fields.iter().all(Option::is_none) {
                continue;
            }
            let key = self.version_key(notebook_id, id);
            records.push(parse_record(notebook_id, id, &fields, &key)?);
        }
        // Newest first; the stable sort keeps the later stored first among equal times.
        records.sort_by_key(|r| std::cmp::Reverse(r.created_at_ms));
        Ok(records)
    }

    async fn version(
        &self,
        notebook_id: &str,
        version_id: &str,
    ) -> Result<Option<(VersionRecord, Vec<u8>)>, StoreError> {
        let key = self.version_key(notebook_id, version_id);
        let hash: HashMap<String, Value> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut self.conn())
            .await?;
        if hash.is_empty() {
            return Ok(None);
        }
        let bytes = |name: &str| -> Option<Vec<u8>> {
            hash.get(name)
                .and_then(|v| redis::from_redis_value::<Vec<u8>>(v.clone()).ok())
        };
        let fields: Vec<Option<Vec<u8>>> = FIELDS.iter().map(|f| bytes(f)).collect();
        let record = parse_record(notebook_id, version_id, &fields, &key)?;
        let state = bytes("state").ok_or_else(|| StoreError::Corrupt {
            key: key.clone(),
            reason: "missing state".into(),
        })?;
        Ok(Some((record, state)))
    }

    async fn prune_versions(
        &self,
        notebook_id: &str,
        drop: &[String],
        authors: &[(String, Vec<String>)],
    ) -> Result<(), StoreError> {
        if drop.is_empty() && authors.is_empty() {
            return Ok(());
        }
        let mut invocation = PRUNE.prepare_invoke();
        invocation
            .key(self.version_list(notebook_id))
            .arg(self.version_prefix(notebook_id))
            .arg(drop.len());
        for id in drop {
            invocation.arg(id);
        }
        for (id, ids) in authors {
            invocation
                .arg(id)
                .arg(serde_json::Value::from(ids.clone()).to_string());
        }
        let _: i64 = invocation.invoke_async(&mut self.conn()).await?;
        Ok(())
    }
}
