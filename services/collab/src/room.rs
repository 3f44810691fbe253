//! Rooms: one in-memory document per open notebook, shared by all its connections.
//!
//! Each room is an actor task ([`actor`]) that owns the notebook's yrs document and awareness
//! and handles [`Command`]s in order. Connections and HTTP handlers talk to it through a
//! [`RoomHandle`]. [`Rooms`] is the registry: it starts a room on first use and lets an idle
//! room unload itself only when nobody holds a handle, so there is never more than one room
//! per notebook in a process.

mod actor;
mod link;

pub use link::{Link, Unsent, Wake};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use yrs::Doc;
use yrs::sync::Message;

use crate::cluster::Cluster;
use crate::store::Store;

/// Identifies one WebSocket connection within the process.
pub type ConnId = u64;

/// Capacity of a room's command queue. Senders wait when it is full, which slows the fastest
/// writers down to the speed of the room instead of buffering without bound.
const ROOM_QUEUE: usize = 1024;

/// Bytes of clients' messages a room's queue may hold. A connection reads a frame as fast as
/// the client sends it; without this a client sending large updates back to back would queue
/// them all (1,024 of them) while the room applies the first. A message larger than this
/// waits for an empty queue.
const ROOM_QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// Room tuning, taken from the service [`crate::Config`].
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// How long a room with no connections stays loaded.
    pub idle: Duration,
    /// How often the room has its connections ping their clients (`--keepalive`).
    pub keepalive: Duration,
    /// Log length that triggers compaction into a snapshot.
    pub compact_after: u64,
    /// How long an awareness state from another node lives without renewal.
    pub awareness_timeout: Duration,
    /// When to take automatic versions and which to keep.
    pub versions: crate::versions::VersionConfig,
    /// Largest awareness state a client may publish, in bytes.
    pub max_awareness_bytes: usize,
    /// Largest a notebook may grow through editors' updates, in stored bytes (0: no limit).
    pub max_notebook_bytes: u64,
}

/// Where the rooms' tasks run and when they stop.
#[derive(Debug, Clone)]
pub struct Tasks {
    /// Tracks every room task (and the tasks rooms spawn), so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Cancelled at shutdown: rooms flush, compact and close their connections.
    pub shutdown: CancellationToken,
}

/// Encoded frames a room sends a connection in one go: its task writes them with one flush
/// (one write to the socket for a batch's document update and presence together). Shared by
/// every peer of a broadcast.
pub type Frames = Arc<[Bytes]>;

/// A connection as a room sees it: its queue of frames and its close request.
pub type Peer = Arc<Link>;

/// What a room can be asked to do.
pub enum Command {
    /// A connection joins: the room sends it the sync step 1 and current awareness.
    Join {
        /// The connection.
        conn: ConnId,
        /// How to reach it.
        peer: Peer,
    },
    /// Decoded y-websocket messages from a connection, in order. They are handled even if the
    /// connection has already left the room: a client's last edits often arrive right before
    /// its close, and they count like any other.
    Messages {
        /// The sender.
        conn: ConnId,
        /// Whether the sender may change the document.
        can_edit: bool,
        /// Whether the sender is a runtime (the service credential): the runtime writes
        /// outputs, counts and `state.kernel`, which every other editor's updates are checked
        /// against ([`tandem_crdt::guard`]).
        runtime: bool,
        /// The signed-in user behind the connection, credited in the version history.
        author: Option<Arc<str>>,
        /// The messages of one frame.
        messages: Vec<Message>,
        /// Their size, held against the room's queue until they are handled.
        queued: QueuedBytes,
    },
    /// A connection may now edit: send it our state vector again (sync step 1), so it sends
    /// back whatever it holds that the room lacks, as it would after a reconnect.
    Resync {
        /// The connection.
        conn: ConnId,
    },
    /// A connection ended.
    Leave {
        /// The connection.
        conn: ConnId,
    },
    /// Run a read on the document once everything applied so far is durable.
    Read(Box<dyn FnOnce(&Doc) + Send>),
    /// Answer once the document includes this state vector and what it includes is durable
    /// (checked after each batch, and after updates from other nodes). Dropping the receiver
    /// withdraws the wait. Use [`RoomHandle::includes`].
    WhenIncludes {
        /// The state to wait for.
        state: yrs::StateVector,
        /// Resolved when the document includes it.
        reply: oneshot::Sender<()>,
    },
    /// A change the server itself makes to the document (a title, a comments revision): run
    /// as one local transaction on the room's document, whose update is then persisted and
    /// broadcast exactly like a client's (durable first). Use [`RoomHandle::edit`].
    Edit(Box<dyn FnOnce(&mut yrs::TransactionMut) + Send>),
    /// Name a version or restore one (see [`crate::versions`]).
    Version(crate::versions::Request),
    /// The notebook was deleted: close every connection and unload.
    Delete {
        /// Resolved once the room has stopped.
        done: oneshot::Sender<()>,
    },
}

