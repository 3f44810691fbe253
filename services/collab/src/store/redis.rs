//! The scale-out store: everything in one Redis (7.0 or later) that every collab node shares.
//!
//! # Keys
//! Every key starts with `{prefix}:` (`--redis-prefix`, default `tandem`).
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `user:{id}` | hash | `email`, `name`, `created_at` |
//! | `user-email:{email}` | string | the id of the user with this (lowercased) email |
//! | `user:{id}:notebooks` | set | ids of the notebooks the user owns |
//! | `user:{id}:opened` | hash | notebook id → when the user last opened it (ms); entries of deleted notebooks stay, unread |
//! | `user:{id}:sessions` | set | hashes of the user's sessions (expired ones are pruned) |
//! | `token:{hash}` | string | the user id of a personal access token |
//! | `session:{hash}` | hash | `user_id`, `csrf_token`, `created_at`, `expires_at`; expires with it |
//! | `login:{hash}` | string | a pending sign-in (JSON), expires with it, taken with `GETDEL` |
//! | `local-sign-in:{hash}` | string | a running node's local sign-in token; expires unless renewed |
//! | `notebook:{id}` | hash | `title`, `owner_id`, `created_at`, `updated_at`, `general_access`, `link_role`, `editors_may_run` (`1`/`0`; absent: `1`), `last_editor` (a user id; absent until someone edits) |
//! | `notebook:{id}:grants` | hash | email → role |
//! | `email:{email}:shared` | set | ids of the notebooks granted to this email |
//! | `notebook:{id}:threads` | list | comment thread ids, oldest first |
//! | `thread:{notebook}:{id}` | hash | a thread's cell, anchor, author and resolution |
//! | `thread:{notebook}:{id}:comments` | list | its comments (JSON), in order |
//! | `secret:{user}:{name}` | hash | `sealed` (the value sealed under the secrets key), `updated_at` |
//! | `secret:{user}:{name}:notebooks` | set | ids of the notebooks the secret is granted to |
//! | `user:{id}:secrets` | set | names of the user's secrets |
//! | `notebook:{id}:versions` | list | version ids, oldest first |
//! | `version:{notebook}:{id}` | hash | a version's `created_at`, `kind`, `name`, `authors` (JSON) and `state` |
//! | `doc:{id}:snapshot` | hash | `state` (a full v1 update) and `seq`, the last stream entry it covers |
//! | `doc:{id}:updates` | stream | entries `0-{seq}`: `u` a v1 update, `n` the node that wrote it |
//! | `doc:{id}:compacting` | string | the compaction lease: the node folding the stream |
//!
//! Stream entry ids are `0-{seq}` (`XADD … 0-*` numbers them 1, 2, 3…), so a [`Store`] sequence
//! number is the entry id's sequence part and needs no translation.
//!
//! # Consistency and durability
//! Everything that must change together runs as one Lua script (Redis runs a script alone:
//! sharing, ownership transfer, deletion, appends, compaction) or a `MULTI` block (loads).
//! Scripts name some keys they compute themselves, so this needs a single Redis (with
//! replicas if wanted), not Redis Cluster. [`Store::append_updates`] returns when Redis has
//! replied, so updates are exactly as durable as Redis makes writes: with `appendonly yes` and
//! `appendfsync always` (as `infra/` configures it) a reply comes after the AOF is fsynced.
//!
//! # Compaction
//! [`Store::compact`] takes a lease (`SET doc:{id}:compacting NX PX`) so that of the nodes
//! holding a notebook only one writes a snapshot at a time; the others skip. The script then
//! stores the snapshot with the seq it covers and trims the stream up to that seq
//! (`XTRIM MINID 0-{seq+1}`), both at once: an entry appended meanwhile has a higher seq and
//! stays, and a snapshot never goes backwards.

mod accounts;
mod activity;
mod comments;
mod documents;
mod keys;
mod scripts;
mod secrets;
mod versions;

pub use documents::{Entry, parse_entries};
pub use keys::{Keys, entry_id, entry_seq};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ::redis::AsyncCommands;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use async_trait::async_trait;
use tandem_protocol::{GeneralAccess, Grant, Role};

use super::{NotebookRecord, Store, StoreError, StoredDocument, User};
use crate::ids;

/// How long one command may take. Long enough for a script that loads or compacts a large
/// notebook on a busy Redis; short enough that a dead connection is noticed and replaced.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a compaction lease lasts if its holder dies before releasing it.
const COMPACTION_LEASE: Duration = Duration::from_secs(30);

