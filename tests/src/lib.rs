//! Shared helpers for Tandem's black-box tests: they run the real `tandem` binary and drive it
//! from the outside, the way users, scripts and stock Yjs clients do.
//!
//! # Layout
//! - [`TestServer`]: `tandem serve` on a fresh data dir and a free port; SIGKILL, restart on the
//!   same data, tokens, the local sign-in link it printed (and the token file), and the
//!   server's output printed when a test fails.
//! - [`tandem_bin`], [`python`], [`node_modules`], [`corpus_dir`]: where the binary, the interop
//!   venv, the Node clients and the notebook corpus are. Each fails (never skips) with a message
//!   saying to run `scripts/test`, which sets all of them up.
//! - [`run_client`]: runs an outside client process with a deadline and returns its output.
//! - [`cluster`]: `tandem collab` and `tandem runtime` processes on one Redis (scale-out), a
//!   `redis-server` of a test's own that can be killed and restarted from its AOF, stock Yjs
//!   client processes to wait on or kill, and a check of the Prometheus text format.
//! - [`notebook`]: comparing notebooks as JSON, and validating them with Python `nbformat`.
//! - [`browser`]: Chromium, node, playwright-core and the built web client for the browser
//!   tests, or what to run to get them.
//!
//! # Running
//! `scripts/test` builds the binary, prepares Python and Node and runs everything. With those in
//! place, `cargo test -p tandem-tests` runs just these tests.
//!
//! The tests live in `tests/tests/`: `interop.rs` (stock yjs and pycrdt clients on one notebook),
//! `crash.rs` (SIGKILL mid-typing loses nothing that was broadcast), `runtime_nodes.rs` and
//! `scale_out.rs` (collab and runtime nodes on Redis: convergence across nodes, a killed node,
//! a restarted Redis), among others.

pub mod browser;
mod clients;
pub mod cluster;
pub mod notebook;
mod setup;

pub use clients::{node_script, python_script, run_client, tail};
pub use setup::{
    corpus_dir, corpus_notebook, interop_dir, kernel_venv, node_modules, python,
    require_kernel_venv, tandem_bin, workspace_root,
};

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

/// How long `tandem serve` may take to print its `listening on` line. A debug build opening
/// SQLite and replaying a log is well under a second; the margin is for a loaded CI machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What `tandem serve` prints on stdout once its listener is bound (docs/design.md, CLI contract).
const LISTENING_PREFIX: &str = "listening on http://";

/// What `tandem serve` and `tandem collab` print on stdout, just before `listening on`, when
/// local sign-in is on: `Sign in at http://ADDR/signin?token=…`.
const SIGN_IN_PREFIX: &str = "Sign in at ";

/// The file in `--data` that holds the local sign-in token.
pub const SIGN_IN_TOKEN_FILE: &str = "local-signin-token";

/// Output kept from the server: every line of its stdout and stderr, in arrival order.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<String>>);

impl LogBuffer {
    fn push(&self, stream: &str, line: &str) {
        let line = strip_ansi(line);
        if let Ok(mut text) = self.0.lock() {
            text.push_str(stream);
            text.push_str(": ");
            text.push_str(&line);
            text.push('\n');
        }
    }

    fn contents(&self) -> String {
        self.0.lock().map(|text| text.clone()).unwrap_or_default()
    }
}

/// `line` without ANSI colour sequences (`ESC [ … letter`): log formatters may colour their
/// output even into a pipe, and failure messages should read as plain text.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A running `tandem serve` on its own temporary data dir and a free loopback port.
///
/// The child is killed when this is dropped. When the test panics, everything the server
/// printed is written to stderr (which the test harness shows for failed tests only).
pub struct TestServer {
    bin: PathBuf,
    data: TempDir,
    /// Kernels' working directories, kept apart from the data dir as in production.
    kernels: TempDir,
    /// Users' drives (`--drive-dir`), kept apart from both.
    drive: TempDir,
    /// Extra `tandem serve` flags, kept for restarts.
    extra: Vec<String>,
    child: Option<Child>,
    addr: SocketAddr,
    logs: LogBuffer,
    starts: u32,
}

impl TestServer {
    /// Starts `tandem serve --data <fresh tempdir> --listen 127.0.0.1:0` and waits for its
    /// `listening on http://…` line.
    pub async fn start() -> Result<TestServer> {
        Self::start_with(&[]).await
    }

    /// [`TestServer::start`] with extra `tandem serve` flags (kept across restarts).
    pub async fn start_with(flags: &[&str]) -> Result<TestServer> {
        let drive = tempfile::Builder::new()
            .prefix("tandem-test-drive-")
            .tempdir()
            .context("creating the drive dir")?;
        let mut extra: Vec<String> = vec!["--drive-dir".into(), drive.path().display().to_string()];
        extra.extend(flags.iter().map(|s| s.to_string()));
        let bin = tandem_bin()?;
        let data = tempfile::Builder::new()
            .prefix("tandem-test-data-")
            .tempdir()
            .context("creating the data dir")?;
        let kernels = tempfile::Builder::new()
            .prefix("tandem-test-kernels-")
            .tempdir()
            .context("creating the kernels dir")?;
        let logs = LogBuffer::default();
        let dirs = (data.path(), kernels.path());
        let (child, addr) = spawn_serve(&bin, dirs, &extra, "127.0.0.1:0", &logs, 1).await?;
        Ok(TestServer {
            bin,
            data,
            kernels,
            drive,
            extra,
            child: Some(child),
            addr,
            logs,
            starts: 1,
        })
    }

