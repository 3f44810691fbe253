//! One control group per kernel: memory, process and CPU limits the OS kernel enforces.
//!
//! Both cgroup layouts are spoken, found from `/proc/self/mountinfo`:
//! - **v2** (unified, most current hosts): one tree; the runtime's own cgroup gets a
//!   `tandem-kernels` child with the memory, pids and cpu controllers enabled, and each
//!   kernel a leaf below it. A cgroup with processes in it cannot enable controllers for its
//!   children ("no internal processes"), so when the runtime's own cgroup refuses, the
//!   runtime first moves itself into a `tandem-runtime` leaf beside `tandem-kernels`.
//! - **v1** (one tree per controller, as on older hosts and this project's CI machines):
//!   `memory/`, `pids/` and `cpu/` each get `<own cgroup>/tandem-kernels/<kernel>`.
//!
//! Limits: `memory.max` / `memory.limit_in_bytes` (swap capped to the same total), the whole
//! cgroup killed on OOM where v2 allows it (`memory.oom.group`); `pids.max` (threads count);
//! an equal CPU weight per kernel, so one busy kernel cannot starve another, and an optional
//! CPU quota. The counters that say why a kernel suffered (`oom_kill`, `pids.events max`)
//! are read back for the messages a notebook shows.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder below the runtime's own cgroup that holds one cgroup per kernel.
const KERNELS: &str = "tandem-kernels";
/// Where the runtime moves itself on v2 when its own cgroup must stay free of processes.
const RUNTIME_LEAF: &str = "tandem-runtime";
/// v1 controllers the sandbox needs, by the names in mountinfo's super options.
const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The limits of one kernel's cgroup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Memory of every process in the sandbox together, tmpfs files included, in bytes.
    pub memory_bytes: Option<u64>,
    /// Processes and threads at once.
    pub max_processes: u64,
    /// CPU time as a number of CPUs (`1.5`); `None`: no cap beyond the equal share.
    pub cpus: Option<f64>,
}

/// The cgroup layout of this host, ready to make kernel cgroups in.
#[derive(Debug, Clone)]
pub enum Cgroups {
    /// The unified hierarchy: the `tandem-kernels` folder.
    V2 {
        /// `<mount>/<own cgroup>/tandem-kernels`.
        parent: PathBuf,
    },
    /// One hierarchy per controller: `tandem-kernels` in each.
    V1 {
        /// `<controller mount>/<own cgroup>/tandem-kernels` for memory, pids and cpu.
        parents: Vec<PathBuf>,
    },
}

impl Cgroups {
    /// Finds the layout, makes the `tandem-kernels` folder(s) and checks that limits can be
    /// set there. The error says what is missing.
    pub fn prepare() -> Result<Cgroups, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|error| format!("cannot read /proc/self/mountinfo: {error}"))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|error| format!("cannot read /proc/self/cgroup: {error}"))?;
        let mounts = parse_mounts(&mountinfo);
        let v2_error = match v2_mount(&mounts) {
            Some(mount) => match prepare_v2(&mount, own_path(&own, None)) {
                Ok(parent) => return Ok(Cgroups::V2 { parent }),
                Err(error) => Some(error),
            },
            None => None,
        };
        match prepare_v1(&mounts, &own) {
            Ok(parents) => Ok(Cgroups::V1 { parents }),
            Err(v1_error) => Err(match v2_error {
                Some(v2_error) => format!("cgroup v2: {v2_error}; cgroup v1: {v1_error}"),
                None => v1_error,
            }),
        }
    }

    /// Which layout, for `/readyz` and the start-up log.
    pub fn version(&self) -> &'static str {
        match self {
            Cgroups::V2 { .. } => "v2",
            Cgroups::V1 { .. } => "v1",
        }
    }

    /// Makes the cgroup `name` with `limits`. An existing one (left by a killed runtime)
    /// is emptied and reused.
    pub fn create(&self, name: &str, limits: Limits) -> std::io::Result<Cgroup> {
        let cgroup = match self {
            Cgroups::V2 { parent } => Cgroup {
                dirs: vec![parent.join(name)],
                v2: true,
            },
            Cgroups::V1 { parents } => Cgroup {
                dirs: parents.iter().map(|parent| parent.join(name)).collect(),
                v2: false,
            },
        };
        for dir in &cgroup.dirs {
            match std::fs::create_dir(dir) {
                Err(error) if error.kind() != ErrorKind::AlreadyExists => return Err(error),
                _ => {}
            }
        }
        cgroup.kill_all();
        cgroup.apply(limits)?;
        Ok(cgroup)
    }

    /// Removes the kernel cgroups for which `stale` holds (left by a killed runtime; another
    /// runtime's live kernels on this machine share the parent), killing what is in them.
    pub fn sweep(&self, stale: impl Fn(&str) -> bool) {
        let parents = match self {
            Cgroups::V2 { parent } => vec![parent.clone()],
            Cgroups::V1 { parents } => parents.clone(),
        };
        for parent in parents {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if entry.file_type().is_ok_and(|kind| kind.is_dir())
                    && name.to_str().is_some_and(&stale)
                {
                    let stale = Cgroup {
                        dirs: vec![entry.path()],
                        v2: matches!(self, Cgroups::V2 { .. }),
                    };
                    stale.kill_all();
                    stale.remove();
                }
            }
        }
    }
}

