//! The manager side of one kernel: spawn a worker, run cells on it, interrupt and kill it.
//!
//! ```no_run
//! # async fn run() -> Result<(), tandem_runtime::kernel::KernelError> {
//! use tandem_runtime::kernel::{Kernel, KernelEvent, KernelOptions};
//!
//! let kernel = Kernel::start(KernelOptions {
//!     program: "target/debug/tandem".into(),
//!     args: vec!["kernel".into()],
//!     venv: ".venv-kernel".into(),
//!     workdir: "/tmp/notebook-1".into(),
//!     memory_limit_bytes: Some(2 << 30),
//!     env: Vec::new(),
//!     scratch: None,
//!     isolation: Default::default(),
//!     gpu: false,
//! })
//! .await?;
//! let mut cell = kernel.execute("print('hi'); 1 + 1")?;
//! while let Some(event) = cell.recv().await {
//!     match event {
//!         KernelEvent::Output(output) => println!("{}", serde_json::to_string(&output).unwrap()),
//!         KernelEvent::Done { execution_count, .. } => println!("[{execution_count:?}]"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Cells submitted while another runs queue up in the worker and run in order. Every
//! [`Execution`] ends with [`KernelEvent::Done`]: if the process dies mid-cell, its cell and
//! every queued one get an error output saying why ([`Death`]) and then `Done`.

mod death;
mod error;
mod event;
mod intel;
mod process;
mod scratch;
mod usage;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot, watch};

pub use death::{Death, DeathReason};
pub use error::{KernelError, SETUP_HINT};
pub use event::{ExecStatus, Execution, KernelEvent, Names, Output, StreamName, Variable};
pub use intel::{Completions, Inspection, QUERY_TIMEOUT};
pub use scratch::{DRIVE_LINK, DriveLink, Scratch, link_drive, process_gone, sweep};
pub use usage::Usage;

use tandem_protocol::kernel::Request;

/// How many events of one cell may wait for its reader before the kernel is paused.
const EVENT_BUFFER: usize = 256;

/// How to start a kernel.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// The program that runs a worker: the `tandem` binary (with `args = ["kernel"]`) or
    /// `tandem-kernel`.
    pub program: PathBuf,
    /// Arguments before the worker's own flags (`--venv`, `--memory-limit`).
    pub args: Vec<String>,
    /// The kernel venv (`scripts/setup-python` makes it); its `bin/` leads the kernel's PATH.
    pub venv: PathBuf,
    /// The kernel's working directory and `HOME`; created if missing.
    pub workdir: PathBuf,
    /// Address-space limit (`RLIMIT_AS`) of the kernel process and its children.
    pub memory_limit_bytes: Option<u64>,
    /// Variables added to the kernel's otherwise clean environment.
    pub env: Vec<(String, String)>,
    /// With [`Scratch`], `workdir` is a parent: each start gets a fresh folder of its own
    /// below it, with the user's drive linked in as `drive/`, removed when the kernel ends.
    /// `None`: the kernel works in `workdir` itself, which stays.
    pub scratch: Option<Scratch>,
    /// Whether the kernel runs in its own sandbox ([`crate::sandbox`]); its scratch folder
    /// is then `/content` inside the sandbox, and `workdir` only holds the host's side.
    pub isolation: crate::sandbox::Isolation,
    /// The kernel is on the GPU runtime (a sandbox then gets the NVIDIA devices).
    pub gpu: bool,
}

/// A running kernel process. Dropping it kills the process (and its process group).
#[derive(Debug)]
pub struct Kernel {
    shared: Arc<Shared>,
    requests: mpsc::UnboundedSender<Request>,
    pid: Pid,
    python_version: String,
    workdir: PathBuf,
}

/// State shared between the handle and the tasks that own the process's pipes.
#[derive(Debug)]
struct Shared {
    /// Cells sent to the worker and not yet done, oldest first; or why the kernel died.
    cells: Mutex<Cells>,
    death: watch::Sender<Option<Death>>,
    /// Set before the manager kills or shuts down the kernel, to tell that from a crash.
    killed: AtomicBool,
    shutting_down: AtomicBool,
    next_id: AtomicU64,
    memory_limit_bytes: Option<u64>,
    /// The kernel's sandbox, when it has one.
    jail: Option<Arc<crate::sandbox::Jail>>,
    /// Sandbox counters already reported under a cell: OOM kills, process-limit hits.
    reported: Mutex<(u64, u64)>,
    /// Code intelligence requests waiting for their reply event, by request id.
    queries: Mutex<std::collections::HashMap<u64, oneshot::Sender<tandem_protocol::kernel::Event>>>,
}

#[derive(Debug, Default)]
struct Cells {
    running: std::collections::VecDeque<(u64, mpsc::Sender<KernelEvent>)>,
    dead: Option<Death>,
}

