//! The kernel sandbox: every kernel in its own uid, filesystem view, process space, network
//! and cgroup, built from established Linux tools.
//!
//! A kernel process is started as `bwrap` (Debian's `bubblewrap`, the sandbox Flatpak uses)
//! running as a uid leased for that kernel alone ([`uids`]). bwrap makes an unprivileged
//! user namespace (uid 1000 inside, the leased uid outside) with new mount, PID, network,
//! IPC and UTS namespaces, forbids further user namespaces and drops every capability. Inside:
//!
//! | path | what |
//! | --- | --- |
//! | `/usr`, `/bin`, `/lib*`, chosen `/etc` files | the system, read-only |
//! | the kernel venv, the `tandem` binary | read-only, at their host paths |
//! | `/content` | the working directory and `HOME`: an in-memory filesystem of `--kernel-disk-mib` |
//! | `/content/drive` | the Drive of the person the kernel runs for ([`mounts`]) |
//! | `/tmp`, `/opt/kernel-venv` | private in-memory filesystems (the latter: `%pip install`s) |
//! | `/proc`, `/dev` | the kernel's own processes; a minimal `/dev` |
//!
//! Nothing else of the host exists in there: not `--data`, not other kernels' folders or
//! drives, not saved outputs, not the server's processes. The network ([`network`]) is
//! slirp4netns with unreachable routes for the host and private ranges, or none at all.
//! Memory, processes and CPU are capped per kernel by a cgroup ([`cgroup`], v1 or v2).
//!
//! Start-up order matters: bwrap holds the sandbox before running anything in it
//! (`--block-fd`) while the runtime moves it into its cgroup and writes its routes; only
//! then does the kernel program start.
//!
//! The sandbox needs root (to lease uids, make cgroups and idmapped mounts), user namespaces,
//! a writable cgroup hierarchy with the memory, pids and cpu controllers, and `bwrap`,
//! `slirp4netns`, `nsenter` and `ip` on `PATH`. [`Sandbox::prepare`] checks each at start
//! and says exactly what is missing; `--kernel-sandbox off` runs kernels unconfined
//! instead, with a warning.

pub mod cgroup;
pub mod mounts;
pub mod network;
pub mod uids;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

pub use cgroup::{Cgroup, Cgroups, Limits};
pub use network::Cidr;
pub use uids::{UidLease, UidRange, Uids};

/// Where the sandbox keeps its host-side state (in memory: nothing of it outlives a reboot).
const RUN_DIR: &str = "/run/tandem";
/// Drive slots of kernels and each runtime's exposed paths; 0711, so each kernel's uid can
/// reach its own slot and nothing else.
const SANDBOX_DIR: &str = "/run/tandem/sandbox";
/// The kernel's uid and gid inside its user namespace.
pub const INNER_UID: u32 = 1000;
/// The kernel's working directory inside the sandbox (as in Colab).
pub const CONTENT: &str = "/content";
/// Where the per-kernel layer venv lives inside the sandbox (`%pip install` target).
pub const LAYER_VENV: &str = "/opt/kernel-venv";
/// How long bwrap may take to set up namespaces and report its child.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// `/etc` entries the sandbox sees (read-only): what programs need to resolve names,
/// verify TLS, find libraries, fonts and time zones. The rest of `/etc` (service configs
/// and their secrets) stays out.
const ETC: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "fonts",
    "gai.conf",
    "host.conf",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "localtime",
    "magic",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "pki",
    "profile",
    "protocols",
    "python3",
    "python3.11",
    "services",
    "ssl",
    "terminfo",
    "timezone",
];

/// Whether kernels are sandboxed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxMode {
    /// Each kernel in its own sandbox (the default); kernels are refused when it cannot be
    /// built.
    On,
    /// Kernels run unconfined as `--kernel-user`: only for trusted users or a host that
    /// isolates the runtime itself (gVisor, a VM per user).
    Off,
}

/// What network kernels get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMode {
    /// The public internet (pip, datasets); never the host or private networks.
    Public,
    /// No network at all (only the kernel's own loopback).
    None,
}

