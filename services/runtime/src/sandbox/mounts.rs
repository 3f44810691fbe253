//! The Drive inside a sandbox: an idmapped bind mount that can arrive after the kernel started.
//!
//! Drive files belong on disk to the server's own user (the collab service writes uploads
//! as that user). Each kernel runs as a uid of its own, so a plain bind mount would leave it
//! unable to write its owner's files. An idmapped mount (Linux 5.12+, `mount_setattr` with
//! `MOUNT_ATTR_IDMAP`) shows them inside one sandbox as owned by that kernel's uid and stores
//! what it writes as the server's user, whichever uid wrote it; another kernel of the same
//! person gets its own mapping of the same folder.
//!
//! Every kernel has a *slot*: `<sandbox dir>/k-<uid>/drive` on the host, inside a mount that
//! is made shared before the sandbox starts, bound into the sandbox as `/content/drive`.
//! The sandbox's copy of the slot is a slave of the host's, so a drive attached to the slot
//! later (a spare kernel handed to a person) appears in the running sandbox, and nothing
//! attached inside can leak out.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x0000_0004;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A kernel's slot folder on the host, made a shared mount so later mounts reach the sandbox.
#[derive(Debug)]
pub struct Slot {
    dir: PathBuf,
}

impl Slot {
    /// Makes `dir` (with `drive/` in it) for a kernel running as `uid`: owned by it, 0700,
    /// and a shared mount point.
    pub fn create(dir: &Path, uid: u32) -> std::io::Result<Slot> {
        let slot = Slot {
            dir: dir.to_path_buf(),
        };
        slot.remove();
        std::fs::create_dir_all(dir.join("drive"))?;
        for path in [dir.to_path_buf(), dir.join("drive")] {
            std::os::unix::fs::chown(&path, Some(uid), Some(uid))?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
        nix::mount::mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(std::io::Error::from)?;
        nix::mount::mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .map_err(std::io::Error::from)?;
        Ok(slot)
    }

    /// The folder bound into the sandbox as `/content/drive`.
    pub fn drive_dir(&self) -> PathBuf {
        self.dir.join("drive")
    }

    /// Attaches `folder` to the slot, shown as owned by `uid` (see the module docs), after
    /// taking away whatever drive was attached before.
    #[allow(unsafe_code)]
    pub fn attach(&self, folder: &Path, uid: u32) -> std::io::Result<()> {
        let target = self.drive_dir();
        let _ = nix::mount::umount2(&target, MntFlags::MNT_DETACH);
        let userns = mapping_userns(uid)?;
        let tree = open_tree(folder)?;
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        };
        // SAFETY: `tree` is an open mount fd, the path is an empty C string (AT_EMPTY_PATH),
        // and `attr` is a valid `struct mount_attr` whose size is passed with it.
        let set = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if set != 0 {
            return Err(os_error("mount_setattr (an idmapped mount of the drive)"));
        }
        let target = path_cstring(&target)?;
        // SAFETY: `tree` is the detached mount made above and `target` a NUL-terminated path.
        let moved = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        if moved != 0 {
            return Err(os_error("move_mount (attaching the drive)"));
        }
        Ok(())
    }

    /// [`Slot::remove`] for the slot folder `dir` of a runtime that is gone.
    pub fn remove_at(dir: &Path) {
        Slot {
            dir: dir.to_path_buf(),
        }
        .remove();
    }

    /// Unmounts the drive and the slot and removes the folder. Idempotent.
    pub fn remove(&self) {
        let _ = nix::mount::umount2(&self.drive_dir(), MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&self.dir, MntFlags::MNT_DETACH);
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "could not remove a kernel slot")
            }
        }
    }
}

/// Host paths kernels need (the venv, the kernel program) bound below this runtime's own
/// folder of the sandbox directory, so every kernel uid can reach them whatever the modes of
/// their parent folders (a checkout under `/root`, a 0700 temporary folder).
#[derive(Debug)]
pub struct Exposed {
    dir: PathBuf,
    paths: std::sync::Mutex<std::collections::HashMap<PathBuf, PathBuf>>,
}

