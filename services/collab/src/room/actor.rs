//! The room actor: owns one notebook's document and awareness, applies what connections
//! send, persists before it broadcasts, compacts, and unloads when idle.
//!
//! Commands are taken in batches: every document update in a batch is applied to the
//! in-memory document first, then the batch's changes are appended to the store in one
//! durable write ("group commit"), and only then broadcast. Anything that reveals document
//! state (a sync step 2, a read) first flushes what is pending, so no client ever sees an
//! update that a crash could lose.
//!
//! Beside it: [`edits`] (clients' document and awareness updates, and their checks),
//! [`persistence`] (group commit and compaction) over the [`log`] (`UpdateLog`: what is
//! pending, durable and compacting), [`peers`] (`Peers`: connections and broadcast),
//! [`presence`] (who speaks for which awareness client id), [`outbox`] (awareness sent only
//! when it changed, coalesced per batch, renewals once a second), [`remote`] (other collab nodes)
//! and [`versions`] (version history).

use bytes::Bytes;
use tandem_protocol::close;
use tokio::sync::{mpsc, oneshot};
use yrs::sync::{Awareness, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, Transact, Update};

use super::{Command, ConnId, Peer, Rooms};

mod edits;
mod log;
mod outbox;
mod peers;
mod persistence;
mod presence;
mod remote;
mod versions;

/// The close reason (code 1011) when the store cannot be reached: the client keeps its edits
/// and resends them when it reconnects, to this node or another, once the store is back.
const STORE_UNAVAILABLE: &str =
    "store unavailable (Redis down?): edits kept on the client; reconnect";

/// Commands handled per batch at most, so one busy room yields to the runtime regularly.
const MAX_BATCH: usize = 256;

pub(super) struct RoomActor {
    id: String,
    rooms: Rooms,
    generation: u64,
    rx: mpsc::Receiver<Command>,
}

/// What a connection's document updates may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rights {
    /// Viewers and commenters: nothing.
    ReadOnly,
    /// Editors: anything but the values only the runtime or the server writes.
    Edit,
    /// The runtime: anything.
    Runtime,
}

/// Where a message comes from.
#[derive(Clone, Copy)]
struct Sender<'a> {
    conn: ConnId,
    rights: Rights,
    /// The signed-in user behind the connection, if any.
    author: Option<&'a std::sync::Arc<str>>,
}

/// The loaded state of a room.
struct Room {
    id: String,
    awareness: Awareness,
    /// Applies editors' updates, refusing writes to runtime- and server-owned values.
    guard: tandem_crdt::Guard,
    peers: peers::Peers,
    /// Which connection owns which awareness client id.
    presence: presence::Presence,
    /// Awareness changes applied and not yet sent.
    outbox: outbox::Outbox,
    /// What is pending, durable and being compacted of the notebook's update log.
    log: log::UpdateLog,
    /// Largest the notebook may grow through editors' updates (0: no limit).
    max_notebook_bytes: u64,
    /// What the room follows of the other collab nodes, when there are any.
    remote: Option<remote::Remote>,
    /// What changed, and by whom, since the last version.
    versions: crate::versions::Tracker,
    /// The last signed-in person whose edit the room recorded (the home page shows it).
    last_editor: Option<std::sync::Arc<str>>,
    /// Callers waiting until the document includes a state vector.
    waiting: Vec<(yrs::StateVector, oneshot::Sender<()>)>,
}

/// Why a room stops serving.
enum Stop {
    Idle,
    Shutdown,
    Deleted(tokio::sync::oneshot::Sender<()>),
    StoreFailed,
}

impl RoomActor {
    pub(super) fn new(
        id: String,
        rooms: Rooms,
        generation: u64,
        rx: mpsc::Receiver<Command>,
    ) -> Self {
        Self {
            id,
            rooms,
            generation,
            rx,
        }
    }

    pub(super) async fn run(mut self) {
        let mut room = match Room::load(&self.id, &self.rooms).await {
            Ok(room) => room,
            Err(err) => {
                tracing::error!(error = %err, "cannot load the notebook's document");
                self.rooms.try_unload(&self.id, self.generation, true);
                let unavailable = err
                    .downcast_ref::<crate::store::StoreError>()
                    .is_some_and(crate::store::StoreError::is_unavailable);
                let reason = if unavailable {
                    STORE_UNAVAILABLE
                } else {
                    "the notebook could not be loaded"
                };
                self.reject_remaining(close::INTERNAL, reason);
                return;
            }
        };
        tracing::debug!(updates = room.log.len, "room loaded");
        let stop = self.serve(&mut room).await;
        let deleted = room.stop(&self.rooms, stop).await;
        // An idle room already left the registry; any other stop removes it now, before
        // anyone is told it is gone, so a new connection starts a fresh room from the store.
        self.rooms.try_unload(&self.id, self.generation, true);
        if let Some(done) = deleted {
            let _ = done.send(());
        }
        self.reject_remaining(close::GOING_AWAY, "the notebook's room closed; reconnect");
        tracing::debug!("room unloaded");
    }

