//! The WebSocket half of the client: one y-websocket connection to one notebook's document.
//!
//! A [`DocConnection`] owns a local [`yrs::Doc`] and keeps it in sync with the server:
//! - on open it sends SyncStep1 with its state vector; it answers the server's SyncStep1 with
//!   SyncStep2 and applies the server's SyncStep2 and Updates;
//! - every local transaction on [`DocConnection::doc`] is sent as an Update, in commit order, by
//!   an update observer feeding an unbounded channel that a writer task drains (so an edit is
//!   never dropped or reordered, however slow the socket);
//! - awareness updates go into a [`yrs::sync::Awareness`]; an auth message (`[2, 0, reason]`)
//!   is kept for [`DocConnection::permission_denied`].
//!
//! Two tasks run per connection (reader and writer), so a test can hold thousands of them.
//! A connection does not reconnect: once [`DocConnection::closed`] resolves it is done.

mod io;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite;
use url::Url;
use yrs::sync::{Awareness, Message, SyncMessage};
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, Transact};

use io::Outgoing;

/// The transaction origin under which updates that came from the server are applied, so the
/// update observer can tell them from local edits and not echo them back.
pub const REMOTE_ORIGIN: &str = "tandem-client/remote";

/// The key of this crate's update observer on the document.
const OBSERVER_KEY: &str = "tandem-client/outgoing";

/// What can go wrong on a document connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The WebSocket URL could not be built from the base and notebook id.
    #[error("invalid websocket url: {0}")]
    Url(#[from] url::ParseError),
    /// The server refused the upgrade with an HTTP answer (401, 403, 404, ...).
    #[error("websocket upgrade refused with http {status}")]
    Rejected {
        /// The HTTP status of the refusal.
        status: u16,
        /// The refusal's body, when it had one.
        body: Option<String>,
    },
    /// The WebSocket handshake or transport failed.
    #[error("websocket error: {0}")]
    WebSocket(#[from] tungstenite::Error),
    /// The connection is closed, so nothing more can be sent or awaited on it.
    #[error("connection closed{}", close_suffix(.0))]
    Closed(Option<(u16, String)>),
    /// A wait did not finish in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The local document is locked by a transaction that is still open.
    #[error("document is busy: {0}")]
    DocBusy(#[from] yrs::TransactionAcqError),
    /// The awareness state could not be set or encoded.
    #[error("awareness error: {0}")]
    Awareness(#[from] yrs::sync::awareness::Error),
}

fn close_suffix(close: &Option<(u16, String)>) -> String {
    match close {
        Some((code, reason)) => format!(" with code {code}: {reason}"),
        None => String::new(),
    }
}

/// How to open a [`DocConnection`] beyond the base URL and notebook id.
#[derive(Debug, Default, Clone)]
pub struct ConnectOptions {
    /// A personal access token, sent as the `token` query parameter.
    pub token: Option<String>,
    /// The local document to sync; a fresh [`Doc`] when absent. Pass one to pick the client id
    /// (seeded tests) or to start from existing content. One connection per document.
    pub doc: Option<Doc>,
    /// Send back every awareness change received from the server, as y-websocket's browser
    /// client does (it sends every awareness update it applies, whoever it came from). For
    /// load tests that should see what a server gets from stock clients.
    pub echo_awareness: bool,
}

/// Which kind of sync message brought a document update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// The server's answer to our SyncStep1: everything we lacked when we connected.
    SyncStep2,
    /// A live update the server relayed from another client (or produced itself).
    Update,
}

/// One document update received from the server and applied to the local document.
#[derive(Debug, Clone)]
pub struct UpdateEvent {
    /// What kind of message carried it.
    pub kind: UpdateKind,
    /// When its frame was read off the socket (before it was applied).
    pub received_at: Instant,
    /// The encoded update's size in bytes.
    pub len: usize,
    /// How many [`UpdateKind::Update`] messages this connection had received, this one included.
    pub seq: u64,
}

/// Whether the connection is still open, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConnState {
    Open,
    /// Ended; with the server's close code and reason when it sent a close frame.
    Closed(Option<(u16, String)>),
}

/// State shared by the handle and its reader and writer tasks.
struct Shared {
    doc: Doc,
    awareness: Mutex<Awareness>,
    /// See [`ConnectOptions::echo_awareness`].
    echo_awareness: bool,
    updates_received: AtomicU64,
    awareness_frames_received: AtomicU64,
    permission_denied: Mutex<Option<String>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<UpdateEvent>>>,
    /// Bumped after every incoming frame has been handled, to wake waiters.
    activity: watch::Sender<u64>,
    synced: watch::Sender<bool>,
    state: watch::Sender<ConnState>,
}

/// A live y-websocket connection to one notebook, with its local copy of the document.
///
/// Dropping it closes the connection (code 1000) after the pending updates are written.
/// Do not hold a transaction on [`doc`](Self::doc) across an `.await`: the reader task needs the
/// document to apply what the server sends.
pub struct DocConnection {
    shared: Arc<Shared>,
    out: mpsc::UnboundedSender<Outgoing>,
    url: Url,
}

impl std::fmt::Debug for DocConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocConnection")
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id())
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