    /// The HTTP base URL, `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The y-websocket server URL, `ws://127.0.0.1:PORT/ws`: stock providers append
    /// `/<notebook id>?token=…` themselves.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The data dir (`--data`), kept across [`TestServer::restart`].
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The kernels' dir (`--kernel-dir`), kept across [`TestServer::restart`].
    pub fn kernel_dir(&self) -> &Path {
        self.kernels.path()
    }

    /// The drive dir (`--drive-dir`): one folder per user id.
    pub fn drive_dir(&self) -> &Path {
        self.drive.path()
    }

    /// The server's process id, `None` after [`TestServer::kill_9`].
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the server has printed so far, across restarts.
    pub fn logs(&self) -> String {
        self.logs.contents()
    }

    /// Kills the server with SIGKILL, as a crash or the OOM killer would: no shutdown code
    /// runs, so only what was already durable survives.
    pub fn kill_9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            // On Unix, `Child::kill` is SIGKILL.
            child.kill().context("sending SIGKILL to tandem serve")?;
            let status = child.wait().context("reaping tandem serve")?;
            self.logs
                .push("harness", &format!("killed with SIGKILL ({status})"));
        }
        Ok(())
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit, so a test can check
    /// that shutdown flushes everything.
    pub async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("the server is not running");
        };
        let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
        send_sigterm(pid)?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().context("waiting for tandem serve")? {
                self.logs
                    .push("harness", &format!("exited after SIGTERM ({status})"));
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("tandem serve did not exit within {STARTUP_TIMEOUT:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server again on the same data dir, stopping it first (SIGTERM) if it is
    /// still running. It listens on the same port when that is free again, so clients can
    /// reconnect to the URLs they had; otherwise on a new one (see [`TestServer::http_url`]).
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.terminate().await?;
        }
        self.starts += 1;
        let same_port = format!("127.0.0.1:{}", self.addr.port());
        let (child, addr) = match spawn_serve(
            &self.bin,
            (self.data.path(), self.kernels.path()),
            &self.extra,
            &same_port,
            &self.logs,
            self.starts,
        )
        .await
        {
            Ok(started) => started,
            Err(error) => {
                self.logs.push(
                    "harness",
                    &format!("restart on {same_port} failed: {error:#}"),
                );
                self.starts += 1;
                spawn_serve(
                    &self.bin,
                    (self.data.path(), self.kernels.path()),
                    &self.extra,
                    "127.0.0.1:0",
                    &self.logs,
                    self.starts,
                )
                .await?
            }
        };
        self.child = Some(child);
        self.addr = addr;
        Ok(())
    }

    /// The local sign-in link the server printed at its latest start
    /// (`http://127.0.0.1:PORT/signin?token=…`).
    pub fn sign_in_url(&self) -> Result<String> {
        last_sign_in_url(&self.logs.contents())
            .ok_or_else(|| anyhow!("tandem serve printed no `{SIGN_IN_PREFIX}…` line"))
    }

    /// The local sign-in token as a script reads it: [`SIGN_IN_TOKEN_FILE`] in the data dir.
    pub fn sign_in_token(&self) -> Result<String> {
        let path = self.data.path().join(SIGN_IN_TOKEN_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(text.trim().to_owned())
    }

    /// Creates (if absent) the user `email` and a personal access token for them with
    /// `tandem token create`, which works while the server runs, and returns the token.
    pub async fn token_for(&self, email: &str) -> Result<String> {
        let data = self.data.path().display().to_string();
        token_create(&self.bin, &["--data".to_owned(), data], email).await
    }

    /// A REST client signed in as `email` (a fresh token from [`TestServer::token_for`]).
    pub async fn client_for(&self, email: &str) -> Result<tandem_client::Client> {
        let token = self.token_for(email).await?;
        Ok(tandem_client::Client::new(&self.http_url(), &token)?)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- tandem serve output (data dir {}) -----\n{}----- end of tandem serve output -----",
                self.data.path().display(),
                self.logs.contents()
            );
        }
    }
}

/// Sends SIGTERM, which `tandem serve` handles as a graceful shutdown.
fn send_sigterm(pid: libc::pid_t) -> Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is our own
    // child, not yet reaped (we hold its `Child`), so it cannot name a recycled process.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("sending SIGTERM to tandem serve");
    }
    Ok(())
}

