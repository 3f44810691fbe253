//! The reader and writer tasks behind a [`DocConnection`](super::DocConnection).
//!
//! The writer owns the socket's sink and drains one unbounded channel, fed by the document's
//! update observer, by the reader (protocol replies) and by the handle (awareness, raw frames,
//! close). One channel means one order: what was committed first is written first.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::Instrument;
use yrs::encoding::read::Cursor;
use yrs::sync::{DefaultProtocol, Message, MessageReader, Protocol, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Origin, ReadTxn, StateVector, Transact, Update};

use super::{ConnState, REMOTE_ORIGIN, Shared, UpdateEvent, UpdateKind};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the writer waits for the server to answer our close frame before dropping the
/// socket: the closing handshake should take one round trip, but a wedged server must not keep
/// a dropped connection's tasks alive forever.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Something for the writer task to put on the socket.
#[derive(Debug)]
pub(super) enum Outgoing {
    /// One binary frame (an encoded y-sync message, or raw bytes from a test).
    Frame(Vec<u8>),
    /// One text frame (never valid y-websocket; for tests).
    Text(String),
    /// Start the closing handshake after everything queued before it.
    Close {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// Write nothing more until [`Outgoing::Release`] or this deadline.
    Hold(tokio::time::Instant),
    /// Write what is held.
    Release,
}

/// Starts the reader and writer tasks of one connection.
pub(super) fn spawn(
    shared: Arc<Shared>,
    sink: SplitSink<Socket, WsMessage>,
    stream: SplitStream<Socket>,
    replies: mpsc::UnboundedSender<Outgoing>,
    outgoing: mpsc::UnboundedReceiver<Outgoing>,
    span: tracing::Span,
) {
    let reader = tokio::spawn(read_loop(shared.clone(), stream, replies).instrument(span.clone()));
    tokio::spawn(write_loop(shared, sink, outgoing, reader.abort_handle()).instrument(span));
}

async fn write_loop(
    shared: Arc<Shared>,
    mut sink: SplitSink<Socket, WsMessage>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    reader: tokio::task::AbortHandle,
) {
    let mut closing = false;
    // While held: until when, and what waits meanwhile.
    let mut held: Option<tokio::time::Instant> = None;
    let mut waiting: Vec<WsMessage> = Vec::new();
    'outer: loop {
        let first = match held {
            Some(until) => tokio::select! {
                item = outgoing.recv() => item,
                () = tokio::time::sleep_until(until) => Some(Outgoing::Release),
            },
            None => outgoing.recv().await,
        };
        let Some(first) = first else { break };
        // Take everything already queued, then write it with one flush: one syscall for a
        // burst of edits.
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outgoing::Frame(bytes) => waiting.push(WsMessage::Binary(bytes.into())),
                Outgoing::Text(text) => waiting.push(WsMessage::Text(text.into())),
                Outgoing::Close { code, reason } => {
                    closing = true;
                    held = None;
                    waiting.push(WsMessage::Close(Some(CloseFrame {
                        code: code.into(),
                        reason: reason.into(),
                    })));
                    break;
                }
                Outgoing::Hold(until) => held = Some(until),
                Outgoing::Release => held = None,
            }
            next = outgoing.try_recv().ok();
        }
        if held.is_some() || waiting.is_empty() {
            continue;
        }
        for message in waiting.drain(..) {
            if let Err(error) = sink.feed(message).await {
                tracing::debug!(%error, "websocket write failed");
                break 'outer;
            }
        }
        if let Err(error) = sink.flush().await {
            tracing::debug!(%error, "websocket flush failed");
            break;
        }
        if closing {
            break;
        }
    }
    // Wait for the reader to see the server's answer to the close (or the end of the stream).
    let mut state = shared.state.subscribe();
    let ended = state.wait_for(|s| matches!(s, ConnState::Closed(_)));
    if tokio::time::timeout(CLOSE_GRACE, ended).await.is_err() {
        tracing::debug!("server did not finish the closing handshake; dropping the socket");
        reader.abort();
        shared.state.send_if_modified(|s| {
            if *s == ConnState::Open {
                *s = ConnState::Closed(None);
                true
            } else {
                false
            }
        });
    }
}

async fn read_loop(
    shared: Arc<Shared>,
    mut stream: SplitStream<Socket>,
    replies: mpsc::UnboundedSender<Outgoing>,
) {
    let mut close = None;
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(WsMessage::Binary(bytes)) => {
                let received_at = Instant::now();
                if let Err(error) = handle_frame(&shared, &replies, &bytes, received_at).await {
                    // A server bug must not take the test down with it; the document simply
                    // does not change, which the test will notice.
                    tracing::warn!(%error, "bad message from server");
                }
                shared.activity.send_modify(|n| *n += 1);
            }
            Ok(WsMessage::Close(frame)) => {
                close = Some(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Ok(WsMessage::Text(text)) => tracing::debug!(len = text.len(), "ignoring text frame"),
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "websocket read failed");
                break;
            }
        }
    }
    // A close frame without a status code (`Some(None)`) counts as 1005, "no status received".
    let close = close.map(|c| c.unwrap_or((1005, String::new())));
    shared.state.send_replace(ConnState::Closed(close));
    shared.activity.send_modify(|n| *n += 1);
}