/// How kernels are sandboxed (part of the runtime's kernel flags).
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxConfig {
    /// Sandbox every kernel (on), or run kernels unconfined (off, with a warning at start).
    #[arg(long, env = "TANDEM_KERNEL_SANDBOX", value_enum, default_value = "on")]
    pub kernel_sandbox: SandboxMode,

    /// Network of sandboxed kernels: public egress (never the host's loopback or private,
    /// link-local and metadata ranges), or none.
    #[arg(
        long,
        env = "TANDEM_KERNEL_NETWORK",
        value_enum,
        default_value = "public"
    )]
    pub kernel_network: NetworkMode,

    /// Networks kernels may reach despite the private-range block (comma-separated IPv4
    /// CIDRs, e.g. an internal package mirror `10.8.0.0/16`).
    #[arg(long, env = "TANDEM_KERNEL_ALLOW_NET", value_delimiter = ',')]
    pub kernel_allow_net: Vec<Cidr>,

    /// Uids sandboxed kernels run as, one per kernel (`START-END`).
    #[arg(long, env = "TANDEM_KERNEL_UIDS", default_value = "600000-665535")]
    pub kernel_uids: UidRange,

    /// Processes and threads one kernel may have at once (a fork bomb stops here).
    #[arg(long, env = "TANDEM_KERNEL_MAX_PROCESSES", default_value_t = 1024)]
    pub kernel_max_processes: u64,

    /// Size of a kernel's scratch folder (`/content`) and of its `/tmp`, in MiB each. They
    /// live in memory and count toward `--kernel-memory-mib`; the Drive is on disk.
    #[arg(long, env = "TANDEM_KERNEL_DISK_MIB", default_value_t = 10240)]
    pub kernel_disk_mib: u64,

    /// CPUs one kernel may use at most (e.g. `1.5`); by default no cap, and every kernel
    /// gets an equal share when CPUs are contended.
    #[arg(long, env = "TANDEM_KERNEL_CPUS")]
    pub kernel_cpus: Option<f64>,
}

/// What the runtime's kernels run in, for `/readyz` and the start-up log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SandboxStatus {
    /// Kernels are sandboxed.
    On {
        /// `v1` or `v2`.
        cgroups: String,
        /// `public` or `none`.
        network: String,
    },
    /// `--kernel-sandbox off`: kernels are not isolated from each other or the server.
    Off,
    /// The sandbox cannot be built here; no kernel starts.
    Unavailable {
        /// What is missing.
        reason: String,
    },
}

/// How a runtime's kernels are isolated, decided once at start.
#[derive(Debug, Clone, Default)]
pub enum Isolation {
    /// `--kernel-sandbox off` (and tests of the kernel manager): kernels run unconfined.
    #[default]
    Unconfined,
    /// Every kernel in its own sandbox.
    Sandboxed(Arc<Sandbox>),
    /// The sandbox was asked for and cannot be built here: no kernel starts, and each
    /// attempt says why.
    Unavailable(String),
}

impl Isolation {
    /// Prepares what `config` asks for, saying at start what kernels will run in.
    pub fn prepare(config: &SandboxConfig, memory_bytes: Option<u64>) -> Self {
        if config.kernel_sandbox == SandboxMode::Off {
            tracing::warn!(
                "--kernel-sandbox off: kernels are NOT isolated from each other or from this \
                 server's network; run only code you trust"
            );
            eprintln!(
                "warning: --kernel-sandbox off: notebook code is not sandboxed (kernels can \
                 reach each other and this machine's loopback services)"
            );
            return Isolation::Unconfined;
        }
        match Sandbox::prepare(config.clone(), memory_bytes) {
            Ok(sandbox) => {
                let status = sandbox.status();
                tracing::info!(?status, "kernels run in sandboxes");
                Isolation::Sandboxed(Arc::new(sandbox))
            }
            Err(reason) => {
                tracing::error!(%reason, "the kernel sandbox is unavailable: kernels will not start");
                eprintln!(
                    "error: the kernel sandbox is unavailable, so no kernel will start: \
                     {reason}. Fix that, or pass --kernel-sandbox off to run kernels unconfined."
                );
                Isolation::Unavailable(reason)
            }
        }
    }

    /// What `/readyz` reports.
    pub fn status(&self) -> SandboxStatus {
        match self {
            Isolation::Unconfined => SandboxStatus::Off,
            Isolation::Sandboxed(sandbox) => sandbox.status(),
            Isolation::Unavailable(reason) => SandboxStatus::Unavailable {
                reason: reason.clone(),
            },
        }
    }
}

/// The host side of the sandbox, checked once at start.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    uids: Uids,
    cgroups: Cgroups,
    /// [`SANDBOX_DIR`]: per-kernel drive slots.
    dir: PathBuf,
    /// This runtime's own folder in it: the generated `/etc` files and [`mounts::Exposed`]
    /// paths.
    exposed: mounts::Exposed,
    memory_bytes: Option<u64>,
}

