//! `state.kernel`, the runtime's shared state, as far as anyone but the runtime writes it:
//! marking the kernel of a runtime that is gone as dead.
//!
//! The runtime that owns a notebook's kernel writes `state.kernel` itself. When that runtime
//! vanishes (its node was killed, or it lost the notebook for longer than it may wait), nobody
//! would ever finish its cells or change its status, so whoever notices (a live runtime node,
//! or a collab node with the notebook open) writes the death with [`mark_kernel_dead`].

use yrs::{Any, Map, Out, ReadTxn, TransactionMut};

use crate::Notebook;
use crate::read;
use crate::schema::{self, EXECUTION_STATE, ExecutionState};

/// The key of the runtime's map under the root `state` map.
pub const KERNEL: &str = "kernel";

/// Marks the kernel dead in `txn`'s document: `state.kernel.status = "dead"` with `reason`,
/// nothing queued or running, no holder or lifecycle announcements, and every queued or
/// running code cell back to idle. Writes nothing and returns false when `state.kernel` shows
/// no live kernel (never started, shut down, or already dead).
pub fn mark_kernel_dead(txn: &mut TransactionMut, reason: &str) -> bool {
    let Some(state) = txn.get_map(schema::STATE) else {
        return false;
    };
    let Some(Out::YMap(kernel)) = state.get(txn, KERNEL) else {
        return false;
    };
    let live = matches!(
        schema::map_string(&kernel, txn, "status").as_deref(),
        Some("starting" | "idle" | "busy")
    );
    if !live {
        return false;
    }
    kernel.insert(txn, "status", "dead");
    kernel.insert(txn, "reason", reason);
    kernel.insert(txn, "queue", Any::Array(Vec::<Any>::new().into()));
    kernel.insert(txn, "running", Any::Null);
    for key in ["idle_shutdown_at", "lifetime_ends_at", "holder"] {
        kernel.remove(txn, key);
    }
    if let Some(cells) = txn.get_array(schema::CELLS) {
        for slot in read::visible_cells(&cells, txn) {
            let state = schema::map_string(&slot.map, txn, EXECUTION_STATE);
            let busy = [ExecutionState::Queued, ExecutionState::Running]
                .iter()
                .any(|s| state.as_deref() == Some(s.as_str()));
            if busy {
                slot.map
                    .insert(txn, EXECUTION_STATE, ExecutionState::Idle.as_str());
            }
        }
    }
    true
}

impl Notebook {
    /// [`mark_kernel_dead`] in one transaction on this notebook.
    pub fn mark_kernel_dead(&self, reason: &str) -> bool {
        let mut txn = yrs::Transact::transact_mut(self.doc());
        mark_kernel_dead(&mut txn, reason)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use yrs::{MapPrelim, Transact};

    use super::*;
    use crate::NewCell;

    #[test]
    fn marks_a_live_kernel_dead_once() {
        let nb = Notebook::new();
        let id = nb.insert_cell(0, NewCell::code("x")).unwrap();
        nb.set_execution_state(&id, ExecutionState::Running)
            .unwrap();
        assert!(!nb.mark_kernel_dead("gone"), "no kernel map yet");
        {
            let mut txn = nb.doc().transact_mut();
            let kernel = nb.state().insert(&mut txn, KERNEL, MapPrelim::default());
            kernel.insert(&mut txn, "status", "busy");
            kernel.insert(&mut txn, "running", id.as_str());
            kernel.insert(&mut txn, "holder", "someone");
        }
        assert!(nb.mark_kernel_dead("gone"));
        let kernel = nb.state_value(KERNEL).unwrap();
        assert_eq!(kernel["status"], "dead");
        assert_eq!(kernel["reason"], "gone");
        assert_eq!(kernel["queue"], json!([]));
        assert_eq!(kernel["running"], json!(null));
        assert!(kernel.get("holder").is_none());
        assert_eq!(nb.cells()[0].execution_state, Some(ExecutionState::Idle));
        assert!(!nb.mark_kernel_dead("again"), "already dead");
    }
}
