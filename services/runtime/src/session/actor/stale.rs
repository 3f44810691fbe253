//! The actor's side of "no hidden state" (the rules are in `session/deps.rs`): cells run with
//! their names analysed, warnings shown in the cell, and the stale marks (`tandem_stale` on
//! each stale cell, `state.kernel.stale`) kept current as cells run, kernels go and sources
//! change.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::Actor;
use crate::kernel::{Execution, Kernel, KernelError, Names, Output, StreamName};
use crate::session::deps::CodeCell;

/// How long after someone else's edit the stale marks are brought up to date: edits come in
/// bursts while people type, and one recomputation per burst is enough.
pub(super) const STALE_DEBOUNCE: Duration = Duration::from_millis(200);

impl Actor {
    /// The notebook's code cells now, with their places among all cells.
    fn code_cells(&self) -> Vec<CodeCell> {
        self.notebook
            .code_sources()
            .into_iter()
            .map(|code| CodeCell {
                id: code.id,
                source: code.source,
                position: code.place,
            })
            .collect()
    }

    /// At session start: cells with an execution count ran in a kernel that is gone, and
    /// marks an earlier session left are this session's to keep or clear.
    pub(super) fn stale_init(&mut self) {
        let cells = self.notebook.cells();
        self.deps.ran_before(
            cells
                .iter()
                .filter(|cell| cell.execution_count.is_some())
                .map(|cell| cell.id.clone()),
        );
        self.marked = cells
            .iter()
            .filter(|cell| self.notebook.is_stale(&cell.id))
            .map(|cell| cell.id.clone())
            .collect();
        self.refresh_stale();
    }

    /// Runs a cell with its names (and the other cells' not yet analysed) reported first.
    pub(super) fn submit(
        &mut self,
        kernel: &Kernel,
        id: &str,
        code: &str,
    ) -> Result<Execution, KernelError> {
        let cells = self.code_cells();
        let peers = self.deps.start(id, code, &cells);
        kernel.execute_analyzed(code, peers)
    }

    /// The running cell's names arrived: record its run, warn in it, update the marks.
    pub(super) fn names(&mut self, cell: Option<Names>, peers: Vec<Option<Names>>) {
        let cells = self.code_cells();
        let warnings = self.deps.names(cell, peers, &cells);
        if let Some(running) = &mut self.running {
            for text in warnings {
                let warning = Output::Stream {
                    name: StreamName::Stderr,
                    text,
                };
                running
                    .output
                    .push(&self.notebook, &mut self.displays, warning);
            }
        }
        self.refresh_stale();
    }

    /// The kernel is gone: what ran in it is stale.
    pub(super) fn kernel_gone(&mut self) {
        self.deps.kernel_reset();
        self.refresh_stale();
    }

    /// What "run stale" queues, in order.
    pub(super) fn stale_order(&self) -> Vec<String> {
        self.deps.run_order(&self.code_cells())
    }

    /// Someone else edited the document: recompute once the burst is over.
    pub(super) fn doc_changed(&mut self) {
        while self.updates.try_recv().is_ok() {}
        if !self.deps.is_empty() && self.stale_check_at.is_none() {
            self.stale_check_at = Some(Instant::now() + STALE_DEBOUNCE);
        }
    }

    /// Writes the stale marks that changed, and `state.kernel.stale`.
    pub(super) fn refresh_stale(&mut self) {
        let stale = self.deps.stale(&self.code_cells());
        let now: HashSet<String> = stale.iter().cloned().collect();
        for id in now.difference(&self.marked) {
            if let Err(error) = self.notebook.set_stale(id, true) {
                tracing::debug!(cell = %id, %error, "stale mark not written");
            }
        }
        for id in self.marked.difference(&now) {
            // A cell deleted or turned into markdown has no mark to clear.
            let _ = self.notebook.set_stale(id, false);
        }
        self.marked = now;
        self.state.stale = stale;
        self.write_state();
    }
}
