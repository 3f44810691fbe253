//! A room's side of the other collab nodes (with `--redis-url`; see [`crate::cluster`]).
//!
//! The room follows its notebook's update stream from the position it loaded. Each entry is
//! applied in stream order: one this room appended itself is only counted (its clients have
//! it already); any other is applied to the document and the change broadcast to the local
//! clients. It is already durable (it is in the stream), so it needs no flush. The room's
//! `last_seq` is then the stream position up to which everything is in its document, which is
//! what a snapshot taken from it may claim to cover: an own append with a higher seq does not
//! advance it while other nodes' earlier entries may still be on their way.
//!
//! A gap in the entries (another node compacted and trimmed entries this room had not read
//! yet) is closed by loading the stored document again and merging it in: CRDT updates
//! apply idempotently, so whatever the room already had stays, and what it missed arrives.
//!
//! Awareness: local clients' updates (and their removal when they leave) are published to
//! the other nodes; theirs are applied and relayed to local clients. A state from another node
//! that is not renewed for `--awareness-timeout` (30 s, y-protocols' `outdatedTimeout`) is
//! removed, as the Yjs awareness protocol does, which is how the clients of a node that died
//! disappear.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use yrs::sync::{AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Transact, Update};

use super::{Room, Rooms, encode, outbox};
use crate::cluster::{Cluster, Follow, RemoteEvent, RoomMessage};
use crate::store::redis::Entry;

/// How often outdated remote awareness states are looked for, at most.
const EXPIRY_CHECK: Duration = Duration::from_secs(3);

/// What a room keeps to follow the other nodes.
pub(super) struct Remote {
    cluster: Cluster,
    follow: Follow,
    /// Seqs this room appended that the stream reader has not handed back yet, in order.
    own: VecDeque<u64>,
    /// When each client of another node last sent its awareness.
    seen: HashMap<ClientID, Instant>,
    expiry: tokio::time::Interval,
    timeout: Duration,
}

/// The next thing to handle from the other nodes.
pub(super) enum Event {
    Remote(RemoteEvent),
    Expire,
}

impl Remote {
    /// Follows `notebook` from `position` and asks the other nodes who is there.
    pub(super) async fn start(
        cluster: &Cluster,
        notebook: &str,
        position: u64,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let follow = cluster.follow(notebook, position).await?;
        cluster.publish(notebook, &RoomMessage::AwarenessQuery);
        let check = (timeout / 4).clamp(Duration::from_millis(10), EXPIRY_CHECK);
        let mut expiry = tokio::time::interval(check);
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Self {
            cluster: cluster.clone(),
            follow,
            own: VecDeque::new(),
            seen: HashMap::new(),
            expiry,
            timeout,
        })
    }
}

impl Remote {
    /// Whether a client of another node has announced `client` (and not left).
    pub(super) fn has_client(&self, client: ClientID) -> bool {
        self.seen.contains_key(&client)
    }
}

/// The next event for a room that follows other nodes; never resolves for one that does not.
pub(super) async fn next(remote: &mut Option<Remote>) -> Event {
    let Some(remote) = remote else {
        return std::future::pending().await;
    };
    tokio::select! {
        event = remote.follow.events.recv() => match event {
            Some(event) => Event::Remote(event),
            // The node is shutting down; the room stops on its own.
            None => std::future::pending().await,
        },
        _ = remote.expiry.tick() => Event::Expire,
    }
}

impl Room {
    /// Records an append of this room. Returns false when the room is alone (then the append
    /// itself advances the position).
    pub(super) fn track_own_append(&mut self, seq: u64) -> bool {
        match &mut self.remote {
            Some(remote) => {
                remote.own.push_back(seq);
                true
            }
            None => false,
        }
    }

    /// Sends a local awareness update to the other nodes.
    pub(super) fn relay_awareness(&self, update: &AwarenessUpdate) {
        if let Some(remote) = &self.remote {
            remote
                .cluster
                .publish(&self.id, &RoomMessage::Awareness(update.encode_v1()));
        }
    }

    /// Tells the other nodes that every local client left (the room is closing).
    pub(super) fn relay_departures(&mut self) {
        if self.remote.is_none() {
            return;
        }
        let clients: Vec<ClientID> = self.presence.local().into_iter().collect();
        if clients.is_empty() {
            return;
        }
        for client in &clients {
            self.awareness.remove_state(*client);
        }
        if let Ok(update) = self.awareness.update_with_clients(clients) {
            self.relay_awareness(&update);
        }
    }

    /// The other nodes this room follows, if any.
    pub(super) fn cluster(&self) -> Option<Cluster> {
        self.remote.as_ref().map(|r| r.cluster.clone())
    }

    pub(super) async fn handle_remote(&mut self, event: Event, rooms: &Rooms) {
        match event {
            Event::Remote(RemoteEvent::Entry(entry)) => self.apply_entry(entry, rooms).await,
            Event::Remote(RemoteEvent::Room(RoomMessage::Awareness(bytes))) => {
                self.apply_remote_awareness(&bytes);
            }
            Event::Remote(RemoteEvent::Room(RoomMessage::AwarenessQuery)) => {
                self.answer_awareness_query();
            }
            Event::Remote(RemoteEvent::Room(RoomMessage::Compacted(seq))) => {
                if seq > self.log.last_seq && self.entries_were_trimmed().await {
                    self.catch_up(rooms).await;
                }
            }
            Event::Expire => self.expire_remote_clients(),
        }
    }

