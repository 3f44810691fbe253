//! The servers under test: Tandem (spawned from its binary, or already running) and the Node
//! reference server. Each [`Target`] knows where to connect, which room to use, and which
//! process to measure.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tandem_client::Client;
use tandem_client::reference::ReferenceServer;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub mod cluster;

/// How long `tandem serve` may take to print its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server ready for one scenario: where to connect and which process to measure.
pub struct Target {
    /// The server's name in the report.
    pub name: String,
    /// The WebSocket root of each node, such as `ws://127.0.0.1:PORT/ws` (one for a single
    /// server; clients are spread over them round-robin).
    pub ws_bases: Vec<String>,
    /// The room (notebook id) the scenario's clients join.
    pub room: String,
    /// The token the clients send, if the server needs one.
    pub token: Option<String>,
    /// The server processes whose CPU time and memory are measured (with several collab
    /// nodes, Redis's too).
    pub pids: Vec<u32>,
    /// Keeps a spawned server (and its data folder) alive until the target is dropped.
    _guard: Guard,
}

/// Held only to be dropped: dropping kills the server.
enum Guard {
    None,
    Reference {
        _server: ReferenceServer,
    },
    Tandem {
        _child: Child,
        _data: tempfile::TempDir,
    },
    Cluster {
        _nodes: cluster::Nodes,
    },
}

/// How to reach Tandem: a binary to spawn, or a server that is already running.
#[derive(Debug, Clone)]
pub enum TandemSource {
    /// Spawn `BIN serve --data <tmp> --listen 127.0.0.1:0` for each scenario.
    Spawn(PathBuf),
    /// Use a running server; its process must be readable in `/proc` for the CPU and memory
    /// columns.
    Attach {
        /// Base URL, such as `http://127.0.0.1:8080`.
        url: String,
        /// The server's process id.
        pid: u32,
        /// A personal access token for it.
        token: String,
    },
}

/// Starts a fresh Node reference server (killed when the target drops).
pub async fn reference(node_modules: &Path, room: &str) -> Result<Target> {
    let server = ReferenceServer::start(node_modules).await?;
    Ok(Target {
        name: "y-websocket@2 (Node)".into(),
        ws_bases: vec![server.ws_base()],
        room: room.to_owned(),
        token: None,
        pids: vec![server.pid()],
        _guard: Guard::Reference { _server: server },
    })
}

/// A Tandem server with a fresh notebook, spawned or attached.
pub async fn tandem(source: &TandemSource, title: &str, verbose: bool) -> Result<Target> {
    let (base_url, pid, token, guard) = match source {
        TandemSource::Attach { url, pid, token } => (url.clone(), *pid, token.clone(), Guard::None),
        TandemSource::Spawn(bin) => {
            let data = tempfile::tempdir().context("creating a data folder")?;
            let (child, addr) = spawn_serve(bin, data.path(), &[], verbose).await?;
            let pid = child.id().context("tandem exited right after starting")?;
            let token = create_token(bin, data.path()).await?;
            (
                format!("http://{addr}"),
                pid,
                token,
                Guard::Tandem {
                    _child: child,
                    _data: data,
                },
            )
        }
    };
    let client = Client::new(&base_url, &token)?;
    wait_healthy(&client).await?;
    let notebook = client
        .create_notebook(title, None)
        .await
        .context("creating the bench notebook via POST /api/notebooks")?;
    Ok(Target {
        name: "Tandem".into(),
        ws_bases: vec![client.ws_base()?],
        room: notebook.id,
        token: Some(token),
        pids: vec![pid],
        _guard: guard,
    })
}

/// Runs `tandem serve` (with `extra_args` after the data folder and address) and waits for the
/// address it prints (`listening on http://...`). Its output is drained for as long as it runs,
/// so a chatty server never blocks on a full pipe.
pub async fn spawn_serve(
    bin: &Path,
    data: &Path,
    extra_args: &[&OsStr],
    verbose: bool,
) -> Result<(Child, SocketAddr)> {
    let mut args: Vec<&OsStr> = vec!["serve".as_ref(), "--data".as_ref(), data.as_os_str()];
    args.extend(UNLIMITED_CONNECTIONS.map(OsStr::new));
    args.extend(extra_args);
    spawn_tandem(bin, &args, verbose).await
}

