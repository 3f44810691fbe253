//! What one connection, person and notebook may take: each limit closes or refuses with a
//! clear code and reason, and the service goes on serving everyone else.

use std::time::Duration;

use futures_util::SinkExt;
use tandem_client::{ConnectionError, DocConnection};
use tandem_protocol::close;
use tokio_tungstenite::tungstenite::Message as Ws;
use yrs::sync::Message;
use yrs::{GetString, Text, Transact};

use crate::support::{TestServer, WAIT, append, expect_close, raw_connect, send, wait_for_text};

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009_not_a_reset() {
    // The default limit (16 MiB) and a 17 MiB frame, as the attack was reported.
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let id = owner.create_notebook("big", None).await.unwrap().id;
    let honest = server.connect(&owner, &id).await;
    let mut offender = raw_connect(&server, &id, owner.token()).await;
    let frame = vec![0u8; 17 * 1024 * 1024];
    offender.send(Ws::Binary(frame.into())).await.unwrap();
    let (code, reason) = expect_close(&mut offender).await;
    assert_eq!(code, close::TOO_BIG, "{reason}");
    assert!(reason.contains("larger than"), "{reason}");
    append(&honest, "t", "still here");
    let fresh = server.connect(&owner, &id).await;
    wait_for_text(&fresh, "t", "still here").await;
}

#[tokio::test]
async fn a_connection_over_its_message_rate_is_closed_with_1008() {
    let server = TestServer::start_with(|c| c.quotas.ws_messages_per_minute = 20).await;
    let owner = server.client("owner@example.com").await;
    let id = owner.create_notebook("chatty", None).await.unwrap().id;
    let mut offender = raw_connect(&server, &id, owner.token()).await;
    for _ in 0..40 {
        send(&mut offender, &Message::AwarenessQuery).await;
    }
    let (code, reason) = expect_close(&mut offender).await;
    assert_eq!(code, close::POLICY, "{reason}");
    assert!(reason.contains("20 messages a minute"), "{reason}");
    // Others are not charged for it.
    let honest = server.connect(&owner, &id).await;
    append(&honest, "t", "fine");
    wait_for_text(&honest, "t", "fine").await;
}

#[tokio::test]
async fn a_connection_over_its_byte_rate_is_closed_with_1008() {
    let server = TestServer::start_with(|c| {
        c.max_message_bytes = 64 * 1024;
        c.quotas.ws_bytes_per_minute = 256 * 1024;
    })
    .await;
    let owner = server.client("owner@example.com").await;
    let id = owner.create_notebook("flood", None).await.unwrap().id;
    let writer = server.connect(&owner, &id).await;
    let chunk = "x".repeat(48 * 1024);
    for _ in 0..8 {
        append(&writer, "t", &chunk);
    }
    let closed = tokio::time::timeout(WAIT, writer.closed()).await.unwrap();
    let (code, reason) = closed.expect("a close frame");
    assert_eq!(code, close::POLICY, "{reason}");
    assert!(reason.contains("bytes a minute"), "{reason}");
}

#[tokio::test]
async fn too_many_connections_of_one_person_are_refused_with_429() {
    let server = TestServer::start_with(|c| c.quotas.max_connections_per_user = 2).await;
    let owner = server.client("owner@example.com").await;
    let id = owner.create_notebook("tabs", None).await.unwrap().id;
    let first = server.connect(&owner, &id).await;
    let _second = server.connect(&owner, &id).await;
    match DocConnection::connect(&server.ws_url(), &id, Some(owner.token())).await {
        Err(ConnectionError::Rejected { status, body }) => {
            assert_eq!(status, 429);
            assert!(body.unwrap_or_default().contains("too_many_connections"));
        }
        other => panic!("a third connection was not refused: {other:?}"),
    }
    // Another person is unaffected, and a closed tab frees its place.
    let other = server.client("other@example.com").await;
    owner
        .send_json(
            reqwest::Method::PUT,
            &format!("api/notebooks/{id}/sharing"),
            Some(
                serde_json::json!({"general_access": "restricted", "link_role": "viewer",
                "grants": [{"email": "other@example.com", "role": "editor"}]}),
            ),
        )
        .await
        .unwrap();
    let _theirs = server.connect(&other, &id).await;
    first.close().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match DocConnection::connect(&server.ws_url(), &id, Some(owner.token())).await {
            Ok(_) => break,
            Err(ConnectionError::Rejected { status: 429, .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("{err}"),
        }
    }
}

#[tokio::test]
async fn a_notebook_cannot_grow_past_its_limit() {
    let limit = 256 * 1024;
    let server = TestServer::start_with(|c| c.quotas.max_notebook_bytes = limit).await;
    let owner = server.client("owner@example.com").await;
    let id = owner.create_notebook("grows", None).await.unwrap().id;
    let writer = server.connect(&owner, &id).await;
    let chunk = "y".repeat(32 * 1024);
    for _ in 0..16 {
        if writer.is_closed() {
            break;
        }
        append(&writer, "t", &chunk);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, reason) = tokio::time::timeout(WAIT, writer.closed())
        .await
        .unwrap()
        .expect("a close frame");
    assert_eq!(code, close::POLICY, "{reason}");
    assert!(reason.contains("size limit"), "{reason}");
    // What was stored stays under the limit (plus the one update that crossed it).
    let reader = server.connect(&owner, &id).await;
    let len = {
        let text = reader.doc().get_or_insert_text("t");
        text.get_string(&reader.doc().transact()).len()
    };
    assert!(
        len as u64 <= limit + chunk.len() as u64,
        "{len} bytes stored"
    );
    // Deleting still works, so a full notebook can be trimmed.
    {
        let text = reader.doc().get_or_insert_text("t");
        let mut txn = reader.doc().transact_mut();
        let all = text.len(&txn);
        text.remove_range(&mut txn, 0, all);
    }
    let probe = server.connect(&owner, &id).await;
    wait_for_text(&probe, "t", "").await;
    assert!(!reader.is_closed());
}