/// Opens a connection manager (reconnects by itself) to `url`.
pub async fn connect(
    url: &str,
    config: ConnectionManagerConfig,
) -> Result<(::redis::Client, ConnectionManager), StoreError> {
    let open_error = |e: ::redis::RedisError| StoreError::Open {
        path: redact(url),
        reason: e.to_string(),
    };
    let client = ::redis::Client::open(url).map_err(open_error)?;
    let conn = client
        .get_connection_manager_with_config(config)
        .await
        .map_err(open_error)?;
    Ok((client, conn))
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl StoreError {
    /// Whether the store could not be reached (Redis down, restarting, loading its AOF, or
    /// too slow to answer), as opposed to refusing an operation: the request may succeed once
    /// it is back, so clients are told to retry (HTTP 503, WebSocket close reason).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Redis(err) => {
                err.is_io_error()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_timeout()
                    || matches!(
                        err.kind(),
                        ::redis::ErrorKind::Server(::redis::ServerErrorKind::BusyLoading)
                            | ::redis::ErrorKind::Server(::redis::ServerErrorKind::TryAgain)
                    )
            }
            _ => false,
        }
    }
}

/// The Redis-backed [`Store`].
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    client: ::redis::Client,
    keys: Keys,
    node: Arc<str>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix())
            .field("node", &self.node)
            .finish()
    }
}

impl RedisStore {
    /// Connects to the Redis at `url`, keeping every key under `prefix`. Each store is one
    /// node: the updates it appends are tagged with a random node id.
    pub async fn open(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(3);
        let (client, conn) = connect(url, config).await?;
        let store = Self {
            conn,
            client,
            keys: Keys::new(prefix),
            node: ids::random_id().into(),
        };
        store.warn_if_not_durable().await;
        Ok(store)
    }

    /// This node's id, written with every update it appends.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Where records live.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The client the store connected with (to open more connections to the same Redis).
    pub fn client(&self) -> &::redis::Client {
        &self.client
    }

