//! Persistence: the group commit that makes a batch's changes durable before they are
//! broadcast, compaction of the update log into a snapshot, and the final flush and
//! compaction when the room stops.

use tandem_protocol::close;
use yrs::sync::{Message, SyncMessage};
use yrs::{ReadTxn, StateVector, Transact};

use super::{Room, Rooms, STORE_UNAVAILABLE, Stop, encode};

impl Room {
    /// Makes pending changes durable, then broadcasts them. Returns false if the store failed,
    /// after closing every connection: their clients still hold the changes and will resend
    /// them on reconnect, against a room reloaded from what is durable.
    pub(super) async fn flush(&mut self, rooms: &Rooms) -> bool {
        let update = match self.log.take_pending() {
            Ok(Some(update)) => update,
            Ok(None) => return true,
            Err(err) => {
                tracing::error!(error = %err, "cannot merge updates");
                self.close_all(close::INTERNAL, "server error; reconnect");
                return false;
            }
        };
        let appending = std::time::Instant::now();
        match rooms
            .store()
            .append_updates(&self.id, std::slice::from_ref(&update))
            .await
        {
            Ok(seq) => {
                crate::metrics::store_appended(appending);
                self.log.stored_bytes += update.len() as u64;
                // With other nodes, the stream reader moves the position (see `remote`).
                if !self.track_own_append(seq) {
                    self.log.appended(seq);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot persist updates; closing the room");
                // The clients keep the change and resend it when they reconnect (their sync
                // step 2 against the reloaded room), so nothing they hold is lost.
                let reason = if err.is_unavailable() {
                    STORE_UNAVAILABLE
                } else {
                    "the server could not save the change; reconnect"
                };
                self.close_all(close::INTERNAL, reason);
                return false;
            }
        }
        self.broadcast(encode(&Message::Sync(SyncMessage::Update(update))));
        crate::metrics::fanned_out(self.log.take_pending_since());
        if self.log.due_for_compaction(rooms.settings().compact_after) {
            self.compact_in_background(rooms);
        }
        true
    }

    pub(super) fn compact_in_background(&mut self, rooms: &Rooms) {
        if self.log.compacting() {
            return;
        }
        let snapshot = self
            .awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let (id, up_to, store_rooms) = (self.id.clone(), self.log.last_seq, rooms.clone());
        let cluster = self.cluster();
        // Everything so far is folded into the snapshot (with other nodes, what the room has
        // not read yet is counted when it arrives).
        let snapshot_bytes = snapshot.len() as u64;
        let task = rooms.tracker().spawn(async move {
            match store_rooms.store().compact(&id, &snapshot, up_to).await {
                // Rooms elsewhere that had not read what was trimmed catch up.
                Ok(()) => {
                    if let Some(cluster) = cluster {
                        cluster.publish(&id, &crate::cluster::RoomMessage::Compacted(up_to));
                    }
                }
                // The log is intact; the next compaction will fold it.
                Err(err) => tracing::warn!(error = %err, doc_id = %id, "compaction failed"),
            }
        });
        self.log.compaction_started(snapshot_bytes, task);
    }

    /// Flushes, closes every connection and folds the log into a snapshot. Returns the
    /// deletion's completion signal, to be sent once the room left the registry.
    pub(super) async fn stop(
        mut self,
        rooms: &Rooms,
        stop: Stop,
    ) -> Option<tokio::sync::oneshot::Sender<()>> {
        let flushed = matches!(stop, Stop::StoreFailed) || self.flush(rooms).await;
        let (code, reason) = match &stop {
            Stop::Idle => (close::GOING_AWAY, "the notebook's room closed; reconnect"),
            Stop::Shutdown => (close::GOING_AWAY, "server shutting down"),
            Stop::Deleted(_) => (close::POLICY, "notebook deleted"),
            Stop::StoreFailed => (close::INTERNAL, "server error; reconnect"),
        };
        self.close_all(code, reason);
        if let Some(task) = self.log.take_compaction() {
            let _ = task.await;
        }
        match stop {
            Stop::Deleted(done) => return Some(done),
            Stop::StoreFailed => {}
            Stop::Idle | Stop::Shutdown => {
                if flushed && self.log.len > 0 {
                    let snapshot = self
                        .awareness
                        .doc()
                        .transact()
                        .encode_state_as_update_v1(&StateVector::default());
                    match rooms
                        .store()
                        .compact(&self.id, &snapshot, self.log.last_seq)
                        .await
                    {
                        Ok(()) => {
                            if let Some(cluster) = self.cluster() {
                                let done =
                                    crate::cluster::RoomMessage::Compacted(self.log.last_seq);
                                cluster.publish(&self.id, &done);
                            }
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "final compaction failed; the log is kept");
                        }
                    }
                }
                if flushed {
                    self.final_version(rooms).await;
                }
            }
        }
        None
    }
}
