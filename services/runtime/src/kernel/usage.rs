//! What a kernel uses of its memory and disk, for the RAM and Disk gauges of the notebook
//! page (`state.kernel.resources`).

use std::path::Path;

use super::Kernel;

/// Most directory entries one disk count walks (an unsandboxed kernel's scratch folder):
/// beyond it the count stops, so a folder of millions of files cannot stall the sampler.
const MAX_ENTRIES: usize = 200_000;

/// A kernel's memory and disk use, in bytes (in a sandbox: its cgroup's memory, every
/// process in it and tmpfs files included, and what its `/content` filesystem holds, against
/// the cgroup's limit and the size of `/content`; otherwise the worker's resident set against
/// the smallest applicable limit, and the files of its scratch folder, the Drive not counted,
/// against what they hold plus the free space), as `state.kernel.resources` holds it.
pub use tandem_crdt::kernel::Resources as Usage;

impl Kernel {
    /// Measures the kernel's memory and disk use now. Blocking (reads `/proc`, the cgroup and
    /// walks an unsandboxed kernel's folder): call it off the async threads.
    pub fn usage(&self) -> Usage {
        let machine = machine_memory();
        match &self.shared.jail {
            Some(jail) => {
                let (disk_bytes, disk_limit_bytes) = jail
                    .worker_pid()
                    .map(|pid| format!("/proc/{pid}/root{}", crate::sandbox::CONTENT))
                    .and_then(|content| filesystem(Path::new(&content)))
                    .map(|fs| (fs.used, fs.total))
                    .unwrap_or_default();
                Usage {
                    memory_bytes: jail.memory_bytes().unwrap_or(0),
                    memory_limit_bytes: smallest(jail.memory_limit(), machine),
                    disk_bytes,
                    disk_limit_bytes,
                }
            }
            None => {
                let disk_bytes = folder_size(&self.workdir);
                let free = filesystem(&self.workdir).map_or(0, |fs| fs.available);
                Usage {
                    memory_bytes: resident(self.pid()).unwrap_or(0),
                    memory_limit_bytes: smallest(self.shared.memory_limit_bytes, machine),
                    disk_bytes,
                    disk_limit_bytes: disk_bytes.saturating_add(free),
                }
            }
        }
    }
}

fn smallest(limit: Option<u64>, machine: Option<u64>) -> u64 {
    match (limit, machine) {
        (Some(limit), Some(machine)) => limit.min(machine),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => 0,
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The resident set of process `pid`, in bytes (`/proc/pid/statm`, in pages).
fn resident(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok())
        .unwrap_or(4096);
    Some(pages * page)
}

struct Filesystem {
    used: u64,
    total: u64,
    available: u64,
}

fn filesystem(path: &Path) -> Option<Filesystem> {
    let stats = nix::sys::statvfs::statvfs(path).ok()?;
    let unit = stats.fragment_size();
    let blocks = stats.blocks();
    Some(Filesystem {
        used: blocks.saturating_sub(stats.blocks_free()) * unit,
        total: blocks * unit,
        available: stats.blocks_available() * unit,
    })
}

/// Bytes of the regular files under `root`, following no links, at most [`MAX_ENTRIES`].
fn folder_size(root: &Path) -> u64 {
    let mut total = 0u64;
    let mut seen = 0usize;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return total;
            }
            // `file_type` does not follow links: the `drive` link is neither counted nor
            // walked.
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(entry.path()),
                Ok(kind) if kind.is_file() => {
                    total += entry.metadata().map_or(0, |meta| meta.len());
                }
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_sizes_count_files_and_skip_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0u8; 24]).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), vec![0u8; 5000]).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("drive")).unwrap();
        assert_eq!(folder_size(dir.path()), 1024);
        assert!(filesystem(dir.path()).is_some_and(|fs| fs.total >= fs.used));
        assert!(machine_memory().is_some_and(|bytes| bytes > 0));
        assert!(resident(std::process::id()).is_some_and(|bytes| bytes > 0));
        assert_eq!(smallest(Some(5), Some(3)), 3);
        assert_eq!(smallest(None, None), 0);
    }
}
