//! The kernel worker: one process per running notebook session (`tandem kernel`).
//!
//! It embeds CPython through pyo3 and runs cells through IPython's `InteractiveShell` from
//! the kernel venv. The manager (`tandem_runtime::kernel`) spawns it with a clean environment and
//! speaks the JSON-lines [`tandem_protocol::kernel`] with it over the pipes it was given as fds 0
//! and 1. At startup the worker:
//! 1. applies the memory limit (`RLIMIT_AS`, hard and soft, so user code cannot raise it);
//! 2. moves the protocol pipes to private close-on-exec descriptors (so `!cmd` children do
//!    not inherit them), then points fd 0 at `/dev/null` and fd 1 at fd 2, the manager's
//!    log pipe: what C libraries, `os.system` or a crashing interpreter write to the raw
//!    fds ends up in the log the manager keeps for crash reasons, never in the protocol;
//! 3. starts the interpreter and the IPython glue (`python/tandem_kernel.py`), which sends
//!    `ready`;
//! 4. runs requests one at a time on the main thread (Python runs signal handlers only
//!    there, and `SIGINT` must raise `KeyboardInterrupt` in the running cell).
//!
//! A reader thread takes requests off the pipe so that the end of the manager (EOF) ends the
//! worker even while a cell is busy; it hands answers a waiting cell needs (secrets, stdin)
//! over at once, and code intelligence requests (`complete`, `inspect`) to a helper thread
//! that answers them while cells run.

mod layer;
mod names;
mod python;
mod secrets;
mod sink;
mod stdin;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

pub use sink::STREAM_INTERVAL;
use tandem_protocol::kernel::{Event, Request};

/// How long a worker whose manager went away (EOF on requests) waits for its main thread to
/// run exit hooks before exiting anyway.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

/// The worker's command line. These flags are internal (the manager passes them), so unlike
/// the service flags they have no `TANDEM_*` variables: the kernel's environment belongs to
/// user code.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The kernel venv (made by `scripts/setup-python`), shared by every kernel and never
    /// written.
    #[arg(long, required_unless_present = "probe_cuda")]
    pub venv: Option<PathBuf>,
    /// Only say whether a CUDA device opens (exit status 0) or not (1), then exit: how a
    /// runtime node, which links no CUDA, learns whether it can offer a GPU runtime
    /// ([`tandem_protocol::kernel::PROBE_CUDA_FLAG`]).
    #[arg(long)]
    pub probe_cuda: bool,
    /// Where this kernel makes its own venv layered on `--venv` ([`layer`]): what
    /// `pip install` adds lands there, for this kernel only. Without it, the kernel uses
    /// `--venv` directly.
    #[arg(long)]
    pub layer: Option<PathBuf>,
    /// Address-space limit for the whole kernel process, in bytes.
    #[arg(long)]
    pub memory_limit: Option<u64>,
    /// Run notebook code as this user (the worker starts as root and drops to it before
    /// Python starts), so it cannot read the server's store or other kernels' files.
    #[arg(long)]
    pub run_as: Option<String>,
    /// The quota of the user's drive (`drive/` in the working directory), in bytes: past
    /// it, each cell ends with a warning ([`crate::quota::QuotaWatch`]).
    #[arg(long)]
    pub drive_quota: Option<u64>,
}

#[derive(Debug, Parser)]
#[command(
    name = "tandem-kernel",
    about = "One Tandem kernel worker (internal; spawned by the runtime)"
)]
struct Cli {
    #[command(flatten)]
    args: WorkerArgs,
}

/// Runs a worker with the process's command line (`tandem-kernel --venv V` or
/// `tandem kernel --venv V`, for callers that forward the whole `argv`).
pub fn main() -> anyhow::Result<()> {
    let mut argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("kernel") {
        argv.remove(1);
    }
    run(Cli::parse_from(argv).args)
}

