//! Hostile and unlucky clients: each is closed with a precise reason, alone, and the
//! document is unharmed.

use std::time::Duration;

use futures_util::SinkExt;
use tandem_client::{ConnectionError, DocConnection};
use tandem_protocol::close;
use tokio_tungstenite::tungstenite::Message as Ws;
use yrs::sync::{Message, SyncMessage};

use crate::support::{TestServer, WAIT, append, expect_close, raw_connect, text_of, wait_for_text};

/// Sends `frame` from a raw connection and checks that only that connection is closed, with
/// `code` and a reason containing `reason`, while an honest client goes on editing.
async fn closes_only_the_offender(frame: Ws, code: u16, reason: &str) {
    let server = TestServer::start_with(|c| c.max_message_bytes = 64 * 1024).await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("robust", None).await.unwrap();
    let honest = server.connect(&owner, &nb.id).await;
    append(&honest, "t", "before");
    let watcher = server.connect(&owner, &nb.id).await;
    wait_for_text(&watcher, "t", "before").await;

    let mut offender = raw_connect(&server, &nb.id, owner.token()).await;
    offender.send(frame).await.unwrap();
    let (got_code, got_reason) = expect_close(&mut offender).await;
    assert_eq!(got_code, code, "close reason: {got_reason}");
    assert!(
        got_reason.contains(reason),
        "reason {got_reason:?} lacks {reason:?}"
    );

    append(&honest, "t", " after");
    wait_for_text(&watcher, "t", "before after").await;
    assert!(!honest.is_closed() && !watcher.is_closed());
    let fresh = server.connect(&owner, &nb.id).await;
    wait_for_text(&fresh, "t", "before after").await;
}

#[tokio::test]
async fn garbage_frame() {
    closes_only_the_offender(
        Ws::Binary(vec![0xff, 0xfe, 0x01].into()),
        close::MALFORMED,
        "malformed",
    )
    .await;
}

#[tokio::test]
async fn truncated_message() {
    // A sync update announcing 50 bytes and carrying 2.
    closes_only_the_offender(
        Ws::Binary(vec![0, 2, 50, 1, 2].into()),
        close::MALFORMED,
        "malformed",
    )
    .await;
}

#[tokio::test]
async fn update_that_does_not_decode() {
    let bogus = Message::Sync(SyncMessage::Update(vec![200, 1, 2, 3, 4, 5, 6, 7]));
    let frame = yrs::updates::encoder::Encode::encode_v1(&bogus);
    closes_only_the_offender(Ws::Binary(frame.into()), close::MALFORMED, "update").await;
}

#[tokio::test]
async fn unknown_message_type() {
    closes_only_the_offender(
        Ws::Binary(vec![7, 1, 0].into()),
        close::MALFORMED,
        "unsupported message type 7",
    )
    .await;
}

#[tokio::test]
async fn text_frame() {
    closes_only_the_offender(Ws::Text("hello".into()), close::MALFORMED, "text frames").await;
}

#[tokio::test]
async fn oversized_message() {
    closes_only_the_offender(
        Ws::Binary(vec![0u8; 200 * 1024].into()),
        close::TOO_BIG,
        "larger than 65536",
    )
    .await;
}

#[tokio::test]
async fn slow_reader_is_disconnected_not_skipped() {
    let server = TestServer::start_with(|c| c.outbound_queue = 4).await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("slow", None).await.unwrap();
    let writer = server.connect(&owner, &nb.id).await;
    // This client never reads while the writer floods the room with large updates, so its
    // socket buffers and then its queue fill up.
    let mut sleeper = raw_connect(&server, &nb.id, owner.token()).await;
    let chunk = "y".repeat(64 * 1024);
    for _ in 0..200 {
        append(&writer, "t", &chunk);
        // One update per server batch, so the sleeper's queue sees many frames.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let expected_len = 200 * chunk.len();
    writer
        .wait_until(
            |doc| {
                yrs::Text::len(&doc.get_or_insert_text("t"), &yrs::Transact::transact(doc)) as usize
                    == expected_len
            },
            WAIT,
        )
        .await
        .unwrap();
    let (code, reason) = expect_close(&mut sleeper).await;
    assert_eq!(code, close::SLOW_READER, "{reason}");
    // The writer was not affected, and a reconnecting client resyncs everything.
    assert!(!writer.is_closed());
    let again = server.connect(&owner, &nb.id).await;
    assert_eq!(text_of(&again, "t").len(), expected_len);
}

#[tokio::test]
async fn silent_client_is_dropped_by_keepalive() {
    let server = TestServer::start_with(|c| c.keepalive = Duration::from_millis(100)).await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("ka", None).await.unwrap();
    // A raw socket that is not polled never answers pings.
    let mut silent = raw_connect(&server, &nb.id, owner.token()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (code, reason) = expect_close(&mut silent).await;
    assert_eq!(
        (code, reason.as_str()),
        (close::GOING_AWAY, "keepalive timeout")
    );
    // A client that is polled (and so answers pings) stays.
    let alive = server.connect(&owner, &nb.id).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!alive.is_closed());
}

#[tokio::test]
async fn websocket_access_is_checked_before_the_upgrade() {
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let stranger = server.client("stranger@example.com").await;
    let nb = owner.create_notebook("private", None).await.unwrap();
    let ws = server.ws_url();
    let status = |r: Result<DocConnection, ConnectionError>| match r {
        Err(ConnectionError::Rejected { status, .. }) => status,
        other => panic!("expected a refused upgrade, got {other:?}"),
    };
    assert_eq!(status(DocConnection::connect(&ws, &nb.id, None).await), 401);
    assert_eq!(
        status(DocConnection::connect(&ws, &nb.id, Some("tdm_bogus")).await),
        401
    );
    // Someone else's notebook and a notebook that does not exist look the same.
    assert_eq!(
        status(DocConnection::connect(&ws, &nb.id, Some(stranger.token())).await),
        404
    );
    assert_eq!(
        status(DocConnection::connect(&ws, "no-such-id", Some(owner.token())).await),
        404
    );
}

#[tokio::test]
async fn deleting_a_notebook_closes_its_connections() {
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("doomed", None).await.unwrap();
    let conn = server.connect(&owner, &nb.id).await;
    owner.delete_notebook(&nb.id).await.unwrap();
    let closed = tokio::time::timeout(WAIT, conn.closed()).await.unwrap();
    assert_eq!(closed, Some((close::POLICY, "notebook deleted".to_owned())));
    let again = DocConnection::connect(&server.ws_url(), &nb.id, Some(owner.token())).await;
    assert!(matches!(
        again,
        Err(ConnectionError::Rejected { status: 404, .. })
    ));
}
