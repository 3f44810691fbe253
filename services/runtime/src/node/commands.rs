//! Command dispatch: each [`Command`] from either link turned into calls on the notebook's
//! session, after [`Node::authorize`] (whose runtime it is, and the per-user kernel limit:
//! `holders.rs`), with runtime switches and saved-output downloads.

use std::sync::atomic::Ordering;

use tandem_protocol::runtime::{Command, Reply, RuntimeAccess};

use super::Node;
use super::holders::Action;
use crate::session::{Holder, SessionError};

/// Largest saved output sent back through the control channel.
const MAX_OUTPUT_DOWNLOAD: u64 = 32 * 1024 * 1024;

impl Node {
    pub(super) async fn handle(&self, command: Command) -> Reply {
        let request = command.request();
        let result = match command {
            Command::Execute {
                notebook_id,
                cell_ids,
                stop_on_error,
                stale,
                user_id,
                user_name,
                state_vector,
                access,
                ..
            } => {
                tracing::info!(doc_id = %notebook_id, %user_id, cells = cell_ids.len(), stale, "execute");
                let group = (stop_on_error || stale)
                    .then(|| self.next_group.fetch_add(1, Ordering::Relaxed));
                let caller = Holder {
                    id: user_id.clone(),
                    name: user_name.clone(),
                };
                if let Err((code, message)) = self
                    .authorize(&notebook_id, &caller, &access, Action::Execute)
                    .await
                {
                    return refused(request, code, message);
                }
                self.point_drive(&notebook_id).await;
                let requester = crate::session::Requester::from_wire(
                    &user_id,
                    &user_name,
                    state_vector.as_deref(),
                );
                match self.session(&notebook_id).await {
                    Ok(session) if stale => session
                        .execute_stale(group, requester)
                        .await
                        .inspect(|queued| crate::metrics::executions(queued.len())),
                    Ok(session) => session
                        .execute_for(cell_ids, group, requester)
                        .await
                        .inspect(|queued| crate::metrics::executions(queued.len())),
                    Err(err) => Err(err),
                }
            }
            Command::Interrupt {
                notebook_id,
                user_id,
                access,
                ..
            } => match self.running(&notebook_id).await {
                Some(session) => {
                    let caller = Holder {
                        id: user_id,
                        name: String::new(),
                    };
                    if let Err((code, message)) = self
                        .authorize(&notebook_id, &caller, &access, Action::Interrupt)
                        .await
                    {
                        return refused(request, code, message);
                    }
                    session.interrupt().await.map(|()| Vec::new())
                }
                None => Ok(Vec::new()),
            },
            Command::SetRuntime {
                notebook_id,
                runtime,
                user_id,
                user_name,
                access,
                ..
            } => {
                let caller = Holder {
                    id: user_id,
                    name: user_name,
                };
                return match self
                    .set_runtime(&notebook_id, &runtime, &caller, &access)
                    .await
                {
                    Ok(()) => Reply::Ok {
                        request,
                        queued: Vec::new(),
                    },
                    Err((code, message)) => Reply::Error {
                        request,
                        code: code.to_owned(),
                        message,
                    },
                };
            }
            Command::Complete {
                notebook_id,
                code,
                cursor,
                user_id,
                access,
                ..
            } => {
                let kernel = match self.query_kernel(&notebook_id, &user_id, &access).await {
                    Ok(kernel) => kernel,
                    Err((code, message)) => return refused(request, code, message),
                };
                // The answer is awaited without the kernel: a restart meanwhile ends it.
                let answer = kernel.complete(&code, cursor);
                drop(kernel);
                return match answer.await {
                    Ok(completions) => Reply::Completions {
                        request,
                        completions,
                    },
                    Err(error) => refused(request, "kernel_busy", error.to_string()),
                };
            }
            Command::Inspect {
                notebook_id,
                code,
                cursor,
                detail_level,
                user_id,
                access,
                ..
            } => {
                let kernel = match self.query_kernel(&notebook_id, &user_id, &access).await {
                    Ok(kernel) => kernel,
                    Err((code, message)) => return refused(request, code, message),
                };
                let answer = kernel.inspect(&code, cursor, detail_level);
                drop(kernel);
                return match answer.await {
                    Ok(inspection) => Reply::Inspection {
                        request,
                        inspection,
                    },
                    Err(error) => refused(request, "kernel_busy", error.to_string()),
                };
            }
            Command::Input {
                notebook_id,
                user_id,
                value,
                ..
            } => match self.running(&notebook_id).await {
                Some(session) => session
                    .answer_input(&user_id, value)
                    .await
                    .map(|()| Vec::new()),
                None => Err(SessionError::NoInput),
            },
            Command::ReadOutput {
                notebook_id, file, ..
            } => {
                return match self.read_output(&notebook_id, &file).await {
                    Ok(text) => Reply::Output { request, text },
                    Err(message) => Reply::Error {
                        request,
                        code: "not_found".to_owned(),
                        message,
                    },
                };
            }
            Command::Restart {
                notebook_id,
                user_id,
                user_name,
                access,
                ..
            } => match self.running(&notebook_id).await {
                Some(session) => {
                    let caller = Holder {
                        id: user_id,
                        name: user_name,
                    };
                    if let Err((code, message)) = self
                        .authorize(&notebook_id, &caller, &access, Action::Restart)
                        .await
                    {
                        return refused(request, code, message);
                    }
                    // A takeover: the fresh kernel sees its new holder's drive.
                    self.point_drive(&notebook_id).await;
                    session.restart().await.map(|()| Vec::new())
                }
                None => Ok(Vec::new()),
            },
        };
        match result {
            Ok(queued) => Reply::Ok { request, queued },
            Err(err) => {
                let code = match err {
                    SessionError::UnknownCell(_) | SessionError::NotACodeCell(_) => "unknown_cell",
                    SessionError::Connect(_) | SessionError::Closed => "runtime_error",
                    SessionError::NoInput => "no_input",
                    SessionError::NotYourInput(_) => "input_not_yours",
                };
                Reply::Error {
                    request,
                    code: code.to_owned(),
                    message: err.to_string(),
                }
            }
        }
    }

