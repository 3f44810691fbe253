//! What the node keeps of each notebook, in one place: its session, who holds its kernel
//! (and the link its sessions read that from), whether it runs on the GPU, and which drive
//! its next kernel sees. One map under one lock, so these never drift apart.

use std::collections::HashMap;

use crate::kernel::DriveLink;
use crate::session::{Holder, HolderLink, Session};

/// One notebook on this node.
#[derive(Default)]
pub(super) struct NotebookEntry {
    /// Its session; an ended one stays until replaced (whether it was lost is read from it).
    pub session: Option<Session>,
    /// Who started its current kernel ([`super::holders`]); dropped when looked at after
    /// that kernel stopped.
    pub holder: Option<Holder>,
    /// The link its sessions read their kernel's holder from when a kernel starts.
    pub holder_link: HolderLink,
    /// Switched to the GPU runtime.
    pub gpu: bool,
    /// The drive its next kernel sees (its holder's), shared by all its kernels' options.
    pub drive: DriveLink,
}

impl NotebookEntry {
    /// Its session, unless it ended.
    pub fn live_session(&self) -> Option<&Session> {
        self.session.as_ref().filter(|session| !session.is_closed())
    }

    /// Whether a kernel process runs for it now.
    pub fn has_live_kernel(&self) -> bool {
        self.live_session().is_some_and(Session::has_kernel)
    }

    /// Records `holder` as holding its kernel, for the node and for its sessions.
    pub fn set_holder(&mut self, holder: Holder) {
        self.holder_link.set(holder.clone());
        self.holder = Some(holder);
    }
}

/// Notebook id → what the node keeps of it.
pub(super) type Notebooks = HashMap<String, NotebookEntry>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_reaches_the_link_sessions_read() {
        let mut notebooks = Notebooks::new();
        let entry = notebooks.entry("nb".into()).or_default();
        let link = entry.holder_link.clone();
        let bob = Holder {
            id: "bob".into(),
            name: "Bob".into(),
        };
        entry.set_holder(bob.clone());
        assert_eq!(link.get(), Some(bob.clone()));
        assert_eq!(notebooks["nb"].holder, Some(bob));
        assert!(notebooks["nb"].live_session().is_none());
        assert!(!notebooks["nb"].has_live_kernel());
    }
}
