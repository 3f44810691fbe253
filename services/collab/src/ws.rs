//! `GET /ws/{notebook_id}`: one y-websocket connection.
//!
//! Access is checked before the upgrade (401/404 answered as HTTP). After it, a reader loop
//! decodes frames and hands the messages to the notebook's room, and a writer loop sends what
//! the room queues, pings, and the close frame with its reason. The loops are generic over
//! `Stream`/`Sink` so tests can drive them without a socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tandem_protocol::{Role, close};
use tokio::sync::mpsc;
use tracing::Instrument;
use yrs::sync::{Message, MessageReader};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;

use crate::App;
use crate::auth::events::AccessEvent;
use crate::auth::{Authenticated, Caller, Credential, caller_access, user_for};
use crate::error::ApiError;
use crate::room::{Closer, Command, ConnId, Peer, RoomHandle};

/// Normal closure, sent when the client closed first.
const NORMAL: u16 = 1000;

/// Read and write buffer of each WebSocket, in bytes.
const SOCKET_BUFFER: usize = 8 * 1024;

/// How long to wait for a client's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Frames written per flush when a client's queue has several waiting.
const WRITE_BATCH: usize = 64;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// The WebSocket route: checks access, then upgrades.
#[tracing::instrument(skip_all, fields(doc_id = %notebook_id, user_id = %auth.caller.log_id()))]
pub async fn route(
    State(app): State<App>,
    Path(notebook_id): Path<String>,
    auth: Authenticated,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let caller = &auth.caller;
    // Subscribed before access is checked: a change that lands between the check and the
    // connection's start is then seen by `watch_access`, not missed.
    let events = app.access.subscribe();
    let (_, role) = caller_access(&app, caller, &notebook_id).await?;
    let limit = app.config.max_message_bytes;
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let span =
        tracing::info_span!("conn", conn, doc_id = %notebook_id, user_id = %caller.log_id(), %role);
    let tracker = app.tracker.clone();
    // Small socket buffers keep ten thousand idle connections far under a gigabyte; edits are
    // small, and larger messages still assemble across reads.
    let upgrade = upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER);
    let can_edit = Arc::new(AtomicBool::new(role.can_edit()));
    Ok(upgrade.on_upgrade(move |socket| {
        tracker.track_future(
            serve(app, notebook_id, conn, (auth, can_edit, events), socket).instrument(span),
        )
    }))
}

async fn serve(
    app: App,
    notebook_id: String,
    conn: ConnId,
    (auth, can_edit, events): (
        Authenticated,
        Arc<AtomicBool>,
        tokio::sync::broadcast::Receiver<AccessEvent>,
    ),
    socket: WebSocket,
) {
    let _counted = crate::metrics::connection_opened();
    let (out_tx, out_rx) = mpsc::channel(app.config.outbound_queue);
    let closer = Arc::new(Closer::default());
    let room = app.rooms.get(&notebook_id);
    let peer = Peer {
        out: out_tx,
        closer: closer.clone(),
    };
    if room.send(Command::Join { conn, peer }).await.is_err() {
        closer.close(
            close::GOING_AWAY,
            "the notebook's room is unavailable; reconnect",
        );
    }
    tracing::debug!("connected");
    let (sink, stream) = socket.split();
    let last_seen = Arc::new(Clock::new());
    let keepalive = app.config.keepalive;
    let limit = app.config.max_message_bytes;
    let author: Option<Arc<str>> = match &auth.caller {
        Caller::User(user) => Some(user.id.as_str().into()),
        Caller::Service | Caller::Anonymous => None,
    };
    tokio::join!(
        write_loop(sink, out_rx, &closer, keepalive, &last_seen),
        read_loop(
            stream,
            &room,
            (conn, &can_edit, &author),
            &closer,
            &last_seen,
            limit
        ),
        watch_access(
            &app,
            (&notebook_id, &room, conn),
            &auth,
            (events, &can_edit),
            &closer
        ),
    );
    let _ = room.send(Command::Leave { conn }).await;
    tracing::debug!(reason = ?closer.reason(), "disconnected");
}