    /// The notebook's running kernel, for a completion or inspection by `user_id`: they must
    /// be allowed to run code in it (the execute rule), and nothing is started for them.
    async fn query_kernel(
        &self,
        notebook_id: &str,
        user_id: &str,
        access: &RuntimeAccess,
    ) -> Result<std::sync::Arc<crate::kernel::Kernel>, (&'static str, String)> {
        let no_kernel = || {
            (
                "no_kernel",
                "no kernel runs in this notebook yet: run a cell to start one".to_owned(),
            )
        };
        let session = self.running(notebook_id).await.ok_or_else(no_kernel)?;
        let caller = Holder {
            id: user_id.to_owned(),
            name: String::new(),
        };
        self.authorize(notebook_id, &caller, access, Action::Query)
            .await?;
        session.kernel().await.ok_or_else(no_kernel)
    }

    /// Switches a notebook between the CPU and GPU runtimes: its session (and kernel) is
    /// replaced by one on the new device, started at once so everyone sees the change.
    async fn set_runtime(
        &self,
        notebook_id: &str,
        runtime: &str,
        caller: &Holder,
        access: &RuntimeAccess,
    ) -> Result<(), (&'static str, String)> {
        let gpu = runtime == "gpu";
        if gpu && !self.cuda_available().await {
            return Err((
                "gpu_unavailable",
                "no GPU runtime here: this server has no CUDA build or no usable NVIDIA GPU; \
                 the notebook stays on the CPU"
                    .to_owned(),
            ));
        }
        if gpu == self.gpu.lock().await.contains(notebook_id) {
            return Ok(());
        }
        // A switch restarts the kernel: the same rule as a restart.
        self.authorize(notebook_id, caller, access, Action::Restart)
            .await?;
        self.point_drive(notebook_id).await;
        let changed = {
            let mut set = self.gpu.lock().await;
            if gpu {
                set.insert(notebook_id.to_owned())
            } else {
                set.remove(notebook_id)
            }
        };
        if !changed {
            return Ok(());
        }
        let old = self.sessions.lock().await.remove(notebook_id);
        if let Some(old) = old {
            old.shutdown().await;
        }
        self.start_session(notebook_id, true)
            .await
            .map(|_| ())
            .map_err(|e| ("runtime_error", e.to_string()))
    }

    /// The full text of a truncated output of `notebook_id`, from the file its session wrote.
    async fn read_output(&self, notebook_id: &str, file: &str) -> Result<String, String> {
        // A plain file name: nothing that could leave the notebook's output folder.
        let plain = !file.is_empty()
            && file.len() <= 200
            && !file.starts_with('.')
            && file
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let dir = self
            .kernel
            .workdir
            .join(notebook_id)
            .join(crate::session::FULL_OUTPUT_DIR);
        if !plain || !crate::session::is_safe_id(notebook_id) {
            return Err(format!("no saved output {file:?}"));
        }
        let path = dir.join(file);
        let size = tokio::fs::metadata(&path)
            .await
            .map_err(|_| format!("no saved output {file:?}"))?
            .len();
        if size > MAX_OUTPUT_DOWNLOAD {
            return Err(format!(
                "the saved output is {size} bytes, more than can be sent ({MAX_OUTPUT_DOWNLOAD})"
            ));
        }
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| format!("cannot read {file:?}: {e}"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// A refusal from [`Node::authorize`] as the reply to `request`.
fn refused(request: u64, code: &str, message: String) -> Reply {
    Reply::Error {
        request,
        code: code.to_owned(),
        message,
    }
}
