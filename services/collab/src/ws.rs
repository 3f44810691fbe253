//! `GET /ws/{notebook_id}`: one y-websocket connection.
//!
//! Access is checked before the upgrade (401/404 answered as HTTP), and so is the caller's
//! number of open connections (429). After it, a reader loop decodes frames, charges them to
//! the connection's message and byte budgets and hands the messages to the notebook's room,
//! and a writer loop sends what the room queues, pings, and the close frame with its reason.
//! The loops are generic over `Stream`/`Sink` so tests can drive them without a socket.
//!
//! - `upgrade`: the handshake, and draining a client whose oversized message was refused;
//! - `access`: re-checking access on open connections.

mod access;
mod upgrade;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tandem_protocol::close;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tracing::Instrument;
use yrs::sync::{Message, MessageReader};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;

use crate::App;
use crate::auth::events::AccessEvent;
use crate::auth::{Authenticated, Caller, caller_access};
use crate::error::ApiError;
use crate::quotas::{Counted, Rate};
use crate::room::{Closer, Command, ConnId, Frames, Peer, RoomHandle};

/// Normal closure, sent when the client closed first.
const NORMAL: u16 = 1000;

/// Read buffer of a person's WebSocket, in bytes. tungstenite fills the whole buffer with
/// zeros before each read, so all of it stays resident for as long as the connection is open:
/// with ten thousand watchers in a classroom it is most of what a connection costs (issue 14).
/// Edits and presence are small; a larger message still assembles across reads.
const READ_BUFFER: usize = 1024;

/// Read buffer of the runtime's WebSocket: it sends outputs, often large, and there is one.
const RUNTIME_READ_BUFFER: usize = 64 * 1024;

/// How much tungstenite gathers before it writes (every batch is flushed anyway).
const WRITE_BUFFER: usize = 8 * 1024;

/// How long to wait for a client's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// When draining a client whose oversized message was refused: how long a pause in what it
/// sends means it is done and reading our close frame.
const DRAIN_QUIET: Duration = Duration::from_millis(200);

/// Frames written per flush when a client's queue has several waiting.
const WRITE_BATCH: usize = 64;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// The WebSocket route: checks access and the caller's connection count, then upgrades.
#[tracing::instrument(skip_all, fields(doc_id = %notebook_id, user_id = %auth.caller.log_id()))]
pub async fn route(
    State(app): State<App>,
    Path(notebook_id): Path<String>,
    auth: Authenticated,
    upgrade: upgrade::Upgrade,
) -> Result<Response, ApiError> {
    let caller = &auth.caller;
    // Subscribed before access is checked: a change that lands between the check and the
    // connection's start is then seen by `watch_access`, not missed.
    let events = app.access.subscribe();
    let (_, role) = caller_access(&app, caller, &notebook_id).await?;
    let quotas = &app.config.quotas;
    let (counted, rate) = match caller {
        // The runtime writes what kernels produced, which `--output-cap` already bounds.
        Caller::Service => (None, None),
        Caller::User(user) => (Some(format!("user:{}", user.id)), Some(Rate::new(quotas))),
        Caller::Anonymous => (
            Some(format!("address:{}", upgrade.client())),
            Some(Rate::new(quotas)),
        ),
    };
    let counted = match counted {
        Some(key) => Some(
            app.connections
                .open(key, quotas.max_connections_per_user)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_connections",
                        format!(
                            "more than {} open connections; close some tabs",
                            quotas.max_connections_per_user
                        ),
                    )
                })?,
        ),
        None => None,
    };
    let read_buffer = match caller {
        Caller::Service => RUNTIME_READ_BUFFER,
        Caller::User(_) | Caller::Anonymous => READ_BUFFER,
    };
    // "Last opened" on the home page.
    crate::api::note_opened(&app, caller, &notebook_id);
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let span =
        tracing::info_span!("conn", conn, doc_id = %notebook_id, user_id = %caller.log_id(), %role);
    let connection = Connection {
        can_edit: Arc::new(AtomicBool::new(role.can_edit())),
        app: app.clone(),
        notebook_id,
        conn,
        auth,
        events,
        rate,
        _counted: counted,
    };
    Ok(upgrade.on_upgrade(
        &app.tracker,
        app.config.max_message_bytes,
        (read_buffer, WRITE_BUFFER),
        move |socket| serve(connection, socket).instrument(span),
    ))
}

