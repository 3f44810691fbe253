//! Errors of the kernel manager.

use std::path::PathBuf;
use std::time::Duration;

use super::death::Death;

/// What the fix for a missing or broken kernel venv is, in every message about one.
pub const SETUP_HINT: &str = "run scripts/setup-python to create it";

/// An error starting or driving a kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The kernel venv does not exist or lacks what kernels need (IPython for the
    /// embedded CPython's version).
    #[error("the kernel venv {venv} is missing or incomplete ({problem}): {SETUP_HINT}")]
    VenvMissing {
        /// The venv path the kernel was asked to use.
        venv: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The kernel's working directory could not be created.
    #[error("could not create the kernel working directory {path}: {source}")]
    Workdir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The worker program could not be started.
    #[error("could not start the kernel program {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The worker started but failed before it was ready (it says why; often a broken
    /// venv, in which case the message names the fix).
    #[error("the kernel failed to start: {message}")]
    StartupFailed {
        /// The worker's own explanation, or how it died.
        message: String,
        /// The end of what it wrote to its stdout/stderr.
        log_tail: String,
    },
    /// The kernel's sandbox could not be built (or is unavailable on this host).
    #[error("the kernel sandbox could not be set up: {0}")]
    Sandbox(String),
    /// The worker did not report ready in time.
    #[error("the kernel did not start within {0:?}")]
    StartupTimeout(Duration),
    /// The kernel process has ended; start a new one.
    #[error("the kernel is dead: {0}")]
    Dead(Death),
    /// A completion or inspection got no answer in time (the kernel is busy in native code,
    /// or wedged).
    #[error("the kernel did not answer within {0:?}")]
    QueryTimeout(Duration),
    /// The worker answered something that does not fit the request.
    #[error("the kernel answered out of protocol: {0}")]
    Protocol(String),
    /// Sending a signal to the kernel process failed.
    #[error("could not signal the kernel process: {0}")]
    Signal(#[from] nix::Error),
}