/// What went wrong with one incoming frame.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("undecodable message: {0}")]
    Decode(#[from] yrs::encoding::read::Error),
    #[error("update does not apply: {0}")]
    Apply(#[from] yrs::error::UpdateError),
    #[error("protocol: {0}")]
    Protocol(#[from] yrs::sync::protocol::Error),
    #[error("awareness: {0}")]
    Awareness(#[from] yrs::sync::awareness::Error),
}

async fn handle_frame(
    shared: &Shared,
    replies: &mpsc::UnboundedSender<Outgoing>,
    bytes: &[u8],
    received_at: Instant,
) -> Result<(), FrameError> {
    let mut decoder = DecoderV1::new(Cursor::new(bytes));
    for message in MessageReader::new(&mut decoder) {
        match message? {
            Message::Sync(SyncMessage::SyncStep1(remote)) => {
                let update = encode_diff(shared, &remote).await;
                let reply = Message::Sync(SyncMessage::SyncStep2(update)).encode_v1();
                let _ = replies.send(Outgoing::Frame(reply));
            }
            Message::Sync(SyncMessage::SyncStep2(update)) => {
                apply_remote(shared, &update).await?;
                shared.synced.send_replace(true);
                notify(shared, UpdateKind::SyncStep2, received_at, update.len());
            }
            Message::Sync(SyncMessage::Update(update)) => {
                apply_remote(shared, &update).await?;
                shared.updates_received.fetch_add(1, Ordering::Relaxed);
                notify(shared, UpdateKind::Update, received_at, update.len());
            }
            Message::Auth(Some(reason)) => {
                tracing::debug!(%reason, "permission denied");
                if let Ok(mut denied) = shared.permission_denied.lock() {
                    *denied = Some(reason);
                }
            }
            Message::Auth(None) => {}
            Message::Awareness(update) => {
                shared
                    .awareness_frames_received
                    .fetch_add(1, Ordering::Relaxed);
                let echo = {
                    let mut awareness = shared
                        .awareness
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    let summary = awareness.apply_update_summary(update)?;
                    match summary {
                        Some(summary) if shared.echo_awareness => {
                            Some(awareness.update_with_clients(summary.all_changes())?)
                        }
                        _ => None,
                    }
                };
                if let Some(update) = echo {
                    let frame = Message::Awareness(update).encode_v1();
                    let _ = replies.send(Outgoing::Frame(frame));
                }
            }
            message @ Message::AwarenessQuery => {
                let reply = {
                    let mut awareness = shared
                        .awareness
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    DefaultProtocol.handle_message(&mut awareness, message)?
                };
                if let Some(reply) = reply {
                    let _ = replies.send(Outgoing::Frame(reply.encode_v1()));
                }
            }
            Message::Custom(tag, _) => tracing::debug!(tag, "ignoring custom message"),
        }
    }
    Ok(())
}

/// Applies a server update under [`REMOTE_ORIGIN`], so it is not echoed back.
///
/// Takes the document lock with `try_`, yielding while a local transaction is open, rather than
/// blocking the runtime thread: on a current-thread runtime (`#[tokio::test]`) a blocking wait
/// would deadlock with the very task that holds the transaction.
async fn apply_remote(shared: &Shared, update: &[u8]) -> Result<(), FrameError> {
    let update = Update::decode_v1(update)?;
    let origin = Origin::from(REMOTE_ORIGIN);
    let mut spins = 0u32;
    loop {
        if let Ok(mut txn) = shared.doc.try_transact_mut_with(origin.clone()) {
            txn.apply_update(update)?;
            return Ok(());
        }
        backoff(&mut spins).await;
    }
}

/// The update that brings a peer at state vector `remote` up to our state.
async fn encode_diff(shared: &Shared, remote: &StateVector) -> Vec<u8> {
    let mut spins = 0u32;
    loop {
        if let Ok(txn) = shared.doc.try_transact() {
            return txn.encode_state_as_update_v1(remote);
        }
        backoff(&mut spins).await;
    }
}

async fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 16 {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn notify(shared: &Shared, kind: UpdateKind, received_at: Instant, len: usize) {
    let Ok(mut subscribers) = shared.subscribers.lock() else {
        return;
    };
    if subscribers.is_empty() {
        return;
    }
    let seq = shared.updates_received.load(Ordering::Relaxed);
    let event = UpdateEvent {
        kind,
        received_at,
        len,
        seq,
    };
    subscribers.retain(|tx| tx.send(event.clone()).is_ok());
}
