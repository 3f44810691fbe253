//! Secrets end to end through `tandem serve` and a real kernel: `tandem.secrets.get` and
//! Colab's `google.colab.userdata.get` read a secret in the notebook it is granted to, not
//! in another notebook, and a collaborator running the shared notebook gets their own
//! secrets and grants, never the owner's. The value never reaches the document, the
//! `.ipynb` export or the server's log. On nodes scaled out through Redis the lookup travels
//! the runtime link's asks list, answered by whichever collab node pops it.
//!
//! Cells print values reversed, so the test can tell which value a cell read while the value
//! itself never enters the document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::Notebook;
use tandem_tests::cluster::Cluster;
use tandem_tests::notebook::code_notebook;
use tandem_tests::{TestServer, require_kernel_venv};
use yrs::{ReadTxn, StateVector, Transact};

/// Generous: the first cell also starts a kernel, and CI machines are small.
const RUN_WAIT: Duration = Duration::from_secs(60);

const ALICE_VALUE: &str = "alice-secret-value-4d1c";
const BOB_VALUE: &str = "bob-secret-value-93be";

fn reversed(value: &str) -> String {
    value.chars().rev().collect()
}

/// Reads `API_KEY` both ways and prints each value reversed, or the exception's class.
const READ_BOTH: &str = r#"import tandem
from google.colab import userdata
for get in (tandem.secrets.get, userdata.get):
    try:
        print(get("API_KEY")[::-1])
    except Exception as error:
        print(type(error).__name__, error)
"#;

const MISSING: &str = r#"from google.colab import userdata
try:
    userdata.get("NOPE")
except userdata.SecretNotFoundError as error:
    print("SecretNotFoundError", error)
"#;

async fn connect(server: &TestServer, client: &Client, id: &str) -> DocConnection {
    connect_to(&server.ws_url(), client, id).await
}

async fn connect_to(ws_url: &str, client: &Client, id: &str) -> DocConnection {
    let conn = DocConnection::connect(ws_url, id, Some(client.token()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), conn.synced())
        .await
        .unwrap()
        .unwrap();
    conn
}

fn view(conn: &DocConnection) -> Value {
    Notebook::from_doc(conn.doc().clone()).to_ipynb()
}

fn output_text(conn: &DocConnection, cell_id: &str) -> String {
    let nb = view(conn);
    let cell = nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == cell_id)
        .unwrap()
        .clone();
    cell["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| match o["output_type"].as_str() {
            Some("stream") => o["text"].as_str().unwrap_or_default().to_owned(),
            Some("error") => format!("{}: {}\n", o["ename"], o["evalue"]),
            _ => String::new(),
        })
        .collect()
}

