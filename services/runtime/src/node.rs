//! A runtime node: the execution service as a peer of a collab service.
//!
//! It takes [`Command`]s from one of two links and turns each into calls on the notebook's
//! [`Session`], starting sessions on demand. Each session joins its notebook's document
//! through the collab service (`--collab-url`).
//! - The control WebSocket (default): `GET /internal/runtime` with the service credential,
//!   held open to one collab service and reopened with backoff when it drops.
//! - Redis ([`redis`], with `--redis-url`): per-notebook leases, a queue per runtime node and a
//!   shared stream for notebooks nobody owns, so any collab node reaches the node that runs
//!   a notebook; live nodes mark the kernels of a vanished node dead.

mod redis;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tandem_protocol::runtime::{CONTROL_PATH, Command, Reply};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

use crate::drive::{DriveSettings, Owner};
use crate::kernel::{DriveLink, Kernel, KernelOptions, Scratch};
use crate::metrics::Readiness;
use crate::session::{Session, SessionConfig, SessionError};

/// A kernel being started ahead of need: once done, the kernel and its working directory.
type Spare = tokio::task::JoinHandle<Option<(Kernel, PathBuf)>>;

/// Largest saved output sent back through the control channel.
const MAX_OUTPUT_DOWNLOAD: u64 = 32 * 1024 * 1024;

/// Longest wait between two attempts to reach the collab service.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How kernels are run; shared by `tandem serve` and `tandem runtime`.
#[derive(Debug, Clone, clap::Args)]
pub struct KernelConfig {
    /// The kernel venv (made by `scripts/setup-python` from the CPython the binary embeds).
    #[arg(long, env = "TANDEM_VENV", default_value = ".venv-kernel")]
    pub venv: PathBuf,

    /// Where kernels get their working directories (one per notebook). Keep it outside
    /// `--data`: kernels must not see the server's store.
    #[arg(long, env = "TANDEM_KERNEL_DIR", default_value = "./tandem-kernels")]
    pub kernel_dir: PathBuf,

    /// Address-space limit of each kernel, in MiB (0: none).
    #[arg(long, env = "TANDEM_KERNEL_MEMORY_MIB", default_value_t = 8192)]
    pub kernel_memory_mib: u64,

    /// Most output one cell may write into the notebook, in bytes; beyond it a truncation
    /// notice, with the full text kept in a file.
    #[arg(long, env = "TANDEM_OUTPUT_CAP", default_value_t = crate::session::DEFAULT_OUTPUT_CAP_BYTES)]
    pub output_cap: usize,

    /// How long an interrupted cell may go on before its kernel is killed.
    #[arg(long, env = "TANDEM_INTERRUPT_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub interrupt_grace: Duration,

    /// Shut a kernel down after this long without running a cell (announced in
    /// `state.kernel.idle_shutdown_at`).
    #[arg(long, env = "TANDEM_KERNEL_IDLE_TIMEOUT", default_value = "90m", value_parser = humantime::parse_duration)]
    pub kernel_idle_timeout: Duration,

    /// Stop a kernel this long after it started, busy or not (announced in
    /// `state.kernel.lifetime_ends_at`).
    #[arg(long, env = "TANDEM_KERNEL_MAX_LIFETIME", default_value = "12h", value_parser = humantime::parse_duration)]
    pub kernel_max_lifetime: Duration,

    /// Kernels one user may have running at once, across notebooks (0: no limit). The user
    /// who starts a notebook's kernel is its holder until it stops.
    #[arg(long, env = "TANDEM_KERNELS_PER_USER", default_value_t = 4)]
    pub kernels_per_user: usize,

    /// Keep one kernel started ahead of need (0 or 1), so a notebook's first cell runs without
    /// waiting for Python and IPython to start.
    #[arg(long, env = "TANDEM_SPARE_KERNELS", default_value_t = 1)]
    pub spare_kernels: u8,

    /// The user kernels run as. Default: `nobody` when Tandem runs as root (kernels then
    /// cannot read the store or each other's files), else the server's own user; `""`
    /// keeps the server's user even as root.
    #[arg(long, env = "TANDEM_KERNEL_USER")]
    pub kernel_user: Option<String>,

    /// The program that runs a kernel worker; default: this binary with `kernel`.
    #[arg(long, env = "TANDEM_KERNEL_PROGRAM")]
    pub kernel_program: Option<PathBuf>,
}