impl Exposed {
    /// This process's folder `<sandbox dir>/node-<pid>` (0711), made anew.
    pub fn new(sandbox_dir: &Path) -> std::io::Result<Exposed> {
        let dir = sandbox_dir.join(format!("node-{}", std::process::id()));
        remove_node_dir(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
        Ok(Exposed {
            dir,
            paths: Default::default(),
        })
    }

    /// The folder itself (the generated `/etc` files live in it too).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where kernels find `path` (a folder or a file): a bind mount of it, made on first use.
    pub fn expose(&self, path: &Path) -> std::io::Result<PathBuf> {
        let mut paths = self
            .paths
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(exposed) = paths.get(path) {
            return Ok(exposed.clone());
        }
        let exposed = self.dir.join(format!("x-{}", paths.len()));
        if std::fs::metadata(path)?.is_dir() {
            std::fs::create_dir_all(&exposed)?;
        } else {
            std::fs::write(&exposed, b"")?;
        }
        nix::mount::mount(
            Some(path),
            &exposed,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|error| {
            std::io::Error::other(format!("binding {} for kernels: {error}", path.display()))
        })?;
        // Private: nothing mounted below it later travels anywhere.
        let _ = nix::mount::mount(
            None::<&str>,
            &exposed,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        );
        paths.insert(path.to_path_buf(), exposed.clone());
        Ok(exposed)
    }

    /// Removes the folders of runtime processes that are gone (their binds with them).
    pub fn sweep(sandbox_dir: &Path) {
        let Ok(entries) = std::fs::read_dir(sandbox_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|name| name.strip_prefix("node-"))
                .and_then(|pid| pid.parse::<i32>().ok())
            else {
                continue;
            };
            if crate::kernel::process_gone(pid) {
                remove_node_dir(&entry.path());
            }
        }
    }
}

impl Drop for Exposed {
    fn drop(&mut self) {
        remove_node_dir(&self.dir);
    }
}

/// Unmounts what is bound in a runtime's folder, then removes it.
fn remove_node_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let _ = nix::mount::umount2(&entry.path(), MntFlags::MNT_DETACH);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[allow(unsafe_code)]
fn open_tree(folder: &Path) -> std::io::Result<OwnedFd> {
    let path = path_cstring(folder)?;
    // SAFETY: a NUL-terminated path; the flags ask for a detached copy of the mount tree.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(os_error("open_tree (the drive folder)"));
    }
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A user namespace that maps the server's uid and gid to `uid`: the idmapping of a drive
/// mount. Made by a short-lived child that unshares its user namespace, whose maps the
/// runtime (root) writes before taking a handle on the namespace.
#[allow(unsafe_code)]
fn mapping_userns(uid: u32) -> std::io::Result<OwnedFd> {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("sleep");
    command
        .arg("10")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: unshare(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).map_err(std::io::Error::from)
        });
    }
    let mut child = command.spawn()?;
    let result = (|| {
        let proc = PathBuf::from(format!("/proc/{}", child.id()));
        let server_uid = nix::unistd::geteuid().as_raw();
        let server_gid = nix::unistd::getegid().as_raw();
        std::fs::write(proc.join("uid_map"), format!("{server_uid} {uid} 1\n"))?;
        std::fs::write(proc.join("setgroups"), "deny")?;
        std::fs::write(proc.join("gid_map"), format!("{server_gid} {uid} 1\n"))?;
        let ns = std::fs::File::open(proc.join("ns/user"))?;
        Ok(OwnedFd::from(ns))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn path_cstring(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other(format!("{} has a NUL byte", path.display())))
}

fn os_error(what: &str) -> std::io::Error {
    let error = std::io::Error::last_os_error();
    std::io::Error::new(error.kind(), format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root (mounts); skipped with a note otherwise.
    #[test]
    fn an_attached_drive_shows_as_the_kernels_and_is_stored_as_the_servers() {
        use std::os::unix::process::CommandExt;
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        use std::os::unix::fs::MetadataExt;
        let root = tempfile::tempdir().unwrap();
        let drive = root.path().join("drive-of-alice");
        std::fs::create_dir(&drive).unwrap();
        std::fs::write(drive.join("kept.txt"), "x").unwrap();
        let slot = Slot::create(&root.path().join("k-700123"), 700123).unwrap();
        slot.attach(&drive, 700123).unwrap();
        let seen = slot.drive_dir().join("kept.txt");
        assert_eq!(std::fs::metadata(&seen).unwrap().uid(), 700123);
        // Written by the kernel's uid (a child running as it), stored as root's.
        let written = std::process::Command::new("sh")
            .args(["-c", "echo y > new.txt"])
            .current_dir(slot.drive_dir())
            .uid(700123)
            .gid(700123)
            .status()
            .unwrap();
        assert!(written.success());
        assert_eq!(
            std::fs::metadata(drive.join("new.txt")).unwrap().uid(),
            0,
            "written through the mapping, stored as the server's user"
        );
        slot.remove();
        assert!(
            drive.join("kept.txt").exists(),
            "removing the slot keeps the drive"
        );
        assert!(!root.path().join("k-700123").exists());
    }
}
