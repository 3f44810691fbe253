//! The y-websocket protocol: convergence, late joiners, awareness.

use std::time::Duration;

use tandem_client::DocConnection;
use yrs::sync::{Awareness, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, StateVector, Transact, Update};

use crate::support::{
    RawSocket, Received, TestServer, WAIT, append, raw_connect, receive, send, text_of,
    wait_for_text,
};

#[tokio::test]
async fn concurrent_typists_converge_without_losing_keystrokes() {
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("typing", None).await.unwrap();
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(server.connect(&owner, &nb.id).await);
    }
    // Everyone types into the same text at once, interleaved.
    for round in 0..25 {
        for (i, conn) in conns.iter().enumerate() {
            append(conn, "t", &format!("<{i}:{round}>"));
        }
        tokio::task::yield_now().await;
    }
    let expected_len: usize = (0..4)
        .flat_map(|i| (0..25).map(move |r| format!("<{i}:{r}>").len()))
        .sum();
    let first = &conns[0];
    first
        .wait_until(
            |doc| {
                yrs::Text::len(&doc.get_or_insert_text("t"), &doc.transact()) as usize
                    == expected_len
            },
            WAIT,
        )
        .await
        .unwrap();
    let text = text_of(first, "t");
    for conn in &conns {
        wait_for_text(conn, "t", &text).await;
    }
    for i in 0..4 {
        for r in 0..25 {
            assert!(
                text.contains(&format!("<{i}:{r}>")),
                "lost keystrokes <{i}:{r}> in {text}"
            );
        }
    }
}

#[tokio::test]
async fn late_joiner_gets_the_document() {
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("late", None).await.unwrap();
    let early = server.connect(&owner, &nb.id).await;
    append(&early, "t", "written before anyone else came");
    wait_for_text(&early, "t", "written before anyone else came").await;
    // Give the update time to reach the server before the next client syncs.
    let late = server.connect(&owner, &nb.id).await;
    wait_for_text(&late, "t", "written before anyone else came").await;
}

#[tokio::test]
async fn late_joiner_gets_only_what_it_lacks() {
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("diff", None).await.unwrap();
    let first = server.connect(&owner, &nb.id).await;
    let big = "x".repeat(10_000);
    append(&first, "t", &big);
    wait_for_text(&server.connect(&owner, &nb.id).await, "t", &big).await;

    // A newcomer that holds nothing gets everything...
    let mut raw = raw_connect(&server, &nb.id, owner.token()).await;
    send(
        &mut raw,
        &Message::Sync(SyncMessage::SyncStep1(StateVector::default())),
    )
    .await;
    let full = step2(&mut raw).await;
    assert!(full.len() > 10_000, "full state is {} bytes", full.len());

    // ...and one that already holds it all gets an empty diff.
    let sv = first.doc().transact().state_vector();
    send(&mut raw, &Message::Sync(SyncMessage::SyncStep1(sv))).await;
    let diff = step2(&mut raw).await;
    assert!(
        Update::decode_v1(&diff).unwrap().is_empty(),
        "diff of {} bytes",
        diff.len()
    );
}

async fn step2(raw: &mut RawSocket) -> Vec<u8> {
    loop {
        match receive(raw).await {
            Received::Message(Message::Sync(SyncMessage::SyncStep2(update))) => return update,
            Received::Message(_) => {}
            other => panic!("expected a sync step 2, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn awareness_is_relayed_and_cleared_on_leave() {
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("presence", None).await.unwrap();
    let alice = server.connect(&owner, &nb.id).await;
    let bob = server.connect(&owner, &nb.id).await;
    alice
        .set_awareness(serde_json::json!({"user": {"name": "Alice"}}))
        .unwrap();
    let alice_id = alice.client_id();
    let seen = |conn: &DocConnection| {
        conn.with_awareness(|a: &Awareness| {
            a.state::<serde_json::Value>(yrs::ClientID::new(alice_id))
        })
    };
    wait(|| seen(&bob).is_some_and(|s| s["user"]["name"] == "Alice")).await;

    // A client that joins later learns who is already here.
    let carol = server.connect(&owner, &nb.id).await;
    wait(|| seen(&carol).is_some()).await;

    // Alice leaves without saying goodbye: the server clears her state for the others.
    drop(alice);
    wait(|| seen(&bob).is_none()).await;
}

#[tokio::test]
async fn query_awareness_is_answered() {
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("q", None).await.unwrap();
    let alice = server.connect(&owner, &nb.id).await;
    alice
        .set_awareness(serde_json::json!({"user": "alice"}))
        .unwrap();
    let alice_id = alice.client_id();
    let bob = server.connect(&owner, &nb.id).await;
    let alice_key = yrs::ClientID::new(alice_id);
    wait(|| bob.with_awareness(|a: &Awareness| a.state::<serde_json::Value>(alice_key).is_some()))
        .await;

    let mut raw = raw_connect(&server, &nb.id, owner.token()).await;
    // On joining: the server's sync step 1, then who is here.
    assert!(matches!(
        receive(&mut raw).await,
        Received::Message(Message::Sync(SyncMessage::SyncStep1(_)))
    ));
    assert!(matches!(
        receive(&mut raw).await,
        Received::Message(Message::Awareness(_))
    ));
    send(&mut raw, &Message::AwarenessQuery).await;
    match receive(&mut raw).await {
        Received::Message(Message::Awareness(update)) => {
            assert!(
                update.clients.contains_key(&alice_key),
                "answer lacks alice: {update:?}"
            );
        }
        other => panic!("expected an awareness answer, got {other:?}"),
    }
}

/// Polls `cond` until it holds, failing after [`WAIT`].
pub async fn wait(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An execute waits until the room holds the caller's edits (`RoomHandle::includes`): the
/// room answers after the batch that brings them, not by being polled, and not before.
#[tokio::test]
async fn the_room_answers_once_it_includes_a_state_vector() {
    use yrs::Text;
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("includes", None).await.unwrap();
    let watcher = server.connect(&owner, &nb.id).await;
    let room = server.app.rooms.get(&nb.id);

    // A client's edit that has not been sent yet.
    let client = yrs::Doc::new();
    let text = client.get_or_insert_text("t");
    text.insert(&mut client.transact_mut(), 0, "typed just before the run");
    let wanted = client.transact().state_vector();
    let waiting = {
        let (room, wanted) = (room.clone(), wanted.clone());
        tokio::spawn(async move { room.includes(wanted, Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "answered before the edit arrived");

    // The edit arrives over the WebSocket: the wait ends, and everyone has the edit.
    let mut raw = raw_connect(&server, &nb.id, owner.token()).await;
    let update = client
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    send(&mut raw, &Message::Sync(SyncMessage::Update(update))).await;
    let included = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert!(included.unwrap());
    wait_for_text(&watcher, "t", "typed just before the run").await;
    // Asked again once it is there, the room answers at once (after its next batch).
    assert!(room.includes(wanted, WAIT).await.unwrap());

    // A state the room never sees: a bounded wait, then no.
    let mut unseen = StateVector::default();
    unseen.set_max(yrs::ClientID::new(424_242), 7);
    let started = std::time::Instant::now();
    assert!(
        !room
            .includes(unseen, Duration::from_millis(300))
            .await
            .unwrap()
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}