/// What one sandboxed kernel runs and sees.
#[derive(Debug, Clone)]
pub struct KernelSpec {
    /// The kernel program.
    pub program: PathBuf,
    /// Arguments of the program.
    pub args: Vec<std::ffi::OsString>,
    /// The shared kernel venv, bound read-only.
    pub venv: PathBuf,
    /// The Drive folder to attach now, if the kernel's person is known.
    pub drive: Option<PathBuf>,
    /// Give the kernel the host's NVIDIA devices.
    pub gpu: bool,
}

impl Sandbox {
    /// Checks everything the sandbox needs and sets up its folders. The error says
    /// exactly what is missing.
    pub fn prepare(config: SandboxConfig, memory_bytes: Option<u64>) -> Result<Sandbox, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err(
                "the runtime is not running as root (it needs root to give each \
                kernel its own uid, cgroup and drive mount)"
                    .into(),
            );
        }
        check_user_namespaces()?;
        let mut tools = vec!["bwrap"];
        if config.kernel_network == NetworkMode::Public {
            tools.extend(["slirp4netns", "unshare", "nsenter", "ip"]);
        }
        let missing: Vec<&str> = tools.into_iter().filter(|t| !on_path(t)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} not found on PATH (Debian packages: bubblewrap, slirp4netns, \
                 util-linux, iproute2)",
                missing.join(", ")
            ));
        }
        let cgroups = Cgroups::prepare().map_err(|error| format!("no usable cgroups: {error}"))?;
        let dir = PathBuf::from(SANDBOX_DIR);
        let setup = |error: std::io::Error| format!("setting up {}: {error}", dir.display());
        for folder in [Path::new(RUN_DIR), &dir] {
            std::fs::create_dir_all(folder).map_err(setup)?;
            // Kernels' uids pass through to their slots; nobody lists them.
            std::fs::set_permissions(folder, std::os::unix::fs::PermissionsExt::from_mode(0o711))
                .map_err(setup)?;
        }
        mounts::Exposed::sweep(&dir);
        let exposed = mounts::Exposed::new(&dir).map_err(setup)?;
        write_etc(&exposed.dir().join("etc"), config.kernel_network).map_err(setup)?;
        let uids = Uids::new(
            config.kernel_uids.clone(),
            &Path::new(RUN_DIR).join("kernel-uids"),
        )
        .map_err(setup)?;
        let sandbox = Sandbox {
            config,
            uids,
            cgroups,
            dir,
            exposed,
            memory_bytes,
        };
        sandbox.sweep();
        sandbox
            .cgroups
            .sweep(|name| kernel_uid(name).is_some_and(|uid| !sandbox.uids.is_leased(uid)));
        sandbox.trial()?;
        Ok(sandbox)
    }

    /// What `/readyz` reports for a sandbox that is on.
    pub fn status(&self) -> SandboxStatus {
        SandboxStatus::On {
            cgroups: self.cgroups.version().to_owned(),
            network: match self.config.kernel_network {
                NetworkMode::Public => "public".to_owned(),
                NetworkMode::None => "none".to_owned(),
            },
        }
    }

    /// The process limit kernels run under, for messages.
    pub fn max_processes(&self) -> u64 {
        self.config.kernel_max_processes
    }

    /// Builds the bwrap command for `spec` and everything the kernel holds on the host.
    /// Spawn the command (with its stdio set), then call [`Pending::start`] with the child.
    #[allow(unsafe_code)]
    pub fn command(
        self: &Arc<Self>,
        spec: &KernelSpec,
    ) -> std::io::Result<(tokio::process::Command, Pending)> {
        let lease = self.uids.lease()?;
        let uid = lease.uid();
        let slot = mounts::Slot::create(&self.slot_dir(uid), uid)?;
        if let Some(drive) = &spec.drive {
            slot.attach(drive, uid)?;
        }
        let limits = Limits {
            memory_bytes: self.memory_bytes,
            max_processes: self.config.kernel_max_processes,
            cpus: self.config.kernel_cpus.filter(|cpus| *cpus > 0.0),
        };
        let cgroup = self.cgroups.create(&format!("k-{uid}"), limits)?;
        let (block_read, block_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let (info_read, info_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let args = self.bwrap_args(
            spec,
            &slot,
            (block_read.as_raw_fd(), info_write.as_raw_fd()),
        )?;
        let mut command = tokio::process::Command::new("bwrap");
        command
            .args(args)
            .arg("--")
            .arg(&spec.program)
            .args(&spec.args)
            .current_dir("/")
            .uid(uid)
            .gid(uid);
        let inherited = [block_read.as_raw_fd(), info_write.as_raw_fd()];
        // SAFETY: fcntl(2) is async-signal-safe; it only lets bwrap inherit its two pipes.
        unsafe {
            command.pre_exec(move || {
                for fd in inherited {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let jail = Jail {
            sandbox: Arc::clone(self),
            lease: std::sync::Mutex::new(Some(lease)),
            uid,
            slot,
            cgroup,
            network: std::sync::Mutex::new(None),
            init: None,
            worker: std::sync::Mutex::new(None),
        };
        Ok((
            command,
            Pending {
                jail,
                block_write,
                info_read,
                _child_ends: (block_read, info_write),
            },
        ))
    }

    fn slot_dir(&self, uid: u32) -> PathBuf {
        self.dir.join(format!("k-{uid}"))
    }

    fn bwrap_args(
        &self,
        spec: &KernelSpec,
        slot: &mounts::Slot,
        (block, info): (i32, i32),
    ) -> std::io::Result<Vec<String>> {
        // The venv and the program at their own paths (the venv's files name them), bound
        // from where every kernel uid can reach them whatever the modes of their parents.
        let venv = (self.exposed.expose(&spec.venv)?, spec.venv.clone());
        let program = (self.exposed.expose(&spec.program)?, spec.program.clone());
        let disk = (self.config.kernel_disk_mib * 1024 * 1024).to_string();
        let mut args: Vec<String> = [
            "--unshare-user",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--disable-userns",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "tandem-kernel",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
        let inner = INNER_UID.to_string();
        push(&["--uid", &inner, "--gid", &inner]);
        args.extend(system_args());
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
        push(&["--dir", "/etc"]);
        for entry in ETC {
            let path = format!("/etc/{entry}");
            push(&["--ro-bind-try", &path, &path]);
        }
        let etc = self.exposed.dir().join("etc");
        for file in ["passwd", "group", "hosts", "resolv.conf"] {
            let source = etc.join(file).to_string_lossy().into_owned();
            push(&["--ro-bind", &source, &format!("/etc/{file}")]);
        }
        push(&["--proc", "/proc", "--dev", "/dev"]);
        push(&["--size", &disk, "--tmpfs", "/tmp"]);
        push(&["--symlink", "../tmp", "/var/tmp"]);
        push(&["--size", &disk, "--tmpfs", CONTENT]);
        push(&["--size", &disk, "--tmpfs", LAYER_VENV]);
        let drive = format!("{CONTENT}/drive");
        push(&["--dir", &drive]);
        push(&["--bind", &slot.drive_dir().to_string_lossy(), &drive]);
        for (source, path) in [&venv, &program] {
            let (source, path) = (source.to_string_lossy(), path.to_string_lossy());
            push(&["--ro-bind", &source, &path]);
        }
        if spec.gpu {
            for device in nvidia_devices() {
                push(&["--dev-bind", &device, &device]);
            }
            push(&["--ro-bind-try", "/sys", "/sys"]);
        }
        push(&["--chdir", CONTENT]);
        push(&[
            "--block-fd",
            &block.to_string(),
            "--info-fd",
            &info.to_string(),
        ]);
        Ok(args)
    }

    /// Removes slots a killed runtime left behind (their uids are no longer leased).
    fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(uid) = entry.file_name().to_str().and_then(kernel_uid) else {
                continue;
            };
            if !self.uids.is_leased(uid) {
                mounts::Slot::remove_at(&entry.path());
            }
        }
    }

    /// Runs `true` in a sandbox with a drive attached, so a host that lacks something
    /// (user namespaces blocked by AppArmor, idmapped mounts on this filesystem) is found at
    /// start with bwrap's own words, not at the first notebook.
    fn trial(&self) -> Result<(), String> {
        let lease = self
            .uids
            .lease()
            .map_err(|error| format!("leasing a kernel uid: {error}"))?;
        let uid = lease.uid();
        // In this runtime's own folder: another runtime on the machine may be trying too.
        let drive = self.exposed.dir().join("trial-drive");
        let _ = std::fs::create_dir_all(&drive);
        let slot = mounts::Slot::create(&self.slot_dir(uid), uid)
            .map_err(|error| format!("making a shared mount for a kernel's drive: {error}"))?;
        let attached = slot.attach(&drive, uid);
        let outcome = match attached {
            Err(error) => Err(format!(
                "attaching a drive with an idmapped mount (Linux 5.12+ on a filesystem that \
                 supports it): {error}"
            )),
            Ok(()) => {
                let output = std::process::Command::new("bwrap")
                    .args(["--unshare-all", "--unshare-user", "--disable-userns"])
                    .args(system_args())
                    .arg("--bind")
                    .arg(slot.drive_dir())
                    .args(["/drive", "--", "/usr/bin/test", "-w", "/drive"])
                    .current_dir("/")
                    .env_clear()
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .uid_gid(uid)
                    .output();
                match output {
                    Ok(output) if output.status.success() => Ok(()),
                    Ok(output) => Err(format!(
                        "a trial sandbox failed (user namespaces blocked?): {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    )),
                    Err(error) => Err(format!("running bwrap: {error}")),
                }
            }
        };
        slot.remove();
        let _ = std::fs::remove_dir(&drive);
        outcome
    }
}

/// `uid`+`gid` in one call for the std command of the trial.
trait UidGid {
    fn uid_gid(&mut self, id: u32) -> &mut Self;
}

impl UidGid for std::process::Command {
    fn uid_gid(&mut self, id: u32) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.uid(id).gid(id)
    }
}

/// A sandbox whose bwrap has been built but not yet released.
#[derive(Debug)]
pub struct Pending {
    jail: Jail,
    block_write: OwnedFd,
    info_read: OwnedFd,
    /// bwrap's ends of the pipes, closed here once it has been spawned.
    _child_ends: (OwnedFd, OwnedFd),
}

impl Pending {
    /// After bwrap was spawned: moves its sandbox into the cgroup, sets up the network, then
    /// lets the kernel program start.
    pub async fn start(self) -> std::io::Result<Jail> {
        let Pending {
            mut jail,
            block_write,
            info_read,
            _child_ends,
        } = self;
        drop(_child_ends);
        let init = tokio::time::timeout(SETUP_TIMEOUT, read_child_pid(info_read))
            .await
            .map_err(|_| std::io::Error::other("bwrap did not report its sandbox in time"))??;
        jail.init = Some(init);
        jail.cgroup.add(init)?;
        if jail.sandbox.config.kernel_network == NetworkMode::Public {
            network::loopback_up(init).await;
            network::block(init).await?;
            let network = network::connect(init, &jail.sandbox.config.kernel_allow_net).await?;
            *lock(&jail.network) = Some(network);
        }
        nix::unistd::write(&block_write, b"1").map_err(std::io::Error::from)?;
        Ok(jail)
    }

    /// Gives up on a sandbox whose bwrap could not be spawned.
    pub fn abandon(self) {
        self.jail.teardown();
    }
}

/// Reads bwrap's `--info-fd` report for the pid of the sandbox's init (host pid).
async fn read_child_pid(info: OwnedFd) -> std::io::Result<i32> {
    let mut file = tokio::fs::File::from_std(std::fs::File::from(info));
    let mut text = String::new();
    let mut buffer = [0u8; 512];
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buffer[..read]));
        if text.contains('}') {
            break;
        }
    }
    let value: serde_json::Value = serde_json::from_str(text.trim()).map_err(|_| {
        std::io::Error::other(format!("bwrap failed to set up the sandbox ({text:?})"))
    })?;
    value
        .get("child-pid")
        .and_then(serde_json::Value::as_i64)
        .and_then(|pid| i32::try_from(pid).ok())
        .ok_or_else(|| std::io::Error::other("bwrap reported no child pid"))
}

/// One kernel's sandbox on the host: its uid, cgroup, drive slot and network.
#[derive(Debug)]
pub struct Jail {
    sandbox: Arc<Sandbox>,
    /// Returned (set to `None`) only when everything of the kernel is gone.
    lease: std::sync::Mutex<Option<UidLease>>,
    uid: u32,
    slot: mounts::Slot,
    cgroup: Cgroup,
    network: std::sync::Mutex<Option<network::Network>>,
    /// Host pid of the sandbox's init (pid 1 inside): killing it ends the whole sandbox.
    init: Option<i32>,
    /// Host pid of the kernel program (pid 2 inside), once known.
    worker: std::sync::Mutex<Option<i32>>,
}

impl Jail {
    /// The host uid this kernel runs as.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The host pid of the kernel program, for signals (SIGINT). Found as the only child
    /// of the sandbox's init.
    pub fn worker_pid(&self) -> Option<i32> {
        let mut known = lock(&self.worker);
        if known.is_none() {
            let init = self.init?;
            let children =
                std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).ok()?;
            *known = children.split_whitespace().next()?.parse().ok();
        }
        *known
    }

    /// Kills everything in the sandbox.
    pub fn kill(&self) {
        if let Some(init) = self.init {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(init),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.cgroup.kill_all();
    }

    /// Shows `folder` as the kernel's `drive/` from now on.
    pub fn attach_drive(&self, folder: &Path) -> std::io::Result<()> {
        if lock(&self.lease).is_none() {
            return Err(std::io::Error::other("the kernel's sandbox has ended"));
        }
        self.slot.attach(folder, self.uid)?;
        tracing::info!(uid = self.uid, drive = %folder.display(), "drive attached");
        Ok(())
    }

    /// Processes the OOM killer ended in this kernel so far.
    pub fn oom_kills(&self) -> u64 {
        self.cgroup.oom_kills()
    }

    /// Forks and thread starts refused at the process limit so far.
    pub fn process_limit_hits(&self) -> u64 {
        self.cgroup.process_limit_hits()
    }

    /// The process limit, for messages.
    pub fn max_processes(&self) -> u64 {
        self.sandbox.max_processes()
    }

    /// The memory limit of the kernel's cgroup.
    pub fn memory_limit(&self) -> Option<u64> {
        self.sandbox.memory_bytes
    }

    /// Memory the kernel uses now, tmpfs files included.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.cgroup.memory_bytes()
    }

    /// Ends the sandbox for good: kills what is left, removes its cgroup and slot, and only
    /// then returns its uid. Blocking (waits for the OS to let go of dead processes).
    pub fn teardown(&self) {
        if lock(&self.lease).is_none() {
            return;
        }
        self.kill();
        self.cgroup.remove();
        self.slot.remove();
        *lock(&self.network) = None;
        *lock(&self.lease) = None;
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data: a panic elsewhere must not keep a kernel's uid or mounts forever.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The uid in a kernel's slot or cgroup name, `k-<uid>`.
fn kernel_uid(name: &str) -> Option<u32> {
    name.strip_prefix("k-")?.parse().ok()
}

/// `/usr` and the top-level links or folders into it, read-only.
fn system_args() -> Vec<String> {
    let mut args: Vec<String> = ["--ro-bind", "/usr", "/usr"].map(String::from).to_vec();
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::read_link(top) {
            Ok(target) => args.extend([
                "--symlink".into(),
                target.to_string_lossy().into(),
                top.into(),
            ]),
            Err(_) if Path::new(top).is_dir() => {
                args.extend(["--ro-bind".into(), top.into(), top.into()])
            }
            Err(_) => {}
        }
    }
    args
}

fn check_user_namespaces() -> Result<(), String> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
    };
    if read("/proc/sys/user/max_user_namespaces") == Some(0) {
        return Err("user namespaces are disabled (sysctl user.max_user_namespaces = 0)".into());
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return Err("unprivileged user namespaces are disabled (sysctl \
                    kernel.unprivileged_userns_clone = 0)"
            .into());
    }
    Ok(())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

fn nvidia_devices() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/dev") else {
        return Vec::new();
    };
    let mut devices: Vec<String> = entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("nvidia"))
        .map(|entry| entry.path().to_string_lossy().into_owned())
        .collect();
    devices.sort();
    devices
}

/// The generated `/etc` files: who uid 1000 is, and the DNS resolver of slirp4netns.
fn write_etc(dir: &Path, network: NetworkMode) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let files = [
        (
            "passwd",
            format!(
                "root:x:0:0:root:/root:/bin/bash\n\
                 kernel:x:{INNER_UID}:{INNER_UID}:Tandem kernel:{CONTENT}:/bin/bash\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
        ),
        (
            "group",
            format!("root:x:0:\nkernel:x:{INNER_UID}:\nnogroup:x:65534:\n"),
        ),
        (
            "hosts",
            "127.0.0.1\tlocalhost tandem-kernel\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                .to_owned(),
        ),
        (
            "resolv.conf",
            match network {
                NetworkMode::Public => "nameserver 10.0.2.3\n".to_owned(),
                NetworkMode::None => "# this kernel has no network\n".to_owned(),
            },
        ),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    }
    Ok(())
}