impl Shared {
    fn cells(&self) -> MutexGuard<'_, Cells> {
        // Plain data; a panic elsewhere must not make every later cell hang.
        self.cells.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn queries(
        &self,
    ) -> MutexGuard<
        '_,
        std::collections::HashMap<u64, oneshot::Sender<tandem_protocol::kernel::Event>>,
    > {
        self.queries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Kernel {
    /// Spawns a worker and waits until its interpreter and IPython are ready.
    pub async fn start(options: KernelOptions) -> Result<Kernel, KernelError> {
        process::start(options).await
    }

    /// Submits a cell. Its events arrive on the returned [`Execution`], ending with
    /// [`KernelEvent::Done`]; cells submitted while others run wait their turn.
    pub fn execute(&self, code: &str) -> Result<Execution, KernelError> {
        self.submit(code, None)
    }

    /// [`execute`](Self::execute), with a [`KernelEvent::Names`] first: what the cell defines
    /// and uses, and the same for each of `peers` (other cells' sources, analysed and never
    /// run), read from their syntax trees before the cell runs.
    pub fn execute_analyzed(
        &self,
        code: &str,
        peers: Vec<String>,
    ) -> Result<Execution, KernelError> {
        self.submit(code, Some(peers))
    }

    fn submit(&self, code: &str, peers: Option<Vec<String>>) -> Result<Execution, KernelError> {
        let (sender, events) = mpsc::channel(EVENT_BUFFER);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut cells = self.shared.cells();
            if let Some(death) = &cells.dead {
                return Err(KernelError::Dead(death.clone()));
            }
            cells.running.push_back((id, sender));
        }
        // If the writer is gone the process is dying, and the event task will end this
        // cell with the reason.
        let _ = self.requests.send(Request::Execute {
            id,
            code: code.to_owned(),
            peers,
        });
        Ok(Execution { id, events })
    }

    /// Answers the running cell's [`KernelEvent::SecretRequest`] `id` with the value or why
    /// there is none. Nothing else reaches the kernel: it never sees how the value was found.
    pub fn answer_secret(
        &self,
        id: u64,
        answer: Result<String, tandem_protocol::kernel::SecretFailure>,
    ) {
        let (value, error) = match answer {
            Ok(value) => (Some(tandem_protocol::kernel::SecretText(value)), None),
            Err(failure) => (None, Some(failure)),
        };
        // A kernel that is gone no longer waits for it.
        let _ = self
            .requests
            .send(Request::SecretReply { id, value, error });
    }

    /// Answers the running cell's [`KernelEvent::InputRequest`] `id` with the line typed, or
    /// with `None` (nobody will answer: `input()` raises `EOFError`).
    pub fn answer_input(&self, id: u64, value: Option<String>) {
        // A kernel that is gone no longer waits for it.
        let _ = self.requests.send(Request::InputReply { id, value });
    }

    /// Sends SIGINT: `KeyboardInterrupt` in the running cell (if any). Queued cells still
    /// run; a cell that ignores the interrupt needs [`Kernel::kill`].
    pub fn interrupt(&self) -> Result<(), KernelError> {
        self.ensure_alive()?;
        let target = match &self.shared.jail {
            Some(jail) => Pid::from_raw(jail.worker_pid().ok_or(nix::Error::ESRCH)?),
            None => self.pid,
        };
        kill(target, Signal::SIGINT).map_err(KernelError::from)
    }

    /// Kills the process and everything it started (SIGKILL to its process group).
    /// Returns at once; [`Kernel::wait`] gives the [`Death`] (reason
    /// [`DeathReason::Killed`]).
    pub fn kill(&self) -> Result<(), KernelError> {
        if self.exited().is_some() {
            return Ok(());
        }
        self.shared.killed.store(true, Ordering::SeqCst);
        if let Some(jail) = &self.shared.jail {
            jail.kill();
        }
        match killpg(self.pid, Signal::SIGKILL) {
            Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Shows `folder` as the kernel's `drive/` from now on (a spare kernel handed to a
    /// person gets their drive this way).
    pub fn attach_drive(&self, folder: &std::path::Path) -> std::io::Result<()> {
        match &self.shared.jail {
            Some(jail) => jail.attach_drive(folder),
            None => link_drive(&self.workdir, folder),
        }
    }

    /// The host uid the kernel runs as in its sandbox (`None`: not sandboxed).
    pub fn sandbox_uid(&self) -> Option<u32> {
        self.shared.jail.as_ref().map(|jail| jail.uid())
    }

    /// Asks the worker to run its exit hooks and exit; kills it if it has not within
    /// `grace`. Returns how it ended.
    pub async fn shutdown(&self, grace: Duration) -> Death {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        let _ = self.requests.send(Request::Shutdown);
        if let Ok(death) = tokio::time::timeout(grace, self.wait()).await {
            return death;
        }
        if let Err(error) = self.kill() {
            tracing::warn!(pid = self.pid.as_raw(), %error, "could not kill a kernel");
        }
        self.wait().await
    }

    /// Waits until the process has ended.
    pub async fn wait(&self) -> Death {
        let mut death = self.shared.death.subscribe();
        match death.wait_for(Option::is_some).await {
            Ok(death) => death.clone().unwrap_or_else(unknown_death),
            // Unreachable while `self` holds the sender; answer something sensible anyway.
            Err(_) => unknown_death(),
        }
    }

    /// How the process ended, if it has.
    pub fn exited(&self) -> Option<Death> {
        self.shared.death.borrow().clone()
    }

    /// `sys.version` inside the kernel, e.g. `3.11.2 (main, …) [GCC 12.2.0]`.
    pub fn python_version(&self) -> &str {
        &self.python_version
    }

    /// The kernel's working directory (its own scratch folder in scratch mode).
    pub fn workdir(&self) -> &std::path::Path {
        &self.workdir
    }

    /// The kernel's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }

    fn ensure_alive(&self) -> Result<(), KernelError> {
        match self.exited() {
            Some(death) => Err(KernelError::Dead(death)),
            None => Ok(()),
        }
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // The process group also holds whatever the kernel started (`!cmd`, forked
        // multiprocessing workers), which would otherwise outlive it.
        if self.exited().is_none() {
            self.shared.killed.store(true, Ordering::SeqCst);
            if let Some(jail) = &self.shared.jail {
                jail.kill();
            }
            let _ = killpg(self.pid, Signal::SIGKILL);
        }
    }
}

fn unknown_death() -> Death {
    Death {
        reason: DeathReason::Exited { code: -1 },
        log_tail: String::new(),
    }
}
