//! Secrets in SQLite: one row per (user, name) holding the sealed value, one row per grant;
//! grants go with their secret and with their notebook.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::store::{SecretInfo, SecretLookup, SecretStore, StoreError};

/// The secrets tables, created by `migrate`.
pub(super) const SECRETS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS secrets (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    sealed BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secret_grants (
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, name, notebook_id),
    FOREIGN KEY (user_id, name) REFERENCES secrets(user_id, name) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS secret_grants_notebook ON secret_grants(notebook_id);
";

#[async_trait]
impl SecretStore for SqliteStore {
    async fn put_secret(
        &self,
        user_id: &str,
        name: &str,
        sealed: &[u8],
        updated_at_ms: i64,
    ) -> Result<(), StoreError> {
        let (user_id, name, sealed) = (user_id.to_owned(), name.to_owned(), sealed.to_vec());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO secrets (user_id, name, sealed, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(user_id, name) DO UPDATE SET sealed = excluded.sealed, \
                 updated_at = excluded.updated_at",
                params![user_id, name, sealed, updated_at_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn secrets(&self, user_id: &str) -> Result<Vec<SecretInfo>, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |conn| {
            let tx = super::write_tx(conn)?;
            let mut out: Vec<SecretInfo> = {
                let mut stmt = tx.prepare(
                    "SELECT name, updated_at FROM secrets WHERE user_id = ?1 ORDER BY name",
                )?;
                stmt.query_map([&user_id], |row| {
                    Ok(SecretInfo {
                        name: row.get(0)?,
                        updated_at_ms: row.get(1)?,
                        notebooks: Vec::new(),
                    })
                })?
                .collect::<Result<_, _>>()?
            };
            let mut stmt = tx.prepare(
                "SELECT name, notebook_id FROM secret_grants WHERE user_id = ?1 \
                 ORDER BY name, notebook_id",
            )?;
            let grants = stmt.query_map([&user_id], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            for grant in grants {
                let (name, notebook) = grant?;
                if let Some(info) = out.iter_mut().find(|s| s.name == name) {
                    info.notebooks.push(notebook);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn sealed_secret(
        &self,
        user_id: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (user_id, name) = (user_id.to_owned(), name.to_owned());
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT sealed FROM secrets WHERE user_id = ?1 AND name = ?2",
                    params![user_id, name],
                    |row| row.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn delete_secret(&self, user_id: &str, name: &str) -> Result<bool, StoreError> {
        let (user_id, name) = (user_id.to_owned(), name.to_owned());
        self.write(move |conn| {
            // Grants go by the foreign key's cascade.
            let deleted = conn.execute(
                "DELETE FROM secrets WHERE user_id = ?1 AND name = ?2",
                params![user_id, name],
            )?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn grant_secret(
        &self,
        user_id: &str,
        name: &str,
        notebook_id: &str,
    ) -> Result<(), StoreError> {
        let (user_id, name, notebook_id) =
            (user_id.to_owned(), name.to_owned(), notebook_id.to_owned());
        self.write(move |conn| {
            let tx = super::write_tx(conn)?;
            let secret: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM secrets WHERE user_id = ?1 AND name = ?2",
                    params![user_id, name],
                    |row| row.get(0),
                )
                .optional()?;
            if secret.is_none() {
                return Err(StoreError::NotFound("secret"));
            }
            let notebook: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM notebooks WHERE id = ?1",
                    [&notebook_id],
                    |row| row.get(0),
                )
                .optional()?;
            if notebook.is_none() {
                return Err(StoreError::NotFound("notebook"));
            }
            tx.execute(
                "INSERT OR IGNORE INTO secret_grants (user_id, name, notebook_id) \
                 VALUES (?1, ?2, ?3)",
                params![user_id, name, notebook_id],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn revoke_secret(
        &self,
        user_id: &str,
        name: &str,
        notebook_id: &str,
    ) -> Result<bool, StoreError> {
        let (user_id, name, notebook_id) =
            (user_id.to_owned(), name.to_owned(), notebook_id.to_owned());
        self.write(move |conn| {
            let deleted = conn.execute(
                "DELETE FROM secret_grants WHERE user_id = ?1 AND name = ?2 AND notebook_id = ?3",
                params![user_id, name, notebook_id],
            )?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn secret_for_notebook(
        &self,
        user_id: &str,
        name: &str,
        notebook_id: &str,
    ) -> Result<SecretLookup, StoreError> {
        let (user_id, name, notebook_id) =
            (user_id.to_owned(), name.to_owned(), notebook_id.to_owned());
        self.read(move |conn| {
            let row: Option<(Vec<u8>, Option<String>)> = conn
                .query_row(
                    "SELECT s.sealed, g.notebook_id FROM secrets s LEFT JOIN secret_grants g \
                     ON g.user_id = s.user_id AND g.name = s.name AND g.notebook_id = ?3 \
                     WHERE s.user_id = ?1 AND s.name = ?2",
                    params![user_id, name, notebook_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            Ok(match row {
                None => SecretLookup::Missing,
                Some((_, None)) => SecretLookup::NotGranted,
                Some((sealed, Some(_))) => SecretLookup::Granted(sealed),
            })
        })
        .await
    }
}

#[cfg(test)]
impl crate::store::conformance::RawSecrets for SqliteStore {
    async fn raw_sealed(&self, user_id: &str, name: &str) -> Option<Vec<u8>> {
        self.sealed_secret(user_id, name).await.ok().flatten()
    }

    async fn overwrite_sealed(&self, user_id: &str, name: &str, bytes: Vec<u8>) {
        let (user_id, name) = (user_id.to_owned(), name.to_owned());
        let updated = self
            .write(move |conn| {
                Ok(conn.execute(
                    "UPDATE secrets SET sealed = ?3 WHERE user_id = ?1 AND name = ?2",
                    params![user_id, name, bytes],
                )?)
            })
            .await;
        assert!(matches!(updated, Ok(1)), "{updated:?}");
    }
}

#[cfg(test)]
mod tests {
    use crate::secrets::SecretsKey;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{SecretStore, Store};

    /// No plaintext anywhere in the database files, the write-ahead log included.
    #[tokio::test]
    async fn values_never_reach_the_database_files_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), true).unwrap();
        let user = store.upsert_user("a@b.c", "A").await.unwrap();
        let (key, _) = SecretsKey::generate();
        let plain = "sk-live-PLAINTEXT-9f8e7d6c";
        store
            .put_secret(
                &user.id,
                "API_KEY",
                &key.seal(&user.id, "API_KEY", plain),
                1,
            )
            .await
            .unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(plain.len()).any(|w| w == plain.as_bytes()));
        }
    }
}
