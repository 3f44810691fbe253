//! Command dispatch: each [`Command`] from either link turned into calls on the notebook's
//! session, after [`Node::authorize`] (whose runtime it is, and the per-user kernel limit:
//! `holders.rs`), with runtime switches and saved-output downloads. Each request type has a
//! handler that answers with that type's response ([`Request::Response`]) or a [`Refusal`].

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tandem_protocol::ids::NotebookId;
use tandem_protocol::runtime::{
    Body, Caller, Command, Complete, ErrorCode, Execute, Input, Inspect, Interrupt, ReadOutput,
    Refusal, Reply, Request, Restart, RuntimeAccess, RuntimeKind, SetRuntime, Target, outcome,
};
use tandem_protocol::{Completions, Inspection};

use super::Node;
use super::holders::Action;
use crate::kernel::Kernel;
use crate::session::{Holder, SessionError};

/// Largest saved output sent back through the control channel.
const MAX_OUTPUT_DOWNLOAD: u64 = 32 * 1024 * 1024;

impl Node {
    /// Handles a command from either link and says what came of it.
    pub(super) async fn handle(&self, command: Command) -> Reply {
        let Command {
            request,
            notebook_id: id,
            body,
        } = command;
        let outcome = match body {
            Body::Execute(execute) => outcome::<Execute>(self.execute(&id, execute).await),
            Body::Interrupt(interrupt) => {
                outcome::<Interrupt>(self.interrupt(&id, interrupt).await)
            }
            Body::Restart(restart) => outcome::<Restart>(self.restart(&id, restart).await),
            Body::SetRuntime(switch) => outcome::<SetRuntime>(self.set_runtime(&id, switch).await),
            Body::Complete(complete) => outcome::<Complete>(self.complete(&id, complete).await),
            Body::Inspect(inspect) => outcome::<Inspect>(self.inspect(&id, inspect).await),
            Body::Input(input) => outcome::<Input>(self.input(&id, input).await),
            Body::ReadOutput(read) => outcome::<ReadOutput>(
                self.read_output(&id, &read.file)
                    .await
                    .map_err(|message| Refusal::new(ErrorCode::NotFound, message)),
            ),
        };
        Reply { request, outcome }
    }

    async fn execute(
        &self,
        notebook_id: &str,
        execute: Execute,
    ) -> Result<<Execute as Request>::Response, Refusal> {
        let Execute {
            target,
            caller,
            state_vector,
            access,
        } = execute;
        let (cells, stale) = match &target {
            Target::Cells(cells) | Target::All(cells) => (cells.len(), false),
            Target::Stale => (0, true),
        };
        tracing::info!(doc_id = %notebook_id, user_id = %caller.user_id, cells, stale, "execute");
        let group = (!matches!(target, Target::Cells(_)))
            .then(|| self.next_group.fetch_add(1, Ordering::Relaxed));
        let holder = holder(&caller);
        self.authorize(notebook_id, &holder, &access, Action::Execute)
            .await?;
        self.point_drive(notebook_id).await;
        let requester = crate::session::Requester::from_wire(
            &caller.user_id,
            &caller.user_name,
            state_vector.as_deref(),
        );
        let session = self.session(notebook_id).await.map_err(refusal)?;
        let queued = match target {
            Target::Stale => session.execute_stale(group, requester).await,
            Target::Cells(cells) | Target::All(cells) => {
                session.execute_for(cells, group, requester).await
            }
        }
        .map_err(refusal)?;
        crate::metrics::executions(queued.len());
        Ok(queued)
    }

    async fn interrupt(&self, notebook_id: &str, interrupt: Interrupt) -> Result<(), Refusal> {
        let Some(session) = self.running(notebook_id).await else {
            return Ok(());
        };
        let caller = holder(&interrupt.caller);
        self.authorize(notebook_id, &caller, &interrupt.access, Action::Interrupt)
            .await?;
        session.interrupt().await.map_err(refusal)
    }

    async fn restart(&self, notebook_id: &str, restart: Restart) -> Result<(), Refusal> {
        let Some(session) = self.running(notebook_id).await else {
            return Ok(());
        };
        let caller = holder(&restart.caller);
        self.authorize(notebook_id, &caller, &restart.access, Action::Restart)
            .await?;
        // A takeover: the fresh kernel sees its new holder's drive.
        self.point_drive(notebook_id).await;
        session.restart().await.map_err(refusal)
    }

