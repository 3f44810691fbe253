//! Why a kernel process ended, and the log it left behind.

use std::collections::VecDeque;
use std::fmt;
use std::process::ExitStatus;

use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;

use super::event::Output;

/// How much of the kernel's fd 1/2 output the manager keeps: enough for a Python fatal
/// error with its stack dump, small enough to keep for every kernel.
const LOG_TAIL_BYTES: usize = 16 * 1024;

/// Lines of the log tail shown in a dead cell's error output.
const TRACEBACK_LOG_LINES: usize = 30;

/// Phrases that mean "out of memory" in what a dying kernel writes: CPython's
/// `MemoryError` and fatal errors, Rust's allocation failure abort, C++ `bad_alloc`,
/// glibc/OpenBLAS messages.
const OUT_OF_MEMORY_MARKERS: &[&str] = &[
    "memoryerror",
    "memory allocation of",
    "cannot allocate memory",
    "bad_alloc",
    "out of memory",
];

/// A kernel process that ended, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    /// Why it ended.
    pub reason: DeathReason,
    /// The end of what the process wrote to its fds 1 and 2 (Python fatal errors,
    /// faulthandler stacks, C library messages), for showing and logging.
    pub log_tail: String,
}

/// Why a kernel process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeathReason {
    /// Exited by itself with this status (`os._exit(3)`, `exit()` gives 0).
    Exited {
        /// The exit status.
        code: i32,
    },
    /// Killed by a signal the manager did not send: a crash (`SIGSEGV`, `SIGABRT`,
    /// `SIGBUS`) or a `SIGKILL` from outside, such as the system's out-of-memory killer.
    Signaled {
        /// The signal number.
        signal: i32,
    },
    /// Ran out of memory (its memory limit, or the machine's), as its last words said.
    OutOfMemory {
        /// The limit the kernel ran under, if any.
        limit_bytes: Option<u64>,
    },
    /// Stopped by [`super::Kernel::kill`] (a restart, an interrupt that did not stop it).
    Killed,
    /// Ended by [`super::Kernel::shutdown`].
    Shutdown,
}

impl Death {
    /// Classifies an exit status, given what the manager itself asked for.
    pub(crate) fn from_exit(
        status: Option<ExitStatus>,
        killed: bool,
        shutting_down: bool,
        limit_bytes: Option<u64>,
        log_tail: String,
    ) -> Death {
        let signal = status.and_then(|status| status.signal());
        let code = status.and_then(|status| status.code());
        let lowered = log_tail.to_lowercase();
        let out_of_memory = OUT_OF_MEMORY_MARKERS
            .iter()
            .any(|marker| lowered.contains(marker));
        let reason = if killed && signal == Some(Signal::SIGKILL as i32) {
            DeathReason::Killed
        } else if shutting_down && code == Some(0) {
            DeathReason::Shutdown
        } else if out_of_memory && code != Some(0) {
            DeathReason::OutOfMemory { limit_bytes }
        } else if let Some(signal) = signal {
            DeathReason::Signaled { signal }
        } else {
            // No status at all only if waiting failed; report it as an unknown exit.
            DeathReason::Exited {
                code: code.unwrap_or(-1),
            }
        };
        Death { reason, log_tail }
    }

    /// The error output a cell shows when the kernel dies under it.
    pub fn to_error_output(&self) -> Output {
        let mut traceback = vec![format!("\x1b[31mDeadKernelError\x1b[39m: {self}")];
        let lines: Vec<&str> = self.log_tail.lines().collect();
        let tail = &lines[lines.len().saturating_sub(TRACEBACK_LOG_LINES)..];
        if !tail.is_empty() {
            traceback.push(format!("The kernel's last words:\n{}", tail.join("\n")));
        }
        Output::Error {
            ename: "DeadKernelError".into(),
            evalue: self.to_string(),
            traceback,
        }
    }
}

/// `8 GiB`, `1.5 GiB`, `512 MiB`: a limit as people read it.
pub(crate) fn describe_bytes(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= GIB && (bytes * 10).is_multiple_of(GIB) {
        let tenths = bytes * 10 / GIB;
        format!("{}.{} GiB", tenths / 10, tenths % 10)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.reason, f)
    }
}

