//! A notebook session: one kernel and one execution queue per running notebook, writing
//! into the shared document as a peer of it.
//!
//! [`Session::start`] joins the notebook through the collab service with a
//! [`DocConnection`](tandem_client::DocConnection) (a y-websocket client like any editor's)
//! and spawns the session's task. When that connection drops the session keeps its kernel,
//! queue and document and rejoins through any collab node (`session/link.rs`); only after
//! [`SessionConfig::reconnect_timeout`] without one does it end the kernel.
//! The task owns the queue and the kernel and is the only writer of outputs, execution
//! counts, cells' `execution_state` and `state.kernel`, exactly as docs/design.md lays them out:
//!
//! - `state.kernel`: `status` (`"not_started"`, `"starting"`, `"idle"`, `"busy"`, `"dead"`),
//!   `runtime`, `execution_count` (the last one), `queue` (queued cell ids, in order),
//!   `running` (cell id or null), after a death `reason`, and while a kernel lives `holder`
//!   (`{"id", "name"}`: who it runs for, see [`Holder`]).
//! - Queued cells are `"queued"`. When a cell starts, its code is read from the document at
//!   that moment, its outputs are cleared, its count set to null, its state set to
//!   `"running"` and who asked for the run written to its `execution_by` (`{"id", "name"}`);
//!   when it ends, its count is set and its state is `"idle"`. Its timing goes into the cell's
//!   metadata as JupyterLab's "record timing" keeps it (`metadata.execution` with
//!   `iopub.status.busy`, `iopub.execute_input` and `shell.execute_reply.started` at the
//!   start, `shell.execute_reply` and `iopub.status.idle` at the end; ISO 8601 UTC), so it
//!   survives reloads and `.ipynb` exports.
//! - A cell that calls `input()` (or `getpass`) waits for the person who ran it:
//!   `state.kernel.input` is `{"cell", "prompt", "password", "by": {"id", "name"}}` until
//!   [`Session::answer_input`] (checked to come from them), an interrupt or the cell's end.
//! - `state.kernel.resources` (`memory_bytes`, `memory_limit_bytes`, `disk_bytes`,
//!   `disk_limit_bytes`, in MiB steps) is sampled every [`RESOURCES_INTERVAL`] while a kernel
//!   runs and written when it changes (see [`crate::kernel::Usage`]).
//! - An execute may carry the caller's state vector ([`Requester::state_vector`]): the session
//!   takes the cells into the queue only once its replica includes that state (the caller's
//!   last keystrokes travel to it through the collab service), or after [`CATCH_UP`] with a
//!   warning. Executes keep their order while one waits.
//! - Stream output is coalesced to one write per ~50 ms; see `session/outputs.rs` for
//!   `clear_output`, `update_display_data` and the per-cell output cap (beyond it: one
//!   truncation notice, the full text in a file under [`SessionConfig::full_output_dir`]).
//!
//! Queue rules: one FIFO per notebook. Cells queued together by one request share a group
//! (a run-all); the first error in a group dequeues the rest of that group, never another
//! group's cells. An interrupt raises `KeyboardInterrupt` in the running cell, kills the
//! kernel if the cell is still running after [`SessionConfig::interrupt_grace`], and clears
//! the queue. A restart kills the kernel, clears the queue and starts a fresh kernel (so the
//! counter starts again at 1). When the kernel dies (a crash, out of memory, `os._exit`) the
//! running cell gets an error output saying why, `state.kernel` becomes `"dead"` with the
//! `reason`, the queue is cleared (a fresh kernel has none of the state those cells expect)
//! and the next execute starts a fresh kernel.
//!
//! No hidden state (`session/deps.rs`, `session/actor/stale.rs`): each cell runs with its names
//! analysed first ([`Kernel::execute_analyzed`](crate::kernel::Kernel::execute_analyzed)); the
//! session warns in the cell about names from cells below or never run, keeps stale cells
//! marked (`tandem_stale` on the cell, `state.kernel.stale`) as cells run, kernels go and
//! sources change, and [`Session::execute_stale`] reruns what is stale.
//!
//! The kernel starts on the first execute, or at once with [`SessionConfig::eager_start`].
//!
//! Lifecycle limits are announced in `state.kernel` before they strike, so every client can
//! warn: while the kernel is idle, `idle_shutdown_at` says when it will be shut down for
//! inactivity ([`SessionConfig::idle_timeout`]; the kernel then goes back to `"not_started"`
//! and the next execute starts a fresh one); `lifetime_ends_at` says when it reaches its
//! maximum lifetime ([`SessionConfig::max_lifetime`]; it is then stopped even if busy, the
//! running cell gets an error saying why, and `status` is `"dead"` with that `reason`). Both
//! are milliseconds since the Unix epoch.

