//! A runtime node: the execution service as a peer of a collab service.
//!
//! It takes [`Command`](tandem_protocol::runtime::Command)s from one of two links and turns
//! each into calls on the notebook's [`Session`] ([`commands`]), starting sessions on demand.
//! Each session joins its notebook's document through the collab service (`--collab-url`:
//! one or several collab nodes, or a load balancer), and rejoins through any of them when its
//! connection drops, keeping its kernel (`session/link.rs`, `--collab-reconnect-timeout`).
//! - The control WebSocket ([`control`], the default): `GET /internal/runtime` with the
//!   service credential, held open to one collab service and reopened with backoff when it
//!   drops, trying the next `--collab-url` each time.
//! - Redis ([`redis`], with `--redis-url`): per-notebook leases, a queue per runtime node and a
//!   shared stream for notebooks nobody owns, so any collab node reaches the node that runs
//!   a notebook; live nodes mark the kernels of a vanished node dead.
//!
//! Kernels start from a [`spare`] when one is ready, run for their holder (who started them:
//! [`holders`] decides who may do what in someone else's) and see their holder's drive
//! through [`drives`].

mod commands;
mod control;
mod drives;
mod holders;
mod notebooks;
mod redis;
mod spare;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tandem_protocol::runtime::RuntimeKind;

use anyhow::Context;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::drive::{DriveSettings, Owner};
use crate::kernel::{KernelOptions, Scratch};
use crate::metrics::Readiness;
use crate::sandbox::{Isolation, SandboxConfig};
use crate::session::{Session, SessionConfig, SessionError};
use spare::Spare;

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

    /// The kernel sandbox.
    #[command(flatten)]
    pub sandbox: SandboxConfig,
}

impl KernelConfig {
    /// Prepares the kernel sandbox these flags ask for (see [`Isolation::prepare`]).
    pub fn isolation(&self) -> anyhow::Result<Isolation> {
        let memory = self.kernel_memory_mib;
        Ok(Isolation::prepare(
            &self.sandbox,
            (memory > 0).then_some(memory * 1024 * 1024),
        ))
    }
}

/// Configuration of a runtime node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The collab service's HTTP roots, such as `http://127.0.0.1:8080`: every collab node,
    /// or one load balancer. Sessions and the control link use whichever answers.
    pub collab_urls: Vec<String>,
    /// How long a session that lost its notebook connection looks for a collab node before
    /// it ends its kernel ([`SessionConfig::reconnect_timeout`]).
    pub reconnect_timeout: Duration,
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
    /// How kernels are isolated ([`KernelConfig::isolation`]).
    pub isolation: Isolation,
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
    let mut which = 0usize;
    while !stop.is_cancelled() {
        let served = node.serve_once(which, &stop).await;
        node.config.ready.set(false);
        match served {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "control channel unavailable"),
        }
        // The next attempt goes to the next collab node, so a dead one is not retried alone.
        which = which.wrapping_add(1);
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
    /// WebSocket roots of `collab_urls`, in the same order.
    ws_bases: Vec<String>,
    kernel: KernelOptions,
    /// Each notebook's session, kernel holder, runtime type and drive ([`notebooks`]).
    notebooks: Mutex<notebooks::Notebooks>,
    /// Whether the kernel program opens a CUDA device (asked once, see [`Node::cuda_available`]).
    cuda: tokio::sync::OnceCell<bool>,
    /// A CPU kernel started ahead of need, and its working directory.
    spare: Mutex<Option<Spare>>,
    next_group: AtomicU64,
    /// The OS account kernels run as, when it is not the server's own.
    kernel_owner: Option<Owner>,
    /// Running cells' secret lookups, carried by whichever link is up.
    secrets: Arc<crate::secrets::Secrets>,
}

