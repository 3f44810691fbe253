//! The client against a scripted WebSocket server on `127.0.0.1:0`, for what the reference
//! server never does: refuse an upgrade, deny permission, close with a code, and for checking
//! the exact frames the client sends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
#![allow(clippy::result_large_err)] // tungstenite's handshake callback signature

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tandem_client::yrs::encoding::read::Cursor;
use tandem_client::yrs::sync::{Message, MessageReader, SyncMessage};
use tandem_client::yrs::updates::decoder::{Decode, DecoderV1};
use tandem_client::yrs::updates::encoder::Encode;
use tandem_client::yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};
use tandem_client::{ConnectionError, DocConnection, close};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

const WAIT: Duration = Duration::from_secs(10);

fn decode(frame: &[u8]) -> Vec<Message> {
    let mut decoder = DecoderV1::new(Cursor::new(frame));
    MessageReader::new(&mut decoder)
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn refused_upgrade_is_a_typed_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 2048];
        let _ = socket.read(&mut buf).await;
        let body = r#"{"error":{"code":"forbidden","message":"no"}}"#;
        let answer = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(answer.as_bytes()).await.unwrap();
    });
    let err = DocConnection::connect(&format!("ws://{addr}/ws"), "nb", Some("t"))
        .await
        .unwrap_err();
    match err {
        ConnectionError::Rejected { status, .. } => assert_eq!(status, 403),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn speaks_the_client_side_of_sync_and_reports_denials_and_close_codes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_hdr_async(
            socket,
            |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                assert_eq!(req.uri().path(), "/ws/nb-1");
                assert_eq!(req.uri().query(), Some("token=secret"));
                Ok(resp)
            },
        )
        .await
        .unwrap();
        let server_doc = Doc::new();
        server_doc
            .get_or_insert_text("t")
            .insert(&mut server_doc.transact_mut(), 0, "server;");

        // The client opens with SyncStep1.
        let first = ws.next().await.unwrap().unwrap().into_data();
        let Message::Sync(SyncMessage::SyncStep1(client_sv)) = decode(&first).remove(0) else {
            panic!("first frame is not SyncStep1");
        };
        let step2 = server_doc.transact().encode_state_as_update_v1(&client_sv);
        // Step 2 and step 1 in one frame, as yrs servers send them.
        let mut both = Message::Sync(SyncMessage::SyncStep2(step2)).encode_v1();
        both.extend(Message::Sync(SyncMessage::SyncStep1(StateVector::default())).encode_v1());
        ws.send(WsMessage::Binary(both.into())).await.unwrap();

        // Then: its SyncStep2 answer, then its local edits as Updates, in order.
        let mut seen = Vec::new();
        while seen.len() < 11 {
            let frame = ws.next().await.unwrap().unwrap().into_data();
            for message in decode(&frame) {
                match message {
                    Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u)) => {
                        server_doc
                            .transact_mut()
                            .apply_update(Update::decode_v1(&u).unwrap())
                            .unwrap();
                        seen.push(());
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        let text = server_doc
            .get_or_insert_text("t")
            .get_string(&server_doc.transact());
        ws.send(WsMessage::Binary(
            Message::Auth(Some("read-only".into())).encode_v1().into(),
        ))
        .await
        .unwrap();
        ws.send(WsMessage::Close(Some(CloseFrame {
            code: close::POLICY.into(),
            reason: "access revoked".into(),
        })))
        .await
        .unwrap();
        while ws.next().await.is_some() {}
        text
    });

    let conn = DocConnection::connect(&format!("ws://{addr}/ws"), "nb-1", Some("secret"))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, conn.synced())
        .await
        .unwrap()
        .unwrap();
    let text = conn.doc().get_or_insert_text("t");
    assert_eq!(text.get_string(&conn.doc().transact()), "server;");
    for i in 0..10 {
        let len = text.len(&conn.doc().transact());
        text.insert(&mut conn.doc().transact_mut(), len, &format!("{i};"));
    }
    assert_eq!(
        conn.wait_permission_denied(WAIT).await.unwrap(),
        "read-only"
    );
    assert_eq!(conn.permission_denied().as_deref(), Some("read-only"));
    assert_eq!(
        conn.closed().await,
        Some((close::POLICY, "access revoked".into()))
    );
    assert_eq!(server.await.unwrap(), "server;0;1;2;3;4;5;6;7;8;9;");
}

/// `hold_until` keeps the client's writes back until `release`, or until its deadline, and a
/// close writes what is held first: the updates arrive, in order, only then.
#[tokio::test]
async fn held_writes_go_out_on_release_on_their_deadline_or_at_close() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (frames, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
        // What the server holds after each update frame.
        let doc = Doc::new();
        let text = doc.get_or_insert_text("t");
        while let Some(Ok(frame)) = ws.next().await {
            let text = match &frame {
                WsMessage::Binary(bytes) => {
                    let updates = decode(bytes)
                        .into_iter()
                        .filter_map(|message| match message {
                            Message::Sync(SyncMessage::Update(update)) => Some(update),
                            _ => None,
                        });
                    let mut any = false;
                    for update in updates {
                        doc.transact_mut()
                            .apply_update(Update::decode_v1(&update).unwrap())
                            .unwrap();
                        any = true;
                    }
                    if !any {
                        continue;
                    }
                    text.get_string(&doc.transact())
                }
                WsMessage::Close(_) => "<close>".to_owned(),
                _ => continue,
            };
            let _ = frames.send((text, tokio::time::Instant::now()));
            if matches!(frame, WsMessage::Close(_)) {
                let _ = ws.close(None).await;
                break;
            }
        }
    });
    let conn = DocConnection::connect(&format!("ws://{addr}/ws"), "nb", None)
        .await
        .unwrap();
    let text = conn.doc().get_or_insert_text("t");
    let quiet = |received: &mut tokio::sync::mpsc::UnboundedReceiver<_>| {
        assert!(received.try_recv().is_err(), "a held write went out");
    };
    // What the server holds after the next frame, and when it came.
    async fn next(
        received: &mut tokio::sync::mpsc::UnboundedReceiver<(String, tokio::time::Instant)>,
    ) -> (String, tokio::time::Instant) {
        tokio::time::timeout(WAIT, received.recv())
            .await
            .expect("no frame in time")
            .expect("the server stopped")
    }

    // Until release.
    conn.hold_until(tokio::time::Instant::now() + Duration::from_secs(60));
    text.insert(&mut conn.doc().transact_mut(), 0, "a");
    text.insert(&mut conn.doc().transact_mut(), 1, "b");
    tokio::time::sleep(Duration::from_millis(200)).await;
    quiet(&mut received);
    conn.release();
    let (got, _) = next(&mut received).await;
    assert_eq!(got, "a");
    let (got, _) = next(&mut received).await;
    assert_eq!(got, "ab", "in commit order");

    // Until the deadline.
    let held_at = tokio::time::Instant::now();
    conn.hold_until(held_at + Duration::from_millis(300));
    text.insert(&mut conn.doc().transact_mut(), 2, "c");
    let (got, at) = next(&mut received).await;
    assert_eq!(got, "abc");
    assert!(
        at >= held_at + Duration::from_millis(250),
        "{:?}",
        at - held_at
    );

    // A close writes what is held, then closes.
    conn.hold_until(tokio::time::Instant::now() + Duration::from_secs(60));
    text.insert(&mut conn.doc().transact_mut(), 3, "d");
    conn.close().await;
    let (got, _) = next(&mut received).await;
    assert_eq!(got, "abcd");
    let (got, _) = next(&mut received).await;
    assert_eq!(got, "<close>");
}
