//! A scaled-out deployment on this machine: `tandem collab` and `tandem runtime` processes
//! sharing one Redis under a key prefix of their own, so tests never see each other's keys.
//!
//! Redis is `$TANDEM_TEST_REDIS_URL`, else `redis://127.0.0.1:6379` (`scripts/test` starts
//! one). Every process's output is kept and printed when the test fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::{LogBuffer, STARTUP_TIMEOUT, kernel_venv, strip_ansi, tandem_bin};

/// The service credential every node of a test cluster shares.
const SERVICE_TOKEN: &str = "cluster-test-service-credential";

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("TANDEM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// One `tandem collab` or `tandem runtime` process.
pub struct NodeProcess {
    /// `collab-0`, `runtime-1`, …
    pub name: String,
    child: Option<Child>,
    /// The HTTP address it serves (the collab service, or a runtime's metrics listener).
    pub addr: SocketAddr,
    /// A runtime's kernel directory (its kernels' working directories are below it).
    pub kernel_dir: Option<PathBuf>,
    logs: LogBuffer,
}

impl NodeProcess {
    /// `http://ADDR`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The node's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The y-websocket root, `ws://ADDR/ws` (stock providers append `/<notebook id>`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub fn kill_9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("sending SIGKILL")?;
            let status = child.wait().context("reaping the process")?;
            self.logs
                .push("harness", &format!("killed with SIGKILL ({status})"));
        }
        Ok(())
    }

    /// Whether the process still runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Everything it printed.
    pub fn logs(&self) -> String {
        self.logs.contents()
    }

    /// The local sign-in link a collab node printed (`http://ADDR/signin?token=…`).
    pub fn sign_in_url(&self) -> Result<String> {
        crate::last_sign_in_url(&self.logs.contents())
            .with_context(|| format!("{} printed no sign-in link", self.name))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- {} output -----\n{}----- end of {} output -----",
                self.name,
                self.logs.contents(),
                self.name
            );
        }
    }
}

/// Collab and runtime nodes on one Redis, one data dir and one key prefix.
pub struct Cluster {
    bin: PathBuf,
    data: TempDir,
    kernels: TempDir,
    /// Users' drives, shared by every node as a shared volume would be.
    drive: TempDir,
    redis_url: String,
    prefix: String,
    /// The collab nodes, in start order.
    pub collabs: Vec<NodeProcess>,
    /// The runtime nodes, in start order.
    pub runtimes: Vec<NodeProcess>,
}

impl Cluster {
    /// An empty cluster with a fresh data dir and a Redis key prefix no other run uses.
    pub fn new() -> Result<Cluster> {
        Self::on_redis(&redis_url())
    }