mod actor;
mod deps;
mod doc;
mod holder;
mod link;
mod outputs;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use tandem_client::ConnectionError;
use tandem_crdt::Notebook;

use crate::kernel::KernelOptions;

pub(crate) use doc::mark_orphaned;
pub use doc::{KERNEL_KEY, KernelStatus};
pub use holder::{Holder, HolderLink};
pub use outputs::STREAM_FLUSH_INTERVAL;

/// Default [`SessionConfig::output_cap_bytes`]: 1 MiB per cell, far more than anyone reads
/// in a notebook, small enough that a runaway loop cannot bloat the shared document.
pub const DEFAULT_OUTPUT_CAP_BYTES: usize = 1 << 20;

/// Default [`SessionConfig::interrupt_grace`]. Python handles `SIGINT` between bytecodes, so
/// a cell that has not stopped after this long is stuck in native code or ignores it.
pub const DEFAULT_INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// The folder, in the kernel's working directory, that holds the full text of truncated
/// outputs (unless [`SessionConfig::full_output_dir`] says otherwise).
pub const FULL_OUTPUT_DIR: &str = ".tandem-outputs";

/// Default [`SessionConfig::idle_timeout`]: 90 minutes, as Colab.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90 * 60);

/// Default [`SessionConfig::max_lifetime`]: 12 hours, as Colab.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The longest an execute waits for the caller's edits to reach this replica. They normally
/// arrive within milliseconds (the collab service waited for them already); past this the
/// cells run with what the session has, so a bogus state vector cannot stall the queue.
pub const CATCH_UP: Duration = Duration::from_secs(2);

/// Default [`SessionConfig::reconnect_timeout`]: long enough for a collab node to restart or
/// a load balancer to notice a dead one, short enough that a kernel nobody can reach does not
/// hold its memory (and its variables, which nobody can see) for long.
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the kernel's memory and disk use is sampled for `state.kernel.resources`. Only
/// changes of a MiB or more are written, so an idle kernel adds nothing to the document.
pub const RESOURCES_INTERVAL: Duration = Duration::from_secs(3);

/// How long a shutdown lets the kernel run its exit hooks before killing it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How to run one notebook session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The collab service's WebSocket roots, such as `ws://127.0.0.1:8080/ws`: every collab
    /// node, or one load balancer. The session joins through the first that answers and,
    /// when that connection drops, rejoins through any of them (`session/link.rs`).
    pub ws_bases: Vec<String>,
    /// How long a session whose notebook connection dropped keeps its kernel while it looks
    /// for a collab node; past it the kernel is ended and the notebook shows it dead.
    pub reconnect_timeout: Duration,
    /// The notebook to join.
    pub notebook_id: String,
    /// The credential the session joins with (it must be allowed to edit the notebook).
    pub token: String,
    /// How to start the kernel (each restart and each start after a death uses it again).
    pub kernel: KernelOptions,
    /// The most output one cell may put into the document; see the module doc.
    pub output_cap_bytes: usize,
    /// How long an interrupted cell may keep running before the kernel is killed.
    pub interrupt_grace: Duration,
    /// Start the kernel at once rather than on the first execute, so that execute is fast.
    pub eager_start: bool,
    /// Where the full output of cells beyond the cap is kept; `None`: the kernel's working
    /// directory's `.tandem-outputs`, so the notebook's own code can read it too.
    pub full_output_dir: Option<PathBuf>,
    /// `state.kernel.runtime`: `"cpu"` or `"gpu"`.
    pub runtime: tandem_crdt::kernel::KernelRuntime,
    /// `state.kernel.gpu` on a GPU runtime: the card's name and memory, for everyone to see.
    pub gpu: Option<String>,
    /// An idle kernel is shut down after this long without a cell running.
    pub idle_timeout: Duration,
    /// A kernel is stopped this long after it started, whatever it is doing.
    pub max_lifetime: Duration,
    /// Where running cells' `tandem.secrets.get` is answered from (the collab service);
    /// `None`: every lookup fails with `unavailable`.
    pub secrets: Option<std::sync::Arc<crate::secrets::Secrets>>,
    /// Who each kernel runs for, read when it starts (`state.kernel.holder`).
    pub holder: HolderLink,
}

