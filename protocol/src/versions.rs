//! Version history: automatic and named versions of a notebook, what changed between them, and
//! restoring one.
//!
//! Routes (all under `/api/notebooks/{id}`):
//!
//! - `GET versions` (viewer and up): every version, newest first, as [`Version`]s.
//! - `POST versions` (editor and up): [`NameVersion`] → 201 and the [`Version`] holding the
//!   notebook as it is now.
//! - `GET versions/{version_id}` (viewer and up): the version as an `.ipynb` (nbformat 4.5
//!   JSON, as `GET …/ipynb` exports the live notebook).
//! - `GET versions/{version_id}/diff[?against={other_id}]` (viewer and up): a [`VersionDiff`]
//!   from the version to the notebook now, or to another version.
//! - `POST versions/{version_id}/restore` (editor and up): turns the notebook back into the
//!   version as one ordinary edit, so everyone connected stays connected and sees it arrive;
//!   the state before is saved first as a named version (restore that one to undo). Answers a
//!   [`Restored`]. Outputs are restored with the cells; the kernel's state is not touched.
//!
//! Errors: `unknown_version` (404) for a version not of this notebook, `invalid_name` (400) for
//! an empty or too long name.
//!
//! Each version lists its `authors`: the signed-in people who changed the notebook since the
//! version before it. Automatic versions are thinned as they age; named ones stay.

use serde::{Deserialize, Serialize};

/// Longest version name accepted, in characters (Unicode scalar values).
pub const MAX_VERSION_NAME_CHARS: usize = 200;

/// `POST /api/notebooks/{id}/versions`: names the notebook's current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameVersion {
    /// The name (trimmed; 1 to [`MAX_VERSION_NAME_CHARS`] characters).
    pub name: String,
}

/// Someone credited in a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionAuthor {
    /// The user id.
    pub id: String,
    /// Their display name (empty for a user who no longer exists).
    pub name: String,
}

/// One version of a notebook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Its id.
    pub id: String,
    /// When it was taken (RFC 3339, UTC).
    pub created_at: String,
    /// `auto` (taken when edits settled) or `named`.
    pub kind: String,
    /// The name people gave it; `null` for automatic versions.
    pub name: Option<String>,
    /// Who changed the notebook since the version before it, in the order they first did.
    pub authors: Vec<VersionAuthor>,
}

/// `GET /api/notebooks/{id}/versions/{version_id}/diff`: how the notebook changed from the
/// version (`from`) to `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionDiff {
    /// The version compared from.
    pub from: Version,
    /// The version compared to; `null` for the notebook as it is now.
    pub to: Option<Version>,
    /// Every cell of both, in the later state's order, each removed cell after the cell it
    /// followed.
    pub cells: Vec<CellChange>,
}

/// How one cell differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellChange {
    /// The cell id.
    pub id: String,
    /// `added`, `removed`, `changed`, `moved` (same content, another place) or `unchanged`.
    pub change: String,
    /// The cell's type (in the later state, for removed cells in the earlier one).
    pub cell_type: String,
    /// Which parts changed (`source`, `outputs`, `metadata`, `cell_type`, `execution_count`,
    /// `attachments`); empty unless `change` is `changed`.
    pub fields: Vec<String>,
    /// The source before; `null` for added cells.
    pub old_source: Option<String>,
    /// The source after; `null` for removed cells.
    pub new_source: Option<String>,
    /// The outputs before, when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_outputs: Option<Vec<serde_json::Value>>,
    /// The outputs after, when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_outputs: Option<Vec<serde_json::Value>>,
}

/// `POST /api/notebooks/{id}/versions/{version_id}/restore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// The version restored.
    pub restored: Version,
    /// The named version saved just before, holding what the restore replaced.
    pub before_restore: Version,
    /// Cells inserted, deleted and edited in place by the restore.
    pub inserted: u32,
    /// Cells deleted.
    pub deleted: u32,
    /// Cells edited in place.
    pub modified: u32,
}