/// Spawns `tandem serve`, drains its output into `logs` on two threads for as long as it
/// runs (a full pipe would block the server), and waits for the `listening on` line.
async fn spawn_serve(
    bin: &Path,
    (data, kernels): (&Path, &Path),
    extra: &[String],
    listen: &str,
    logs: &LogBuffer,
    start: u32,
) -> Result<(Child, SocketAddr)> {
    logs.push(
        "harness",
        &format!("start #{start}: tandem serve --listen {listen}"),
    );
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--data")
        .arg(data)
        .arg("--kernel-dir")
        .arg(kernels)
        .arg("--venv")
        .arg(kernel_venv())
        .args(["--listen", listen])
        .args(extra)
        // A stand-in for the server's secrets: tests check that kernels never see it.
        .env("TANDEM_TEST_SECRET", "server-secret-do-not-leak")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {} serve", bin.display()))?;

    let (listening_tx, listening_rx) = mpsc::channel::<SocketAddr>();
    let stdout = child
        .stdout
        .take()
        .context("tandem serve has no stdout pipe")?;
    let stderr = child
        .stderr
        .take()
        .context("tandem serve has no stderr pipe")?;
    drain(stdout, "stdout", logs.clone(), Some(listening_tx));
    drain(stderr, "stderr", logs.clone(), None);

    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        match listening_rx.try_recv() {
            Ok(addr) => return Ok((child, addr)),
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => {
                // stdout closed without the line: the process is exiting.
                let status = wait_briefly(&mut child);
                bail!(
                    "tandem serve exited before listening ({status}); its output:\n{}",
                    logs.contents()
                );
            }
        }
        if let Some(status) = child.try_wait().context("polling tandem serve")? {
            // It may have printed the line just before exiting; either way it is gone.
            bail!(
                "tandem serve exited before listening ({status}); its output:\n{}",
                logs.contents()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "tandem serve printed no `{LISTENING_PREFIX}…` line within {STARTUP_TIMEOUT:?}; \
                 its output:\n{}",
                logs.contents()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn wait_briefly(child: &mut Child) -> String {
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            return status.to_string();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    match child.wait() {
        Ok(status) => format!("killed, {status}"),
        Err(error) => format!("unknown status: {error}"),
    }
}

/// Copies `pipe` line by line into `logs`; on stdout, reports the listening address once.
fn drain(
    pipe: impl Read + Send + 'static,
    stream: &'static str,
    logs: LogBuffer,
    mut listening: Option<mpsc::Sender<SocketAddr>>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            logs.push(stream, text);
            if let Some(addr) = parse_listening(text)
                && let Some(tx) = listening.take()
            {
                let _ = tx.send(addr);
            }
        }
    });
}

/// The address in a `listening on http://ADDR` line, wherever it sits in the line (a log
/// formatter may prefix it).
fn parse_listening(line: &str) -> Option<SocketAddr> {
    let line = strip_ansi(line);
    let start = line.find(LISTENING_PREFIX)? + LISTENING_PREFIX.len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The link in the last `Sign in at URL` line of a process's output: the one its latest
/// start printed.
pub(crate) fn last_sign_in_url(logs: &str) -> Option<String> {
    logs.lines()
        .filter_map(|line| {
            let start = line.find(SIGN_IN_PREFIX)? + SIGN_IN_PREFIX.len();
            line[start..].split_whitespace().next().map(str::to_owned)
        })
        .next_back()
}

/// Runs `tandem token create --email EMAIL` with the given store flags and returns the token,
/// which the contract puts alone on the last line of stdout.
pub(crate) async fn token_create(
    bin: &std::path::Path,
    store_args: &[String],
    email: &str,
) -> Result<String> {
    let output = tokio::process::Command::new(bin)
        .args(["token", "create"])
        .args(store_args)
        .args(["--email", email])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .context("running tandem token create")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "tandem token create --email {email} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("tandem token create printed no token; stdout was {stdout:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours_from_log_lines() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m up"),
            "2026  INFO up"
        );
        assert_eq!(strip_ansi("plain é"), "plain é");
    }

    #[test]
    fn finds_the_listening_address_in_plain_and_prefixed_lines() {
        assert_eq!(
            parse_listening("listening on http://127.0.0.1:4321"),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        assert_eq!(
            parse_listening(
                "2025-01-01T00:00:00Z INFO tandem: listening on http://127.0.0.1:80/ x"
            ),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(parse_listening("listening soon"), None);
        assert_eq!(
            parse_listening("\u{1b}[2mlistening on http://127.0.0.1:9\u{1b}[0m"),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(parse_listening("listening on http://not-an-addr"), None);
    }

    #[test]
    fn the_latest_sign_in_link_is_found() {
        let logs = "harness: start #1\nstdout: Sign in at http://127.0.0.1:1/signin?token=a\n\
                    stdout: listening on http://127.0.0.1:1\nharness: start #2\n\
                    stdout: Sign in at http://127.0.0.1:2/signin?token=b\n";
        assert_eq!(
            last_sign_in_url(logs).as_deref(),
            Some("http://127.0.0.1:2/signin?token=b")
        );
        assert_eq!(last_sign_in_url("stdout: listening on http://x"), None);
    }
}
