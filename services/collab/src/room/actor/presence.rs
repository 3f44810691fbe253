//! Which connection speaks for which awareness client id.
//!
//! Awareness (cursors, names, the cell someone is in) is open to every role, anonymous link
//! viewers included, and its messages name the client ids they describe. Without a check any
//! connection could rename, move or remove someone else's cursor by sending a state under
//! their id. So an id belongs to the first connection that announced it, until that
//! connection leaves; another connection's states for it are dropped. The one exception is
//! the same signed-in person on a new connection (a tab that reconnected before the server
//! noticed its old socket was gone): Yjs keeps its client id across reconnects, so the new
//! connection takes the id over.
//!
//! A removal (a null state) never claims a free id: y-websocket clients relay every awareness
//! change they see, so when someone's connection drops, the others echo the removal back. Had
//! that echo bound the id to whoever echoed it first, the person's own new connection (after
//! a reconnect) could no longer speak for it, and their presence would be gone for good.
//!
//! Each state is also capped in size (`--max-awareness-bytes`): states are relayed to every
//! peer of the notebook, so one large state costs everyone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use yrs::ClientID;
use yrs::sync::AwarenessUpdate;

use crate::room::ConnId;

/// How many client ids one connection may speak for. A Yjs or pycrdt provider uses one per
/// document; a few more leave room for clients that share a socket between documents.
pub(super) const MAX_CLIENTS_PER_CONNECTION: usize = 8;

/// Who owns a client id.
#[derive(Debug, Clone)]
struct Owner {
    conn: ConnId,
    /// The signed-in user behind the connection, if any.
    user: Option<Arc<str>>,
}

/// The ownership of the room's local awareness client ids.
#[derive(Debug)]
pub(super) struct Presence {
    owners: HashMap<ClientID, Owner>,
    by_conn: HashMap<ConnId, HashSet<ClientID>>,
    max_state_bytes: usize,
}

/// Why an awareness update was not accepted at all.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TooLarge {
    /// The largest state's size, in bytes.
    pub size: usize,
    /// The limit.
    pub limit: usize,
}

/// What remains of an awareness update once others' client ids are taken out.
#[derive(Debug)]
pub(super) struct Claimed {
    /// The entries the connection may send; empty when none.
    pub update: AwarenessUpdate,
    /// The client ids it named but does not own.
    pub refused: Vec<ClientID>,
}

impl Presence {
    /// No client ids owned yet; states larger than `max_state_bytes` are refused.
    pub(super) fn new(max_state_bytes: usize) -> Self {
        Self {
            owners: HashMap::new(),
            by_conn: HashMap::new(),
            max_state_bytes,
        }
    }

    /// Checks an awareness update from `conn` (signed in as `user`): every state within the
    /// size cap, and only client ids that are the connection's, or unowned (they become
    /// its) unless `foreign` says another node's client has them.
    pub(super) fn claim(
        &mut self,
        conn: ConnId,
        user: Option<&Arc<str>>,
        mut update: AwarenessUpdate,
        foreign: impl Fn(ClientID) -> bool,
    ) -> Result<Claimed, TooLarge> {
        if let Some(size) = update
            .clients
            .values()
            .map(|entry| entry.json.len())
            .max()
            .filter(|size| *size > self.max_state_bytes)
        {
            return Err(TooLarge {
                size,
                limit: self.max_state_bytes,
            });
        }
        let mut refused = Vec::new();
        update.clients.retain(|client, entry| {
            if entry.json.as_ref() == "null" && !self.owners.contains_key(client) {
                // Removing a state nobody holds (an echo): nothing to claim or relay, and
                // nobody's id was taken.
                return false;
            }
            let allowed = self.take(conn, user, *client, &foreign);
            if !allowed {
                refused.push(*client);
            }
            allowed
        });
        Ok(Claimed { update, refused })
    }

    /// Whether `conn` may speak for `client`, binding it when it is free.
    fn take(
        &mut self,
        conn: ConnId,
        user: Option<&Arc<str>>,
        client: ClientID,
        foreign: &impl Fn(ClientID) -> bool,
    ) -> bool {
        match self.owners.get(&client) {
            Some(owner) if owner.conn == conn => true,
            Some(owner) if user.is_some() && owner.user.as_ref() == user => {
                // The same person's new connection: the id moves to it.
                let old = owner.conn;
                if let Some(ids) = self.by_conn.get_mut(&old) {
                    ids.remove(&client);
                }
                self.bind(conn, user, client)
            }
            Some(_) => false,
            None if foreign(client) => false,
            None => self.bind(conn, user, client),
        }
    }

    fn bind(&mut self, conn: ConnId, user: Option<&Arc<str>>, client: ClientID) -> bool {
        let ids = self.by_conn.entry(conn).or_default();
        if !ids.contains(&client) && ids.len() >= MAX_CLIENTS_PER_CONNECTION {
            return false;
        }
        ids.insert(client);
        self.owners.insert(
            client,
            Owner {
                conn,
                user: user.cloned(),
            },
        );
        true
    }