/// One kernel's cgroup (a folder per v1 controller, one on v2).
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    v2: bool,
}

impl Cgroup {
    fn apply(&self, limits: Limits) -> std::io::Result<()> {
        if self.v2 {
            let dir = &self.dirs[0];
            if let Some(bytes) = limits.memory_bytes {
                write(dir, "memory.max", &bytes.to_string())?;
                write_if_present(dir, "memory.swap.max", "0")?;
                // One OOM ends the whole kernel, not a random helper process in it.
                write_if_present(dir, "memory.oom.group", "1")?;
            }
            write(dir, "pids.max", &limits.max_processes.to_string())?;
            write(dir, "cpu.weight", "100")?;
            if let Some(cpus) = limits.cpus {
                write(dir, "cpu.max", &format!("{} 100000", quota_micros(cpus)))?;
            }
            return Ok(());
        }
        for dir in &self.dirs {
            if let Some(bytes) = limits.memory_bytes
                && dir.join("memory.limit_in_bytes").exists()
            {
                write(dir, "memory.limit_in_bytes", &bytes.to_string())?;
                // Memory + swap: without it a kernel could spill past its limit into swap.
                write_if_present(dir, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
            }
            if dir.join("pids.max").exists() {
                write(dir, "pids.max", &limits.max_processes.to_string())?;
            }
            if dir.join("cpu.shares").exists() {
                write(dir, "cpu.shares", "1024")?;
                if let Some(cpus) = limits.cpus {
                    write(dir, "cpu.cfs_period_us", "100000")?;
                    write(dir, "cpu.cfs_quota_us", &quota_micros(cpus).to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Moves process `pid` (and the children it forks from now on) into the cgroup.
    pub fn add(&self, pid: i32) -> std::io::Result<()> {
        for dir in &self.dirs {
            write(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Kernels the OOM killer has killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        self.counter(file, key)
    }

    /// How often a fork or thread start failed at the process limit.
    pub fn process_limit_hits(&self) -> u64 {
        self.counter("pids.events", "max")
    }

    /// Memory in use now (tmpfs files included), in bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        self.dirs.iter().find_map(|dir| {
            std::fs::read_to_string(dir.join(file))
                .ok()
                .and_then(|text| text.trim().parse().ok())
        })
    }

    fn counter(&self, file: &str, key: &str) -> u64 {
        self.dirs
            .iter()
            .find_map(|dir| std::fs::read_to_string(dir.join(file)).ok())
            .and_then(|text| {
                text.lines().find_map(|line| {
                    let (name, value) = line.split_once(' ')?;
                    (name == key).then(|| value.trim().parse().ok()).flatten()
                })
            })
            .unwrap_or(0)
    }

    /// Kills every process in the cgroup (`cgroup.kill` where the OS has it, else SIGKILL
    /// to each until none is left: a fork bomb may still be forking while we kill).
    pub fn kill_all(&self) {
        if self.v2 && write(&self.dirs[0], "cgroup.kill", "1").is_ok() {
            return;
        }
        for _ in 0..100 {
            let pids: Vec<i32> = self
                .dirs
                .iter()
                .filter_map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
                .flat_map(|text| {
                    text.lines()
                        .filter_map(|line| line.trim().parse().ok())
                        .collect::<Vec<i32>>()
                })
                .collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Removes the (empty) cgroup; the OS may take a moment to let go of dead processes.
    pub fn remove(&self) {
        for dir in &self.dirs {
            for attempt in 0..50 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(error) if error.kind() == ErrorKind::NotFound => break,
                    Err(error) if attempt == 49 => {
                        tracing::warn!(dir = %dir.display(), %error, "could not remove a kernel cgroup");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

fn quota_micros(cpus: f64) -> u64 {
    // The OS refuses quotas under 1 ms per 100 ms period.
    ((cpus * 100_000.0) as u64).max(1000)
}

fn write(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(file), value).map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("writing {value} to {}: {error}", dir.join(file).display()),
        )
    })
}

fn write_if_present(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    if dir.join(file).exists() {
        write(dir, file, value)
    } else {
        Ok(())
    }
}

/// A cgroup filesystem mount: where, its type, and (v1) its controllers.
#[derive(Debug, Clone, PartialEq)]
struct Mount {
    point: PathBuf,
    v2: bool,
    controllers: Vec<String>,
}

fn parse_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // `id parent major:minor root point options [optional...] - type source super`
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let super_options = right.next().unwrap_or("");
            let v2 = fstype == "cgroup2";
            if !v2 && fstype != "cgroup" {
                return None;
            }
            Some(Mount {
                point: PathBuf::from(unescape(point)),
                v2,
                controllers: super_options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// mountinfo escapes spaces and a few other bytes as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(byte) = u8::from_str_radix(&code, 8) {
                out.push(byte as char);
                continue;
            }
            out.push('\\');
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

/// The process's cgroup path in the v1 hierarchy holding `controller`, or (None) in v2.
fn own_path(proc_cgroup: &str, controller: Option<&str>) -> String {
    proc_cgroup
        .lines()
        .find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let matches = match controller {
                None => controllers.is_empty(),
                Some(wanted) => controllers.split(',').any(|c| c == wanted),
            };
            matches.then(|| path.to_owned())
        })
        .unwrap_or_else(|| "/".to_owned())
}

fn v2_mount(mounts: &[Mount]) -> Option<PathBuf> {
    let mount = mounts.iter().find(|mount| mount.v2)?;
    let controllers =
        std::fs::read_to_string(mount.point.join("cgroup.controllers")).unwrap_or_default();
    let available: Vec<&str> = controllers.split_whitespace().collect();
    ["memory", "pids", "cpu"]
        .iter()
        .all(|wanted| available.contains(wanted))
        .then(|| mount.point.clone())
}

fn prepare_v2(mount: &Path, own: String) -> Result<PathBuf, String> {
    let own_dir = mount.join(own.trim_start_matches('/'));
    let enable = |dir: &Path| write(dir, "cgroup.subtree_control", "+memory +pids +cpu");
    if let Err(first) = enable(&own_dir) {
        // Busy: our own cgroup holds processes (us). Move into a leaf and try again.
        let leaf = own_dir.join(RUNTIME_LEAF);
        create_dir(&leaf)?;
        write(&leaf, "cgroup.procs", &std::process::id().to_string()).map_err(|error| {
            format!(
                "cannot enable controllers in {} ({first}) nor move the runtime into {}: {error}",
                own_dir.display(),
                leaf.display()
            )
        })?;
        enable(&own_dir).map_err(|error| error.to_string())?;
    }
    let parent = own_dir.join(KERNELS);
    create_dir(&parent)?;
    enable(&parent).map_err(|error| error.to_string())?;
    Ok(parent)
}

fn prepare_v1(mounts: &[Mount], own: &str) -> Result<Vec<PathBuf>, String> {
    let mut parents = Vec::new();
    for controller in V1_CONTROLLERS {
        let mount = mounts
            .iter()
            .find(|mount| !mount.v2 && mount.controllers.iter().any(|c| c == controller))
            .ok_or_else(|| format!("no cgroup v1 hierarchy with the {controller} controller"))?;
        let own_dir = mount
            .point
            .join(own_path(own, Some(controller)).trim_start_matches('/'));
        let parent = own_dir.join(KERNELS);
        create_dir(&parent)?;
        parents.push(parent);
    }
    Ok(parents)
}

fn create_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(format!(
            "cannot create the cgroup {}: {error}",
            dir.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
35 24 0:30 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
36 35 0:31 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
37 35 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 35 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 35 0:34 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
40 24 0:35 / /mnt/with\\040space rw - ext4 /dev/vda rw";

    #[test]
    fn mountinfo_gives_cgroup_mounts_and_controllers() {
        let mounts = parse_mounts(MOUNTINFO);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[0].point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert!(mounts[0].controllers.contains(&"cpu".to_owned()));
        assert!(mounts[3].v2);
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
    }

    #[test]
    fn own_cgroup_path_per_controller() {
        let own =
            "9:name=systemd:/\n8:pids:/a\n4:memory:/process_api/x\n1:cpu,cpuacct:/c\n0::/v2path\n";
        assert_eq!(own_path(own, Some("memory")), "/process_api/x");
        assert_eq!(own_path(own, Some("cpu")), "/c");
        assert_eq!(own_path(own, Some("pids")), "/a");
        assert_eq!(own_path(own, None), "/v2path");
    }

    /// The v2 code path writes the files the unified hierarchy defines (a folder stands in
    /// for cgroupfs: this host's controllers are all bound to v1).
    #[test]
    fn v2_limits_and_counters_use_unified_file_names() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["memory.swap.max", "memory.oom.group"] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        let cgroup = Cgroup {
            dirs: vec![dir.path().to_path_buf()],
            v2: true,
        };
        cgroup
            .apply(Limits {
                memory_bytes: Some(1 << 30),
                max_processes: 64,
                cpus: Some(1.5),
            })
            .unwrap();
        let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert_eq!(read("memory.max"), "1073741824");
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("memory.oom.group"), "1");
        assert_eq!(read("pids.max"), "64");
        assert_eq!(read("cpu.weight"), "100");
        assert_eq!(read("cpu.max"), "150000 100000");
        std::fs::write(
            dir.path().join("memory.events"),
            "low 0\noom 2\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("pids.events"), "max 7\n").unwrap();
        assert_eq!(cgroup.oom_kills(), 1);
        assert_eq!(cgroup.process_limit_hits(), 7);
    }
}
