//! The session's task: the queue, the kernel and every write to the document.
//!
//! One task per notebook, so the queue and the document writes need no locks: it waits for
//! whichever comes first of a command, the kernel becoming ready, an event of the running
//! cell, the stream flush timer, the interrupt grace timer, the idle kernel dying, the
//! replica catching up with a waiting execute's state vector, or the notebook connection
//! closing, handles it, then starts the next queued cell if it can.

mod stale;

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::time::Instant;

use tandem_client::{DocConnection, UpdateEvent};
use tandem_crdt::{ExecutionState, Notebook};

use super::deps::Deps;
use super::doc::{self, KernelState, KernelStatus, Lookup};
use super::outputs::{CellOutput, Displays};
use super::{CATCH_UP, Command, Requester, SHUTDOWN_GRACE, SessionConfig, SessionError};
use crate::kernel::{Death, ExecStatus, Execution, Kernel, KernelError, KernelEvent, Output};

/// A queued cell.
#[derive(Debug, Clone)]
struct Entry {
    cell_id: String,
    group: Option<u64>,
    /// Who asked: `(id, name)`, written to the cell's `execution_by` when it starts.
    by: Option<(String, String)>,
}

/// An execute waiting for the replica to include its requester's state vector.
struct Waiting {
    cell_ids: Vec<String>,
    stale: bool,
    group: Option<u64>,
    requester: Requester,
    reply: tokio::sync::oneshot::Sender<Result<Vec<String>, SessionError>>,
    deadline: Instant,
}

enum Slot {
    None,
    Starting(BoxFuture<'static, Result<Kernel, KernelError>>),
    Ready(Arc<Kernel>),
}

struct Running {
    entry: Entry,
    execution: Execution,
    output: CellOutput,
    interrupt_deadline: Option<Instant>,
}

/// What woke the task up.
enum Input {
    Command(Option<Command>),
    Started(Result<Kernel, KernelError>),
    Event(Option<KernelEvent>),
    Flush,
    InterruptGrace,
    Died(Death),
    IdleTimeout,
    LifetimeOver,
    CaughtUp,
    Disconnected,
    /// Someone else changed the document (stale marks may need updating).
    DocChanged,
    /// The debounce after document changes is over.
    StaleCheck,
}

pub(super) struct Actor {
    config: SessionConfig,
    conn: DocConnection,
    notebook: Notebook,
    commands: mpsc::Receiver<Command>,
    slot: Slot,
    queue: VecDeque<Entry>,
    /// Executes not yet queued, in arrival order, the first waiting for the replica to catch up.
    waiting: VecDeque<Waiting>,
    running: Option<Running>,
    displays: Displays,
    state: KernelState,
    /// What `state.kernel` holds in the document, as last written.
    written: Option<KernelState>,
    /// Numbers runs, so each cell run beyond the cap gets its own full-output file.
    runs: u64,
    /// Set when the kernel was killed because an interrupt did not stop the cell.
    killed_after_interrupt: bool,
    /// Since when the ready kernel has had nothing to run.
    idle_since: Option<Instant>,
    /// When the current kernel became ready.
    kernel_started: Option<Instant>,
    /// What each cell ran, for stale marks and warnings (`session/deps.rs`).
    deps: Deps,
    /// The cells this session has marked `tandem_stale`.
    marked: HashSet<String>,
    /// Updates from other peers, which may change sources.
    updates: mpsc::UnboundedReceiver<UpdateEvent>,
    /// When to bring the stale marks up to date after document changes.
    stale_check_at: Option<Instant>,
}

impl Actor {
    pub(super) fn new(
        config: SessionConfig,
        conn: DocConnection,
        notebook: Notebook,
        commands: mpsc::Receiver<Command>,
        kernel: Option<Kernel>,
    ) -> Self {
        let mut state = KernelState::new(config.runtime);
        state.gpu = config.gpu.clone();
        let (slot, kernel_started) = match kernel {
            Some(kernel) => {
                state.status = KernelStatus::Idle;
                state.lifetime_ends_at = Some(epoch_ms_after(config.max_lifetime));
                (Slot::Ready(Arc::new(kernel)), Some(Instant::now()))
            }
            None => (Slot::None, None),
        };
        let updates = conn.subscribe_updates();
        Actor {
            config,
            conn,
            notebook,
            commands,
            slot,
            queue: VecDeque::new(),
            waiting: VecDeque::new(),
            running: None,
            displays: Displays::default(),
            state,
            written: None,
            runs: 0,
            killed_after_interrupt: false,
            idle_since: None,
            kernel_started,
            deps: Deps::default(),
            marked: HashSet::new(),
            updates,
            stale_check_at: None,
        }
    }

