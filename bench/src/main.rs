//! `tandem-bench`: a load generator for y-websocket servers, run against Tandem and the Node
//! reference server (`y-websocket@2`'s `bin/server.cjs`) in the same invocation.
//!
//! Scenarios:
//! - `typing`: N clients in one notebook, each appending small inserts to a shared Y.Text at a
//!   set rate. Reports delivered updates/s, p50/p99/max delivery latency (local edit → arrival
//!   at every other client), server CPU seconds per 1,000 delivered updates, and server memory.
//! - `idle`: M idle connections to one notebook; reports the server's memory.
//! - `presence` (not run by default): one typist and `--watchers` others (199 and 499 by
//!   default) in one notebook, with presence kept as browsers keep it (names, the typist's
//!   cursor with each edit, 15 s renewals, stock clients' echo of awareness changes); the
//!   typing columns plus the awareness frames each watcher receives per 15 s renewal cycle.
//! - `exec` (not run by default): code execution, Tandem's runtime against a stock ipykernel
//!   driven by jupyter_client, in one run: kernel cold start / first execute, `1+1` p50/p99, and
//!   100k printed lines, Tandem's timed until a second client's document shows the result.
//!   `--targets` does not apply: it always measures Tandem and ipykernel.
//!
//! It prints a markdown table (with the exact command) to paste into `docs/benchmarks.md`.
//!
//! # Running
//! ```text
//! cargo build --release -p tandem -p tandem-bench
//! TANDEM_NODE_MODULES=$PWD/tests/interop/node_modules \
//!   target/release/tandem-bench --clients 20 --rate 20 --duration 10s --warmup 2s --idle 10000
//! ```
//! Tandem is spawned as `tandem serve --data <tmp> --listen 127.0.0.1:0` from `--tandem-bin`
//! (default: the `tandem` next to this binary), with a token from `tandem token create`; or use
//! a running server with `--tandem-url`, `--tandem-pid` and `--token`. The bench raises its
//! open-file limit for the idle scenario and servers it spawns inherit it; a server started by
//! hand needs `ulimit -n 20000` (or more) in its own shell.
//!
//! Scaled out: `--collab-nodes 1,2,3` runs Tandem as that many `tandem collab` processes on
//! one Redis (`--redis-url`, keys under a prefix of the run's own, deleted after), once per
//! count, with the clients spread over the nodes round-robin; the table then has the p99 of
//! deliveries between clients of different nodes, and CPU and memory include Redis's when it
//! runs on this machine:
//! ```text
//! redis-server --port 6390 --appendonly yes --appendfsync always --dir /tmp/bench-redis &
//! target/release/tandem-bench --scenarios typing --clients 50 --rate 20 \
//!   --collab-nodes 1,2,3 --redis-url redis://127.0.0.1:6390
//! ```
//!
//! The execution benchmark:
//! ```text
//! scripts/setup-python            # the kernel venv Tandem's kernels run in (.venv-kernel)
//! cargo build --release -p tandem -p tandem-bench
//! target/release/tandem-bench --scenarios exec
//! ```
//! A spawned Tandem gets `--kernel-dir <tmp> --venv <--kernel-venv>`. The ipykernel side runs
//! `bench/python/ipykernel_bench.py` in `target/bench-venv`, which the bench creates from
//! `/usr/bin/python3.11` and `bench/python/requirements.txt` when missing or out of date.
//!
//! # Layout
//! - `target.rs`: starting (or attaching to) the servers under test.
//! - `typing.rs`, `idle.rs`, `exec.rs`: the scenarios (`exec.rs` drives
//!   `bench/python/ipykernel_bench.py` for its ipykernel side, in `exec/ipykernel.rs`).
//! - `sys.rs`: `/proc` readings and the open-file limit.
//! - `report.rs`: the markdown table.

mod exec;
mod idle;
mod report;
mod sys;
mod target;
mod typing;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use exec::ExecConfig;
use report::Row;
use target::TandemSource;
use typing::TypingConfig;

