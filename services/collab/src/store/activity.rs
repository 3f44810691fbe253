//! What each person did with notebooks, for the home page: when they last opened each one,
//! and who last changed each one.
//!
//! Both are hints for sorting and display, not access decisions: they are written on the side
//! (a failed write is logged, never an error for the request or connection that caused it),
//! and they go with their notebook when it is deleted.

use std::collections::HashMap;

use async_trait::async_trait;

use super::StoreError;

/// One notebook's activity as one person sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// When this person last opened it, milliseconds since the Unix epoch.
    pub opened_at_ms: Option<i64>,
    /// The id of the last signed-in person who changed its content or title.
    pub last_editor_id: Option<String>,
}

/// Per-person "last opened" and per-notebook "last edited by".
#[async_trait]
pub trait ActivityStore: Send + Sync {
    /// Notes that `user_id` opened the notebook at `at_ms`. Nothing happens for a notebook
    /// that does not exist.
    async fn note_opened(
        &self,
        user_id: &str,
        notebook_id: &str,
        at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Notes that `user_id` is the last person who changed the notebook. Nothing happens for
    /// a notebook that does not exist.
    async fn note_edited(&self, notebook_id: &str, user_id: &str) -> Result<(), StoreError>;

    /// The activity of each of `notebook_ids` as `user_id` sees it; notebooks with none are
    /// left out.
    async fn activity(
        &self,
        user_id: &str,
        notebook_ids: &[String],
    ) -> Result<HashMap<String, Activity>, StoreError>;
}
