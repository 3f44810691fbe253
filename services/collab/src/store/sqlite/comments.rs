//! Comment threads in SQLite: one row per thread (with its anchor) and one per comment, both
//! deleted with their notebook.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::store::comments::{Anchor, CommentRecord, ThreadRecord};
use crate::store::{CommentStore, StoreError, User};

/// The comment tables, created by `migrate`. Authors are not foreign keys, so a user row can
/// go without taking their comments along; reads show such an author with an empty name.
pub(super) const COMMENTS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS comment_threads (
    id TEXT PRIMARY KEY,
    notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
    cell_id TEXT NOT NULL,
    anchor_start BLOB,
    anchor_end BLOB,
    anchor_from INTEGER,
    anchor_to INTEGER,
    anchor_quote TEXT,
    author_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    resolved_by TEXT,
    resolved_at INTEGER
);
CREATE INDEX IF NOT EXISTS comment_threads_notebook ON comment_threads(notebook_id, created_at);
CREATE TABLE IF NOT EXISTS comments (
    id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES comment_threads(id) ON DELETE CASCADE,
    notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
    author_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_thread ON comments(thread_id, created_at);
CREATE INDEX IF NOT EXISTS comments_notebook ON comments(notebook_id);
";

/// The thread columns [`thread_from_row`] reads, in order (`t` is the thread, `a` its author,
/// `r` who resolved it).
const THREAD_COLUMNS: &str = "t.id, t.notebook_id, t.cell_id, t.anchor_start, t.anchor_end, \
     t.anchor_from, t.anchor_to, t.anchor_quote, t.author_id, a.email, a.name, t.created_at, \
     t.resolved_by, r.email, r.name, t.resolved_at";

const THREAD_JOINS: &str = "comment_threads t LEFT JOIN users a ON a.id = t.author_id \
     LEFT JOIN users r ON r.id = t.resolved_by";

#[async_trait]
impl CommentStore for SqliteStore {
    async fn threads(&self, notebook_id: &str) -> Result<Vec<ThreadRecord>, StoreError> {
        let notebook_id = notebook_id.to_owned();
        self.read(move |conn| {
            let tx = super::write_tx(conn)?;
            let mut threads = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {THREAD_COLUMNS} FROM {THREAD_JOINS} WHERE t.notebook_id = ?1 \
                     ORDER BY t.created_at, t.rowid"
                ))?;
                let rows = stmt.query_map([&notebook_id], thread_from_row)?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            let mut comments = comments_where(&tx, "c.notebook_id = ?1", &notebook_id)?;
            for thread in &mut threads {
                thread.comments = comments.remove(&thread.id).unwrap_or_default();
            }
            tx.commit()?;
            Ok(threads)
        })
        .await
    }

    async fn thread(
        &self,
        notebook_id: &str,
        thread_id: &str,
    ) -> Result<Option<ThreadRecord>, StoreError> {
        let (notebook_id, thread_id) = (notebook_id.to_owned(), thread_id.to_owned());
        self.read(move |conn| {
            let tx = super::write_tx(conn)?;
            let thread = tx
                .query_row(
                    &format!(
                        "SELECT {THREAD_COLUMNS} FROM {THREAD_JOINS} \
                         WHERE t.notebook_id = ?1 AND t.id = ?2"
                    ),
                    params![notebook_id, thread_id],
                    thread_from_row,
                )
                .optional()?;
            let thread = match thread {
                Some(mut thread) => {
                    let mut comments = comments_where(&tx, "c.thread_id = ?1", &thread_id)?;
                    thread.comments = comments.remove(&thread_id).unwrap_or_default();
                    Some(thread)
                }
                None => None,
            };
            tx.commit()?;
            Ok(thread)
        })
        .await
    }

    async fn create_thread(&self, thread: &ThreadRecord) -> Result<(), StoreError> {
        let thread = thread.clone();
        self.write(move |conn| {
            let tx = super::write_tx(conn)?;
            let exists = tx
                .query_row(
                    "SELECT 1 FROM notebooks WHERE id = ?1",
                    [&thread.notebook_id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound("notebook"));
            }
            let anchor = thread.anchor.as_ref();
            tx.execute(
                "INSERT INTO comment_threads (id, notebook_id, cell_id, anchor_start, anchor_end, \
                 anchor_from, anchor_to, anchor_quote, author_id, created_at, resolved_by, \
                 resolved_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    thread.id,
                    thread.notebook_id,
                    thread.cell_id,
                    anchor.map(|a| &a.start),
                    anchor.map(|a| &a.end),
                    anchor.map(|a| a.from),
                    anchor.map(|a| a.to),
                    anchor.map(|a| &a.quote),
                    thread.author.id,
                    thread.created_at_ms,
                    thread.resolved.as_ref().map(|(user, _)| &user.id),
                    thread.resolved.as_ref().map(|(_, at)| at),
                ],
            )?;
            for comment in &thread.comments {
                insert_comment(&tx, &thread.notebook_id, &thread.id, comment)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn add_comment(
        &self,
        notebook_id: &str,
        thread_id: &str,
        comment: &CommentRecord,
    ) -> Result<bool, StoreError> {
        let (notebook_id, thread_id) = (notebook_id.to_owned(), thread_id.to_owned());
        let comment = comment.clone();
        self.write(move |conn| {
            let tx = super::write_tx(conn)?;
            if !thread_exists(&tx, &notebook_id, &thread_id)? {
                return Ok(false);
            }
            insert_comment(&tx, &notebook_id, &thread_id, &comment)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn set_resolved(
        &self,
        notebook_id: &str,
        thread_id: &str,
        resolved: Option<(&str, i64)>,
    ) -> Result<bool, StoreError> {
        let (notebook_id, thread_id) = (notebook_id.to_owned(), thread_id.to_owned());
        let resolved = resolved.map(|(by, at)| (by.to_owned(), at));
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE comment_threads SET resolved_by = ?3, resolved_at = ?4 \
                 WHERE notebook_id = ?1 AND id = ?2",
                params![
                    notebook_id,
                    thread_id,
                    resolved.as_ref().map(|(by, _)| by),
                    resolved.as_ref().map(|(_, at)| at),
                ],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn set_anchor(
        &self,
        notebook_id: &str,
        thread_id: &str,
        anchor: &Anchor,
    ) -> Result<bool, StoreError> {
        let (notebook_id, thread_id) = (notebook_id.to_owned(), thread_id.to_owned());
        let anchor = anchor.clone();
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE comment_threads SET anchor_start = ?3, anchor_end = ?4, \
                 anchor_from = ?5, anchor_to = ?6, anchor_quote = ?7 \
                 WHERE notebook_id = ?1 AND id = ?2",
                params![
                    notebook_id,
                    thread_id,
                    anchor.start,
                    anchor.end,
                    anchor.from,
                    anchor.to,
                    anchor.quote,
                ],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_thread(&self, notebook_id: &str, thread_id: &str) -> Result<bool, StoreError> {
        let (notebook_id, thread_id) = (notebook_id.to_owned(), thread_id.to_owned());
        self.write(move |conn| {
            // The comments go by the foreign key's cascade.
            let n = conn.execute(
                "DELETE FROM comment_threads WHERE notebook_id = ?1 AND id = ?2",
                params![notebook_id, thread_id],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_comment(
        &self,
        notebook_id: &str,
        thread_id: &str,
        comment_id: &str,
    ) -> Result<bool, StoreError> {
        let (notebook_id, thread_id, comment_id) = (
            notebook_id.to_owned(),
            thread_id.to_owned(),
            comment_id.to_owned(),
        );
        self.write(move |conn| {
            let n = conn.execute(
                "DELETE FROM comments WHERE notebook_id = ?1 AND thread_id = ?2 AND id = ?3",
                params![notebook_id, thread_id, comment_id],
            )?;
            Ok(n > 0)
        })
        .await
    }
}

fn thread_exists(conn: &Connection, notebook_id: &str, thread_id: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM comment_threads WHERE notebook_id = ?1 AND id = ?2",
            params![notebook_id, thread_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn insert_comment(
    conn: &Connection,
    notebook_id: &str,
    thread_id: &str,
    comment: &CommentRecord,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO comments (id, thread_id, notebook_id, author_id, text, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            comment.id,
            thread_id,
            notebook_id,
            comment.author.id,
            comment.text,
            comment.created_at_ms
        ],
    )?;
    Ok(())
}

/// The comments matching `filter` (on `c`, with one parameter), grouped by thread, in order.
fn comments_where(
    conn: &Connection,
    filter: &str,
    value: &str,
) -> rusqlite::Result<HashMap<String, Vec<CommentRecord>>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT c.thread_id, c.id, c.author_id, u.email, u.name, c.text, c.created_at \
         FROM comments c LEFT JOIN users u ON u.id = c.author_id WHERE {filter} \
         ORDER BY c.created_at, c.rowid"
    ))?;
    let rows = stmt.query_map([value], |row| {
        let thread_id: String = row.get(0)?;
        let comment = CommentRecord {
            id: row.get(1)?,
            author: user_at(row, 2)?,
            text: row.get(5)?,
            created_at_ms: row.get(6)?,
        };
        Ok((thread_id, comment))
    })?;
    let mut by_thread: HashMap<String, Vec<CommentRecord>> = HashMap::new();
    for row in rows {
        let (thread_id, comment) = row?;
        by_thread.entry(thread_id).or_default().push(comment);
    }
    Ok(by_thread)
}

/// A user from an id column and the email and name columns after it (empty when the user
/// row is gone).
fn user_at(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(index)?,
        email: row.get::<_, Option<String>>(index + 1)?.unwrap_or_default(),
        name: row.get::<_, Option<String>>(index + 2)?.unwrap_or_default(),
    })
}

fn thread_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ThreadRecord> {
    let start: Option<Vec<u8>> = row.get(3)?;
    let anchor = match start {
        Some(start) => Some(Anchor {
            start,
            end: row.get::<_, Option<Vec<u8>>>(4)?.unwrap_or_default(),
            from: row.get::<_, Option<u32>>(5)?.unwrap_or_default(),
            to: row.get::<_, Option<u32>>(6)?.unwrap_or_default(),
            quote: row.get::<_, Option<String>>(7)?.unwrap_or_default(),
        }),
        None => None,
    };
    let resolved_by: Option<String> = row.get(12)?;
    let resolved = match resolved_by {
        Some(_) => Some((
            user_at(row, 12)?,
            row.get::<_, Option<i64>>(15)?.unwrap_or(0),
        )),
        None => None,
    };
    Ok(ThreadRecord {
        id: row.get(0)?,
        notebook_id: row.get(1)?,
        cell_id: row.get(2)?,
        anchor,
        author: user_at(row, 8)?,
        created_at_ms: row.get(11)?,
        resolved,
        comments: Vec::new(),
    })
}
