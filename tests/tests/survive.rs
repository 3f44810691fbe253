//! Runtimes that survive a collab node's death (issue 14, part 2): two `tandem collab` nodes
//! and one `tandem runtime` given both (`--collab-url A,B`) on one Redis.
//!
//! - SIGKILL the collab node the runtime's session joined through, while a cell runs and
//!   while the kernel is idle: the session rejoins through the other node, keeping its kernel
//!   (`v = 41`, then `print(v + 1)` through the surviving node prints 42) and the running
//!   cell's output, written while it was away, arrives.
//! - A runtime given only the node that dies cannot rejoin: after `--collab-reconnect-timeout`
//!   its session ends the kernel, and the surviving node shows the kernel dead with a reason.
//! - SIGKILL every runtime node: the collab node with the notebook open marks the kernel dead
//!   within the lease's lifetime; a new runtime node then runs the notebook again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_client::DocConnection;
use tandem_crdt::Notebook;
use tandem_tests::cluster::Cluster;
use tandem_tests::notebook::code_cell;
use tandem_tests::require_kernel_venv;

/// The lease lives 10 s and collab nodes scan for expired ones each second; generous.
const DEAD_WITHIN: Duration = Duration::from_secs(30);

/// How long outputs may take to show (a sandboxed kernel's start included).
const OUTPUT_WITHIN: Duration = Duration::from_secs(120);