    /// A connection left: the ids it owned, now free.
    pub(super) fn release(&mut self, conn: ConnId) -> HashSet<ClientID> {
        let ids = self.by_conn.remove(&conn).unwrap_or_default();
        for id in &ids {
            self.owners.remove(id);
        }
        ids
    }

    /// Whether a local connection owns `client`.
    pub(super) fn is_local(&self, client: ClientID) -> bool {
        self.owners.contains_key(&client)
    }

    /// Every client id a local connection owns.
    pub(super) fn local(&self) -> HashSet<ClientID> {
        self.owners.keys().copied().collect()
    }

    /// Forgets every connection (the room is closing them all).
    pub(super) fn clear(&mut self) {
        self.owners.clear();
        self.by_conn.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::sync::awareness::AwarenessUpdateEntry;

    fn c(n: u64) -> ClientID {
        ClientID::new(n)
    }

    fn update(entries: &[(u64, &str)]) -> AwarenessUpdate {
        AwarenessUpdate {
            clients: entries
                .iter()
                .map(|(id, json)| {
                    (
                        c(*id),
                        AwarenessUpdateEntry {
                            clock: 1,
                            json: Arc::from(*json),
                        },
                    )
                })
                .collect(),
        }
    }

    fn ids(claimed: &Claimed) -> Vec<u64> {
        let mut ids: Vec<_> = claimed.update.clients.keys().map(|id| id.get()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn an_id_belongs_to_the_first_connection_that_announced_it() {
        let mut presence = Presence::new(1024);
        let alice: Arc<str> = "alice".into();
        let mallory: Arc<str> = "mallory".into();
        let none = |_| false;
        let first = presence
            .claim(1, Some(&alice), update(&[(10, "{}")]), none)
            .unwrap();
        assert_eq!(ids(&first), [10]);
        // Another person, or an anonymous viewer, cannot speak for it.
        let spoof = presence
            .claim(
                2,
                Some(&mallory),
                update(&[(10, "{\"x\":1}"), (20, "{}")]),
                none,
            )
            .unwrap();
        assert_eq!(ids(&spoof), [20]);
        assert_eq!(spoof.refused, [c(10)]);
        assert!(
            presence
                .claim(3, None, update(&[(10, "null")]), none)
                .unwrap()
                .update
                .clients
                .is_empty()
        );
        // The same person on a new connection takes it over.
        let again = presence
            .claim(4, Some(&alice), update(&[(10, "{}")]), none)
            .unwrap();
        assert_eq!(ids(&again), [10]);
        assert!(presence.release(1).is_empty());
        assert_eq!(presence.release(4), HashSet::from([c(10)]));
        // Free again once its owner left.
        assert_eq!(
            ids(&presence
                .claim(3, None, update(&[(10, "{}")]), none)
                .unwrap()),
            [10]
        );
    }

    #[test]
    fn an_echoed_removal_does_not_claim_a_free_id() {
        let mut presence = Presence::new(1024);
        let bob: Arc<str> = "bob".into();
        let ada: Arc<str> = "ada".into();
        let none = |_| false;
        presence
            .claim(1, Some(&bob), update(&[(7, "{}")]), none)
            .unwrap();
        // Bob's connection drops; Ada's page echoes the removal it was sent.
        assert_eq!(presence.release(1), HashSet::from([c(7)]));
        let echo = presence
            .claim(2, Some(&ada), update(&[(7, "null")]), none)
            .unwrap();
        assert!(echo.update.clients.is_empty() && echo.refused.is_empty());
        // Bob, back on a new connection, still speaks for his id.
        let back = presence
            .claim(3, Some(&bob), update(&[(7, "{}")]), none)
            .unwrap();
        assert_eq!(ids(&back), [7]);
    }

    #[test]
    fn other_nodes_clients_and_too_many_ids_are_refused() {
        let mut presence = Presence::new(1024);
        let claimed = presence
            .claim(1, None, update(&[(5, "{}")]), |id| id == c(5))
            .unwrap();
        assert!(claimed.update.clients.is_empty());
        let many: Vec<(u64, &str)> = (100..120).map(|id| (id, "{}")).collect();
        let claimed = presence.claim(1, None, update(&many), |_| false).unwrap();
        assert_eq!(claimed.update.clients.len(), MAX_CLIENTS_PER_CONNECTION);
    }

    #[test]
    fn large_states_are_refused_whole() {
        let mut presence = Presence::new(16);
        let big = format!("{{\"name\":\"{}\"}}", "x".repeat(32));
        let err = presence
            .claim(1, None, update(&[(1, "{}"), (2, &big)]), |_| false)
            .unwrap_err();
        assert_eq!(err.limit, 16);
        assert!(!presence.is_local(c(1)));
    }
}
