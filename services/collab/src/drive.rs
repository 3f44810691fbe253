//! Each user's persistent files, the Drive: where they live, which paths are allowed, and the
//! quota. The routes are in `api/drive.rs`; the file operations in [`tree`].
//!
//! On disk a drive is `--drive-dir/<user id>/`: the drive folder itself is mode 0711 when
//! Tandem makes it (kernels, which may run as another OS user, pass through it to their
//! owner's folder but cannot list it) and each user's folder 0700. Runtime nodes link the
//! same folder into each kernel's working directory as `drive/`, so in a deployment with
//! several machines `--drive-dir` must be one shared volume mounted at the same path on
//! every collab and runtime node.
//!
//! Confinement does not trust paths: a [`DrivePath`] is checked for absolute paths, `.`,
//! `..`, empty components and NUL, and then every operation walks from the user's folder one
//! component at a time with `openat(…, O_NOFOLLOW)`, so a symbolic link anywhere (a kernel
//! can plant one) is refused rather than followed, even one swapped in mid-request.

pub mod tree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

pub use tree::UserDrive;

/// Longest path accepted, in bytes (Linux's `PATH_MAX`).
const MAX_PATH_BYTES: usize = 4096;
/// Longest name of one file or folder, in bytes (`NAME_MAX` of common file systems).
const MAX_NAME_BYTES: usize = 255;

/// Where drives live and how much each may hold. Shared by `tandem serve`, `tandem collab`
/// and `tandem runtime` (a runtime node links the same folders into its kernels).
#[derive(Debug, Clone, clap::Args)]
pub struct DriveConfig {
    /// The folder of users' drives (one folder per user id inside); by default `drive` in
    /// `--data` (for `tandem runtime`, which has no `--data`: `./tandem-data/drive`, the
    /// collab service's default). With several nodes it must be a volume they all share, at
    /// the same path.
    #[arg(long, env = "TANDEM_DRIVE_DIR")]
    pub drive_dir: Option<PathBuf>,

    /// The most one user's drive may hold, in MiB. Uploads past it get 413; kernels that
    /// write past it get a warning under the cell (their writes are not stopped).
    #[arg(long, env = "TANDEM_DRIVE_QUOTA_MIB", default_value_t = 1024)]
    pub drive_quota_mib: u64,
}

/// Where `tandem runtime` looks for drives when not told: the collab service's default.
pub const RUNTIME_DEFAULT_DRIVE_DIR: &str = "./tandem-data/drive";

impl DriveConfig {
    /// Gives `--drive-dir` its default when it was not set: `drive` in `data`.
    pub fn settle(&mut self, data: &Path) {
        self.drive_dir.get_or_insert_with(|| data.join("drive"));
    }

    /// The drives' folder ([`RUNTIME_DEFAULT_DRIVE_DIR`] when never given nor settled).
    pub fn folder(&self) -> &Path {
        self.drive_dir
            .as_deref()
            .unwrap_or(Path::new(RUNTIME_DEFAULT_DRIVE_DIR))
    }

    /// The quota in bytes.
    pub fn quota_bytes(&self) -> u64 {
        self.drive_quota_mib.saturating_mul(1024 * 1024)
    }

    /// Opens (creating it if needed) the drive of `user_id`. Blocking.
    pub fn open(&self, user_id: &str) -> Result<UserDrive, DriveError> {
        UserDrive::open(self.folder(), user_id)
    }

    /// The lock that serializes `user_id`'s uploads, so two at once cannot both pass the
    /// quota check.
    pub fn upload_lock(&self, user_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
            OnceLock::new();
        let key = self.folder().join(user_id);
        let mut locks = LOCKS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        locks.entry(key).or_default().clone()
    }
}