/// Executes `cells` through `url`, retrying while no runtime node is there yet (503).
async fn execute(url: &str, token: &str, id: &str, cells: &[&str]) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = http
            .post(format!("{url}/api/notebooks/{id}/execute"))
            .bearer_auth(token)
            .json(&json!({"cell_ids": cells}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        match status {
            202 => return,
            503 if Instant::now() < deadline => {}
            other => panic!("execute answered {other}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn cell(doc: &yrs::Doc, id: &str) -> Value {
    let nb = Notebook::from_doc(doc.clone()).to_ipynb();
    nb["cells"]
        .as_array()
        .and_then(|cells| cells.iter().find(|c| c["id"] == id).cloned())
        .unwrap_or(Value::Null)
}

/// All the text a cell's outputs hold (streams and plain-text results).
fn text_of(doc: &yrs::Doc, id: &str) -> String {
    let cell = cell(doc, id);
    let mut out = String::new();
    for output in cell["outputs"].as_array().into_iter().flatten() {
        match &output["text"] {
            Value::String(s) => out.push_str(s),
            Value::Array(lines) => lines
                .iter()
                .filter_map(Value::as_str)
                .for_each(|l| out.push_str(l)),
            _ => {}
        }
        if let Some(ename) = output["ename"].as_str() {
            out.push_str(ename);
        }
    }
    out
}

fn kernel(observer: &DocConnection) -> Value {
    Notebook::from_doc(observer.doc().clone())
        .state_value("kernel")
        .unwrap_or(Value::Null)
}

/// Waits until cell `id` has finished a run (a count, idle) and its outputs contain `text`.
async fn wait_output(observer: &DocConnection, id: &str, text: &str) {
    let shown = observer
        .wait_until(
            |doc| {
                let c = cell(doc, id);
                !c["execution_count"].is_null() && text_of(doc, id).contains(text)
            },
            OUTPUT_WITHIN,
        )
        .await;
    assert!(
        shown.is_ok(),
        "cell {id} never showed {text:?}: {:#} / kernel {:#}",
        cell(observer.doc(), id),
        kernel(observer)
    );
}

struct Setup {
    cluster: Cluster,
    token: String,
    id: String,
    observer: DocConnection,
}

/// Collab nodes 0 and 1, a runtime given both (it joins through 0), a notebook with
/// `v = 41`, a cell that prints, sleeps and prints, and `print(v + 1)`; an observer on 1.
async fn setup() -> Setup {
    setup_with_runtime(&[0, 1], &[]).await
}

/// [`setup`] with the runtime given the collab nodes `via` and the flags `extra`.
async fn setup_with_runtime(via: &[usize], extra: &[&str]) -> Setup {
    require_kernel_venv().unwrap();
    let mut cluster = Cluster::new().unwrap();
    cluster.start_collab(&[]).await.unwrap();
    cluster.start_collab(&[]).await.unwrap();
    cluster.start_runtime_via(via, extra).await.unwrap();
    let token = cluster.token_for("ada@example.com").await.unwrap();
    let cells = json!([
        code_cell("define", "v = 41"),
        code_cell(
            "slow",
            "import time\nprint('before', flush=True)\ntime.sleep(5)\nprint('after')"
        ),
        code_cell("use", "print(v + 1)"),
    ]);
    let notebook = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells});
    let client = tandem_client::Client::new(&cluster.collabs[1].http_url(), &token).unwrap();
    let id = client
        .create_notebook("survive", Some(notebook))
        .await
        .unwrap()
        .id;
    let observer = DocConnection::connect(&cluster.collabs[1].ws_url(), &id, Some(&token))
        .await
        .unwrap();
    observer.synced().await.unwrap();
    Setup {
        cluster,
        token,
        id,
        observer,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cell_running_when_its_collab_node_dies_finishes_and_the_kernel_lives_on() {
    let Setup {
        mut cluster,
        token,
        id,
        observer,
    } = setup().await;
    let survivor = cluster.collabs[1].http_url();
    execute(&survivor, &token, &id, &["define"]).await;
    wait_output(&observer, "define", "").await;

    execute(&survivor, &token, &id, &["slow"]).await;
    let started = observer
        .wait_until(|doc| text_of(doc, "slow").contains("before"), OUTPUT_WITHIN)
        .await;
    assert!(started.is_ok(), "{:#}", cell(observer.doc(), "slow"));
    // The runtime's session joined through node 0 (the first URL it was given).
    cluster.collabs[0].kill_9().unwrap();

    // What the cell printed while its session looked for a node arrives; so does the rest.
    wait_output(&observer, "slow", "after").await;
    let slow = cell(observer.doc(), "slow");
    assert_eq!(slow["execution_count"], 2, "{slow:#}");

    // The kernel is the same one: `v` is still there.
    execute(&survivor, &token, &id, &["use"]).await;
    wait_output(&observer, "use", "42").await;
    assert_eq!(
        kernel(&observer)["status"],
        "idle",
        "{:#}",
        kernel(&observer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kernel_survives_its_collab_node_and_dies_visibly_with_every_runtime() {
    let Setup {
        mut cluster,
        token,
        id,
        observer,
    } = setup().await;
    let survivor = cluster.collabs[1].http_url();
    execute(&survivor, &token, &id, &["define"]).await;
    wait_output(&observer, "define", "").await;

    // Idle: kill the node the session joined through, then use the variable.
    cluster.collabs[0].kill_9().unwrap();
    execute(&survivor, &token, &id, &["use"]).await;
    wait_output(&observer, "use", "42").await;

    // Every runtime node dies: the collab node with the notebook open marks the kernel dead.
    cluster.runtimes[0].kill_9().unwrap();
    let state = wait_dead(&observer, Instant::now(), "the last runtime's SIGKILL").await;
    assert!(
        state["reason"]
            .as_str()
            .is_some_and(|r| r.contains("stopped")),
        "{state:#}"
    );
    assert_eq!(state["queue"], json!([]), "{state:#}");

    // A new runtime node runs the notebook again, in a fresh kernel.
    cluster.start_runtime_via(&[1], &[]).await.unwrap();
    execute(&survivor, &token, &id, &["define", "use"]).await;
    observer
        .wait_until(
            |doc| cell(doc, "use")["execution_count"] == 2 && text_of(doc, "use").contains("42"),
            OUTPUT_WITHIN,
        )
        .await
        .unwrap_or_else(|_| panic!("{:#}", cell(observer.doc(), "use")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_cannot_rejoin_within_its_timeout_ends_the_kernel_visibly() {
    let Setup {
        mut cluster,
        token,
        id,
        observer,
    } = setup_with_runtime(&[0], &["--collab-reconnect-timeout", "2s"]).await;
    let survivor = cluster.collabs[1].http_url();
    execute(&survivor, &token, &id, &["define"]).await;
    wait_output(&observer, "define", "").await;
    let metrics = cluster.runtimes[0].http_url();
    let http = reqwest::Client::new();
    wait_gauges(&http, &metrics, (1.0, 1.0)).await;

    // The only node this runtime knows dies; it retries for 2 s, then gives the kernel up.
    cluster.collabs[0].kill_9().unwrap();
    let state = wait_dead(&observer, Instant::now(), "its collab node's SIGKILL").await;
    assert!(
        state["reason"]
            .as_str()
            .is_some_and(|r| r.contains("lost the notebook")),
        "{state:#}"
    );
    // The runtime node lives on, without the kernel: it was ended, not left running unseen.
    assert!(cluster.runtimes[0].is_running());
    wait_gauges(&http, &metrics, (0.0, 0.0)).await;
}

/// Waits (the gauges are refreshed each second) until the runtime node at `url` counts
/// `(kernels, sessions)`.
async fn wait_gauges(http: &reqwest::Client, url: &str, expected: (f64, f64)) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counts = (
            gauge(http, url, "tandem_runtime_kernels").await,
            gauge(http, url, "tandem_runtime_sessions").await,
        );
        if counts == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "(kernels, sessions) on the runtime node: {counts:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of the unlabelled sample `name` on a runtime node's `/metrics`.
async fn gauge(http: &reqwest::Client, url: &str, name: &str) -> f64 {
    let samples = tandem_tests::cluster::scrape_metrics(http, url)
        .await
        .unwrap_or_else(|err| panic!("{err:#}"));
    samples
        .iter()
        .find(|(series, _)| series == name)
        .unwrap_or_else(|| panic!("no {name} in {samples:?}"))
        .1
}

/// Waits until the observer sees the kernel dead (at most [`DEAD_WITHIN`] after `since`,
/// when `what` happened) and returns `state.kernel` then.
async fn wait_dead(observer: &DocConnection, since: Instant, what: &str) -> Value {
    let dead = observer
        .wait_until(
            |doc| {
                Notebook::from_doc(doc.clone())
                    .state_value("kernel")
                    .is_some_and(|k| k["status"] == "dead")
            },
            DEAD_WITHIN,
        )
        .await;
    let state = kernel(observer);
    assert!(dead.is_ok(), "not dead after {DEAD_WITHIN:?}: {state:#}");
    eprintln!("kernel dead {:?} after {what}", since.elapsed());
    state
}
