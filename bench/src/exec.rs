//! The execution scenario: Tandem's runtime against a stock ipykernel, side by side.
//!
//! Tandem is measured as a collaborator sees it: cells run through `POST
//! /api/notebooks/{id}/execute`, and every time stops when a *second* document client (the
//! observer, a [`DocConnection`] that only reads) has the result in its copy of the notebook. So
//! Tandem's numbers include the HTTP request, the runtime's kernel, the collab service and the
//! CRDT update travelling to another client. ipykernel's numbers come from
//! `bench/python/ipykernel_bench.py`, a jupyter_client `KernelManager` talking to the kernel
//! directly over ZMQ, with no collaboration at all.
//!
//! Measured on each:
//! - cold start: Tandem, from the notebook's first execute request (no kernel running for it)
//!   until the observer sees `1+1`'s result `2`; ipykernel, from `start_kernel()` until the
//!   `kernel_info` reply.
//! - `1+1`: `runs` executions of the same cell, each from the request until the result (Tandem:
//!   the observer sees the next execution count with result `2`).
//! - `for i in range(N): print(i)`: from the request until the last line has arrived (Tandem: the
//!   observer's stream text ends with it); the whole text is then checked.
//!
//! The ipykernel side (`exec/ipykernel.rs`) runs in a venv the bench makes on demand in
//! `target/bench-venv` from `/usr/bin/python3.11` and `bench/python/requirements.txt`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::{Client, ConnectOptions, DocConnection};
use tandem_crdt::{Cell, Notebook};
use tokio::process::Child;

use crate::target::{self, TandemSource};

mod ipykernel;
pub mod sandbox;

/// The cell timed for cold start and `1+1` latency.
const ONE_PLUS_ONE: &str = "one-plus-one";
/// The cell that prints `prints` lines.
const PRINTS: &str = "prints";
/// Longest wait for a kernel to start and answer the first `1+1`.
const COLD_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for one `1+1`.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the print loop to be delivered.
const PRINTS_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a spawned server may take to stop its kernels after SIGTERM before it is killed.
/// A killed server leaves its kernels (own process groups) behind, so it is asked first.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The execution scenario's knobs.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// Timed `1+1` executions after the first.
    pub runs: usize,
    /// Lines the print loop prints.
    pub prints: u64,
    /// Pause between the server being up and the first execute, as on a server that has been
    /// running for a while (a runtime may keep a warm spare kernel).
    pub settle: Duration,
    /// The kernel venv of a spawned Tandem (`--venv`).
    pub kernel_venv: PathBuf,
    /// Echo the spawned Tandem server's output.
    pub verbose: bool,
}

/// What one system measured.
#[derive(Debug, Clone)]
pub struct ExecResult {
    /// The system's name in the report.
    pub system: String,
    /// Tandem: first execute until the result is visible; ipykernel: start until ready.
    pub cold_start: Duration,
    /// Every timed `1+1`, in microseconds, sorted.
    pub one_plus_one_us: Vec<u64>,
    /// Lines the print loop printed.
    pub prints: u64,
    /// Request until the last printed line arrived.
    pub prints_time: Duration,
    /// What else a reader needs to interpret the row.
    pub note: String,
}

/// Runs the scenario on Tandem, then on ipykernel.
pub async fn run(source: &TandemSource, config: &ExecConfig) -> Vec<(String, Result<ExecResult>)> {
    eprintln!("running exec / Tandem ...");
    let tandem = tandem(source, config).await;
    eprintln!("running exec / ipykernel ...");
    let ipykernel = ipykernel::run(config).await;
    vec![("Tandem".into(), tandem), ("ipykernel".into(), ipykernel)]
}

/// The workspace root, where `bench/python` and `target/` are.
fn workspace() -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).to_path_buf()
}

/// The kernel venv when neither `--kernel-venv` nor `TANDEM_VENV` names one.
pub fn default_kernel_venv() -> PathBuf {
    workspace().join(".venv-kernel")
}

