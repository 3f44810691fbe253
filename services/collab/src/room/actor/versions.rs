//! The room's side of version history (see [`crate::versions`]): automatic versions when
//! edits settle or the room unloads, named versions, and restores applied as one ordinary
//! edit of the room's document, persisted and broadcast like anyone's.

use anyhow::Context;
use yrs::{ReadTxn, StateVector, Transact};

use super::{Room, Stop};
use crate::room::Rooms;
use crate::store::{VersionKind, VersionRecord};
use crate::versions::Request;

impl Room {
    /// Takes the automatic version that is due. `Some` when the store failed and the room
    /// must stop.
    pub(super) async fn auto_version(&mut self, rooms: &Rooms) -> Option<Stop> {
        if !self.flush(rooms).await {
            return Some(Stop::StoreFailed);
        }
        if let Err(err) = self.save_version(rooms, VersionKind::Auto, None).await {
            tracing::warn!(
                error = format!("{err:#}"),
                "cannot save an automatic version"
            );
        }
        None
    }

    /// Before unloading (the document already flushed): saves unsaved changes as an
    /// automatic version.
    pub(super) async fn final_version(&mut self, rooms: &Rooms) {
        if !self.versions.has_changes() {
            return;
        }
        if let Err(err) = self.save_version(rooms, VersionKind::Auto, None).await {
            tracing::warn!(
                error = format!("{err:#}"),
                "cannot save the last automatic version"
            );
        }
    }

    /// Names a version or restores one. `Some` when the store failed and the room must stop
    /// (the request's reply is then dropped, which its sender reads as a stopped room).
    pub(super) async fn handle_version(&mut self, request: Request, rooms: &Rooms) -> Option<Stop> {
        if !self.flush(rooms).await {
            return Some(Stop::StoreFailed);
        }
        match request {
            Request::Name { name, reply } => {
                let saved = self
                    .save_version(rooms, VersionKind::Named, Some(name))
                    .await;
                let _ = reply.send(saved);
            }
            Request::Restore {
                contents,
                before_name,
                author,
                reply,
            } => {
                let before = match self
                    .save_version(rooms, VersionKind::Named, Some(before_name))
                    .await
                {
                    Ok(before) => before,
                    Err(err) => {
                        let _ = reply.send(Err(err));
                        return None;
                    }
                };
                let summary = {
                    let doc = self.awareness.doc();
                    let mut txn = doc.transact_mut();
                    let summary = tandem_crdt::history::restore(&mut txn, &contents);
                    if txn.has_changes() {
                        self.log.push(txn.encode_update_v1());
                    }
                    summary
                };
                self.versions.changed(Some(&author));
                // Durable and on its way to every connection before the caller hears back.
                if !self.flush(rooms).await {
                    return Some(Stop::StoreFailed);
                }
                tracing::info!(
                    inserted = summary.inserted,
                    deleted = summary.deleted,
                    modified = summary.modified,
                    "version restored"
                );
                let _ = reply.send(Ok((before, summary)));
            }
        }
        None
    }

    /// Stores the document as it is now (everything applied is already durable) as a version
    /// crediting the authors since the last one, then thins the history in the background.
    async fn save_version(
        &mut self,
        rooms: &Rooms,
        kind: VersionKind,
        name: Option<String>,
    ) -> anyhow::Result<VersionRecord> {
        let state = self
            .awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let record = VersionRecord {
            id: crate::ids::random_id(),
            notebook_id: self.id.clone(),
            created_at_ms: crate::ids::now_ms(),
            kind,
            name,
            author_ids: self.versions.take(),
        };
        if let Err(err) = rooms.store().insert_version(&record, &state).await {
            self.versions.give_back(record.author_ids);
            return Err(err).context("storing a version");
        }
        tracing::debug!(version = %record.id, kind = kind.as_str(), "version saved");
        if kind == VersionKind::Auto {
            let (rooms, id) = (rooms.clone(), self.id.clone());
            rooms.clone().tracker().spawn(async move {
                crate::versions::prune(rooms.store(), &id, &rooms.settings().versions).await;
            });
        }
        Ok(record)
    }
}