    async fn serve(&mut self, room: &mut Room) -> Stop {
        let idle = self.rooms.settings().idle;
        let shutdown = self.rooms.shutdown().clone();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        // Only local commands count as activity: a room with no connections unloads even
        // while other nodes keep editing its notebook.
        let mut idle_deadline = tokio::time::Instant::now() + idle;
        let keepalive = self.rooms.settings().keepalive;
        let mut ping_at = tokio::time::Instant::now() + keepalive;
        loop {
            let idle_timer = tokio::time::sleep_until(idle_deadline);
            let received = tokio::select! {
                n = self.rx.recv_many(&mut batch, MAX_BATCH) => n,
                () = idle_timer, if room.peers.is_empty() => {
                    if self.rooms.try_unload(&self.id, self.generation, false) {
                        self.rx.close();
                        // Commands sent before the registry let go are still served.
                        while let Ok(command) = self.rx.try_recv() {
                            batch.push(command);
                        }
                        if let Some(stop) = room.handle_batch(batch.drain(..), &self.rooms).await {
                            return stop;
                        }
                        return Stop::Idle;
                    }
                    idle_deadline = tokio::time::Instant::now() + idle;
                    continue;
                }
                () = crate::versions::due(room.versions.deadline()) => {
                    if let Some(stop) = room.auto_version(&self.rooms).await {
                        return stop;
                    }
                    continue;
                }
                () = shutdown.cancelled() => return Stop::Shutdown,
                // One keepalive timer for the room's connections, not one each.
                () = tokio::time::sleep_until(ping_at) => {
                    room.peers.ping_all();
                    ping_at = tokio::time::Instant::now() + keepalive;
                    continue;
                }
                event = remote::next(&mut room.remote) => {
                    room.hold();
                    room.handle_remote(event, &self.rooms).await;
                    room.send_awareness();
                    room.release();
                    room.answer_waiting();
                    continue;
                }
                () = renewals_due(room.outbox.renewal_due()) => {
                    room.send_awareness();
                    continue;
                }
            };
            idle_deadline = tokio::time::Instant::now() + idle;
            if received == 0 {
                return Stop::Shutdown;
            }
            if let Some(stop) = room.handle_batch(batch.drain(..), &self.rooms).await {
                return stop;
            }
        }
    }

    /// Closes connections whose commands arrive after the room stopped serving.
    fn reject_remaining(&mut self, code: u16, reason: &str) {
        self.rx.close();
        while let Ok(command) = self.rx.try_recv() {
            match command {
                Command::Join { peer, .. } => peer.close(code, reason),
                Command::Delete { done } => {
                    let _ = done.send(());
                }
                Command::Messages { .. }
                | Command::Resync { .. }
                | Command::Leave { .. }
                | Command::Read(_)
                | Command::WhenIncludes { .. }
                | Command::Edit(_)
                | Command::Version(_) => {}
            }
        }
    }
}