/// A spawned `tandem serve` with its folders; stopped with SIGTERM so it shuts its kernels down.
struct Spawned {
    child: Child,
    _data: tempfile::TempDir,
    _kernels: tempfile::TempDir,
}

impl Spawned {
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            terminate(pid);
            if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
            eprintln!("  tandem did not stop within {STOP_TIMEOUT:?} of SIGTERM; killing it");
        }
        let _ = self.child.kill().await;
    }
}

/// Sends SIGTERM to `pid`.
#[allow(unsafe_code)]
fn terminate(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory preconditions; `pid` is our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

async fn tandem(source: &TandemSource, config: &ExecConfig) -> Result<ExecResult> {
    tandem_with(source, config, &[], false)
        .await
        .map(|(result, _)| result)
}

/// [`tandem`] with extra `tandem serve` flags; with `measure_memory`, also the resident memory
/// of everything the server started (its kernels, their sandboxes and network helpers) once
/// the runs are done and the kernel idles, in bytes.
pub async fn tandem_with(
    source: &TandemSource,
    config: &ExecConfig,
    flags: &[&str],
    measure_memory: bool,
) -> Result<(ExecResult, Option<u64>)> {
    let (base_url, token, spawned) = match source {
        TandemSource::Attach { url, token, .. } => (url.clone(), token.clone(), None),
        TandemSource::Spawn(bin) => {
            let python = config.kernel_venv.join("bin").join("python");
            if !python.exists() {
                bail!(
                    "no kernel venv at {}: run scripts/setup-python (or pass --kernel-venv)",
                    config.kernel_venv.display()
                );
            }
            let data = tempfile::tempdir().context("creating a data folder")?;
            let kernels = tempfile::tempdir().context("creating a kernel folder")?;
            let mut extra: Vec<&std::ffi::OsStr> = vec![
                "--kernel-dir".as_ref(),
                kernels.path().as_os_str(),
                "--venv".as_ref(),
                config.kernel_venv.as_os_str(),
            ];
            extra.extend(flags.iter().map(std::ffi::OsStr::new));
            let (child, addr) =
                target::spawn_serve(bin, data.path(), &extra, config.verbose).await?;
            let token = target::create_token(bin, data.path()).await?;
            let spawned = Spawned {
                child,
                _data: data,
                _kernels: kernels,
            };
            (format!("http://{addr}"), token, Some(spawned))
        }
    };
    let result = measure_tandem(&base_url, &token, config).await;
    let memory = match (&spawned, measure_memory) {
        (Some(spawned), true) => {
            // Idle: let the kernel finish whatever followed the last cell.
            tokio::time::sleep(Duration::from_secs(1)).await;
            spawned.child.id().map(crate::sys::descendants_rss)
        }
        _ => None,
    };
    if let Some(spawned) = spawned {
        spawned.stop().await;
    }
    result.map(|result| (result, memory))
}

async fn measure_tandem(base_url: &str, token: &str, config: &ExecConfig) -> Result<ExecResult> {
    let client = Client::new(base_url, token)?;
    target::wait_healthy(&client).await?;
    let up_at = Instant::now();
    let notebook = client
        .create_notebook("bench-exec", Some(bench_notebook(config.prints)))
        .await
        .context("creating the bench notebook via POST /api/notebooks")?;
    let options = ConnectOptions {
        token: Some(token.to_owned()),
        doc: None,
        ..ConnectOptions::default()
    };
    let observer = DocConnection::connect_with(&client.ws_base()?, &notebook.id, options)
        .await
        .context("connecting the observer")?;
    tokio::time::timeout(RUN_TIMEOUT, observer.synced())
        .await
        .context("the observer's initial sync timed out")??;
    let view = Notebook::from_doc(observer.doc().clone());
    if cell(&view, ONE_PLUS_ONE).is_none() || cell(&view, PRINTS).is_none() {
        bail!("the imported notebook lacks the bench cells; the observer sees {view:?}");
    }
    tokio::time::sleep(config.settle.saturating_sub(up_at.elapsed())).await;

    let exec = Executor {
        client: &client,
        notebook: &notebook.id,
        observer: &observer,
        view: &view,
    };
    let mut requests_us = Vec::with_capacity(config.runs + 1);
    let first_after = up_at.elapsed();
    let (cold_start, request, mut count) = exec
        .one_plus_one(0, COLD_TIMEOUT)
        .await
        .context("first execute (kernel cold start)")?;
    requests_us.push(request);
    let mut latencies = Vec::with_capacity(config.runs);
    for run in 0..config.runs {
        let (took, request, next) = exec
            .one_plus_one(count, RUN_TIMEOUT)
            .await
            .with_context(|| format!("1+1 run {}", run + 1))?;
        latencies.push(took.as_micros() as u64);
        requests_us.push(request);
        count = next;
    }
    latencies.sort_unstable();
    requests_us.sort_unstable();

    let updates_before = observer.updates_received();
    let (prints_time, text) = exec.prints(config.prints).await.context("the print loop")?;
    let updates = observer.updates_received() - updates_before;
    let expected = expected_prints(config.prints);
    if text != expected {
        bail!(
            "the observer's stream text differs from 0..{}: {} bytes, expected {}, ends with {:?}",
            config.prints - 1,
            text.len(),
            expected.len(),
            tail(&text, 20)
        );
    }
    observer.close().await;
    Ok(ExecResult {
        system: "Tandem".into(),
        cold_start,
        one_plus_one_us: latencies,
        prints: config.prints,
        prints_time,
        note: format!(
            "HTTP execute → runtime → collab → second client's document; first execute {:.1} s \
             after the server was up; execute answered in {:.2} ms p50; the print loop's \
             {} bytes reached the observer in {updates} document updates",
            first_after.as_secs_f64(),
            crate::report::percentile(&requests_us, 50.0) as f64 / 1000.0,
            text.len(),
        ),
    })
}

/// Runs cells through the HTTP API and watches them in the observer's document.
struct Executor<'a> {
    client: &'a Client,
    notebook: &'a str,
    observer: &'a DocConnection,
    view: &'a Notebook,
}

