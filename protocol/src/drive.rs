//! The Drive: each signed-in user's persistent files, which their kernels see as `drive/`.
//!
//! Every route needs a signed-in user and acts on that user's own drive only. A `path` is
//! relative to the drive's root, `/`-separated (`data/train.csv`); an empty path is the root.
//! Absolute paths, `.` and `..` components, empty components and NUL are refused, and so is
//! every symbolic link (a kernel may plant one; the API never follows it).
//!
//! - `GET /api/drive?path=DIR` ([`LIST_PATH`]): a [`DriveListing`] of one folder.
//! - `GET /api/drive/file?path=FILE` ([`FILE_PATH`]): the file's bytes.
//! - `PUT /api/drive/file?path=FILE`: the raw request body becomes the file (missing parent
//!   folders are made); 201 with its [`DriveEntry`] (200 when it replaced a file).
//! - `DELETE /api/drive/file?path=P`: removes a file, or a folder with all it holds; 204.
//! - `POST /api/drive/folder?path=DIR` ([`FOLDER_PATH`]): a new folder (and missing parents);
//!   201 with its [`DriveEntry`].
//! - `POST /api/drive/rename` ([`RENAME_PATH`]) with a [`DriveRename`]: moves a file or folder;
//!   200 with the moved [`DriveEntry`].
//! - `GET /api/drive/usage` ([`USAGE_PATH`]): a [`DriveUsage`].
//!
//! Errors (the usual [`ErrorBody`](crate::ErrorBody)), by code: 400 `invalid_path`; 404
//! `not_found`; 409 `already_exists` (a rename or new folder onto an existing name),
//! `is_a_folder` (downloading or uploading onto a folder), `not_a_folder` (listing a file, or a
//! file where a parent folder should be); 413 `quota_exceeded` (nothing is kept of an upload
//! that would take the drive past its quota); 401 without credentials.

use serde::{Deserialize, Serialize};

/// `GET`: list a folder.
pub const LIST_PATH: &str = "/api/drive";
/// `GET` (download), `PUT` (upload), `DELETE` one file or folder.
pub const FILE_PATH: &str = "/api/drive/file";
/// `POST`: make a folder.
pub const FOLDER_PATH: &str = "/api/drive/folder";
/// `POST`: rename or move.
pub const RENAME_PATH: &str = "/api/drive/rename";
/// `GET`: bytes used and the quota.
pub const USAGE_PATH: &str = "/api/drive/usage";

/// The query of every route that names one path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrivePathQuery {
    /// Relative to the drive's root; empty (or absent) for the root.
    #[serde(default)]
    pub path: String,
}

/// One file or folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveEntry {
    /// Its name (the last component of its path).
    pub name: String,
    /// Its path from the drive's root.
    pub path: String,
    /// Bytes (0 for folders).
    pub size: u64,
    /// Last modification, RFC 3339 (UTC).
    pub modified: String,
    /// Whether it is a folder.
    pub is_dir: bool,
}

/// The content of one folder: folders first, then files, each by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveListing {
    /// The folder listed.
    pub path: String,
    /// What it holds (symbolic links are left out).
    pub entries: Vec<DriveEntry>,
}

/// The body of `POST /api/drive/rename`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveRename {
    /// The file or folder to move.
    pub from: String,
    /// Its new path; its parent folder must exist and the name must be free.
    pub to: String,
}

/// How full a drive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveUsage {
    /// Bytes of every file in the drive.
    pub used: u64,
    /// The most it may hold, in bytes.
    pub quota: u64,
}