    pub(super) async fn run(mut self) {
        // A session that crashed earlier may have left cells queued or running.
        for cell in self.notebook.cells() {
            if matches!(
                cell.execution_state,
                Some(ExecutionState::Queued | ExecutionState::Running)
            ) {
                self.set_cell_state(&cell.id, ExecutionState::Idle);
            }
        }
        self.stale_init();
        self.write_state();
        if self.config.eager_start && matches!(self.slot, Slot::None) {
            self.begin_start();
        }
        loop {
            match self.next_input().await {
                Input::Command(None) | Input::Disconnected => break,
                Input::Command(Some(Command::Shutdown(reply))) => {
                    self.shutdown().await;
                    let _ = reply.send(());
                    return;
                }
                Input::Command(Some(command)) => self.command(command),
                Input::Started(result) => self.started(result),
                Input::Event(Some(event)) => self.event(event),
                // The manager always ends a cell with `Done`; a closed channel means the
                // kernel is gone without one, so treat it as that.
                Input::Event(None) => self.done(ExecStatus::Error, None),
                Input::Flush => {
                    if let Some(running) = &mut self.running {
                        running.output.flush(&self.notebook, &mut self.displays);
                    }
                }
                Input::InterruptGrace => self.interrupt_expired(),
                Input::Died(death) => self.died(&death),
                Input::IdleTimeout => self.idle_timeout(),
                Input::LifetimeOver => self.lifetime_over(),
                Input::CaughtUp => self.admit_waiting(),
                Input::DocChanged => self.doc_changed(),
                Input::StaleCheck => {
                    self.stale_check_at = None;
                    self.refresh_stale();
                }
            }
            self.pump();
        }
        tracing::info!("notebook connection ended; stopping the session");
        self.shutdown().await;
    }

