//! Attacks on the document, presence and resources of a real `tandem serve`, each answered
//! safely (issue 13, points 8–11): forged runtime output, spoofed cursors, oversized frames,
//! too many connections, git URLs pointing at the server's own network.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::{ConnectionError, DocConnection};
use tandem_crdt::Notebook;
use tandem_tests::TestServer;
use yrs::sync::Message;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};

const WAIT: Duration = Duration::from_secs(10);

/// A notebook whose code cell ran (imported with its output and count).
fn ran() -> Value {
    json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"id": "c1", "cell_type": "code", "source": "6 * 7", "metadata": {},
         "execution_count": 3,
         "outputs": [{"output_type": "execute_result", "execution_count": 3,
                      "data": {"text/plain": "42"}, "metadata": {}}]}]})
}

async fn connect(server: &TestServer, id: &str, token: Option<&str>) -> DocConnection {
    let conn = DocConnection::connect(&server.ws_url(), id, token)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, conn.synced())
        .await
        .unwrap()
        .unwrap();
    conn
}

#[tokio::test]
async fn an_editor_cannot_forge_outputs_or_who_ran_a_cell() {
    let server = TestServer::start().await.unwrap();
    let owner = server.client_for("owner@example.com").await.unwrap();
    let id = owner.create_notebook("ran", Some(ran())).await.unwrap().id;
    let editor = connect(&server, &id, Some(owner.token())).await;
    let nb = Notebook::from_doc(editor.doc().clone());
    nb.set_execution_count("c1", Some(1337)).unwrap();
    nb.set_execution_by("c1", "someone", "Alice").unwrap();
    {
        let mut txn = yrs::Transact::transact_mut(nb.doc());
        yrs::Map::insert(nb.state(), &mut txn, "kernel", "forged");
    }
    let reason = editor.wait_permission_denied(WAIT).await.unwrap();
    assert!(reason.contains("written only by"), "{reason}");
    editor
        .wait_until(
            |doc| {
                let nb = Notebook::from_doc(doc.clone());
                nb.cells()[0].execution_count == Some(3) && nb.execution_by("c1").is_none()
            },
            WAIT,
        )
        .await
        .expect("the forger's copy re-synced");
    assert!(!editor.is_closed());
    let exported = owner.export_ipynb(&id).await.unwrap();
    assert_eq!(exported["cells"][0]["execution_count"], 3);
    assert_eq!(
        exported["cells"][0]["outputs"][0]["data"]["text/plain"],
        "42"
    );
}

fn awareness(client: u64, clock: u32, json: &str) -> Message {
    Message::Awareness(AwarenessUpdate {
        clients: [(
            yrs::ClientID::new(client),
            AwarenessUpdateEntry {
                clock,
                json: Arc::from(json),
            },
        )]
        .into(),
    })
}