/// Re-checks the connection's credential and role whenever an access event concerns it:
/// cuts the connection when access ended (code 1008), and downgrades or upgrades its right to
/// edit when the role changed. On an upgrade the room asks the client again for what it
/// holds, as a reconnect would, so edits it made before (refused then) are not stranded
/// beneath its later ones.
async fn watch_access(
    app: &App,
    (notebook_id, room, conn): (&str, &RoomHandle, ConnId),
    auth: &Authenticated,
    (mut events, can_edit): (tokio::sync::broadcast::Receiver<AccessEvent>, &AtomicBool),
    closer: &Closer,
) {
    use tokio::sync::broadcast::error::RecvError;
    if auth.credential == Credential::Service {
        return;
    }
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = closer.requested() => return,
        };
        let concerns_us = match &event {
            Ok(AccessEvent::Notebook(id)) => id == notebook_id,
            Ok(AccessEvent::SessionEnded(hash)) => {
                auth.credential == Credential::Session(hash.clone())
            }
            Ok(AccessEvent::UserSignedOut(user_id)) => {
                matches!(&auth.caller, Caller::User(user) if &user.id == user_id)
            }
            // Fell behind: some event may have concerned us.
            Err(RecvError::Lagged(_)) => true,
            Err(RecvError::Closed) => return,
        };
        if !concerns_us {
            continue;
        }
        match current_role(app, notebook_id, auth).await {
            Ok(Some(role)) => {
                let before = can_edit.swap(role.can_edit(), Ordering::Relaxed);
                if before != role.can_edit() {
                    tracing::info!(%role, "role changed on an open connection");
                }
                if !before && role.can_edit() {
                    let _ = room.send(Command::Resync { conn }).await;
                }
            }
            Ok(None) => {
                tracing::info!("access ended; closing the connection");
                closer.close(close::POLICY, "your access to this notebook ended");
                return;
            }
            // A store hiccup is no reason to cut anyone off; the next event checks again.
            Err(err) => tracing::warn!(error = err.message, "cannot re-check access"),
        }
    }
}

/// The role the connection's credential has now, or `None` when it has none left.
async fn current_role(
    app: &App,
    notebook_id: &str,
    auth: &Authenticated,
) -> Result<Option<Role>, ApiError> {
    let caller = match &auth.credential {
        Credential::None => Caller::Anonymous,
        credential => match user_for(app, credential).await? {
            Some(user) => Caller::User(user),
            None => return Ok(None),
        },
    };
    match caller_access(app, &caller, notebook_id).await {
        Ok((_, role)) => Ok(Some(role)),
        Err(err) if err.status.is_client_error() => Ok(None),
        Err(err) => Err(err),
    }
}

/// Milliseconds since a fixed start, shared between the two loops.
struct Clock {
    start: Instant,
    last_ms: AtomicU64,
}

impl Clock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

async fn read_loop<S>(
    mut stream: S,
    room: &RoomHandle,
    sender: (ConnId, &AtomicBool, &Option<Arc<str>>),
    closer: &Closer,
    last_seen: &Clock,
    limit: usize,
) where
    S: Stream<Item = Result<WsMessage, axum::Error>> + Unpin,
{
    if read_frames(&mut stream, room, sender, closer, last_seen, limit).await
        == ReadEnd::ServerClosing
    {
        // The closing handshake: wait (briefly) for the client's close frame, so the client
        // reads ours and its reply does not hit a reset socket.
        let drain = async {
            while let Some(Ok(frame)) = stream.next().await {
                if matches!(frame, WsMessage::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
    }
}

#[derive(PartialEq)]
enum ReadEnd {
    /// The client closed or vanished.
    PeerGone,
    /// This side asked to close; the client has yet to answer.
    ServerClosing,
}

async fn read_frames<S>(
    stream: &mut S,
    room: &RoomHandle,
    (conn, can_edit, author): (ConnId, &AtomicBool, &Option<Arc<str>>),
    closer: &Closer,
    last_seen: &Clock,
    limit: usize,
) -> ReadEnd
where
    S: Stream<Item = Result<WsMessage, axum::Error>> + Unpin,
{
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            () = closer.requested() => return ReadEnd::ServerClosing,
        };
        let Some(frame) = next else {
            closer.close(NORMAL, "");
            return ReadEnd::PeerGone;
        };
        last_seen.touch();
        match frame {
            Ok(WsMessage::Binary(data)) => match decode_frame(&data) {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    if room
                        .send(Command::Messages {
                            conn,
                            can_edit: can_edit.load(Ordering::Relaxed),
                            author: author.clone(),
                            messages,
                        })
                        .await
                        .is_err()
                    {
                        closer.close(close::GOING_AWAY, "the notebook's room closed; reconnect");
                        return ReadEnd::ServerClosing;
                    }
                }
                Err(reason) => {
                    closer.close(close::MALFORMED, reason);
                    return ReadEnd::ServerClosing;
                }
            },
            Ok(WsMessage::Text(_)) => {
                closer.close(
                    close::MALFORMED,
                    "text frames are not y-websocket messages; send binary",
                );
                return ReadEnd::ServerClosing;
            }
            Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => {}
            Ok(WsMessage::Close(_)) => {
                closer.close(NORMAL, "");
                return ReadEnd::PeerGone;
            }
            Err(err) => {
                if is_too_big(err) {
                    closer.close(close::TOO_BIG, format!("message larger than {limit} bytes"));
                    return ReadEnd::ServerClosing;
                }
                closer.close(NORMAL, "");
                return ReadEnd::PeerGone;
            }
        }
    }
}

