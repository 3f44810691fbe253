//! No hidden state end to end through `tandem serve`: one collaborator edits an upstream
//! cell and runs it, a second sees the cells downstream marked stale, and
//! `POST …/execute {"stale": true}` brings the notebook back to consistency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::DocConnection;
use tandem_crdt::Notebook;
use tandem_tests::notebook::code_notebook;
use tandem_tests::{TestServer, require_kernel_venv};

/// Generous: the first cell also starts a kernel, and CI machines are small.
const WAIT: Duration = Duration::from_secs(60);

async fn connect(server: &TestServer, token: &str, id: &str) -> DocConnection {
    let conn = DocConnection::connect(&server.ws_url(), id, Some(token))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), conn.synced())
        .await
        .unwrap()
        .unwrap();
    conn
}

fn stale_of(conn: &DocConnection) -> (Value, Vec<String>) {
    let nb = Notebook::from_doc(conn.doc().clone());
    let listed = nb
        .state_value("kernel")
        .and_then(|k| k.get("stale").cloned())
        .unwrap_or(Value::Null);
    let marked = nb
        .cells()
        .into_iter()
        .filter(|c| nb.is_stale(&c.id))
        .map(|c| c.id)
        .collect();
    (listed, marked)
}

async fn wait_for(conn: &DocConnection, what: &str, mut done: impl FnMut(&Notebook) -> bool) {
    let waited = conn
        .wait_until(|doc| done(&Notebook::from_doc(doc.clone())), WAIT)
        .await;
    let nb = Notebook::from_doc(conn.doc().clone());
    assert!(
        waited.is_ok(),
        "{what} never happened; cells: {:#?}\nkernel: {:?}",
        nb.cells(),
        nb.state_value("kernel")
    );
}

async fn wait_stale(conn: &DocConnection, wanted: &[&str]) {
    wait_for(conn, &format!("stale = {wanted:?}"), |nb| {
        nb.state_value("kernel")
            .and_then(|k| k.get("stale").cloned())
            == Some(json!(wanted))
    })
    .await;
    assert_eq!(stale_of(conn), (json!(wanted), to_strings(wanted)));
}

fn to_strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Waits until cell `id` shows `count` and the kernel runs nothing.
async fn wait_count(conn: &DocConnection, id: &str, count: i64) {
    wait_for(conn, &format!("{id} to reach [{count}]"), |nb| {
        let done = nb
            .cells()
            .iter()
            .any(|c| c.id == id && c.execution_count == Some(count));
        let idle = nb
            .state_value("kernel")
            .is_some_and(|k| k["running"].is_null() && k["queue"] == json!([]));
        done && idle
    })
    .await;
}

fn output_text(conn: &DocConnection, id: &str) -> String {
    let nb = Notebook::from_doc(conn.doc().clone());
    let cell = nb.cells().into_iter().find(|c| c.id == id).unwrap();
    cell.outputs
        .iter()
        .filter_map(|o| o["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_client_sees_stale_marks_and_run_stale_fixes_them() {
    require_kernel_venv().unwrap();
    let server = TestServer::start().await.unwrap();
    let owner = server.client_for("owner@example.com").await.unwrap();
    let ipynb = code_notebook(&[
        ("data", "rows = [1, 2, 3]"),
        ("total", "total = sum(rows)"),
        ("show", "print('total', total)"),
    ]);
    let id = owner
        .create_notebook("stale", Some(ipynb))
        .await
        .unwrap()
        .id;
    let alice = connect(&server, owner.token(), &id).await;
    let bob = connect(&server, owner.token(), &id).await;
    let execute = |body: Value| {
        let url = format!("{}/api/notebooks/{id}/execute", server.http_url());
        let token = owner.token().to_owned();
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    assert_eq!(execute(json!({"all": true})).await.0, 202);
    wait_count(&bob, "show", 3).await;
    wait_stale(&bob, &[]).await;
    assert_eq!(output_text(&bob, "show"), "total 6\n");

    // Alice edits the upstream cell and runs it: Bob sees what depends on it go stale.
    let nb = Notebook::from_doc(alice.doc().clone());
    let len = "rows = [1, 2, 3]".len() as u32;
    nb.edit_source("data", 0, len, "rows = [10, 20, 30]")
        .unwrap();
    wait_stale(&bob, &["data", "total", "show"]).await;
    assert_eq!(execute(json!({"cell_ids": ["data"]})).await.0, 202);
    wait_count(&bob, "data", 4).await;
    wait_stale(&bob, &["total", "show"]).await;

    // One form at a time.
    let (status, _) = execute(json!({"stale": true, "all": true})).await;
    assert_eq!(status, 400);
    // Run stale: the two cells, in order, and nothing stale afterwards.
    let (status, body) = execute(json!({"stale": true})).await;
    assert_eq!((status, body), (202, json!({"queued": ["total", "show"]})));
    wait_count(&bob, "show", 6).await;
    wait_stale(&bob, &[]).await;
    assert_eq!(output_text(&bob, "show"), "total 60\n");
    // Nothing stale: nothing to run.
    let (status, body) = execute(json!({"stale": true})).await;
    assert_eq!((status, body), (202, json!({"queued": []})));

    // The marks never reach the export.
    let export = owner.export_ipynb(&id).await.unwrap();
    assert!(!export.to_string().contains("tandem_stale"));
}
