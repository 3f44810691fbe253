//! Code intelligence on a running kernel: completions and inspection (signature and
//! docstring) at a caret, answered by the worker's helper thread even while a cell runs.
//!
//! The request is sent at once and the returned future holds no [`Kernel`]: a caller that
//! waits for the answer never keeps a kernel alive that its session dropped (a restart kills
//! the process at once, and the waiter hears that it died).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

pub use tandem_protocol::{Completions, Inspection};

use super::{Kernel, KernelError, Shared};
use tandem_protocol::kernel::{Event, Request};

/// How long a completion or inspection may take. IPython's own completer answers in
/// milliseconds (jedi takes over once it has warmed up in the background); a cell holding the
/// GIL in native code delays it. Past this the caller falls back on what it can do without
/// the kernel.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

impl Kernel {
    /// Completions at `cursor` (UTF-16 code units) in `code`, from IPython's completer
    /// (jedi once warm) with this kernel's variables.
    pub fn complete(
        &self,
        code: &str,
        cursor: u32,
    ) -> impl Future<Output = Result<Completions, KernelError>> + Send + 'static {
        let sent = self.ask(|id| Request::Complete {
            id,
            code: code.to_owned(),
            cursor,
        });
        async move {
            match sent?.answer().await? {
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
    }

    /// The signature and docstring of the name at `cursor` in `code` (inside a call's
    /// parentheses: the function called). `detail_level` 1 adds the source when known.
    pub fn inspect(
        &self,
        code: &str,
        cursor: u32,
        detail_level: u8,
    ) -> impl Future<Output = Result<Inspection, KernelError>> + Send + 'static {
        let sent = self.ask(|id| Request::Inspect {
            id,
            code: code.to_owned(),
            cursor,
            detail_level,
        });
        async move {
            match sent?.answer().await? {
                Event::InspectReply { found, text, .. } => Ok(Inspection { found, text }),
                other => Err(unexpected(&other)),
            }
        }
    }

    /// Sends a query; its reply comes through [`Query::answer`].
    fn ask(&self, make: impl FnOnce(u64) -> Request) -> Result<Query, KernelError> {
        self.ensure_alive()?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, reply) = oneshot::channel();
        self.shared.queries().insert(id, sender);
        let _ = self.requests.send(make(id));
        Ok(Query {
            id,
            reply,
            shared: Arc::clone(&self.shared),
        })
    }
}

/// A query on its way: its reply, and what to clean up if none comes.
struct Query {
    id: u64,
    reply: oneshot::Receiver<Event>,
    shared: Arc<Shared>,
}

impl Query {
    async fn answer(self) -> Result<Event, KernelError> {
        let answer = tokio::time::timeout(QUERY_TIMEOUT, self.reply).await;
        self.shared.queries().remove(&self.id);
        match answer {
            Ok(Ok(event)) => Ok(event),
            // The sender was dropped: the kernel ended meanwhile.
            Ok(Err(_)) => Err(match self.shared.death.borrow().clone() {
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
