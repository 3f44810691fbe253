//! Spawning a worker and the tasks that own its pipes.
//!
//! Three tasks per kernel: one writes requests to the worker's fd 0, one reads its fd 2
//! (the log) into a [`LogTail`], and one reads events off its fd 1, hands them to the cell
//! that is running, and, when the process ends, records the [`Death`] and ends every
//! unfinished cell with it.

use std::ffi::OsString;
use std::mem;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::death::{Death, LogTail};
use super::event::{KernelEvent, Output};
use super::{Cells, Kernel, KernelError, KernelOptions, Shared, scratch};
use crate::protocol::{Event, ExecStatus, Request};

/// How long a worker may take from spawn to `ready`. A cold start is well under a second;
/// this only bounds a wedged one (or a machine swapping hard).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// After the process has exited, how long to keep reading events and log still in the
/// pipes. Bounded because a forked child (multiprocessing) may hold the pipes open.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Figures render inline by default, as in Jupyter and Colab.
const INLINE_BACKEND: &str = "module://matplotlib_inline.backend_inline";

type EventLines = Lines<BufReader<ChildStdout>>;

pub(super) async fn start(options: KernelOptions) -> Result<Kernel, KernelError> {
    let venv = check_venv(&options.venv)?;
    let scratch = match &options.scratch {
        Some(scratch) => Some(
            scratch::create(&options.workdir, scratch).map_err(|source| KernelError::Workdir {
                path: options.workdir.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let started = start_in(options, venv, scratch.clone()).await;
    if let (Err(_), Some(dir)) = (&started, scratch) {
        scratch::remove(dir).await;
    }
    started
}

/// Starts the worker in `scratch` (its own fresh folder), or else in `options.workdir`.
async fn start_in(
    options: KernelOptions,
    venv: PathBuf,
    scratch: Option<PathBuf>,
) -> Result<Kernel, KernelError> {
    let target = scratch.clone().unwrap_or_else(|| options.workdir.clone());
    let workdir_error = |source| KernelError::Workdir {
        path: target.clone(),
        source,
    };
    tokio::fs::create_dir_all(&target)
        .await
        .map_err(workdir_error)?;
    let workdir = tokio::fs::canonicalize(&target)
        .await
        .map_err(workdir_error)?;
    // The child runs in `workdir`: a relative program path must not be resolved there.
    let program = if options.program.components().count() > 1 {
        std::path::absolute(&options.program).unwrap_or_else(|_| options.program.clone())
    } else {
        options.program.clone()
    };

    let mut command = Command::new(&program);
    command.args(&options.args).arg("--venv").arg(&venv);
    if let Some(limit) = options.memory_limit_bytes {
        command.arg("--memory-limit").arg(limit.to_string());
    }
    command
        .env_clear()
        .envs(kernel_env(&venv, &workdir, &options.env))
        .current_dir(&workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl+C at the server's terminal must not interrupt
        // every kernel, and killing the group also ends what the kernel started.
        .process_group(0)
        .kill_on_drop(true);
    let spawn_error = |source| KernelError::Spawn {
        program: program.clone(),
        source,
    };
    let mut child = command.spawn().map_err(spawn_error)?;
    let pipes = (
        child.id(),
        child.stdin.take(),
        child.stdout.take(),
        child.stderr.take(),
    );
    let (Some(pid), Some(stdin), Some(stdout), Some(stderr)) = pipes else {
        return Err(spawn_error(std::io::Error::other(
            "the kernel's pipes were not set up",
        )));
    };
    let pid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    let span = tracing::info_span!("kernel", pid = pid.as_raw());

    let log = Arc::new(Mutex::new(LogTail::default()));
    let log_task = tokio::spawn(read_log(stderr, Arc::clone(&log)).instrument(span.clone()));
    let mut events = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(STARTUP_TIMEOUT, wait_ready(&mut events)).await;
    let python_version = match ready {
        Ok(Ok(python)) => python,
        Ok(Err(fatal)) => {
            let status = tokio::time::timeout(DRAIN_TIMEOUT, child.wait()).await;
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, log_task).await;
            let log_tail = log_text(&log);
            let status = status.ok().and_then(Result::ok);
            let message = fatal.unwrap_or_else(|| {
                let death = Death::from_exit(
                    status,
                    false,
                    false,
                    options.memory_limit_bytes,
                    log_tail.clone(),
                );
                format!("{death} before it was ready")
            });
            return Err(KernelError::StartupFailed { message, log_tail });
        }
        Err(_) => {
            let _ = killpg(pid, Signal::SIGKILL);
            return Err(KernelError::StartupTimeout(STARTUP_TIMEOUT));
        }
    };
    tracing::info!(parent: &span, python = %python_version, "kernel ready");

    let shared = Arc::new(Shared {
        cells: Mutex::new(Cells::default()),
        death: watch::channel(None).0,
        killed: AtomicBool::new(false),
        shutting_down: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        memory_limit_bytes: options.memory_limit_bytes,
    });
    let (requests, request_receiver) = mpsc::unbounded_channel();
    tokio::spawn(write_requests(stdin, request_receiver).instrument(span.clone()));
    let router = route_events(
        events,
        child,
        pid,
        log_task,
        log,
        Arc::clone(&shared),
        scratch,
    );
    tokio::spawn(router.instrument(span));
    Ok(Kernel {
        shared,
        requests,
        pid,
        python_version,
        workdir,
    })
}

/// The kernel's whole environment: nothing of the server's (no tokens, database paths or
/// `TANDEM_*` settings), only what Python and notebook code expect.
fn kernel_env(
    venv: &Path,
    workdir: &Path,
    extra: &[(String, String)],
) -> Vec<(OsString, OsString)> {
    let mut path = venv.join("bin").into_os_string();
    path.push(":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let lang = std::env::var("LANG").ok().filter(|lang| !lang.is_empty());
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), path),
        ("HOME".into(), workdir.into()),
        (
            "LANG".into(),
            lang.unwrap_or_else(|| "C.UTF-8".into()).into(),
        ),
        // Libraries that color their output (pip, tqdm, IPython's own) check TERM.
        ("TERM".into(), "xterm-256color".into()),
        ("MPLBACKEND".into(), INLINE_BACKEND.into()),
        ("PYTHONUNBUFFERED".into(), "1".into()),
        ("VIRTUAL_ENV".into(), venv.into()),
    ];
    env.extend(extra.iter().map(|(key, value)| (key.into(), value.into())));
    env
}

/// Checks the venv before spawning, so the common mistake gets a message naming the fix
/// rather than an import error from inside the kernel. Returns its absolute path.
fn check_venv(venv: &Path) -> Result<PathBuf, KernelError> {
    let missing = |problem: &str| KernelError::VenvMissing {
        venv: venv.to_path_buf(),
        problem: problem.to_owned(),
    };
    let absolute = std::fs::canonicalize(venv).map_err(|_| missing("no such directory"))?;
    if std::fs::metadata(absolute.join("bin/python")).is_err() {
        return Err(missing("bin/python is missing or a broken link"));
    }
    let has_ipython = std::fs::read_dir(absolute.join("lib"))
        .map(|entries| {
            entries.flatten().any(|entry| {
                entry.file_name().to_string_lossy().starts_with("python3")
                    && entry
                        .path()
                        .join("site-packages/IPython/__init__.py")
                        .is_file()
            })
        })
        .unwrap_or(false);
    if !has_ipython {
        return Err(missing("IPython is not installed in it"));
    }
    Ok(absolute)
}

/// Reads events up to `ready`. `Err(Some(message))`: the worker said why it cannot start;
/// `Err(None)`: it closed the pipe without a word.
async fn wait_ready(events: &mut EventLines) -> Result<String, Option<String>> {
    while let Ok(Some(line)) = events.next_line().await {
        match serde_json::from_str::<Event>(&line) {
            Ok(Event::Ready { python, .. }) => return Ok(python),
            Ok(Event::Fatal { message }) => return Err(Some(message)),
            Ok(other) => tracing::debug!(event = ?other, "kernel output before ready"),
            Err(error) => tracing::warn!(%error, line, "bad kernel event"),
        }
    }
    Err(None)
}

async fn write_requests(mut stdin: ChildStdin, mut requests: mpsc::UnboundedReceiver<Request>) {
    while let Some(request) = requests.recv().await {
        let Ok(mut line) = serde_json::to_vec(&request) else {
            continue;
        };
        line.push(b'\n');
        if stdin.write_all(&line).await.is_err() {
            break;
        }
    }
    // Dropping stdin here is the worker's EOF: the `Kernel` is gone, so is the worker.
}

async fn read_log(mut stderr: ChildStderr, log: Arc<Mutex<LogTail>>) {
    let mut buffer = vec![0; 8192];
    while let Ok(read) = stderr.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        let chunk = &buffer[..read];
        tracing::debug!(text = %String::from_utf8_lossy(chunk), "kernel log");
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(chunk);
    }
}

fn log_text(log: &Mutex<LogTail>) -> String {
    log.lock().unwrap_or_else(PoisonError::into_inner).text()
}

async fn route_events(
    mut events: EventLines,
    mut child: Child,
    pid: Pid,
    log_task: JoinHandle<()>,
    log: Arc<Mutex<LogTail>>,
    shared: Arc<Shared>,
    scratch: Option<PathBuf>,
) {
    let status = loop {
        tokio::select! {
            line = events.next_line() => match line {
                Ok(Some(line)) => route(&shared, &line).await,
                Ok(None) | Err(_) => break child.wait().await.ok(),
            },
            status = child.wait() => {
                let drain = async {
                    while let Ok(Some(line)) = events.next_line().await {
                        route(&shared, &line).await;
                    }
                };
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
                break status.ok();
            }
        }
    };
    // Whatever the kernel started lives on in its process group; end it with the kernel.
    let _ = killpg(pid, Signal::SIGKILL);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, log_task).await;
    // The scratch folder goes with its kernel, before anyone hears that the kernel ended.
    if let Some(dir) = scratch {
        scratch::remove(dir).await;
    }

    let death = Death::from_exit(
        status,
        shared.killed.load(Ordering::SeqCst),
        shared.shutting_down.load(Ordering::SeqCst),
        shared.memory_limit_bytes,
        log_text(&log),
    );
    tracing::info!(reason = %death, "kernel ended");
    let unfinished = {
        let mut cells = shared.cells();
        cells.dead = Some(death.clone());
        mem::take(&mut cells.running)
    };
    shared.death.send_replace(Some(death.clone()));
    for (_, sender) in unfinished {
        let error = KernelEvent::Output(death.to_error_output());
        // In a task each: a reader that stopped reading must not hold up the others.
        tokio::spawn(async move {
            let _ = sender.send(error).await;
            let done = KernelEvent::Done {
                status: ExecStatus::Error,
                execution_count: None,
            };
            let _ = sender.send(done).await;
        });
    }
}