impl Room {
    async fn load(id: &str, rooms: &Rooms) -> anyhow::Result<Self> {
        let stored = rooms.store().load_document(id).await?;
        let remote = match rooms.cluster() {
            Some(cluster) => Some(
                remote::Remote::start(
                    cluster,
                    id,
                    stored.last_seq,
                    rooms.settings().awareness_timeout,
                )
                .await?,
            ),
            None => None,
        };
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            for update in stored.snapshot.iter().chain(stored.updates.iter()) {
                txn.apply_update(Update::decode_v1(update)?)?;
            }
        }
        let guard = tandem_crdt::Guard::new(&doc);
        let settings = rooms.settings();
        Ok(Self {
            id: id.to_owned(),
            awareness: Awareness::new(doc),
            guard,
            peers: peers::Peers::default(),
            presence: presence::Presence::new(settings.max_awareness_bytes),
            outbox: outbox::Outbox::default(),
            log: log::UpdateLog::loaded(
                stored.last_seq,
                stored.updates.len() as u64,
                stored.size(),
            ),
            max_notebook_bytes: settings.max_notebook_bytes,
            remote,
            versions: crate::versions::Tracker::new(rooms.settings().versions.interval),
            last_editor: None,
            waiting: Vec::new(),
        })
    }

    /// Records, on the side, who changed the document last; written only when that person
    /// changes (and once per load), not on every edit.
    fn note_editor(&mut self, author: std::sync::Arc<str>, rooms: &Rooms) {
        if self.last_editor.as_ref() == Some(&author) {
            return;
        }
        self.last_editor = Some(author.clone());
        let (id, store_rooms) = (self.id.clone(), rooms.clone());
        rooms.tracker().spawn(async move {
            if let Err(error) = store_rooms.store().note_edited(&id, &author).await {
                tracing::warn!(%error, doc_id = %id, "could not record the last editor");
            }
        });
    }

    async fn handle_batch(
        &mut self,
        batch: impl Iterator<Item = Command>,
        rooms: &Rooms,
    ) -> Option<Stop> {
        for command in batch {
            match command {
                Command::Join { conn, peer } => self.join(conn, peer),
                Command::Messages {
                    conn,
                    can_edit,
                    runtime,
                    author,
                    messages,
                    queued: _queued,
                } => {
                    let changes = self.versions.count();
                    let rights = match (can_edit, runtime) {
                        (_, true) => Rights::Runtime,
                        (true, false) => Rights::Edit,
                        (false, false) => Rights::ReadOnly,
                    };
                    for message in messages {
                        let sender = Sender {
                            conn,
                            rights,
                            author: author.as_ref(),
                        };
                        if let Err(stop) = self.handle_message(sender, message, rooms).await {
                            return Some(stop);
                        }
                    }
                    self.versions.credit(changes, author.as_deref());
                    if self.versions.count() > changes
                        && let Some(author) = author
                    {
                        self.note_editor(author, rooms);
                    }
                }
                Command::Leave { conn } => self.leave(conn),
                Command::Resync { conn } => {
                    let sv = self.awareness.doc().transact().state_vector();
                    self.send_to(conn, encode(&Message::Sync(SyncMessage::SyncStep1(sv))));
                }
                Command::Read(f) => {
                    if !self.flush(rooms).await {
                        return Some(Stop::StoreFailed);
                    }
                    f(self.awareness.doc());
                }
                Command::WhenIncludes { state, reply } => self.waiting.push((state, reply)),
                Command::Edit(f) => self.apply_local(f),
                Command::Version(request) => {
                    if let Some(stop) = self.handle_version(request, rooms).await {
                        return Some(stop);
                    }
                }
                Command::Delete { done } => return Some(Stop::Deleted(done)),
            }
        }
        // The batch's document update and presence go to each peer together.
        self.hold();
        let flushed = self.flush(rooms).await;
        self.send_awareness();
        self.release();
        if !flushed {
            return Some(Stop::StoreFailed);
        }
        self.answer_waiting();
        None
    }

    /// Answers the callers whose state the (durable) document now includes, and forgets
    /// those who stopped waiting.
    fn answer_waiting(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        for (state, reply) in std::mem::take(&mut self.waiting) {
            if reply.is_closed() {
                continue;
            }
            if tandem_crdt::doc_includes(self.awareness.doc(), &state) {
                let _ = reply.send(());
            } else {
                self.waiting.push((state, reply));
            }
        }
    }

    /// Handles one message. `Err` stops the room (its document can no longer be trusted).
    async fn handle_message(
        &mut self,
        Sender {
            conn,
            rights,
            author,
        }: Sender<'_>,
        message: Message,
        rooms: &Rooms,
    ) -> Result<(), Stop> {
        match message {
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                if !self.flush(rooms).await {
                    return Err(Stop::StoreFailed);
                }
                let update = self
                    .awareness
                    .doc()
                    .transact()
                    .encode_state_as_update_v1(&sv);
                self.send_to(conn, encode(&Message::Sync(SyncMessage::SyncStep2(update))));
            }
            Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                self.apply_update(conn, rights, &update);
            }
            // A departed connection's presence is already cleared; do not bring it back.
            Message::Awareness(update) if self.peers.contains(conn) => {
                self.apply_awareness(conn, author, update);
            }
            Message::Awareness(_) => {}
            Message::AwarenessQuery => {
                if let Ok(update) = self.awareness.update() {
                    self.send_to(conn, encode(&Message::Awareness(update)));
                }
            }
            // Clients have nothing to tell the server with an auth message.
            Message::Auth(_) => {}
            Message::Custom(tag, _) => {
                self.close_peer(
                    conn,
                    close::MALFORMED,
                    format!("unsupported message type {tag}"),
                );
            }
        }
        Ok(())
    }

    /// A server-side change: applied like a client's update, so it is persisted and
    /// broadcast with the batch (before anything reveals it).
    fn apply_local(&mut self, f: Box<dyn FnOnce(&mut yrs::TransactionMut) + Send>) {
        let doc = self.awareness.doc();
        let mut txn = doc.transact_mut();
        f(&mut txn);
        if txn.has_changes() {
            self.log.push(txn.encode_update_v1());
        }
    }
}

/// Resolves when waiting awareness renewals are due; never when none wait.
async fn renewals_due(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn encode(message: &Message) -> Bytes {
    Bytes::from(message.encode_v1())
}
