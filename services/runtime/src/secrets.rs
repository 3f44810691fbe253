//! Secrets for running cells: the session's side of `tandem.secrets.get("NAME")`.
//!
//! ```text
//! cell: tandem.secrets.get("HF_TOKEN")
//!   worker ── {"type":"secret_request","id":3,"name":"HF_TOKEN"} ──► kernel manager
//!   session (knows who ran the cell) ── Ask {ask, notebook_id, secret: user_id, name} ──►
//!        up the node's control link (the WebSocket, or Redis `runtime:asks`)     collab
//!        checks the grant, opens the value ── Answer {ask, value | refused} ── back down
//!   worker ◄── {"type":"secret_reply","id":3,"value":"…"} ── session
//! ```
//!
//! The kernel process never holds the service credential or the server's environment: it
//! gets one value, the one its running cell asked for, looked up for the person who ran that
//! cell. The runtime node keeps no copy and logs no value.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_protocol::ids::{NotebookId, UserId};
use tandem_protocol::kernel::SecretFailure;
use tandem_protocol::runtime::{Answer, Ask, AskBody, AskOutcome};
use tokio::sync::{mpsc, oneshot};

use crate::kernel::Kernel;

/// How long a lookup may take before the cell gets a timeout error.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<String, SecretFailure>>>>;

/// The node's asks for secrets: sessions ask, whichever link is up carries the asks to a
/// collab node ([`Secrets::outbox`]) and hands back the answers ([`Secrets::answered`]).
#[derive(Debug)]
pub struct Secrets {
    next: AtomicU64,
    pending: Pending,
    sender: mpsc::UnboundedSender<Ask>,
    /// Held by the link that is up; free while none is.
    outbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<Ask>>,
}

impl Default for Secrets {
    fn default() -> Self {
        let (sender, outbox) = mpsc::unbounded_channel();
        Self {
            next: AtomicU64::new(1),
            pending: Pending::default(),
            sender,
            outbox: tokio::sync::Mutex::new(outbox),
        }
    }
}

impl Secrets {
    /// The value of `user_id`'s secret `name` for `notebook_id`, or why there is none
    /// (`secret_not_found`, `notebook_access`, `timeout`, `unavailable`).
    pub async fn lookup(
        &self,
        notebook_id: &str,
        user_id: &str,
        name: &str,
    ) -> Result<String, SecretFailure> {
        let (Ok(notebook_id), Ok(user_id)) =
            (NotebookId::parse(notebook_id), UserId::parse(user_id))
        else {
            return Err(SecretFailure::new(
                "notebook_access",
                "this notebook or person cannot hold secrets",
            ));
        };
        if self.outbox.try_lock().is_ok() {
            // No link holds the outbox: nothing would carry the ask.
            return Err(SecretFailure::new(
                "unavailable",
                "the runtime is not connected to the collab service right now; try again",
            ));
        }
        let ask = self.next.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        lock(&self.pending).insert(ask, reply);
        let body = AskBody::Secret {
            user_id,
            name: name.to_owned(),
        };
        // The receiver lives in `self`, so sending cannot fail.
        let _ = self.sender.send(Ask {
            ask,
            notebook_id,
            body,
        });
        let result = tokio::time::timeout(LOOKUP_TIMEOUT, answer).await;
        lock(&self.pending).remove(&ask);
        match result {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(SecretFailure::new(
                "unavailable",
                "the link to the collab service dropped before it answered; try again",
            )),
            Err(_) => Err(SecretFailure::new(
                "timeout",
                "the collab service did not answer the secret lookup in time",
            )),
        }
    }

    /// Hands an answer that came down the link to the lookup waiting for it (none when it
    /// timed out meanwhile).
    pub fn answered(&self, answer: Answer) {
        let result = match answer.outcome {
            AskOutcome::Secret { value } => Ok(value.0),
            AskOutcome::Refused(failure) => Err(failure),
        };
        if let Some(waiter) = lock(&self.pending).remove(&answer.ask) {
            let _ = waiter.send(result);
        }
    }

    /// The asks to carry: the link that is up holds this for as long as it is up.
    pub async fn outbox(&self) -> tokio::sync::MutexGuard<'_, mpsc::UnboundedReceiver<Ask>> {
        self.outbox.lock().await
    }

    /// Ends the lookups waiting on a link that dropped, rather than leaving them to time out.
    pub fn link_dropped(&self) {
        lock(&self.pending).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Answers a running cell's request `id` for secret `name` in a task of its own, so the
/// session goes on handling output meanwhile. `user_id` is who ran the cell: their secrets
/// and grants apply, whoever owns the notebook.
pub(crate) fn answer(
    kernel: Arc<Kernel>,
    secrets: Option<Arc<Secrets>>,
    notebook_id: String,
    user_id: Option<String>,
    id: u64,
    name: String,
) {
    tokio::spawn(async move {
        let result = match (secrets, user_id) {
            (Some(secrets), Some(user_id)) => secrets.lookup(&notebook_id, &user_id, &name).await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_protocol::kernel::SecretText;

    #[tokio::test]
    async fn a_lookup_goes_out_through_the_outbox_and_its_answer_comes_back() {
        let secrets = Arc::new(Secrets::default());
        let none = secrets.lookup("nb", "u1", "KEY").await.unwrap_err();
        assert_eq!(none.code, "unavailable", "no link holds the outbox");

        let link = Arc::clone(&secrets);
        let carried = tokio::spawn(async move {
            let mut outbox = link.outbox().await;
            let ask = outbox.recv().await.unwrap();
            assert_eq!(ask.notebook_id.as_str(), "nb");
            let AskBody::Secret { user_id, name } = &ask.body;
            assert_eq!((user_id.as_str(), name.as_str()), ("u1", "KEY"));
            link.answered(Answer {
                ask: ask.ask,
                outcome: AskOutcome::Secret {
                    value: SecretText("v1".into()),
                },
            });
            // The next ask is refused by the other side.
            let ask = outbox.recv().await.unwrap();
            link.answered(Answer {
                ask: ask.ask,
                outcome: AskOutcome::Refused(SecretFailure::new("notebook_access", "no")),
            });
            // The third finds the link dropping.
            let _ = outbox.recv().await.unwrap();
            link.link_dropped();
        });
        while secrets.outbox.try_lock().is_ok() {
            tokio::task::yield_now().await;
        }
        assert_eq!(secrets.lookup("nb", "u1", "KEY").await.unwrap(), "v1");
        assert_eq!(
            secrets.lookup("nb", "u1", "KEY").await.unwrap_err().code,
            "notebook_access"
        );
        assert_eq!(
            secrets.lookup("nb", "u1", "KEY").await.unwrap_err().code,
            "unavailable"
        );
        carried.await.unwrap();
        assert!(lock(&secrets.pending).is_empty());
        assert_eq!(
            secrets.lookup("nb", "../u", "KEY").await.unwrap_err().code,
            "notebook_access"
        );
    }
}
