//! Comment threads in SQLite.

use async_trait::async_trait;

use super::SqliteStore;
use crate::store::CommentStore;

#[async_trait]
impl CommentStore for SqliteStore {}