impl fmt::Display for DeathReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeathReason::Exited { code } => write!(f, "the kernel process exited with code {code}"),
            DeathReason::Signaled { signal } => {
                let (name, what) = signal_name(*signal);
                write!(f, "the kernel process was killed by {name}{what}")
            }
            DeathReason::OutOfMemory {
                limit_bytes: Some(limit),
            } => write!(
                f,
                "the kernel ran out of memory ({} limit)",
                describe_bytes(*limit)
            ),
            DeathReason::OutOfMemory { limit_bytes: None } => {
                write!(f, "the kernel ran out of memory")
            }
            DeathReason::Killed => write!(f, "the kernel process was stopped by the runtime"),
            DeathReason::Shutdown => write!(f, "the kernel process was shut down"),
        }
    }
}

/// A signal's name and a few words on what it usually means here.
fn signal_name(signal: i32) -> (String, &'static str) {
    let Ok(known) = Signal::try_from(signal) else {
        return (format!("signal {signal}"), "");
    };
    let what = match known {
        Signal::SIGSEGV => " (segmentation fault: native code crashed)",
        Signal::SIGBUS => " (bus error: native code crashed)",
        Signal::SIGABRT => " (aborted: native code or the interpreter gave up)",
        Signal::SIGFPE => " (arithmetic fault in native code)",
        Signal::SIGILL => " (illegal instruction in native code)",
        Signal::SIGKILL => " (from outside the runtime, often the system's out-of-memory killer)",
        _ => "",
    };
    (known.as_str().to_owned(), what)
}

/// The last [`LOG_TAIL_BYTES`] of a kernel's fd 1/2 output.
#[derive(Debug, Default)]
pub(crate) struct LogTail {
    bytes: VecDeque<u8>,
}

impl LogTail {
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        let chunk = &chunk[chunk.len().saturating_sub(LOG_TAIL_BYTES)..];
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(LOG_TAIL_BYTES);
        self.bytes.drain(..overflow);
        self.bytes.extend(chunk);
    }

    pub(crate) fn text(&self) -> String {
        let (front, back) = self.bytes.as_slices();
        let mut bytes = Vec::with_capacity(self.bytes.len());
        bytes.extend_from_slice(front);
        bytes.extend_from_slice(back);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(raw: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(raw))
    }

    #[test]
    fn classifies_exits() {
        let exited = Death::from_exit(status(3 << 8), false, false, None, String::new());
        assert_eq!(exited.reason, DeathReason::Exited { code: 3 });
        let segv = Death::from_exit(status(11), false, false, None, String::new());
        assert_eq!(segv.reason, DeathReason::Signaled { signal: 11 });
        assert!(segv.to_string().contains("SIGSEGV"), "{segv}");
        let killed = Death::from_exit(status(9), true, false, None, String::new());
        assert_eq!(killed.reason, DeathReason::Killed);
        let oom = Death::from_exit(
            status(6),
            false,
            false,
            Some(512 << 20),
            "memory allocation of 1048576 bytes failed\n".into(),
        );
        assert_eq!(
            oom.reason,
            DeathReason::OutOfMemory {
                limit_bytes: Some(512 << 20)
            }
        );
        assert_eq!(
            oom.to_string(),
            "the kernel ran out of memory (512 MiB limit)"
        );
        assert_eq!(describe_bytes(8 << 30), "8 GiB");
        assert_eq!(describe_bytes(3 << 29), "1.5 GiB");
        let shutdown = Death::from_exit(status(0), false, true, None, String::new());
        assert_eq!(shutdown.reason, DeathReason::Shutdown);
    }

    #[test]
    fn log_tail_keeps_the_end() {
        let mut tail = LogTail::default();
        tail.push(&vec![b'a'; LOG_TAIL_BYTES]);
        tail.push(b"last words");
        let text = tail.text();
        assert_eq!(text.len(), LOG_TAIL_BYTES);
        assert!(text.ends_with("last words"));
    }

    #[test]
    fn dead_cell_error_shows_the_reason_and_log() {
        let death = Death::from_exit(
            status(11),
            false,
            false,
            None,
            "Fatal Python error\n".into(),
        );
        let Output::Error {
            ename, traceback, ..
        } = death.to_error_output()
        else {
            panic!()
        };
        assert_eq!(ename, "DeadKernelError");
        assert!(
            traceback
                .iter()
                .any(|line| line.contains("Fatal Python error"))
        );
    }
}