impl Executor<'_> {
    /// `POST /api/notebooks/{id}/execute` for one cell; returns how long the request took.
    async fn execute(&self, cell_id: &str) -> Result<Duration> {
        let start = Instant::now();
        let path = format!("api/notebooks/{}/execute", self.notebook);
        self.client
            .send_json(Method::POST, &path, Some(json!({ "cell_ids": [cell_id] })))
            .await
            .with_context(|| format!("POST {path}"))?;
        Ok(start.elapsed())
    }

    /// Runs `1+1` and waits until the observer sees an execution count above `after` with the
    /// result `2`. Returns the time from the request, the request's own time in µs, and the
    /// new count.
    async fn one_plus_one(&self, after: i64, timeout: Duration) -> Result<(Duration, u64, i64)> {
        let start = Instant::now();
        let request = self.execute(ONE_PLUS_ONE).await?;
        let mut count = after;
        let waited = self
            .observer
            .wait_until(
                |_| match cell(self.view, ONE_PLUS_ONE) {
                    Some(c) if c.execution_count > Some(after) => {
                        count = c.execution_count.unwrap_or(after);
                        result_text(&c).as_deref() == Some("2")
                    }
                    _ => false,
                },
                timeout,
            )
            .await;
        let took = start.elapsed();
        if let Err(error) = waited {
            bail!(
                "{error}: the observer's cell is {:?}; state.kernel is {:?}",
                cell(self.view, ONE_PLUS_ONE),
                self.view.state_value("kernel")
            );
        }
        Ok((took, request.as_micros() as u64, count))
    }

    /// Runs the print loop and waits until the observer's stream text ends with its last line.
    /// Returns the time from the request and the whole text.
    async fn prints(&self, lines: u64) -> Result<(Duration, String)> {
        let last = format!("{}\n", lines.saturating_sub(1));
        let start = Instant::now();
        self.execute(PRINTS).await?;
        let mut text = String::new();
        let waited = self
            .observer
            .wait_until(
                |_| {
                    text = cell(self.view, PRINTS).map_or_else(String::new, |c| stream_text(&c));
                    text.ends_with(&last)
                },
                PRINTS_TIMEOUT,
            )
            .await;
        let took = start.elapsed();
        if let Err(error) = waited {
            bail!(
                "{error}: the observer has {} bytes of stream text ending {:?}; state.kernel is {:?}",
                text.len(),
                tail(&text, 40),
                self.view.state_value("kernel")
            );
        }
        Ok((took, text))
    }
}

