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
//! death) and [`stale`] (stale marks and warnings).

mod execution;
mod lifecycle;
mod queue;
mod resources;
mod stale;

use lifecycle::epoch_ms_after;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use futures_util::future::BoxFuture;
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
    slot: Slot,
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
    /// Samples of the kernel's memory and disk, from the sampler of each kernel
    /// (`actor/resources.rs`).
    usage: mpsc::UnboundedReceiver<(u32, crate::kernel::Usage)>,
    usage_sender: mpsc::UnboundedSender<(u32, crate::kernel::Usage)>,
}

impl Actor {
    pub(super) fn new(
        config: SessionConfig,
        link: Link,
        (notebook, status): (Notebook, Arc<super::Status>),
        commands: mpsc::Receiver<Command>,
        kernel: Option<Kernel>,
    ) -> Self {
        let mut state = KernelState::new(config.runtime);
        state.gpu = config.gpu.clone();
        let (slot, kernel_started) = match kernel {
            Some(kernel) => {
                state.status = KernelStatus::Idle;
                state.holder = config.holder.get();
                state.lifetime_ends_at = Some(epoch_ms_after(config.max_lifetime));
                (Slot::Ready(Arc::new(kernel)), Some(Instant::now()))
            }
            None => (Slot::None, None),
        };
        let updates = match &link.conn {
            Some(conn) => conn.subscribe_updates(),
            None => mpsc::unbounded_channel().1,
        };
        let (usage_sender, usage) = mpsc::unbounded_channel();
        if let Slot::Ready(kernel) = &slot {
            resources::sample(kernel, usage_sender.clone());
        }
        Actor {
            config,
            link,
            notebook,
            commands,
            slot,
            queue: queue::RunQueue::default(),
            waiting: VecDeque::new(),
            running: None,
            displays: Displays::default(),
            state,
            status,
            written: None,
            runs: 0,
            killed_after_interrupt: false,
            idle_since: None,
            kernel_started,
            deps: Deps::default(),
            marked: HashSet::new(),
            updates,
            stale_check_at: None,
            usage,
            usage_sender,
        }
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
        if self.config.eager_start && matches!(self.slot, Slot::None) {
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
        let (idle_since, kernel_started) = (self.idle_since, self.kernel_started);
        let (idle_timeout, max_lifetime) = (self.config.idle_timeout, self.config.max_lifetime);
        let stale_at = self.stale_check_at;
        let Actor {
            commands,
            slot,
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
