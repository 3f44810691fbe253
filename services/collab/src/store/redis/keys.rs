//! Key names (see the table in [`super`]).

use std::sync::Arc;

/// Where each kind of record lives (see the module docs). The Lua scripts build the same names
/// from the prefix, so a change here must be made there too.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: Arc<str>,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(super) fn user(&self, id: &str) -> String {
        format!("{}:user:{id}", self.prefix)
    }

    pub(super) fn user_email(&self, email: &str) -> String {
        format!("{}:user-email:{email}", self.prefix)
    }

    pub(super) fn user_notebooks(&self, id: &str) -> String {
        format!("{}:user:{id}:notebooks", self.prefix)
    }

    pub(super) fn user_opened(&self, id: &str) -> String {
        format!("{}:user:{id}:opened", self.prefix)
    }

    pub(super) fn user_sessions(&self, id: &str) -> String {
        format!("{}:user:{id}:sessions", self.prefix)
    }

    pub(super) fn token(&self, hash: &str) -> String {
        format!("{}:token:{hash}", self.prefix)
    }

    pub(super) fn session(&self, hash: &str) -> String {
        format!("{}:session:{hash}", self.prefix)
    }

    pub(super) fn login(&self, hash: &str) -> String {
        format!("{}:login:{hash}", self.prefix)
    }

    pub(super) fn local_sign_in(&self, hash: &str) -> String {
        format!("{}:local-sign-in:{hash}", self.prefix)
    }

    pub(super) fn notebook(&self, id: &str) -> String {
        format!("{}:notebook:{id}", self.prefix)
    }

    pub(super) fn grants(&self, id: &str) -> String {
        format!("{}:notebook:{id}:grants", self.prefix)
    }

    pub(super) fn shared(&self, email: &str) -> String {
        format!("{}:email:{email}:shared", self.prefix)
    }

    pub(super) fn threads(&self, notebook: &str) -> String {
        format!("{}:notebook:{notebook}:threads", self.prefix)
    }

    pub(super) fn thread(&self, notebook: &str, thread: &str) -> String {
        format!("{}:thread:{notebook}:{thread}", self.prefix)
    }

    pub(super) fn comments(&self, notebook: &str, thread: &str) -> String {
        format!("{}:thread:{notebook}:{thread}:comments", self.prefix)
    }

    pub(super) fn snapshot(&self, id: &str) -> String {
        format!("{}:doc:{id}:snapshot", self.prefix)
    }

    /// The stream of a notebook's document updates.
    pub fn updates(&self, id: &str) -> String {
        format!("{}:doc:{id}:updates", self.prefix)
    }

    pub(super) fn compacting(&self, id: &str) -> String {
        format!("{}:doc:{id}:compacting", self.prefix)
    }
}

/// The stream entry id of a sequence number.
pub fn entry_id(seq: u64) -> String {
    format!("0-{seq}")
}

/// The sequence number of a stream entry id (`0-{seq}`).
pub fn entry_seq(id: &str) -> Option<u64> {
    id.split_once('-')?.1.parse().ok()
}
