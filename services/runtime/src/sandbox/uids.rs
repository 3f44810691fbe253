//! Per-kernel uids: each kernel runs as an OS user no other kernel uses at the same time.
//!
//! A uid is leased by holding an exclusive `flock` on a file named after it, so runtime
//! processes on one machine (a `tandem serve` beside a `tandem runtime`) never hand out the
//! same uid, and a runtime that dies lets go of its leases with its file descriptors. A
//! lease is returned only after every process of its kernel is gone (see `Jail`), so a uid
//! is never shared by a dying kernel and a new one.

use std::fs::File;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A configured range of uids, as `START-END` (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidRange(pub RangeInclusive<u32>);

impl std::str::FromStr for UidRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (start, end) = text
            .split_once('-')
            .ok_or_else(|| format!("expected START-END, got {text:?}"))?;
        let parse = |part: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|error| format!("{part:?} is not a uid: {error}"))
        };
        let (start, end) = (parse(start)?, parse(end)?);
        if start == 0 || start > end {
            return Err(format!(
                "the uid range {start}-{end} must be non-empty and leave out 0"
            ));
        }
        Ok(UidRange(start..=end))
    }
}

/// Hands out uids of a range.
#[derive(Debug)]
pub struct Uids {
    range: RangeInclusive<u32>,
    dir: PathBuf,
    /// Where the next search starts, so uids are reused as late as possible.
    next: AtomicU32,
}

/// A uid held for one kernel; dropping it returns the uid.
#[derive(Debug)]
pub struct UidLease {
    uid: u32,
    _lock: nix::fcntl::Flock<File>,
}

impl UidLease {
    /// The leased uid (also the kernel's gid).
    pub fn uid(&self) -> u32 {
        self.uid
    }
}

impl Uids {
    /// Uids of `range`, with their lock files in `dir` (made if missing, root only).
    pub fn new(range: UidRange, dir: &Path) -> std::io::Result<Uids> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        Ok(Uids {
            next: AtomicU32::new(*range.0.start()),
            range: range.0,
            dir: dir.to_path_buf(),
        })
    }

    /// Leases a uid no other kernel on this machine holds.
    pub fn lease(&self) -> std::io::Result<UidLease> {
        let (start, end) = (*self.range.start(), *self.range.end());
        let size = u64::from(end - start) + 1;
        let first = self.next.load(Ordering::Relaxed).clamp(start, end);
        for offset in 0..size {
            let uid = start + ((u64::from(first - start) + offset) % size) as u32;
            let path = self.dir.join(uid.to_string());
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            let locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock);
            if let Ok(lock) = locked {
                let next = if uid == end { start } else { uid + 1 };
                self.next.store(next, Ordering::Relaxed);
                tracing::debug!(uid, "uid leased");
                return Ok(UidLease { uid, _lock: lock });
            }
        }
        Err(std::io::Error::other(format!(
            "every kernel uid of {start}-{end} is in use (--kernel-uids)"
        )))
    }

    /// Whether `uid` is leased by some runtime on this machine now.
    pub fn is_leased(&self, uid: u32) -> bool {
        let Ok(file) = File::options()
            .write(true)
            .open(self.dir.join(uid.to_string()))
        else {
            return false;
        };
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                drop(lock);
                false
            }
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_refuse_root() {
        assert_eq!(
            "600000-600009".parse::<UidRange>().unwrap(),
            UidRange(600000..=600009)
        );
        assert!("0-10".parse::<UidRange>().is_err());
        assert!("10-5".parse::<UidRange>().is_err());
        assert!("10".parse::<UidRange>().is_err());
    }

    #[test]
    fn leases_are_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let uids = Uids::new(UidRange(700000..=700001), dir.path()).unwrap();
        let a = uids.lease().unwrap();
        let b = uids.lease().unwrap();
        assert_ne!(a.uid(), b.uid());
        assert!(uids.is_leased(a.uid()));
        assert!(uids.lease().is_err(), "the range is used up");
        let freed = a.uid();
        drop(a);
        assert!(!uids.is_leased(freed));
        assert_eq!(uids.lease().unwrap().uid(), freed);
    }
}
