//! Per-user secrets, granted per notebook.
//!
//! A signed-in user keeps named values (API keys, tokens) on the server, sealed at rest, and
//! grants each to the notebooks that may read it. Code in a granted notebook reads a secret
//! with `tandem.secrets.get("NAME")` (or Colab's `google.colab.userdata.get("NAME")`); the
//! value read is that of whoever ran the cell, from their own secrets and grants, so sharing
//! a notebook never shares a secret.
//!
//! Routes (signed in; cookie-authenticated changes echo the CSRF token):
//! - `GET /api/secrets`: `[`[`SecretInfo`]`]`, names and grants only, never values.
//! - `PUT /api/secrets/{name}` with a [`PutSecret`]: creates or replaces a value; answers the
//!   [`SecretInfo`]. Grants are kept.
//! - `DELETE /api/secrets/{name}`: the secret and its grants; 204.
//! - `PUT /api/secrets/{name}/notebooks/{notebook_id}`: grants it to a notebook the caller can
//!   edit; 204. `DELETE` on the same path revokes; 204.
//!
//! Runtimes ask for a value over their control link (an [`Ask`](crate::runtime::Ask) up the
//! same WebSocket or Redis link their commands come down); there is no HTTP route for it.
//!
//! Errors (the usual [`ErrorBody`](crate::ErrorBody)), by code:
//! - 400 `invalid_name`: a name must match `[A-Z_][A-Z0-9_]{0,63}`; 400 `too_large`: a value
//!   over [`MAX_VALUE_BYTES`].
//! - 404 `secret_not_found`: the user has no secret of that name (a lookup's
//!   `SecretNotFoundError`).
//! - 403 `notebook_access`: the secret is not granted to this notebook (a lookup's
//!   `NotebookAccessError`).
//! - 503 `secrets_unconfigured`: the server has no secrets key (collab nodes on Redis need
//!   `--secrets-key`).

use serde::{Deserialize, Serialize};

/// Longest value accepted, in bytes (64 KiB).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// One of the caller's secrets, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// The name, `[A-Z_][A-Z0-9_]{0,63}`.
    pub name: String,
    /// When the value was last set (RFC 3339).
    pub updated_at: String,
    /// Ids of the notebooks it is granted to.
    pub notebooks: Vec<String>,
}

/// `PUT /api/secrets/{name}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutSecret {
    /// The value, at most [`MAX_VALUE_BYTES`].
    pub value: String,
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSecret").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_never_show_in_debug_output() {
        let put = PutSecret {
            value: "hunter2".into(),
        };
        assert!(!format!("{put:?}").contains("hunter2"));
    }
}
