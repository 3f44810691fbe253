//! The room's connections: joining and leaving (with their awareness), sending to one or
//! all of them, and closing them, slow readers included.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use tandem_protocol::close;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;
use yrs::sync::{Message, SyncMessage};
use yrs::{ReadTxn, Transact};

use super::{ConnId, Peer, Room, encode, outbox};
use crate::room::Frames;

impl Room {
    pub(super) fn join(&mut self, conn: ConnId, peer: Peer) {
        // As the y-websocket server does: our state vector, so the client sends what we lack,
        // and the current awareness, so the newcomer sees who is here.
        let sv = self.awareness.doc().transact().state_vector();
        let mut frames = vec![encode(&Message::Sync(SyncMessage::SyncStep1(sv)))];
        if let Ok(update) = self.awareness.update()
            && !update.clients.is_empty()
        {
            frames.push(encode(&Message::Awareness(update)));
        }
        self.peers.insert(conn, peer);
        for frame in frames {
            self.send_to(conn, frame);
        }
    }

    pub(super) fn leave(&mut self, conn: ConnId) {
        self.peers.remove(&conn);
        // Announce that the departed connection's users are gone, as the reference server does
        // (with the batch's other awareness changes), unless a client said so itself already.
        let clients: Vec<_> = self
            .presence
            .release(conn)
            .into_iter()
            .filter(|client| outbox::has_state(&self.awareness, *client))
            .collect();
        if clients.is_empty() {
            return;
        }
        for client in &clients {
            self.awareness.remove_state(*client);
        }
        self.outbox.applied(
            clients,
            &HashSet::new(),
            outbox::From::Local,
            Instant::now(),
        );
    }

    /// Sends the awareness changes waiting in the outbox that are due: one frame to every
    /// peer, and one message to the other nodes.
    pub(super) fn send_awareness(&mut self) {
        let due = self.outbox.take(Instant::now());
        if !due.nodes.is_empty()
            && let Ok(update) = self.awareness.update_with_clients(due.nodes)
        {
            self.relay_awareness(&update);
        }
        if !due.peers.is_empty()
            && let Ok(update) = self.awareness.update_with_clients(due.peers)
        {
            self.broadcast(encode(&Message::Awareness(update)));
        }
    }

    pub(super) fn send_to(&mut self, conn: ConnId, frame: Bytes) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        if let Err(err) = peer.out.try_send(Arc::from([frame])) {
            self.drop_peer(conn, err);
        }
    }

    /// Sends `frame` to every peer, or keeps it for [`Room::release`] while frames are held.
    pub(super) fn broadcast(&mut self, frame: Bytes) {
        match &mut self.held {
            Some(held) => held.push(frame),
            None => self.broadcast_frames(Arc::from([frame])),
        }
    }

    /// From now until [`Room::release`], broadcasts are gathered rather than sent.
    pub(super) fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Sends the frames gathered since [`Room::hold`] to every peer, as one item each.
    pub(super) fn release(&mut self) {
        if let Some(held) = self.held.take()
            && !held.is_empty()
        {
            self.broadcast_frames(Arc::from(held));
        }
    }

    fn broadcast_frames(&mut self, frames: Frames) {
        let mut failed = Vec::new();
        let mut deepest = 0;
        for (conn, peer) in &self.peers {
            deepest = deepest.max(peer.out.max_capacity() - peer.out.capacity());
            if let Err(err) = peer.out.try_send(frames.clone()) {
                failed.push((*conn, err));
            }
        }
        crate::metrics::outbound_depth(deepest);
        for (conn, err) in failed {
            self.drop_peer(conn, err);
        }
    }

    /// A peer whose queue is full is disconnected rather than silently skipped: its client
    /// reconnects and resyncs, so it never ends up missing an update without knowing.
    fn drop_peer(&mut self, conn: ConnId, err: TrySendError<Frames>) {
        if matches!(err, TrySendError::Full(_)) {
            tracing::info!(conn, "slow reader: outbound queue full, disconnecting");
            self.close_peer(
                conn,
                close::SLOW_READER,
                "outbound queue full: reconnect to resync",
            );
        } else {
            self.leave(conn);
        }
    }

    pub(super) fn close_peer(&mut self, conn: ConnId, code: u16, reason: impl Into<String>) {
        let reason = reason.into();
        if let Some(peer) = self.peers.get(&conn) {
            tracing::info!(conn, code, reason = %reason, "closing connection");
            peer.closer.close(code, reason);
        }
        self.leave(conn);
    }

    pub(super) fn close_all(&mut self, code: u16, reason: &str) {
        for peer in self.peers.values() {
            peer.closer.close(code, reason);
        }
        self.relay_departures();
        self.peers.clear();
        self.presence.clear();
        self.outbox.clear();
    }
}
