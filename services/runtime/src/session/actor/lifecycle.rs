//! The kernel's lifecycle: starting and restarting it, interrupts and their grace timer, the
//! idle shutdown and maximum lifetime timers, its death, and the session's shutdown.

use tokio::time::Instant;

use tandem_crdt::ExecutionState;

use super::Actor;
use crate::kernel::{Death, Kernel, KernelError, Output};
use crate::session::SHUTDOWN_GRACE;
use crate::session::doc::KernelStatus;

impl Actor {
    pub(super) fn interrupt(&mut self) {
        self.clear_queue();
        let Some(running) = &mut self.running else {
            return;
        };
        if let Some(kernel) = self.kernel.ready() {
            tracing::info!(cell = %running.entry.cell_id, "interrupting");
            if let Err(error) = kernel.interrupt() {
                tracing::warn!(%error, "could not interrupt the kernel");
            }
            running
                .interrupt_deadline
                .get_or_insert(Instant::now() + self.config.interrupt_grace);
        }
    }

    pub(super) fn interrupt_expired(&mut self) {
        let Some(running) = &mut self.running else {
            return;
        };
        running.interrupt_deadline = None;
        if let Some(kernel) = self.kernel.kill_after_interrupt() {
            tracing::warn!(cell = %running.entry.cell_id, "the interrupt did not stop the cell; killing the kernel");
            if let Err(error) = kernel.kill() {
                tracing::warn!(%error, "could not kill the kernel");
            }
        }
    }

    /// The kernel had nothing to run for the idle timeout: stop it; the next execute starts
    /// a fresh one.
    pub(super) fn idle_timeout(&mut self) {
        tracing::info!(idle = ?self.config.idle_timeout, "shutting down the idle kernel");
        // Dropping the kernel kills its process group.
        self.kernel.ended();
        self.kernel_gone();
        self.state.status = KernelStatus::NotStarted;
        self.state.reason = Some(format!(
            "shut down after {} without running a cell",
            humantime::format_duration(self.config.idle_timeout)
        ));
        self.write_state();
    }

    /// The kernel reached its maximum lifetime: stop it, busy or not.
    pub(super) fn lifetime_over(&mut self) {
        let reason = format!(
            "stopped at its maximum lifetime of {}",
            humantime::format_duration(self.config.max_lifetime)
        );
        tracing::info!(%reason, "stopping the kernel");
        if let Some(mut running) = self.running.take() {
            running.output.finish(&self.notebook, &mut self.displays);
            let output = Output::Error {
                ename: "KernelLifetimeExceeded".into(),
                evalue: reason.clone(),
                traceback: vec![format!(
                    "\x1b[31mKernelLifetimeExceeded\x1b[39m: the kernel was {reason}"
                )],
            };
            if let Ok(json) = serde_json::to_value(&output) {
                let _ = self.notebook.append_output(&running.entry.cell_id, &json);
            }
            self.set_cell_state(&running.entry.cell_id, ExecutionState::Idle);
        }
        self.kernel.ended();
        self.kernel_gone();
        self.clear_queue();
        self.state.status = KernelStatus::Dead;
        self.state.running = None;
        self.state.reason = Some(reason);
        self.write_state();
    }

    pub(super) fn restart(&mut self) {
        tracing::info!("restarting the kernel");
        if let Some(mut running) = self.running.take() {
            running.output.finish(&self.notebook, &mut self.displays);
            self.set_cell_state(&running.entry.cell_id, ExecutionState::Idle);
        }
        // Dropping the kernel kills its process group.
        self.kernel.ended();
        self.kernel_gone();
        self.clear_queue();
        self.state.running = None;
        self.begin_start();
    }

    pub(super) async fn shutdown(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.output.finish(&self.notebook, &mut self.displays);
            self.set_cell_state(&running.entry.cell_id, ExecutionState::Idle);
        }
        self.clear_queue();
        if let Some(kernel) = self.kernel.ended() {
            kernel.shutdown(SHUTDOWN_GRACE).await;
        }
        self.state.status = KernelStatus::NotStarted;
        self.state.running = None;
        self.state.reason = None;
        self.write_state();
        self.link.close().await;
    }

    /// No collab node answered within the reconnect timeout: end the kernel, whose outputs
    /// nobody could see. The notebook shows it dead once someone who can reach it marks it
    /// (the node keeps the notebook's entry for that, see [`Session::is_lost`]).
    ///
    /// [`Session::is_lost`]: crate::session::Session::is_lost
    pub(super) async fn unreachable(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.output.finish(&self.notebook, &mut self.displays);
            self.set_cell_state(&running.entry.cell_id, ExecutionState::Idle);
        }
        self.clear_queue();
        if let Some(kernel) = self.kernel.ended() {
            kernel.shutdown(SHUTDOWN_GRACE).await;
        }
        self.kernel_gone();
        self.state.status = KernelStatus::Dead;
        self.state.running = None;
        self.state.reason = Some(format!(
            "the runtime could not reach the notebook for {}; run a cell to start a new kernel",
            humantime::format_duration(self.config.reconnect_timeout)
        ));
        self.write_state();
        self.link.close().await;
    }

    pub(super) fn begin_start(&mut self) {
        let options = self.config.kernel.clone();
        self.kernel.starting(Box::pin(Kernel::start(options)));
        self.state.status = KernelStatus::Starting;
        // Read at each start: a restart by the notebook's owner may hand the kernel over.
        self.state.holder = self.config.holder.get();
        // A fresh kernel counts from 1 again.
        self.state.execution_count = None;
        self.state.reason = None;
        self.write_state();
    }

    pub(super) fn started(&mut self, result: Result<Kernel, KernelError>) {
        match result {
            Ok(kernel) => {
                tracing::info!(pid = kernel.pid(), "kernel ready");
                self.kernel.started(kernel, Instant::now());
                self.state.lifetime_ends_at = Some(epoch_ms_after(self.config.max_lifetime));
                self.state.status = KernelStatus::Idle;
                self.write_state();
                self.sample_kernel();
            }
            Err(error) => {
                tracing::warn!(%error, "the kernel did not start");
                self.kernel.ended();
                // The cell that asked for the kernel says why nothing ran.
                if let Some(first) = self.queue.pop() {
                    let output = Output::Error {
                        ename: "KernelStartError".into(),
                        evalue: error.to_string(),
                        traceback: vec![format!("\x1b[31mKernelStartError\x1b[39m: {error}")],
                    };
                    self.fail_cell(&first.cell_id, output);
                }
                self.clear_queue();
                self.state.status = KernelStatus::Dead;
                self.state.reason = Some(error.to_string());
                self.write_state();
            }
        }
    }

    /// The kernel process ended by itself (or was killed after an interrupt).
    pub(super) fn died(&mut self, death: &Death) {
        let reason = if self.kernel.killed_after_interrupt() {
            format!(
                "the kernel was killed because the cell did not stop within {:?} of the interrupt",
                self.config.interrupt_grace
            )
        } else {
            death.to_string()
        };
        tracing::warn!(%reason, "kernel died");
        self.kernel.ended();
        self.kernel_gone();
        self.clear_queue();
        self.state.status = KernelStatus::Dead;
        self.state.running = None;
        self.state.reason = Some(reason);
        self.write_state();
    }
}

/// Milliseconds since the Unix epoch, `after` from now.
pub(super) fn epoch_ms_after(after: std::time::Duration) -> i64 {
    let at = std::time::SystemTime::now() + after;
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
