//! `GET /ws/{notebook_id}`: one y-websocket connection.
//!
//! Access is checked before the upgrade (401/404 answered as HTTP), and so is the caller's
//! number of open connections (429). After it, one task serves the connection: it decodes
//! the client's frames, charges them to the connection's message and byte budgets and hands
//! the messages to the notebook's room; writes what the room queued on the connection's
//! [`Link`]; pings when the room's keepalive tick says so; re-checks access when it may have
//! changed; and ends with the close frame and its reason.
//!
//! An idle connection is one small task waiting on its socket, its link and the access
//! events, holding no buffer and no timer (issue 14: ten thousand watchers of one notebook).
//! Every await but that idle wait is boxed, so the task keeps no room for them while idle.
//!
//! - `socket`: the WebSocket framing, with buffers only while a frame is in flight;
//! - `upgrade`: the handshake, and draining a client whose oversized message was refused;
//! - `access`: re-checking access on open connections.

mod access;
mod socket;
mod upgrade;

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tandem_protocol::close;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing::Instrument;
use yrs::sync::{Message, MessageReader};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;

use crate::App;
use crate::auth::events::AccessEvent;
use crate::auth::{Authenticated, Caller, Credential, caller_access};
use crate::error::ApiError;
use crate::quotas::{Counted, Rate};
use crate::room::{Command, ConnId, Link, Peer, RoomHandle, Wake};
use socket::{Incoming, Io, SocketError};

/// Normal closure, sent when the client closed first.
const NORMAL: u16 = 1000;

/// How long to wait for a client's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// When draining a client whose oversized message was refused: how long a pause in what it
/// sends means it is done and reading our close frame.
const DRAIN_QUIET: Duration = Duration::from_millis(200);

/// Items taken from the connection's queue per write when several are waiting: under load
/// that is one syscall for many small updates.
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
    // connection's start is then seen, not missed.
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
    // "Last opened" on the home page.
    crate::api::note_opened(&app, caller, &notebook_id);
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let span =
        tracing::info_span!("conn", conn, doc_id = %notebook_id, user_id = %caller.log_id(), %role);
    let runtime = matches!(caller, Caller::Service);
    let connection = Accepted {
        user_id: match caller {
            Caller::User(user) => Some(user.id.as_str().into()),
            Caller::Service | Caller::Anonymous => None,
        },
        // The runtime's access never changes under it: it has no events to watch.
        events: (!runtime).then_some(events),
        can_edit: role.can_edit(),
        runtime,
        app: app.clone(),
        notebook_id,
        conn,
        credential: auth.credential,
        rate,
        _counted: counted,
    };
    Ok(
        upgrade.on_upgrade(&app.tracker, app.config.max_message_bytes, move |socket| {
            serve(Open::new(connection, socket)).instrument(span)
        }),
    )
}

/// One accepted connection, before its socket opens.
struct Accepted {
    app: App,
    notebook_id: String,
    conn: ConnId,
    /// How the caller proved who it is, to check again when access may have changed.
    credential: Credential,
    /// The signed-in user, if any: credited in the version history.
    user_id: Option<Arc<str>>,
    /// Whether it may change the document now (flips when its role changes).
    can_edit: bool,
    /// Whether it is a runtime, whose updates are not checked for runtime-owned values.
    runtime: bool,
    /// Access changes to re-check on; none for the runtime.
    events: Option<broadcast::Receiver<AccessEvent>>,
    /// Its message and byte budgets; none for the runtime.
    rate: Option<Rate>,
    /// Its place in the caller's connection count, given back when it ends.
    _counted: Option<Counted>,
}

