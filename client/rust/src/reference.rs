//! The reference y-websocket server (`y-websocket@2`'s `bin/server.cjs`, on Node) as a child
//! process: what interop tests check the client against and what benchmarks compare Tandem with.
//!
//! The repo's test script installs `yjs`, `y-websocket@2` and `@jupyter/ydoc` into
//! `tests/interop/node_modules` and points `TANDEM_NODE_MODULES` at it. Without that variable
//! [`node_modules_from_env`] fails with a message saying so: a test that needs the reference
//! server must fail, not skip silently.
//!
//! The reference server names a room after the whole URL path, ignores `?token=`, keeps
//! documents in memory, and accepts any update.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The environment variable naming the `node_modules` folder that holds `y-websocket@2`.
pub const NODE_MODULES_ENV: &str = "TANDEM_NODE_MODULES";

/// How long the Node server may take to start listening. Node starts in well under a second;
/// the margin is for a loaded CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What can go wrong starting the reference server.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// `TANDEM_NODE_MODULES` is not set.
    #[error(
        "{NODE_MODULES_ENV} is not set: run the repo's test script, which installs yjs, \
         y-websocket@2 and @jupyter/ydoc into tests/interop/node_modules and sets \
         {NODE_MODULES_ENV} (or set it yourself to a node_modules folder holding y-websocket@2)"
    )]
    NotConfigured,
    /// The server script is not where `y-websocket@2` puts it.
    #[error("{0} not found: is y-websocket@2 installed in that node_modules?")]
    MissingScript(PathBuf),
    /// `node` could not be started, or the server did not come up.
    #[error("reference server failed to start: {0}")]
    Start(String),
    /// An I/O error while starting it.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The `node_modules` folder named by `TANDEM_NODE_MODULES`.
pub fn node_modules_from_env() -> Result<PathBuf, ReferenceError> {
    match std::env::var_os(NODE_MODULES_ENV) {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => Err(ReferenceError::NotConfigured),
    }
}

/// A running `y-websocket@2` reference server on `127.0.0.1`, killed when dropped.
#[derive(Debug)]
pub struct ReferenceServer {
    child: Child,
    port: u16,
    pid: u32,
}

impl ReferenceServer {
    /// Starts the server from the `node_modules` named by `TANDEM_NODE_MODULES`.
    pub async fn from_env() -> Result<ReferenceServer, ReferenceError> {
        Self::start(&node_modules_from_env()?).await
    }

    /// Starts `node node_modules/y-websocket/bin/server.cjs` on a free port of `127.0.0.1` and
    /// waits until it accepts connections. The child inherits this process's limits, so raise
    /// `RLIMIT_NOFILE` first when it must hold thousands of sockets.
    pub async fn start(node_modules: &Path) -> Result<ReferenceServer, ReferenceError> {
        let script = node_modules
            .join("y-websocket")
            .join("bin")
            .join("server.cjs");
        if !script.is_file() {
            return Err(ReferenceError::MissingScript(script));
        }
        // Another process may take the port between our probe and Node's bind; try again then.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let mut child = Command::new(std::env::var_os("TANDEM_NODE").unwrap_or("node".into()))
                .arg(&script)
                .env("HOST", "127.0.0.1")
                .env("PORT", port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| ReferenceError::Start(format!("cannot run node: {e}")))?;
            let pid = child.id().unwrap_or_default();
            match wait_listening(&mut child, port).await {
                Ok(()) => return Ok(ReferenceServer { child, port, pid }),
                Err(e) => last_error = e,
            }
        }
        Err(ReferenceError::Start(last_error))
    }

    /// The WebSocket base to pass to [`DocConnection::connect`](crate::DocConnection::connect):
    /// `ws://127.0.0.1:PORT` (the room is the rest of the path).
    pub fn ws_base(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Node process's id, for reading its CPU time and memory from `/proc`.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the server and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "node exited with {status} before listening on port {port}"
            ));
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill().await;
            return Err(format!(
                "node did not listen on port {port} within {START_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
