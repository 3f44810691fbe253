//! The split deployment: `tandem collab` and `tandem runtime` as separate processes sharing
//! only the service credential, as on two machines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tandem_client::{Client, DocConnection};
use tandem_crdt::Notebook;
use tandem_tests::{require_kernel_venv, tandem_bin};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SERVICE_TOKEN: &str = "split-test-service-credential";

fn spawn(args: &[&str]) -> Child {
    Command::new(tandem_bin().unwrap())
        .args(args)
        .env("TANDEM_SERVICE_TOKEN", SERVICE_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Reads the child's stdout until its `listening on http://…` line.
async fn listening(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.trim().to_owned();
            }
        }
        panic!("tandem collab exited without listening");
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_process_serves_a_separate_collab_process() {
    let venv = require_kernel_venv().unwrap();
    let data = tempfile::tempdir().unwrap();
    let kernels = tempfile::tempdir().unwrap();
    let data_arg = data.path().to_str().unwrap();
    let mut collab = spawn(&["collab", "--data", data_arg, "--listen", "127.0.0.1:0"]);
    let url = listening(&mut collab).await;
    let _runtime = spawn(&[
        "runtime",
        "--collab-url",
        &url,
        "--venv",
        venv.to_str().unwrap(),
        "--kernel-dir",
        kernels.path().to_str().unwrap(),
    ]);

    let output = Command::new(tandem_bin().unwrap())
        .args([
            "token",
            "create",
            "--data",
            data_arg,
            "--email",
            "ada@example.com",
        ])
        .output()
        .await
        .unwrap();
    let token = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    let client = Client::new(&url, &token).unwrap();
    let cells = json!([{"id": "c", "cell_type": "code", "source": "6 * 7", "metadata": {},
        "outputs": [], "execution_count": null}]);
    let ipynb = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells});
    let id = client
        .create_notebook("split", Some(ipynb))
        .await
        .unwrap()
        .id;
    let observer = DocConnection::connect(&client.ws_base().unwrap(), &id, Some(&token))
        .await
        .unwrap();
    observer.synced().await.unwrap();

    // The runtime joins on its own schedule: until it does, execute says so (503).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = reqwest::Client::new()
            .post(format!("{url}/api/notebooks/{id}/execute"))
            .bearer_auth(&token)
            .json(&json!({"all": true}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            202 => break,
            503 => assert!(
                tokio::time::Instant::now() < deadline,
                "the runtime never joined"
            ),
            other => panic!(
                "execute answered {other}: {}",
                response.text().await.unwrap()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = observer
        .wait_until(
            |doc| {
                let nb = Notebook::from_doc(doc.clone()).to_ipynb();
                nb["cells"][0]["outputs"][0]["data"]["text/plain"] == "42"
            },
            Duration::from_secs(60),
        )
        .await;
    assert!(
        result.is_ok(),
        "no result: {:#}",
        Notebook::from_doc(observer.doc().clone()).to_ipynb()
    );
}