    async fn next_input(&mut self) -> Input {
        let (idle_since, kernel_started) = (self.idle_since, self.kernel_started);
        let (idle_timeout, max_lifetime) = (self.config.idle_timeout, self.config.max_lifetime);
        let stale_at = self.stale_check_at;
        let Actor {
            commands,
            slot,
            running,
            conn,
            waiting,
            updates,
            ..
        } = self;
        let idle = running.is_none();
        let flush_at = running.as_ref().and_then(|r| r.output.flush_at());
        let interrupt_at = running.as_ref().and_then(|r| r.interrupt_deadline);
        let ready = matches!(slot, Slot::Ready(_));
        let idle_at = idle_since
            .filter(|_| ready && idle)
            .map(|since| since + idle_timeout);
        let lifetime_at = kernel_started
            .filter(|_| ready)
            .map(|started| started + max_lifetime);
        let kernel = async {
            match slot {
                Slot::Starting(start) => Input::Started(start.await),
                // While a cell runs its `Done` reports a death; watching here too would race it.
                Slot::Ready(kernel) if idle => Input::Died(kernel.wait().await),
                _ => std::future::pending().await,
            }
        };
        let event = async {
            match running {
                Some(running) => running.execution.recv().await,
                None => std::future::pending().await,
            }
        };
        let caught_up = async {
            let Some(first) = waiting.front() else {
                return std::future::pending().await;
            };
            let wanted = first.requester.state_vector.as_ref();
            let left = first.deadline.saturating_duration_since(Instant::now());
            let includes =
                |doc: &yrs::Doc| wanted.is_none_or(|sv| tandem_crdt::doc_includes(doc, sv));
            match conn.wait_until(includes, left).await {
                Err(tandem_client::ConnectionError::Closed(_)) => Input::Disconnected,
                // Caught up, or out of time: either way the execute goes ahead.
                _ => Input::CaughtUp,
            }
        };
        let at = |deadline: Option<Instant>| async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Commands and the interrupt timer before kernel events: a cell that floods
            // events must not be able to delay its own interrupt. Commands are rare, so
            // events are never starved in turn. (Stream flushes need no priority: the
            // writer flushes inline once the interval is over.)
            biased;
            command = commands.recv() => Input::Command(command),
            () = at(interrupt_at) => Input::InterruptGrace,
            event = event => Input::Event(event),
            input = kernel => input,
            () = at(flush_at) => Input::Flush,
            () = at(lifetime_at) => Input::LifetimeOver,
            () = at(idle_at) => Input::IdleTimeout,
            _ = conn.closed() => Input::Disconnected,
            input = caught_up => input,
            Some(_) = updates.recv() => Input::DocChanged,
            () = at(stale_at) => Input::StaleCheck,
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Execute {
                cell_ids,
                stale,
                group,
                requester,
                reply,
            } => {
                self.waiting.push_back(Waiting {
                    cell_ids,
                    stale,
                    group,
                    requester,
                    reply,
                    deadline: Instant::now() + CATCH_UP,
                });
                self.admit_waiting();
            }
            Command::Interrupt(reply) => {
                self.drop_waiting();
                self.interrupt();
                let _ = reply.send(());
            }
            Command::Restart(reply) => {
                self.drop_waiting();
                self.restart();
                let _ = reply.send(());
            }
            // Handled by the loop, which must await the kernel's exit.
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    /// Queues the waiting executes, in order, whose requester's edits this replica has (or
    /// that waited long enough); stops at the first that must wait on.
    fn admit_waiting(&mut self) {
        let now = Instant::now();
        while let Some(first) = self.waiting.front() {
            let ready = match &first.requester.state_vector {
                None => true,
                Some(sv) => tandem_crdt::doc_includes(self.notebook.doc(), sv),
            };
            if !ready && now < first.deadline {
                return;
            }
            let Some(waiting) = self.waiting.pop_front() else {
                return;
            };
            if !ready {
                tracing::warn!(
                    wait = ?CATCH_UP,
                    "the requester's edits did not arrive in time; running the code as it is here"
                );
            }
            let by = waiting.requester.user;
            let cell_ids = if waiting.stale {
                self.stale_order()
            } else {
                waiting.cell_ids
            };
            let _ = waiting
                .reply
                .send(self.enqueue(cell_ids, waiting.group, by));
        }
    }

    /// An interrupt or restart clears the queue, and with it the executes asked for before it
    /// that were still waiting to be queued.
    fn drop_waiting(&mut self) {
        for waiting in std::mem::take(&mut self.waiting) {
            let _ = waiting.reply.send(Ok(Vec::new()));
        }
    }

    fn enqueue(
        &mut self,
        cell_ids: Vec<String>,
        group: Option<u64>,
        by: Option<(String, String)>,
    ) -> Result<Vec<String>, SessionError> {
        for id in &cell_ids {
            match doc::code_source(&self.notebook, id) {
                Ok(_) => {}
                Err(Lookup::NotFound) => return Err(SessionError::UnknownCell(id.clone())),
                Err(Lookup::NotCode) => return Err(SessionError::NotACodeCell(id.clone())),
            }
        }
        for id in &cell_ids {
            if self.queue.iter().any(|entry| &entry.cell_id == id) {
                continue;
            }
            self.queue.push_back(Entry {
                cell_id: id.clone(),
                group,
                by: by.clone(),
            });
            self.set_cell_state(id, ExecutionState::Queued);
        }
        tracing::debug!(cells = cell_ids.len(), ?group, "queued");
        self.sync_queue();
        Ok(cell_ids)
    }

    fn interrupt(&mut self) {
        self.clear_queue();
        let Some(running) = &mut self.running else {
            return;
        };
        if let Slot::Ready(kernel) = &self.slot {
            tracing::info!(cell = %running.entry.cell_id, "interrupting");
            if let Err(error) = kernel.interrupt() {
                tracing::warn!(%error, "could not interrupt the kernel");
            }
            running
                .interrupt_deadline
                .get_or_insert(Instant::now() + self.config.interrupt_grace);
        }
    }

    fn interrupt_expired(&mut self) {
        let Some(running) = &mut self.running else {
            return;
        };
        running.interrupt_deadline = None;
        if let Slot::Ready(kernel) = &self.slot {
            tracing::warn!(cell = %running.entry.cell_id, "the interrupt did not stop the cell; killing the kernel");
            self.killed_after_interrupt = true;
            if let Err(error) = kernel.kill() {
                tracing::warn!(%error, "could not kill the kernel");
            }
        }
    }

    /// The kernel had nothing to run for the idle timeout: stop it; the next execute starts
    /// a fresh one.
    fn idle_timeout(&mut self) {
        tracing::info!(idle = ?self.config.idle_timeout, "shutting down the idle kernel");
        // Dropping the kernel kills its process group.
        self.slot = Slot::None;
        self.kernel_started = None;
        self.kernel_gone();
        self.state.status = KernelStatus::NotStarted;
        self.state.reason = Some(format!(
            "shut down after {} without running a cell",
            humantime::format_duration(self.config.idle_timeout)
        ));
        self.write_state();
    }

    /// The kernel reached its maximum lifetime: stop it, busy or not.
    fn lifetime_over(&mut self) {
        let reason = format!(
            "stopped at its maximum lifetime of {}",
            humantime::format_duration(self.config.max_lifetime)
        );
        tracing::info!(%reason, "stopping the kernel");
        if let Some(mut running) = self.running.take() {
            running.output.finish(&self.notebook, &mut self.displays);
            let output = Output::Error {
                ename: "KernelLifetimeExceeded".into(),
                evalue: reason.clone(),
                traceback: vec![format!(
                    "\x1b[31mKernelLifetimeExceeded\x1b[39m: the kernel was {reason}"
                )],
            };
            if let Ok(json) = serde_json::to_value(&output) {
                let _ = self.notebook.append_output(&running.entry.cell_id, &json);
            }
            self.set_cell_state(&running.entry.cell_id, ExecutionState::Idle);
        }
        self.slot = Slot::None;
        self.kernel_started = None;
        self.kernel_gone();
        self.clear_queue();
        self.state.status = KernelStatus::Dead;
        self.state.running = None;
        self.state.reason = Some(reason);
        self.write_state();
    }

    fn restart(&mut self) {
        tracing::info!("restarting the kernel");
        if let Some(mut running) = self.running.take() {
            running.output.finish(&self.notebook, &mut self.displays);
            self.set_cell_state(&running.entry.cell_id, ExecutionState::Idle);
        }
        // Dropping the kernel kills its process group.
        self.slot = Slot::None;
        self.kernel_gone();
        self.clear_queue();
        self.state.running = None;
        self.begin_start();
    }

    async fn shutdown(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.output.finish(&self.notebook, &mut self.displays);
            self.set_cell_state(&running.entry.cell_id, ExecutionState::Idle);
        }
        self.clear_queue();
        if let Slot::Ready(kernel) = std::mem::replace(&mut self.slot, Slot::None) {
            kernel.shutdown(SHUTDOWN_GRACE).await;
        }
        self.state.status = KernelStatus::NotStarted;
        self.state.running = None;
        self.state.reason = None;
        self.write_state();
        self.conn.close().await;
    }

