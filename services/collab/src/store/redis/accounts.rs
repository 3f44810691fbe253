//! Sessions, sign-in attempts and local sign-in tokens in Redis: all expire by themselves
//! (`PEXPIREAT`, `PX`), and a sign-in attempt is taken with `GETDEL`, so of two callbacks
//! racing with one `state` only one finds it.

use std::collections::HashMap;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{RedisStore, normalize, scripts};
use crate::ids;
use crate::store::{AccountStore, PendingLogin, SessionRecord, StoreError, User};

#[async_trait]
impl AccountStore for RedisStore {
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let id: Option<String> = self
            .conn()
            .get(self.keys.user_email(&normalize(email)))
            .await?;
        match id {
            Some(id) => self.user(&id).await,
            None => Ok(None),
        }
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.user(id).await
    }

    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let _: i64 = scripts::INSERT_SESSION
            .key(self.keys.session(&session.hash))
            .key(self.keys.user_sessions(&session.user_id))
            .arg(&session.hash)
            .arg(&session.user_id)
            .arg(&session.csrf_token)
            .arg(session.created_at_ms)
            .arg(session.expires_at_ms)
            .arg(self.keys.prefix())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn session(&self, hash: &str) -> Result<Option<(SessionRecord, User)>, StoreError> {
        let key = self.keys.session(hash);
        let row: HashMap<String, String> = self.conn().hgetall(&key).await?;
        let number = |name: &str| row.get(name).and_then(|v| v.parse::<i64>().ok());
        let (Some(user_id), Some(csrf_token), Some(created_at_ms), Some(expires_at_ms)) = (
            row.get("user_id"),
            row.get("csrf_token"),
            number("created_at"),
            number("expires_at"),
        ) else {
            return Ok(None);
        };
        // Redis expires the key itself; this covers the moments before it does.
        if expires_at_ms <= ids::now_ms() {
            return Ok(None);
        }
        let Some(user) = self.user(user_id).await? else {
            return Ok(None);
        };
        let session = SessionRecord {
            hash: hash.to_owned(),
            user_id: user_id.clone(),
            csrf_token: csrf_token.clone(),
            created_at_ms,
            expires_at_ms,
        };
        Ok(Some((session, user)))
    }

    async fn delete_session(&self, hash: &str) -> Result<bool, StoreError> {
        let existed: bool = scripts::DELETE_SESSION
            .key(self.keys.session(hash))
            .arg(self.keys.prefix())
            .arg(hash)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(existed)
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        let n: u64 = scripts::DELETE_USER_SESSIONS
            .key(self.keys.user_sessions(user_id))
            .arg(self.keys.prefix())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(n)
    }

    async fn insert_login(&self, state_hash: &str, login: &PendingLogin) -> Result<(), StoreError> {
        let ttl = login.expires_at_ms - ids::now_ms();
        if ttl <= 0 {
            // Already expired: taking it would find nothing anyway.
            return Ok(());
        }
        let value = serde_json::json!({
            "provider": login.provider,
            "pkce_verifier": login.pkce_verifier,
            "nonce": login.nonce,
            "return_to": login.return_to,
            "expires_at": login.expires_at_ms,
        });
        let () = self
            .conn()
            .pset_ex(self.keys.login(state_hash), value.to_string(), ttl as u64)
            .await?;
        Ok(())
    }

    async fn take_login(&self, state_hash: &str) -> Result<Option<PendingLogin>, StoreError> {
        let key = self.keys.login(state_hash);
        let value: Option<String> = self.conn().get_del(&key).await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            key: key.clone(),
            reason,
        };
        let json: serde_json::Value =
            serde_json::from_str(&value).map_err(|e| corrupt(e.to_string()))?;
        let text = |name: &str| {
            json[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| corrupt(format!("missing {name}")))
        };
        let login = PendingLogin {
            provider: text("provider")?,
            pkce_verifier: text("pkce_verifier")?,
            nonce: text("nonce")?,
            return_to: text("return_to")?,
            expires_at_ms: json["expires_at"]
                .as_i64()
                .ok_or_else(|| corrupt("missing expires_at".into()))?,
        };
        Ok(Some(login).filter(|l| l.expires_at_ms > ids::now_ms()))
    }

    async fn put_local_sign_in_token(
        &self,
        hash: &str,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let key = self.keys.local_sign_in(hash);
        let ttl = expires_at_ms - ids::now_ms();
        if ttl <= 0 {
            let () = self.conn().del(key).await?;
            return Ok(());
        }
        let () = self.conn().pset_ex(key, "1", ttl as u64).await?;
        Ok(())
    }

    async fn local_sign_in_token_live(&self, hash: &str) -> Result<bool, StoreError> {
        // Redis expires the key itself, so one that exists is live.
        Ok(self.conn().exists(self.keys.local_sign_in(hash)).await?)
    }

    async fn delete_local_sign_in_token(&self, hash: &str) -> Result<(), StoreError> {
        let () = self.conn().del(self.keys.local_sign_in(hash)).await?;
        Ok(())
    }
}
