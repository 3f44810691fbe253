//! Sessions, sign-in attempts and local sign-in tokens in SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, user_from_row};
use crate::ids;
use crate::store::{AccountStore, PendingLogin, SessionRecord, StoreError, User};

#[async_trait]
impl AccountStore for SqliteStore {
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let email = email.trim().to_lowercase();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id, email, name FROM users WHERE email = ?1",
                    [email],
                    user_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id, email, name FROM users WHERE id = ?1",
                    [id],
                    user_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let s = session.clone();
        self.write(move |conn| {
            // Expired sessions are swept whenever a new one starts, so the table stays small.
            conn.execute(
                "DELETE FROM sessions WHERE expires_at <= ?1",
                [ids::now_ms()],
            )?;
            conn.execute(
                "INSERT INTO sessions (hash, user_id, csrf_token, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    s.hash,
                    s.user_id,
                    s.csrf_token,
                    s.created_at_ms,
                    s.expires_at_ms
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, hash: &str) -> Result<Option<(SessionRecord, User)>, StoreError> {
        let hash = hash.to_owned();
        self.lookup(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT u.id, u.email, u.name, s.hash, s.csrf_token, s.created_at, \
                     s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.hash = ?1 AND s.expires_at > ?2",
                )?
                .query_row(params![hash, ids::now_ms()], |row| {
                    let user = user_from_row(row)?;
                    let session = SessionRecord {
                        hash: row.get(3)?,
                        user_id: user.id.clone(),
                        csrf_token: row.get(4)?,
                        created_at_ms: row.get(5)?,
                        expires_at_ms: row.get(6)?,
                    };
                    Ok((session, user))
                })
                .optional()?)
        })
        .await
    }

    async fn delete_session(&self, hash: &str) -> Result<bool, StoreError> {
        let hash = hash.to_owned();
        self.write(move |conn| {
            Ok(conn.execute("DELETE FROM sessions WHERE hash = ?1", [hash])? > 0)
        })
        .await
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        let user_id = user_id.to_owned();
        self.write(move |conn| {
            Ok(conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])? as u64)
        })
        .await
    }

    async fn insert_login(&self, state_hash: &str, login: &PendingLogin) -> Result<(), StoreError> {
        let (hash, l) = (state_hash.to_owned(), login.clone());
        self.write(move |conn| {
            conn.execute("DELETE FROM logins WHERE expires_at <= ?1", [ids::now_ms()])?;
            conn.execute(
                "INSERT INTO logins (state_hash, provider, pkce_verifier, nonce, return_to, \
                 expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    hash,
                    l.provider,
                    l.pkce_verifier,
                    l.nonce,
                    l.return_to,
                    l.expires_at_ms
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn take_login(&self, state_hash: &str) -> Result<Option<PendingLogin>, StoreError> {
        let hash = state_hash.to_owned();
        self.write(move |conn| {
            let tx = super::write_tx(conn)?;
            let login = tx
                .query_row(
                    "SELECT provider, pkce_verifier, nonce, return_to, expires_at FROM logins \
                     WHERE state_hash = ?1",
                    [&hash],
                    |row| {
                        Ok(PendingLogin {
                            provider: row.get(0)?,
                            pkce_verifier: row.get(1)?,
                            nonce: row.get(2)?,
                            return_to: row.get(3)?,
                            expires_at_ms: row.get(4)?,
                        })
                    },
                )
                .optional()?;
            tx.execute("DELETE FROM logins WHERE state_hash = ?1", [&hash])?;
            tx.commit()?;
            Ok(login.filter(|l| l.expires_at_ms > ids::now_ms()))
        })
        .await
    }

    async fn put_local_sign_in_token(
        &self,
        hash: &str,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let hash = hash.to_owned();
        self.write(move |conn| {
            // The tokens of nodes that died without a clean stop go here.
            conn.execute(
                "DELETE FROM local_sign_in_tokens WHERE expires_at <= ?1",
                [ids::now_ms()],
            )?;
            conn.execute(
                "INSERT INTO local_sign_in_tokens (hash, expires_at) VALUES (?1, ?2) \
                 ON CONFLICT (hash) DO UPDATE SET expires_at = excluded.expires_at",
                params![hash, expires_at_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn local_sign_in_token_live(&self, hash: &str) -> Result<bool, StoreError> {
        let hash = hash.to_owned();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM local_sign_in_tokens WHERE hash = ?1 AND expires_at > ?2",
                    params![hash, ids::now_ms()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }

    async fn delete_local_sign_in_token(&self, hash: &str) -> Result<(), StoreError> {
        let hash = hash.to_owned();
        self.write(move |conn| {
            conn.execute("DELETE FROM local_sign_in_tokens WHERE hash = ?1", [hash])?;
            Ok(())
        })
        .await
    }
}
