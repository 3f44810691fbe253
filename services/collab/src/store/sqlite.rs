//! The embedded store: one SQLite file (`tandem.db`) in the data directory.
//!
//! WAL mode with `synchronous = FULL`: a committed transaction is on disk before `commit`
//! returns, which is what [`Store::append_updates`] promises. WAL also lets `tandem token
//! create` write to the same file while the server runs. Blocking SQLite calls run on tokio's
//! blocking pool; one connection writes and another reads, so readers never wait on a commit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

mod accounts;
mod activity;
mod comments;
mod secrets;
mod sharing;
mod versions;

use tandem_protocol::{GeneralAccess, Grant, Role};

use super::{NotebookRecord, Store, StoreError, StoredDocument, User};
use crate::ids;

/// How long a connection waits for another process's write lock before giving up. Long
/// enough to ride out a compaction on a large notebook in the server while `tandem token
/// create` runs beside it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS notebooks (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    general_access TEXT NOT NULL DEFAULT 'restricted',
    link_role TEXT NOT NULL DEFAULT 'viewer',
    editors_may_run INTEGER NOT NULL DEFAULT 1,
    last_editor_id TEXT
);
CREATE INDEX IF NOT EXISTS notebooks_owner ON notebooks(owner_id, updated_at);
CREATE TABLE IF NOT EXISTS doc_snapshots (
    notebook_id TEXT PRIMARY KEY REFERENCES notebooks(id) ON DELETE CASCADE,
    state BLOB NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS doc_updates (
    notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (notebook_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grants (
    notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (notebook_id, email)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS grants_email ON grants(email);
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);
CREATE TABLE IF NOT EXISTS logins (
    state_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    nonce TEXT NOT NULL,
    return_to TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS local_sign_in_tokens (
    hash TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
";

/// Columns added to tables after the first release, added to older databases on open.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    (
        "notebooks",
        "general_access",
        "TEXT NOT NULL DEFAULT 'restricted'",
    ),
    ("notebooks", "link_role", "TEXT NOT NULL DEFAULT 'viewer'"),
    ("notebooks", "editors_may_run", "INTEGER NOT NULL DEFAULT 1"),
    ("notebooks", "last_editor_id", "TEXT"),
];

/// The SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`. With `sync_commits`, every commit
    /// is fsynced before it returns; without, commits survive a process crash but not an OS
    /// crash or power loss.
    pub fn open(data_dir: &Path, sync_commits: bool) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Open {
            path: data_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        // Owner only: kernels run as another user when Tandem runs as root, and the store
        // holds every notebook and token hash.
        restrict_to_owner(data_dir)?;
        let path = data_dir.join("tandem.db");
        let writer = open_connection(&path, sync_commits)?;
        migrate(&writer)?;
        let reader = open_connection(&path, sync_commits)?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
            path,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        run_blocking(self.writer.clone(), f).await
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        run_blocking(self.reader.clone(), f).await
    }

    /// A point read (one row by its key, tens of microseconds from the page cache): on the
    /// calling thread when the reader is free, sparing the two thread hand-offs of the
    /// blocking pool, which cost more than the read (issue 16: every request looks up its
    /// caller and notebook this way). The reader never waits on a commit (WAL), so only
    /// another read can hold it; then this goes through the pool like any read.
    async fn lookup<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if let Ok(mut reader) = self.reader.try_lock() {
            return f(&mut reader);
        }
        self.read(f).await
    }
}

/// Creates missing tables and adds columns that older databases lack.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    // An older database has the tables but not the new columns; add them before the schema's
    // indexes refer to them.
    for (table, column, definition) in ADDED_COLUMNS {
        let exists: bool = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
                [column],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)?;
        let table_exists: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)?;
        if table_exists && !exists {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(comments::COMMENTS_SCHEMA)?;
    conn.execute_batch(versions::VERSIONS_SCHEMA)?;
    conn.execute_batch(secrets::SECRETS_SCHEMA)?;
    conn.execute_batch(activity::ACTIVITY_SCHEMA)?;
    Ok(())
}

fn restrict_to_owner(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
        StoreError::Open {
            path: dir.display().to_string(),
            reason: format!("chmod 700: {e}"),
        }
    })
}

