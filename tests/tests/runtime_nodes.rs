//! Runtime nodes scaled out through Redis: two `tandem collab` and two `tandem runtime`
//! processes sharing one Redis (a key prefix of their own). Execution asked of one collab
//! node runs on whichever runtime node takes the notebook, and its outputs reach a client of
//! the other collab node; when that runtime node is SIGKILLed, its kernel shows as dead
//! within seconds and the next execute runs on the other runtime node. A completion asked of
//! the other collab node reaches the kernel through Redis. Also scrapes every node's
//! `/metrics` and `/readyz`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::Notebook;
use tandem_tests::cluster::{Cluster, metric, parse_metrics};
use tandem_tests::require_kernel_venv;

/// The lease's lifetime is 10 s and every runtime node scans for expired leases each second;
/// joining the notebook and writing takes well under a second more.
const DEAD_WITHIN: Duration = Duration::from_secs(20);

/// Execute until a runtime node takes it: 503 while no runtime node has announced itself yet.
async fn execute(http: &reqwest::Client, url: &str, token: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = http
            .post(format!("{url}/api/notebooks/{id}/execute"))
            .bearer_auth(token)
            .json(&json!({"all": true}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            202 => return,
            503 => assert!(
                Instant::now() < deadline,
                "no runtime took the execute: {}",
                response.text().await.unwrap()
            ),
            other => panic!(
                "execute answered {other}: {}",
                response.text().await.unwrap()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ipynb(doc: &DocConnection) -> Value {
    Notebook::from_doc(doc.doc().clone()).to_ipynb()
}

fn kernel_state(doc: &DocConnection) -> Value {
    Notebook::from_doc(doc.doc().clone())
        .state_value("kernel")
        .unwrap_or(Value::Null)
}

/// Waits for the cell to show a working directory other than `previous` (after a fresh
/// kernel's first run: count 1), and returns it.
async fn cwd_output(observer: &DocConnection, previous: Option<&str>) -> PathBuf {
    let shown = observer
        .wait_until(
            |doc| {
                let nb = Notebook::from_doc(doc.clone()).to_ipynb();
                let cell = &nb["cells"][0];
                let text = cell["outputs"][0]["data"]["text/plain"].as_str();
                cell["execution_count"] == 1 && text.is_some() && text != previous
            },
            Duration::from_secs(90),
        )
        .await;
    let nb = ipynb(observer);
    assert!(shown.is_ok(), "no new output: {nb:#}");
    let text = nb["cells"][0]["outputs"][0]["data"]["text/plain"]
        .as_str()
        .unwrap()
        .trim_matches('\'')
        .to_owned();
    PathBuf::from(text)
}

async fn scrape(http: &reqwest::Client, url: &str) -> Vec<(String, f64)> {
    let response = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    parse_metrics(&text).unwrap_or_else(|err| panic!("{err:#}\n{text}"))
}

async fn ready(http: &reqwest::Client, url: &str) -> u16 {
    http.get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runtime_node_leaves_a_dead_kernel_and_the_next_run_moves_to_a_live_node() {
    require_kernel_venv().unwrap();
    let mut cluster = Cluster::new().unwrap();
    let collab = cluster.start_collab(&[]).await.unwrap();
    let other = cluster.start_collab(&[]).await.unwrap();
    // Each runtime node joins notebooks through a different collab node.
    cluster.start_runtime(collab, &[]).await.unwrap();
    cluster.start_runtime(other, &[]).await.unwrap();
    let url = cluster.collabs[collab].http_url();
    let token = cluster.token_for("ada@example.com").await.unwrap();
    let client = Client::new(&url, &token).unwrap();
    let cells = json!([{"id": "c", "cell_type": "code", "source": "import os, uuid\nmarker = uuid.uuid4().hex\nopen(marker, 'w').close()\nos.path.join(os.getcwd(), marker)",
        "metadata": {}, "outputs": [], "execution_count": null}]);
    let notebook = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells});
    let id = client
        .create_notebook("nodes", Some(notebook))
        .await
        .unwrap()
        .id;
    // The observer is a client of the other collab node than the one asked to execute.
    let other_client = Client::new(&cluster.collabs[other].http_url(), &token).unwrap();
    let observer = DocConnection::connect(&other_client.ws_base().unwrap(), &id, Some(&token))
        .await
        .unwrap();
    observer.synced().await.unwrap();
    let http = reqwest::Client::new();

    // The first run goes to whichever runtime node takes it from the unassigned stream.
    execute(&http, &url, &token, &id).await;
    let cwd = cwd_output(&observer, None).await;
    let first_output = ipynb(&observer)["cells"][0]["outputs"][0]["data"]["text/plain"].clone();
    let first = cluster
        .runtime_owning(&cwd)
        .unwrap_or_else(|| panic!("the kernel ran in {cwd:?}, under no runtime node"));

    // Completions reach the node that runs the kernel through Redis, from the other collab
    // node too, and come back to the caller alone.
    let completions = other_client
        .send_json(
            reqwest::Method::POST,
            &format!("api/notebooks/{id}/complete"),
            Some(json!({"code": "os.pa", "cursor": 5})),
        )
        .await
        .unwrap();
    assert!(
        completions["matches"]
            .as_array()
            .is_some_and(|matches| matches.iter().any(|m| m["text"] == "path")),
        "{completions}"
    );

    // Every node answers /readyz and /metrics, and the counters moved.
    assert_eq!(ready(&http, &url).await, 200);
    let collab_metrics = scrape(&http, &url).await;
    assert!(metric(&collab_metrics, "tandem_collab_updates_applied_total").unwrap() >= 1.0);
    let other_metrics = scrape(&http, &cluster.collabs[other].http_url()).await;
    let connections = metric(&collab_metrics, "tandem_collab_connections").unwrap()
        + metric(&other_metrics, "tandem_collab_connections").unwrap();
    assert!(connections >= 2.0, "the observer and the runtime's session");
    assert!(
        metric(
            &collab_metrics,
            "tandem_collab_runtime_calls_total{outcome=\"ok\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(metric(&collab_metrics, "tandem_collab_fanout_seconds_count").unwrap() >= 1.0);
    let runtime_url = cluster.runtimes[first].http_url();
    assert_eq!(ready(&http, &runtime_url).await, 200);
    let runtime_metrics = scrape(&http, &runtime_url).await;
    assert!(metric(&runtime_metrics, "tandem_runtime_executions_total").unwrap() >= 1.0);

    // SIGKILL the owner: within the lease's lifetime a live runtime node (or a collab node
    // with the notebook open) marks the kernel dead.
    cluster.runtimes[first].kill_9().unwrap();
    let killed = Instant::now();
    let dead = observer
        .wait_until(
            |doc| {
                let state = Notebook::from_doc(doc.clone()).state_value("kernel");
                state.is_some_and(|k| k["status"] == "dead")
            },
            DEAD_WITHIN,
        )
        .await;
    let state = kernel_state(&observer);
    assert!(
        dead.is_ok(),
        "kernel not dead after {DEAD_WITHIN:?}: {state:#}"
    );
    eprintln!("kernel dead {:?} after SIGKILL", killed.elapsed());
    assert!(
        state["reason"]
            .as_str()
            .is_some_and(|r| r.contains("stopped")),
        "{state:#}"
    );

    // The next execute starts a fresh kernel on the live node.
    execute(&http, &url, &token, &id).await;
    let cwd = cwd_output(&observer, first_output.as_str()).await;
    let second = cluster.runtime_owning(&cwd).unwrap();
    assert_ne!(
        second, first,
        "ran again on the killed node's directory: {cwd:?}"
    );
    assert!(cluster.runtimes[second].is_running());
    let runtime_metrics = scrape(&http, &cluster.runtimes[second].http_url()).await;
    // A live runtime node or a collab node with the notebook open (whichever scanned first)
    // marked the kernel dead; the runtime's counter is there either way.
    assert!(metric(&runtime_metrics, "tandem_runtime_orphans_marked_total").is_some());
}
