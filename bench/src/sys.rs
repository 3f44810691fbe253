//! What the bench reads from and asks of the operating system: a process's CPU time and memory
//! from `/proc`, and a higher open-file limit for thousands of sockets.

use anyhow::{Context, Result, bail};

/// CPU time a process has used so far, user plus system, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = parse_cpu_ticks(&stat).context("unexpected /proc/<pid>/stat format")?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// CPU time several processes have used so far, summed.
pub fn cpu_seconds_all(pids: &[u32]) -> Result<f64> {
    pids.iter().map(|pid| cpu_seconds(*pid)).sum()
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted from its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // `fields[0]` is field 3 (state), so field N is `fields[N - 3]`.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A process's resident memory, now and at its peak.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Memory {
    /// `VmRSS`, in MiB.
    pub rss_mib: f64,
    /// `VmHWM` (the high-water mark of RSS), in MiB.
    pub peak_mib: f64,
}

/// Reads `VmRSS` and `VmHWM` from `/proc/<pid>/status`.
pub fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_memory(&status).context("no VmRSS/VmHWM in /proc/<pid>/status")
}

/// Several processes' memory, summed (peaks summed too: an upper bound of the joint peak).
pub fn memory_all(pids: &[u32]) -> Result<Memory> {
    let mut total = Memory::default();
    for pid in pids {
        let one = memory(*pid)?;
        total.rss_mib += one.rss_mib;
        total.peak_mib += one.peak_mib;
    }
    Ok(total)
}

fn parse_memory(status: &str) -> Option<Memory> {
    let kib = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<f64>()
            .ok()
    };
    Some(Memory {
        rss_mib: kib("VmRSS:")? / 1024.0,
        peak_mib: kib("VmHWM:")? / 1024.0,
    })
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the CPU times in `/proc/<pid>/stat` (100 on Linux).
#[allow(unsafe_code)]
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Raises this process's `RLIMIT_NOFILE` soft limit to at least `wanted` (within the hard
/// limit). Child processes started afterwards (the servers the bench spawns) inherit it.
/// Returns the new soft limit.
#[allow(unsafe_code)]
pub fn raise_nofile_limit(wanted: u64) -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit struct for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!(
            "getrlimit(RLIMIT_NOFILE): {}",
            std::io::Error::last_os_error()
        );
    }
    let target = wanted.min(limit.rlim_max);
    if limit.rlim_cur < target {
        limit.rlim_cur = target;
        // SAFETY: `limit` is a valid rlimit struct; the soft limit stays within the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            bail!(
                "setrlimit(RLIMIT_NOFILE): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(limit.rlim_cur)
}

/// One line describing this machine for the report: CPU model and core count.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{model}, {cores} cores")
}

/// Resident memory (RSS) of every process below `pid`, in bytes, from /proc.
pub fn descendants_rss(pid: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut parents = Vec::new();
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map(|(_, rest)| rest.split(' ').collect())
            .unwrap_or_default();
        let parent = fields.get(1).and_then(|p| p.parse::<u32>().ok());
        // Field 24 of stat (22 after the command) is the resident set in pages.
        let pages = fields
            .get(21)
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0);
        if let Some(parent) = parent {
            parents.push((child, parent, pages));
        }
    }
    let mut found = vec![pid];
    let mut rss = 0;
    let mut next = 0;
    while next < found.len() {
        let current = found[next];
        for (child, parent, pages) in &parents {
            if *parent == current {
                found.push(*child);
                rss += pages * 4096;
            }
        }
        next += 1;
    }
    rss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let stat = "1234 (node (server) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 \
                    11 0 100 1000000 5000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn parses_status_memory() {
        let status = "Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(
            parse_memory(status),
            Some(Memory {
                rss_mib: 100.0,
                peak_mib: 200.0
            })
        );
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(memory(pid).unwrap().rss_mib > 0.0);
        assert!(raise_nofile_limit(256).unwrap() >= 256);
    }
}
