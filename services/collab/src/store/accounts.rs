//! Accounts beyond the user row: sign-in sessions, OAuth sign-in attempts in flight, and the
//! local sign-in tokens of the running nodes.
//!
//! All are keyed by the SHA-256 of a random secret (the session cookie, the OAuth `state`, the
//! local sign-in token), so the store never holds a value that would let someone who reads it
//! sign in.

use async_trait::async_trait;

use super::{StoreError, User};

/// A server-side sign-in session (the browser holds only its random id, in a cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the session id.
    pub hash: String,
    /// The signed-in user.
    pub user_id: String,
    /// The token a cookie-authenticated request that changes state must echo in the
    /// `X-CSRF-Token` header.
    pub csrf_token: String,
    /// When the session began, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When it ends, milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// An OAuth sign-in that was started and not yet finished: what the callback needs to check
/// the provider's answer. Single use, short-lived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The provider's configured name.
    pub provider: String,
    /// The PKCE code verifier.
    pub pkce_verifier: String,
    /// The OpenID Connect nonce the ID token must carry (empty for plain OAuth providers).
    pub nonce: String,
    /// Where to send the browser after signing in (a local path).
    pub return_to: String,
    /// When the attempt expires, milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// Sessions and sign-in attempts.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// The user with this email, if one ever signed in.
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;

    /// The user with this id.
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// Records a new session.
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;

    /// The live (unexpired) session with this hash, and its user.
    async fn session(&self, hash: &str) -> Result<Option<(SessionRecord, User)>, StoreError>;

    /// Ends one session. Returns whether it existed.
    async fn delete_session(&self, hash: &str) -> Result<bool, StoreError>;

    /// Ends every session of a user ("sign out everywhere"). Returns how many there were.
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError>;

    /// Records a sign-in attempt under the hash of its `state`.
    async fn insert_login(&self, state_hash: &str, login: &PendingLogin) -> Result<(), StoreError>;

    /// Removes and returns the attempt with this `state` hash if it has not expired; a second
    /// call with the same hash finds nothing (a replayed callback is refused).
    async fn take_login(&self, state_hash: &str) -> Result<Option<PendingLogin>, StoreError>;

    /// Records a node's local sign-in token, by hash, as good until `expires_at_ms`, or moves
    /// the end of one already recorded. Every node accepts the tokens recorded here, so the
    /// sign-in link one node printed works on all of them while it runs.
    async fn put_local_sign_in_token(
        &self,
        hash: &str,
        expires_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Whether a local sign-in token with this hash is recorded and has not expired.
    async fn local_sign_in_token_live(&self, hash: &str) -> Result<bool, StoreError>;

    /// Forgets a local sign-in token (its node stopped).
    async fn delete_local_sign_in_token(&self, hash: &str) -> Result<(), StoreError>;
}
