//! Code intelligence on a running kernel: completions and inspection (signature and
//! docstring) at a caret, answered by the worker's helper thread even while a cell runs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

pub use tandem_protocol::{Completions, Inspection};

use super::{Kernel, KernelError};
use crate::protocol::{Event, Request};

/// How long a completion or inspection may take. Jedi answers in milliseconds once warm; its
/// first use in a kernel imports it (about a second), and a cell holding the GIL in native
/// code delays it. Past this the caller falls back on what it can do without the kernel.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

impl Kernel {
    /// Completions at `cursor` (UTF-16 code units) in `code`, from IPython's completer
    /// (jedi) with this kernel's variables.
    pub async fn complete(&self, code: &str, cursor: u32) -> Result<Completions, KernelError> {
        let request = |id| Request::Complete {
            id,
            code: code.to_owned(),
            cursor,
        };
        match self.query(request).await? {
            Event::CompleteReply {
                matches,
                cursor_start,
                cursor_end,
                ..
            } => Ok(Completions {
                matches,
                cursor_start,
                cursor_end,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// The signature and docstring of the name at `cursor` in `code` (inside a call's
    /// parentheses: the function called). `detail_level` 1 adds the source when known.
    pub async fn inspect(
        &self,
        code: &str,
        cursor: u32,
        detail_level: u8,
    ) -> Result<Inspection, KernelError> {
        let request = |id| Request::Inspect {
            id,
            code: code.to_owned(),
            cursor,
            detail_level,
        };
        match self.query(request).await? {
            Event::InspectReply { found, text, .. } => Ok(Inspection { found, text }),
            other => Err(unexpected(&other)),
        }
    }

    async fn query(&self, make: impl FnOnce(u64) -> Request) -> Result<Event, KernelError> {
        self.ensure_alive()?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, reply) = oneshot::channel();
        self.shared.queries().insert(id, sender);
        let _ = self.requests.send(make(id));
        let answer = tokio::time::timeout(QUERY_TIMEOUT, reply).await;
        self.shared.queries().remove(&id);
        match answer {
            Ok(Ok(event)) => Ok(event),
            // The sender was dropped: the kernel died meanwhile.
            Ok(Err(_)) => Err(match self.exited() {
                Some(death) => KernelError::Dead(death),
                None => KernelError::QueryTimeout(QUERY_TIMEOUT),
            }),
            Err(_) => Err(KernelError::QueryTimeout(QUERY_TIMEOUT)),
        }
    }
}

fn unexpected(event: &Event) -> KernelError {
    KernelError::Protocol(format!("a reply of the wrong kind: {event:?}"))
}
