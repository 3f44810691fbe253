//! Scratch working directories: each kernel process gets a fresh folder of its own, removed
//! when the process ends, with its owner's persistent drive linked in as `drive/`.
//!
//! As Colab's `/content`, what a kernel writes beside `drive/` lasts as long as the kernel:
//! a restart, a crash, an idle shutdown or the end of the session starts the next kernel in
//! an empty folder. The folder is `<parent>/k-<node pid>-<n>`; a node that was killed before
//! it could clean up leaves its folders behind, and the next node on the machine removes the
//! folders of node processes that are gone ([`sweep`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub use tandem_protocol::kernel::DRIVE_LINK;

/// Scratch mode of [`KernelOptions`](super::KernelOptions): `workdir` is then the parent of
/// each kernel's own folder.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    /// The persistent folder kernels started with these options see as `drive/`.
    pub drive: DriveLink,
}

/// Which persistent folder a kernel sees as `drive/`: read at each start, so the runtime can
/// point a notebook's next kernel at the drive of whoever starts it. Clones share the value.
#[derive(Debug, Clone, Default)]
pub struct DriveLink(Arc<Mutex<Option<PathBuf>>>);

impl DriveLink {
    /// Points the next kernels at `target` (`None`: no `drive/`).
    pub fn set(&self, target: Option<PathBuf>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = target;
    }

    /// The folder kernels see as `drive/` now.
    pub fn get(&self) -> Option<PathBuf> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Numbers scratch folders within this process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Makes a fresh, empty folder below `parent` for one kernel, with `drive` linked in.
pub(super) fn create(parent: &Path, scratch: &Scratch) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(parent)?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = parent.join(format!("k-{}-{n}", std::process::id()));
    if dir.exists() {
        // Left by an earlier process with our pid; it is not ours to keep.
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir(&dir)?;
    if let Some(target) = scratch.drive.get() {
        link_drive(&dir, &target)?;
    }
    Ok(dir)
}

/// Links `target` into a kernel's working directory as `drive`, replacing an earlier link
/// (a spare kernel started before anyone owned it gets its drive when it is handed out).
pub fn link_drive(workdir: &Path, target: &Path) -> std::io::Result<()> {
    let link = workdir.join(DRIVE_LINK);
    match std::fs::symlink_metadata(&link) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::remove_file(&link)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not the drive's link", link.display()),
            ));
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, &link)
}

/// Removes a kernel's folder and everything in it. Links (`drive` first of all) are removed,
/// never followed.
pub(super) async fn remove(dir: PathBuf) {
    let shown = dir.display().to_string();
    let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&dir)).await;
    match removed {
        Ok(Ok(())) => tracing::debug!(dir = %shown, "scratch folder removed"),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {}
        Ok(Err(error)) => tracing::warn!(dir = %shown, %error, "could not remove a scratch folder"),
        Err(error) => tracing::warn!(dir = %shown, %error, "could not remove a scratch folder"),
    }
}

/// Whether no process `pid` runs on this machine any more (folders named after a runtime
/// process are left behind when it is killed).
pub fn process_gone(pid: i32) -> bool {
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::Error::ESRCH)
    )
}

/// Removes the scratch folders under `parent` left by node processes that no longer run.
pub fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix("k-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = process_gone(pid);
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if gone && is_dir && pid != std::process::id() as i32 {
            if let Err(error) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(dir = %entry.path().display(), %error, "could not remove a stale scratch folder");
            } else {
                tracing::info!(dir = %entry.path().display(), "removed a stale scratch folder");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kernel_gets_a_fresh_folder_with_the_drive_linked() {
        let parent = tempfile::tempdir().unwrap();
        let drive = parent.path().join("drive-of-alice");
        std::fs::create_dir(&drive).unwrap();
        let scratch = Scratch::default();
        let first = create(parent.path(), &scratch).unwrap();
        assert!(!first.join(DRIVE_LINK).exists());
        scratch.drive.set(Some(drive.clone()));
        let second = create(parent.path(), &scratch).unwrap();
        assert_ne!(first, second);
        std::fs::write(second.join(DRIVE_LINK).join("kept"), "x").unwrap();
        link_drive(&first, &drive).unwrap();
        link_drive(&first, &drive).unwrap();
        assert!(first.join(DRIVE_LINK).join("kept").exists());
        std::fs::remove_dir_all(&second).unwrap();
        assert!(
            drive.join("kept").exists(),
            "removing the folder keeps the drive"
        );
    }
}
