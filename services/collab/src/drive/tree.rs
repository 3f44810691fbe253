//! The file operations of one user's drive, all relative to an open file descriptor of the
//! user's folder and walked one component at a time with `O_NOFOLLOW`: nothing here resolves
//! a path string the kernel could have redirected with a symbolic link. Blocking; callers run
//! these on `spawn_blocking`.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, unlinkat};
use tandem_protocol::drive::DriveEntry;

use super::{DriveError, DrivePath, ensure_root};

/// Folders deeper than this are neither counted nor removed (a kernel could nest folders
/// without end; recursion must stop somewhere).
const MAX_DEPTH: usize = 128;

/// Prefix of an upload in progress; listings hide these.
pub const UPLOAD_PREFIX: &str = ".tandem-upload-";

/// Mode of folders made through the API (inside the user's 0700 folder).
const FOLDER_MODE: u32 = 0o755;
/// Mode of files uploaded through the API.
const FILE_MODE: u32 = 0o644;

/// One user's drive, open.
#[derive(Debug)]
pub struct UserDrive {
    root: OwnedFd,
    /// Who new files and folders should belong to: the owner of the user's folder, when this
    /// process runs as root and the folder belongs to someone else (the kernels' user), so
    /// kernels can change what was uploaded.
    adopt: Option<(Uid, Gid)>,
}

/// A file being uploaded: a temporary name in the target's folder, renamed into place by
/// [`UserDrive::commit_upload`] or removed by [`UserDrive::abort_upload`].
#[derive(Debug)]
pub struct Upload {
    folder: OwnedFd,
    temp: String,
    name: String,
    path: DrivePath,
    /// The file to write.
    pub file: File,
    /// Bytes the replaced file held (0 for a new file).
    pub replaces: u64,
}

impl UserDrive {
    /// Opens `drive_dir/<user_id>`, making it (0700) and the drive folder if missing.
    pub fn open(drive_dir: &Path, user_id: &str) -> Result<Self, DriveError> {
        if tandem_protocol::ids::UserId::parse(user_id).is_err() {
            return Err(DriveError::InvalidPath("not a user id".into()));
        }
        ensure_root(drive_dir)?;
        let dirs = open_dir_flags();
        // The drive folder itself is the operator's choice and may be a link to a volume.
        let base = openat(
            nix::fcntl::AT_FDCWD,
            drive_dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)?;
        match mkdirat(&base, user_id, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => return Err(std::io::Error::from(errno).into()),
        }
        let root =
            openat(&base, user_id, dirs, Mode::empty()).map_err(|e| classify(&base, user_id, e))?;
        let stat = fstat(&root)?;
        let adopt = (nix::unistd::geteuid().is_root() && stat.st_uid != 0)
            .then(|| (Uid::from_raw(stat.st_uid), Gid::from_raw(stat.st_gid)));
        Ok(Self { root, adopt })
    }

    /// The folders of `path`, one by one from the root, each opened without following links.
    fn folder(&self, components: &[String]) -> Result<OwnedFd, DriveError> {
        let mut current = self.root.try_clone()?;
        for name in components {
            let next = openat(&current, name.as_str(), open_dir_flags(), Mode::empty())
                .map_err(|e| classify(&current, name, e))?;
            current = next;
        }
        Ok(current)
    }

    /// [`Self::folder`], making missing folders on the way.
    fn folder_made(&self, components: &[String]) -> Result<OwnedFd, DriveError> {
        let mut current = self.root.try_clone()?;
        for name in components {
            match mkdirat(
                &current,
                name.as_str(),
                Mode::from_bits_truncate(FOLDER_MODE),
            ) {
                Ok(()) => self.adopt_at(&current, name)?,
                Err(Errno::EEXIST) => {}
                Err(errno) => return Err(classify(&current, name, errno)),
            }
            let next = openat(&current, name.as_str(), open_dir_flags(), Mode::empty())
                .map_err(|e| classify(&current, name, e))?;
            current = next;
        }
        Ok(current)
    }

