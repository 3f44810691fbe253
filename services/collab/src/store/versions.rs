//! Version history: saved states of a notebook's document, taken automatically by its room
//! after edits settle or named by people, each with who changed the notebook since the version
//! before it. `crate::versions` decides when to take them and which automatic ones to thin
//! out; the store keeps them, beside the notebook (deleted with it), never in its document.

use async_trait::async_trait;

use super::StoreError;

/// Saved versions of notebooks. Every method takes the notebook id; a version of another
/// notebook is treated as absent.
#[async_trait]
pub trait VersionStore: Send + Sync {
    /// Stores a version with its state (a full yrs v1 update of the document). Fails with
    /// [`StoreError::NotFound`] if the notebook is gone.
    async fn insert_version(&self, version: &VersionRecord, state: &[u8])
    -> Result<(), StoreError>;

    /// A notebook's versions without their states, newest first (by `created_at_ms`, then
    /// the later stored first).
    async fn versions(&self, notebook_id: &str) -> Result<Vec<VersionRecord>, StoreError>;

    /// One version and its state.
    async fn version(
        &self,
        notebook_id: &str,
        version_id: &str,
    ) -> Result<Option<(VersionRecord, Vec<u8>)>, StoreError>;

    /// Thins a notebook's history in one step: deletes the versions `drop` (absent ones are
    /// fine) and replaces the author lists of the versions in `authors` (those that now cover
    /// the dropped versions' changes).
    async fn prune_versions(
        &self,
        notebook_id: &str,
        drop: &[String],
        authors: &[(String, Vec<String>)],
    ) -> Result<(), StoreError>;
}

/// How a version came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionKind {
    /// Taken by the room after edits settled (or when it unloaded); thinned out over time.
    Auto,
    /// Named by someone (or made before a restore); kept until the notebook is deleted.
    Named,
}

impl VersionKind {
    /// The stored and JSON name: `auto` or `named`.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionKind::Auto => "auto",
            VersionKind::Named => "named",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<VersionKind> {
        match name {
            "auto" => Some(VersionKind::Auto),
            "named" => Some(VersionKind::Named),
            _ => None,
        }
    }
}

/// A stored version, without its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// Unguessable id.
    pub id: String,
    /// The notebook it is a version of.
    pub notebook_id: String,
    /// When it was taken, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Automatic or named.
    pub kind: VersionKind,
    /// The name people gave it (named versions only).
    pub name: Option<String>,
    /// Ids of the signed-in people who changed the notebook since the version before it, in
    /// the order they first did.
    pub author_ids: Vec<String>,
}
