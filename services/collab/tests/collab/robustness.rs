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

/// A WebSocket opened over a bare TCP stream, to send what no stock client sends.
async fn bare_socket(server: &TestServer, notebook: &str, token: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /ws/{notebook}?token={token} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// A client frame of `opcode` (masked, as a client must send), under 126 bytes.
fn masked_frame(opcode: u8, last: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x0f, 0x1e, 0x2d, 0x3c];
    let mut frame = vec![
        opcode | if last { 0x80 } else { 0 },
        0x80 | payload.len() as u8,
    ];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The next frame the server sends: its opcode and payload (a server's frames are unmasked).
async fn server_frame(tcp: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(WAIT, async {
        let head = [tcp.read_u8().await.unwrap(), tcp.read_u8().await.unwrap()];
        assert_eq!(head[1] & 0x80, 0, "a server's frames are not masked");
        let len = match head[1] & 0x7f {
            126 => u64::from(tcp.read_u16().await.unwrap()),
            127 => tcp.read_u64().await.unwrap(),
            len => u64::from(len),
        };
        let mut payload = vec![0; len as usize];
        tcp.read_exact(&mut payload).await.unwrap();
        (head[0] & 0x0f, payload)
    })
    .await
    .expect("no frame in time")
}

/// Reads frames until the close frame; its code and reason.
async fn server_close(tcp: &mut tokio::net::TcpStream) -> (u16, String) {
    loop {
        let (opcode, payload) = server_frame(tcp).await;
        if opcode == 0x8 {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
        }
    }
}

#[tokio::test]
async fn the_websocket_protocol_itself_as_a_hand_written_client_speaks_it() {
    use tokio::io::AsyncWriteExt;
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::Encode;
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("bare", None).await.unwrap();

    // A message in two fragments with a ping between them: the ping is answered, and the
    // message (a sync step 1) is read whole and answered with step 2.
    let mut tcp = bare_socket(&server, &nb.id, owner.token()).await;
    let step1 = Message::Sync(SyncMessage::SyncStep1(Default::default())).encode_v1();
    let (first, rest) = step1.split_at(1);
    let mut frames = masked_frame(0x2, false, first);
    frames.extend(masked_frame(0x9, true, b"hi"));
    frames.extend(masked_frame(0x0, true, rest));
    tcp.write_all(&frames).await.unwrap();
    let (mut pong, mut step2) = (false, false);
    while !(pong && step2) {
        match server_frame(&mut tcp).await {
            (0xa, payload) => {
                assert_eq!(payload, b"hi");
                pong = true;
            }
            (0x2, payload) => {
                step2 |= matches!(
                    Message::decode_v1(&payload),
                    Ok(Message::Sync(SyncMessage::SyncStep2(_)))
                );
            }
            (opcode, _) => panic!("unexpected opcode {opcode}"),
        }
    }
    // The client's close code comes back.
    tcp.write_all(&masked_frame(0x8, true, &4000u16.to_be_bytes()))
        .await
        .unwrap();
    assert_eq!(server_close(&mut tcp).await.0, 4000);

    // Unmasked, a continuation with nothing to continue, a fragmented ping: 1002, named.
    let broken: [(Vec<u8>, &str); 3] = [
        (vec![0x82, 0x01, 0x00], "masked"),
        (masked_frame(0x0, true, b"x"), "continuation"),
        (masked_frame(0x9, false, b""), "control frames"),
    ];
    for (bytes, named) in broken {
        let mut tcp = bare_socket(&server, &nb.id, owner.token()).await;
        tcp.write_all(&bytes).await.unwrap();
        let (code, reason) = server_close(&mut tcp).await;
        assert_eq!(code, close::PROTOCOL, "{reason}");
        assert!(reason.contains(named), "{reason} should name {named}");
    }
    // The notebook is unharmed and open to an honest client.
    let honest = server.connect(&owner, &nb.id).await;
    append(&honest, "t", "fine");
    wait_for_text(&honest, "t", "fine").await;
}
