//! Whose runtime it is, end to end through `tandem serve` and real kernels: the runtime
//! writes the holder of a running kernel (who started it) to `state.kernel.holder` for every
//! collaborator; the owner's "Editors may run code in my runtime" (`editors_may_run` in the
//! sharing settings) round-trips and only the owner changes it; when it is off, an editor's
//! execute, interrupt or restart in someone else's kernel answers 403 `runtime_not_shared`
//! naming the holder, while the holder runs on; once the kernel stopped, the editor's run
//! starts a runtime of their own; the owner takes a runtime over by restarting it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::Notebook;
use tandem_tests::notebook::code_notebook;
use tandem_tests::{TestServer, require_kernel_venv};

/// Generous: some steps start a kernel, and CI machines are small.
const WAIT: Duration = Duration::from_secs(90);

fn notebook() -> Value {
    code_notebook(&[
        ("hello", "print('hello')"),
        ("die", "import os\nos._exit(3)"),
    ])
}

struct Person {
    client: Client,
    id: String,
    name: String,
}

async fn person(server: &TestServer, email: &str) -> Person {
    let client = server.client_for(email).await.unwrap();
    let me = client.me().await.unwrap();
    Person {
        client,
        id: me.id,
        name: me.name,
    }
}

/// `POST /api/notebooks/{id}/{action}` as `who`: the status and the error code, if any.
async fn post(who: &Person, id: &str, action: &str, body: Value) -> (u16, String, String) {
    let path = format!("api/notebooks/{id}/{action}");
    match who.client.send_json(Method::POST, &path, Some(body)).await {
        Ok(_) => (202, String::new(), String::new()),
        Err(tandem_client::ApiError::Status {
            status,
            code,
            message,
        }) => (status, code, message),
        Err(error) => panic!("{action}: {error}"),
    }
}

async fn run(who: &Person, id: &str, cell: &str) -> (u16, String, String) {
    post(who, id, "execute", json!({"cell_ids": [cell]})).await
}

async fn sharing(who: &Person, id: &str, body: Option<Value>) -> Result<Value, (u16, String)> {
    let method = if body.is_some() {
        Method::PUT
    } else {
        Method::GET
    };
    let path = format!("api/notebooks/{id}/sharing");
    who.client
        .send_json(method, &path, body)
        .await
        .map_err(|e| (e.status().unwrap_or(0), e.code().unwrap_or("").to_owned()))
}

fn kernel(conn: &DocConnection) -> Value {
    Notebook::from_doc(conn.doc().clone())
        .state_value("kernel")
        .unwrap_or(Value::Null)
}