    /// [`Cluster::new`] on the Redis at `redis_url` (a [`RedisServer`] of the test's own).
    pub fn on_redis(redis_url: &str) -> Result<Cluster> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Cluster {
            bin: tandem_bin()?,
            data: tempfile::Builder::new()
                .prefix("tandem-cluster-data-")
                .tempdir()?,
            kernels: tempfile::Builder::new()
                .prefix("tandem-cluster-kernels-")
                .tempdir()?,
            drive: tempfile::Builder::new()
                .prefix("tandem-cluster-drive-")
                .tempdir()?,
            redis_url: redis_url.to_owned(),
            prefix: format!("tandem-test-{}-{nanos}", std::process::id()),
            collabs: Vec::new(),
            runtimes: Vec::new(),
        })
    }

    /// The same cluster with the Redis key prefix `prefix` instead of one of its own: for a
    /// Redis of the test's own whose ACL allows only that prefix (`infra/redis/start.sh`).
    pub fn with_prefix(mut self, prefix: &str) -> Cluster {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// The flags naming the shared store and Redis.
    fn store_args(&self) -> Vec<String> {
        vec![
            "--data".into(),
            self.data.path().display().to_string(),
            "--redis-url".into(),
            self.redis_url.clone(),
            "--redis-prefix".into(),
            self.prefix.clone(),
        ]
    }

    /// The flag naming the shared drive folder.
    fn drive_args(&self) -> Vec<String> {
        vec![
            "--drive-dir".into(),
            self.drive.path().display().to_string(),
        ]
    }

    /// Starts `tandem collab` on a free port; returns its index in [`Cluster::collabs`].
    pub async fn start_collab(&mut self, extra: &[&str]) -> Result<usize> {
        let name = format!("collab-{}", self.collabs.len());
        let mut args = vec!["collab".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
        args.extend(self.store_args());
        args.extend(self.drive_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        let node = spawn(&self.bin, &name, &args, "listening on http://", None).await?;
        self.collabs.push(node);
        Ok(self.collabs.len() - 1)
    }

    /// Starts `tandem runtime` joined to collab node `collab`, with its metrics listener on a
    /// free port and a kernel directory of its own; returns its index in
    /// [`Cluster::runtimes`].
    pub async fn start_runtime(&mut self, collab: usize, extra: &[&str]) -> Result<usize> {
        self.start_runtime_via(&[collab], extra).await
    }

    /// [`Cluster::start_runtime`] given every collab node in `collabs` (`--collab-url A,B`):
    /// its sessions join through the first that answers and move to another when it dies.
    pub async fn start_runtime_via(&mut self, collabs: &[usize], extra: &[&str]) -> Result<usize> {
        let name = format!("runtime-{}", self.runtimes.len());
        let kernel_dir = self.kernels.path().join(&name);
        std::fs::create_dir_all(&kernel_dir)?;
        let collab_urls = collabs
            .iter()
            .map(|&i| {
                Ok(self
                    .collabs
                    .get(i)
                    .context("no such collab node")?
                    .http_url())
            })
            .collect::<Result<Vec<_>>>()?
            .join(",");
        let mut args: Vec<String> = vec![
            "runtime".into(),
            "--collab-url".into(),
            collab_urls,
            "--redis-url".into(),
            self.redis_url.clone(),
            "--redis-prefix".into(),
            self.prefix.clone(),
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
            "--venv".into(),
            kernel_venv().display().to_string(),
            "--kernel-dir".into(),
            kernel_dir.display().to_string(),
            // Two cores: no kernels started ahead of need.
            "--spare-kernels".into(),
            "0".into(),
        ];
        args.extend(self.drive_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        let node = spawn(
            &self.bin,
            &name,
            &args,
            "metrics on http://",
            Some(kernel_dir),
        )
        .await?;
        self.runtimes.push(node);
        Ok(self.runtimes.len() - 1)
    }

    /// A personal access token for `email` (`tandem token create` on the cluster's store).
    pub async fn token_for(&self, email: &str) -> Result<String> {
        crate::token_create(&self.bin, &self.store_args(), email).await
    }

    /// Deletes every Redis key under the cluster's prefix.
    fn forget_keys(&self) -> redis::RedisResult<()> {
        let mut conn = redis::Client::open(self.redis_url.as_str())?.get_connection()?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(&mut conn)?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
        }
        Ok(())
    }

    /// The runtime node whose kernel holds the file `path` (as the kernel names it): below
    /// the node's kernel directory for an unconfined kernel, or, for a sandboxed one (whose
    /// `/content` exists only inside its sandbox), seen through `/proc/PID/root` of a process
    /// that descends from the node.
    pub fn runtime_owning(&self, path: &Path) -> Option<usize> {
        self.runtimes.iter().position(|node| {
            let in_dir = node
                .kernel_dir
                .as_ref()
                .is_some_and(|dir| path.starts_with(dir));
            in_dir
                || node.pid().is_some_and(|pid| {
                    descendants(pid as i32).into_iter().any(|child| {
                        let inside = path.strip_prefix("/").unwrap_or(path);
                        Path::new(&format!("/proc/{child}/root"))
                            .join(inside)
                            .exists()
                    })
                })
        })
    }
}

/// Every process below `pid`, from the host's /proc.
fn descendants(pid: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let child: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
            Some((child, parent))
        })
        .collect();
    let mut found = vec![pid];
    let mut next = 0;
    while next < found.len() {
        let current = found[next];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == current)
                .map(|(c, _)| *c),
        );
        next += 1;
    }
    found.remove(0);
    found
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Nodes first, so none writes a key after they are deleted.
        self.runtimes.clear();
        self.collabs.clear();
        if let Err(err) = self.forget_keys() {
            eprintln!("cannot delete the test's Redis keys: {err}");
        }
    }
}

/// Spawns `tandem ARGS`, keeps its output, and waits for a line with `prefix` + an address.
async fn spawn(
    bin: &Path,
    name: &str,
    args: &[String],
    prefix: &'static str,
    kernel_dir: Option<PathBuf>,
) -> Result<NodeProcess> {
    let logs = LogBuffer::default();
    logs.push("harness", &format!("tandem {}", args.join(" ")));
    let mut child = Command::new(bin)
        .args(args)
        .env("TANDEM_SERVICE_TOKEN", SERVICE_TOKEN)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    drain(stdout, "stdout", logs.clone(), Some((prefix, tx)));
    drain(stderr, "stderr", logs.clone(), None);
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(addr) = rx.try_recv() {
            return Ok(NodeProcess {
                name: name.to_owned(),
                child: Some(child),
                addr,
                kernel_dir,
                logs,
            });
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited ({status}); its output:\n{}", logs.contents());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{name} printed no `{prefix}` line; its output:\n{}",
                logs.contents()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn drain(
    pipe: impl std::io::Read + Send + 'static,
    stream: &'static str,
    logs: LogBuffer,
    mut watch: Option<(&'static str, mpsc::Sender<SocketAddr>)>,
) {
    use std::io::BufRead;
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = strip_ansi(String::from_utf8_lossy(&line).trim_end());
            logs.push(stream, &text);
            let found = watch.as_ref().and_then(|(prefix, _)| {
                let start = text.find(prefix)? + prefix.len();
                let rest = &text[start..];
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '/')
                    .unwrap_or(rest.len());
                rest[..end].parse::<SocketAddr>().ok()
            });
            if let Some(addr) = found
                && let Some((_, tx)) = watch.take()
            {
                let _ = tx.send(addr);
            }
        }
    });
}