impl Node {
    fn new(config: NodeConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(!config.collab_urls.is_empty(), "no --collab-url given");
        let ws_bases = config
            .collab_urls
            .iter()
            .map(|url| Ok(format!("{}/ws", ws_root(url)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (program, args) = match &config.kernels.kernel_program {
            Some(program) => (program.clone(), Vec::new()),
            None => (
                std::env::current_exe().context("locating the tandem binary for kernels")?,
                vec!["kernel".to_owned()],
            ),
        };
        let mut args = args;
        let workdir = absolute(&config.kernels.kernel_dir)?;
        let sandboxed = matches!(config.isolation, Isolation::Sandboxed(_));
        let kernel_owner = if sandboxed {
            // Drives stay the server's on disk; each sandbox maps them to its own uid.
            Some((nix::unistd::geteuid(), nix::unistd::getegid()))
        } else {
            kernel_owner(config.kernels.kernel_user.as_deref())?
        };
        if let Some(drive) = &config.drive {
            drive
                .prepare(kernel_owner)
                .with_context(|| format!("preparing the drive folder {}", drive.dir.display()))?;
            args.extend(["--drive-quota".to_owned(), drive.quota_bytes.to_string()]);
        }
        // Scratch folders of node processes that were killed before cleaning up.
        crate::kernel::sweep(&workdir);
        let run_as = kernel_user(config.kernels.kernel_user.as_deref()).filter(|_| !sandboxed);
        if let Some(user) = run_as {
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
            isolation: config.isolation.clone(),
            gpu: false,
        };
        Ok(Self {
            config,
            ws_bases,
            kernel,
            notebooks: Mutex::default(),
            cuda: tokio::sync::OnceCell::new(),
            spare: Mutex::default(),
            next_group: AtomicU64::new(1),
            kernel_owner,
            secrets: Arc::default(),
        })
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
        // Held while the session starts, so two commands never start two sessions.
        let mut notebooks = self.notebooks.lock().await;
        let entry = notebooks.entry(notebook_id.to_owned()).or_default();
        if let Some(session) = entry.live_session() {
            return Ok(session.clone());
        }
        let (gpu, drive, holder) = (entry.gpu, entry.drive.clone(), entry.holder_link.clone());
        let mut kernel = self.kernel.clone();
        kernel.gpu = gpu;
        let runtime = if gpu {
            RuntimeKind::Gpu
        } else {
            RuntimeKind::Cpu
        };
        kernel.env.push((
            tandem_protocol::kernel::RUNTIME_ENV.to_owned(),
            runtime.as_str().to_owned(),
        ));
        // Truncated outputs are kept per notebook, wherever its kernel runs.
        let outputs = kernel
            .workdir
            .join(notebook_id)
            .join(crate::session::FULL_OUTPUT_DIR);
        kernel.scratch = kernel.scratch.map(|_| Scratch {
            drive: drive.clone(),
        });
        let spare = if gpu { None } else { self.take_spare().await };
        if let (Some((spare, _)), Some(target)) = (&spare, drive.get())
            && let Err(error) = spare.attach_drive(&target)
        {
            tracing::warn!(doc_id = %notebook_id, %error, "could not link the drive into the spare kernel");
        }
        // Scratch kernels each make their own folder under the kernel dir; without scratch
        // (never, from this node) the notebook's folder would be the working directory.
        if kernel.scratch.is_none() {
            kernel.workdir = kernel.workdir.join(notebook_id);
        }
        let spare = spare.map(|(spare, _)| spare);
        let mut config = SessionConfig::new("", notebook_id, &self.config.service_token, kernel);
        config.ws_bases = self.ws_bases.clone();
        config.reconnect_timeout = self.config.reconnect_timeout;
        config.output_cap_bytes = self.config.kernels.output_cap;
        config.interrupt_grace = self.config.kernels.interrupt_grace;
        config.idle_timeout = self.config.kernels.kernel_idle_timeout;
        config.runtime = match runtime {
            RuntimeKind::Cpu => tandem_crdt::kernel::KernelRuntime::Cpu,
            RuntimeKind::Gpu => tandem_crdt::kernel::KernelRuntime::Gpu,
        };
        config.gpu = if gpu { gpu_description().await } else { None };
        config.eager_start = eager;
        config.max_lifetime = self.config.kernels.kernel_max_lifetime;
        config.secrets = Some(Arc::clone(&self.secrets));
        config.full_output_dir = Some(outputs);
        config.holder = holder;
        let session = Session::start_with_kernel(config, spare).await?;
        notebooks.entry(notebook_id.to_owned()).or_default().session = Some(session.clone());
        Ok(session)
    }

    /// Whether this node can offer a GPU runtime: the kernel program (which links CUDA when
    /// built with the `cuda` feature; this crate never does) is asked once whether a CUDA
    /// device opens.
    pub(crate) async fn cuda_available(&self) -> bool {
        *self
            .cuda
            .get_or_init(|| async {
                let mut probe = tokio::process::Command::new(&self.kernel.program);
                if self.config.kernels.kernel_program.is_none() {
                    probe.arg("kernel");
                }
                let status = probe
                    .arg(tandem_protocol::kernel::PROBE_CUDA_FLAG)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .status()
                    .await;
                match status {
                    Ok(status) => status.success(),
                    Err(error) => {
                        tracing::warn!(%error, "could not ask the kernel program about CUDA");
                        false
                    }
                }
            })
            .await
    }

    /// Whether the notebook's session ended because it could not reach the notebook again.
    async fn lost(&self, notebook_id: &str) -> bool {
        self.notebooks
            .lock()
            .await
            .get(notebook_id)
            .and_then(|entry| entry.session.as_ref())
            .is_some_and(Session::is_lost)
    }

    async fn running(&self, notebook_id: &str) -> Option<Session> {
        self.notebooks
            .lock()
            .await
            .get(notebook_id)
            .and_then(notebooks::NotebookEntry::live_session)
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
        let sessions: Vec<Session> = self
            .notebooks
            .lock()
            .await
            .drain()
            .filter_map(|(_, entry)| entry.session)
            .collect();
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
        let notebooks = node.notebooks.lock().await;
        let live: Vec<&Session> = notebooks
            .values()
            .filter_map(notebooks::NotebookEntry::live_session)
            .collect();
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