/// Load generator: N clients typing into one notebook, against Tandem and the y-websocket
/// reference server; prints a markdown table.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Servers to run against, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "tandem,node")]
    targets: Vec<TargetKind>,
    /// Scenarios to run on each server, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "typing,idle")]
    scenarios: Vec<Scenario>,
    /// Typing clients in the notebook.
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Edits per second per typing client.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Measured typing time (`10s`, `500ms`, `1m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Typing before measuring starts.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Longest wait for the last edits after typing stops.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
    /// Watchers beside the one typist in the presence scenario, one run per count,
    /// comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "199,499")]
    watchers: Vec<usize>,
    /// Edits per second of the presence scenario's typist.
    #[arg(long, default_value_t = 10.0)]
    presence_rate: f64,
    /// Idle connections to open in the idle scenario.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Timed `1+1` executions in the exec scenario (after the first, which times cold start).
    #[arg(long, default_value_t = 100)]
    exec_runs: usize,
    /// Lines the exec scenario's print loop prints.
    #[arg(long, default_value_t = 100_000)]
    exec_prints: u64,
    /// Wait between a spawned Tandem being up and its first execute, as on a server that has
    /// been running a while.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    exec_settle: Duration,
    /// The kernel venv for a spawned Tandem (default: `.venv-kernel` in the workspace, made by
    /// `scripts/setup-python`).
    #[arg(long, env = "TANDEM_VENV")]
    kernel_venv: Option<PathBuf>,
    /// The `tandem` binary to spawn (default: the one next to this binary).
    #[arg(long, env = "TANDEM_BIN")]
    tandem_bin: Option<PathBuf>,
    /// Run Tandem as this many collab nodes on Redis instead of `tandem serve`, once per
    /// count, comma-separated (`1,2,3`).
    #[arg(long, value_delimiter = ',', conflicts_with = "tandem_url")]
    collab_nodes: Vec<usize>,
    /// The Redis of `--collab-nodes`.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Use this running Tandem server instead of spawning one (`http://HOST:PORT`).
    #[arg(long, requires_all = ["tandem_pid", "token"])]
    tandem_url: Option<String>,
    /// The process id of the server at `--tandem-url`, for its CPU time and memory.
    #[arg(long)]
    tandem_pid: Option<u32>,
    /// A personal access token for the server at `--tandem-url`.
    #[arg(long)]
    token: Option<String>,
    /// The node_modules folder holding `y-websocket@2`.
    #[arg(long, env = "TANDEM_NODE_MODULES")]
    node_modules: Option<PathBuf>,
    /// Also write the markdown to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Echo the spawned Tandem server's output.
    #[arg(long)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    /// Tandem (`tandem serve`).
    Tandem,
    /// The Node reference server, `y-websocket@2`'s `bin/server.cjs`.
    Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Clients typing at a set rate.
    Typing,
    /// Idle connections.
    Idle,
    /// One typist and many watchers, with presence as browsers keep it.
    Presence,
    /// Code execution, Tandem against ipykernel (not per target).
    Exec,
    /// The kernel sandbox's cost: sandboxed against `--kernel-sandbox off` (not per target).
    Sandbox,
}