/// Runs one cell as `client` and returns its output once it finished.
async fn run(client: &Client, conn: &DocConnection, nb: &str, cell_id: &str) -> String {
    let before = view(conn);
    let count_before = before["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == cell_id)
        .map(|c| c["execution_count"].clone());
    let deadline = tokio::time::Instant::now() + RUN_WAIT;
    // 503 until a runtime node has announced itself (on Redis).
    while let Err(error) = client
        .send_json(
            Method::POST,
            &format!("api/notebooks/{nb}/execute"),
            Some(json!({"cell_ids": [cell_id]})),
        )
        .await
    {
        assert!(
            error.status() == Some(503) && tokio::time::Instant::now() < deadline,
            "{error}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let nb = view(conn);
        let cell = nb["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == cell_id)
            .unwrap()
            .clone();
        let state = Notebook::from_doc(conn.doc().clone())
            .state_value("kernel")
            .unwrap_or(Value::Null);
        if cell["execution_count"].is_number()
            && Some(&cell["execution_count"]) != count_before.as_ref()
            && state["running"].is_null()
        {
            return output_text(conn, cell_id);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cell {cell_id} never finished: {nb:#}\nkernel: {state}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn put_secret(client: &Client, name: &str, value: &str) {
    client
        .send_json(
            Method::PUT,
            &format!("api/secrets/{name}"),
            Some(json!({ "value": value })),
        )
        .await
        .unwrap();
}

async fn grant(client: &Client, name: &str, nb: &str) {
    client
        .send_json(
            Method::PUT,
            &format!("api/secrets/{name}/notebooks/{nb}"),
            None,
        )
        .await
        .unwrap();
}

/// Everything the document holds, encoded, as text (lossy): no value may be in it.
fn document_bytes(conn: &DocConnection) -> String {
    let update = conn
        .doc()
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    String::from_utf8_lossy(&update).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_only_granted_notebooks_and_their_own_users() {
    require_kernel_venv().unwrap();
    let server = TestServer::start().await.unwrap();
    let alice = server.client_for("alice@example.com").await.unwrap();
    let bob = server.client_for("bob@example.com").await.unwrap();
    let granted = alice
        .create_notebook(
            "granted",
            Some(code_notebook(&[("read", READ_BOTH), ("missing", MISSING)])),
        )
        .await
        .unwrap()
        .id;
    let other = alice
        .create_notebook("other", Some(code_notebook(&[("read", READ_BOTH)])))
        .await
        .unwrap()
        .id;
    put_secret(&alice, "API_KEY", ALICE_VALUE).await;
    grant(&alice, "API_KEY", &granted).await;

    // In the granted notebook, both ways read Alice's value.
    let granted_conn = connect(&server, &alice, &granted).await;
    let out = run(&alice, &granted_conn, &granted, "read").await;
    let alice_line = reversed(ALICE_VALUE);
    assert_eq!(out, format!("{alice_line}\n{alice_line}\n"), "{out}");
    let out = run(&alice, &granted_conn, &granted, "missing").await;
    assert_eq!(out, "SecretNotFoundError Secret NOPE does not exist.\n");

    // Another notebook of hers has no access: a clear error, no value.
    let other_conn = connect(&server, &alice, &other).await;
    let out = run(&alice, &other_conn, &other, "read").await;
    assert_eq!(out.matches("NotebookAccessError").count(), 2, "{out}");
    assert!(out.contains("API_KEY"), "{out}");
    assert!(!out.contains(&alice_line), "{out}");

    // Bob, an editor of the granted notebook, runs it in the same kernel: Alice's grant is
    // not his. Without a secret of his own he gets SecretNotFoundError...
    alice
        .send_json(
            Method::PUT,
            &format!("api/notebooks/{granted}/sharing"),
            Some(
                json!({"general_access": "restricted", "link_role": "viewer",
                        "grants": [{"email": "bob@example.com", "role": "editor"}]}),
            ),
        )
        .await
        .unwrap();
    let out = run(&bob, &granted_conn, &granted, "read").await;
    assert_eq!(out.matches("SecretNotFoundError").count(), 2, "{out}");
    assert!(!out.contains(&alice_line), "{out}");
    // ...with one not granted, NotebookAccessError...
    put_secret(&bob, "API_KEY", BOB_VALUE).await;
    let out = run(&bob, &granted_conn, &granted, "read").await;
    assert_eq!(out.matches("NotebookAccessError").count(), 2, "{out}");
    // ...and once he grants it, his own value; Alice still reads hers.
    grant(&bob, "API_KEY", &granted).await;
    let bob_line = reversed(BOB_VALUE);
    let out = run(&bob, &granted_conn, &granted, "read").await;
    assert_eq!(out, format!("{bob_line}\n{bob_line}\n"), "{out}");
    let out = run(&alice, &granted_conn, &granted, "read").await;
    assert_eq!(out, format!("{alice_line}\n{alice_line}\n"), "{out}");

    // The values are nowhere in the documents, the exports or the server's log.
    for (conn, nb) in [(&granted_conn, &granted), (&other_conn, &other)] {
        let export = alice.export_ipynb(nb).await.unwrap().to_string();
        let document = document_bytes(conn);
        for value in [ALICE_VALUE, BOB_VALUE] {
            assert!(!export.contains(value), "{value} in the export of {nb}");
            assert!(!document.contains(value), "{value} in the document {nb}");
        }
    }
    let logs = server.logs();
    assert!(logs.contains("secret"), "the log should mention lookups");
    for value in [ALICE_VALUE, BOB_VALUE] {
        assert!(
            !logs.contains(value),
            "{value} in the server's log:\n{logs}"
        );
    }
}

/// A runtime node on Redis asks for a running cell's secret through Redis (no HTTP side
/// channel): the runtime joined through one collab node, the cell is run through the other,
/// and either may answer the ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_cell_reads_its_runners_secret_through_the_runtime_link() {
    require_kernel_venv().unwrap();
    // Collab nodes on Redis share the key by flag (32 bytes, base64).
    let key = "c2VjcmV0cy1rZXktZm9yLXRoZS1jbHVzdGVyLXRlc3Q=";
    let mut cluster = Cluster::new().unwrap();
    let a = cluster.start_collab(&["--secrets-key", key]).await.unwrap();
    let b = cluster.start_collab(&["--secrets-key", key]).await.unwrap();
    cluster.start_runtime(a, &[]).await.unwrap();
    let token = cluster.token_for("alice@example.com").await.unwrap();
    let alice = Client::new(&cluster.collabs[b].http_url(), &token).unwrap();
    let nb = alice
        .create_notebook(
            "on redis",
            Some(code_notebook(&[("read", READ_BOTH), ("missing", MISSING)])),
        )
        .await
        .unwrap()
        .id;
    put_secret(&alice, "API_KEY", ALICE_VALUE).await;
    grant(&alice, "API_KEY", &nb).await;

    let conn = connect_to(&cluster.collabs[b].ws_url(), &alice, &nb).await;
    let out = run(&alice, &conn, &nb, "read").await;
    let line = reversed(ALICE_VALUE);
    assert_eq!(out, format!("{line}\n{line}\n"), "{out}");
    let out = run(&alice, &conn, &nb, "missing").await;
    assert_eq!(out, "SecretNotFoundError Secret NOPE does not exist.\n");
    assert!(!document_bytes(&conn).contains(ALICE_VALUE));
    for node in cluster.collabs.iter().chain(&cluster.runtimes) {
        assert!(!node.logs().contains(ALICE_VALUE), "{}", node.logs());
    }
}
