//! The runtime's side of the Drive (each user's persistent files; the collab service serves
//! them over HTTP): which folder a kernel sees as `drive/`, and the quota warning kernels
//! print when they write past it.
//!
//! The kernel of a notebook sees the drive of the user who started it (the holder, as the
//! per-user kernel limit counts it); a restart keeps that drive, and the next kernel
//! started by someone else after this one ended sees theirs. Everyone who may run code in a
//! notebook can therefore reach the drive of whoever started its kernel, as they can reach
//! everything else in that kernel.
//!
//! Kernels are not stopped at the quota: after each cell the worker adds up the drive (at
//! most every few seconds when that is slow) and, when it holds more than the quota, writes
//! a warning under the cell. Uploads through the API are refused past it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where users' drives are, as the collab service was told (`--drive-dir`,
/// `--drive-quota-mib`).
#[derive(Debug, Clone)]
pub struct DriveSettings {
    /// The folder of users' drives, one folder per user id.
    pub dir: PathBuf,
    /// The most one drive may hold, in bytes.
    pub quota_bytes: u64,
}

/// An OS account kernels run as, by uid and gid.
pub type Owner = (nix::unistd::Uid, nix::unistd::Gid);

impl DriveSettings {
    /// Makes the drive folder if missing (0711: kernels pass through, cannot list) and, when
    /// kernels run as another user, opens it to them that far.
    pub fn prepare(&self, owner: Option<Owner>) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&self.dir)?;
        if owner.is_some() {
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o711))?;
        }
        Ok(())
    }

    /// The drive of `user_id`, made (0700) if missing and handed to the kernels' user when
    /// that is someone else, so their kernels can write in it. `None` for an id that cannot
    /// name a folder.
    pub fn user_folder(
        &self,
        user_id: &str,
        owner: Option<Owner>,
    ) -> std::io::Result<Option<PathBuf>> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        if !crate::session::is_safe_id(user_id) || user_id.starts_with('.') {
            return Ok(None);
        }
        let folder = self.dir.join(user_id);
        match std::fs::DirBuilder::new().mode(0o700).create(&folder) {
            Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => return Err(error),
            _ => {}
        }
        let meta = std::fs::symlink_metadata(&folder)?;
        if !meta.is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a folder",
                folder.display()
            )));
        }
        if let Some((uid, gid)) = owner
            && meta.uid() != uid.as_raw()
        {
            // First use by kernels of this user: hand over what the API made as root.
            chown_tree(&folder, uid, gid, 0)?;
        }
        Ok(Some(folder))
    }
}

/// Hands `path` and everything below it to `uid:gid`, following no links.
fn chown_tree(
    path: &Path,
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
    depth: usize,
) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid.as_raw()), Some(gid.as_raw()))?;
    if depth >= 128 || !std::fs::symlink_metadata(path)?.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(path)?.flatten() {
        chown_tree(&entry.path(), uid, gid, depth + 1)?;
    }
    Ok(())
}

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
            drive: workdir.join(crate::kernel::DRIVE_LINK),
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
