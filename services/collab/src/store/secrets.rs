//! Users' secrets and the notebooks each is granted to.
//!
//! The store keeps values only as sealed bytes ([`crate::secrets::SecretsKey::seal`]) and
//! never sees a plaintext: sealing and opening happen in the API layer. A grant is the triple
//! (user, secret name, notebook): it belongs to the secret's owner, so a notebook shared with
//! others does not pass the grant on.

use async_trait::async_trait;

use super::StoreError;

/// A secret as listed: its name and grants, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    /// The secret's name.
    pub name: String,
    /// When its value was last set, milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
    /// The notebooks it is granted to (that still exist), sorted.
    pub notebooks: Vec<String>,
}

/// What a kernel's lookup of a secret finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretLookup {
    /// The user has no secret of that name.
    Missing,
    /// The user has it but has not granted it to this notebook.
    NotGranted,
    /// The sealed value.
    Granted(Vec<u8>),
}

/// Per-user secrets, sealed, with per-notebook grants.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Creates or replaces a user's secret with a sealed value; grants are kept on replace.
    async fn put_secret(
        &self,
        user_id: &str,
        name: &str,
        sealed: &[u8],
        updated_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// A user's secrets, sorted by name.
    async fn secrets(&self, user_id: &str) -> Result<Vec<SecretInfo>, StoreError>;

    /// The sealed value of one secret.
    async fn sealed_secret(&self, user_id: &str, name: &str)
    -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes a secret and its grants. Returns whether it existed.
    async fn delete_secret(&self, user_id: &str, name: &str) -> Result<bool, StoreError>;

    /// Grants a secret to a notebook (idempotent). Fails with [`StoreError::NotFound`] when
    /// the secret or the notebook does not exist.
    async fn grant_secret(
        &self,
        user_id: &str,
        name: &str,
        notebook_id: &str,
    ) -> Result<(), StoreError>;

    /// Revokes a grant. Returns whether there was one.
    async fn revoke_secret(
        &self,
        user_id: &str,
        name: &str,
        notebook_id: &str,
    ) -> Result<bool, StoreError>;

    /// The sealed value if the user has granted the secret to the notebook.
    async fn secret_for_notebook(
        &self,
        user_id: &str,
        name: &str,
        notebook_id: &str,
    ) -> Result<SecretLookup, StoreError>;
}