    async fn apply_entry(&mut self, entry: Entry, rooms: &Rooms) {
        if entry.seq <= self.log.last_seq {
            return;
        }
        if entry.seq > self.log.last_seq + 1 {
            tracing::debug!(
                position = self.log.last_seq,
                next = entry.seq,
                "entries missing from the stream: reloading"
            );
            self.catch_up(rooms).await;
            if entry.seq <= self.log.last_seq {
                return;
            }
        }
        let Some(remote) = &mut self.remote else {
            return;
        };
        while remote.own.front().is_some_and(|&own| own < entry.seq) {
            remote.own.pop_front();
        }
        let ours = entry.node == remote.cluster.node() && remote.own.front() == Some(&entry.seq);
        if ours {
            remote.own.pop_front();
        } else {
            self.log.stored_bytes += entry.update.len() as u64;
            self.merge(&[entry.update]);
        }
        self.log.last_seq = entry.seq;
        self.log.len += 1;
        if self.log.len >= rooms.settings().compact_after && !self.log.has_pending() {
            self.compact_in_background(rooms);
        }
    }

    /// Applies durable updates from elsewhere and broadcasts what they changed.
    fn merge(&mut self, updates: &[Vec<u8>]) {
        let doc = self.awareness.doc();
        let mut txn = doc.transact_mut();
        for bytes in updates {
            let applied = Update::decode_v1(bytes)
                .map_err(|e| e.to_string())
                .and_then(|u| txn.apply_update(u).map_err(|e| e.to_string()));
            if let Err(err) = applied {
                tracing::error!(error = %err, "an update from another node does not apply");
            }
        }
        if !txn.has_changes() {
            return;
        }
        let delta = txn.encode_update_v1();
        drop(txn);
        self.broadcast(encode(&Message::Sync(SyncMessage::Update(delta))));
    }

    /// Whether entries after the room's position are gone from the stream.
    async fn entries_were_trimmed(&self) -> bool {
        let Some(remote) = &self.remote else {
            return false;
        };
        match remote
            .cluster
            .next_seq_after(&self.id, self.log.last_seq)
            .await
        {
            Ok(next) => next != Some(self.log.last_seq + 1),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the update stream");
                false
            }
        }
    }

    /// Merges the whole stored document in and moves the position to its end.
    async fn catch_up(&mut self, rooms: &Rooms) {
        let stored = match rooms.store().load_document(&self.id).await {
            Ok(stored) => stored,
            Err(err) => {
                // The next entry or compaction notice tries again.
                tracing::warn!(error = %err, "cannot reload the document to catch up");
                return;
            }
        };
        self.log.stored_bytes = stored.size();
        let updates: Vec<Vec<u8>> = stored
            .snapshot
            .into_iter()
            .chain(stored.updates.iter().cloned())
            .collect();
        self.merge(&updates);
        if stored.last_seq > self.log.last_seq {
            self.log.last_seq = stored.last_seq;
            self.log.len = stored.updates.len() as u64;
        }
    }

    fn apply_remote_awareness(&mut self, bytes: &[u8]) {
        let Ok(mut update) = AwarenessUpdate::decode_v1(bytes) else {
            tracing::debug!("unreadable awareness update from another node");
            return;
        };
        // A client of this node speaks for its ids here; nobody elsewhere does.
        update
            .clients
            .retain(|client, _| !self.presence.is_local(*client));
        let Some(remote) = &mut self.remote else {
            return;
        };
        let now = Instant::now();
        for (client, entry) in &update.clients {
            if &*entry.json == "null" {
                remote.seen.remove(client);
            } else {
                remote.seen.insert(*client, now);
            }
        }
        let news = outbox::news(&self.awareness, update);
        if news.update.clients.is_empty() {
            return;
        }
        let clients: Vec<ClientID> = news.update.clients.keys().copied().collect();
        if let Err(err) = self.awareness.apply_update(news.update) {
            tracing::debug!(error = %err, "awareness update from another node does not apply");
            return;
        }
        self.outbox
            .applied(clients, &news.renewals, outbox::From::Remote, now);
    }

    fn answer_awareness_query(&self) {
        let local: HashSet<ClientID> = self.presence.local();
        if local.is_empty() {
            return;
        }
        if let Ok(update) = self.awareness.update_with_clients(local) {
            self.relay_awareness(&update);
        }
    }

    fn expire_remote_clients(&mut self) {
        let Some(remote) = &mut self.remote else {
            return;
        };
        let now = Instant::now();
        let expired: Vec<ClientID> = remote
            .seen
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= remote.timeout)
            .map(|(client, _)| *client)
            .collect();
        if expired.is_empty() {
            return;
        }
        for client in &expired {
            remote.seen.remove(client);
            self.awareness.remove_state(*client);
        }
        tracing::debug!(
            clients = expired.len(),
            "awareness of other nodes' clients timed out"
        );
        self.outbox
            .applied(expired, &HashSet::new(), outbox::From::Remote, now);
    }
}
