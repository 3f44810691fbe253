//! Keeping clients off the values only the runtime or the server writes.
//!
//! Editors change cells' sources, metadata and the cell list; the runtime alone writes what
//! a run produced ([`RUNTIME_CELL_KEYS`]: outputs, counts, run states, who ran a cell, stale
//! marks) and the collab service alone writes `state.kernel`'s neighbours
//! ([`SERVER_STATE_KEYS`]: the kernel's state, the git origin, the title, the comments
//! revision), each through its own API. A [`Guard`] applies a client's update to a document
//! and checks what it changed there:
//!
//! - any change to a runtime- or server-owned key of an existing cell or of `state`, or inside
//!   the value such a key holds (an output appended, a stream's text, a key of
//!   `state.kernel`), refuses the update;
//! - a cell the update creates may hold those keys only at their initial values (no outputs,
//!   a null count, an `"idle"` state: what JupyterLab, jupyter_ydoc and Tandem's own clients
//!   write into a new cell), or, for a cell that moves (deleted and re-inserted under the same
//!   id in one update, as every Jupyter client moves cells), exactly the values the original
//!   held.
//!
//! A refused update is not left out of the document: its author's clocks would then have a
//! gap, so every later edit of that client would wait forever for the missing part, and the
//! author's own copy would keep showing what it wrote. Instead the update is integrated and
//! at once reverted as a whole, in a second transaction, by [`yrs::undo::UndoManager`]
//! (deleting what it inserted, restoring what it deleted). Both transactions' updates are
//! returned together; merged, they leave every replica as it was, including the author's,
//! which converges back as soon as it receives them. The refused content survives only as
//! deleted items, garbage-collected here before anything is persisted.
//!
//! Updates that depend on changes the document lacks (yrs would keep them pending, in memory,
//! and integrate them later during some other transaction, unchecked) are not kept:
//! [`Outcome::incomplete`] tells the caller to ask the client for them again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use yrs::types::{Change, EntryChange, Event, Events, PathSegment};
use yrs::undo::{Options as UndoOptions, UndoManager};
use yrs::{
    Any, Array, ArrayRef, BranchID, DeepObservable, Doc, IdSet, Map, MapRef, Origin, Out, ReadTxn,
    StateVector, Transact, TransactionMut, Update, WriteTxn,
};

use crate::schema::{
    self, CELLS, EXECUTION_BY, EXECUTION_COUNT, EXECUTION_STATE, ID, META, OUTPUTS,
    RUNTIME_CELL_KEYS, SERVER_STATE_KEYS, STALE, STATE,
};

/// The origin of the transactions a guard applies clients' updates in.
const GUARD_ORIGIN: &str = "tandem-crdt/guard";

/// What applying one client update did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Encoded updates (lib0 v1) to persist and send to every replica, in order: the client's
    /// update as integrated, then, when it was refused, its revert. Empty when the update
    /// changed nothing.
    pub changes: Vec<Vec<u8>>,
    /// Why the update was refused (and reverted), for the client.
    pub refused: Option<String>,
    /// Part of the update depended on changes the document does not have; that part was
    /// dropped. The client should be asked to send what it has again (a sync step 1).
    pub incomplete: bool,
    /// The update could not be integrated past some point; what came before it is in
    /// [`Outcome::changes`] (and was checked like the rest).
    pub error: Option<yrs::error::UpdateError>,
}