/// Runs a worker: takes over fds 0–2, starts Python, serves requests until shutdown or EOF.
pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    if args.probe_cuda {
        std::process::exit(if crate::tensor::device::cuda_available() {
            0
        } else {
            1
        });
    }
    let shared_venv = args.venv.clone().context("--venv is required")?;
    if let Some(limit) = args.memory_limit {
        rlimit::setrlimit(rlimit::Resource::AS, limit, limit)
            .context("could not apply the kernel memory limit")?;
    }
    if let Some(user) = &args.run_as {
        drop_privileges(user)?;
    }
    let (requests, events) = take_protocol_fds()?;
    let sink = sink::Sink::start(events).context("could not start the stream flusher")?;
    let mut quota = match (args.drive_quota, std::env::current_dir()) {
        (Some(bytes), Ok(workdir)) => Some(crate::quota::QuotaWatch::new(&workdir, bytes)),
        _ => None,
    };

    let venv = match &args.layer {
        Some(layer) => match layer::create(layer, &shared_venv) {
            Ok(()) => layer.clone(),
            Err(error) => {
                // The kernel still runs, on the shared venv; only `pip install` cannot.
                eprintln!(
                    "tandem kernel: no venv layer of its own ({error:#}); pip installs will fail"
                );
                shared_venv
            }
        },
        None => shared_venv,
    };
    let interpreter = match python::Interpreter::start(sink.clone(), &venv) {
        Ok(interpreter) => interpreter,
        Err(message) => {
            // The manager turns this into a startup error; the log gets it too.
            eprintln!("{message}");
            let _ = sink.emit(&Event::Fatal { message });
            std::process::exit(1);
        }
    };

    let (sender, receiver) = mpsc::channel();
    let (intel_sender, intel_receiver) = mpsc::channel::<Request>();
    let intel = interpreter.intel();
    thread::Builder::new()
        .name("intel".into())
        .spawn(move || {
            block_interrupts();
            for request in intel_receiver {
                intel.answer(&request);
            }
        })
        .context("could not start the code intelligence thread")?;
    thread::Builder::new()
        .name("requests".into())
        .spawn(move || read_requests(requests, sender, intel_sender))
        .context("could not start the request reader")?;

    for request in receiver {
        match request {
            Request::Execute { id, code, peers } => {
                if let Some(peers) = &peers {
                    names::report(&sink, &code, peers);
                }
                secrets::set_in_cell(true);
                let outcome = interpreter.execute(&code);
                secrets::set_in_cell(false);
                if let Some(warning) = quota.as_mut().and_then(|q| q.after_cell()) {
                    let _ =
                        sink.write_stream(tandem_protocol::kernel::StreamName::Stderr, &warning);
                }
                let done = Event::Done {
                    id,
                    status: outcome.status,
                    execution_count: outcome.execution_count,
                };
                sink.emit(&done).context("the event pipe closed")?;
                if outcome.exit_requested {
                    break;
                }
            }
            Request::Shutdown => break,
            // Taken off the pipe by the reader thread; never queued.
            Request::SecretReply { .. }
            | Request::InputReply { .. }
            | Request::Complete { .. }
            | Request::Inspect { .. } => {}
        }
    }
    interpreter.shutdown();
    let _ = sink.flush();
    // Skip interpreter finalization: the process is ending, and finalizing can hang on
    // threads user code left running.
    std::process::exit(0)
}

/// Becomes `user` for good: hands it the working directory (the kernel's home), then drops
/// supplementary groups, the group and the user, in that order (after `setuid` the others
/// would no longer be allowed).
fn drop_privileges(user: &str) -> anyhow::Result<()> {
    use nix::unistd::{User, chown, setgid, setgroups, setuid};
    let account = User::from_name(user)
        .with_context(|| format!("looking up the kernel user {user:?}"))?
        .with_context(|| format!("no user {user:?} on this system for kernels to run as"))?;
    let home = std::env::current_dir().context("reading the kernel's working directory")?;
    chown(&home, Some(account.uid), Some(account.gid))
        .with_context(|| format!("handing {} to {user}", home.display()))?;
    setgroups(&[]).context("dropping supplementary groups")?;
    setgid(account.gid).context("setgid")?;
    setuid(account.uid).context("setuid")?;
    Ok(())
}

/// Moves the protocol pipes off fds 0/1 and points the standard fds at the log.
fn take_protocol_fds() -> anyhow::Result<(File, File)> {
    // try_clone_to_owned duplicates with F_DUPFD_CLOEXEC: children of the kernel (`!cmd`,
    // `%pip`) must not hold the protocol pipes open, or the manager would never see EOF.
    let requests = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("dup of fd 0")?;
    let events = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("dup of fd 1")?;
    let null = File::open("/dev/null").context("open /dev/null")?;
    nix::unistd::dup2_stdin(&null).context("redirect fd 0")?;
    nix::unistd::dup2_stdout(std::io::stderr()).context("redirect fd 1")?;
    Ok((File::from(requests), File::from(events)))
}

/// Keeps SIGINT away from the calling helper thread. The kernel delivers a process-wide
/// signal to any thread that does not block it; only the main thread's delivery interrupts
/// a blocking call in the cell (`time.sleep`, a socket read) with EINTR.
fn block_interrupts() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    if let Err(error) = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        eprintln!("tandem kernel: could not block SIGINT in a helper thread: {error}");
    }
}

fn read_requests(requests: File, sender: mpsc::Sender<Request>, intel: mpsc::Sender<Request>) {
    block_interrupts();
    for line in BufReader::new(requests).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Request>(&line) {
            // Answers to a running cell's secret lookups and reads cannot wait behind it.
            Ok(Request::SecretReply { id, value, error }) => secrets::deliver(id, value, error),
            Ok(Request::InputReply { id, value }) => stdin::deliver(id, value),
            Ok(request @ (Request::Complete { .. } | Request::Inspect { .. })) => {
                // The helper thread outlives the reader; if it is gone, so is the process.
                let _ = intel.send(request);
            }
            Ok(request) => {
                if sender.send(request).is_err() {
                    return;
                }
            }
            Err(error) => eprintln!("tandem kernel: ignoring a bad request ({error}): {line}"),
        }
    }
    // The manager closed the pipe or exited: nobody will read our output again. Let the
    // main thread run exit hooks if it is idle, and end the process anyway if it is stuck
    // in a cell.
    let _ = sender.send(Request::Shutdown);
    thread::sleep(ORPHAN_GRACE);
    std::process::exit(0);
}