    /// The content of the folder at `path`: folders first, then files, by name. Symbolic
    /// links, other special files, names that are not UTF-8 and uploads in progress are left
    /// out.
    pub fn list(&self, path: &DrivePath) -> Result<Vec<DriveEntry>, DriveError> {
        let folder = self.folder(path.components())?;
        let mut entries = Vec::new();
        for (name, stat) in children(&folder)? {
            if name.starts_with(UPLOAD_PREFIX) {
                continue;
            }
            if let Some(entry) = entry(&path.child(&name), &stat) {
                entries.push(entry);
            }
        }
        entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
        Ok(entries)
    }

    /// What is at `path` (not the root).
    pub fn stat(&self, path: &DrivePath) -> Result<DriveEntry, DriveError> {
        let (parents, name) = split(path)?;
        let folder = self.folder(parents)?;
        let stat = stat_at(&folder, name)?;
        entry(path, &stat).ok_or_else(symlink_refused)
    }

    /// Opens the file at `path` for reading, with its size.
    pub fn open_file(&self, path: &DrivePath) -> Result<(File, u64), DriveError> {
        let (parents, name) = split(path)?;
        let folder = self.folder(parents)?;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd =
            openat(&folder, name, flags, Mode::empty()).map_err(|e| classify(&folder, name, e))?;
        let stat = fstat(&fd)?;
        match kind(&stat) {
            Kind::Dir => Err(DriveError::IsAFolder),
            Kind::File => Ok((File::from(fd), size_of(&stat))),
            Kind::Other => Err(DriveError::InvalidPath("not a regular file".into())),
        }
    }

    /// Starts an upload to `path`: makes missing folders and a temporary file beside the
    /// target. Fails if the target is a folder or a link.
    pub fn begin_upload(&self, path: &DrivePath) -> Result<Upload, DriveError> {
        let (parents, name) = split(path)?;
        let folder = self.folder_made(parents)?;
        let replaces = match stat_at(&folder, name) {
            Ok(stat) => match kind(&stat) {
                Kind::File => size_of(&stat),
                Kind::Dir => return Err(DriveError::IsAFolder),
                Kind::Other => return Err(symlink_refused()),
            },
            Err(DriveError::NotFound) => 0,
            Err(error) => return Err(error),
        };
        let temp = format!("{UPLOAD_PREFIX}{}", crate::ids::random_id());
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(
            &folder,
            temp.as_str(),
            flags,
            Mode::from_bits_truncate(FILE_MODE),
        )?;
        if let Some((uid, gid)) = self.adopt {
            fchown(&fd, Some(uid), Some(gid))?;
        }
        Ok(Upload {
            folder,
            temp,
            name: name.to_owned(),
            path: path.clone(),
            file: File::from(fd),
            replaces,
        })
    }

