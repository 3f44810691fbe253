//! Secrets in Redis: a hash per secret (`sealed`, `updated_at`), a set of names per user and
//! a set of granted notebooks per secret. A grant left behind by a deleted notebook is
//! harmless (notebook ids are never reused) and is not listed.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;

use super::RedisStore;
use crate::store::{SecretInfo, SecretLookup, SecretStore, StoreError};

/// `KEYS[1]` the secret's hash, `KEYS[2]` the notebook's hash, `KEYS[3]` the secret's
/// notebooks; `ARGV[1]` the notebook id. Returns 1 when granted, 0 without the secret, -1
/// without the notebook.
static GRANT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
redis.call('SADD', KEYS[3], ARGV[1])
return 1
",
    )
});

impl RedisStore {
    fn secret_key(&self, user_id: &str, name: &str) -> String {
        format!("{}:secret:{user_id}:{name}", self.keys.prefix())
    }

    fn secret_notebooks_key(&self, user_id: &str, name: &str) -> String {
        format!("{}:secret:{user_id}:{name}:notebooks", self.keys.prefix())
    }

    fn user_secrets_key(&self, user_id: &str) -> String {
        format!("{}:user:{user_id}:secrets", self.keys.prefix())
    }
}

#[async_trait]
impl SecretStore for RedisStore {
    async fn put_secret(
        &self,
        user_id: &str,
        name: &str,
        sealed: &[u8],
        updated_at_ms: i64,
    ) -> Result<(), StoreError> {
        let () = redis::pipe()
            .atomic()
            .hset_multiple(
                self.secret_key(user_id, name),
                &[
                    ("sealed", sealed.to_vec()),
                    ("updated_at", updated_at_ms.to_string().into_bytes()),
                ],
            )
            .ignore()
            .sadd(self.user_secrets_key(user_id), name)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn secrets(&self, user_id: &str) -> Result<Vec<SecretInfo>, StoreError> {
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.user_secrets_key(user_id))
            .query_async(&mut self.conn())
            .await?;
        names.sort();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut updated = redis::pipe();
        let mut granted = redis::pipe();
        for name in &names {
            updated.hget(self.secret_key(user_id, name), "updated_at");
            granted.smembers(self.secret_notebooks_key(user_id, name));
        }
        let updated: Vec<Option<i64>> = updated.query_async(&mut self.conn()).await?;
        let notebooks: Vec<Vec<String>> = granted.query_async(&mut self.conn()).await?;
        let rows: Vec<(Option<i64>, Vec<String>)> = updated.into_iter().zip(notebooks).collect();
        // Which granted notebooks still exist, in one round trip.
        let granted: Vec<&String> = rows.iter().flat_map(|(_, nbs)| nbs).collect();
        let exists: Vec<bool> = if granted.is_empty() {
            Vec::new()
        } else {
            let mut pipe = redis::pipe();
            for notebook in &granted {
                pipe.exists(self.keys.notebook(notebook));
            }
            pipe.query_async(&mut self.conn()).await?
        };
        let mut alive = exists.into_iter();
        let mut out = Vec::new();
        for (name, (updated, notebooks)) in names.into_iter().zip(rows) {
            let mut notebooks: Vec<String> = notebooks
                .into_iter()
                .filter(|_| alive.next().unwrap_or(false))
                .collect();
            // A name whose hash is gone (deleted meanwhile) is not listed.
            let Some(updated_at_ms) = updated else {
                continue;
            };
            notebooks.sort();
            out.push(SecretInfo {
                name,
                updated_at_ms,
                notebooks,
            });
        }
        Ok(out)
    }

    async fn sealed_secret(
        &self,
        user_id: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.secret_key(user_id, name))
            .arg("sealed")
            .query_async(&mut self.conn())
            .await?;
        Ok(sealed)
    }

    async fn delete_secret(&self, user_id: &str, name: &str) -> Result<bool, StoreError> {
        let (deleted,): (u64,) = redis::pipe()
            .atomic()
            .del(self.secret_key(user_id, name))
            .del(self.secret_notebooks_key(user_id, name))
            .ignore()
            .srem(self.user_secrets_key(user_id), name)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(deleted > 0)
    }

    async fn grant_secret(
        &self,
        user_id: &str,
        name: &str,
        notebook_id: &str,
    ) -> Result<(), StoreError> {
        let granted: i64 = GRANT
            .key(self.secret_key(user_id, name))
            .key(self.keys.notebook(notebook_id))
            .key(self.secret_notebooks_key(user_id, name))
            .arg(notebook_id)
            .invoke_async(&mut self.conn())
            .await?;
        match granted {
            1 => Ok(()),
            0 => Err(StoreError::NotFound("secret")),
            _ => Err(StoreError::NotFound("notebook")),
        }
    }

    async fn revoke_secret(
        &self,
        user_id: &str,
        name: &str,
        notebook_id: &str,
    ) -> Result<bool, StoreError> {
        let removed: u64 = redis::cmd("SREM")
            .arg(self.secret_notebooks_key(user_id, name))
            .arg(notebook_id)
            .query_async(&mut self.conn())
            .await?;
        Ok(removed > 0)
    }

    async fn secret_for_notebook(
        &self,
        user_id: &str,
        name: &str,
        notebook_id: &str,
    ) -> Result<SecretLookup, StoreError> {
        let (sealed, granted): (Option<Vec<u8>>, bool) = redis::pipe()
            .atomic()
            .hget(self.secret_key(user_id, name), "sealed")
            .sismember(self.secret_notebooks_key(user_id, name), notebook_id)
            .query_async(&mut self.conn())
            .await?;
        Ok(match (sealed, granted) {
            (None, _) => SecretLookup::Missing,
            (Some(_), false) => SecretLookup::NotGranted,
            (Some(sealed), true) => SecretLookup::Granted(sealed),
        })
    }
}

#[cfg(test)]
impl crate::store::conformance::RawSecrets for RedisStore {
    async fn raw_sealed(&self, user_id: &str, name: &str) -> Option<Vec<u8>> {
        // Every field of the hash, as Redis holds them.
        let raw: Vec<Vec<u8>> = redis::cmd("HVALS")
            .arg(self.secret_key(user_id, name))
            .query_async(&mut self.conn())
            .await
            .ok()?;
        (!raw.is_empty()).then(|| raw.concat())
    }

    async fn overwrite_sealed(&self, user_id: &str, name: &str, bytes: Vec<u8>) {
        let set: Result<u64, _> = redis::cmd("HSET")
            .arg(self.secret_key(user_id, name))
            .arg("sealed")
            .arg(bytes)
            .query_async(&mut self.conn())
            .await;
        assert!(set.is_ok(), "{set:?}");
    }
}