/// Waits until `state.kernel` is idle with `holder` (`None`: no holder key) and nothing queued.
async fn settled(conn: &DocConnection, status: &str, holder: Option<&Person>) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    let wanted = holder.map(|p| json!({"id": p.id, "name": p.name}));
    loop {
        let kernel = kernel(conn);
        let idle = kernel["status"] == status
            && kernel["queue"].as_array().is_some_and(Vec::is_empty)
            && kernel["running"].is_null();
        if idle && kernel.get("holder").cloned() == wanted {
            return kernel;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "state.kernel never became {status} with holder {wanted:?}: {kernel}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_shows_and_the_owner_decides_who_runs_in_it() {
    require_kernel_venv().unwrap();
    let server = TestServer::start().await.unwrap();
    let alice = person(&server, "alice@holder.test").await;
    let bob = person(&server, "bob@holder.test").await;
    let carol = person(&server, "carol@holder.test").await;
    let vera = person(&server, "vera@holder.test").await;
    let cody = person(&server, "cody@holder.test").await;
    let id = alice
        .client
        .create_notebook("whose runtime", Some(notebook()))
        .await
        .unwrap()
        .id;
    let grants = json!([
        {"email": "bob@holder.test", "role": "editor"},
        {"email": "carol@holder.test", "role": "editor"},
        {"email": "vera@holder.test", "role": "viewer"},
        {"email": "cody@holder.test", "role": "commenter"},
    ]);
    let shared = json!({"general_access": "restricted", "link_role": "viewer", "grants": grants});

    // --- The setting: on by default, round-trips, the owner's alone ---------------------------
    let answer = sharing(&alice, &id, Some(shared.clone())).await.unwrap();
    assert_eq!(answer["editors_may_run"], true, "on by default: {answer}");
    assert_eq!(
        sharing(&bob, &id, None).await.unwrap()["editors_may_run"],
        true
    );
    let off = json!({"general_access": "restricted", "link_role": "viewer",
                     "grants": grants, "editors_may_run": false});
    for who in [&bob, &vera, &cody] {
        let refused = sharing(who, &id, Some(off.clone())).await.unwrap_err();
        assert_eq!(refused.0, 403, "{}: {refused:?}", who.name);
    }
    for who in [&vera, &cody] {
        let refused = sharing(who, &id, None).await.unwrap_err();
        assert_eq!(refused.0, 403, "{} reads sharing: {refused:?}", who.name);
    }
    assert_eq!(
        sharing(&alice, &id, None).await.unwrap()["editors_may_run"],
        true
    );

    // --- Alice's run starts her runtime; everyone sees it is hers ----------------------------
    let bob_doc = DocConnection::connect(&server.ws_url(), &id, Some(bob.client.token()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), bob_doc.synced())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run(&alice, &id, "hello").await.0, 202);
    settled(&bob_doc, "idle", Some(&alice)).await;
    // Shared: Bob runs in it, and it stays Alice's.
    assert_eq!(run(&bob, &id, "hello").await.0, 202);
    settled(&bob_doc, "idle", Some(&alice)).await;
    let export = alice.client.export_ipynb(&id).await.unwrap().to_string();
    assert!(
        !export.contains("holder"),
        "state stays out of .ipynb: {export}"
    );

    // --- Alice turns it off: Bob is refused, Alice runs on -------------------------------------
    let answer = sharing(&alice, &id, Some(off.clone())).await.unwrap();
    assert_eq!(answer["editors_may_run"], false);
    // A PUT without the field keeps the setting.
    let answer = sharing(&alice, &id, Some(shared.clone())).await.unwrap();
    assert_eq!(answer["editors_may_run"], false, "{answer}");
    assert_eq!(
        sharing(&bob, &id, None).await.unwrap()["editors_may_run"],
        false
    );
    let (status, code, message) = run(&bob, &id, "hello").await;
    assert_eq!(
        (status, code.as_str()),
        (403, "runtime_not_shared"),
        "{message}"
    );
    assert!(
        message.starts_with(&format!(
            "This notebook's runtime belongs to {}, who does not let editors run code in it",
            alice.name
        )),
        "{message}"
    );
    for action in ["interrupt", "restart"] {
        let (status, code, message) = post(&bob, &id, action, Value::Null).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "runtime_not_shared"),
            "{action}: {message}"
        );
    }
    // Viewers and commenters cannot run at all, whatever the setting.
    for who in [&vera, &cody] {
        assert_eq!(run(who, &id, "hello").await.0, 403, "{}", who.name);
    }
    assert_eq!(run(&alice, &id, "hello").await.0, 202);
    settled(&bob_doc, "idle", Some(&alice)).await;

    // --- Alice's kernel dies: no holder; Bob's run starts a runtime of his own -----------------
    assert_eq!(run(&alice, &id, "die").await.0, 202);
    settled(&bob_doc, "dead", None).await;
    assert_eq!(run(&bob, &id, "hello").await.0, 202);
    settled(&bob_doc, "idle", Some(&bob)).await;
    // Now Carol, another editor, is refused in Bob's runtime: the owner's setting.
    let (status, code, message) = run(&carol, &id, "hello").await;
    assert_eq!(
        (status, code.as_str()),
        (403, "runtime_not_shared"),
        "{message}"
    );
    assert!(message.contains(&bob.name), "{message}");
    assert!(
        message.contains("the notebook's owner does not let"),
        "{message}"
    );

    // --- The owner: may not run in Bob's runtime, may interrupt it, takes it over by restarting
    let (status, code, message) = run(&alice, &id, "hello").await;
    assert_eq!(
        (status, code.as_str()),
        (403, "runtime_not_shared"),
        "{message}"
    );
    assert!(
        message.contains("restart the runtime to make it yours"),
        "{message}"
    );
    assert_eq!(post(&alice, &id, "interrupt", Value::Null).await.0, 202);
    assert_eq!(post(&alice, &id, "restart", Value::Null).await.0, 202);
    settled(&bob_doc, "idle", Some(&alice)).await;
    assert_eq!(run(&alice, &id, "hello").await.0, 202);
    let (status, code, message) = run(&bob, &id, "hello").await;
    assert_eq!(
        (status, code.as_str()),
        (403, "runtime_not_shared"),
        "{message}"
    );
    settled(&bob_doc, "idle", Some(&alice)).await;
}
