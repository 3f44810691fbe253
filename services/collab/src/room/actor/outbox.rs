//! Awareness that goes out: only what changed the room's state, coalesced.
//!
//! Stock y-websocket clients send back every awareness change they receive, and every client
//! renews its own state every 15 s (y-protocols' `outdatedTimeout / 2`). Relaying all of that
//! as it comes costs N frames per peer per change, N³ in all. So, as the reference server
//! does, only entries that change the room's state (a newer clock, or a removal at the same
//! clock) are taken in; echoes of what the room has are dropped before anything else looks at
//! them ([`news`]). And what is taken in goes out coalesced:
//!
//! - a change (a state added, different or removed) goes to the peers once per batch, in one
//!   frame with every other change of that batch;
//! - a renewal (a newer clock, the same state) only keeps the state from timing out at the
//!   peers, 30 s after it was last renewed, so renewals wait up to [`RENEWAL_DELAY`] and go out
//!   together: with hundreds of watchers renewing, each peer gets about one frame a second
//!   instead of one per watcher.
//!
//! Local clients' entries are also published to the other collab nodes, the same way; other
//! nodes' entries only go to the local peers.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;
use yrs::ClientID;
use yrs::sync::{Awareness, AwarenessUpdate};

/// How long a renewal may wait to be sent with others. Far under the 30 s after which peers
/// drop a state that was not renewed.
pub(super) const RENEWAL_DELAY: Duration = Duration::from_secs(1);

/// The JSON y-protocols sends for a removed state.
const NULL: &str = "null";

/// Where an entry came from, and so where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum From {
    /// A client of this node: to the local peers and the other nodes.
    Local,
    /// A client of another node: to the local peers only.
    Remote,
}

/// The entries of an awareness update that would change the room's awareness, and which of
/// them only renew a state.
#[derive(Debug)]
pub(super) struct News {
    pub update: AwarenessUpdate,
    pub renewals: HashSet<ClientID>,
}

/// Keeps the entries of `update` that `awareness` would apply, as y-protocols decides: a client
/// it does not know (with a state), a newer clock, or a removal at the same clock. Marks those
/// whose state is the same as the room's as renewals.
pub(super) fn news(awareness: &Awareness, mut update: AwarenessUpdate) -> News {
    let mut renewals = HashSet::new();
    update.clients.retain(|client, entry| {
        let removal = &*entry.json == NULL;
        let Ok(known) = awareness.update_with_clients([*client]) else {
            // Unknown: a new state is news, the removal of nothing is not.
            return !removal;
        };
        let Some(current) = known.clients.get(client) else {
            return !removal;
        };
        let has_state = &*current.json != NULL;
        if entry.clock > current.clock {
            if has_state && current.json == entry.json {
                renewals.insert(*client);
            }
            // A removal of a state already removed changes nothing anyone sees; it is still
            // taken so the room's clock for the client moves on.
            true
        } else {
            entry.clock == current.clock && removal && has_state
        }
    });
    News { update, renewals }
}

/// Whether the room's awareness holds a state (not removed) for `client`.
pub(super) fn has_state(awareness: &Awareness, client: ClientID) -> bool {
    awareness
        .update_with_clients([client])
        .ok()
        .and_then(|update| update.clients.get(&client).map(|e| &*e.json != NULL))
        .unwrap_or(false)
}

/// Awareness entries applied to the room and not yet sent.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// Clients whose state was added, changed or removed: sent after the batch.
    changed: HashMap<ClientID, From>,
    /// Clients that only renewed their state: sent at [`Outbox::renewal_due`].
    renewed: HashMap<ClientID, From>,
    /// When the oldest waiting renewal must go.
    renewal_due: Option<Instant>,
}

/// What to send now.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Due {
    /// To the local peers.
    pub peers: Vec<ClientID>,
    /// To the other nodes.
    pub nodes: Vec<ClientID>,
}

impl Outbox {
    /// Records entries the room applied: `renewals` of them only renewed a state.
    pub(super) fn applied(
        &mut self,
        clients: impl IntoIterator<Item = ClientID>,
        renewals: &HashSet<ClientID>,
        from: From,
        now: Instant,
    ) {
        for client in clients {
            if renewals.contains(&client) && !self.changed.contains_key(&client) {
                self.renewed.insert(client, from);
                self.renewal_due.get_or_insert(now + RENEWAL_DELAY);
            } else {
                // A change carries the latest clock too: a waiting renewal goes with it.
                self.renewed.remove(&client);
                self.changed.insert(client, from);
            }
        }
    }