/// Every bench client uses one token, and the idle scenario opens thousands of connections:
/// lift the per-person connection cap (`--max-connections-per-user`) for measured servers.
pub const UNLIMITED_CONNECTIONS: [&str; 2] = ["--max-connections-per-user", "0"];

/// Runs `tandem ARGS --listen 127.0.0.1:0` and waits for the address it prints, draining its
/// output for as long as it runs.
pub async fn spawn_tandem(
    bin: &Path,
    args: &[&OsStr],
    verbose: bool,
) -> Result<(Child, SocketAddr)> {
    let mut child = Command::new(bin)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("running {} serve", bin.display()))?;
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(drain(out, lines_tx.clone(), verbose));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(drain(err, lines_tx, verbose));
    }
    let mut seen = Vec::new();
    let found = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = lines.recv().await {
            if let Some(addr) = parse_listen_line(&line) {
                return Some(addr);
            }
            seen.push(line);
        }
        None
    })
    .await;
    match found {
        Ok(Some(addr)) => Ok((child, addr)),
        Ok(None) => {
            let status = child.wait().await.ok();
            bail!(
                "tandem exited ({status:?}) without printing `listening on http://...`; output:\n{}",
                seen.join("\n")
            )
        }
        Err(_) => bail!(
            "tandem printed no listening address within {START_TIMEOUT:?}; output:\n{}",
            seen.join("\n")
        ),
    }
}

async fn drain(
    stream: impl AsyncRead + Unpin,
    lines: mpsc::UnboundedSender<String>,
    verbose: bool,
) {
    let mut reader = BufReader::new(stream).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        if verbose {
            eprintln!("[tandem] {line}");
        }
        let _ = lines.send(line);
    }
}

/// Finds the address in a line announcing where the server listens. Tolerant of wording and
/// log format: any line mentioning `listen` or `http://` that holds `HOST:PORT` with a non-zero
/// port, such as `listening on http://127.0.0.1:40123` or a JSON log with
/// `"addr":"127.0.0.1:40123"`.
pub fn parse_listen_line(line: &str) -> Option<SocketAddr> {
    let lower = line.to_ascii_lowercase();
    if !lower.contains("listen") && !lower.contains("http://") {
        return None;
    }
    lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || ".:[]/".contains(c)))
        .filter_map(|word| {
            let word = word.trim_start_matches("http://").trim_end_matches('/');
            let word = word.split('/').next().unwrap_or(word);
            let word = word
                .replace("localhost:", "127.0.0.1:")
                .replace("0.0.0.0:", "127.0.0.1:");
            word.parse::<SocketAddr>().ok()
        })
        .find(|addr| addr.port() != 0)
}

/// Runs `tandem token create`, which prints the token alone on its last stdout line.
pub async fn create_token(bin: &Path, data: &Path) -> Result<String> {
    let output = Command::new(bin)
        .args(["token", "create", "--data"])
        .arg(data)
        .args(["--email", "bench@example.com", "--name", "Bench"])
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} token create", bin.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let token = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned);
    match token {
        Some(token) if output.status.success() => Ok(token),
        _ => bail!(
            "tandem token create failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Polls `GET /healthz` until the server answers.
pub async fn wait_healthy(client: &Client) -> Result<()> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        match client.healthz().await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e).context("GET /healthz never succeeded");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listening_address_in_many_shapes() {
        let addr = |s: &str| parse_listen_line(s).map(|a| a.to_string());
        assert_eq!(
            addr("listening on http://127.0.0.1:40123").as_deref(),
            Some("127.0.0.1:40123")
        );
        assert_eq!(
            addr("Listening on http://127.0.0.1:8080/").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            addr(r#"{"level":"INFO","message":"listening","addr":"127.0.0.1:5555"}"#).as_deref(),
            Some("127.0.0.1:5555")
        );
        assert_eq!(
            addr("2025 INFO tandem: listening addr=[::1]:7000").as_deref(),
            Some("[::1]:7000")
        );
        assert_eq!(
            addr("listening on http://localhost:9000").as_deref(),
            Some("127.0.0.1:9000")
        );
        assert_eq!(addr("config: --listen 127.0.0.1:0"), None);
        assert_eq!(addr("opened store at /tmp/x"), None);
    }
}
