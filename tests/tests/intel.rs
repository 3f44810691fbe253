//! The notebook page's Colab habits over HTTP, through `tandem serve` and real kernels:
//! completions and inspection from the running kernel (`POST …/complete`, `…/inspect`),
//! answered to the caller only, refused to viewers and before any kernel runs, and answered
//! while a cell is busy; `input()` answered over `POST …/input` by whoever ran the cell (and
//! nobody else), interrupted while it waits; each run's timing in `metadata.execution`
//! (JupyterLab's record-timing keys), kept by the `.ipynb` export, which nbformat still
//! validates; the kernel's RAM and disk in `state.kernel.resources`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::Notebook;
use tandem_tests::notebook::code_notebook;
use tandem_tests::notebook::nbformat_validate;
use tandem_tests::{TestServer, require_kernel_venv};

/// Generous: the first run starts a kernel, and CI machines are small.
const WAIT: Duration = Duration::from_secs(90);

const TIMING_KEYS: [&str; 5] = [
    "iopub.status.busy",
    "iopub.execute_input",
    "shell.execute_reply.started",
    "shell.execute_reply",
    "iopub.status.idle",
];

fn notebook() -> Value {
    code_notebook(&[
        ("imp", "import os"),
        ("ask", "name = input('Name? ')\nprint('hello', name)"),
        (
            "secret",
            "import getpass\npw = getpass.getpass()\nprint(len(pw))",
        ),
        ("boom", "1/0"),
        ("sleepy", "import time\ntime.sleep(4)"),
    ])
}

/// `POST /api/notebooks/{id}/{action}` as `who`: the answer, or the status and error code.
async fn post(who: &Client, id: &str, action: &str, body: Value) -> Result<Value, (u16, String)> {
    let path = format!("api/notebooks/{id}/{action}");
    who.send_json(Method::POST, &path, Some(body))
        .await
        .map_err(|e| (e.status().unwrap_or(0), e.code().unwrap_or("").to_owned()))
}

async fn run(who: &Client, id: &str, cell: &str) {
    post(who, id, "execute", json!({"cell_ids": [cell]}))
        .await
        .unwrap();
}

fn kernel(conn: &DocConnection) -> Value {
    Notebook::from_doc(conn.doc().clone())
        .state_value("kernel")
        .unwrap_or(Value::Null)
}

fn cell(conn: &DocConnection, id: &str) -> tandem_crdt::Cell {
    Notebook::from_doc(conn.doc().clone())
        .cells()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap()
}