/// One accepted connection, before its socket opens.
struct Connection {
    app: App,
    notebook_id: String,
    conn: ConnId,
    auth: Authenticated,
    /// Whether it may change the document now (flips when its role changes).
    can_edit: Arc<AtomicBool>,
    events: tokio::sync::broadcast::Receiver<AccessEvent>,
    /// Its message and byte budgets; none for the runtime.
    rate: Option<Rate>,
    /// Its place in the caller's connection count, given back when it ends.
    _counted: Option<Counted>,
}

async fn serve(connection: Connection, socket: upgrade::Socket) {
    let Connection {
        app,
        notebook_id,
        conn,
        auth,
        can_edit,
        events,
        rate,
        _counted,
    } = connection;
    let _open = crate::metrics::connection_opened();
    let (out_tx, out_rx) = mpsc::channel(app.config.outbound_queue);
    let closer = Arc::new(Closer::default());
    let room = app.rooms.get(&notebook_id);
    let peer = Peer {
        out: out_tx,
        closer: closer.clone(),
    };
    // Every await but the loops' idle waits is boxed: a task keeps room for its largest await
    // point for as long as it lives, and thousands of idle connections each pay for it.
    if Box::pin(room.send(Command::Join { conn, peer }))
        .await
        .is_err()
    {
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
    let open = Open {
        app: &app,
        notebook_id: &notebook_id,
        room: &room,
        conn,
        auth: &auth,
        can_edit: &can_edit,
        closer: &closer,
    };
    let (sink, (stream, end), ()) = tokio::join!(
        write_loop(sink, out_rx, &closer, keepalive, &last_seen),
        read_loop(
            stream,
            Reader {
                open,
                runtime: matches!(auth.caller, Caller::Service),
                author: &author,
                last_seen: &last_seen,
                limit,
                rate: rate.as_ref(),
            },
        ),
        access::watch_access(&open, events),
    );
    let _ = Box::pin(room.send(Command::Leave { conn })).await;
    if end == ReadEnd::Broken
        && let Ok(mut socket) = sink.reunite(stream)
    {
        // The client may still be sending the message that broke the stream; reading it to
        // the end lets our close frame reach it (see `upgrade`).
        Box::pin(upgrade::drain(socket.get_mut(), DRAIN_QUIET, CLOSE_GRACE)).await;
    }
    tracing::debug!(reason = ?closer.reason(), "disconnected");
}

/// An open connection, as the tasks serving it see it.
#[derive(Clone, Copy)]
struct Open<'a> {
    app: &'a App,
    notebook_id: &'a str,
    room: &'a RoomHandle,
    conn: ConnId,
    auth: &'a Authenticated,
    /// Whether it may change the document now (flips when its role changes).
    can_edit: &'a AtomicBool,
    closer: &'a Closer,
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

/// What the reader needs besides its stream.
struct Reader<'a> {
    open: Open<'a>,
    /// Whether it is a runtime, whose updates are not checked for runtime-owned values.
    runtime: bool,
    /// The signed-in user, credited in the version history.
    author: &'a Option<Arc<str>>,
    last_seen: &'a Clock,
    /// `--max-message-bytes`, for the close reason.
    limit: usize,
    /// The connection's message and byte budgets; none for the runtime.
    rate: Option<&'a Rate>,
}

