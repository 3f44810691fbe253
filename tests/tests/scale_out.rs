//! Scale-out with the real binary: `tandem collab` and `tandem runtime` processes on one Redis
//! (a key prefix of their own), driven by stock Yjs clients (yjs + y-websocket +
//! @jupyter/ydoc, `tests/interop/node/cluster_client.mjs`) spread over the collab nodes.
//!
//! - Clients on three collab nodes type into one notebook at once (while the nodes compact the
//!   stream every few updates) and converge with each other and every node's export; a cell
//!   run through one node shows its output to the clients of all three.
//! - A collab node SIGKILLed mid-edit: its clients reconnect to another node and resend what
//!   they typed; everything that a client of the dead node had seen (even edits of a client
//!   killed with the node, which can resend nothing) is in the final notebook.
//! - Redis SIGKILLed and restarted on the same port from its AOF: `/readyz` answers 503 while
//!   it is away and 200 after, requests get 503 `store_unavailable`, clients are closed with
//!   1011 and a reason naming the store, keep typing offline, and their edits merge once it
//!   is back.
//!
//! Every writer appends `<name>.<k>;` to its own cell and to a shared one, so the final
//! notebook shows whose edits arrived, in which order, and whether one is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::Notebook;
use tandem_tests::cluster::{Cluster, NodeClient, RedisServer};
use tandem_tests::notebook::code_cell;
use tandem_tests::notebook::{first_difference, normalize};
use tandem_tests::{node_modules, require_kernel_venv};

/// Node start-up, typing with pauses, and (for the run) a kernel's start on a loaded machine.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

const SCRIPT: &str = "cluster_client.mjs";

/// A notebook with a shared code cell, one cell per writer, and optionally a cell to run.
fn notebook(writers: &[&str], run: Option<&str>) -> Value {
    let mut cells = vec![code_cell("shared", "")];
    cells.extend(writers.iter().map(|w| code_cell(w, "")));
    if let Some(source) = run {
        cells.push(code_cell("run", source));
    }
    json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})
}

/// What every writer's plan shares.
struct Plan<'a> {
    urls: &'a [String],
    notebook: &'a str,
    token: &'a str,
    everyone: &'a [&'a str],
    tokens: usize,
    pause_ms: u64,
}

impl Plan<'_> {
    fn writer(&self, name: &str, start: usize, wait_done: &[&str], outputs: Value) -> Value {
        json!({
            "urls": self.urls, "start": start, "notebook_id": self.notebook,
            "token": self.token, "name": name, "role": "writer", "reconnect": true,
            "peers": self.everyone, "cells": [name, "shared"], "tokens": self.tokens,
            "pause_ms": self.pause_ms, "seed": start as u64 * 31 + name.len() as u64,
            "wait_done": wait_done, "wait_outputs": outputs,
        })
    }

    fn observer(&self, name: &str, start: usize) -> Value {
        json!({
            "urls": self.urls, "start": start, "notebook_id": self.notebook,
            "token": self.token, "name": name, "role": "observer", "reconnect": false,
            "peers": self.everyone,
        })
    }
}

/// The source of cell `id` in a notebook as JSON (`source` as a string or a list of lines).
fn source(nb: &Value, id: &str) -> String {
    let cell = nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|cell| cell["id"] == id)
        .unwrap_or_else(|| panic!("no cell {id}"));
    match &cell["source"] {
        Value::String(text) => text.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        other => panic!("cell {id} has source {other}"),
    }
}

/// The `<name>.<k>` tokens of `writer` in `text`, in order.
fn tokens_of(text: &str, writer: &str) -> Vec<String> {
    text.split(';')
        .filter(|token| token.split_once('.').is_some_and(|(who, _)| who == writer))
        .map(str::to_owned)
        .collect()
}

fn all_tokens(writer: &str, count: usize) -> Vec<String> {
    (0..count).map(|k| format!("{writer}.{k}")).collect()
}

