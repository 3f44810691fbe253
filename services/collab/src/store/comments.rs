//! Comment threads on a notebook's cells.
//!
//! A thread belongs to one cell (by cell id) and optionally to a range of its source. The range
//! is kept as two encoded yrs sticky indexes, which follow the text through concurrent edits,
//! plus the offsets and text it had when the thread was opened, to find it again when the
//! sticky indexes no longer resolve (the cell was moved, which re-creates its source). The
//! store treats all of it as opaque data; `api::comments` creates and resolves it.

use async_trait::async_trait;

use super::{StoreError, User};

/// Comment threads, stored beside the notebook (never in its document, so an `.ipynb`
/// export carries none unless asked). Every method takes the notebook id, and a thread or
/// comment of another notebook is treated as absent.
#[async_trait]
pub trait CommentStore: Send + Sync {
    /// A notebook's threads with their comments, oldest thread first, comments in order.
    async fn threads(&self, notebook_id: &str) -> Result<Vec<ThreadRecord>, StoreError>;

    /// One thread with its comments.
    async fn thread(
        &self,
        notebook_id: &str,
        thread_id: &str,
    ) -> Result<Option<ThreadRecord>, StoreError>;

    /// Stores a new thread and its comments (the first is the thread's opening text).
    /// Authors are stored by id only. Fails with [`StoreError::NotFound`] if the notebook
    /// is gone.
    async fn create_thread(&self, thread: &ThreadRecord) -> Result<(), StoreError>;

    /// Appends a comment to a thread. Returns whether the thread exists.
    async fn add_comment(
        &self,
        notebook_id: &str,
        thread_id: &str,
        comment: &CommentRecord,
    ) -> Result<bool, StoreError>;

    /// Marks a thread resolved (by whom, when) or, with `None`, open again. Returns whether
    /// the thread exists.
    async fn set_resolved(
        &self,
        notebook_id: &str,
        thread_id: &str,
        resolved: Option<(&str, i64)>,
    ) -> Result<bool, StoreError>;

    /// Replaces a thread's anchor (after it was found again in a re-created cell source).
    /// Returns whether the thread exists.
    async fn set_anchor(
        &self,
        notebook_id: &str,
        thread_id: &str,
        anchor: &Anchor,
    ) -> Result<bool, StoreError>;

    /// Deletes a thread and all its comments. Returns whether it existed.
    async fn delete_thread(&self, notebook_id: &str, thread_id: &str) -> Result<bool, StoreError>;

    /// Deletes one comment of a thread. Returns whether it existed.
    async fn delete_comment(
        &self,
        notebook_id: &str,
        thread_id: &str,
        comment_id: &str,
    ) -> Result<bool, StoreError>;
}

/// A stored thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRecord {
    /// Unguessable id.
    pub id: String,
    /// The notebook it belongs to.
    pub notebook_id: String,
    /// The cell it is about.
    pub cell_id: String,
    /// The range of the cell's source it is about; `None` for the whole cell.
    pub anchor: Option<Anchor>,
    /// Who opened it. Only the id is stored; reads fill in the rest from the users table
    /// (empty strings for a user who no longer exists).
    pub author: User,
    /// When it was opened, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Who resolved it and when (milliseconds since the Unix epoch); `None` while open.
    pub resolved: Option<(User, i64)>,
    /// Its comments in order; the first is the opening text.
    pub comments: Vec<CommentRecord>,
}

/// Where a thread's range is in its cell's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The yrs `StickyIndex` (v1 encoding) of the range's start, associated with the
    /// character after it; empty when the source was not a `Y.Text`.
    pub start: Vec<u8>,
    /// The sticky index of the range's end, associated with the character before it; empty
    /// when the source was not a `Y.Text`.
    pub end: Vec<u8>,
    /// The start when the anchor was made, in UTF-16 code units.
    pub from: u32,
    /// The end when the anchor was made, in UTF-16 code units.
    pub to: u32,
    /// The text of the range when the anchor was made.
    pub quote: String,
}

/// A stored comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentRecord {
    /// Unguessable id.
    pub id: String,
    /// Who wrote it (see [`ThreadRecord::author`]).
    pub author: User,
    /// The text.
    pub text: String,
    /// When it was written, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}