/// Serves one connection. Its state is boxed before the task starts, so the task itself is
/// little more than the idle wait.
async fn serve(mut open: Box<Open>) {
    let _open = crate::metrics::connection_opened();
    let conn = open.accepted.conn;
    let join = Command::Join {
        conn,
        peer: open.link.clone(),
    };
    if Box::pin(open.room.send(join)).await.is_err() {
        open.link.close(
            close::GOING_AWAY,
            "the notebook's room is unavailable; reconnect",
        );
    }
    tracing::debug!("connected");
    let end = open.run().await;
    let _ = Box::pin(open.room.send(Command::Leave { conn })).await;
    open.link.end();
    Box::pin(open.finish(end)).await;
    tracing::debug!(reason = ?open.link.close_reason(), "disconnected");
}

/// An open connection: what its task owns.
struct Open {
    accepted: Accepted,
    room: RoomHandle,
    link: Peer,
    socket: upgrade::Socket,
    /// When the client last sent anything (a pong included).
    last_seen: Instant,
}

/// Why serving stopped.
#[derive(Debug, PartialEq)]
enum End {
    /// The client closed the connection, with this code if it gave one.
    PeerClosed(Option<u16>),
    /// The client vanished (the stream ended or failed).
    PeerGone,
    /// This side asked to close (the reason is on the link); the client has yet to answer.
    Closing,
    /// The client is in the middle of a message over the limit: this side is closing, and
    /// what the client still sends must be drained raw.
    Broken,
}

/// What woke the connection.
enum Event {
    Link(Wake),
    Io(Result<Io, SocketError>),
    Access(Result<AccessEvent, broadcast::error::RecvError>),
}

impl Open {
    fn new(accepted: Accepted, socket: upgrade::Socket) -> Box<Self> {
        let app = &accepted.app;
        Box::new(Self {
            room: app.rooms.get(&accepted.notebook_id),
            link: Arc::new(Link::new(app.config.outbound_queue)),
            last_seen: Instant::now(),
            accepted,
            socket,
        })
    }

    /// Serves the connection until it ends.
    async fn run(&mut self) -> End {
        let keepalive = self.accepted.app.config.keepalive;
        loop {
            // The idle wait (the link also brings the room's keepalive ticks). Frames are
            // taken from the link only once the last ones are written: a client that stops
            // reading fills its queue, and the room closes it.
            let writing = self.socket.is_writing();
            let event = tokio::select! {
                biased;
                wake = poll_fn(|cx| self.link.poll_wake(cx, !writing)) => Event::Link(wake),
                io = poll_fn(|cx| self.socket.poll_io(cx)) => Event::Io(io),
                event = access::next(&mut self.accepted.events) => Event::Access(event),
            };
            let end = match event {
                Event::Link(Wake::Close) => Some(End::Closing),
                // The room's keepalive tick.
                Event::Link(Wake::Ping) => self.ping(keepalive),
                Event::Link(Wake::Frames) => {
                    let socket = &mut self.socket;
                    self.link.take(WRITE_BATCH, |frames| {
                        for frame in frames.iter() {
                            socket.send_binary(frame);
                        }
                    });
                    None
                }
                // Written: the link may be polled for frames again.
                Event::Io(Ok(Io::Written)) => None,
                Event::Io(Ok(Io::Read(incoming))) => Box::pin(self.incoming(Ok(incoming))).await,
                Event::Io(Err(err)) => Box::pin(self.incoming(Err(err))).await,

                Event::Access(event) => Box::pin(access::recheck(self, event)).await,
            };
            if let Some(end) = end {
                return end;
            }
        }
    }

