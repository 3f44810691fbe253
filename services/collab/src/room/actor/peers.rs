//! The room's connections. [`Peers`] owns them: sending to one or all of them (gathering a
//! batch's frames into one item per peer while held), and closing them; it reports the peers
//! it could not reach. The room joins and leaves them (with their awareness) and decides
//! what an unreachable peer means (a slow reader is closed; a gone one leaves).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tandem_protocol::close;
use tokio::time::Instant;
use yrs::sync::{Message, SyncMessage};
use yrs::{ReadTxn, Transact};

use super::{ConnId, Peer, Room, encode, outbox};
use crate::room::{Frames, Unsent};

/// A peer a send could not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unreachable {
    /// Its queue is full: it reads too slowly.
    Slow(ConnId),
    /// Its connection is gone.
    Gone(ConnId),
}

/// The room's connections and what is on its way to them.
#[derive(Default)]
pub(super) struct Peers {
    peers: HashMap<ConnId, Peer>,
    /// Broadcast frames gathered at the end of a batch, sent to each peer as one item.
    held: Option<Vec<Bytes>>,
}

impl Peers {
    pub(super) fn insert(&mut self, conn: ConnId, peer: Peer) {
        self.peers.insert(conn, peer);
    }

    pub(super) fn remove(&mut self, conn: ConnId) -> Option<Peer> {
        self.peers.remove(&conn)
    }

