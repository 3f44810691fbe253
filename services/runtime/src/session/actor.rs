//! The session's task: the queue, the kernel and every write to the document.
//!
//! One task per notebook, so the queue and the document writes need no locks: it waits for
//! whichever comes first of a command, the kernel becoming ready, an event of the running
//! cell, the stream flush timer, the interrupt grace timer, the idle kernel dying, the
//! replica catching up with a waiting execute's state vector, or the notebook connection
//! closing, handles it, then starts the next queued cell if it can.
//!
//! The handlers live beside it: [`queue`] (commands, waiting executes, the queue),
//! [`execution`] (running cells), [`lifecycle`] (the kernel's start, interrupts, timers and
//! death) and [`stale`] (stale marks and warnings); [`slot`] holds the kernel and the facts
//! about it that its timers read.

mod execution;
mod lifecycle;
mod queue;
mod resources;
mod slot;
mod stale;

use lifecycle::epoch_ms_after;
use slot::KernelSlot;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use std::sync::atomic::{AtomicBool, Ordering};

use tandem_client::UpdateEvent;
use tandem_crdt::{ExecutionState, Notebook};

use super::deps::Deps;
use super::doc::{self, KernelState, KernelStatus};
use super::link::Link;
use super::outputs::{CellOutput, Displays};
use super::{Command, Requester, SessionConfig, SessionError};
use crate::kernel::{Death, ExecStatus, Execution, Kernel, KernelError, KernelEvent};

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

struct Running {
    entry: Entry,
    execution: Execution,
    output: CellOutput,
    interrupt_deadline: Option<Instant>,
    /// When it started (ISO 8601 UTC), for its `metadata.execution`.
    started_at: String,
    /// The id of the `input()` it waits in, if it does.
    input: Option<u64>,
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
    /// The notebook connection ended (with the close code and reason, when sent).
    Disconnected(Option<(u16, String)>),
    /// The search for a new notebook connection ended.
    Rejoined(super::link::Joined),
    /// Someone else changed the document (stale marks may need updating).
    DocChanged,
    /// The debounce after document changes is over.
    StaleCheck,
    /// A sample of a kernel's memory and disk (its pid, to drop samples of earlier kernels).
    Usage(u32, crate::kernel::Usage),
}

pub(super) struct Actor {
    config: SessionConfig,
    link: Link,
    notebook: Notebook,
    commands: mpsc::Receiver<Command>,
    /// The kernel, starting or ready, and when its timers run out.
    kernel: KernelSlot,
    queue: queue::RunQueue,
    /// Executes not yet queued, in arrival order, the first waiting for the replica to catch up.
    waiting: VecDeque<Waiting>,
    running: Option<Running>,
    displays: Displays,
    state: KernelState,
    /// Where the task publishes its status for the node.
    status: Arc<super::Status>,
    /// What `state.kernel` holds in the document, as last written.
    written: Option<KernelState>,
    /// Numbers runs, so each cell run beyond the cap gets its own full-output file.
    runs: u64,
    /// What each cell ran, for stale marks and warnings (`session/deps.rs`).
    deps: Deps,
    /// The cells this session has marked `tandem_stale`.
    marked: HashSet<String>,
    /// Updates from other peers, which may change sources.
    updates: mpsc::UnboundedReceiver<UpdateEvent>,
    /// When to bring the stale marks up to date after document changes.
    stale_check_at: Option<Instant>,
    /// Samples of the kernel's memory and disk, from the sampler of each kernel
    /// (`actor/resources.rs`).
    usage: mpsc::UnboundedReceiver<(u32, crate::kernel::Usage)>,
    usage_sender: mpsc::UnboundedSender<(u32, crate::kernel::Usage)>,
}

impl Actor {
    pub(super) fn new(
        config: SessionConfig,
        link: Link,
        notebook: Notebook,
        status: Arc<super::Status>,
        commands: mpsc::Receiver<Command>,
        kernel: Option<Kernel>,
    ) -> Self {
        let mut state = KernelState::new(config.runtime);
        state.gpu = config.gpu.clone();
        let mut slot = KernelSlot::default();
        if let Some(kernel) = kernel {
            state.status = KernelStatus::Idle;
            state.holder = config.holder.get();
            state.lifetime_ends_at = Some(epoch_ms_after(config.max_lifetime));
            slot.started(kernel, Instant::now());
        }
        let updates = match &link.conn {
            Some(conn) => conn.subscribe_updates(),
            None => mpsc::unbounded_channel().1,
        };
        let (usage_sender, usage) = mpsc::unbounded_channel();
        let actor = Actor {
            config,
            link,
            notebook,
            commands,
            kernel: slot,
            queue: queue::RunQueue::default(),
            waiting: VecDeque::new(),
            running: None,
            displays: Displays::default(),
            state,
            status,
            written: None,
            runs: 0,
            deps: Deps::default(),
            marked: HashSet::new(),
            updates,
            stale_check_at: None,
            usage,
            usage_sender,
        };
        actor.sample_kernel();
        actor
    }

