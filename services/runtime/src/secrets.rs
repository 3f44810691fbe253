//! Secrets for running cells: the session's side of `tandem.secrets.get("NAME")`.
//!
//! ```text
//! cell: tandem.secrets.get("HF_TOKEN")
//!   worker ── {"type":"secret_request","id":3,"name":"HF_TOKEN"} ──► kernel manager
//!   session (knows who ran the cell) ── POST /internal/secrets/lookup ──► collab
//!        {notebook_id, user_id, name}, service credential      checks the grant, opens the value
//!   worker ◄── {"type":"secret_reply","id":3,"value":"…"} ── session
//! ```
//!
//! The kernel process never holds the service credential or the server's environment: it
//! gets one value, the one its running cell asked for, looked up for the person who ran that
//! cell. The runtime node keeps no copy and logs no value.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use tandem_protocol::secrets::{LOOKUP_PATH, SecretRequest};

use crate::kernel::Kernel;
use tandem_protocol::kernel::SecretFailure;

/// How long a lookup may take before the cell gets a timeout error.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the collab service for secrets with the service credential.
#[derive(Debug, Clone)]
pub struct SecretsClient {
    client: tandem_client::Client,
}

impl SecretsClient {
    /// A client for the collab service at `collab_url` (`http://host:port`).
    pub fn new(collab_url: &str, service_token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: tandem_client::Client::new(collab_url, service_token)?,
        })
    }

    /// The value of `user_id`'s secret `name` for `notebook_id`, or why there is none
    /// (`secret_not_found`, `notebook_access`, `unavailable`).
    pub async fn lookup(
        &self,
        notebook_id: &str,
        user_id: &str,
        name: &str,
    ) -> Result<String, SecretFailure> {
        let body = SecretRequest {
            notebook_id: notebook_id.to_owned(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
        };
        let body = serde_json::to_value(&body).unwrap_or_default();
        let path = LOOKUP_PATH.trim_start_matches('/');
        let answer = tokio::time::timeout(
            LOOKUP_TIMEOUT,
            self.client.send_json(Method::POST, path, Some(body)),
        )
        .await;
        match answer {
            Ok(Ok(answer)) => match answer.get("value").and_then(|v| v.as_str()) {
                Some(value) => Ok(value.to_owned()),
                None => Err(SecretFailure::new(
                    "unavailable",
                    "the collab service answered without a value",
                )),
            },
            Ok(Err(tandem_client::ApiError::Status { code, message, .. })) => {
                Err(SecretFailure { code, message })
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "secret lookup failed");
                Err(SecretFailure::new(
                    "unavailable",
                    "the collab service could not be reached for the secret",
                ))
            }
            Err(_) => Err(SecretFailure::new(
                "timeout",
                "the collab service did not answer the secret lookup in time",
            )),
        }
    }
}

/// Answers a running cell's request `id` for secret `name` in a task of its own, so the
/// session goes on handling output meanwhile. `user_id` is who ran the cell: their secrets
/// and grants apply, whoever owns the notebook.
pub(crate) fn answer(
    kernel: Arc<Kernel>,
    client: Option<SecretsClient>,
    notebook_id: String,
    user_id: Option<String>,
    id: u64,
    name: String,
) {
    tokio::spawn(async move {
        let result = match (client, user_id) {
            (Some(client), Some(user_id)) => client.lookup(&notebook_id, &user_id, &name).await,
            (None, _) => Err(SecretFailure::new(
                "unavailable",
                "this runtime has no way to reach the collab service's secrets",
            )),
            (_, None) => Err(SecretFailure::new(
                "notebook_access",
                "nobody signed in ran this cell, so there are no secrets to read",
            )),
        };
        match &result {
            Ok(_) => {
                tracing::info!(doc_id = %notebook_id, secret = %name, "secret handed to the kernel")
            }
            Err(failure) => {
                tracing::info!(doc_id = %notebook_id, secret = %name, code = %failure.code, "secret refused")
            }
        }
        kernel.answer_secret(id, result);
    });
}
