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
use crate::sandbox::Isolation;
use tandem_protocol::kernel::{Event, ExecStatus, Request};

/// How long a worker may take from spawn to `ready`. A cold start is well under a second;
/// this only bounds a wedged one (or a machine swapping hard).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// After the process has exited, how long to keep reading events and log still in the
/// pipes. Bounded because a forked child (multiprocessing) may hold the pipes open.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// How often a sandbox whose bwrap failed to set up is tried before giving up.
const SANDBOX_ATTEMPTS: u32 = 3;

/// The per-kernel layer venv inside an unsandboxed kernel's scratch folder.
const LAYER_DIR: &str = ".kernel-venv";

/// Figures render inline by default, as in Jupyter and Colab.
const INLINE_BACKEND: &str = "module://matplotlib_inline.backend_inline";

type EventLines = Lines<BufReader<ChildStdout>>;

pub(super) async fn start(options: KernelOptions) -> Result<Kernel, KernelError> {
    let venv = check_venv(&options.venv)?;
    match &options.isolation {
        Isolation::Unconfined => {}
        Isolation::Sandboxed(_) => {
            // bwrap's own set-up now and then fails for a moment under load (seen: "loopback:
            // Failed RTM_NEWADDR" while many namespaces are made at once): try again, so a
            // passing hiccup does not cost a notebook its kernel. A lasting failure still
            // fails, with bwrap's words.
            let mut attempt = 1;
            loop {
                match start_in(options.clone(), venv.clone(), None).await {
                    Err(KernelError::StartupFailed { log_tail, .. })
                        if attempt < SANDBOX_ATTEMPTS && log_tail.contains("bwrap: ") =>
                    {
                        tracing::warn!(attempt, log = %log_tail.trim(), "the sandbox failed to start; trying again");
                        attempt += 1;
                    }
                    started => return started,
                }
            }
        }
        Isolation::Unavailable(reason) => {
            return Err(KernelError::Sandbox(format!(
                "{reason}; the operator can fix that or pass --kernel-sandbox off"
            )));
        }
    }
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

/// Starts the worker: in its sandbox, or else in `scratch` (its own fresh folder), or else
/// in `options.workdir`.
async fn start_in(
    options: KernelOptions,
    venv: PathBuf,
    scratch: Option<PathBuf>,
) -> Result<Kernel, KernelError> {
    // The child runs elsewhere: a relative program path must not be resolved there.
    let program = if options.program.components().count() > 1 {
        std::path::absolute(&options.program).unwrap_or_else(|_| options.program.clone())
    } else {
        options.program.clone()
    };
    let spawn_error = |source| KernelError::Spawn {
        program: program.clone(),
        source,
    };
    let sandbox = match &options.isolation {
        Isolation::Sandboxed(sandbox) => Some(sandbox),
        Isolation::Unconfined | Isolation::Unavailable(_) => None,
    };
    let (mut command, workdir, layer, pending) = match sandbox {
        Some(sandbox) => {
            let spec = crate::sandbox::KernelSpec {
                program: program.clone(),
                args: worker_args(&options, &venv, Path::new(crate::sandbox::LAYER_VENV)),
                venv: venv.clone(),
                drive: options
                    .scratch
                    .as_ref()
                    .and_then(|scratch| scratch.drive.get()),
                gpu: options.gpu,
            };
            let sandbox = Arc::clone(sandbox);
            let built = tokio::task::spawn_blocking(move || sandbox.command(&spec))
                .await
                .map_err(std::io::Error::other)
                .and_then(|built| built)
                .map_err(|source| KernelError::Sandbox(source.to_string()))?;
            let (command, pending) = built;
            let workdir = PathBuf::from(crate::sandbox::CONTENT);
            let layer = PathBuf::from(crate::sandbox::LAYER_VENV);
            (command, workdir, layer, Some(pending))
        }
        None => {
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
            let layer = workdir.join(LAYER_DIR);
            let mut command = Command::new(&program);
            command
                .args(worker_args(&options, &venv, &layer))
                .current_dir(&workdir);
            (command, workdir, layer, None)
        }
    };
    command
        .env_clear()
        .envs(kernel_env(&venv, &layer, &workdir, &options.env))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl+C at the server's terminal must not interrupt
        // every kernel, and killing the group also ends what the kernel started.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(source) => {
            if let Some(pending) = pending {
                tokio::task::spawn_blocking(move || pending.abandon());
            }
            return Err(spawn_error(source));
        }
    };
    let jail = match pending {
        Some(pending) => match pending.start().await {
            Ok(jail) => Some(Arc::new(jail)),
            Err(error) => {
                // bwrap may have ended after reporting its sandbox (writing to it then fails
                // with a broken pipe): what it said on stderr is the reason.
                let said = stderr_after_exit(&mut child).await;
                let _ = child.start_kill();
                return Err(KernelError::Sandbox(match said {
                    Some(said) => format!("{error}; bwrap said: {said}"),
                    None => error.to_string(),
                }));
            }
        },
        None => None,
    };
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
    let uid = jail.as_ref().map(|jail| jail.uid());
    let span = tracing::info_span!("kernel", pid = pid.as_raw(), uid);

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
                let death = classify(
                    status,
                    false,
                    false,
                    options.memory_limit_bytes,
                    log_tail.clone(),
                    jail.as_deref(),
                );
                // Its last words (bwrap's reason for refusing to set up, a Python error)
                // are the most useful part of the message.
                match log_tail.lines().rev().find(|line| !line.trim().is_empty()) {
                    Some(last) => format!("{death} before it was ready: {}", last.trim()),
                    None => format!("{death} before it was ready"),
                }
            });
            if let Some(jail) = jail {
                end_jail(jail).await;
            }
            return Err(KernelError::StartupFailed { message, log_tail });
        }
        Err(_) => {
            let _ = killpg(pid, Signal::SIGKILL);
            if let Some(jail) = jail {
                end_jail(jail).await;
            }
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
        jail,
        reported: Mutex::new((0, 0)),
        queries: Mutex::default(),
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

/// The worker's own flags.
fn worker_args(options: &KernelOptions, venv: &Path, layer: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = options.args.iter().map(OsString::from).collect();
    args.extend(["--venv".into(), venv.into(), "--layer".into(), layer.into()]);
    // A sandbox's cgroup limits the memory of the kernel and everything it starts; an
    // address-space limit on top would refuse mere reservations (thread stacks, malloc
    // arenas, CUDA) long before memory runs out.
    let sandboxed = matches!(options.isolation, Isolation::Sandboxed(_));
    if let Some(limit) = options.memory_limit_bytes.filter(|_| !sandboxed) {
        args.extend(["--memory-limit".into(), limit.to_string().into()]);
    }
    args
}

/// Why a kernel ended, with what its sandbox knows: bwrap reports a signal death of the
/// kernel as exit code 128 + signal, and the cgroup counts OOM kills.
fn classify(
    status: Option<std::process::ExitStatus>,
    killed: bool,
    shutting_down: bool,
    limit: Option<u64>,
    log_tail: String,
    jail: Option<&crate::sandbox::Jail>,
) -> Death {
    use std::os::unix::process::ExitStatusExt;
    let Some(jail) = jail else {
        return Death::from_exit(status, killed, shutting_down, limit, log_tail);
    };
    let status = status.map(|status| match status.code() {
        Some(code) if code > 128 => std::process::ExitStatus::from_raw(code - 128),
        _ => status,
    });
    let mut death = Death::from_exit(status, killed, shutting_down, limit, log_tail);
    if !killed && !shutting_down && jail.oom_kills() > 0 {
        death.reason = super::DeathReason::OutOfMemory {
            limit_bytes: jail.memory_limit(),
        };
    }
    death
}

/// Tears a kernel's sandbox down off the async threads (it waits for the OS).
async fn end_jail(jail: Arc<crate::sandbox::Jail>) {
    let _ = tokio::task::spawn_blocking(move || jail.teardown()).await;
}

/// The kernel's whole environment: nothing of the server's (no tokens, database paths or
/// `TANDEM_*` settings), only what Python and notebook code expect.
fn kernel_env(
    venv: &Path,
    layer: &Path,
    workdir: &Path,
    extra: &[(String, String)],
) -> Vec<(OsString, OsString)> {
    // The kernel's own layer first: what `pip install` adds there shadows the shared venv.
    let mut path = layer.join("bin").into_os_string();
    path.push(":");
    path.push(venv.join("bin"));
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
        ("VIRTUAL_ENV".into(), layer.into()),
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

    let death = classify(
        status,
        shared.killed.load(Ordering::SeqCst),
        shared.shutting_down.load(Ordering::SeqCst),
        shared.memory_limit_bytes,
        log_text(&log),
        shared.jail.as_deref(),
    );
    // Its uid is returned only once nothing of it is left.
    if let Some(jail) = shared.jail.clone() {
        end_jail(jail).await;
    }
    tracing::info!(reason = %death, "kernel ended");
    let unfinished = {
        let mut cells = shared.cells();
        cells.dead = Some(death.clone());
        mem::take(&mut cells.running)
    };
    // Dropped senders tell their waiters the kernel is gone.
    shared.queries().clear();
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
    let event = match event {
        // Answers to code intelligence requests belong to whoever asked, not to a cell.
        Event::CompleteReply { id, .. } | Event::InspectReply { id, .. } => {
            match shared.queries().remove(&id) {
                Some(waiter) => {
                    let _ = waiter.send(event);
                }
                None => tracing::debug!(id, "an answer nobody waits for any more"),
            }
            return;
        }
        event => event,
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
                for note in sandbox_notes(shared) {
                    let _ = sender.send(note).await;
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

/// What the sandbox stopped during the cell that just ended, as stderr under it: processes
/// the OOM killer ended, forks or threads refused at the process limit.
fn sandbox_notes(shared: &Shared) -> Vec<KernelEvent> {
    let Some(jail) = &shared.jail else {
        return Vec::new();
    };
    let (oom, forks) = (jail.oom_kills(), jail.process_limit_hits());
    let mut reported = shared
        .reported
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut notes = Vec::new();
    if oom > reported.0 {
        let limit = jail
            .memory_limit()
            .map(super::death::describe_bytes)
            .unwrap_or_default();
        notes.push(format!(
            "The kernel ran out of memory ({limit} limit): the system ended a process of \
             this kernel to stay within it.\n"
        ));
    }
    if forks > reported.1 {
        notes.push(format!(
            "This kernel reached its limit of {} processes and threads: starting another \
             one failed.\n",
            jail.max_processes()
        ));
    }
    *reported = (oom, forks);
    notes
        .into_iter()
        .map(|text| {
            KernelEvent::Output(Output::Stream {
                name: tandem_protocol::kernel::StreamName::Stderr,
                text,
            })
        })
        .collect()
}

fn kernel_event(event: Event) -> Option<KernelEvent> {
    let display_id = |transient: Option<tandem_protocol::kernel::Transient>| {
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
        Event::InputRequest {
            id,
            prompt,
            password,
        } => KernelEvent::InputRequest {
            id,
            prompt,
            password,
        },
        Event::Names { cell, peers } => KernelEvent::Names { cell, peers },
        Event::Ready { .. }
        | Event::Fatal { .. }
        | Event::Done { .. }
        | Event::CompleteReply { .. }
        | Event::InspectReply { .. } => return None,
    })
}

/// What a child that failed to start wrote to stderr, if it ended within a second (at most
/// 2 KiB, trimmed); `None` when it is still running or said nothing.
async fn stderr_after_exit(child: &mut Child) -> Option<String> {
    let stderr = child.stderr.as_mut()?;
    let mut said = Vec::new();
    let mut limited = stderr.take(2048);
    let read = limited.read_to_end(&mut said);
    match tokio::time::timeout(Duration::from_secs(1), read).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) | Err(_) => return None,
    }
    let said = String::from_utf8_lossy(&said).trim().to_owned();
    (!said.is_empty()).then_some(said)
}