async fn write_loop<S>(
    mut sink: S,
    mut out: mpsc::Receiver<Bytes>,
    closer: &Closer,
    keepalive: Duration,
    last_seen: &Clock,
) where
    S: Sink<WsMessage> + Unpin,
{
    let mut ping = tokio::time::interval(keepalive);
    ping.tick().await;
    loop {
        tokio::select! {
            biased;
            () = closer.requested() => break,
            frame = out.recv() => match frame {
                Some(frame) => {
                    if write_frames(&mut sink, frame, &mut out).await.is_err() {
                        closer.close(NORMAL, "");
                        break;
                    }
                }
                // The room let go of this connection; it set a close reason first.
                None => break,
            },
            _ = ping.tick() => {
                // All modern browsers answer pings with pongs; two silent intervals mean the
                // peer is gone even if TCP has not noticed yet.
                if last_seen.silent_for() > keepalive * 2 {
                    closer.close(close::GOING_AWAY, "keepalive timeout");
                    break;
                }
                if sink.send(WsMessage::Ping(Bytes::new())).await.is_err() {
                    closer.close(NORMAL, "");
                    break;
                }
            }
        }
    }
    if let Some((code, reason)) = closer.reason() {
        let frame = CloseFrame {
            code: *code,
            reason: close_reason(reason).into(),
        };
        let _ = sink.send(WsMessage::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
}

/// Writes `first` and whatever else is already queued (up to [`WRITE_BATCH`]), then flushes
/// once: under load that is one syscall for many small updates.
async fn write_frames<S>(
    sink: &mut S,
    first: Bytes,
    out: &mut mpsc::Receiver<Bytes>,
) -> Result<(), S::Error>
where
    S: Sink<WsMessage> + Unpin,
{
    sink.feed(WsMessage::Binary(first)).await?;
    for _ in 1..WRITE_BATCH {
        match out.try_recv() {
            Ok(frame) => sink.feed(WsMessage::Binary(frame)).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}

/// A close frame's reason may hold at most 123 bytes (RFC 6455, 5.5); longer ones are cut at a
/// character boundary rather than making the close frame itself fail.
fn close_reason(reason: &str) -> &str {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Decodes every y-websocket message in a frame. A frame that is not exactly a sequence of
/// well-formed messages (garbage, a truncated message, trailing bytes) is refused whole, with
/// a reason for the close frame.
fn decode_frame(data: &[u8]) -> Result<Vec<Message>, String> {
    let mut decoder = DecoderV1::from(data);
    let messages: Vec<Message> = MessageReader::new(&mut decoder)
        .collect::<Result<_, _>>()
        .map_err(|err| format!("malformed y-websocket message: {err}"))?;
    // The reader stops quietly at the end of the buffer, also in the middle of a message;
    // re-encoding tells whether every byte was accounted for.
    let consumed: usize = messages.iter().map(|m| m.encode_v1().len()).sum();
    if consumed != data.len() {
        return Err(format!(
            "malformed y-websocket message: {} of {} bytes form whole messages",
            consumed,
            data.len()
        ));
    }
    Ok(messages)
}

fn is_too_big(err: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    let inner = err.into_inner();
    matches!(inner.downcast_ref::<Error>(), Some(Error::Capacity(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::StateVector;
    use yrs::sync::SyncMessage;

    #[test]
    fn close_reasons_fit_a_close_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(cut));
    }

    #[test]
    fn frames_decode_strictly() {
        let step1 = Message::Sync(SyncMessage::SyncStep1(StateVector::default())).encode_v1();
        assert_eq!(decode_frame(&step1).unwrap().len(), 1);
        let mut two = step1.clone();
        two.extend_from_slice(&step1);
        assert_eq!(decode_frame(&two).unwrap().len(), 2);
        assert!(decode_frame(&[]).unwrap().is_empty());

        // An update message announcing 50 bytes but carrying none.
        let err = decode_frame(&[0, 2, 50]).unwrap_err();
        assert!(err.contains("malformed"), "{err}");
        // A sync message with an unknown sub-type.
        assert!(decode_frame(&[0, 9, 0]).is_err());
        let mut trailing = step1.clone();
        trailing.push(0);
        assert!(decode_frame(&trailing).is_err());
    }
}