impl SessionConfig {
    /// A configuration with the documented defaults.
    pub fn new(ws_base: &str, notebook_id: &str, token: &str, kernel: KernelOptions) -> Self {
        SessionConfig {
            ws_bases: vec![ws_base.to_owned()],
            reconnect_timeout: DEFAULT_RECONNECT_TIMEOUT,
            notebook_id: notebook_id.to_owned(),
            token: token.to_owned(),
            kernel,
            output_cap_bytes: DEFAULT_OUTPUT_CAP_BYTES,
            interrupt_grace: DEFAULT_INTERRUPT_GRACE,
            eager_start: false,
            full_output_dir: None,
            runtime: tandem_crdt::kernel::KernelRuntime::Cpu,
            gpu: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            secrets: None,
            holder: HolderLink::default(),
        }
    }
}

/// What a session can refuse.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Joining the notebook failed (refused, unreachable, or closed before syncing).
    #[error("could not join the notebook: {0}")]
    Connect(#[from] ConnectionError),
    /// An execute named a cell the notebook does not have.
    #[error("no cell {0} in this notebook")]
    UnknownCell(String),
    /// An execute named a markdown or raw cell.
    #[error("cell {0} is not a code cell")]
    NotACodeCell(String),
    /// The session has ended (shut down, or it could not reach the notebook again in time).
    #[error("the notebook session has ended")]
    Closed,
    /// An answer for `input()` came while no cell waits for one.
    #[error("no cell is waiting for input")]
    NoInput,
    /// An answer for `input()` came from someone other than who ran the waiting cell.
    #[error("the cell waiting for input was run by {0}: only they can answer it")]
    NotYourInput(String),
}

/// Who asked for a run, and what they had seen when they asked.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    /// The user's id and display name, written to each cell's `execution_by` as it starts.
    pub user: Option<(String, String)>,
    /// The caller's state vector: the cells' code is read only once the session's replica
    /// includes it (or after [`CATCH_UP`]).
    pub state_vector: Option<yrs::StateVector>,
}

impl Requester {
    /// A requester from the control channel's fields: the state vector is base64 of its v1
    /// encoding; one that does not decode is logged and ignored.
    pub fn from_wire(user_id: &str, user_name: &str, state_vector: Option<&str>) -> Requester {
        use base64::Engine;
        use yrs::updates::decoder::Decode;
        let state_vector = state_vector.and_then(|encoded| {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| e.to_string())
                .and_then(|bytes| yrs::StateVector::decode_v1(&bytes).map_err(|e| e.to_string()));
            decoded
                .inspect_err(|error| tracing::warn!(%error, "ignoring a malformed state vector"))
                .ok()
        });
        let user = (!user_id.is_empty()).then(|| (user_id.to_owned(), user_name.to_owned()));
        Requester { user, state_vector }
    }
}