    /// A handle on the store's shared, multiplexed connection.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Logs a warning when Redis would lose acknowledged writes on a crash (no AOF, or an
    /// AOF not fsynced on every write). Managed Redis often refuses `CONFIG`; that is fine.
    async fn warn_if_not_durable(&self) {
        let mut conn = self.conn.clone();
        let config: Result<HashMap<String, String>, _> = ::redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async(&mut conn)
            .await;
        if let Ok(config) = config {
            let aof = config.get("appendonly").map(String::as_str);
            let fsync = config.get("appendfsync").map(String::as_str);
            if aof != Some("yes") || fsync != Some("always") {
                tracing::warn!(
                    appendonly = ?aof,
                    appendfsync = ?fsync,
                    "Redis may lose acknowledged updates on a crash: set appendonly yes and \
                     appendfsync always"
                );
            }
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Users by id, for filling in comment authors; missing ones are absent from the map.
    async fn users(
        &self,
        ids: impl IntoIterator<Item = &str>,
    ) -> Result<HashMap<String, User>, StoreError> {
        let ids: Vec<&str> = {
            let mut ids: Vec<&str> = ids.into_iter().collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = ::redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(self.keys.user(id))
                .arg("email")
                .arg("name");
        }
        let rows: Vec<(Option<String>, Option<String>)> =
            pipe.query_async(&mut self.conn()).await?;
        Ok(ids
            .into_iter()
            .zip(rows)
            .filter_map(|(id, row)| match row {
                (Some(email), Some(name)) => Some((
                    id.to_owned(),
                    User {
                        id: id.to_owned(),
                        email,
                        name,
                    },
                )),
                _ => None,
            })
            .collect())
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.users([id]).await?.remove(id))
    }

    /// The notebooks with these ids that still exist, most recently updated first.
    async fn notebooks(&self, ids: &[String]) -> Result<Vec<NotebookRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.keys.notebook(id));
        }
        let rows: Vec<HashMap<String, String>> = pipe.query_async(&mut self.conn()).await?;
        let mut out = Vec::new();
        for (id, row) in ids.iter().zip(rows) {
            if let Some(record) = notebook_from_hash(&self.keys.notebook(id), id, &row)? {
                out.push(record);
            }
        }
        out.sort_by(|a, b| {
            b.updated_at_ms
                .cmp(&a.updated_at_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }
}

/// A notebook record from its hash; `None` when the hash is empty (no such notebook).
fn notebook_from_hash(
    key: &str,
    id: &str,
    row: &HashMap<String, String>,
) -> Result<Option<NotebookRecord>, StoreError> {
    if row.is_empty() {
        return Ok(None);
    }
    let field = |name: &str| {
        row.get(name).ok_or_else(|| StoreError::Corrupt {
            key: key.to_owned(),
            reason: format!("missing field {name}"),
        })
    };
    let number = |name: &str| -> Result<i64, StoreError> {
        field(name)?.parse().map_err(|_| StoreError::Corrupt {
            key: key.to_owned(),
            reason: format!("{name} is not a number"),
        })
    };
    Ok(Some(NotebookRecord {
        id: id.to_owned(),
        title: field("title")?.clone(),
        owner_id: field("owner_id")?.clone(),
        created_at_ms: number("created_at")?,
        updated_at_ms: number("updated_at")?,
        // A value this code never writes reads as the most restrictive one.
        general_access: row
            .get("general_access")
            .and_then(|v| GeneralAccess::parse(v))
            .unwrap_or(GeneralAccess::Restricted),
        link_role: row
            .get("link_role")
            .and_then(|v| Role::parse(v))
            .unwrap_or(Role::Viewer),
        // Notebooks written before the setting existed let editors run, as they did then.
        editors_may_run: row.get("editors_may_run").is_none_or(|v| v != "0"),
    }))
}

/// A boolean field as stored in a hash.
fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

fn normalize(email: &str) -> String {
    email.trim().to_lowercase()
}

#[async_trait]
impl Store for RedisStore {
    async fn upsert_user(&self, email: &str, name: &str) -> Result<User, StoreError> {
        let email = normalize(email);
        let (id, email, name): (String, String, String) = scripts::UPSERT_USER
            .key(self.keys.user_email(&email))
            .arg(self.keys.prefix())
            .arg(ids::random_id())
            .arg(&email)
            .arg(name)
            .arg(ids::now_ms())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(User { id, email, name })
    }

    async fn insert_token(&self, user_id: &str, token_hash: &str) -> Result<(), StoreError> {
        let () = self
            .conn()
            .set(self.keys.token(token_hash), user_id)
            .await?;
        Ok(())
    }

    async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        let user_id: Option<String> = self.conn().get(self.keys.token(token_hash)).await?;
        match user_id {
            Some(id) => self.user(&id).await,
            None => Ok(None),
        }
    }

    async fn create_notebook(
        &self,
        record: &NotebookRecord,
        initial_state: &[u8],
    ) -> Result<(), StoreError> {
        let () = ::redis::pipe()
            .atomic()
            .hset_multiple(
                self.keys.notebook(&record.id),
                &[
                    ("title", record.title.clone()),
                    ("owner_id", record.owner_id.clone()),
                    ("created_at", record.created_at_ms.to_string()),
                    ("updated_at", record.updated_at_ms.to_string()),
                    ("general_access", record.general_access.as_str().to_owned()),
                    ("link_role", record.link_role.as_str().to_owned()),
                    ("editors_may_run", flag(record.editors_may_run).to_owned()),
                ],
            )
            .ignore()
            .sadd(self.keys.user_notebooks(&record.owner_id), &record.id)
            .ignore()
            .cmd("HSET")
            .arg(self.keys.snapshot(&record.id))
            .arg("state")
            .arg(initial_state)
            .arg("seq")
            .arg(0)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn notebook(&self, id: &str) -> Result<Option<NotebookRecord>, StoreError> {
        let key = self.keys.notebook(id);
        let row: HashMap<String, String> = self.conn().hgetall(&key).await?;
        notebook_from_hash(&key, id, &row)
    }

    async fn rename_notebook(&self, id: &str, title: &str) -> Result<bool, StoreError> {
        let key = self.keys.notebook(id);
        let done: bool = scripts::IF_EXISTS
            .key(&key)
            .arg("HSET")
            .arg(&key)
            .arg("title")
            .arg(title)
            .arg("updated_at")
            .arg(ids::now_ms())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(done)
    }

    async fn notebooks_owned_by(&self, user_id: &str) -> Result<Vec<NotebookRecord>, StoreError> {
        let ids: Vec<String> = self
            .conn()
            .smembers(self.keys.user_notebooks(user_id))
            .await?;
        let mut records = self.notebooks(&ids).await?;
        records.retain(|r| r.owner_id == user_id);
        Ok(records)
    }

    async fn notebooks_shared_with(
        &self,
        email: &str,
    ) -> Result<Vec<(NotebookRecord, Role)>, StoreError> {
        let email = normalize(email);
        let ids: Vec<String> = self.conn().smembers(self.keys.shared(&email)).await?;
        let records = self.notebooks(&ids).await?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for record in &records {
            pipe.hget(self.keys.grants(&record.id), &email);
        }
        let roles: Vec<Option<String>> = pipe.query_async(&mut self.conn()).await?;
        Ok(records
            .into_iter()
            .zip(roles)
            .filter_map(|(record, role)| Some((record, Role::parse(role.as_deref()?)?)))
            .collect())
    }

    async fn grants(&self, id: &str) -> Result<Vec<Grant>, StoreError> {
        let rows: HashMap<String, String> = self.conn().hgetall(self.keys.grants(id)).await?;
        let mut grants: Vec<Grant> = rows
            .into_iter()
            .filter_map(|(email, role)| {
                Some(Grant {
                    email,
                    role: Role::parse(&role)?,
                })
            })
            .collect();
        grants.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(grants)
    }

    async fn grant_for(&self, id: &str, email: &str) -> Result<Option<Role>, StoreError> {
        let role: Option<String> = self
            .conn()
            .hget(self.keys.grants(id), normalize(email))
            .await?;
        Ok(role.as_deref().and_then(Role::parse))
    }

    async fn set_sharing(
        &self,
        id: &str,
        general_access: GeneralAccess,
        link_role: Role,
        editors_may_run: bool,
        grants: &[Grant],
    ) -> Result<(), StoreError> {
        let mut invocation = scripts::SET_SHARING.prepare_invoke();
        invocation
            .arg(self.keys.prefix())
            .arg(id)
            .arg(general_access.as_str())
            .arg(link_role.as_str())
            .arg(flag(editors_may_run));
        for grant in grants {
            invocation
                .arg(normalize(&grant.email))
                .arg(grant.role.as_str());
        }
        let found: bool = invocation.invoke_async(&mut self.conn()).await?;
        if found {
            Ok(())
        } else {
            Err(StoreError::NotFound("notebook"))
        }
    }

    async fn transfer_ownership(
        &self,
        id: &str,
        new_owner_id: &str,
        new_owner_email: &str,
        previous_owner_email: &str,
    ) -> Result<(), StoreError> {
        let found: bool = scripts::TRANSFER_OWNERSHIP
            .arg(self.keys.prefix())
            .arg(id)
            .arg(new_owner_id)
            .arg(normalize(new_owner_email))
            .arg(normalize(previous_owner_email))
            .arg(Role::Editor.as_str())
            .invoke_async(&mut self.conn())
            .await?;
        if found {
            Ok(())
        } else {
            Err(StoreError::NotFound("notebook"))
        }
    }

    async fn delete_notebook(&self, id: &str) -> Result<bool, StoreError> {
        let existed: bool = scripts::DELETE_NOTEBOOK
            .arg(self.keys.prefix())
            .arg(id)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(existed)
    }

    async fn load_document(&self, id: &str) -> Result<StoredDocument, StoreError> {
        self.load_doc(id).await
    }

    async fn append_updates(&self, id: &str, updates: &[Vec<u8>]) -> Result<u64, StoreError> {
        self.append(id, updates).await
    }

    async fn compact(&self, id: &str, snapshot: &[u8], up_to_seq: u64) -> Result<(), StoreError> {
        self.fold(id, snapshot, up_to_seq).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A store under a fresh prefix on the test Redis (`TANDEM_TEST_REDIS_URL`, default
    /// `redis://127.0.0.1:6379`); the guard deletes the prefix's keys when dropped.
    pub(crate) async fn store() -> (RedisStore, Cleanup) {
        let url = std::env::var("TANDEM_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("tandem-unit-{}", ids::random_id());
        let store = RedisStore::open(&url, &prefix)
            .await
            .unwrap_or_else(|e| panic!("the store tests need Redis at {url}: {e}"));
        let cleanup = Cleanup {
            client: store.client.clone(),
            prefix,
        };
        (store, cleanup)
    }

    /// Deletes every key under a prefix when dropped.
    pub(crate) struct Cleanup {
        client: ::redis::Client,
        prefix: String,
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            let Ok(mut conn) = self.client.get_connection() else {
                return;
            };
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg(format!("{}:*", self.prefix))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = ::redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        }
    }

    crate::store::conformance::suite!(super::store());

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable_not_an_internal_error() {
        assert!(StoreError::Redis(refused()).is_unavailable());
        assert!(!StoreError::NotFound("notebook").is_unavailable());
        // A closed port: what a node sees while Redis restarts.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let err = client.get_multiplexed_async_connection().await.unwrap_err();
        assert!(StoreError::Redis(err).is_unavailable());
        let response = crate::error::ApiError::from(StoreError::Redis(refused()));
        assert_eq!(response.status.as_u16(), 503);
        assert_eq!(response.code, "store_unavailable");
    }

    fn refused() -> ::redis::RedisError {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into()
    }

    #[test]
    fn entry_ids_are_sequence_numbers() {
        assert_eq!(entry_id(42), "0-42");
        assert_eq!(entry_seq("0-42"), Some(42));
        assert_eq!(entry_seq("bad"), None);
    }
}
