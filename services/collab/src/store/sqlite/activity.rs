//! Activity in SQLite: a row per (user, notebook) opened, and the notebook's last editor in a
//! column of `notebooks`; both go with the notebook.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::store::{Activity, ActivityStore, StoreError};

/// The table of opens, created by `migrate`.
pub(super) const ACTIVITY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notebook_opens (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
    opened_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, notebook_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notebook_opens_notebook ON notebook_opens(notebook_id);
";

#[async_trait]
impl ActivityStore for SqliteStore {
    async fn note_opened(
        &self,
        user_id: &str,
        notebook_id: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let (user_id, notebook_id) = (user_id.to_owned(), notebook_id.to_owned());
        self.write(move |conn| {
            // INSERT … SELECT: a notebook deleted meanwhile gets no row (and no foreign key
            // error).
            conn.prepare_cached(
                "INSERT INTO notebook_opens (user_id, notebook_id, opened_at) \
                 SELECT ?1, id, ?3 FROM notebooks WHERE id = ?2 \
                 ON CONFLICT(user_id, notebook_id) DO UPDATE SET opened_at = excluded.opened_at",
            )?
            .execute(params![user_id, notebook_id, at_ms])?;
            Ok(())
        })
        .await
    }

    async fn note_edited(&self, notebook_id: &str, user_id: &str) -> Result<(), StoreError> {
        let (notebook_id, user_id) = (notebook_id.to_owned(), user_id.to_owned());
        self.write(move |conn| {
            conn.prepare_cached("UPDATE notebooks SET last_editor_id = ?2 WHERE id = ?1")?
                .execute(params![notebook_id, user_id])?;
            Ok(())
        })
        .await
    }

    async fn activity(
        &self,
        user_id: &str,
        notebook_ids: &[String],
    ) -> Result<HashMap<String, Activity>, StoreError> {
        let (user_id, notebook_ids) = (user_id.to_owned(), notebook_ids.to_vec());
        self.read(move |conn| {
            let tx = super::write_tx(conn)?;
            let mut out = HashMap::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT n.last_editor_id, o.opened_at FROM notebooks n \
                     LEFT JOIN notebook_opens o ON o.notebook_id = n.id AND o.user_id = ?2 \
                     WHERE n.id = ?1",
                )?;
                for id in notebook_ids {
                    let mut rows = stmt.query(params![id, user_id])?;
                    if let Some(row) = rows.next()? {
                        let activity = Activity {
                            last_editor_id: row.get(0)?,
                            opened_at_ms: row.get(1)?,
                        };
                        if activity != Activity::default() {
                            out.insert(id, activity);
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}