/// Hands one event line to the cell it belongs to: the oldest unfinished one.
async fn route(shared: &Shared, line: &str) {
    let event = match serde_json::from_str::<Event>(line) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, line, "bad kernel event");
            return;
        }
    };
    if let Event::Done {
        id,
        status,
        execution_count,
    } = event
    {
        let finished = shared.cells().running.pop_front();
        match finished {
            Some((expected, sender)) => {
                if expected != id {
                    tracing::warn!(expected, id, "kernel finished cells out of order");
                }
                let _ = sender
                    .send(KernelEvent::Done {
                        status,
                        execution_count,
                    })
                    .await;
            }
            None => tracing::warn!(id, "kernel finished a cell nobody submitted"),
        }
        return;
    }
    let Some(event) = kernel_event(event) else {
        return;
    };
    let sender = shared
        .cells()
        .running
        .front()
        .map(|(_, sender)| sender.clone());
    match sender {
        // A reader that dropped its Execution no longer wants the events.
        Some(sender) => {
            let _ = sender.send(event).await;
        }
        // Background threads may print between cells; Jupyter would show it nowhere
        // useful either.
        None => tracing::debug!(?event, "kernel output outside any cell"),
    }
}

fn kernel_event(event: Event) -> Option<KernelEvent> {
    let display_id = |transient: Option<crate::protocol::Transient>| {
        transient.and_then(|transient| transient.display_id)
    };
    Some(match event {
        Event::Stream { name, text } => KernelEvent::Output(Output::Stream { name, text }),
        Event::DisplayData {
            data,
            metadata,
            transient,
        } => KernelEvent::Output(Output::DisplayData {
            data,
            metadata,
            display_id: display_id(transient),
        }),
        Event::UpdateDisplayData {
            data,
            metadata,
            transient,
        } => KernelEvent::UpdateDisplay {
            display_id: display_id(transient)?,
            data,
            metadata,
        },
        Event::ExecuteResult {
            execution_count,
            data,
            metadata,
        } => KernelEvent::Output(Output::ExecuteResult {
            execution_count,
            data,
            metadata,
        }),
        Event::Error {
            ename,
            evalue,
            traceback,
        } => KernelEvent::Output(Output::Error {
            ename,
            evalue,
            traceback,
        }),
        Event::ClearOutput { wait } => KernelEvent::ClearOutput { wait },
        Event::Variables { variables } => KernelEvent::Variables(variables),
        Event::SecretRequest { id, name } => KernelEvent::SecretRequest { id, name },
        Event::Names { cell, peers } => KernelEvent::Names { cell, peers },
        Event::Ready { .. } | Event::Fatal { .. } | Event::Done { .. } => return None,
    })
}
