//! Spare kernels: a CPU kernel started ahead of need, so a notebook's first cell runs without
//! waiting for Python and IPython to start.

use std::path::PathBuf;

use super::Node;
use crate::kernel::{Kernel, Scratch};

/// A kernel being started ahead of need: once done, the kernel and its working directory.
pub(super) type Spare = tokio::task::JoinHandle<Option<(Kernel, PathBuf)>>;

impl Node {
    /// Starts a spare CPU kernel in a scratch folder of its own, with no drive until it is
    /// handed to a notebook.
    pub(super) fn spawn_spare(&self) -> Spare {
        let mut options = self.kernel.clone();
        options.scratch = options.scratch.map(|_| Scratch::default());
        options.env.push((
            tandem_protocol::kernel::RUNTIME_ENV.to_owned(),
            "cpu".to_owned(),
        ));
        tokio::spawn(async move {
            match Kernel::start(options).await {
                Ok(kernel) => {
                    let workdir = kernel.workdir().to_path_buf();
                    Some((kernel, workdir))
                }
                Err(error) => {
                    tracing::debug!(%error, "no spare kernel");
                    None
                }
            }
        })
    }

    /// The spare kernel if it is ready (a new one is started in its place); `None` while it
    /// is still starting or when spares are off.
    pub(super) async fn take_spare(&self) -> Option<(Kernel, PathBuf)> {
        if self.config.kernels.spare_kernels == 0 {
            return None;
        }
        let mut slot = self.spare.lock().await;
        match slot.take() {
            Some(handle) if handle.is_finished() => {
                *slot = Some(self.spawn_spare());
                // A spare that died while waiting is no use.
                handle
                    .await
                    .ok()
                    .flatten()
                    .filter(|(kernel, _)| kernel.exited().is_none())
            }
            Some(starting) => {
                *slot = Some(starting);
                None
            }
            None => {
                *slot = Some(self.spawn_spare());
                None
            }
        }
    }
}