    /// Renames a finished upload into place and describes the file.
    pub fn commit_upload(&self, upload: Upload) -> Result<DriveEntry, DriveError> {
        let Upload {
            folder,
            temp,
            name,
            path,
            file,
            ..
        } = upload;
        file.sync_all()?;
        drop(file);
        if let Err(error) = renameat(&folder, temp.as_str(), &folder, name.as_str()) {
            let _ = unlinkat(&folder, temp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(classify(&folder, &name, error));
        }
        let stat = stat_at(&folder, &name)?;
        entry(&path, &stat).ok_or_else(symlink_refused)
    }

    /// Removes what an unfinished upload wrote.
    pub fn abort_upload(upload: Upload) {
        let _ = unlinkat(
            &upload.folder,
            upload.temp.as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
    }

    /// Makes the folder `path` (and missing parents); fails if the name is taken.
    pub fn make_folder(&self, path: &DrivePath) -> Result<DriveEntry, DriveError> {
        let (parents, name) = split(path)?;
        let folder = self.folder_made(parents)?;
        mkdirat(&folder, name, Mode::from_bits_truncate(FOLDER_MODE))
            .map_err(|e| classify(&folder, name, e))?;
        self.adopt_at(&folder, name)?;
        entry(path, &stat_at(&folder, name)?).ok_or_else(symlink_refused)
    }

    /// Moves `from` to `to`, whose folder must exist and whose name must be free.
    pub fn rename(&self, from: &DrivePath, to: &DrivePath) -> Result<DriveEntry, DriveError> {
        let (from_parents, from_name) = split(from)?;
        let (to_parents, to_name) = split(to)?;
        let from_folder = self.folder(from_parents)?;
        let to_folder = self.folder(to_parents)?;
        let source = stat_at(&from_folder, from_name)?;
        if matches!(kind(&source), Kind::Other) {
            return Err(symlink_refused());
        }
        match stat_at(&to_folder, to_name) {
            Err(DriveError::NotFound) => {}
            Ok(_) => return Err(DriveError::AlreadyExists),
            Err(error) => return Err(error),
        }
        renameat(&from_folder, from_name, &to_folder, to_name)?;
        entry(to, &stat_at(&to_folder, to_name)?).ok_or_else(symlink_refused)
    }

    /// Removes the file, link or folder (with everything in it) at `path`.
    pub fn remove(&self, path: &DrivePath) -> Result<(), DriveError> {
        let (parents, name) = split(path)?;
        let folder = self.folder(parents)?;
        let stat = stat_at(&folder, name)?;
        match kind(&stat) {
            Kind::Dir => remove_tree(&folder, name, 0),
            // A link is removed, never followed.
            Kind::File | Kind::Other => Ok(unlinkat(&folder, name, UnlinkatFlags::NoRemoveDir)?),
        }
    }

    /// Bytes of every regular file in the drive (uploads in progress included).
    pub fn usage(&self) -> Result<u64, DriveError> {
        usage_of(&self.root, 0)
    }

    fn adopt_at(&self, folder: &OwnedFd, name: &str) -> Result<(), DriveError> {
        if let Some((uid, gid)) = self.adopt {
            nix::unistd::fchownat(
                folder,
                name,
                Some(uid),
                Some(gid),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        Ok(())
    }
}

fn open_dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn split(path: &DrivePath) -> Result<(&[String], &str), DriveError> {
    path.split_last()
        .ok_or_else(|| DriveError::InvalidPath("the drive's root itself cannot be changed".into()))
}

fn symlink_refused() -> DriveError {
    DriveError::InvalidPath("symbolic links and special files are not followed".into())
}

/// Turns a failed `openat` of `name` into the error a client should see: a symbolic link
/// (which `O_NOFOLLOW` reports as `ELOOP` or `ENOTDIR`) is an invalid path.
fn classify(folder: &OwnedFd, name: &str, errno: Errno) -> DriveError {
    if matches!(errno, Errno::ELOOP | Errno::ENOTDIR)
        && let Ok(stat) = fstatat(folder, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        && matches!(kind(&stat), Kind::Other)
    {
        return symlink_refused();
    }
    errno.into()
}

fn stat_at(folder: &OwnedFd, name: &str) -> Result<FileStat, DriveError> {
    Ok(fstatat(folder, name, AtFlags::AT_SYMLINK_NOFOLLOW)?)
}

enum Kind {
    File,
    Dir,
    /// Symbolic links, sockets, devices, FIFOs.
    Other,
}

fn kind(stat: &FileStat) -> Kind {
    let format = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if format == SFlag::S_IFREG {
        Kind::File
    } else if format == SFlag::S_IFDIR {
        Kind::Dir
    } else {
        Kind::Other
    }
}

fn size_of(stat: &FileStat) -> u64 {
    u64::try_from(stat.st_size).unwrap_or(0)
}

fn entry(path: &DrivePath, stat: &FileStat) -> Option<DriveEntry> {
    let is_dir = match kind(stat) {
        Kind::File => false,
        Kind::Dir => true,
        Kind::Other => return None,
    };
    let ms = stat.st_mtime.saturating_mul(1000) + stat.st_mtime_nsec / 1_000_000;
    Some(DriveEntry {
        name: path
            .split_last()
            .map(|(_, name)| name.to_owned())
            .unwrap_or_default(),
        path: path.to_string(),
        size: if is_dir { 0 } else { size_of(stat) },
        modified: crate::ids::rfc3339(ms),
        is_dir,
    })
}

/// The entries of an open folder (not `.` and `..`), with their own (not followed) status.
/// Names that are not UTF-8 are skipped: the API cannot name them.
fn children(folder: &OwnedFd) -> Result<Vec<(String, FileStat)>, DriveError> {
    let mut dir = Dir::from_fd(folder.try_clone()?)?;
    let mut out = Vec::new();
    for item in dir.iter() {
        let item = item?;
        let Some(name) = plain_name(item.file_name()) else {
            continue;
        };
        match fstatat(folder, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => out.push((name, stat)),
            // Removed since the listing was read.
            Err(Errno::ENOENT) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(out)
}

fn plain_name(name: &CStr) -> Option<String> {
    let name = name.to_str().ok()?;
    (name != "." && name != "..").then(|| name.to_owned())
}

fn usage_of(folder: &OwnedFd, depth: usize) -> Result<u64, DriveError> {
    let mut total = 0u64;
    for (name, stat) in children(folder)? {
        match kind(&stat) {
            Kind::File => total = total.saturating_add(size_of(&stat)),
            Kind::Dir if depth < MAX_DEPTH => {
                match openat(folder, name.as_str(), open_dir_flags(), Mode::empty()) {
                    Ok(sub) => total = total.saturating_add(usage_of(&sub, depth + 1)?),
                    // Gone or swapped for a link since it was listed: not counted.
                    Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => {}
                    Err(errno) => return Err(errno.into()),
                }
            }
            Kind::Dir | Kind::Other => {}
        }
    }
    Ok(total)
}

fn remove_tree(parent: &OwnedFd, name: &str, depth: usize) -> Result<(), DriveError> {
    if depth >= MAX_DEPTH {
        return Err(DriveError::InvalidPath(format!(
            "folders nested deeper than {MAX_DEPTH} levels cannot be removed here"
        )));
    }
    let folder = openat(parent, name, open_dir_flags(), Mode::empty())
        .map_err(|e| classify(parent, name, e))?;
    for (child, stat) in children(&folder)? {
        match kind(&stat) {
            Kind::Dir => remove_tree(&folder, &child, depth + 1)?,
            Kind::File | Kind::Other => {
                match unlinkat(&folder, child.as_str(), UnlinkatFlags::NoRemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(errno) => return Err(errno.into()),
                }
            }
        }
    }
    Ok(unlinkat(parent, name, UnlinkatFlags::RemoveDir)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn drive() -> (tempfile::TempDir, UserDrive) {
        let dir = tempfile::tempdir().unwrap();
        let drive = UserDrive::open(&dir.path().join("drive"), "alice").unwrap();
        (dir, drive)
    }

    fn path(p: &str) -> DrivePath {
        DrivePath::parse(p).unwrap()
    }

    #[test]
    fn files_and_folders_round_trip() {
        let (_dir, drive) = drive();
        let mut upload = drive.begin_upload(&path("a/b/c.txt")).unwrap();
        upload.file.write_all(b"hello").unwrap();
        let entry = drive.commit_upload(upload).unwrap();
        assert_eq!((entry.size, entry.path.as_str()), (5, "a/b/c.txt"));
        assert_eq!(drive.usage().unwrap(), 5);
        let listed = drive.list(&path("a")).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].is_dir);
        drive.rename(&path("a/b"), &path("moved")).unwrap();
        assert_eq!(drive.open_file(&path("moved/c.txt")).unwrap().1, 5);
        assert!(matches!(
            drive.make_folder(&path("moved")),
            Err(DriveError::AlreadyExists)
        ));
        drive.remove(&path("moved")).unwrap();
        assert!(matches!(
            drive.stat(&path("moved")),
            Err(DriveError::NotFound)
        ));
        assert_eq!(drive.usage().unwrap(), 0);
    }

    #[test]
    fn symbolic_links_are_never_followed() {
        let (dir, drive) = drive();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        let user = dir.path().join("drive/alice");
        std::os::unix::fs::symlink(&outside, user.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), user.join("s")).unwrap();
        for bad in ["out", "out/secret", "s"] {
            assert!(
                matches!(drive.open_file(&path(bad)), Err(DriveError::InvalidPath(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            drive.list(&path("out")),
            Err(DriveError::InvalidPath(_))
        ));
        assert!(matches!(
            drive.begin_upload(&path("out/new")),
            Err(DriveError::InvalidPath(_))
        ));
        assert!(drive.list(&DrivePath::root()).unwrap().is_empty());
        drive.remove(&path("out")).unwrap();
        assert!(
            outside.join("secret").exists(),
            "removing a link removes only the link"
        );
    }
}
