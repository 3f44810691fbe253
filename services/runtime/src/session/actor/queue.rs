//! The queue: commands from the session handle, executes waiting for the replica to catch up
//! with their requester, and the queued cells mirrored into `state.kernel.queue`.

use std::collections::VecDeque;

use tokio::time::Instant;

use tandem_crdt::{CodeLookup, ExecutionState};

use super::{Actor, Entry, Waiting};
use crate::session::{CATCH_UP, Command, SessionError};

impl Actor {
    pub(super) fn command(&mut self, command: Command) {
        match command {
            Command::Execute {
                cell_ids,
                stale,
                group,
                requester,
                reply,
            } => {
                self.waiting.push_back(Waiting {
                    cell_ids,
                    stale,
                    group,
                    requester,
                    reply,
                    deadline: Instant::now() + CATCH_UP,
                });
                self.admit_waiting();
            }
            Command::Interrupt(reply) => {
                self.drop_waiting();
                self.interrupt();
                let _ = reply.send(());
            }
            Command::Restart(reply) => {
                self.drop_waiting();
                self.restart();
                let _ = reply.send(());
            }
            // Handled by the loop, which must await the kernel's exit.
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
            Command::Input {
                user_id,
                value,
                reply,
            } => {
                let _ = reply.send(self.answer_input(&user_id, value));
            }
            Command::Kernel(reply) => {
                let _ = reply.send(self.kernel.ready().cloned());
            }
        }
    }

    /// Queues the waiting executes, in order, whose requester's edits this replica has (or
    /// that waited long enough); stops at the first that must wait on.
    pub(super) fn admit_waiting(&mut self) {
        let now = Instant::now();
        while let Some(first) = self.waiting.front() {
            let ready = match &first.requester.state_vector {
                None => true,
                Some(sv) => tandem_crdt::doc_includes(self.notebook.doc(), sv),
            };
            if !ready && now < first.deadline {
                return;
            }
            let Some(waiting) = self.waiting.pop_front() else {
                return;
            };
            if !ready {
                tracing::warn!(
                    wait = ?CATCH_UP,
                    "the requester's edits did not arrive in time; running the code as it is here"
                );
            }
            let by = waiting.requester.user;
            let cell_ids = if waiting.stale {
                self.stale_order()
            } else {
                waiting.cell_ids
            };
            let _ = waiting
                .reply
                .send(self.enqueue(cell_ids, waiting.group, by));
        }
    }

    /// An interrupt or restart clears the queue, and with it the executes asked for before it
    /// that were still waiting to be queued.
    fn drop_waiting(&mut self) {
        for waiting in std::mem::take(&mut self.waiting) {
            let _ = waiting.reply.send(Ok(Vec::new()));
        }
    }

    fn enqueue(
        &mut self,
        cell_ids: Vec<String>,
        group: Option<u64>,
        by: Option<(String, String)>,
    ) -> Result<Vec<String>, SessionError> {
        for id in &cell_ids {
            match self.notebook.code_source(id) {
                Ok(_) => {}
                Err(CodeLookup::NotFound) => return Err(SessionError::UnknownCell(id.clone())),
                Err(CodeLookup::NotCode) => return Err(SessionError::NotACodeCell(id.clone())),
            }
        }
        // Marked queued now, shown with the run's start and end when they follow soon.
        self.link.hold(super::execution::START_HOLD);
        for id in &cell_ids {
            let entry = Entry {
                cell_id: id.clone(),
                group,
                by: by.clone(),
            };
            if self.queue.push(entry) {
                self.set_cell_state(id, ExecutionState::Queued);
            }
        }
        tracing::debug!(cells = cell_ids.len(), ?group, "queued");
        self.sync_queue();
        Ok(cell_ids)
    }

    pub(super) fn clear_queue(&mut self) {
        for entry in self.queue.drain() {
            self.set_cell_state(&entry.cell_id, ExecutionState::Idle);
        }
        self.sync_queue();
    }

    pub(super) fn sync_queue(&mut self) {
        self.state.queue = self.queue.cell_ids();
        self.write_state();
    }
}

/// The cells waiting to run, in order; each cell waits at most once, and the cells of one
/// run-all share a group.
#[derive(Default)]
pub(super) struct RunQueue(VecDeque<Entry>);

impl RunQueue {
    /// Adds `entry` at the end unless its cell already waits; whether it was added.
    pub(super) fn push(&mut self, entry: Entry) -> bool {
        if self.0.iter().any(|queued| queued.cell_id == entry.cell_id) {
            return false;
        }
        self.0.push_back(entry);
        true
    }

    /// The next cell to run.
    pub(super) fn pop(&mut self) -> Option<Entry> {
        self.0.pop_front()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes every waiting cell out.
    pub(super) fn drain(&mut self) -> Vec<Entry> {
        self.0.drain(..).collect()
    }

    /// Takes out the cells of `group` (its run stopped at an error), keeping the rest in
    /// order.
    pub(super) fn drop_group(&mut self, group: u64) -> Vec<Entry> {
        let (dropped, kept) = std::mem::take(&mut self.0)
            .into_iter()
            .partition::<Vec<_>, _>(|entry| entry.group == Some(group));
        self.0 = kept.into();
        dropped
    }

    /// The waiting cells' ids, in order (`state.kernel.queue`).
    pub(super) fn cell_ids(&self) -> Vec<String> {
        self.0.iter().map(|entry| entry.cell_id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cell: &str, group: Option<u64>) -> Entry {
        Entry {
            cell_id: cell.into(),
            group,
            by: None,
        }
    }

    #[test]
    fn cells_wait_once_in_order_and_a_failed_group_leaves_together() {
        let mut queue = RunQueue::default();
        assert!(queue.push(entry("a", Some(1))));
        assert!(queue.push(entry("x", None)));
        assert!(queue.push(entry("b", Some(1))));
        assert!(!queue.push(entry("a", None)), "a cell waits once");
        assert_eq!(queue.cell_ids(), ["a", "x", "b"]);
        let dropped: Vec<String> = queue.drop_group(1).into_iter().map(|e| e.cell_id).collect();
        assert_eq!(dropped, ["a", "b"]);
        assert_eq!(queue.cell_ids(), ["x"]);
        assert_eq!(queue.pop().map(|e| e.cell_id).as_deref(), Some("x"));
        assert!(queue.is_empty());
        queue.push(entry("c", None));
        assert_eq!(queue.drain().len(), 1);
        assert!(queue.is_empty());
    }
}
