//! Versions in SQLite: one row per version, its state a blob beside its metadata, deleted with
//! the notebook.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::store::versions::{VersionKind, VersionRecord};
use crate::store::{StoreError, VersionStore};

/// The versions table, created by `migrate`. Authors are a JSON array of user ids.
pub(super) const VERSIONS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS versions (
    id TEXT PRIMARY KEY,
    notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    author_ids TEXT NOT NULL,
    state BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_notebook ON versions(notebook_id, created_at);
";

const COLUMNS: &str = "id, notebook_id, created_at, kind, name, author_ids";

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<VersionRecord, StoreError>> {
    let id: String = row.get(0)?;
    let kind: String = row.get(3)?;
    let authors: String = row.get(5)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        key: format!("versions/{id}"),
        reason,
    };
    let Some(kind) = VersionKind::parse(&kind) else {
        return Ok(Err(corrupt(format!("unknown kind {kind:?}"))));
    };
    let author_ids = match serde_json::from_str(&authors) {
        Ok(ids) => ids,
        Err(err) => return Ok(Err(corrupt(format!("authors: {err}")))),
    };
    Ok(Ok(VersionRecord {
        notebook_id: row.get(1)?,
        created_at_ms: row.get(2)?,
        kind,
        name: row.get(4)?,
        author_ids,
        id,
    }))
}

fn authors_json(ids: &[String]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

#[async_trait]
impl VersionStore for SqliteStore {
    async fn insert_version(
        &self,
        version: &VersionRecord,
        state: &[u8],
    ) -> Result<(), StoreError> {
        let (version, state) = (version.clone(), state.to_vec());
        self.write(move |conn| {
            let tx = super::write_tx(conn)?;
            let exists = tx
                .query_row(
                    "SELECT 1 FROM notebooks WHERE id = ?1",
                    [&version.notebook_id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound("notebook"));
            }
            tx.execute(
                &format!(
                    "INSERT INTO versions ({COLUMNS}, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    version.id,
                    version.notebook_id,
                    version.created_at_ms,
                    version.kind.as_str(),
                    version.name,
                    authors_json(&version.author_ids),
                    state,
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn versions(&self, notebook_id: &str) -> Result<Vec<VersionRecord>, StoreError> {
        let notebook_id = notebook_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM versions WHERE notebook_id = ?1 \
                 ORDER BY created_at DESC, rowid DESC"
            ))?;
            let rows = stmt.query_map([&notebook_id], record_from_row)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row??);
            }
            Ok(out)
        })
        .await
    }

    async fn version(
        &self,
        notebook_id: &str,
        version_id: &str,
    ) -> Result<Option<(VersionRecord, Vec<u8>)>, StoreError> {
        let (notebook_id, version_id) = (notebook_id.to_owned(), version_id.to_owned());
        self.read(move |conn| {
            let found = conn
                .query_row(
                    &format!(
                        "SELECT {COLUMNS}, state FROM versions WHERE notebook_id = ?1 AND id = ?2"
                    ),
                    params![notebook_id, version_id],
                    |row| Ok((record_from_row(row)?, row.get::<_, Vec<u8>>(6)?)),
                )
                .optional()?;
            match found {
                Some((record, state)) => Ok(Some((record?, state))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn prune_versions(
        &self,
        notebook_id: &str,
        drop: &[String],
        authors: &[(String, Vec<String>)],
    ) -> Result<(), StoreError> {
        let (notebook_id, drop, authors) =
            (notebook_id.to_owned(), drop.to_vec(), authors.to_vec());
        self.write(move |conn| {
            let tx = super::write_tx(conn)?;
            for id in &drop {
                tx.execute(
                    "DELETE FROM versions WHERE notebook_id = ?1 AND id = ?2",
                    params![notebook_id, id],
                )?;
            }
            for (id, ids) in &authors {
                tx.execute(
                    "UPDATE versions SET author_ids = ?3 WHERE notebook_id = ?1 AND id = ?2",
                    params![notebook_id, id, authors_json(ids)],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
