//! Tandem scaled out: N `tandem collab` processes sharing one Redis under a key prefix of
//! their own (deleted again when the target drops). Clients are spread over the nodes
//! round-robin, so most deliveries cross nodes (through Redis).

use std::ffi::OsStr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tandem_client::Client;
use tokio::process::{Child, Command};

use super::{Guard, Target, spawn_tandem, wait_healthy};

/// The spawned nodes and what they need to be cleaned up.
pub(super) struct Nodes {
    children: Vec<Child>,
    _data: tempfile::TempDir,
    redis_url: String,
    prefix: String,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        // Nodes first, so none writes a key after they are deleted.
        for child in &mut self.children {
            let _ = child.start_kill();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Err(err) = forget_keys(&self.redis_url, &self.prefix) {
            eprintln!(
                "cannot delete the bench's Redis keys under {}: {err}",
                self.prefix
            );
        }
    }
}

fn forget_keys(redis_url: &str, prefix: &str) -> redis::RedisResult<()> {
    let mut conn = redis::Client::open(redis_url)?.get_connection()?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut conn)?;
    if !keys.is_empty() {
        redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
    }
    Ok(())
}

/// Redis's process id (`INFO server`), so its CPU time counts with the nodes'; `None` when
/// Redis runs elsewhere.
fn redis_pid(redis_url: &str) -> Result<Option<u32>> {
    let mut conn = redis::Client::open(redis_url)?.get_connection()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
    let pid = info
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse::<u32>().ok());
    Ok(pid.filter(|pid| Path::new(&format!("/proc/{pid}/stat")).exists()))
}

/// Redis's persistence settings, for the report (`appendonly`, `appendfsync`).
pub fn redis_persistence(redis_url: &str) -> Result<String> {
    let mut conn = redis::Client::open(redis_url)?.get_connection()?;
    let mut read = |name: &str| -> Result<String> {
        let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(&mut conn)?;
        Ok(pair.get(1).cloned().unwrap_or_default())
    };
    Ok(format!(
        "appendonly {}, appendfsync {}",
        read("appendonly")?,
        read("appendfsync")?
    ))
}

/// Starts `nodes` collab nodes on `redis_url` and creates a notebook titled `title`.
pub async fn tandem_cluster(
    bin: &Path,
    redis_url: &str,
    nodes: usize,
    title: &str,
    verbose: bool,
) -> Result<Target> {
    if nodes == 0 {
        bail!("a cluster needs at least one collab node");
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("tandem-bench-{}-{nanos}", std::process::id());
    let data = tempfile::tempdir().context("creating a data folder")?;
    let store_args: Vec<&OsStr> = vec![
        "--data".as_ref(),
        data.path().as_os_str(),
        "--redis-url".as_ref(),
        redis_url.as_ref(),
        "--redis-prefix".as_ref(),
        prefix.as_ref(),
    ];
    let mut children = Vec::new();
    let mut urls = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..nodes {
        let mut args: Vec<&OsStr> = vec!["collab".as_ref()];
        args.extend(&store_args);
        args.extend(super::UNLIMITED_CONNECTIONS.map(OsStr::new));
        let (child, addr) = spawn_tandem(bin, &args, verbose).await?;
        pids.push(
            child
                .id()
                .context("a collab node exited right after starting")?,
        );
        children.push(child);
        urls.push(format!("http://{addr}"));
    }
    let output = Command::new(bin)
        .args(["token", "create"])
        .args(&store_args)
        .args(["--email", "bench@example.com", "--name", "Bench"])
        .output()
        .await
        .context("running tandem token create")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let token = match stdout.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(token) if output.status.success() => token.to_owned(),
        _ => bail!(
            "tandem token create failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    };
    let mut ws_bases = Vec::new();
    let mut room = None;
    for url in &urls {
        let client = Client::new(url, &token)?;
        wait_healthy(&client).await?;
        ws_bases.push(client.ws_base()?);
        if room.is_none() {
            let notebook = client
                .create_notebook(title, None)
                .await
                .context("creating the bench notebook via POST /api/notebooks")?;
            room = Some(notebook.id);
        }
    }
    pids.extend(redis_pid(redis_url)?);
    Ok(Target {
        name: format!(
            "Tandem, {nodes} collab node{} on Redis",
            if nodes == 1 { "" } else { "s" }
        ),
        ws_bases,
        room: room.context("no node")?,
        token: Some(token),
        pids,
        _guard: Guard::Cluster {
            _nodes: Nodes {
                children,
                _data: data,
                redis_url: redis_url.to_owned(),
                prefix,
            },
        },
    })
}