    pub(super) fn contains(&self, conn: ConnId) -> bool {
        self.peers.contains_key(&conn)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Sends `frame` to `conn` alone.
    pub(super) fn send_to(&self, conn: ConnId, frame: Bytes) -> Option<Unreachable> {
        let peer = self.peers.get(&conn)?;
        peer.try_send(Arc::from([frame]))
            .err()
            .map(|unsent| unreachable(conn, unsent))
    }

    /// Sends `frame` to every peer, or keeps it for [`Peers::release`] while frames are held.
    pub(super) fn broadcast(&mut self, frame: Bytes) -> Vec<Unreachable> {
        match &mut self.held {
            Some(held) => {
                held.push(frame);
                Vec::new()
            }
            None => self.send_all(Arc::from([frame])),
        }
    }

    /// From now until [`Peers::release`], broadcasts are gathered rather than sent.
    pub(super) fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Sends the frames gathered since [`Peers::hold`] to every peer, as one item each.
    pub(super) fn release(&mut self) -> Vec<Unreachable> {
        match self.held.take() {
            Some(held) if !held.is_empty() => self.send_all(Arc::from(held)),
            _ => Vec::new(),
        }
    }

    fn send_all(&self, frames: Frames) -> Vec<Unreachable> {
        let mut failed = Vec::new();
        let mut deepest = 0;
        for (conn, peer) in &self.peers {
            deepest = deepest.max(peer.depth());
            if let Err(unsent) = peer.try_send(frames.clone()) {
                failed.push(unreachable(*conn, unsent));
            }
        }
        crate::metrics::outbound_depth(deepest);
        failed
    }

    /// Has every connection ping its client.
    pub(super) fn ping_all(&self) {
        for peer in self.peers.values() {
            peer.ping();
        }
    }

    /// Asks `conn`'s connection to close with `code` and `reason`.
    pub(super) fn close(&self, conn: ConnId, code: u16, reason: &str) {
        if let Some(peer) = self.peers.get(&conn) {
            tracing::info!(conn, code, reason = %reason, "closing connection");
            peer.close(code, reason);
        }
    }

    /// Closes every connection and forgets them.
    pub(super) fn close_all(&mut self, code: u16, reason: &str) {
        for peer in self.peers.values() {
            peer.close(code, reason);
        }
        self.peers.clear();
    }
}

fn unreachable(conn: ConnId, unsent: Unsent) -> Unreachable {
    match unsent {
        Unsent::Full => Unreachable::Slow(conn),
        Unsent::Gone => Unreachable::Gone(conn),
    }
}

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
        self.peers.remove(conn);
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
        let failed = self.peers.send_to(conn, frame);
        self.unreachable(failed);
    }

    /// Sends `frame` to every peer, or keeps it for [`Room::release`] while frames are held.
    pub(super) fn broadcast(&mut self, frame: Bytes) {
        let failed = self.peers.broadcast(frame);
        self.unreachable(failed);
    }

    /// From now until [`Room::release`], broadcasts are gathered rather than sent.
    pub(super) fn hold(&mut self) {
        self.peers.hold();
    }

    /// Sends the frames gathered since [`Room::hold`] to every peer, as one item each.
    pub(super) fn release(&mut self) {
        let failed = self.peers.release();
        self.unreachable(failed);
    }

    /// A peer whose queue is full is disconnected rather than silently skipped: its client
    /// reconnects and resyncs, so it never ends up missing an update without knowing. One
    /// whose connection is gone leaves.
    fn unreachable(&mut self, peers: impl IntoIterator<Item = Unreachable>) {
        for peer in peers {
            match peer {
                Unreachable::Slow(conn) => {
                    tracing::info!(conn, "slow reader: outbound queue full, disconnecting");
                    self.close_peer(
                        conn,
                        close::SLOW_READER,
                        "outbound queue full: reconnect to resync",
                    );
                }
                Unreachable::Gone(conn) => self.leave(conn),
            }
        }
    }

    pub(super) fn close_peer(&mut self, conn: ConnId, code: u16, reason: impl Into<String>) {
        self.peers.close(conn, code, &reason.into());
        self.leave(conn);
    }

    pub(super) fn close_all(&mut self, code: u16, reason: &str) {
        self.peers.close_all(code, reason);
        self.relay_departures();
        self.presence.clear();
        self.outbox.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::Link;

    fn peer(capacity: usize) -> Peer {
        Arc::new(Link::new(capacity))
    }

    fn taken(peer: &Peer) -> Vec<Frames> {
        let mut items = Vec::new();
        peer.take(usize::MAX, |item| items.push(item));
        items
    }

    #[test]
    fn held_frames_reach_each_peer_as_one_item() {
        let mut peers = Peers::default();
        let (a, b) = (peer(4), peer(4));
        peers.insert(1, a.clone());
        peers.insert(2, b.clone());
        peers.hold();
        assert!(peers.broadcast(Bytes::from_static(b"update")).is_empty());
        assert!(peers.broadcast(Bytes::from_static(b"presence")).is_empty());
        assert!(taken(&a).is_empty(), "nothing goes out while held");
        assert!(peers.release().is_empty());
        for link in [&a, &b] {
            let items = taken(link);
            assert_eq!(items.len(), 1, "one item per peer");
            assert_eq!(
                &items[0][..],
                [
                    Bytes::from_static(b"update"),
                    Bytes::from_static(b"presence")
                ]
            );
        }
        // Not held: each broadcast is its own item.
        assert!(peers.broadcast(Bytes::from_static(b"next")).is_empty());
        assert_eq!(taken(&a)[0].len(), 1);
    }

    #[test]
    fn full_and_closed_queues_are_reported_not_skipped() {
        let mut peers = Peers::default();
        let (slow, gone) = (peer(1), peer(1));
        peers.insert(1, slow.clone());
        peers.insert(2, gone.clone());
        gone.end();
        let mut failed = peers.broadcast(Bytes::from_static(b"one"));
        assert_eq!(failed, [Unreachable::Gone(2)]);
        failed = peers.broadcast(Bytes::from_static(b"two"));
        failed.sort_by_key(|f| match f {
            Unreachable::Slow(c) | Unreachable::Gone(c) => *c,
        });
        assert_eq!(failed, [Unreachable::Slow(1), Unreachable::Gone(2)]);
        assert_eq!(peers.send_to(1, Bytes::new()), Some(Unreachable::Slow(1)));
        assert_eq!(
            peers.send_to(9, Bytes::new()),
            None,
            "unknown peers are no one"
        );
        peers.remove(2);
        assert!(peers.contains(1) && !peers.contains(2));
        peers.close_all(1001, "bye");
        assert!(peers.is_empty());
        assert_eq!(slow.close_reason(), Some((1001, "bye".into())));
    }
}