/// The samples of `url`'s `/metrics` (a collab node, `tandem serve`, or a runtime node's
/// metrics listener), checked by [`parse_metrics`].
pub async fn scrape_metrics(http: &reqwest::Client, url: &str) -> Result<Vec<(String, f64)>> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .context("GET /metrics")?
        .text()
        .await
        .context("reading /metrics")?;
    parse_metrics(&text).with_context(|| format!("in\n{text}"))
}

/// Checks that `text` is the Prometheus text format: every line blank, a `#` comment, or
/// `name{labels} value` with a metric name and a number. Returns the samples as
/// (`name{labels}`, value).
pub fn parse_metrics(text: &str) -> Result<Vec<(String, f64)>> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            bail!("metric line without a value: {line:?}");
        };
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        let valid_name = name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
        if name.is_empty() || !valid_name {
            bail!("bad metric name in {line:?}");
        }
        if name_end < series.len() && !series.ends_with('}') {
            bail!("unterminated labels in {line:?}");
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            other => other
                .parse()
                .with_context(|| format!("bad metric value in {line:?}"))?,
        };
        samples.push((series.to_owned(), value));
    }
    Ok(samples)
}

/// The value of the sample named exactly `series` (`name` or `name{labels}`), if present.
pub fn metric(samples: &[(String, f64)], series: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(name, _)| name == series)
        .map(|(_, value)| *value)
}

/// A `redis-server` of a test's own, on a free loopback port, persisting to an append-only
/// file in a temporary directory with `appendfsync always` (as `infra/` configures Redis), so
/// it can be killed and restarted on the same port with everything it acknowledged.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` and waits until it answers PING.
    pub async fn start() -> Result<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = tempfile::Builder::new()
            .prefix("tandem-test-redis-")
            .tempdir()?;
        let mut server = RedisServer {
            port,
            dir,
            child: None,
        };
        server.restart().await?;
        Ok(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL: only what its AOF holds survives (with `appendfsync always`,
    /// every write it acknowledged).
    pub fn kill_9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("sending SIGKILL to redis-server")?;
            child.wait().context("reaping redis-server")?;
        }
        Ok(())
    }

    /// Starts it (again) on the same port and directory, and waits until it has loaded its
    /// AOF and answers PING.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill_9()?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning redis-server (is it installed?)")?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let answer = redis::Client::open(self.url().as_str())
                .and_then(|client| client.get_connection())
                .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
            if answer.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("redis-server on port {} never answered PING", self.port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.kill_9();
    }
}

/// A stock Yjs client process (`tests/interop/node/<script>`) that a test waits on, or kills.
pub struct NodeClient {
    /// Who it is, for messages.
    pub name: String,
    child: tokio::process::Child,
    _dir: TempDir,
    _plan: tempfile::NamedTempFile,
}

impl NodeClient {
    /// Starts `script` with `plan` written to a file as its argument.
    pub fn spawn(script: &str, name: &str, plan: &serde_json::Value) -> Result<NodeClient> {
        let plan_file = tempfile::NamedTempFile::new()?;
        std::fs::write(plan_file.path(), plan.to_string())?;
        let (mut command, dir) = crate::node_script(script)?;
        command
            .arg(plan_file.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("spawning {script} for {name}"))?;
        Ok(NodeClient {
            name: name.to_owned(),
            child,
            _dir: dir,
            _plan: plan_file,
        })
    }

    /// Kills it with SIGKILL: what it had not sent is gone with it.
    pub async fn kill_9(&mut self) -> Result<()> {
        self.child.kill().await.context("killing a node client")
    }

    /// Waits (at most `timeout`) for it to exit 0 and returns the last JSON line it printed.
    pub async fn finish(self, timeout: Duration) -> Result<serde_json::Value> {
        let name = self.name.clone();
        let output = tokio::time::timeout(timeout, self.child.wait_with_output())
            .await
            .with_context(|| format!("{name} did not finish within {timeout:?}"))?
            .with_context(|| format!("waiting for {name}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "{name} failed ({}):\n--- stdout (end) ---\n{}\n--- stderr (end) ---\n{}",
                output.status,
                crate::tail(&output.stdout, 2000),
                crate::tail(&output.stderr, 6000)
            );
        }
        let line = stdout
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .with_context(|| format!("{name} printed nothing"))?;
        serde_json::from_str(line).with_context(|| format!("{name} printed no JSON: {line}"))
    }
}