/// The notebook the bench imports: the `1+1` cell and the print loop.
fn bench_notebook(prints: u64) -> Value {
    let code = |id: &str, source: String| {
        json!({"id": id, "cell_type": "code", "metadata": {}, "source": source,
               "outputs": [], "execution_count": null})
    };
    json!({
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            code(ONE_PLUS_ONE, "1+1".into()),
            code(PRINTS, format!("for i in range({prints}): print(i)")),
        ],
    })
}

fn cell(view: &Notebook, id: &str) -> Option<Cell> {
    view.cells().into_iter().find(|c| c.id == id)
}

/// The `text/plain` of a cell's `execute_result`, as a string or nbformat's list of lines.
fn result_text(cell: &Cell) -> Option<String> {
    let output = cell
        .outputs
        .iter()
        .find(|o| o["output_type"] == "execute_result")?;
    multiline(&output["data"]["text/plain"])
}

/// The cell's stdout stream text, all stream outputs joined.
fn stream_text(cell: &Cell) -> String {
    cell.outputs
        .iter()
        .filter(|o| o["output_type"] == "stream" && o["name"] == "stdout")
        .filter_map(|o| multiline(&o["text"]))
        .collect()
}

/// nbformat's multiline string: a string, or a list of strings to join.
fn multiline(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(lines) => Some(lines.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn expected_prints(lines: u64) -> String {
    (0..lines).map(|i| format!("{i}\n")).collect()
}

fn tail(text: &str, chars: usize) -> &str {
    let start = text
        .char_indices()
        .rev()
        .nth(chars.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_crdt::ImportLimits;

    #[test]
    fn the_bench_notebook_imports_with_its_cell_ids() {
        let text = bench_notebook(10).to_string();
        let notebook = Notebook::from_ipynb_str(&text, &ImportLimits::default()).unwrap();
        assert_eq!(notebook.cell_ids(), vec![ONE_PLUS_ONE, PRINTS]);
        assert_eq!(
            cell(&notebook, PRINTS).unwrap().source,
            "for i in range(10): print(i)"
        );
    }

    #[test]
    fn reads_results_and_streams_in_both_shapes() {
        let mut c = cell(
            &Notebook::from_ipynb_str(&bench_notebook(3).to_string(), &ImportLimits::default())
                .unwrap(),
            ONE_PLUS_ONE,
        )
        .unwrap();
        assert_eq!(result_text(&c), None);
        c.outputs = vec![
            json!({"output_type": "stream", "name": "stdout", "text": "0\n1\n"}),
            json!({"output_type": "stream", "name": "stderr", "text": "oops\n"}),
            json!({"output_type": "stream", "name": "stdout", "text": ["2", "\n"]}),
            json!({"output_type": "execute_result", "data": {"text/plain": ["2"]},
                   "metadata": {}, "execution_count": 1}),
        ];
        assert_eq!(result_text(&c).as_deref(), Some("2"));
        assert_eq!(stream_text(&c), expected_prints(3));
    }

    #[test]
    fn tails_by_characters() {
        assert_eq!(tail("héllo", 3), "llo");
        assert_eq!(tail("hi", 10), "hi");
        assert_eq!(tail("", 3), "");
    }
}