/// Applies clients' updates to one document, refusing those that write runtime- or
/// server-owned values (see the module documentation).
///
/// Changes made outside [`Guard::apply`] (the runtime's updates, the server's own edits,
/// other collab nodes' updates) are not checked.
pub struct Guard {
    doc: Doc,
    undo: UndoManager<()>,
    inspection: Arc<Mutex<Inspection>>,
    cells: ArrayRef,
    state: MapRef,
    origin: Origin,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

/// What the observers found while a guarded update was being integrated.
#[derive(Default)]
struct Inspection {
    /// The protected values of the cells the update deletes, by cell id: what a moved copy
    /// of each may carry.
    moved_from: HashMap<String, HashMap<String, Value>>,
    /// The first reason to refuse the update.
    violation: Option<String>,
}

impl Inspection {
    fn refuse(&mut self, reason: impl FnOnce() -> String) {
        if self.violation.is_none() {
            self.violation = Some(reason());
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The inspection is reset before every update; a panic elsewhere cannot leave it in a
    // state that matters.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Guard {
    /// Watches `doc`. Call it when no transaction is open on the document.
    pub fn new(doc: &Doc) -> Self {
        let origin = Origin::from(GUARD_ORIGIN);
        let cells = doc.get_or_insert_array(CELLS);
        let state = doc.get_or_insert_map(STATE);
        let meta = doc.get_or_insert_map(META);
        let inspection = Arc::new(Mutex::new(Inspection::default()));

        let observed = inspection.clone();
        let ours = origin.clone();
        cells.observe_deep(GUARD_ORIGIN, move |txn, events| {
            if txn.origin() == Some(&ours) {
                inspect_cells(txn, events, &mut lock(&observed));
            }
        });
        let observed = inspection.clone();
        let ours = origin.clone();
        state.observe_deep(GUARD_ORIGIN, move |txn, events| {
            if txn.origin() == Some(&ours) {
                inspect_state(txn, events, &mut lock(&observed));
            }
        });

        // Only refused updates are captured, so the undo manager keeps (and protects from
        // garbage collection) nothing for the updates that pass.
        let refusing = inspection.clone();
        let options = UndoOptions {
            capture_timeout_millis: 0,
            tracked_origins: [origin.clone()].into_iter().collect(),
            capture_transaction: Some(Arc::new(move |_txn: &TransactionMut| {
                lock(&refusing).violation.is_some()
            })),
            ..UndoOptions::default()
        };
        let mut undo = UndoManager::with_options(options);
        undo.expand_scope(doc, &cells);
        undo.expand_scope(doc, &state);
        undo.expand_scope(doc, &meta);
        Self {
            doc: doc.clone(),
            undo,
            inspection,
            cells,
            state,
            origin,
        }
    }

    /// Applies one client update (see the module documentation). Call it when no transaction
    /// is open on the document.
    pub fn apply(&mut self, update: Update) -> Outcome {
        let moved_from = if update.delete_set().is_empty() {
            HashMap::new()
        } else {
            self.moved_from(update.delete_set())
        };
        *lock(&self.inspection) = Inspection {
            moved_from,
            violation: None,
        };
        let mut outcome = Outcome::default();
        let before = self.doc.transact().state_vector();
        {
            let mut txn = self.doc.transact_mut_with(self.origin.clone());
            outcome.error = txn.apply_update(update).err();
            outcome.incomplete = drop_pending(&mut txn);
            if txn.has_changes() {
                outcome.changes.push(txn.encode_update_v1());
            }
            // Dropping the transaction commits it: the observers inspect it now.
        }
        outcome.refused = lock(&self.inspection).violation.clone();
        if outcome.refused.is_some() {
            self.revert();
            // The update and its revert as one, encoded after the refused content was
            // collected, so that content is neither stored nor sent anywhere.
            outcome.changes = vec![self.doc.transact().encode_state_as_update_v1(&before)];
        }
        *lock(&self.inspection) = Inspection::default();
        outcome
    }

    /// Reverts the update just applied (the undo manager captured it because it was refused)
    /// and collects what both transactions left deleted.
    fn revert(&mut self) {
        self.undo.undo_blocking();
        let mut touched = IdSet::new();
        for item in self.undo.undo_stack().iter().chain(self.undo.redo_stack()) {
            touched.merge_with(item.insertions().clone());
            touched.merge_with(item.deletions().clone());
        }
        self.undo.clear_all();
        lock(&self.inspection).violation = None;
        // The undo manager kept the deleted items whole so it could restore them; the refused
        // content need not outlive the revert.
        self.doc.transact_mut().gc(Some(&touched));
    }

    /// The protected values of every cell whose map `deleted` deletes, by cell id.
    fn moved_from(&self, deleted: &IdSet) -> HashMap<String, HashMap<String, Value>> {
        let txn = self.doc.transact();
        let mut found = HashMap::new();
        for item in self.cells.iter(&txn) {
            let Out::YMap(cell) = item else { continue };
            let branch: &yrs::branch::Branch = cell.as_ref();
            let BranchID::Nested(id) = branch.id() else {
                continue;
            };
            if !deleted.contains(&id) {
                continue;
            }
            if let Some(cell_id) = schema::map_string(&cell, &txn, ID) {
                found.insert(cell_id, protected_values(&cell, &txn));
            }
        }
        found
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.cells.unobserve_deep(GUARD_ORIGIN);
        self.state.unobserve_deep(GUARD_ORIGIN);
    }
}

/// Forgets whatever the transaction left waiting for missing changes. Returns whether there
/// was any.
fn drop_pending(txn: &mut TransactionMut) -> bool {
    let store = txn.store_mut();
    let mut dropped = false;
    if let Some(pending) = store.pending_update_mut() {
        dropped |= !pending.update.is_empty();
        pending.update = Update::new();
        pending.missing = StateVector::default();
    }
    if let Some(pending) = store.pending_ds_mut() {
        dropped |= !pending.is_empty();
        *pending = IdSet::new();
    }
    dropped
}

fn protected_values<T: ReadTxn>(cell: &MapRef, txn: &T) -> HashMap<String, Value> {
    RUNTIME_CELL_KEYS
        .iter()
        .filter_map(|key| {
            cell.get(txn, key)
                .map(|v| ((*key).to_owned(), schema::out_to_json(&v, txn)))
        })
        .collect()
}

fn inspect_state(txn: &TransactionMut, events: &Events, inspection: &mut Inspection) {
    for event in events.iter() {
        let path = event.path();
        match path.front() {
            None => {
                if let Event::Map(map) = event {
                    for key in map.keys(txn).keys() {
                        if SERVER_STATE_KEYS.contains(&key.as_ref()) {
                            inspection.refuse(|| owned_by_server(key));
                        }
                    }
                }
            }
            Some(PathSegment::Key(key)) if SERVER_STATE_KEYS.contains(&key.as_ref()) => {
                inspection.refuse(|| owned_by_server(key));
            }
            Some(_) => {}
        }
    }
}

fn owned_by_server(key: &str) -> String {
    format!("state.{key} is written only by the server")
}

fn owned_by_runtime(key: &str) -> String {
    format!("a cell's {key} is written only by the runtime")
}

fn inspect_cells(txn: &TransactionMut, events: &Events, inspection: &mut Inspection) {
    for event in events.iter() {
        let path = event.path();
        match (path.front(), path.get(1)) {
            // The cell list: new cells must come clean (or as moved copies).
            (None, _) => {
                if let Event::Array(array) = event {
                    for change in array.delta(txn) {
                        if let Change::Added(values) = change {
                            for value in values {
                                if let Out::YMap(cell) = value {
                                    inspect_new_cell(txn, cell, inspection);
                                }
                            }
                        }
                    }
                }
            }
            // A key of an existing cell.
            (Some(PathSegment::Index(_)), None) => {
                if let Event::Map(map) = event {
                    for (key, change) in map.keys(txn) {
                        if RUNTIME_CELL_KEYS.contains(&key.as_ref()) && !unchanged(change) {
                            inspection.refuse(|| owned_by_runtime(key));
                        }
                    }
                }
            }
            // Inside a value an existing cell holds under a runtime key (outputs, stream text).
            (Some(PathSegment::Index(_)), Some(PathSegment::Key(key)))
                if RUNTIME_CELL_KEYS.contains(&key.as_ref()) =>
            {
                inspection.refuse(|| owned_by_runtime(key));
            }
            _ => {}
        }
    }
}

/// An entry rewritten with an equal plain value: harmless, and what JupyterLab's setters do
/// when a value is "set" to what it already is.
fn unchanged(change: &EntryChange) -> bool {
    matches!(change, EntryChange::Updated(Out::Any(old), Out::Any(new)) if old == new)
}

fn inspect_new_cell(txn: &TransactionMut, cell: &MapRef, inspection: &mut Inspection) {
    let original = schema::map_string(cell, txn, ID)
        .and_then(|id| inspection.moved_from.get(&id))
        .cloned();
    for key in RUNTIME_CELL_KEYS {
        let Some(value) = cell.get(txn, key) else {
            continue;
        };
        if is_initial(key, &value, txn) {
            continue;
        }
        let moved_unchanged = original
            .as_ref()
            .and_then(|values| values.get(key))
            .is_some_and(|was| *was == schema::out_to_json(&value, txn));
        if !moved_unchanged {
            inspection.refuse(|| {
                format!(
                    "a new cell's {key} must be empty or null (it is written only by the \
                     runtime), or as it was for a moved cell"
                )
            });
            return;
        }
    }
}

/// Whether a new cell's runtime-owned value is what a fresh cell holds.
fn is_initial<T: ReadTxn>(key: &str, value: &Out, txn: &T) -> bool {
    match (key, value) {
        (OUTPUTS, Out::YArray(outputs)) => outputs.len(txn) == 0,
        (OUTPUTS, Out::Any(Any::Array(outputs))) => outputs.is_empty(),
        (EXECUTION_COUNT | EXECUTION_BY, Out::Any(Any::Null | Any::Undefined)) => true,
        (EXECUTION_STATE, Out::Any(Any::String(state))) => state.as_ref() == "idle",
        (EXECUTION_STATE, Out::Any(Any::Null | Any::Undefined)) => true,
        (STALE, Out::Any(Any::Bool(false) | Any::Null | Any::Undefined)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
