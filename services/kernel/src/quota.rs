//! The drive's quota, as the worker watches it: after each cell it adds up the drive (at most
//! every few seconds when that is slow) and, when it holds more than the quota, writes a
//! warning under the cell. Kernels are not stopped at the quota; uploads through the API are
//! refused past it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The worker's quota watch: after each cell, whether the drive is over its quota.
#[derive(Debug)]
pub struct QuotaWatch {
    drive: PathBuf,
    quota: u64,
    /// No new count before this (counting a big drive after every cell would slow cells).
    next: Instant,
}

impl QuotaWatch {
    /// Watches `workdir/drive` against `quota` bytes.
    pub fn new(workdir: &Path, quota: u64) -> Self {
        Self {
            drive: workdir.join(tandem_protocol::kernel::DRIVE_LINK),
            quota,
            next: Instant::now(),
        }
    }

    /// A warning to show under the cell that just ran, if the drive is over its quota.
    pub fn after_cell(&mut self) -> Option<String> {
        let now = Instant::now();
        if now < self.next {
            return None;
        }
        // The link itself is followed once; nothing inside it is.
        if !self.drive.is_dir() {
            return None;
        }
        let used = usage(&self.drive, 0);
        let took = now.elapsed();
        self.next = Instant::now() + (took * 20).min(Duration::from_secs(60));
        (used > self.quota).then(|| {
            format!(
                "\u{26a0} Your drive holds {}, more than its quota of {}: delete files from \
                 drive/ (uploads are refused until you do).\n",
                mib(used),
                mib(self.quota)
            )
        })
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Bytes of the regular files below `dir`, following no links.
fn usage(dir: &Path, depth: usize) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0u64;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_file() {
            total = total.saturating_add(entry.metadata().map_or(0, |m| m.len()));
        } else if kind.is_dir() && depth < 128 {
            total = total.saturating_add(usage(&entry.path(), depth + 1));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_warns_only_past_the_quota() {
        let workdir = tempfile::tempdir().unwrap();
        let drive = workdir.path().join("real-drive");
        std::fs::create_dir_all(drive.join("sub")).unwrap();
        std::os::unix::fs::symlink(&drive, workdir.path().join("drive")).unwrap();
        std::fs::write(drive.join("sub/a"), vec![0; 600]).unwrap();
        // A link inside the drive is not followed.
        std::os::unix::fs::symlink("/usr", drive.join("usr")).unwrap();
        let mut watch = QuotaWatch::new(workdir.path(), 1000);
        assert_eq!(watch.after_cell(), None);
        std::fs::write(drive.join("b"), vec![0; 600]).unwrap();
        watch.next = Instant::now();
        let warning = watch.after_cell().unwrap();
        assert!(warning.contains("quota"), "{warning}");
    }
}