    /// Handles what the client sent; says when that ends the connection.
    async fn incoming(&mut self, incoming: Result<Option<Incoming>, SocketError>) -> Option<End> {
        let message = match incoming {
            Ok(Some(message)) => message,
            Ok(None) => return Some(End::PeerGone),
            Err(SocketError::TooBig { limit }) => {
                let reason = format!("message larger than {limit} bytes");
                self.link.close(close::TOO_BIG, reason);
                return Some(End::Broken);
            }
            Err(err @ SocketError::Protocol(_)) => {
                self.link.close(close::PROTOCOL, err.to_string());
                return Some(End::Closing);
            }
            Err(SocketError::Io(_)) => return Some(End::PeerGone),
        };
        self.last_seen = Instant::now();
        let size = match &message {
            Incoming::Binary(data) | Incoming::Ping(data) => data.len(),
            Incoming::Text | Incoming::Pong | Incoming::Close(_) => 0,
        };
        if let Some(rate) = &self.accepted.rate
            && let Err(reason) = rate.take(size)
        {
            let conn = self.accepted.conn;
            tracing::info!(conn, reason = %reason, "closing a connection over its rate");
            self.link.close(close::POLICY, reason);
            return Some(End::Closing);
        }
        match message {
            Incoming::Binary(data) => self.messages(&data).await,
            Incoming::Text => {
                self.link.close(
                    close::MALFORMED,
                    "text frames are not y-websocket messages; send binary",
                );
                Some(End::Closing)
            }
            Incoming::Ping(data) => {
                self.socket.send_pong(data);
                None
            }
            Incoming::Pong => None,
            Incoming::Close(code) => Some(End::PeerClosed(code)),
        }
    }

    /// Hands a frame's y-websocket messages to the room.
    async fn messages(&mut self, data: &[u8]) -> Option<End> {
        match decode_frame(data) {
            Ok(messages) if messages.is_empty() => None,
            Ok(messages) => {
                let accepted = &self.accepted;
                let room = &self.room;
                let sent = async {
                    let queued = room.reserve(data.len()).await?;
                    let command = Command::Messages {
                        conn: accepted.conn,
                        can_edit: accepted.can_edit,
                        runtime: accepted.runtime,
                        author: accepted.user_id.clone(),
                        messages,
                        queued,
                    };
                    room.send(command).await
                };
                if sent.await.is_err() {
                    self.link
                        .close(close::GOING_AWAY, "the notebook's room closed; reconnect");
                    return Some(End::Closing);
                }
                None
            }
            Err(reason) => {
                self.link.close(close::MALFORMED, reason);
                Some(End::Closing)
            }
        }
    }

    /// The keepalive tick: pings, or ends a connection silent for two intervals.
    fn ping(&mut self, keepalive: Duration) -> Option<End> {
        // All modern browsers answer pings with pongs; two silent intervals mean the peer is
        // gone even if TCP has not noticed yet.
        if self.last_seen.elapsed() > keepalive * 2 {
            self.link.close(close::GOING_AWAY, "keepalive timeout");
            return Some(End::Closing);
        }
        self.socket.send_ping();
        None
    }

    /// Ends the connection: the close frame (the client's code echoed, or this side's reason),
    /// then, when this side closed, the client's answer or what it still sends.
    async fn finish(&mut self, end: End) {
        match end {
            End::PeerGone => return,
            End::PeerClosed(code) => self.socket.send_close(socket::close_reply(code), ""),
            End::Closing | End::Broken => {
                let (code, reason) = self.link.close_reason().unwrap_or((NORMAL, String::new()));
                self.socket.send_close(code, &reason);
            }
        }
        // What was queued before the close frame goes first. A client that reads slowly gets
        // it all (the slow reader learns why it was closed), one that reads nothing for a
        // keepalive interval is given up on.
        let patience = self.accepted.app.config.keepalive.max(CLOSE_GRACE);
        let socket = &mut self.socket;
        if tokio::time::timeout(patience, poll_fn(|cx| socket.poll_flush(cx)))
            .await
            .is_err()
        {
            return;
        }
        match end {
            // The closing handshake: wait (briefly) for the client's close frame, so its reply
            // does not hit a reset socket.
            End::Closing => {
                let answered = async {
                    while let Ok(Some(message)) = poll_fn(|cx| socket.poll_read(cx)).await {
                        if matches!(message, Incoming::Close(_)) {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(CLOSE_GRACE, answered).await;
            }
            // The client may still be sending the message that broke the stream; reading it
            // to the end lets our close frame reach it (see `upgrade`).
            End::Broken => upgrade::drain(socket.get_mut(), DRAIN_QUIET, CLOSE_GRACE).await,
            End::PeerClosed(_) | End::PeerGone => {}
        }
    }
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
