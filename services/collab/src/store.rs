//! Persistent state behind one trait: users, tokens, sign-in sessions, notebooks, their sharing,
//! comments and activity (last opened, last editor), and each notebook's document.
//!
//! A document is stored as a snapshot (a full yrs v1 update) plus an append-only log of the
//! v1 updates applied since. [`Store::append_updates`] returns only once the updates are
//! durable, and rooms broadcast nothing before that, so a crash never loses an update a
//! client saw. [`Store::compact`] folds the log into a new snapshot.
//!
//! The embedded backend is [`sqlite::SqliteStore`]; the scale-out backend,
//! [`redis::RedisStore`], implements the same traits over one Redis shared by every collab
//! node. `conformance` (tests only) runs the same checks against both.

pub mod accounts;
pub mod activity;
pub mod comments;
#[cfg(test)]
pub(crate) mod conformance;
pub mod redis;
pub mod secrets;
pub mod sqlite;
pub mod versions;

use async_trait::async_trait;
use tandem_protocol::{GeneralAccess, Grant, Role};

pub use accounts::{AccountStore, PendingLogin, SessionRecord};
pub use activity::{Activity, ActivityStore};
pub use comments::CommentStore;
pub use secrets::{SecretInfo, SecretLookup, SecretStore};
pub use versions::{VersionKind, VersionRecord, VersionStore};

/// Errors from a store backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded SQLite database failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Redis failed or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A stored record could not be read back (written by an incompatible version).
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// Where it is.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store could not be opened (missing directory, permissions, wrong schema).
    #[error("cannot open the store at {path}: {reason}")]
    Open {
        /// Where the store lives.
        path: String,
        /// Why it failed.
        reason: String,
    },
    /// A record the operation relies on does not exist (for example a deleted notebook).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A blocking storage task panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(String),
}

/// A signed-up user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Opaque unique id.
    pub id: String,
    /// Email address, unique, stored lowercased.
    pub email: String,
    /// Display name.
    pub name: String,
}

/// A notebook's metadata (its content lives in the document log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotebookRecord {
    /// Unguessable id, also the room and WebSocket path name.
    pub id: String,
    /// Title shown in lists.
    pub title: String,
    /// The owning user's id.
    pub owner_id: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Last content or title change, milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
    /// Who may open it by its link.
    pub general_access: GeneralAccess,
    /// The role of someone who opens the link without a grant.
    pub link_role: Role,
    /// Whether editors may run code in a runtime someone else started ("Editors may run code
    /// in my runtime"; `true` unless the owner turned it off).
    pub editors_may_run: bool,
}

/// What is stored of one document: a snapshot and the updates appended after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredDocument {
    /// A full-state v1 update, if the document was ever compacted or imported.
    pub snapshot: Option<Vec<u8>>,
    /// v1 updates appended since the snapshot, in order.
    pub updates: Vec<Vec<u8>>,
    /// Sequence number of the last update in `updates` (or of the last one folded into the
    /// snapshot when `updates` is empty); pass it to [`Store::compact`].
    pub last_seq: u64,
}

impl StoredDocument {
    /// Its size as stored: the snapshot and every update, in bytes.
    pub fn size(&self) -> u64 {
        self.snapshot
            .iter()
            .chain(self.updates.iter())
            .map(|bytes| bytes.len() as u64)
            .sum()
    }
}

/// The storage engine behind the collab service. Accounts (sessions, sign-in attempts) and
/// comments are in the supertraits; bring them into scope to call their methods.
#[async_trait]
pub trait Store:
    AccountStore + ActivityStore + CommentStore + SecretStore + VersionStore + Send + Sync + 'static
{
    /// Returns the user with this email, creating it (with `name`) if absent.
    async fn upsert_user(&self, email: &str, name: &str) -> Result<User, StoreError>;

    /// Records a personal access token by its SHA-256 hash; the token itself is never stored.
    async fn insert_token(&self, user_id: &str, token_hash: &str) -> Result<(), StoreError>;

    /// The user a token hash belongs to.
    async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>, StoreError>;

    /// Creates a notebook whose document starts from `initial_state` (a full v1 update).
    async fn create_notebook(
        &self,
        record: &NotebookRecord,
        initial_state: &[u8],
    ) -> Result<(), StoreError>;

    /// A notebook's metadata.
    async fn notebook(&self, id: &str) -> Result<Option<NotebookRecord>, StoreError>;

    /// Sets a notebook's title (and its `updated_at`). Returns whether the notebook exists.
    async fn rename_notebook(&self, id: &str, title: &str) -> Result<bool, StoreError>;

    /// The notebooks owned by a user, most recently updated first.
    async fn notebooks_owned_by(&self, user_id: &str) -> Result<Vec<NotebookRecord>, StoreError>;

    /// The notebooks shared with an email address by grant, with the granted role, most
    /// recently updated first.
    async fn notebooks_shared_with(
        &self,
        email: &str,
    ) -> Result<Vec<(NotebookRecord, Role)>, StoreError>;

    /// The people a notebook is shared with.
    async fn grants(&self, id: &str) -> Result<Vec<Grant>, StoreError>;

    /// The role granted to an email address on a notebook, if any.
    async fn grant_for(&self, id: &str, email: &str) -> Result<Option<Role>, StoreError>;

    /// Replaces a notebook's general access, link role, `editors_may_run` and grants in one
    /// transaction. Emails are stored lowercased.
    async fn set_sharing(
        &self,
        id: &str,
        general_access: GeneralAccess,
        link_role: Role,
        editors_may_run: bool,
        grants: &[Grant],
    ) -> Result<(), StoreError>;

    /// Makes `new_owner_id` the owner; the previous owner (`previous_owner_email`) becomes an
    /// editor, and any grant the new owner had is dropped. One transaction.
    async fn transfer_ownership(
        &self,
        id: &str,
        new_owner_id: &str,
        new_owner_email: &str,
        previous_owner_email: &str,
    ) -> Result<(), StoreError>;

    /// Deletes a notebook and its document. Returns whether it existed.
    async fn delete_notebook(&self, id: &str) -> Result<bool, StoreError>;

    /// Loads a notebook's document.
    async fn load_document(&self, id: &str) -> Result<StoredDocument, StoreError>;

    /// Durably appends updates to a notebook's log, in order, and returns the sequence number
    /// of the last one. When this returns `Ok`, the updates survive a crash.
    async fn append_updates(&self, id: &str, updates: &[Vec<u8>]) -> Result<u64, StoreError>;

    /// Replaces the snapshot with `snapshot`, which must contain every update up to and
    /// including `up_to_seq`, and drops those updates from the log. Updates appended after
    /// `up_to_seq` (concurrently with the caller) are kept.
    async fn compact(&self, id: &str, snapshot: &[u8], up_to_seq: u64) -> Result<(), StoreError>;
}