    async fn complete(
        &self,
        notebook_id: &str,
        complete: Complete,
    ) -> Result<Completions, Refusal> {
        let kernel = self
            .query_kernel(notebook_id, &complete.user_id, &complete.access)
            .await?;
        // The answer is awaited without the kernel: a restart meanwhile ends it.
        let answer = kernel.complete(&complete.code, complete.cursor);
        drop(kernel);
        answer
            .await
            .map_err(|error| Refusal::new(ErrorCode::KernelBusy, error.to_string()))
    }

    async fn inspect(&self, notebook_id: &str, inspect: Inspect) -> Result<Inspection, Refusal> {
        let kernel = self
            .query_kernel(notebook_id, &inspect.user_id, &inspect.access)
            .await?;
        let answer = kernel.inspect(&inspect.code, inspect.cursor, inspect.detail_level);
        drop(kernel);
        answer
            .await
            .map_err(|error| Refusal::new(ErrorCode::KernelBusy, error.to_string()))
    }

    async fn input(&self, notebook_id: &str, input: Input) -> Result<(), Refusal> {
        let session = self
            .running(notebook_id)
            .await
            .ok_or_else(|| refusal(SessionError::NoInput))?;
        session
            .answer_input(&input.user_id, input.value)
            .await
            .map_err(refusal)
    }

    /// The notebook's running kernel, for a completion or inspection by `user_id`: they must
    /// be allowed to run code in it (the execute rule), and nothing is started for them.
    async fn query_kernel(
        &self,
        notebook_id: &str,
        user_id: &str,
        access: &RuntimeAccess,
    ) -> Result<Arc<Kernel>, Refusal> {
        let no_kernel = || {
            Refusal::new(
                ErrorCode::NoKernel,
                "no kernel runs in this notebook yet: run a cell to start one",
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
    async fn set_runtime(&self, notebook_id: &str, switch: SetRuntime) -> Result<(), Refusal> {
        let gpu = switch.runtime == RuntimeKind::Gpu;
        if gpu && !self.cuda_available().await {
            return Err(Refusal::new(
                ErrorCode::GpuUnavailable,
                "no GPU runtime here: this server has no CUDA build or no usable NVIDIA GPU; \
                 the notebook stays on the CPU",
            ));
        }
        let on_gpu = self
            .notebooks
            .lock()
            .await
            .get(notebook_id)
            .is_some_and(|entry| entry.gpu);
        if gpu == on_gpu {
            return Ok(());
        }
        // A switch restarts the kernel: the same rule as a restart.
        let caller = holder(&switch.caller);
        self.authorize(notebook_id, &caller, &switch.access, Action::Restart)
            .await?;
        self.point_drive(notebook_id).await;
        let old = {
            let mut notebooks = self.notebooks.lock().await;
            let entry = notebooks.entry(notebook_id.to_owned()).or_default();
            if entry.gpu == gpu {
                return Ok(());
            }
            entry.gpu = gpu;
            entry.session.take()
        };
        if let Some(old) = old {
            old.shutdown().await;
        }
        self.start_session(notebook_id, true)
            .await
            .map(|_| ())
            .map_err(refusal)
    }

    /// The full text of a truncated output of `notebook_id`, from the file its session wrote.
    async fn read_output(&self, notebook_id: &NotebookId, file: &str) -> Result<String, String> {
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
        if !plain {
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

/// Who asked, as the node records a kernel's holder.
fn holder(caller: &Caller) -> Holder {
    Holder {
        id: caller.user_id.clone(),
        name: caller.user_name.clone(),
    }
}

/// A session's failure as the runtime's refusal.
fn refusal(error: SessionError) -> Refusal {
    let code = match error {
        SessionError::UnknownCell(_) | SessionError::NotACodeCell(_) => ErrorCode::UnknownCell,
        SessionError::Connect(_) | SessionError::Closed => ErrorCode::RuntimeError,
        SessionError::NoInput => ErrorCode::NoInput,
        SessionError::NotYourInput(_) => ErrorCode::InputNotYours,
    };
    Refusal::new(code, error.to_string())
}