/// The exec and sandbox scenarios' knobs, from the command line.
fn exec_config(args: &Args) -> ExecConfig {
    ExecConfig {
        runs: args.exec_runs,
        prints: args.exec_prints,
        settle: args.exec_settle,
        kernel_venv: args
            .kernel_venv
            .clone()
            .unwrap_or_else(exec::default_kernel_venv),
        verbose: args.verbose,
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // Each connection costs the bench one descriptor and the server another; spawned servers
    // inherit this limit.
    let most_watchers = args.watchers.iter().copied().max().unwrap_or(0);
    let wanted = args.idle.max(args.clients).max(most_watchers) as u64 + 1024;
    let limit = sys::raise_nofile_limit(wanted)?;
    if args.scenarios.contains(&Scenario::Idle) && limit < wanted {
        eprintln!(
            "warning: open-file limit is {limit}, below the {wanted} the idle scenario needs"
        );
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut runs = Vec::new();
    for kind in &args.targets {
        if *kind == TargetKind::Tandem && !args.collab_nodes.is_empty() {
            runs.extend(args.collab_nodes.iter().map(|n| (*kind, Some(*n))));
        } else {
            runs.push((*kind, None));
        }
    }
    for (kind, nodes) in runs {
        let per_target = |s: &&Scenario| !matches!(**s, Scenario::Exec | Scenario::Sandbox);
        for scenario in args.scenarios.iter().filter(per_target) {
            let sizes: Vec<Option<usize>> = match scenario {
                Scenario::Presence => args.watchers.iter().copied().map(Some).collect(),
                _ => vec![None],
            };
            for watchers in sizes {
                let on = nodes.map_or(String::new(), |n| format!(" on {n} collab node(s)"));
                let with = watchers.map_or(String::new(), |w| format!(" with {w} watchers"));
                eprintln!("running {kind:?}{on} / {scenario:?}{with} ...");
                match run_one(&args, (kind, nodes), *scenario, watchers).await {
                    Ok(row) => {
                        eprintln!("  {}", row.note);
                        rows.push(row);
                    }
                    Err(error) => {
                        eprintln!("  failed: {error:#}");
                        failures.push(format!("{kind:?}{on} / {scenario:?}{with}: {error:#}"));
                    }
                }
            }
        }
    }

    let mut exec_results = Vec::new();
    if args.scenarios.contains(&Scenario::Exec) {
        let config = exec_config(&args);
        for (system, result) in exec::run(&tandem_source(&args)?, &config).await {
            match result {
                Ok(result) => {
                    eprintln!("  {}", result.note);
                    exec_results.push(result);
                }
                Err(error) => {
                    eprintln!("  failed: {error:#}");
                    failures.push(format!("{system} / Exec: {error:#}"));
                }
            }
        }
    }

    let mut sandbox_rows = Vec::new();
    if args.scenarios.contains(&Scenario::Sandbox) {
        let config = exec_config(&args);
        for row in exec::sandbox::run(&tandem_source(&args)?, &config).await {
            match row {
                Ok(row) => sandbox_rows.push(row),
                Err(error) => failures.push(format!("Sandbox: {error:#}")),
            }
        }
    }

    let mut machine = sys::machine();
    if !args.collab_nodes.is_empty() {
        match target::cluster::redis_persistence(&args.redis_url) {
            Ok(persistence) => machine.push_str(&format!("; Redis 7 on loopback, {persistence}")),
            Err(error) => eprintln!("cannot read Redis's persistence settings: {error:#}"),
        }
    }
    let mut sections = Vec::new();
    if !rows.is_empty() || (exec_results.is_empty() && sandbox_rows.is_empty()) {
        sections.push(report::markdown(&rows, &command, &machine));
    }
    if !exec_results.is_empty() {
        sections.push(report::exec_markdown(&exec_results, &command, &machine));
    }
    if !sandbox_rows.is_empty() {
        sections.push(exec::sandbox::markdown(&sandbox_rows, &command, &machine));
    }
    let markdown = sections.join("\n");
    println!("{markdown}");
    if let Some(path) = &args.output {
        std::fs::write(path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    if !failures.is_empty() {
        bail!("{} run(s) failed:\n{}", failures.len(), failures.join("\n"));
    }
    Ok(())
}

/// Runs one scenario on a fresh server (or a fresh notebook on an attached one); `nodes`: on
/// that many collab nodes on Redis; `watchers`: the presence scenario's size.
async fn run_one(
    args: &Args,
    (kind, nodes): (TargetKind, Option<usize>),
    scenario: Scenario,
    watchers: Option<usize>,
) -> Result<Row> {
    let title = match scenario {
        Scenario::Typing => "bench-typing",
        Scenario::Presence => "bench-presence",
        Scenario::Idle => "bench-idle",
        Scenario::Exec | Scenario::Sandbox => {
            bail!("exec and sandbox are not per-target scenarios")
        }
    };
    let target = match kind {
        TargetKind::Node => {
            let modules = match &args.node_modules {
                Some(path) => path.clone(),
                None => tandem_client::reference::node_modules_from_env()?,
            };
            target::reference(&modules, title).await?
        }
        TargetKind::Tandem => match (nodes, tandem_source(args)?) {
            (Some(nodes), TandemSource::Spawn(bin)) => {
                let url = &args.redis_url;
                target::cluster::tandem_cluster(&bin, url, nodes, title, args.verbose).await?
            }
            (_, source) => target::tandem(&source, title, args.verbose).await?,
        },
    };
    match scenario {
        Scenario::Typing => {
            let config = TypingConfig {
                clients: args.clients,
                rate: args.rate,
                duration: args.duration,
                warmup: args.warmup,
                drain: args.drain,
                typists: args.clients,
                presence: false,
            };
            let result = typing::run(&target, config).await?;
            Ok(Row::typing(&target.name, &config, &result))
        }
        Scenario::Presence => {
            let config = TypingConfig {
                clients: watchers.unwrap_or(199) + 1,
                rate: args.presence_rate,
                duration: args.duration,
                warmup: args.warmup,
                drain: args.drain,
                typists: 1,
                presence: true,
            };
            let result = typing::run(&target, config).await?;
            Ok(Row::typing(&target.name, &config, &result))
        }
        Scenario::Idle => {
            let result = idle::run(&target, args.idle).await?;
            Ok(Row::idle(&target.name, &result))
        }
        Scenario::Exec | Scenario::Sandbox => {
            bail!("exec and sandbox are not per-target scenarios")
        }
    }
}

fn tandem_source(args: &Args) -> Result<TandemSource> {
    if let (Some(url), Some(pid), Some(token)) = (&args.tandem_url, args.tandem_pid, &args.token) {
        return Ok(TandemSource::Attach {
            url: url.clone(),
            pid,
            token: token.clone(),
        });
    }
    let bin = match &args.tandem_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no folder")?
            .join("tandem"),
    };
    if !bin.is_file() {
        bail!(
            "{} not found: build it (cargo build --release -p tandem) or pass --tandem-bin",
            bin.display()
        );
    }
    Ok(TandemSource::Spawn(bin))
}

/// Parses `10s`, `500ms`, `2m`, `1.5s` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {text}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {text} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10 parsecs").is_err());
    }

    #[test]
    fn cli_parses() {
        let args = Args::try_parse_from([
            "tandem-bench",
            "--targets",
            "node",
            "--scenarios",
            "typing",
            "--clients",
            "5",
            "--duration",
            "1s",
        ])
        .unwrap();
        assert_eq!(args.targets, vec![TargetKind::Node]);
        assert_eq!(args.clients, 5);
        assert!(Args::try_parse_from(["tandem-bench", "--tandem-url", "http://x"]).is_err());
        let exec = Args::try_parse_from(["tandem-bench", "--scenarios", "exec"]).unwrap();
        assert_eq!(exec.scenarios, vec![Scenario::Exec]);
        assert_eq!((exec.exec_runs, exec.exec_prints), (100, 100_000));
        let nodes = Args::try_parse_from(["tandem-bench", "--collab-nodes", "1,2,3"]).unwrap();
        assert_eq!(nodes.collab_nodes, vec![1, 2, 3]);
    }
}
