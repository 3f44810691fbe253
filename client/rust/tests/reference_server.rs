//! The client against the real `y-websocket@2` reference server on Node.
//!
//! Needs `TANDEM_NODE_MODULES` (the repo's test script sets it); without it these tests fail
//! with a message saying to run that script.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use tandem_client::reference::ReferenceServer;
use tandem_client::yrs::block::ClientID;
use tandem_client::yrs::{Doc, GetString, Options, Text, Transact};
use tandem_client::{ConnectOptions, ConnectionError, DocConnection, UpdateKind};
use tokio_tungstenite::tungstenite;

const WAIT: Duration = Duration::from_secs(10);

async fn reference() -> ReferenceServer {
    match ReferenceServer::from_env().await {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    }
}

/// Whether `error` is the connection itself being refused, reset or aborted, as while a
/// server is still coming up, rather than an answer from the server.
fn not_ready(error: &ConnectionError) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error,
        ConnectionError::WebSocket(tungstenite::Error::Io(io))
            if matches!(io.kind(), ConnectionRefused | ConnectionReset | ConnectionAborted)
    )
}

/// Opens a connection to `room`, retrying connections refused or reset for up to [`WAIT`]: a
/// readiness wait, since one run saw ECONNRESET from a reference server that was just
/// starting. Any other error, or a refusal or reset past the deadline, fails the test.
async fn open(server: &ReferenceServer, room: &str, options: ConnectOptions) -> DocConnection {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match DocConnection::connect_with(&server.ws_base(), room, options.clone()).await {
            Ok(conn) => return conn,
            Err(e) if not_ready(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("connecting to the reference server: {e}"),
        }
    }
}

async fn connect(server: &ReferenceServer, room: &str) -> DocConnection {
    let options = ConnectOptions {
        token: Some("ignored-token".to_owned()),
        ..ConnectOptions::default()
    };
    let conn = open(server, room, options).await;
    tokio::time::timeout(WAIT, conn.synced())
        .await
        .unwrap()
        .unwrap();
    conn
}

fn text_of(conn: &DocConnection) -> String {
    let text = conn.doc().get_or_insert_text("t");
    text.get_string(&conn.doc().transact())
}

fn insert(conn: &DocConnection, index: u32, chunk: &str) {
    let text = conn.doc().get_or_insert_text("t");
    text.insert(&mut conn.doc().transact_mut(), index, chunk);
}

#[tokio::test]
async fn concurrent_edits_converge_and_late_joiner_catches_up() {
    let server = reference().await;
    let a = connect(&server, "room-converge").await;
    let b = connect(&server, "room-converge").await;

    // Interleave edits from both sides without waiting for each other.
    for i in 0..50u32 {
        insert(&a, 0, &format!("a{i};"));
        let len = text_of(&b).len() as u32;
        insert(&b, len, &format!("b{i};"));
    }
    let converged = |conn: &DocConnection| {
        let text = text_of(conn);
        (0..50).all(|i| text.contains(&format!("a{i};")) && text.contains(&format!("b{i};")))
    };
    a.wait_until(|_| converged(&a), WAIT).await.unwrap();
    b.wait_until(|_| converged(&b), WAIT).await.unwrap();
    assert_eq!(text_of(&a), text_of(&b));
    assert!(a.updates_received() >= 1 && b.updates_received() >= 1);

    // A late joiner gets the whole state in the server's SyncStep2.
    let late = connect(&server, "room-converge").await;
    assert_eq!(text_of(&late), text_of(&a));
    assert_eq!(
        late.updates_received(),
        0,
        "the state came in SyncStep2, not as updates"
    );
}

#[tokio::test]
async fn seeded_random_edits_converge() {
    let server = reference().await;
    let mut conns = Vec::new();
    for seed in 1..=4u64 {
        let doc = Doc::with_options(Options {
            client_id: ClientID::new(seed),
            ..Options::default()
        });
        let options = ConnectOptions {
            token: None,
            doc: Some(doc),
            ..ConnectOptions::default()
        };
        let conn = open(&server, "room-random", options).await;
        conn.synced().await.unwrap();
        conns.push(conn);
    }
    // A tiny xorshift so the scenario is reproducible without a rand dependency.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |bound: u32| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % u64::from(bound.max(1))) as u32
    };
    for round in 0..200 {
        let conn = &conns[next(4) as usize];
        let text = conn.doc().get_or_insert_text("t");
        let mut txn = conn.doc().transact_mut();
        let len = text.len(&txn);
        if len > 10 && next(3) == 0 {
            let at = next(len - 5);
            text.remove_range(&mut txn, at, 1 + next(4));
        } else {
            text.insert(&mut txn, next(len + 1), &format!("<{round}>"));
        }
    }
    let expected = || text_of(&conns[0]);
    // Settle: wait until every replica shows the same text for a moment.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let first = expected();
        if conns.iter().all(|c| text_of(c) == first) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas did not converge"
        );
    }
}

#[tokio::test]
async fn awareness_reaches_other_clients() {
    let server = reference().await;
    let a = connect(&server, "room-awareness").await;
    let b = connect(&server, "room-awareness").await;
    a.set_awareness(serde_json::json!({"user": {"name": "alice"}}))
        .unwrap();
    let alice = a.client_id();
    let seen = || {
        b.with_awareness(|aw| {
            aw.iter().any(|(id, state)| {
                id.get() == alice && state.data.as_deref().is_some_and(|d| d.contains("alice"))
            })
        })
    };
    b.wait_until(|_| seen(), WAIT).await.unwrap();
}

#[tokio::test]
async fn update_events_carry_timestamps_and_close_reports_code() {
    let server = reference().await;
    let a = connect(&server, "room-events").await;
    let b = connect(&server, "room-events").await;
    let mut events = b.subscribe_updates();
    let before = std::time::Instant::now();
    insert(&a, 0, "x");
    let event = tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.kind, UpdateKind::Update);
    assert!(event.received_at >= before && event.len > 0 && event.seq == 1);
    assert_eq!(text_of(&b), "x");

    assert_eq!(a.close().await.map(|(code, _)| code), Some(1000));
    assert!(a.is_closed());
    assert!(matches!(
        a.send_raw(vec![0]),
        Err(ConnectionError::Closed(_))
    ));
}

#[tokio::test]
async fn many_connections_are_cheap() {
    let server = reference().await;
    let conns = futures_util::future::join_all(
        (0..200).map(|_| open(&server, "room-many", ConnectOptions::default())),
    )
    .await;
    for conn in &conns {
        tokio::time::timeout(WAIT, conn.synced())
            .await
            .unwrap()
            .unwrap();
    }
    insert(&conns[0], 0, "hi");
    for conn in &conns {
        conn.wait_until(|_| text_of(conn) == "hi", WAIT)
            .await
            .unwrap();
    }
}