    fn begin_start(&mut self) {
        let options = self.config.kernel.clone();
        self.slot = Slot::Starting(Box::pin(Kernel::start(options)));
        self.state.status = KernelStatus::Starting;
        // A fresh kernel counts from 1 again.
        self.state.execution_count = None;
        self.state.reason = None;
        self.write_state();
    }

    fn started(&mut self, result: Result<Kernel, KernelError>) {
        match result {
            Ok(kernel) => {
                tracing::info!(pid = kernel.pid(), "kernel ready");
                self.slot = Slot::Ready(Arc::new(kernel));
                self.kernel_started = Some(Instant::now());
                self.state.lifetime_ends_at = Some(epoch_ms_after(self.config.max_lifetime));
                self.state.status = KernelStatus::Idle;
                self.write_state();
            }
            Err(error) => {
                tracing::warn!(%error, "the kernel did not start");
                self.slot = Slot::None;
                // The cell that asked for the kernel says why nothing ran.
                if let Some(first) = self.queue.pop_front() {
                    let output = Output::Error {
                        ename: "KernelStartError".into(),
                        evalue: error.to_string(),
                        traceback: vec![format!("\x1b[31mKernelStartError\x1b[39m: {error}")],
                    };
                    self.fail_cell(&first.cell_id, output);
                }
                self.clear_queue();
                self.state.status = KernelStatus::Dead;
                self.state.reason = Some(error.to_string());
                self.write_state();
            }
        }
    }