fn open_connection(path: &Path, sync_commits: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // In WAL mode, FULL syncs the log on every commit; NORMAL only at checkpoints.
    conn.pragma_update(
        None,
        "synchronous",
        if sync_commits { "FULL" } else { "NORMAL" },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Begins a write transaction. IMMEDIATE takes the write lock at once, waiting up to the busy
/// timeout for another writer (another process on the same file, such as `tandem token
/// create`); a deferred transaction that read first would instead fail at once with
/// `SQLITE_BUSY` when it tries to write after someone else did.
pub(super) fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

async fn run_blocking<T, F>(conn: Arc<Mutex<Connection>>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        // A panic while holding the lock leaves SQLite itself consistent (an open transaction
        // rolls back when dropped), so a poisoned mutex is safe to keep using.
        let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))?
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        name: row.get(2)?,
    })
}

fn notebook_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<NotebookRecord> {
    Ok(NotebookRecord {
        id: row.get(0)?,
        title: row.get(1)?,
        owner_id: row.get(2)?,
        created_at_ms: row.get(3)?,
        updated_at_ms: row.get(4)?,
        // A value this code never writes reads as the most restrictive one.
        general_access: GeneralAccess::parse(&row.get::<_, String>(5)?)
            .unwrap_or(GeneralAccess::Restricted),
        link_role: Role::parse(&row.get::<_, String>(6)?).unwrap_or(Role::Viewer),
        editors_may_run: row.get(7)?,
    })
}

/// The columns [`notebook_from_row`] reads, in order.
const NOTEBOOK_COLUMNS: &str =
    "id, title, owner_id, created_at, updated_at, general_access, link_role, editors_may_run";

/// How many columns [`notebook_from_row`] reads: a query's next column is at this index.
const NOTEBOOK_COLUMN_COUNT: usize = 8;

#[async_trait]
impl Store for SqliteStore {
    async fn upsert_user(&self, email: &str, name: &str) -> Result<User, StoreError> {
        let email = email.trim().to_lowercase();
        let name = name.to_owned();
        self.write(move |conn| {
            let tx = write_tx(conn)?;
            let existing = tx
                .query_row(
                    "SELECT id, email, name FROM users WHERE email = ?1",
                    [&email],
                    user_from_row,
                )
                .optional()?;
            let user = match existing {
                Some(user) => user,
                None => {
                    let user = User {
                        id: ids::random_id(),
                        email,
                        name,
                    };
                    tx.execute(
                        "INSERT INTO users (id, email, name, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![user.id, user.email, user.name, ids::now_ms()],
                    )?;
                    user
                }
            };
            tx.commit()?;
            Ok(user)
        })
        .await
    }

    async fn insert_token(&self, user_id: &str, token_hash: &str) -> Result<(), StoreError> {
        let (user_id, hash) = (user_id.to_owned(), token_hash.to_owned());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO tokens (hash, user_id, created_at) VALUES (?1, ?2, ?3)",
                params![hash, user_id, ids::now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        let hash = token_hash.to_owned();
        self.lookup(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT u.id, u.email, u.name FROM tokens t JOIN users u ON u.id = t.user_id \
                     WHERE t.hash = ?1",
                )?
                .query_row([hash], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn create_notebook(
        &self,
        record: &NotebookRecord,
        initial_state: &[u8],
    ) -> Result<(), StoreError> {
        let (record, state) = (record.clone(), initial_state.to_vec());
        self.write(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "INSERT INTO notebooks \
                 (id, title, owner_id, created_at, updated_at, general_access, link_role, \
                  editors_may_run) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    record.id,
                    record.title,
                    record.owner_id,
                    record.created_at_ms,
                    record.updated_at_ms,
                    record.general_access.as_str(),
                    record.link_role.as_str(),
                    record.editors_may_run,
                ],
            )?;
            tx.execute(
                "INSERT INTO doc_snapshots (notebook_id, state, seq) VALUES (?1, ?2, 0)",
                params![record.id, state],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn notebook(&self, id: &str) -> Result<Option<NotebookRecord>, StoreError> {
        let id = id.to_owned();
        self.lookup(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {NOTEBOOK_COLUMNS} FROM notebooks WHERE id = ?1"
                ))?
                .query_row([id], notebook_from_row)
                .optional()?)
        })
        .await
    }