    /// Runs the session until it is shut down, its last handle is dropped, or it cannot
    /// reach the notebook again in time (then `lost` is set).
    pub(super) async fn run(mut self, lost: Arc<AtomicBool>) {
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
        if self.config.eager_start && self.kernel.is_empty() {
            self.begin_start();
        }
        loop {
            match self.next_input().await {
                Input::Command(None) => break,
                Input::Disconnected(close) => {
                    let doc = self.notebook.doc().clone();
                    self.link.lost(&doc, self.config.reconnect_timeout, close);
                }
                Input::Rejoined(Ok((conn, base))) => {
                    self.updates = conn.subscribe_updates();
                    self.link.rejoined(conn, base);
                    // Others may have edited sources meanwhile.
                    self.doc_changed();
                }
                Input::Rejoined(Err(error)) => {
                    self.link.rejoining = None;
                    tracing::error!(%error, timeout = ?self.config.reconnect_timeout, "no collab node reachable; ending the kernel");
                    lost.store(true, Ordering::Release);
                    self.unreachable().await;
                    return;
                }
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
                Input::Usage(pid, usage) => self.usage(pid, usage),
            }
            self.pump();
        }
        tracing::info!("every handle dropped; stopping the session");
        self.shutdown().await;
    }

    async fn next_input(&mut self) -> Input {
        let idle = self.running.is_none();
        let idle_at = self
            .kernel
            .idle_deadline(self.config.idle_timeout)
            .filter(|_| idle);
        let lifetime_at = self.kernel.lifetime_deadline(self.config.max_lifetime);
        let stale_at = self.stale_check_at;
        let Actor {
            commands,
            kernel,
            running,
            link,
            waiting,
            updates,
            usage,
            ..
        } = self;
        let Link {
            conn, rejoining, ..
        } = link;
        let conn = conn.as_ref();
        let flush_at = running.as_ref().and_then(|r| r.output.flush_at());
        let interrupt_at = running.as_ref().and_then(|r| r.interrupt_deadline);
        let kernel = kernel.change(idle);
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
            match conn {
                // Closed: the connection's own branch reports it.
                Some(conn) => match conn.wait_until(includes, left).await {
                    Err(tandem_client::ConnectionError::Closed(_)) => std::future::pending().await,
                    // Caught up, or out of time: either way the execute goes ahead.
                    _ => Input::CaughtUp,
                },
                // Nothing arrives while the session looks for a collab node.
                None => {
                    tokio::time::sleep(left).await;
                    Input::CaughtUp
                }
            }
        };
        let connection = async {
            match (conn, rejoining) {
                (Some(conn), _) => Input::Disconnected(conn.closed().await),
                (None, Some(search)) => Input::Rejoined(search.await),
                (None, None) => std::future::pending().await,
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
            input = connection => input,
            input = caught_up => input,
            Some(_) = updates.recv() => Input::DocChanged,
            () = at(stale_at) => Input::StaleCheck,
            Some((pid, sample)) = usage.recv() => Input::Usage(pid, sample),
        }
    }

    fn set_cell_state(&self, id: &str, state: ExecutionState) {
        if let Err(error) = self.notebook.set_execution_state(id, state) {
            tracing::debug!(cell = id, %error, "execution state not written");
        }
    }

    /// Writes what changed in `state.kernel` since the last write, after bringing the
    /// lifecycle announcements up to date.
    fn write_state(&mut self) {
        let ready = self.kernel.ready().is_some();
        if ready && self.running.is_none() && self.state.status == KernelStatus::Idle {
            if self.kernel.went_idle(Instant::now()) {
                self.state.idle_shutdown_at = Some(epoch_ms_after(self.config.idle_timeout));
            }
        } else {
            self.kernel.busy();
            self.state.idle_shutdown_at = None;
        }
        if !ready {
            // A fresh kernel starts with an empty namespace (and reports only changes).
            self.state.lifetime_ends_at = None;
            self.state.variables.clear();
            self.state.resources = None;
        }
        if self
            .running
            .as_ref()
            .is_none_or(|running| running.input.is_none())
        {
            self.state.input = None;
        }
        if matches!(
            self.state.status,
            KernelStatus::NotStarted | KernelStatus::Dead
        ) {
            // Nobody's runtime: the next execute starts one for whoever sends it.
            self.state.holder = None;
        }
        self.status
            .publish(&self.state.status, self.state.queue.len());
        if self.written.as_ref() == Some(&self.state) {
            return;
        }
        doc::write_kernel_state(&self.notebook, &self.state, self.written.as_ref());
        self.written = Some(self.state.clone());
    }
}