    /// Starts the next queued cell, or the kernel it needs.
    fn pump(&mut self) {
        if self.running.is_some() || self.queue.is_empty() {
            return;
        }
        let kernel = match &self.slot {
            Slot::Ready(kernel) => Arc::clone(kernel),
            Slot::Starting(_) => return,
            Slot::None => return self.begin_start(),
        };
        while let Some(entry) = self.queue.pop_front() {
            let id = entry.cell_id.clone();
            // The code as it is now: edits made while the cell was queued count.
            let Ok(code) = doc::code_source(&self.notebook, &id) else {
                tracing::debug!(cell = %id, "queued cell was deleted or changed type");
                continue;
            };
            let _ = self.notebook.clear_outputs(&id);
            self.displays.forget_cell(&id);
            let _ = self.notebook.set_execution_count(&id, None);
            if let Some((user_id, name)) = &entry.by {
                let _ = self.notebook.set_execution_by(&id, user_id, name);
            }
            self.set_cell_state(&id, ExecutionState::Running);
            self.state.status = KernelStatus::Busy;
            self.state.running = Some(id.clone());
            self.sync_queue();
            match self.submit(&kernel, &id, &code) {
                Ok(execution) => {
                    self.runs += 1;
                    let output =
                        CellOutput::new(&id, self.config.output_cap_bytes, self.spill_path(&id));
                    self.running = Some(Running {
                        entry,
                        execution,
                        output,
                        interrupt_deadline: None,
                    });
                }
                Err(KernelError::Dead(death)) => {
                    self.fail_cell(&id, death.to_error_output());
                    self.died(&death);
                }
                Err(error) => {
                    let output = Output::Error {
                        ename: "KernelError".into(),
                        evalue: error.to_string(),
                        traceback: vec![error.to_string()],
                    };
                    self.fail_cell(&id, output);
                    continue;
                }
            }
            return;
        }
        self.state.status = KernelStatus::Idle;
        self.state.running = None;
        self.write_state();
    }

    fn event(&mut self, event: KernelEvent) {
        let Some(running) = &mut self.running else {
            return;
        };
        match event {
            KernelEvent::Output(output) => {
                running
                    .output
                    .push(&self.notebook, &mut self.displays, output);
            }
            KernelEvent::ClearOutput { wait } => {
                running
                    .output
                    .clear(&self.notebook, &mut self.displays, wait);
            }
            KernelEvent::UpdateDisplay {
                display_id,
                data,
                metadata,
            } => {
                // Buffered clears and text first, so the indices the update uses are current.
                running.output.flush(&self.notebook, &mut self.displays);
                self.displays
                    .update(&self.notebook, &display_id, &data, &metadata);
            }
            KernelEvent::Names { cell, peers } => self.names(cell, peers),
            KernelEvent::SecretRequest { id, name } => {
                if let Slot::Ready(kernel) = &self.slot {
                    crate::secrets::answer(
                        Arc::clone(kernel),
                        self.config.secrets.clone(),
                        self.config.notebook_id.clone(),
                        running
                            .entry
                            .by
                            .as_ref()
                            .map(|(user_id, _)| user_id.clone()),
                        id,
                        name,
                    );
                }
            }
            KernelEvent::Variables(variables) => {
                self.state.variables = variables;
                self.write_state();
            }
            KernelEvent::Done {
                status,
                execution_count,
            } => self.done(status, execution_count),
        }
    }

