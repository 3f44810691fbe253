//! The runtime's side of the Drive (each user's persistent files; the collab service serves
//! them over HTTP): which folder a kernel sees as `drive/`. (The quota warning kernels print
//! when they write past it is the worker's: `tandem_kernel::quota`.)
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
        // An id that could not name a folder gets none (ids never start with '.', hold no '/').
        let Ok(user_id) = tandem_protocol::ids::UserId::parse(user_id) else {
            return Ok(None);
        };
        let folder = self.dir.join(&user_id);
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
