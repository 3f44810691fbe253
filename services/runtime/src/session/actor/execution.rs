//! Running cells: starting the next queued cell on the kernel, writing its events into the
//! document as they arrive, and finishing it.

use std::path::PathBuf;
use std::sync::Arc;

use tandem_crdt::ExecutionState;

use super::{Actor, Running};
use crate::kernel::{ExecStatus, KernelError, KernelEvent, Output};
use crate::session::doc::{InputPrompt, KernelStatus};
use crate::session::outputs::CellOutput;
use crate::session::{FULL_OUTPUT_DIR, Holder, SessionError};

/// The cell metadata key of a run's timing, as JupyterLab's "record timing" writes it.
pub(crate) const EXECUTION_METADATA: &str = "execution";

/// How long the writes of a cell being queued and started (queued and running states, cleared
/// outputs) wait for its end, so a quick cell reaches collaborators as one change, stored once,
/// rather than two or three in a row, each waiting for the store before the next.
pub(super) const START_HOLD: std::time::Duration = std::time::Duration::from_millis(5);

/// The longest `input()` prompt shown (the rest is cut).
const MAX_PROMPT_CHARS: usize = 1000;

/// Now, in ISO 8601 UTC with microseconds, as Jupyter's message headers carry dates.
fn now_iso() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

/// `metadata.execution`: started at `start`; ended at `end` once the cell is done. The keys
/// are Jupyter's message types, as JupyterLab records them (nbformat's schema lists them).
fn timing(start: &str, end: Option<&str>) -> serde_json::Value {
    let mut value = serde_json::json!({
        "iopub.status.busy": start,
        "iopub.execute_input": start,
        "shell.execute_reply.started": start,
    });
    if let (Some(end), Some(map)) = (end, value.as_object_mut()) {
        map.insert("shell.execute_reply".into(), end.into());
        map.insert("iopub.status.idle".into(), end.into());
    }
    value
}

impl Actor {
    /// Starts the next queued cell, or the kernel it needs.
    pub(super) fn pump(&mut self) {
        if self.running.is_some() {
            return;
        }
        // What the last cell's end wrote goes out now (with the next cell's start, if any).
        self.link.release();
        if self.queue.is_empty() {
            return;
        }
        let Some(kernel) = self.kernel.ready().cloned() else {
            if self.kernel.is_empty() {
                self.begin_start();
            }
            return;
        };
        while let Some(entry) = self.queue.pop() {
            let id = entry.cell_id.clone();
            // The code as it is now: edits made while the cell was queued count.
            let Ok(code) = self.notebook.code_source(&id) else {
                tracing::debug!(cell = %id, "queued cell was deleted or changed type");
                continue;
            };
            let _ = self.notebook.clear_outputs(&id);
            self.displays.forget_cell(&id);
            let _ = self.notebook.set_execution_count(&id, None);
            if let Some((user_id, name)) = &entry.by {
                let _ = self.notebook.set_execution_by(&id, user_id, name);
            }
            // A cell that ends within START_HOLD reaches collaborators as one change, start
            // and result together, stored once; a longer one shows as running after it.
            self.link.hold(START_HOLD);
            let started_at = now_iso();
            let _ =
                self.notebook
                    .set_cell_metadata(&id, EXECUTION_METADATA, timing(&started_at, None));
            self.set_cell_state(&id, ExecutionState::Running);
            self.state.status = KernelStatus::Busy;
            self.state.running = Some(id.clone());
            self.sync_queue();
            match self.submit(&kernel, &id, &code) {
                Ok(execution) => {
                    self.runs += 1;
                    let output =
                        CellOutput::new(&id, self.config.output_cap_bytes, self.spill_path(&id));
                    self.running = Some(Running {
                        entry,
                        execution,
                        output,
                        interrupt_deadline: None,
                        started_at,
                        input: None,
                    });
                }
                Err(KernelError::Dead(death)) => {
                    self.fail_cell(&id, death.to_error_output());
                    self.died(&death);
                }
                Err(error) => {
                    let output = Output::Error {
                        ename: "KernelError".into(),
                        evalue: error.to_string(),
                        traceback: vec![error.to_string()],
                    };
                    self.fail_cell(&id, output);
                    continue;
                }
            }
            return;
        }
        self.state.status = KernelStatus::Idle;
        self.state.running = None;
        self.write_state();
    }

