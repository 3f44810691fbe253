//! The queue: commands from the session handle, executes waiting for the replica to catch up
//! with their requester, and the queued cells mirrored into `state.kernel.queue`.

use tokio::time::Instant;

use tandem_crdt::{CodeLookup, ExecutionState};

use super::{Actor, Entry, Slot, Waiting};
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
                let kernel = match &self.slot {
                    Slot::Ready(kernel) => Some(std::sync::Arc::clone(kernel)),
                    _ => None,
                };
                let _ = reply.send(kernel);
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
        for id in &cell_ids {
            if self.queue.iter().any(|entry| &entry.cell_id == id) {
                continue;
            }
            self.queue.push_back(Entry {
                cell_id: id.clone(),
                group,
                by: by.clone(),
            });
            self.set_cell_state(id, ExecutionState::Queued);
        }
        tracing::debug!(cells = cell_ids.len(), ?group, "queued");
        self.sync_queue();
        Ok(cell_ids)
    }

    pub(super) fn clear_queue(&mut self) {
        for entry in std::mem::take(&mut self.queue) {
            self.set_cell_state(&entry.cell_id, ExecutionState::Idle);
        }
        self.sync_queue();
    }

    pub(super) fn sync_queue(&mut self) {
        self.state.queue = self
            .queue
            .iter()
            .map(|entry| entry.cell_id.clone())
            .collect();
        self.write_state();
    }
}
