//! Presence at classroom scale: one awareness change reaches each peer as one frame.
//!
//! Stock y-websocket clients send back every awareness change they apply. A server that relays
//! whatever it receives turns each change into N frames per peer (N³ in all); one that relays
//! only what changed its own state, as the reference server does, sends each peer one
//! (issue 14). `tests/interop/node/presence_clients.mjs` runs 20 stock clients in one notebook,
//! has one of them change its state, renew it (a newer clock only) and leave, and counts, after
//! every client's echo has been handled, the frames describing that client at each peer.
//!
//! The same script runs against the Node reference server as a control: there each peer gets
//! exactly one frame per step, which shows the script counts what it should.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::reference::ReferenceServer;
use tandem_tests::TestServer;
use tandem_tests::cluster::NodeClient;

const CLIENTS: usize = 20;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the script and returns, per step, the frames each peer received.
async fn frames_per_peer(ws_url: &str, notebook_id: &str, token: &str) -> Value {
    let plan = json!({
        "ws_url": ws_url,
        "notebook_id": notebook_id,
        "token": token,
        "clients": CLIENTS,
    });
    let client = NodeClient::spawn("presence_clients.mjs", "presence clients", &plan).unwrap();
    client.finish(TIMEOUT).await.unwrap()["steps"].clone()
}

/// Every peer got exactly one frame for each step: at least one (it saw the step) and no more.
fn assert_one_frame_per_peer(server: &str, steps: &Value) {
    for step in ["change", "renewal", "leave"] {
        let counts: Vec<u64> = steps[step]
            .as_array()
            .unwrap_or_else(|| panic!("{server}: no counts for {step}: {steps}"))
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert_eq!(counts.len(), CLIENTS - 1, "{server}: {step}: {counts:?}");
        assert!(
            counts.iter().all(|n| *n == 1),
            "{server}: one awareness {step} should reach each peer as exactly one frame; \
             frames per peer: {counts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_awareness_change_is_one_frame_per_peer() {
    let server = TestServer::start().await.unwrap();
    let client = server.client_for("teacher@example.com").await.unwrap();
    let created = client.create_notebook("classroom", None).await.unwrap();
    let steps = frames_per_peer(&server.ws_url(), &created.id, client.token()).await;
    assert_one_frame_per_peer("Tandem", &steps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_sends_one_frame_per_peer_too() {
    let server = ReferenceServer::from_env().await.unwrap();
    let ws_url = format!("{}/ws", server.ws_base());
    let steps = frames_per_peer(&ws_url, "presence-control", "no-token").await;
    assert_one_frame_per_peer("the reference server", &steps);
    server.stop().await;
}
