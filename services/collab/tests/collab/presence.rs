//! Awareness (presence, cursors) is open to every role, so it is where an anonymous link
//! viewer could reach everyone: a connection speaks only for the client ids it announced
//! first, and a state has a size cap.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::DocConnection;
use tandem_protocol::close;
use yrs::sync::Message;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};

use crate::support::{Received, TestServer, WAIT, receive, send};

/// A notebook anyone with the link may view, its owner present with a name.
async fn setup(
    tweak: impl FnOnce(&mut tandem_collab::Config),
) -> (TestServer, String, DocConnection, DocConnection) {
    let server = TestServer::start_with(tweak).await;
    let owner = server.client("owner@example.com").await;
    let id = owner.create_notebook("presence", None).await.unwrap().id;
    owner
        .send_json(
            Method::PUT,
            &format!("api/notebooks/{id}/sharing"),
            Some(
                json!({"general_access": "anyone_with_link", "link_role": "viewer",
                        "grants": []}),
            ),
        )
        .await
        .unwrap();
    let alice = server.connect(&owner, &id).await;
    alice
        .set_awareness(json!({"user": {"name": "Alice", "color": "#f00"}, "cell": "a"}))
        .unwrap();
    let watcher = server.connect(&owner, &id).await;
    wait_for_name(&watcher, alice.client_id(), "Alice").await;
    (server, id, alice, watcher)
}

fn name_of(conn: &DocConnection, client: u64) -> Option<String> {
    conn.with_awareness(|a| a.state::<Value>(yrs::ClientID::new(client)))
        .and_then(|state| state["user"]["name"].as_str().map(str::to_owned))
}

/// A raw WebSocket without a credential: an anonymous link visitor.
async fn anonymous(server: &TestServer, id: &str) -> crate::support::RawSocket {
    let url = format!("{}/{id}", server.ws_url());
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn wait_for_name(conn: &DocConnection, client: u64, name: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while name_of(conn, client).as_deref() != Some(name) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{client} never showed as {name}: {:?}",
            name_of(conn, client)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

#[tokio::test]
async fn a_link_viewer_cannot_speak_for_someone_elses_client_id() {
    let (server, id, alice, watcher) = setup(|_| {}).await;
    let alice_id = alice.client_id();
    // An anonymous viewer renames and moves Alice's cursor, then tries to remove her.
    let mut mallory = anonymous(&server, &id).await;
    let forged = r##"{"user":{"name":"Mallory","color":"#000"},"cell":"b"}"##;
    send(&mut mallory, &awareness(alice_id, 1000, forged)).await;
    send(&mut mallory, &awareness(alice_id, 1001, "null")).await;
    // Its own id is fine.
    send(
        &mut mallory,
        &awareness(424_242, 1, r#"{"user":{"name":"Mallory"}}"#),
    )
    .await;
    wait_for_name(&watcher, 424_242, "Mallory").await;
    assert_eq!(name_of(&watcher, alice_id).as_deref(), Some("Alice"));
    // A newcomer sees Alice as she is.
    let owner = server.client("owner@example.com").await;
    let late = server.connect(&owner, &id).await;
    wait_for_name(&late, alice_id, "Alice").await;
    assert_eq!(name_of(&late, 424_242).as_deref(), Some("Mallory"));
    // Alice's own updates still pass.
    alice
        .set_awareness(json!({"user": {"name": "Alice B."}}))
        .unwrap();
    wait_for_name(&watcher, alice_id, "Alice B.").await;
}

#[tokio::test]
async fn an_oversized_awareness_state_is_refused_with_1009() {
    let (server, id, _alice, watcher) = setup(|c| c.quotas.max_awareness_bytes = 1024).await;
    let mut viewer = anonymous(&server, &id).await;
    let big = format!(r#"{{"user":{{"name":"{}"}}}}"#, "x".repeat(4096));
    send(&mut viewer, &awareness(777, 1, &big)).await;
    let (code, reason) = loop {
        match receive(&mut viewer).await {
            Received::Close(code, reason) => break (code, reason),
            Received::Message(_) => {}
            Received::Ended => panic!("no close frame"),
        }
    };
    assert_eq!(code, close::TOO_BIG, "{reason}");
    assert!(reason.contains("1024"), "{reason}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(name_of(&watcher, 777), None, "the state reached a peer");
}