/// Configuration of a runtime node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The collab service's HTTP root, such as `http://127.0.0.1:8080`.
    pub collab_url: String,
    /// The service credential the collab service was given.
    pub service_token: String,
    /// How kernels run.
    pub kernels: KernelConfig,
    /// Take commands from Redis instead of the control WebSocket.
    pub redis: Option<RedisConfig>,
    /// Set while the node's link (control WebSocket or Redis) is up; `/readyz` reports it.
    pub ready: Readiness,
    /// Users' drives, linked into kernels as `drive/` (see [`crate::drive`]); `None`: none.
    pub drive: Option<DriveSettings>,
}

/// Where a runtime node finds Redis (the same settings as the collab nodes').
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Key prefix (`--redis-prefix`).
    pub prefix: String,
}

/// How often the node's metrics (sessions, kernels, queued cells) are refreshed.
const METRICS_REFRESH: Duration = Duration::from_secs(1);

/// Runs the node until `stop` is cancelled, then shuts every session down.
pub async fn run(config: NodeConfig, stop: CancellationToken) -> anyhow::Result<()> {
    let node = Arc::new(Node::new(config)?);
    if node.config.kernels.spare_kernels > 0 {
        *node.spare.lock().await = Some(node.spawn_spare());
    }
    tokio::spawn(refresh_metrics(node.clone(), stop.clone()));
    if let Some(redis) = node.config.redis.clone() {
        return redis::run(node, redis, stop).await;
    }
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let served = node.serve_once(&stop).await;
        node.config.ready.set(false);
        match served {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "control channel unavailable"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    node.shutdown().await;
    Ok(())
}

struct Node {
    config: NodeConfig,
    ws_base: String,
    kernel: KernelOptions,
    sessions: Mutex<HashMap<String, Session>>,
    /// Who started each notebook's current kernel, for the per-user limit.
    holders: Mutex<HashMap<String, String>>,
    /// Notebooks switched to the GPU runtime.
    gpu: Mutex<std::collections::HashSet<String>>,
    /// A CPU kernel started ahead of need, and its working directory.
    spare: Mutex<Option<Spare>>,
    next_group: AtomicU64,
    /// Per notebook, the drive its next kernel sees (its holder's).
    drives: Mutex<HashMap<String, DriveLink>>,
    /// The OS account kernels run as, when it is not the server's own.
    kernel_owner: Option<Owner>,
}

impl Node {
    fn new(config: NodeConfig) -> anyhow::Result<Self> {
        let ws_base = format!("{}/ws", ws_root(&config.collab_url)?);
        let (program, args) = match &config.kernels.kernel_program {
            Some(program) => (program.clone(), Vec::new()),
            None => (
                std::env::current_exe().context("locating the tandem binary for kernels")?,
                vec!["kernel".to_owned()],
            ),
        };
        let mut args = args;
        let workdir = absolute(&config.kernels.kernel_dir)?;
        let kernel_owner = kernel_owner(config.kernels.kernel_user.as_deref())?;
        if let Some(drive) = &config.drive {
            drive
                .prepare(kernel_owner)
                .with_context(|| format!("preparing the drive folder {}", drive.dir.display()))?;
            args.extend(["--drive-quota".to_owned(), drive.quota_bytes.to_string()]);
        }
        // Scratch folders of node processes that were killed before cleaning up.
        crate::kernel::sweep(&workdir);
        if let Some(user) = kernel_user(config.kernels.kernel_user.as_deref()) {
            // Kernels reach their own directory below this one: others may pass through it
            // but not list it.
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(&workdir)
                .with_context(|| format!("creating {}", workdir.display()))?;
            std::fs::set_permissions(&workdir, std::fs::Permissions::from_mode(0o711))
                .with_context(|| format!("chmod 711 {}", workdir.display()))?;
            args.extend(["--run-as".to_owned(), user]);
        }
        let memory = config.kernels.kernel_memory_mib;
        let kernel = KernelOptions {
            program,
            args,
            venv: absolute(&config.kernels.venv)?,
            workdir,
            memory_limit_bytes: (memory > 0).then_some(memory * 1024 * 1024),
            env: Vec::new(),
            scratch: Some(Scratch::default()),
        };
        Ok(Self {
            config,
            ws_base,
            kernel,
            sessions: Mutex::default(),
            holders: Mutex::default(),
            gpu: Mutex::default(),
            spare: Mutex::default(),
            next_group: AtomicU64::new(1),
            drives: Mutex::default(),
            kernel_owner,
        })
    }

    /// Starts a spare CPU kernel in a scratch folder of its own, with no drive until it is
    /// handed to a notebook.
    fn spawn_spare(&self) -> Spare {
        let mut options = self.kernel.clone();
        options.scratch = options.scratch.map(|_| Scratch::default());
        options.env.push((
            crate::tensor::device::RUNTIME_ENV.to_owned(),
            "cpu".to_owned(),
        ));
        tokio::spawn(async move {
            match Kernel::start(options).await {
                Ok(kernel) => {
                    let workdir = kernel.workdir().to_path_buf();
                    Some((kernel, workdir))
                }
                Err(error) => {
                    tracing::debug!(%error, "no spare kernel");
                    None
                }
            }
        })
    }

    /// The spare kernel if it is ready (a new one is started in its place); `None` while it
    /// is still starting or when spares are off.
    async fn take_spare(&self) -> Option<(Kernel, PathBuf)> {
        if self.config.kernels.spare_kernels == 0 {
            return None;
        }
        let mut slot = self.spare.lock().await;
        match slot.take() {
            Some(handle) if handle.is_finished() => {
                *slot = Some(self.spawn_spare());
                // A spare that died while waiting is no use.
                handle
                    .await
                    .ok()
                    .flatten()
                    .filter(|(kernel, _)| kernel.exited().is_none())
            }
            Some(starting) => {
                *slot = Some(starting);
                None
            }
            None => {
                *slot = Some(self.spawn_spare());
                None
            }
        }
    }

    /// Connects to the control channel and serves it until it closes or `stop` fires.
    async fn serve_once(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let url = format!("{}{CONTROL_PATH}", ws_root(&self.config.collab_url)?);
        let mut request = url.as_str().into_client_request()?;
        let bearer = format!("Bearer {}", self.config.service_token);
        request
            .headers_mut()
            .insert("authorization", bearer.parse()?);
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        tracing::info!(%url, "runtime joined the collab service");
        self.config.ready.set(true);
        let (mut sink, mut stream) = socket.split();
        loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = stop.cancelled() => return Ok(()),
            };
            match frame {
                Some(Ok(Ws::Text(text))) => {
                    let command: Command = match serde_json::from_str(&text) {
                        Ok(command) => command,
                        Err(err) => {
                            tracing::warn!(error = %err, "malformed command");
                            continue;
                        }
                    };
                    let reply = self.handle(command).await;
                    sink.send(Ws::Text(serde_json::to_string(&reply)?.into()))
                        .await?;
                }
                Some(Ok(Ws::Close(_))) | None => return Ok(()),
                Some(Err(err)) => return Err(err.into()),
                Some(Ok(_)) => {}
            }
        }
    }

    async fn handle(&self, command: Command) -> Reply {
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
                ..
            } => {
                tracing::info!(doc_id = %notebook_id, %user_id, cells = cell_ids.len(), stale, "execute");
                let group = (stop_on_error || stale)
                    .then(|| self.next_group.fetch_add(1, Ordering::Relaxed));
                if let Err(message) = self.admit(&notebook_id, &user_id).await {
                    return Reply::Error {
                        request,
                        code: "kernel_limit".to_owned(),
                        message,
                    };
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
            Command::Interrupt { notebook_id, .. } => match self.running(&notebook_id).await {
                Some(session) => session.interrupt().await.map(|()| Vec::new()),
                None => Ok(Vec::new()),
            },
            Command::SetRuntime {
                notebook_id,
                runtime,
                ..
            } => {
                return match self.set_runtime(&notebook_id, &runtime).await {
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
            Command::Restart { notebook_id, .. } => match self.running(&notebook_id).await {
                Some(session) => session.restart().await.map(|()| Vec::new()),
                None => Ok(Vec::new()),
            },
        };
        match result {
            Ok(queued) => Reply::Ok { request, queued },
            Err(err) => {
                let code = match err {
                    SessionError::UnknownCell(_) | SessionError::NotACodeCell(_) => "unknown_cell",
                    SessionError::Connect(_) | SessionError::Closed => "runtime_error",
                };
                Reply::Error {
                    request,
                    code: code.to_owned(),
                    message: err.to_string(),
                }
            }
        }
    }

    /// Switches a notebook between the CPU and GPU runtimes: its session (and kernel) is
    /// replaced by one on the new device, started at once so everyone sees the change.
    async fn set_runtime(
        &self,
        notebook_id: &str,
        runtime: &str,
    ) -> Result<(), (&'static str, String)> {
        let gpu = runtime == "gpu";
        if gpu && !crate::tensor::device::cuda_available() {
            return Err((
                "gpu_unavailable",
                "no GPU runtime here: this server has no CUDA build or no usable NVIDIA GPU; \
                 the notebook stays on the CPU"
                    .to_owned(),
            ));
        }
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

    /// Checks the per-user kernel limit before `user` runs code in `notebook_id`, and records
    /// `user` as the holder of the kernel this starts. Running in a notebook whose kernel is
    /// already up never counts again.
    async fn admit(&self, notebook_id: &str, user: &str) -> Result<(), String> {
        let limit = self.config.kernels.kernels_per_user;
        let sessions = self.sessions.lock().await;
        let live = |id: &str| {
            sessions
                .get(id)
                .is_some_and(|s| !s.is_closed() && s.has_kernel())
        };
        if live(notebook_id) {
            return Ok(());
        }
        let mut holders = self.holders.lock().await;
        holders.retain(|id, _| live(id));
        let held = holders
            .values()
            .filter(|holder| holder.as_str() == user)
            .count();
        if limit > 0 && held >= limit {
            return Err(format!(
                "you already have {held} running kernel(s), the most one person may have; \
                 restart or leave one idle until it shuts down, then try again"
            ));
        }
        holders.insert(notebook_id.to_owned(), user.to_owned());
        Ok(())
    }

    /// Points the notebook's next kernel at its holder's drive (a running kernel keeps the
    /// drive it has: its holder has not changed).
    async fn point_drive(&self, notebook_id: &str) {
        let Some(drive) = self.config.drive.clone() else {
            return;
        };
        let Some(holder) = self.holders.lock().await.get(notebook_id).cloned() else {
            return;
        };
        let owner = self.kernel_owner;
        let folder = tokio::task::spawn_blocking(move || drive.user_folder(&holder, owner)).await;
        match folder {
            Ok(Ok(folder)) => self.drive_link(notebook_id).await.set(folder),
            Ok(Err(error)) => {
                tracing::warn!(doc_id = %notebook_id, %error, "no drive for this kernel")
            }
            Err(error) => tracing::warn!(doc_id = %notebook_id, %error, "no drive for this kernel"),
        }
    }

    /// The notebook's drive link, shared by all its kernels' options.
    async fn drive_link(&self, notebook_id: &str) -> DriveLink {
        self.drives
            .lock()
            .await
            .entry(notebook_id.to_owned())
            .or_default()
            .clone()
    }

    /// The notebook's session, started if there is none (or the last one ended).
    async fn session(&self, notebook_id: &str) -> Result<Session, SessionError> {
        if let Some(session) = self.running(notebook_id).await {
            return Ok(session);
        }
        self.start_session(notebook_id, false).await
    }

    /// Starts a session for the notebook on its runtime type, replacing any ended one.
    async fn start_session(&self, notebook_id: &str, eager: bool) -> Result<Session, SessionError> {
        let gpu = self.gpu.lock().await.contains(notebook_id);
        let mut sessions = self.sessions.lock().await;
        if let Some(session) = sessions.get(notebook_id).filter(|s| !s.is_closed()) {
            return Ok(session.clone());
        }
        let mut kernel = self.kernel.clone();
        let runtime = if gpu { "gpu" } else { "cpu" };
        kernel.env.push((
            crate::tensor::device::RUNTIME_ENV.to_owned(),
            runtime.to_owned(),
        ));
        // Truncated outputs are kept per notebook, wherever its kernel runs.
        let outputs = kernel
            .workdir
            .join(notebook_id)
            .join(crate::session::FULL_OUTPUT_DIR);
        let drive = self.drive_link(notebook_id).await;
        kernel.scratch = kernel.scratch.map(|_| Scratch {
            drive: drive.clone(),
        });
        let spare = if gpu { None } else { self.take_spare().await };
        if let (Some((_, workdir)), Some(target)) = (&spare, drive.get())
            && let Err(error) = crate::kernel::link_drive(workdir, &target)
        {
            tracing::warn!(doc_id = %notebook_id, %error, "could not link the drive into the spare kernel");
        }
        // Scratch kernels each make their own folder under the kernel dir; without scratch
        // (never, from this node) the notebook's folder would be the working directory.
        if kernel.scratch.is_none() {
            kernel.workdir = kernel.workdir.join(notebook_id);
        }
        let spare = spare.map(|(spare, _)| spare);
        let mut config = SessionConfig::new(
            &self.ws_base,
            notebook_id,
            &self.config.service_token,
            kernel,
        );
        config.output_cap_bytes = self.config.kernels.output_cap;
        config.interrupt_grace = self.config.kernels.interrupt_grace;
        config.idle_timeout = self.config.kernels.kernel_idle_timeout;
        config.runtime = runtime;
        config.gpu = if gpu { gpu_description().await } else { None };
        config.eager_start = eager;
        config.max_lifetime = self.config.kernels.kernel_max_lifetime;
        config.secrets =
            crate::secrets::SecretsClient::new(&self.config.collab_url, &self.config.service_token)
                .inspect_err(|error| tracing::warn!(%error, "secrets unavailable to this session"))
                .ok();
        config.full_output_dir = Some(outputs);
        let session = Session::start_with_kernel(config, spare).await?;
        sessions.insert(notebook_id.to_owned(), session.clone());
        Ok(session)
    }

    async fn running(&self, notebook_id: &str) -> Option<Session> {
        self.sessions
            .lock()
            .await
            .get(notebook_id)
            .filter(|s| !s.is_closed())
            .cloned()
    }

    async fn shutdown(&self) {
        if let Some(spare) = self.spare.lock().await.take() {
            // A spare that is up is dropped here, which kills it; one still starting is
            // cancelled with its child.
            spare.abort();
            if let Ok(Some((kernel, _))) = spare.await {
                drop(kernel);
            }
        }
        let sessions: Vec<Session> = self.sessions.lock().await.drain().map(|(_, s)| s).collect();
        for session in sessions {
            session.shutdown().await;
        }
    }
}

/// Refreshes the node's session gauges until `stop`.
async fn refresh_metrics(node: Arc<Node>, stop: CancellationToken) {
    let mut every = tokio::time::interval(METRICS_REFRESH);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        let sessions = node.sessions.lock().await;
        let live: Vec<&Session> = sessions.values().filter(|s| !s.is_closed()).collect();
        let kernels = live.iter().filter(|s| s.has_kernel()).count();
        let queued = live.iter().map(|s| s.queued()).sum();
        crate::metrics::sessions(live.len(), kernels, queued);
    }
}

/// The user kernels run as, per [`KernelConfig::kernel_user`].
fn kernel_user(configured: Option<&str>) -> Option<String> {
    match configured {
        Some("") => None,
        Some(user) => Some(user.to_owned()),
        None => nix::unistd::geteuid()
            .is_root()
            .then(|| "nobody".to_owned()),
    }
}

/// The uid and gid of the user kernels run as, when that is not the server's own user.
fn kernel_owner(configured: Option<&str>) -> anyhow::Result<Option<Owner>> {
    let Some(name) = kernel_user(configured) else {
        return Ok(None);
    };
    let user = nix::unistd::User::from_name(&name)
        .with_context(|| format!("looking up the kernel user {name:?}"))?
        .with_context(|| format!("no user {name:?} on this system for kernels to run as"))?;
    Ok((user.uid != nix::unistd::geteuid()).then_some((user.uid, user.gid)))
}

/// The first GPU's name and memory (`NVIDIA H200, 143771 MiB`), from `nvidia-smi`.
async fn gpu_description() -> Option<String> {
    let output = tokio::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader",
            "--id=0",
        ])
        .output()
        .await
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let line = text.lines().next()?.trim();
    (output.status.success() && !line.is_empty()).then(|| line.to_owned())
}

/// `http://host:port` → `ws://host:port` (and https → wss), without a trailing slash.
fn ws_root(collab_url: &str) -> anyhow::Result<String> {
    let trimmed = collab_url.trim_end_matches('/');
    if let Some(rest) = trimmed.strip_prefix("http://") {
        Ok(format!("ws://{rest}"))
    } else if let Some(rest) = trimmed.strip_prefix("https://") {
        Ok(format!("wss://{rest}"))
    } else if trimmed.starts_with("ws://") || trimmed.starts_with("wss://") {
        Ok(trimmed.to_owned())
    } else {
        anyhow::bail!("the collab URL must start with http:// or https://, got {collab_url:?}")
    }
}

fn absolute(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("reading the current directory")?
        .join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collab_urls_map_to_websocket_roots() {
        assert_eq!(
            ws_root("http://127.0.0.1:8080/").unwrap(),
            "ws://127.0.0.1:8080"
        );
        assert_eq!(
            ws_root("https://tandem.example").unwrap(),
            "wss://tandem.example"
        );
        assert!(ws_root("127.0.0.1:8080").is_err());
    }
}