/// Errors talking to a room.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// The room stopped (shutdown, deletion or a storage failure) before answering.
    #[error("the notebook's room stopped")]
    Stopped,
}

/// A handle to a running room.
#[derive(Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<Command>,
    /// Bytes the queue may still take ([`ROOM_QUEUE_BYTES`]).
    bytes: Arc<Semaphore>,
}

/// A message's bytes, counted against its room's queue until dropped.
#[derive(Debug)]
pub struct QueuedBytes {
    _permit: OwnedSemaphorePermit,
}

impl RoomHandle {
    fn new(tx: mpsc::Sender<Command>) -> Self {
        Self {
            tx,
            bytes: Arc::new(Semaphore::new(ROOM_QUEUE_BYTES)),
        }
    }

    /// Sends a command, waiting while the room's queue is full.
    pub async fn send(&self, command: Command) -> Result<(), RoomError> {
        self.tx.send(command).await.map_err(|_| RoomError::Stopped)
    }

    /// Waits until the room's queue can take `size` more bytes of messages, and counts them
    /// until the returned value is dropped (with the [`Command::Messages`] that carries it).
    pub async fn reserve(&self, size: usize) -> Result<QueuedBytes, RoomError> {
        let size = u32::try_from(size.clamp(1, ROOM_QUEUE_BYTES)).unwrap_or(u32::MAX);
        self.bytes
            .clone()
            .acquire_many_owned(size)
            .await
            .map(|permit| QueuedBytes { _permit: permit })
            .map_err(|_| RoomError::Stopped)
    }

    /// Runs `f` on the document after all updates applied so far are durable.
    pub async fn read<T, F>(&self, f: F) -> Result<T, RoomError>
    where
        T: Send + 'static,
        F: FnOnce(&Doc) -> T + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Read(Box::new(move |doc| {
            let _ = reply.send(f(doc));
        })))
        .await?;
        answer.await.map_err(|_| RoomError::Stopped)
    }
}

impl RoomHandle {
    /// Waits until the document includes `state` (a client's edits sent over its WebSocket
    /// while its request came over HTTP), durably, for at most `within`. Returns whether it
    /// does.
    pub async fn includes(
        &self,
        state: yrs::StateVector,
        within: std::time::Duration,
    ) -> Result<bool, RoomError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::WhenIncludes { state, reply }).await?;
        match tokio::time::timeout(within, answer).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(_)) => Err(RoomError::Stopped),
            Err(_) => Ok(false),
        }
    }

    /// Changes the document as the server: `f` runs in one transaction on the room's
    /// document, and this returns once the change is durable and on its way to every
    /// connection, as a client's update would be.
    pub async fn edit<F>(&self, f: F) -> Result<(), RoomError>
    where
        F: FnOnce(&mut yrs::TransactionMut) + Send + 'static,
    {
        self.send(Command::Edit(Box::new(f))).await?;
        // Commands run in order and a read flushes first: once it runs, the edit is durable
        // and broadcast.
        self.read(|_| ()).await
    }

    /// Asks the room to name a version or restore one; `request` carries the reply.
    pub async fn version(&self, request: crate::versions::Request) -> Result<(), RoomError> {
        self.send(Command::Version(request)).await
    }
}

