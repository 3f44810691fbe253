//! `state.kernel.resources`: a sampler per kernel measures its memory and disk every
//! [`RESOURCES_INTERVAL`] off the async threads, and the task writes what changed by a MiB
//! or more.

use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use super::Actor;
use crate::kernel::{Kernel, Usage};
use crate::session::RESOURCES_INTERVAL;

/// The unit the figures are rounded to: finer changes are not worth a document write.
const STEP: u64 = 1 << 20;

/// Starts sampling `kernel` until it is gone (dropped or dead) or the task stops listening.
fn sample(kernel: &Arc<Kernel>, samples: mpsc::UnboundedSender<(u32, Usage)>) {
    let kernel: Weak<Kernel> = Arc::downgrade(kernel);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(RESOURCES_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(kernel) = kernel.upgrade() else {
                return;
            };
            if kernel.exited().is_some() {
                return;
            }
            let pid = kernel.pid();
            let Ok(usage) = tokio::task::spawn_blocking(move || kernel.usage()).await else {
                return;
            };
            if samples.send((pid, usage)).is_err() {
                return;
            }
        }
    });
}

fn rounded(usage: Usage) -> Usage {
    let round = |bytes: u64| bytes / STEP * STEP;
    Usage {
        memory_bytes: round(usage.memory_bytes),
        memory_limit_bytes: round(usage.memory_limit_bytes),
        disk_bytes: round(usage.disk_bytes),
        disk_limit_bytes: round(usage.disk_limit_bytes),
    }
}

impl Actor {
    /// Starts sampling the kernel that just became ready.
    pub(super) fn sample_kernel(&self) {
        if let Some(kernel) = self.kernel.ready() {
            sample(kernel, self.usage_sender.clone());
        }
    }

    /// A sample arrived: written when it is the current kernel's and changed.
    pub(super) fn usage(&mut self, pid: u32, usage: Usage) {
        let current = self
            .kernel
            .ready()
            .is_some_and(|kernel| kernel.pid() == pid);
        if !current {
            return;
        }
        self.state.resources = Some(rounded(usage));
        self.write_state();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_down_to_mebibytes() {
        let usage = Usage {
            memory_bytes: 3 * STEP + 5,
            memory_limit_bytes: 8 * STEP,
            disk_bytes: STEP - 1,
            disk_limit_bytes: 0,
        };
        assert_eq!(
            rounded(usage),
            Usage {
                memory_bytes: 3 * STEP,
                memory_limit_bytes: 8 * STEP,
                disk_bytes: 0,
                disk_limit_bytes: 0,
            }
        );
    }
}