/// Reads until the connection ends; gives the stream back, with how it ended.
async fn read_loop<S>(mut stream: S, reader: Reader<'_>) -> (S, ReadEnd)
where
    S: Stream<Item = Result<WsMessage, WsError>> + Unpin,
{
    let end = read_frames(&mut stream, &reader).await;
    if end == ReadEnd::ServerClosing {
        // The closing handshake: wait (briefly) for the client's close frame, so the client
        // reads ours and its reply does not hit a reset socket.
        let drain = async {
            while let Some(Ok(frame)) = stream.next().await {
                if matches!(frame, WsMessage::Close(_)) {
                    break;
                }
            }
        };
        let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, drain)).await;
    }
    (stream, end)
}

#[derive(Debug, PartialEq)]
enum ReadEnd {
    /// The client closed or vanished.
    PeerGone,
    /// This side asked to close; the client has yet to answer.
    ServerClosing,
    /// The stream stopped in the middle of what the client sends (a message over the limit):
    /// this side is closing, and what the client still sends must be drained raw.
    Broken,
}

async fn read_frames<S>(stream: &mut S, reader: &Reader<'_>) -> ReadEnd
where
    S: Stream<Item = Result<WsMessage, WsError>> + Unpin,
{
    let Reader {
        open:
            Open {
                room,
                conn,
                can_edit,
                closer,
                ..
            },
        runtime,
        author,
        last_seen,
        limit,
        rate,
    } = reader;
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
        if let (Ok(message), Some(rate)) = (&frame, rate)
            && let Err(reason) = rate.take(message.len())
        {
            tracing::info!(conn, reason = %reason, "closing a connection over its rate");
            closer.close(close::POLICY, reason);
            return ReadEnd::ServerClosing;
        }
        match frame {
            Ok(WsMessage::Binary(data)) => match decode_frame(&data) {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    let sent = Box::pin(room.send(Command::Messages {
                        conn: *conn,
                        can_edit: can_edit.load(Ordering::Relaxed),
                        runtime: *runtime,
                        author: (*author).clone(),
                        messages,
                    }));
                    if sent.await.is_err() {
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
            Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)) => {}
            Ok(WsMessage::Close(_)) => {
                closer.close(NORMAL, "");
                return ReadEnd::PeerGone;
            }
            Err(WsError::Capacity(_)) => {
                closer.close(close::TOO_BIG, format!("message larger than {limit} bytes"));
                return ReadEnd::Broken;
            }
            Err(_) => {
                closer.close(NORMAL, "");
                return ReadEnd::PeerGone;
            }
        }
    }
}

/// Writes until the connection is closing, then the close frame; gives the sink back.
async fn write_loop<S>(
    mut sink: S,
    mut out: mpsc::Receiver<Frames>,
    closer: &Closer,
    keepalive: Duration,
    last_seen: &Clock,
) -> S
where
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
                    if Box::pin(write_frames(&mut sink, frame, &mut out)).await.is_err() {
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
                if Box::pin(sink.send(WsMessage::Ping(Bytes::new()))).await.is_err() {
                    closer.close(NORMAL, "");
                    break;
                }
            }
        }
    }
    if let Some((code, reason)) = closer.reason() {
        let frame = CloseFrame {
            code: (*code).into(),
            reason: close_reason(reason).into(),
        };
        let _ = Box::pin(sink.send(WsMessage::Close(Some(frame)))).await;
    }
    let _ = Box::pin(sink.close()).await;
    sink
}

/// Writes `first` and whatever else is already queued (up to [`WRITE_BATCH`] items), then
/// flushes once: under load that is one syscall for many small updates.
async fn write_frames<S>(
    sink: &mut S,
    first: Frames,
    out: &mut mpsc::Receiver<Frames>,
) -> Result<(), S::Error>
where
    S: Sink<WsMessage> + Unpin,
{
    let mut item = Some(first);
    for _ in 0..WRITE_BATCH {
        let Some(frames) = item.take().or_else(|| out.try_recv().ok()) else {
            break;
        };
        for frame in frames.iter() {
            sink.feed(WsMessage::Binary(frame.clone())).await?;
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