    async fn rename_notebook(&self, id: &str, title: &str) -> Result<bool, StoreError> {
        let (id, title) = (id.to_owned(), title.to_owned());
        self.write(move |conn| {
            let n = conn
                .prepare_cached("UPDATE notebooks SET title = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![id, title, ids::now_ms()])?;
            Ok(n > 0)
        })
        .await
    }

    async fn notebooks_owned_by(&self, user_id: &str) -> Result<Vec<NotebookRecord>, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {NOTEBOOK_COLUMNS} FROM notebooks WHERE owner_id = ?1 \
                 ORDER BY updated_at DESC, id"
            ))?;
            let rows = stmt.query_map([user_id], notebook_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn notebooks_shared_with(
        &self,
        email: &str,
    ) -> Result<Vec<(NotebookRecord, Role)>, StoreError> {
        let email = email.trim().to_lowercase();
        self.read(move |conn| sharing::notebooks_shared_with(conn, &email))
            .await
    }

    async fn grants(&self, id: &str) -> Result<Vec<Grant>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| sharing::grants(conn, &id)).await
    }

    async fn grant_for(&self, id: &str, email: &str) -> Result<Option<Role>, StoreError> {
        let (id, email) = (id.to_owned(), email.trim().to_lowercase());
        self.lookup(move |conn| sharing::grant_for(conn, &id, &email))
            .await
    }

    async fn set_sharing(
        &self,
        id: &str,
        general_access: GeneralAccess,
        link_role: Role,
        editors_may_run: bool,
        grants: &[Grant],
    ) -> Result<(), StoreError> {
        let (id, grants) = (id.to_owned(), grants.to_vec());
        let settings = sharing::Settings {
            general_access,
            link_role,
            editors_may_run,
        };
        self.write(move |conn| sharing::set_sharing(conn, &id, &settings, &grants))
            .await
    }

    async fn transfer_ownership(
        &self,
        id: &str,
        new_owner_id: &str,
        new_owner_email: &str,
        previous_owner_email: &str,
    ) -> Result<(), StoreError> {
        let id = id.to_owned();
        let new_owner = (
            new_owner_id.to_owned(),
            new_owner_email.trim().to_lowercase(),
        );
        let previous = previous_owner_email.trim().to_lowercase();
        self.write(move |conn| sharing::transfer_ownership(conn, &id, &new_owner, &previous))
            .await
    }

    async fn delete_notebook(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |conn| {
            // Foreign keys cascade to the snapshot and the update log.
            let n = conn.execute("DELETE FROM notebooks WHERE id = ?1", [id])?;
            Ok(n > 0)
        })
        .await
    }

    async fn load_document(&self, id: &str) -> Result<StoredDocument, StoreError> {
        let id = id.to_owned();
        // Read through the writer's connection inside one transaction so the snapshot and the
        // log are from the same moment even while a compaction commits.
        self.write(move |conn| {
            let tx = write_tx(conn)?;
            let exists: bool = tx
                .query_row("SELECT 1 FROM notebooks WHERE id = ?1", [&id], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound("notebook"));
            }
            let snapshot: Option<(Vec<u8>, i64)> = tx
                .query_row(
                    "SELECT state, seq FROM doc_snapshots WHERE notebook_id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let mut last_seq = snapshot.as_ref().map_or(0, |(_, seq)| *seq as u64);
            let mut updates = Vec::new();
            {
                let mut stmt = tx.prepare(
                    "SELECT seq, data FROM doc_updates WHERE notebook_id = ?1 ORDER BY seq",
                )?;
                let mut rows = stmt.query([&id])?;
                while let Some(row) = rows.next()? {
                    let seq: i64 = row.get(0)?;
                    last_seq = seq as u64;
                    updates.push(row.get::<_, Vec<u8>>(1)?);
                }
            }
            tx.commit()?;
            Ok(StoredDocument {
                snapshot: snapshot.map(|(s, _)| s),
                updates,
                last_seq,
            })
        })
        .await
    }

    async fn append_updates(&self, id: &str, updates: &[Vec<u8>]) -> Result<u64, StoreError> {
        let (id, updates) = (id.to_owned(), updates.to_vec());
        self.write(move |conn| {
            let tx = write_tx(conn)?;
            // The log may be empty after a compaction; numbering continues from the snapshot.
            let last: i64 = tx
                .prepare_cached(
                    "SELECT MAX(\
                   COALESCE((SELECT MAX(seq) FROM doc_updates WHERE notebook_id = ?1), 0), \
                   COALESCE((SELECT seq FROM doc_snapshots WHERE notebook_id = ?1), 0))",
                )?
                .query_row([&id], |r| r.get(0))?;
            let mut seq = last;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO doc_updates (notebook_id, seq, data) VALUES (?1, ?2, ?3)",
                )?;
                for update in &updates {
                    seq += 1;
                    insert.execute(params![id, seq, update])?;
                }
            }
            let touched = tx
                .prepare_cached("UPDATE notebooks SET updated_at = ?2 WHERE id = ?1")?
                .execute(params![id, ids::now_ms()])?;
            if touched == 0 {
                return Err(StoreError::NotFound("notebook"));
            }
            tx.commit()?;
            Ok(seq as u64)
        })
        .await
    }

    async fn compact(&self, id: &str, snapshot: &[u8], up_to_seq: u64) -> Result<(), StoreError> {
        let (id, snapshot) = (id.to_owned(), snapshot.to_vec());
        self.write(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "INSERT INTO doc_snapshots (notebook_id, state, seq) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(notebook_id) DO UPDATE SET state = excluded.state, seq = excluded.seq",
                params![id, snapshot, up_to_seq as i64],
            )?;
            tx.execute(
                "DELETE FROM doc_updates WHERE notebook_id = ?1 AND seq <= ?2",
                params![id, up_to_seq as i64],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), true).unwrap();
        (store, dir)
    }

    crate::store::conformance::suite!(super::open());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lookup_while_the_reader_is_busy_waits_its_turn() {
        let (store, _dir) = open().await;
        let user = store.upsert_user("ada@example.com", "Ada").await.unwrap();
        store.insert_token(&user.id, "hash").await.unwrap();
        // Inline when the reader is free.
        assert_eq!(
            store.user_by_token("hash").await.unwrap(),
            Some(user.clone())
        );
        // Through the blocking pool when another read holds it: the same answer, after it.
        let reader = store.reader.clone();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let _busy = reader.lock().unwrap();
            held_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
        });
        held_rx.recv().unwrap();
        assert_eq!(store.user_by_token("hash").await.unwrap(), Some(user));
        assert_eq!(store.user_by_token("other").await.unwrap(), None);
        holder.join().unwrap();
    }

    /// Two processes on one file (`tandem serve` and `tandem token create`): a write that
    /// reads first must wait for the other writer, not fail with "database is locked".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_file_both_write_while_the_other_does() {
        let dir = tempfile::tempdir().unwrap();
        let server = Arc::new(SqliteStore::open(dir.path(), true).unwrap());
        let busy = {
            let server = server.clone();
            tokio::spawn(async move {
                for i in 0..300 {
                    server
                        .upsert_user(&format!("server-{i}@example.com"), "s")
                        .await
                        .unwrap();
                }
            })
        };
        for i in 0..30 {
            // As `tandem token create` does: its own store, a new user and a token.
            let other = SqliteStore::open(dir.path(), true).unwrap();
            let user = other
                .upsert_user(&format!("cli-{i}@example.com"), "c")
                .await
                .unwrap_or_else(|e| panic!("upsert {i}: {e}"));
            other
                .insert_token(&user.id, &format!("hash-{i}"))
                .await
                .unwrap_or_else(|e| panic!("token {i}: {e}"));
        }
        busy.await.unwrap();
    }

    #[tokio::test]
    async fn appending_to_a_deleted_notebook_leaves_nothing_behind() {
        let (store, _dir) = open().await;
        let err = store
            .append_updates("missing", &[b"u".to_vec()])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Sqlite(_) | StoreError::NotFound(_)),
            "{err}"
        );
        // Nothing was left behind by the failed transaction.
        let n: i64 = store
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM doc_updates", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}
