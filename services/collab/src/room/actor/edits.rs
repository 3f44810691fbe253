//! What clients change: document updates (checked by role, by the [`tandem_crdt::Guard`] for
//! runtime- and server-owned values, and against the notebook's size quota) and awareness
//! (checked by [`super::presence`]).

use std::sync::Arc;

use tandem_protocol::close;
use tokio::time::Instant;
use yrs::sync::{AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, Transact, Update};

use super::{ConnId, Rights, Room, encode, outbox};

impl Room {
    pub(super) fn apply_update(&mut self, conn: ConnId, rights: Rights, bytes: &[u8]) {
        let update = match Update::decode_v1(bytes) {
            Ok(update) => update,
            Err(err) => {
                self.close_peer(
                    conn,
                    close::MALFORMED,
                    format!("document update does not decode: {err}"),
                );
                return;
            }
        };
        let outcome = match rights {
            Rights::ReadOnly => {
                // A read-only client's sync step 2 is usually empty; anything else is refused,
                // never applied, and the client is told why.
                if !update.is_empty() {
                    self.deny(conn, "read-only access");
                }
                return;
            }
            Rights::Edit => {
                if let Some(limit) = self.over_size_limit(bytes.len())
                    && !update.insertions(true).is_empty()
                {
                    tracing::info!(conn, limit, "notebook over its size limit");
                    self.close_peer(
                        conn,
                        close::POLICY,
                        format!(
                            "the notebook is over its size limit ({limit} bytes): only \
                             deletions are accepted"
                        ),
                    );
                    return;
                }
                self.guard.apply(update)
            }
            Rights::Runtime => {
                let doc = self.awareness.doc();
                let mut txn = doc.transact_mut();
                let error = txn.apply_update(update).err();
                tandem_crdt::Outcome {
                    // Whatever was integrated, even before an error, is in the document now
                    // and must be persisted and broadcast like any other change.
                    changes: txn
                        .has_changes()
                        .then(|| txn.encode_update_v1())
                        .into_iter()
                        .collect(),
                    error,
                    ..tandem_crdt::Outcome::default()
                }
            }
        };
        if !outcome.changes.is_empty() {
            self.log.extend(outcome.changes);
            crate::metrics::update_applied();
            if outcome.refused.is_none() {
                self.versions.changed(None);
            }
        }
        if let Some(reason) = outcome.refused {
            // Reverted for everyone, the sender included: the revert reaches it with the
            // next broadcast, so its copy comes back to the room's.
            tracing::info!(conn, reason = %reason, "refused a client's update");
            self.deny(conn, &reason);
        }
        if outcome.incomplete {
            // Nothing waits in memory for what the client did not send: our state vector
            // makes it send everything we lack, this time whole.
            let sv = self.awareness.doc().transact().state_vector();
            self.send_to(conn, encode(&Message::Sync(SyncMessage::SyncStep1(sv))));
        }
        if let Some(err) = outcome.error {
            self.close_peer(
                conn,
                close::MALFORMED,
                format!("document update does not apply: {err}"),
            );
        }
    }

    /// Tells a client its document update was refused (y-websocket's `[2, 0, reason]`).
    fn deny(&mut self, conn: ConnId, reason: &str) {
        let denied = Message::Auth(Some(format!("permission denied: {reason}")));
        self.send_to(conn, encode(&denied));
    }

    /// The notebook's size limit, when `more` bytes would take it past.
    fn over_size_limit(&self, more: usize) -> Option<u64> {
        let limit = self.max_notebook_bytes;
        let size = self.log.stored_bytes + self.log.pending_bytes() + more as u64;
        (limit != 0 && size > limit).then_some(limit)
    }

    pub(super) fn apply_awareness(
        &mut self,
        conn: ConnId,
        user: Option<&Arc<str>>,
        update: AwarenessUpdate,
    ) {
        // Echoes of what the room already has are dropped first: stock clients send back every
        // change they receive, and those are neither news nor someone speaking for another.
        let news = outbox::news(&self.awareness, update);
        if news.update.clients.is_empty() {
            return;
        }
        let remote = &self.remote;
        let foreign = |client| remote.as_ref().is_some_and(|r| r.has_client(client));
        let claimed = match self.presence.claim(conn, user, news.update, foreign) {
            Ok(claimed) => claimed,
            Err(too_large) => {
                self.close_peer(
                    conn,
                    close::TOO_BIG,
                    format!(
                        "awareness state of {} bytes, more than the limit of {}",
                        too_large.size, too_large.limit
                    ),
                );
                return;
            }
        };
        if !claimed.refused.is_empty() {
            tracing::info!(
                conn,
                clients = ?claimed.refused,
                "dropped awareness for client ids another connection owns"
            );
        }
        if claimed.update.clients.is_empty() {
            return;
        }
        let clients: Vec<_> = claimed.update.clients.keys().copied().collect();
        if let Err(err) = self.awareness.apply_update(claimed.update) {
            self.close_peer(
                conn,
                close::MALFORMED,
                format!("awareness update does not apply: {err}"),
            );
            return;
        }
        self.outbox
            .applied(clients, &news.renewals, outbox::From::Local, Instant::now());
    }
}