/// What a drive operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The path is not one the drive accepts (absolute, `..`, NUL, a symbolic link, …).
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// Nothing at that path.
    #[error("no such file or folder in your drive")]
    NotFound,
    /// Something already has that name.
    #[error("a file or folder with that name already exists")]
    AlreadyExists,
    /// A folder was needed and a file was found.
    #[error("not a folder")]
    NotAFolder,
    /// A file was needed and a folder was found.
    #[error("that is a folder")]
    IsAFolder,
    /// The write would take the drive past its quota.
    #[error("the drive would hold more than its quota of {quota} bytes ({used} bytes in use)")]
    QuotaExceeded {
        /// Bytes in use before the write.
        used: u64,
        /// The quota, in bytes.
        quota: u64,
    },
    /// The file system failed.
    #[error("drive i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<nix::errno::Errno> for DriveError {
    fn from(errno: nix::errno::Errno) -> Self {
        use nix::errno::Errno;
        match errno {
            Errno::ENOENT => DriveError::NotFound,
            Errno::EEXIST | Errno::ENOTEMPTY => DriveError::AlreadyExists,
            Errno::ENOTDIR => DriveError::NotAFolder,
            Errno::EISDIR => DriveError::IsAFolder,
            Errno::ELOOP => DriveError::InvalidPath("symbolic links are not followed".into()),
            Errno::EINVAL => DriveError::InvalidPath("a folder cannot move into itself".into()),
            Errno::ENAMETOOLONG => DriveError::InvalidPath("the name is too long".into()),
            other => DriveError::Io(other.into()),
        }
    }
}

/// A checked path inside a drive: relative, `/`-separated, no `.`, `..`, empty components or
/// NUL. The empty path is the drive's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrivePath {
    components: Vec<String>,
}

impl DrivePath {
    /// Checks `raw`. One trailing `/` is allowed (`data/`).
    pub fn parse(raw: &str) -> Result<Self, DriveError> {
        let invalid = |why: &str| DriveError::InvalidPath(why.to_owned());
        if raw.len() > MAX_PATH_BYTES {
            return Err(invalid("the path is too long"));
        }
        if raw.contains('\0') {
            return Err(invalid("NUL is not allowed in a path"));
        }
        if raw.starts_with('/') {
            return Err(invalid("paths are relative to your drive; no leading `/`"));
        }
        let trimmed = raw.strip_suffix('/').unwrap_or(raw);
        if trimmed.is_empty() {
            return Ok(Self::root());
        }
        let mut components = Vec::new();
        for part in trimmed.split('/') {
            match part {
                "" => return Err(invalid("empty path component (`//`)")),
                "." | ".." => return Err(invalid("`.` and `..` are not allowed in a path")),
                _ if part.len() > MAX_NAME_BYTES => return Err(invalid("a name is too long")),
                _ => components.push(part.to_owned()),
            }
        }
        Ok(Self { components })
    }

    /// The drive's root.
    pub fn root() -> Self {
        Self {
            components: Vec::new(),
        }
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The folders leading to the last component, and the last component; `None` for the
    /// root.
    pub fn split_last(&self) -> Option<(&[String], &str)> {
        let (last, parents) = self.components.split_last()?;
        Some((parents, last))
    }

    /// The components, outermost first.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The path below `self` named `name`.
    pub fn child(&self, name: &str) -> Self {
        let mut components = self.components.clone();
        components.push(name.to_owned());
        Self { components }
    }
}

impl std::fmt::Display for DrivePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.components.join("/"))
    }
}

/// Creates the drive folder if missing (mode 0711, see the module doc).
pub fn ensure_root(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o711).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_drive() {
        assert!(DrivePath::parse("").unwrap().is_root());
        assert!(DrivePath::parse("/").is_err());
        assert_eq!(
            DrivePath::parse("a/b.txt").unwrap().components(),
            ["a", "b.txt"]
        );
        assert_eq!(DrivePath::parse("a/").unwrap().to_string(), "a");
        assert_eq!(
            DrivePath::parse(".checkpoints/x.pkl").unwrap().to_string(),
            ".checkpoints/x.pkl"
        );
        for bad in [
            "/etc/passwd",
            "..",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "a//b",
            "a\0b",
            "//",
        ] {
            assert!(
                matches!(DrivePath::parse(bad), Err(DriveError::InvalidPath(_))),
                "{bad:?} was accepted"
            );
        }
        assert!(DrivePath::parse(&"x".repeat(256)).is_err());
        assert!(DrivePath::parse(&"x/".repeat(3000)).is_err());
    }
}