/// A request to the session's task.
#[derive(Debug)]
enum Command {
    Execute {
        cell_ids: Vec<String>,
        /// Run the stale cells (`session/deps.rs`) instead of `cell_ids`, resolved once the
        /// requester's edits are in.
        stale: bool,
        group: Option<u64>,
        requester: Requester,
        reply: oneshot::Sender<Result<Vec<String>, SessionError>>,
    },
    Interrupt(oneshot::Sender<()>),
    Restart(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
    /// The line typed for the running cell's `input()`, from the user with this id.
    Input {
        user_id: String,
        value: String,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    /// The ready kernel, for code intelligence (which the task does not wait for).
    Kernel(oneshot::Sender<Option<Arc<crate::kernel::Kernel>>>),
}

/// A running notebook session. Cheap to clone; every clone drives the same session, which
/// ends on [`shutdown`](Self::shutdown), when its connection closes, or when the last clone
/// is dropped.
#[derive(Debug, Clone)]
pub struct Session {
    commands: mpsc::Sender<Command>,
    notebook: Notebook,
    notebook_id: String,
    /// Set when the session ended because it could not reach the notebook again: its last
    /// state (`"dead"`, why) may never have reached anyone, so someone else must write it.
    lost: Arc<AtomicBool>,
    status: Arc<Status>,
}

/// What the session's task publishes about itself for the node (kernel limits, metrics).
/// It is the task's own bookkeeping, never read back from the shared document: that is
/// written by other peers too, and the collab service's checks are no reason for the
/// runtime to take it on trust.
#[derive(Debug, Default)]
pub(crate) struct Status {
    /// A kernel process is starting, idle or busy.
    has_kernel: AtomicBool,
    /// Cells waiting in the queue.
    queued: AtomicUsize,
}

impl Status {
    pub(crate) fn publish(&self, state: &KernelStatus, queued: usize) {
        let has_kernel = matches!(
            state,
            KernelStatus::Starting | KernelStatus::Idle | KernelStatus::Busy
        );
        self.has_kernel.store(has_kernel, Ordering::Relaxed);
        self.queued.store(queued, Ordering::Relaxed);
    }
}

impl Session {
    /// Joins the notebook, waits for its content, and starts the session's task.
    pub async fn start(config: SessionConfig) -> Result<Session, SessionError> {
        Self::start_with_kernel(config, None).await
    }

    /// [`Session::start`] handing the session a kernel that is already running (a warm
    /// spare, started with the same options), so its first cell runs without a cold start.
    pub async fn start_with_kernel(
        config: SessionConfig,
        kernel: Option<crate::kernel::Kernel>,
    ) -> Result<Session, SessionError> {
        let span = tracing::info_span!("session", doc_id = %config.notebook_id);
        // UTF-16 offsets, as yjs counts them, like every other Tandem document.
        let doc = yrs::Doc::with_options(yrs::Options {
            offset_kind: yrs::OffsetKind::Utf16,
            ..yrs::Options::default()
        });
        let target = link::Target {
            bases: config.ws_bases.clone(),
            notebook_id: config.notebook_id.clone(),
            token: config.token.clone(),
        };
        let (conn, base) = link::join_any(&target, &doc, 0)
            .instrument(span.clone())
            .await?;
        let notebook = Notebook::from_doc(doc);
        // A small buffer is enough: the task answers every command without waiting on the
        // kernel, and senders wait rather than pile up.
        let (commands, receiver) = mpsc::channel(64);
        let notebook_id = config.notebook_id.clone();
        let lost = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Status::default());
        let link = link::Link::new(target, conn, base);
        let task = actor::Actor::new(
            config,
            link,
            notebook.clone(),
            status.clone(),
            receiver,
            kernel,
        );
        tokio::spawn(task.run(lost.clone()).instrument(span));
        Ok(Session {
            commands,
            notebook,
            notebook_id,
            lost,
            status,
        })
    }

    /// Queues code cells, in the order given, and returns the ids queued. `group` ties the
    /// cells of one run-all together: the first error among them dequeues the rest. Fails,
    /// queuing nothing, if any id is unknown or not a code cell. A cell already queued stays
    /// where it is.
    pub async fn execute(
        &self,
        cell_ids: Vec<String>,
        group: Option<u64>,
    ) -> Result<Vec<String>, SessionError> {
        self.execute_for(cell_ids, group, Requester::default())
            .await
    }

    /// [`execute`](Self::execute) on behalf of `requester`: its cells record who ran them,
    /// and they are queued once this replica has the requester's edits (see the module doc).
    pub async fn execute_for(
        &self,
        cell_ids: Vec<String>,
        group: Option<u64>,
        requester: Requester,
    ) -> Result<Vec<String>, SessionError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Execute {
            cell_ids,
            stale: false,
            group,
            requester,
            reply,
        })
        .await?;
        answer.await.map_err(|_| SessionError::Closed)?
    }

    /// Queues the stale cells and those downstream of them, definers first, as one group
    /// (`group`: it stops at the first error), so that afterwards no cell is stale. Returns
    /// the ids queued (none when nothing is stale).
    pub async fn execute_stale(
        &self,
        group: Option<u64>,
        requester: Requester,
    ) -> Result<Vec<String>, SessionError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Execute {
            cell_ids: Vec::new(),
            stale: true,
            group,
            requester,
            reply,
        })
        .await?;
        answer.await.map_err(|_| SessionError::Closed)?
    }

    /// Interrupts the running cell (killing the kernel after the grace period if it does
    /// not stop) and clears the queue. Returns once the interrupt was sent.
    pub async fn interrupt(&self) -> Result<(), SessionError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Interrupt(reply)).await?;
        answer.await.map_err(|_| SessionError::Closed)
    }

    /// Kills the kernel, clears the queue and starts a fresh kernel. Returns once the old
    /// kernel is gone; the new one reports `"idle"` in `state.kernel` when ready.
    pub async fn restart(&self) -> Result<(), SessionError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Restart(reply)).await?;
        answer.await.map_err(|_| SessionError::Closed)
    }

    /// Answers the running cell's `input()` with `value` on behalf of `user_id`, who must be
    /// who ran it (any caller when the run has no user). The cell goes on at once.
    pub async fn answer_input(&self, user_id: &str, value: String) -> Result<(), SessionError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Input {
            user_id: user_id.to_owned(),
            value,
            reply,
        })
        .await?;
        answer.await.map_err(|_| SessionError::Closed)?
    }

    /// The session's kernel when one is ready (for completions and inspection, which go to
    /// it directly and never wait in the queue); `None` before the first run or while it
    /// starts.
    pub async fn kernel(&self) -> Option<Arc<crate::kernel::Kernel>> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Kernel(reply)).await.ok()?;
        answer.await.ok().flatten()
    }

    /// Stops the kernel, leaves every cell idle and `state.kernel` `"not_started"`, and leaves
    /// the notebook. Returns once all of that has reached the collab service.
    pub async fn shutdown(&self) {
        let (reply, answer) = oneshot::channel();
        if self.send(Command::Shutdown(reply)).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    /// Whether the session ended because it could not reach its notebook again within
    /// [`SessionConfig::reconnect_timeout`]: the notebook may still show its kernel alive,
    /// so whoever can reach it must mark it dead.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// The notebook this session runs.
    pub fn notebook_id(&self) -> &str {
        &self.notebook_id
    }

    /// Whether the session has a kernel process (starting, idle or busy).
    pub fn has_kernel(&self) -> bool {
        self.status.has_kernel.load(Ordering::Relaxed)
    }

    /// How many cells wait in the queue.
    pub fn queued(&self) -> usize {
        self.status.queued.load(Ordering::Relaxed)
    }

    /// The ids of the notebook's code cells in order, as the session sees the document now
    /// (what a run-all queues).
    pub fn code_cell_ids(&self) -> Vec<String> {
        self.notebook.code_cell_ids()
    }

    async fn send(&self, command: Command) -> Result<(), SessionError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| SessionError::Closed)
    }
}