fn name_of(conn: &DocConnection, client: u64) -> Option<String> {
    conn.with_awareness(|a| a.state::<Value>(yrs::ClientID::new(client)))
        .and_then(|s| s["user"]["name"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn a_link_viewer_cannot_rename_someone_elses_cursor_or_flood_presence() {
    let server = TestServer::start_with(&["--max-awareness-bytes", "4096"])
        .await
        .unwrap();
    let owner = server.client_for("owner@example.com").await.unwrap();
    let id = owner.create_notebook("shared", None).await.unwrap().id;
    owner
        .send_json(
            reqwest::Method::PUT,
            &format!("api/notebooks/{id}/sharing"),
            Some(
                json!({"general_access": "anyone_with_link", "link_role": "viewer",
                        "grants": []}),
            ),
        )
        .await
        .unwrap();
    let alice = connect(&server, &id, Some(owner.token())).await;
    alice
        .set_awareness(json!({"user": {"name": "Alice"}}))
        .unwrap();
    let watcher = connect(&server, &id, Some(owner.token())).await;
    let alice_id = alice.client_id();
    let deadline = tokio::time::Instant::now() + WAIT;
    while name_of(&watcher, alice_id).is_none() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let viewer = connect(&server, &id, None).await;
    viewer
        .send_message(&awareness(alice_id, 999, r#"{"user":{"name":"Mallory"}}"#))
        .unwrap();
    viewer
        .send_message(&awareness(55_555, 1, r#"{"user":{"name":"Viewer"}}"#))
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while name_of(&watcher, 55_555).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the viewer's own state never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(name_of(&watcher, alice_id).as_deref(), Some("Alice"));

    // One large state: refused with 1009, relayed to nobody.
    let big = format!(r#"{{"user":{{"name":"{}"}}}}"#, "x".repeat(64 * 1024));
    viewer.send_message(&awareness(55_555, 2, &big)).unwrap();
    let (code, reason) = tokio::time::timeout(WAIT, viewer.closed())
        .await
        .unwrap()
        .expect("a close frame");
    assert_eq!(code, 1009, "{reason}");
    // The viewer left, so its state went with it; the large one never arrived.
    assert_ne!(
        name_of(&watcher, 55_555).map(|name| name.len()),
        Some(64 * 1024)
    );
    assert_eq!(name_of(&watcher, alice_id).as_deref(), Some("Alice"));
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009_not_a_reset() {
    let server = TestServer::start().await.unwrap();
    let owner = server.client_for("owner@example.com").await.unwrap();
    let id = owner.create_notebook("limits", None).await.unwrap().id;
    // A 17 MiB frame against the default 16 MiB limit.
    let big = connect(&server, &id, Some(owner.token())).await;
    big.send_raw(vec![0; 17 * 1024 * 1024]).unwrap();
    let (code, reason) = tokio::time::timeout(WAIT, big.closed())
        .await
        .unwrap()
        .expect("a close frame, not a reset");
    assert_eq!(code, 1009, "{reason}");
}

#[tokio::test]
async fn too_many_connections_are_refused_before_the_upgrade() {
    let server = TestServer::start_with(&["--max-connections-per-user", "3"])
        .await
        .unwrap();
    let owner = server.client_for("owner@example.com").await.unwrap();
    let id = owner.create_notebook("tabs", None).await.unwrap().id;
    let _one = connect(&server, &id, Some(owner.token())).await;
    let _two = connect(&server, &id, Some(owner.token())).await;
    // Another token of the same person counts too.
    let second_token = server.token_for("owner@example.com").await.unwrap();
    let _three = connect(&server, &id, Some(&second_token)).await;
    match DocConnection::connect(&server.ws_url(), &id, Some(owner.token())).await {
        Err(ConnectionError::Rejected { status, body }) => {
            assert_eq!(status, 429);
            assert!(body.unwrap_or_default().contains("too_many_connections"));
        }
        other => panic!("a fourth connection was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn git_imports_never_reach_the_servers_own_network() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await.unwrap();
    let owner = server.client_for("owner@example.com").await.unwrap();
    // An "internal service" on loopback that would answer anyone.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
        }
    });
    for url in [
        format!("http://127.0.0.1:{port}/r.git"),
        format!("http://127.1:{port}/r.git"),
        format!("http://0x7f000001:{port}/r.git"),
        format!("http://[::1]:{port}/r.git"),
        format!("http://localhost:{port}/r.git"),
        "https://169.254.169.254/latest.git".to_owned(),
    ] {
        let err = owner
            .send_json(
                reqwest::Method::POST,
                "api/notebooks/import/git",
                Some(json!({"url": url, "path": "nb.ipynb"})),
            )
            .await
            .expect_err("refused");
        let code = err.code().unwrap_or_default().to_owned();
        assert!(
            code == "invalid_url" || code == "git_unavailable",
            "{url}: {err}"
        );
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// The server's resident memory, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn updates_with_missing_dependencies_are_not_held_in_memory() {
    use yrs::updates::encoder::Encode;
    use yrs::{ReadTxn, Text, Transact};
    let server = TestServer::start().await.unwrap();
    let owner = server.client_for("owner@example.com").await.unwrap();
    let id = owner.create_notebook("gaps", None).await.unwrap().id;
    let conn = connect(&server, &id, Some(owner.token())).await;
    let pid = server.pid().unwrap();
    let before = rss(pid);
    // 32 MiB of updates, each depending on a change the server never gets.
    let chunk = "z".repeat(1024 * 1024);
    for _ in 0..32 {
        let doc = yrs::Doc::new();
        let text = doc.get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, "never sent");
        let sent_from = doc.transact().state_vector();
        text.insert(&mut doc.transact_mut(), 0, &chunk);
        let gapped = doc.transact().encode_state_as_update_v1(&sent_from);
        conn.send_raw(Message::Sync(yrs::sync::SyncMessage::Update(gapped)).encode_v1())
            .unwrap();
    }
    // Everything was read and dropped: the connection is still fine and the server small.
    conn.send_message(&Message::AwarenessQuery).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!conn.is_closed(), "{:?}", conn.closed().await);
    let grown = rss(pid).saturating_sub(before);
    assert!(
        grown < 24 * 1024 * 1024,
        "the server grew by {} MiB after 32 MiB of incomplete updates",
        grown / (1024 * 1024)
    );
    let exported = owner.export_ipynb(&id).await.unwrap();
    assert!(!exported.to_string().contains("zzzz"));
}
