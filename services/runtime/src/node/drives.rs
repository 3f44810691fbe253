//! Drive links: which user's drive folder each notebook's next kernel sees as `drive/`.

use super::Node;
use crate::kernel::DriveLink;

impl Node {
    /// Points the notebook's next kernel at its holder's drive (a running kernel keeps the
    /// drive it has: its holder has not changed).
    pub(super) async fn point_drive(&self, notebook_id: &str) {
        let Some(drive) = self.config.drive.clone() else {
            return;
        };
        let holder = self
            .notebooks
            .lock()
            .await
            .get(notebook_id)
            .and_then(|entry| entry.holder.as_ref().map(|holder| holder.id.clone()));
        let Some(holder) = holder else {
            return;
        };
        let owner = self.kernel_owner;
        let folder = tokio::task::spawn_blocking(move || drive.user_folder(&holder, owner)).await;
        match folder {
            Ok(Ok(folder)) => self.drive_link(notebook_id).await.set(folder),
            Ok(Err(error)) => {
                tracing::warn!(doc_id = %notebook_id, %error, "no drive for this kernel")
            }
            Err(error) => tracing::warn!(doc_id = %notebook_id, %error, "no drive for this kernel"),
        }
    }

    /// The notebook's drive link, shared by all its kernels' options.
    pub(super) async fn drive_link(&self, notebook_id: &str) -> DriveLink {
        self.notebooks
            .lock()
            .await
            .entry(notebook_id.to_owned())
            .or_default()
            .drive
            .clone()
    }
}