    pub(super) fn event(&mut self, event: KernelEvent) {
        let Some(running) = &mut self.running else {
            return;
        };
        match event {
            KernelEvent::Output(output) => {
                running
                    .output
                    .push(&self.notebook, &mut self.displays, output);
            }
            KernelEvent::ClearOutput { wait } => {
                running
                    .output
                    .clear(&self.notebook, &mut self.displays, wait);
            }
            KernelEvent::UpdateDisplay {
                display_id,
                data,
                metadata,
            } => {
                // Buffered clears and text first, so the indices the update uses are current.
                running.output.flush(&self.notebook, &mut self.displays);
                self.displays
                    .update(&self.notebook, &display_id, &data, &metadata);
            }
            KernelEvent::Names { cell, peers } => self.names(cell, peers),
            KernelEvent::SecretRequest { id, name } => {
                if let Some(kernel) = self.kernel.ready() {
                    crate::secrets::answer(
                        Arc::clone(kernel),
                        self.config.secrets.clone(),
                        self.config.notebook_id.clone(),
                        running
                            .entry
                            .by
                            .as_ref()
                            .map(|(user_id, _)| user_id.clone()),
                        id,
                        name,
                    );
                }
            }
            KernelEvent::InputRequest {
                id,
                prompt,
                password,
            } => {
                // Stream text first, so what the cell printed before asking shows above.
                running.output.flush(&self.notebook, &mut self.displays);
                running.input = Some(id);
                self.state.input = Some(InputPrompt {
                    cell: running.entry.cell_id.clone(),
                    prompt: prompt.chars().take(MAX_PROMPT_CHARS).collect(),
                    password,
                    by: running.entry.by.as_ref().map(|(id, name)| Holder {
                        id: id.clone(),
                        name: name.clone(),
                    }),
                });
                self.write_state();
            }
            KernelEvent::Variables(variables) => {
                self.state.variables = variables;
                self.write_state();
            }
            KernelEvent::Done {
                status,
                execution_count,
            } => self.done(status, execution_count),
        }
    }

    pub(super) fn done(&mut self, status: ExecStatus, execution_count: Option<u32>) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let id = running.entry.cell_id.clone();
        running.output.finish(&self.notebook, &mut self.displays);
        let _ = self.notebook.set_cell_metadata(
            &id,
            EXECUTION_METADATA,
            timing(&running.started_at, Some(&now_iso())),
        );
        let _ = self
            .notebook
            .set_execution_count(&id, execution_count.map(i64::from));
        self.set_cell_state(&id, ExecutionState::Idle);
        if execution_count.is_some() {
            self.state.execution_count = execution_count;
        }
        self.state.running = None;
        tracing::debug!(cell = %id, ?status, ?execution_count, "cell done");
        self.refresh_stale();
        if status == ExecStatus::Error
            && let Some(group) = running.entry.group
        {
            for entry in self.queue.drop_group(group) {
                self.set_cell_state(&entry.cell_id, ExecutionState::Idle);
            }
        }
        let death = self.kernel.ready().and_then(|kernel| kernel.exited());
        match death {
            Some(death) => self.died(&death),
            None => {
                self.state.status = KernelStatus::Idle;
                self.sync_queue();
            }
        }
    }

    /// The running cell's `input()` gets `value`, if `user_id` ran it.
    pub(super) fn answer_input(
        &mut self,
        user_id: &str,
        value: String,
    ) -> Result<(), SessionError> {
        let Some(running) = &mut self.running else {
            return Err(SessionError::NoInput);
        };
        let Some(id) = running.input else {
            return Err(SessionError::NoInput);
        };
        if let Some((by, name)) = &running.entry.by
            && by != user_id
        {
            return Err(SessionError::NotYourInput(name.clone()));
        }
        let Some(kernel) = self.kernel.ready() else {
            return Err(SessionError::NoInput);
        };
        kernel.answer_input(id, Some(value));
        running.input = None;
        self.write_state();
        Ok(())
    }

    /// Shows `output` as the cell's only output and leaves it idle.
    pub(super) fn fail_cell(&mut self, id: &str, output: Output) {
        let _ = self.notebook.clear_outputs(id);
        self.displays.forget_cell(id);
        if let Ok(json) = serde_json::to_value(&output) {
            let _ = self.notebook.append_output(id, &json);
        }
        let _ = self.notebook.set_execution_count(id, None);
        self.set_cell_state(id, ExecutionState::Idle);
    }

    fn spill_path(&self, cell_id: &str) -> PathBuf {
        let dir = self
            .config
            .full_output_dir
            .clone()
            .unwrap_or_else(|| self.config.kernel.workdir.join(FULL_OUTPUT_DIR));
        dir.join(format!("{cell_id}-{}.txt", self.runs))
    }
}
