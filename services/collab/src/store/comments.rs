//! Comment threads on a notebook's cells.

use async_trait::async_trait;

/// Comment threads, stored beside the notebook (never in its document, so an `.ipynb`
/// export carries none unless asked).
#[async_trait]
pub trait CommentStore: Send + Sync {}