/// Waits until `check` holds of the replica, naming `what` when it never does.
async fn until(conn: &DocConnection, what: &str, check: impl Fn(&DocConnection) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check(conn) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened; state.kernel: {}",
            kernel(conn)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn idle(conn: &DocConnection) {
    until(conn, "an idle kernel", |conn| {
        let kernel = kernel(conn);
        kernel["status"] == "idle"
            && kernel["running"].is_null()
            && kernel["queue"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
}

fn text_of(cell: &tandem_crdt::Cell) -> String {
    cell.outputs
        .iter()
        .map(|output| match output["output_type"].as_str() {
            Some("stream") => output["text"].as_str().unwrap_or_default().to_owned(),
            Some("error") => format!("{}: {}", output["ename"], output["evalue"]),
            _ => output.to_string(),
        })
        .collect()
}

fn labels(completions: &Value) -> Vec<String> {
    completions["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_input_timing_and_resources_through_the_api() {
    require_kernel_venv().unwrap();
    let server = TestServer::start().await.unwrap();
    let alice = server.client_for("alice@intel.test").await.unwrap();
    let bob = server.client_for("bob@intel.test").await.unwrap();
    let vera = server.client_for("vera@intel.test").await.unwrap();
    let alice_id = alice.me().await.unwrap().id;
    let id = alice
        .create_notebook("intel", Some(notebook()))
        .await
        .unwrap()
        .id;
    let grants = json!([
        {"email": "bob@intel.test", "role": "editor"},
        {"email": "vera@intel.test", "role": "viewer"},
    ]);
    alice
        .send_json(
            Method::PUT,
            &format!("api/notebooks/{id}/sharing"),
            Some(json!({"general_access": "restricted", "link_role": "viewer", "grants": grants})),
        )
        .await
        .unwrap();
    let conn = DocConnection::connect(&server.ws_url(), &id, Some(alice.token()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), conn.synced())
        .await
        .unwrap()
        .unwrap();
    let os_pa = json!({"code": "import os\nos.pa", "cursor": 15});

    // --- Before any run: no kernel to ask (the page completes from its own text) -----------
    assert_eq!(
        post(&alice, &id, "complete", os_pa.clone())
            .await
            .unwrap_err(),
        (409, "no_kernel".into())
    );
    assert_eq!(
        post(&vera, &id, "complete", os_pa.clone())
            .await
            .unwrap_err()
            .0,
        403,
        "viewers may not use the runtime"
    );

    // --- The kernel completes and inspects with what it holds ------------------------------
    run(&alice, &id, "imp").await;
    idle(&conn).await;
    let completions = post(&alice, &id, "complete", os_pa.clone()).await.unwrap();
    assert!(
        labels(&completions).contains(&"path".to_owned()),
        "{completions}"
    );
    assert_eq!(
        (
            completions["cursor_start"].clone(),
            completions["cursor_end"].clone()
        ),
        (json!(13), json!(15)),
        "UTF-16 offsets of `pa`: {completions}"
    );
    // Offsets count UTF-16 units: an emoji before the name moves them by two.
    let emoji = json!({"code": "s = '😀'; os.pa", "cursor": 15});
    let completions = post(&alice, &id, "complete", emoji).await.unwrap();
    assert_eq!(completions["cursor_start"], 13, "{completions}");
    let doc = post(
        &alice,
        &id,
        "inspect",
        json!({"code": "print(", "cursor": 6}),
    )
    .await
    .unwrap();
    assert_eq!(doc["found"], true, "{doc}");
    let text = doc["text"].as_str().unwrap();
    assert!(
        text.contains("Signature:") && text.contains("Prints the values"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "no ANSI colours: {text}");
    let nothing = post(
        &alice,
        &id,
        "inspect",
        json!({"code": "zzz_undefined", "cursor": 5}),
    )
    .await
    .unwrap();
    assert_eq!(nothing["found"], false, "{nothing}");
    for action in ["complete", "inspect"] {
        assert_eq!(
            post(&vera, &id, action, os_pa.clone()).await.unwrap_err().0,
            403,
            "{action} as a viewer"
        );
    }
    assert_eq!(
        post(&alice, &id, "complete", json!({"code": "os", "cursor": 3}))
            .await
            .unwrap_err(),
        (400, "invalid_request".into()),
        "a cursor past the code"
    );
    // Nothing of it went into the document.
    assert!(
        !Notebook::from_doc(conn.doc().clone())
            .to_ipynb()
            .to_string()
            .contains("pathsep"),
        "completions stay out of the document"
    );

    // --- While a cell runs, completions still come -----------------------------------------
    run(&alice, &id, "sleepy").await;
    until(&conn, "the sleepy cell running", |conn| {
        kernel(conn)["running"] == "sleepy"
    })
    .await;
    let completions = post(&bob, &id, "complete", os_pa.clone()).await.unwrap();
    assert!(labels(&completions).contains(&"path".to_owned()));
    assert_eq!(kernel(&conn)["running"], "sleepy", "answered while it ran");
    idle(&conn).await;

    // --- input(): only who ran the cell answers; the cell goes on ---------------------------
    run(&alice, &id, "ask").await;
    until(&conn, "the input request", |conn| {
        kernel(conn)["input"]["cell"] == "ask"
    })
    .await;
    let request = kernel(&conn)["input"].clone();
    assert_eq!(request["prompt"], "Name? ", "{request}");
    assert_eq!(request["password"], false, "{request}");
    assert_eq!(request["by"]["id"], alice_id.as_str(), "{request}");
    assert_eq!(
        post(&bob, &id, "input", json!({"value": "Mallory"}))
            .await
            .unwrap_err(),
        (403, "input_not_yours".into())
    );
    assert_eq!(
        post(&vera, &id, "input", json!({"value": "Mallory"}))
            .await
            .unwrap_err()
            .0,
        403
    );
    post(&alice, &id, "input", json!({"value": "Ada"}))
        .await
        .unwrap();
    idle(&conn).await;
    assert!(kernel(&conn).get("input").is_none(), "{}", kernel(&conn));
    let ask = cell(&conn, "ask");
    assert_eq!(text_of(&ask), "Name? Ada\nhello Ada\n");

    // getpass: hidden in the output.
    run(&alice, &id, "secret").await;
    until(&conn, "the password request", |conn| {
        kernel(conn)["input"]["password"] == true
    })
    .await;
    post(&alice, &id, "input", json!({"value": "hunter2"}))
        .await
        .unwrap();
    idle(&conn).await;
    let secret = text_of(&cell(&conn, "secret"));
    assert!(
        !secret.contains("hunter2") && secret.ends_with("7\n"),
        "{secret}"
    );

    // Interrupted while it waits: KeyboardInterrupt, and no one is asked any more.
    run(&alice, &id, "ask").await;
    until(&conn, "the input request", |conn| {
        kernel(conn)["input"]["cell"] == "ask"
    })
    .await;
    post(&alice, &id, "interrupt", Value::Null).await.unwrap();
    idle(&conn).await;
    assert!(kernel(&conn).get("input").is_none());
    assert!(
        text_of(&cell(&conn, "ask")).contains("KeyboardInterrupt"),
        "{}",
        text_of(&cell(&conn, "ask"))
    );
    assert_eq!(
        post(&alice, &id, "input", json!({"value": "late"}))
            .await
            .unwrap_err(),
        (409, "no_input".into())
    );

    // --- Timing: each finished run's, in metadata.execution, kept by the export ------------
    run(&alice, &id, "boom").await;
    until(&conn, "the error of 1/0", |conn| {
        text_of(&cell(conn, "boom")).contains("ZeroDivisionError")
    })
    .await;
    idle(&conn).await;
    for id in ["imp", "boom", "ask"] {
        let timing = &cell(&conn, id).metadata["execution"];
        for key in TIMING_KEYS {
            assert!(timing[key].is_string(), "{id}: {key} in {timing}");
        }
        assert!(
            timing["shell.execute_reply"].as_str() >= timing["iopub.execute_input"].as_str(),
            "{timing}"
        );
    }
    let export = alice.export_ipynb(&id).await.unwrap();
    let exported = export["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "boom")
        .unwrap();
    assert_eq!(
        exported["metadata"]["execution"],
        cell(&conn, "boom").metadata["execution"]
    );
    assert_eq!(exported["outputs"][0]["output_type"], "error");
    nbformat_validate(&export).await.unwrap();

    // --- RAM and disk of the runtime --------------------------------------------------------
    until(&conn, "resources in state.kernel", |conn| {
        let resources = &kernel(conn)["resources"];
        let memory = resources["memory_bytes"].as_u64().unwrap_or(0);
        memory > 0
            && resources["memory_limit_bytes"]
                .as_u64()
                .is_some_and(|limit| limit >= memory)
            && resources["disk_limit_bytes"].as_u64().unwrap_or(0) > 0
    })
    .await;
}