    /// When waiting renewals must be sent, if any wait.
    pub(super) fn renewal_due(&self) -> Option<Instant> {
        self.renewal_due
    }

    /// Takes what is due at `now`: every change, and the renewals when their time has come.
    pub(super) fn take(&mut self, now: Instant) -> Due {
        let mut due = Due::default();
        let renewals_due = self.renewal_due.is_some_and(|at| at <= now);
        let renewals = if renewals_due {
            self.renewal_due = None;
            std::mem::take(&mut self.renewed)
        } else {
            HashMap::new()
        };
        for (client, from) in self.changed.drain().chain(renewals) {
            due.peers.push(client);
            if from == From::Local {
                due.nodes.push(client);
            }
        }
        due.peers.sort_unstable();
        due.nodes.sort_unstable();
        due
    }

    /// Forgets everything waiting (the room is closing).
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use yrs::Doc;
    use yrs::sync::awareness::AwarenessUpdateEntry;

    use super::*;

    fn c(n: u64) -> ClientID {
        ClientID::new(n)
    }

    fn update(entries: &[(u64, u32, &str)]) -> AwarenessUpdate {
        AwarenessUpdate {
            clients: entries
                .iter()
                .map(|(id, clock, json)| {
                    (
                        c(*id),
                        AwarenessUpdateEntry {
                            clock: *clock,
                            json: Arc::from(*json),
                        },
                    )
                })
                .collect(),
        }
    }

    fn ids(update: &AwarenessUpdate) -> Vec<u64> {
        let mut ids: Vec<_> = update.clients.keys().map(|id| id.get()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn only_what_would_change_the_room_is_news() {
        let mut awareness = Awareness::new(Doc::new());
        awareness
            .apply_update(update(&[(1, 3, r#"{"a":1}"#), (2, 5, r#"{"b":1}"#)]))
            .unwrap();
        let news = news(
            &awareness,
            update(&[
                // An echo of what the room has, and an older clock: dropped.
                (1, 3, r#"{"a":1}"#),
                (2, 4, r#"{"b":0}"#),
                // A newer clock with the same state: a renewal.
                (3, 1, r#"{"c":1}"#),
            ]),
        );
        assert_eq!(ids(&news.update), [3]);
        assert!(news.renewals.is_empty());

        let news = news_of(&awareness, &[(1, 4, r#"{"a":1}"#), (2, 6, r#"{"b":2}"#)]);
        assert_eq!(ids(&news.update), [1, 2]);
        assert_eq!(news.renewals, HashSet::from([c(1)]));

        // A removal at the same clock is news; the removal of an unknown client is not.
        let news = news_of(&awareness, &[(2, 5, NULL), (9, 1, NULL)]);
        assert_eq!(ids(&news.update), [2]);
    }

    fn news_of(awareness: &Awareness, entries: &[(u64, u32, &str)]) -> News {
        news(awareness, update(entries))
    }

    #[test]
    fn changes_go_at_once_and_renewals_together_later() {
        let mut outbox = Outbox::default();
        let start = Instant::now();
        outbox.applied([c(1), c(2)], &HashSet::from([c(2)]), From::Local, start);
        outbox.applied([c(7)], &HashSet::from([c(7)]), From::Remote, start);
        let due = outbox.take(start);
        assert_eq!(due.peers, [c(1)]);
        assert_eq!(due.nodes, [c(1)]);
        assert_eq!(outbox.renewal_due(), Some(start + RENEWAL_DELAY));
        // A change of a client with a waiting renewal carries it.
        outbox.applied([c(2)], &HashSet::new(), From::Local, start);
        assert_eq!(outbox.take(start).peers, [c(2)]);
        let later = start + RENEWAL_DELAY;
        let due = outbox.take(later);
        assert_eq!(due.peers, [c(7)]);
        assert!(
            due.nodes.is_empty(),
            "other nodes' clients are not sent back"
        );
        assert_eq!(outbox.renewal_due(), None);
        assert_eq!(outbox.take(later), Due::default());
    }
}
