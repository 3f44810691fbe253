//! The room's connections: joining and leaving (with their awareness), sending to one or
//! all of them, and closing them, slow readers included.

use bytes::Bytes;
use tandem_protocol::close;
use tokio::sync::mpsc::error::TrySendError;
use yrs::sync::{Message, SyncMessage};
use yrs::{ReadTxn, Transact};

use super::{ConnId, Peer, Room, encode};

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
        let clients = self.presence.release(conn);
        if clients.is_empty() {
            return;
        }
        // Announce that the departed connection's users are gone, as the reference server does.
        for client in &clients {
            self.awareness.remove_state(*client);
        }
        if let Ok(update) = self.awareness.update_with_clients(clients) {
            self.relay_awareness(&update);
            self.broadcast(encode(&Message::Awareness(update)));
        }
    }

    pub(super) fn send_to(&mut self, conn: ConnId, frame: Bytes) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        if let Err(err) = peer.out.try_send(frame) {
            self.drop_peer(conn, err);
        }
    }

    pub(super) fn broadcast(&mut self, frame: Bytes) {
        let mut failed = Vec::new();
        let mut deepest = 0;
        for (conn, peer) in &self.peers {
            deepest = deepest.max(peer.out.max_capacity() - peer.out.capacity());
            if let Err(err) = peer.out.try_send(frame.clone()) {
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
    fn drop_peer(&mut self, conn: ConnId, err: TrySendError<Bytes>) {
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
    }
}