impl DocConnection {
    /// Connects to `{ws_base}/{notebook_id}` (with `?token=` when given) and starts syncing.
    ///
    /// `ws_base` is the server's WebSocket root, such as `ws://127.0.0.1:8080/ws`. Returns once
    /// the upgrade succeeded; await [`synced`](Self::synced) for the server's state.
    pub async fn connect(
        ws_base: &str,
        notebook_id: &str,
        token: Option<&str>,
    ) -> Result<DocConnection, ConnectionError> {
        let options = ConnectOptions {
            token: token.map(str::to_owned),
            doc: None,
            ..ConnectOptions::default()
        };
        Self::connect_with(ws_base, notebook_id, options).await
    }

    /// [`connect`](Self::connect) with a caller-chosen document. A `wss://` base trusts the
    /// webpki roots (Mozilla's CA list, built in).
    pub async fn connect_with(
        ws_base: &str,
        notebook_id: &str,
        options: ConnectOptions,
    ) -> Result<DocConnection, ConnectionError> {
        Self::connect_with_tls(ws_base, notebook_id, options, None).await
    }

    /// [`connect_with`](Self::connect_with) over `wss://` with the TLS settings of `tls`
    /// (the roots to trust, a client certificate), for servers whose certificate is not
    /// signed by a public CA. `None` trusts the webpki roots.
    pub async fn connect_with_tls(
        ws_base: &str,
        notebook_id: &str,
        options: ConnectOptions,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<DocConnection, ConnectionError> {
        let mut url = Url::parse(&format!(
            "{}/{}",
            ws_base.trim_end_matches('/'),
            notebook_id
        ))?;
        if let Some(token) = &options.token {
            url.query_pairs_mut()
                .append_pair(tandem_protocol::TOKEN_QUERY_PARAM, token);
        }
        // Nagle's algorithm would hold small updates back for up to 40 ms; edits are latency
        // sensitive and tiny, so send each at once.
        let connector = tls.map(tokio_tungstenite::Connector::Rustls);
        let (socket, _) = match tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            None,
            true,
            connector,
        )
        .await
        {
            Ok(ok) => ok,
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned());
                return Err(ConnectionError::Rejected { status, body });
            }
            Err(e) => return Err(e.into()),
        };
        let doc = options.doc.unwrap_or_default();
        let shared = Arc::new(Shared {
            awareness: Mutex::new(Awareness::new(doc.clone())),
            doc,
            echo_awareness: options.echo_awareness,
            updates_received: AtomicU64::new(0),
            awareness_frames_received: AtomicU64::new(0),
            permission_denied: Mutex::new(None),
            subscribers: Mutex::new(Vec::new()),
            activity: watch::Sender::new(0),
            synced: watch::Sender::new(false),
            state: watch::Sender::new(ConnState::Open),
        });
        let (out, out_rx) = mpsc::unbounded_channel();

        // SyncStep1 goes first, then every local change from here on, in commit order.
        let state_vector = shared.doc.try_transact()?.state_vector();
        let step1 = Message::Sync(SyncMessage::SyncStep1(state_vector)).encode_v1();
        let _ = out.send(Outgoing::Frame(step1));
        let updates = out.clone();
        shared
            .doc
            .observe_update_v1(OBSERVER_KEY, move |txn, event| {
                if txn
                    .origin()
                    .is_some_and(|o| o.as_ref() == REMOTE_ORIGIN.as_bytes())
                {
                    return;
                }
                let frame = Message::Sync(SyncMessage::Update(event.update.clone())).encode_v1();
                // Fails only once the writer is gone, that is once the connection is closed.
                let _ = updates.send(Outgoing::Frame(frame));
            })?;

        let (sink, stream) = socket.split();
        let span = tracing::debug_span!("doc_connection", url = %url);
        io::spawn(shared.clone(), sink, stream, out.clone(), out_rx, span);
        Ok(DocConnection { shared, out, url })
    }

    /// The local copy of the document. Transactions on it are sent to the server.
    pub fn doc(&self) -> &Doc {
        &self.shared.doc
    }

    /// The local document's client id (the Yjs `clientID`).
    pub fn client_id(&self) -> u64 {
        self.shared.doc.client_id().get()
    }

    /// The URL this connection was opened to (token included).
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Resolves once the server's SyncStep2 has been applied, that is once the local document
    /// holds everything the server had when we connected.
    pub async fn synced(&self) -> Result<(), ConnectionError> {
        let mut synced = self.shared.synced.subscribe();
        let mut state = self.shared.state.subscribe();
        loop {
            if *synced.borrow_and_update() {
                return Ok(());
            }
            if let ConnState::Closed(close) = &*state.borrow_and_update() {
                return Err(ConnectionError::Closed(close.clone()));
            }
            tokio::select! {
                _ = synced.changed() => {}
                _ = state.changed() => {}
            }
        }
    }

    /// Whether the server's SyncStep2 has arrived.
    pub fn is_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Waits until `predicate` holds on the local document, checking after every message from
    /// the server. Fails with [`ConnectionError::Timeout`], or [`ConnectionError::Closed`] when
    /// the connection ends while the predicate still does not hold.
    pub async fn wait_until<F>(
        &self,
        mut predicate: F,
        timeout: Duration,
    ) -> Result<(), ConnectionError>
    where
        F: FnMut(&Doc) -> bool,
    {
        let mut activity = self.shared.activity.subscribe();
        let mut state = self.shared.state.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            activity.borrow_and_update();
            if predicate(&self.shared.doc) {
                return Ok(());
            }
            if let ConnState::Closed(close) = &*state.borrow_and_update() {
                return Err(ConnectionError::Closed(close.clone()));
            }
            tokio::select! {
                _ = activity.changed() => {}
                _ = state.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return if predicate(&self.shared.doc) {
                        Ok(())
                    } else {
                        Err(ConnectionError::Timeout(timeout))
                    };
                }
            }
        }
    }

    /// Sets this client's awareness state (cursor, name, ...) and sends it to the server.
    pub fn set_awareness(&self, state: serde_json::Value) -> Result<(), ConnectionError> {
        let update = {
            let mut awareness = self.lock_awareness();
            awareness.set_local_state(state)?;
            let me = awareness.client_id();
            awareness.update_with_clients([me])?
        };
        self.send_message(&Message::Awareness(update))
    }

    /// Runs `f` on the awareness states this client knows (its own and those the server sent).
    pub fn with_awareness<R>(&self, f: impl FnOnce(&Awareness) -> R) -> R {
        f(&self.lock_awareness())
    }

    /// Sends one y-sync message as its own frame.
    pub fn send_message(&self, message: &Message) -> Result<(), ConnectionError> {
        self.send_raw(message.encode_v1())
    }

    /// Sends `bytes` as one binary frame, as is: for tests that need malformed frames.
    pub fn send_raw(&self, bytes: Vec<u8>) -> Result<(), ConnectionError> {
        self.out
            .send(Outgoing::Frame(bytes))
            .map_err(|_| self.closed_error())
    }

    /// Holds what this connection would write (local updates, replies) until [`release`] or
    /// `until`, whichever comes first, then writes it all at once, so the server takes the
    /// changes of several transactions as one batch (one store write, one broadcast). A
    /// later hold moves the deadline; a close writes what is held first.
    ///
    /// [`release`]: DocConnection::release
    pub fn hold_until(&self, until: tokio::time::Instant) {
        let _ = self.out.send(Outgoing::Hold(until));
    }

    /// Writes what [`hold_until`](DocConnection::hold_until) held, now.
    pub fn release(&self) {
        let _ = self.out.send(Outgoing::Release);
    }

    /// Sends one text frame, which the y-websocket protocol never uses: for tests.
    pub fn send_text(&self, text: &str) -> Result<(), ConnectionError> {
        self.out
            .send(Outgoing::Text(text.to_owned()))
            .map_err(|_| self.closed_error())
    }

    /// Writes everything still queued, closes with code 1000 and waits for the connection to
    /// end. Returns the server's close code and reason, as [`closed`](Self::closed) does.
    pub async fn close(&self) -> Option<(u16, String)> {
        self.close_with(1000, "").await
    }

    /// [`close`](Self::close) with a chosen close code and reason.
    pub async fn close_with(&self, code: u16, reason: &str) -> Option<(u16, String)> {
        let _ = self.out.send(Outgoing::Close {
            code,
            reason: reason.to_owned(),
        });
        self.closed().await
    }

    /// Waits until the connection has ended. Returns the close code and reason the server sent
    /// (or echoed), `None` when the connection ended without a close frame.
    pub async fn closed(&self) -> Option<(u16, String)> {
        let mut state = self.shared.state.subscribe();
        loop {
            if let ConnState::Closed(close) = &*state.borrow_and_update() {
                return close.clone();
            }
            if state.changed().await.is_err() {
                return None;
            }
        }
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        matches!(*self.shared.state.borrow(), ConnState::Closed(_))
    }

    /// The reason of the last permission-denied auth message (`[2, 0, reason]`) from the server,
    /// sent when it refused one of our updates.
    pub fn permission_denied(&self) -> Option<String> {
        self.shared
            .permission_denied
            .lock()
            .map(|g| g.clone())
            .unwrap_or(None)
    }

    /// Waits for a permission-denied auth message and returns its reason.
    pub async fn wait_permission_denied(
        &self,
        timeout: Duration,
    ) -> Result<String, ConnectionError> {
        let mut activity = self.shared.activity.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            activity.borrow_and_update();
            if let Some(reason) = self.permission_denied() {
                return Ok(reason);
            }
            if self.is_closed() {
                return Err(self.closed_error());
            }
            tokio::select! {
                changed = activity.changed() => if changed.is_err() { return Err(self.closed_error()) },
                _ = tokio::time::sleep_until(deadline) => return Err(ConnectionError::Timeout(timeout)),
            }
        }
    }

    /// How many Update messages (live updates, not the initial SyncStep2) have been received.
    pub fn updates_received(&self) -> u64 {
        self.shared.updates_received.load(Ordering::Relaxed)
    }

    /// How many awareness messages the server has sent this connection.
    pub fn awareness_frames_received(&self) -> u64 {
        self.shared
            .awareness_frames_received
            .load(Ordering::Relaxed)
    }

    /// A channel of every update received from now on (SyncStep2 and Update), each sent after it
    /// has been applied to the local document, with the time its frame was read.
    ///
    /// Unbounded on purpose: a load generator must not lose events. Drop the receiver when done.
    pub fn subscribe_updates(&self) -> mpsc::UnboundedReceiver<UpdateEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subscribers) = self.shared.subscribers.lock() {
            subscribers.push(tx);
        }
        rx
    }

    fn lock_awareness(&self) -> std::sync::MutexGuard<'_, Awareness> {
        // A panic while holding the lock leaves the awareness map itself intact.
        self.shared
            .awareness
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn closed_error(&self) -> ConnectionError {
        match &*self.shared.state.borrow() {
            ConnState::Closed(close) => ConnectionError::Closed(close.clone()),
            ConnState::Open => ConnectionError::Closed(None),
        }
    }
}

impl Drop for DocConnection {
    fn drop(&mut self) {
        let _ = self.shared.doc.unobserve_update_v1(OBSERVER_KEY);
        let _ = self.out.send(Outgoing::Close {
            code: 1000,
            reason: String::new(),
        });
    }
}