struct Entry {
    handle: RoomHandle,
    generation: u64,
}

struct Registry {
    rooms: Mutex<HashMap<String, Entry>>,
    next_generation: std::sync::atomic::AtomicU64,
    store: Arc<dyn Store>,
    settings: RoomSettings,
    tasks: Tasks,
    cluster: Option<Cluster>,
}

/// The registry of loaded rooms.
#[derive(Clone)]
pub struct Rooms {
    inner: Arc<Registry>,
}

impl Rooms {
    /// A registry whose rooms persist to `store`, run on `tasks.tracker` and stop when
    /// `tasks.shutdown` is cancelled (after flushing and compacting).
    pub fn new(store: Arc<dyn Store>, settings: RoomSettings, tasks: Tasks) -> Self {
        Self::clustered(store, settings, tasks, None)
    }

    /// A registry like [`Rooms::new`] whose rooms, with a `cluster`, also follow and relay
    /// what the other collab nodes write to their notebooks.
    pub fn clustered(
        store: Arc<dyn Store>,
        settings: RoomSettings,
        tasks: Tasks,
        cluster: Option<Cluster>,
    ) -> Self {
        let inner = Registry {
            rooms: Mutex::new(HashMap::new()),
            next_generation: std::sync::atomic::AtomicU64::new(1),
            store,
            settings,
            tasks,
            cluster,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The room of a notebook, started (and its document loaded) if it is not running. The
    /// caller must have checked that the notebook exists and that it may access it.
    pub fn get(&self, notebook_id: &str) -> RoomHandle {
        let mut rooms = self.lock();
        if let Some(entry) = rooms.get(notebook_id)
            && !entry.handle.tx.is_closed()
        {
            return entry.handle.clone();
        }
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let handle = RoomHandle::new(tx);
        let generation = self
            .inner
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rooms.insert(
            notebook_id.to_owned(),
            Entry {
                handle: handle.clone(),
                generation,
            },
        );
        let span = tracing::info_span!("room", doc_id = %notebook_id);
        let room = actor::RoomActor::new(notebook_id.to_owned(), self.clone(), generation, rx);
        self.inner.tasks.tracker.spawn(room.run().instrument(span));
        handle
    }

    /// The room of a notebook if it is loaded.
    pub fn loaded(&self, notebook_id: &str) -> Option<RoomHandle> {
        self.lock().get(notebook_id).map(|e| e.handle.clone())
    }

    /// How many rooms are loaded.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no room is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops a notebook's room, closing its connections, before the notebook is deleted.
    pub async fn delete(&self, notebook_id: &str) {
        if let Some(handle) = self.loaded(notebook_id) {
            let (done, stopped) = oneshot::channel();
            if handle.send(Command::Delete { done }).await.is_ok() {
                let _ = stopped.await;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // The map holds only handles; a panic elsewhere cannot leave it half-updated.
        self.inner
            .rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes the room `generation` of `notebook_id` if nobody but the registry can still
    /// send to it. Returns whether it was removed; the actor may exit only then.
    fn try_unload(&self, notebook_id: &str, generation: u64, force: bool) -> bool {
        let mut rooms = self.lock();
        let Some(entry) = rooms.get(notebook_id) else {
            return true;
        };
        if entry.generation != generation {
            return true;
        }
        // Handles are cloned only under this lock, so with one sender left (the registry's)
        // and an empty queue no command can still arrive.
        if force || entry.handle.tx.strong_count() == 1 {
            rooms.remove(notebook_id);
            true
        } else {
            false
        }
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    fn settings(&self) -> &RoomSettings {
        &self.inner.settings
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.inner.tasks.shutdown
    }

    fn tracker(&self) -> &TaskTracker {
        &self.inner.tasks.tracker
    }

    fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }
}