    fn done(&mut self, status: ExecStatus, execution_count: Option<u32>) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let id = running.entry.cell_id.clone();
        running.output.finish(&self.notebook, &mut self.displays);
        let _ = self
            .notebook
            .set_execution_count(&id, execution_count.map(i64::from));
        self.set_cell_state(&id, ExecutionState::Idle);
        if execution_count.is_some() {
            self.state.execution_count = execution_count;
        }
        self.state.running = None;
        tracing::debug!(cell = %id, ?status, ?execution_count, "cell done");
        self.refresh_stale();
        if status == ExecStatus::Error
            && let Some(group) = running.entry.group
        {
            let (dropped, kept) = std::mem::take(&mut self.queue)
                .into_iter()
                .partition::<Vec<_>, _>(|entry| entry.group == Some(group));
            self.queue = kept.into();
            for entry in dropped {
                self.set_cell_state(&entry.cell_id, ExecutionState::Idle);
            }
        }
        let death = match &self.slot {
            Slot::Ready(kernel) => kernel.exited(),
            _ => None,
        };
        match death {
            Some(death) => self.died(&death),
            None => {
                self.state.status = KernelStatus::Idle;
                self.sync_queue();
            }
        }
    }

    /// The kernel process ended by itself (or was killed after an interrupt).
    fn died(&mut self, death: &Death) {
        let reason = if std::mem::take(&mut self.killed_after_interrupt) {
            format!(
                "the kernel was killed because the cell did not stop within {:?} of the interrupt",
                self.config.interrupt_grace
            )
        } else {
            death.to_string()
        };
        tracing::warn!(%reason, "kernel died");
        self.slot = Slot::None;
        self.kernel_gone();
        self.clear_queue();
        self.state.status = KernelStatus::Dead;
        self.state.running = None;
        self.state.reason = Some(reason);
        self.write_state();
    }

    /// Shows `output` as the cell's only output and leaves it idle.
    fn fail_cell(&mut self, id: &str, output: Output) {
        let _ = self.notebook.clear_outputs(id);
        self.displays.forget_cell(id);
        if let Ok(json) = serde_json::to_value(&output) {
            let _ = self.notebook.append_output(id, &json);
        }
        let _ = self.notebook.set_execution_count(id, None);
        self.set_cell_state(id, ExecutionState::Idle);
    }

    fn clear_queue(&mut self) {
        for entry in std::mem::take(&mut self.queue) {
            self.set_cell_state(&entry.cell_id, ExecutionState::Idle);
        }
        self.sync_queue();
    }

    fn set_cell_state(&self, id: &str, state: ExecutionState) {
        if let Err(error) = self.notebook.set_execution_state(id, state) {
            tracing::debug!(cell = id, %error, "execution state not written");
        }
    }

    fn sync_queue(&mut self) {
        self.state.queue = self
            .queue
            .iter()
            .map(|entry| entry.cell_id.clone())
            .collect();
        self.write_state();
    }

    /// Writes what changed in `state.kernel` since the last write, after bringing the
    /// lifecycle announcements up to date.
    fn write_state(&mut self) {
        let ready = matches!(self.slot, Slot::Ready(_));
        if ready && self.running.is_none() && self.state.status == KernelStatus::Idle {
            if self.idle_since.is_none() {
                self.idle_since = Some(Instant::now());
                self.state.idle_shutdown_at = Some(epoch_ms_after(self.config.idle_timeout));
            }
        } else {
            self.idle_since = None;
            self.state.idle_shutdown_at = None;
        }
        if !ready {
            // A fresh kernel starts with an empty namespace (and reports only changes).
            self.kernel_started = None;
            self.state.lifetime_ends_at = None;
            self.state.variables.clear();
        }
        if self.written.as_ref() == Some(&self.state) {
            return;
        }
        doc::write_kernel_state(&self.notebook, &self.state, self.written.as_ref());
        self.written = Some(self.state.clone());
    }

    fn spill_path(&self, cell_id: &str) -> PathBuf {
        let dir = self
            .config
            .full_output_dir
            .clone()
            .unwrap_or_else(|| self.config.kernel.workdir.join(super::FULL_OUTPUT_DIR));
        dir.join(format!("{cell_id}-{}.txt", self.runs))
    }
}

/// Milliseconds since the Unix epoch, `after` from now.
fn epoch_ms_after(after: std::time::Duration) -> i64 {
    let at = std::time::SystemTime::now() + after;
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