/// Polls a node's export until it equals `want` (its room may still be applying the last
/// entries of the stream).
async fn export_matches(client: &Client, id: &str, want: &Value, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let export = client.export_ipynb(id).await.map(|nb| normalize(&nb));
        match export {
            Ok(export) => match first_difference(want, &export) {
                None => return,
                Some(difference) if Instant::now() > deadline => panic!(
                    "{node}'s export differs from the clients' notebook (left: clients): \
                     {difference}"
                ),
                Some(_) => {}
            },
            Err(err) if Instant::now() > deadline => panic!("{node}'s export failed: {err:#}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every printed notebook is the same; returns it, normalized.
fn agree(outputs: &[(&str, Value)]) -> Value {
    let (first, view) = &outputs[0];
    let view = normalize(&view["notebook"]);
    for (name, output) in &outputs[1..] {
        if let Some(difference) = first_difference(&view, &normalize(&output["notebook"])) {
            panic!("{first} and {name} ended with different notebooks: {difference}");
        }
    }
    view
}

/// Execute until a runtime node takes it (503 while none has announced itself yet).
async fn execute(http: &reqwest::Client, url: &str, token: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = http
            .post(format!("{url}/api/notebooks/{id}/execute"))
            .bearer_auth(token)
            .json(&json!({"cell_ids": ["run"]}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            202 => return,
            503 if Instant::now() < deadline => {}
            other => panic!(
                "execute answered {other}: {}",
                response.text().await.unwrap()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn status(http: &reqwest::Client, url: String) -> (u16, String) {
    match http.get(url).send().await {
        Ok(response) => (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        ),
        Err(err) => (0, err.to_string()),
    }
}

/// Polls `GET url` until it answers `want`; returns the body.
async fn wait_status(http: &reqwest::Client, url: &str, want: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (code, body) = status(http, url.to_owned()).await;
        if code == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url} answered {code} ({body}), not {want}, for {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `watcher` shows at least `count` tokens of each of `writers` in their cells.
async fn typed_at_least(watcher: &DocConnection, writers: &[&str], count: usize) {
    let shown = watcher
        .wait_until(
            |doc| {
                let nb = Notebook::from_doc(doc.clone()).to_ipynb();
                writers
                    .iter()
                    .all(|w| tokens_of(&source(&nb, w), w).len() >= count)
            },
            Duration::from_secs(90),
        )
        .await;
    assert!(shown.is_ok(), "the writers never got going");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_clients_on_three_nodes_converge_and_all_see_a_run_asked_of_one() {
    require_kernel_venv().unwrap();
    node_modules().unwrap();
    let mut cluster = Cluster::new().unwrap();
    // Compacting every few updates, so compaction races the writes of all three nodes.
    for _ in 0..3 {
        cluster
            .start_collab(&["--compact-after", "4"])
            .await
            .unwrap();
    }
    cluster.start_runtime(0, &[]).await.unwrap();
    cluster.start_runtime(1, &[]).await.unwrap();
    let token = cluster.token_for("ada@example.com").await.unwrap();
    let urls: Vec<String> = cluster.collabs.iter().map(|n| n.ws_url()).collect();
    let client = Client::new(&cluster.collabs[0].http_url(), &token).unwrap();
    let writers = ["w0", "w1", "w2", "w3", "w4", "w5"];
    let id = client
        .create_notebook("three nodes", Some(notebook(&writers, Some("print(6*7)"))))
        .await
        .unwrap()
        .id;

    let plan = Plan {
        urls: &urls,
        notebook: &id,
        token: &token,
        everyone: &writers,
        tokens: 40,
        pause_ms: 15,
    };
    let outputs = json!({"cell": "run", "text": "42"});
    let clients: Vec<NodeClient> = writers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let plan = plan.writer(w, i % 3, &writers, outputs.clone());
            NodeClient::spawn(SCRIPT, w, &plan).unwrap()
        })
        .collect();
    // Run the cell through node 0 while they type; every client waits for its output.
    let http = reqwest::Client::new();
    execute(&http, &cluster.collabs[0].http_url(), &token, &id).await;

    let mut results = Vec::new();
    for client in clients {
        let name = client.name.clone();
        results.push((name, client.finish(CLIENT_TIMEOUT).await.unwrap()));
    }
    let results: Vec<(&str, Value)> = results
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    let view = agree(&results);
    let shared = source(&view, "shared");
    for w in writers {
        let all = all_tokens(w, plan.tokens);
        assert_eq!(tokens_of(&source(&view, w), w), all, "{w}'s cell");
        assert_eq!(
            tokens_of(&shared, w),
            all,
            "{w}'s keystrokes in the shared cell"
        );
    }
    let run = view["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "run")
        .unwrap();
    assert!(run["outputs"].to_string().contains("42"), "{run:#}");
    for node in &cluster.collabs {
        let client = Client::new(&node.http_url(), &token).unwrap();
        export_matches(&client, &id, &view, &node.name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collab_node_killed_mid_edit_loses_nothing_anyone_saw() {
    node_modules().unwrap();
    let mut cluster = Cluster::new().unwrap();
    for _ in 0..3 {
        cluster.start_collab(&[]).await.unwrap();
    }
    let token = cluster.token_for("ada@example.com").await.unwrap();
    let urls: Vec<String> = cluster.collabs.iter().map(|n| n.ws_url()).collect();
    let client = Client::new(&cluster.collabs[1].http_url(), &token).unwrap();
    // a0 and a1 on node 0 (killed), b0 on 1, c0 on 2; v types on node 0 and dies with it, so
    // only what node 0 made durable can bring its edits back; o watches on node 0.
    let survivors = ["a0", "a1", "b0", "c0"];
    let everyone = ["a0", "a1", "b0", "c0", "v", "o"];
    let writers = ["a0", "a1", "b0", "c0", "v"];
    let id = client
        .create_notebook("kill a node", Some(notebook(&writers, None)))
        .await
        .unwrap()
        .id;
    let plan = Plan {
        urls: &urls,
        notebook: &id,
        token: &token,
        everyone: &everyone,
        tokens: 80,
        pause_ms: 20,
    };
    let starts = [("a0", 0), ("a1", 0), ("b0", 1), ("c0", 2)];
    let clients: Vec<NodeClient> = starts
        .iter()
        .map(|(w, start)| {
            NodeClient::spawn(SCRIPT, w, &plan.writer(w, *start, &survivors, Value::Null)).unwrap()
        })
        .collect();
    let mut vanishing = {
        let mut v = plan.writer("v", 0, &[], Value::Null);
        v["reconnect"] = json!(false);
        v["tokens"] = json!(100_000);
        NodeClient::spawn(SCRIPT, "v", &v).unwrap()
    };
    let observer = NodeClient::spawn(SCRIPT, "o", &plan.observer("o", 0)).unwrap();

    // Mid-edit: once everyone typed a little, node 0 dies, and v with it.
    let watcher = DocConnection::connect(
        &Client::new(&cluster.collabs[2].http_url(), &token)
            .unwrap()
            .ws_base()
            .unwrap(),
        &id,
        Some(&token),
    )
    .await
    .unwrap();
    watcher.synced().await.unwrap();
    typed_at_least(&watcher, &writers, 10).await;
    vanishing.kill_9().await.unwrap();
    cluster.collabs[0].kill_9().unwrap();
    let at_kill = Notebook::from_doc(watcher.doc().clone()).to_ipynb();
    let a0_at_kill = tokens_of(&source(&at_kill, "a0"), "a0").len();
    assert!(a0_at_kill < plan.tokens, "a0 had finished before the kill");

    let seen = observer.finish(CLIENT_TIMEOUT).await.unwrap();
    let mut results = Vec::new();
    for client in clients {
        let name = client.name.clone();
        results.push((name, client.finish(CLIENT_TIMEOUT).await.unwrap()));
    }
    let results: Vec<(&str, Value)> = results
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    let view = agree(&results);

    // The survivors' own edits are all there, in order, whether or not node 0 had stored
    // them: a0 and a1 resent what it lost when they reconnected.
    let shared = source(&view, "shared");
    for w in survivors {
        let all = all_tokens(w, plan.tokens);
        assert_eq!(tokens_of(&source(&view, w), w), all, "{w}'s cell");
        assert_eq!(
            tokens_of(&shared, w),
            all,
            "{w}'s keystrokes in the shared cell"
        );
    }
    for (name, result) in &results[..2] {
        assert!(
            result["connects"].as_u64().unwrap() >= 2,
            "{name} did not reconnect: {result:#}"
        );
    }
    // Everything the observer on node 0 saw is in the final notebook, v's edits included:
    // node 0 broadcast nothing it had not stored in Redis.
    let seen = normalize(&seen["notebook"]);
    let seen_shared = source(&seen, "shared");
    for w in writers {
        let saw = tokens_of(&source(&seen, w), w);
        let now = tokens_of(&source(&view, w), w);
        assert!(
            now.starts_with(&saw),
            "{w}: the observer saw {saw:?}, the end has {now:?}"
        );
        let saw = tokens_of(&seen_shared, w);
        assert!(
            tokens_of(&shared, w).starts_with(&saw),
            "{w}: the observer saw {saw:?} in the shared cell"
        );
    }
    let v_seen = tokens_of(&source(&seen, "v"), "v").len();
    assert!(v_seen >= 10, "the observer saw only {v_seen} of v's edits");
    eprintln!(
        "at the kill a0 had typed {a0_at_kill} of {}; the observer had seen {v_seen} of v's \
         edits; a0 and a1 reconnected",
        plan.tokens
    );
    for node in &cluster.collabs[1..] {
        let client = Client::new(&node.http_url(), &token).unwrap();
        export_matches(&client, &id, &view, &node.name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_from_its_aof_loses_no_edit_and_readiness_follows_it() {
    node_modules().unwrap();
    let mut redis = RedisServer::start().await.unwrap();
    let mut cluster = Cluster::on_redis(&redis.url()).unwrap();
    for _ in 0..2 {
        cluster.start_collab(&[]).await.unwrap();
    }
    let token = cluster.token_for("ada@example.com").await.unwrap();
    let urls: Vec<String> = cluster.collabs.iter().map(|n| n.ws_url()).collect();
    let base = cluster.collabs[0].http_url();
    let client = Client::new(&base, &token).unwrap();
    let writers = ["w0", "w1", "w2"];
    let id = client
        .create_notebook("redis restarts", Some(notebook(&writers, None)))
        .await
        .unwrap()
        .id;
    let plan = Plan {
        urls: &urls,
        notebook: &id,
        token: &token,
        everyone: &writers,
        tokens: 150,
        pause_ms: 20,
    };
    let clients: Vec<NodeClient> = writers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            NodeClient::spawn(SCRIPT, w, &plan.writer(w, i % 2, &writers, Value::Null)).unwrap()
        })
        .collect();
    let watcher = DocConnection::connect(&client.ws_base().unwrap(), &id, Some(&token))
        .await
        .unwrap();
    watcher.synced().await.unwrap();
    typed_at_least(&watcher, &writers, 10).await;
    let http = reqwest::Client::new();
    for node in &cluster.collabs {
        wait_status(
            &http,
            &format!("{}/readyz", node.http_url()),
            200,
            Duration::ZERO,
        )
        .await;
    }

    // Redis dies mid-edit: both nodes say they are not ready, requests get a clear 503, and
    // the clients keep typing offline.
    redis.kill_9().unwrap();
    for node in &cluster.collabs {
        let url = format!("{}/readyz", node.http_url());
        let body = wait_status(&http, &url, 503, Duration::from_secs(10)).await;
        assert!(body.to_lowercase().contains("redis"), "{body}");
    }
    let (code, body) = status(&http, format!("{base}/api/notebooks/{id}")).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("store_unavailable"), "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Back from its AOF on the same port: the nodes reconnect by themselves.
    redis.restart().await.unwrap();
    for node in &cluster.collabs {
        let url = format!("{}/readyz", node.http_url());
        wait_status(&http, &url, 200, Duration::from_secs(30)).await;
    }

    let mut results = Vec::new();
    for client in clients {
        let name = client.name.clone();
        results.push((name, client.finish(CLIENT_TIMEOUT).await.unwrap()));
    }
    let results: Vec<(&str, Value)> = results
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    let view = agree(&results);
    let shared = source(&view, "shared");
    for w in writers {
        let all = all_tokens(w, plan.tokens);
        assert_eq!(tokens_of(&source(&view, w), w), all, "{w}'s cell");
        assert_eq!(
            tokens_of(&shared, w),
            all,
            "{w}'s keystrokes in the shared cell"
        );
    }
    // The clients were told why they were cut off, and came back.
    let closes: Vec<&Value> = results
        .iter()
        .flat_map(|(_, r)| r["closes"].as_array().unwrap())
        .collect();
    assert!(
        closes
            .iter()
            .any(|c| c["code"] == 1011
                && c["reason"].as_str().unwrap().contains("store unavailable")),
        "no client was closed with 1011 naming the store: {closes:?}"
    );
    let refused: Vec<&Value> = results
        .iter()
        .flat_map(|(_, r)| r["errors"].as_array().unwrap())
        .collect();
    eprintln!("closes: {closes:?}; connection errors while Redis was away: {refused:?}");
    for (name, result) in &results {
        assert!(
            result["connects"].as_u64().unwrap() >= 2,
            "{name} did not reconnect: {result:#}"
        );
    }
    for node in &cluster.collabs {
        let client = Client::new(&node.http_url(), &token).unwrap();
        export_matches(&client, &id, &view, &node.name).await;
    }
}
