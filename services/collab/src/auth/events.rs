//! Access changes that open connections must act on within a second: a notebook's sharing
//! changed, its owner changed, or a session ended. Every WebSocket subscribes and checks its
//! credential and role again when an event concerns it.

use tokio::sync::broadcast;

/// Events a slow subscriber may fall behind by before it is told it lagged (it then checks
/// again anyway, so nothing is missed).
const CAPACITY: usize = 1024;

/// Something that may change what a connection is allowed to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessEvent {
    /// A notebook's sharing or owner changed, or it was deleted.
    Notebook(String),
    /// A session ended (by hash).
    SessionEnded(String),
    /// Every session of a user ended (by user id).
    UserSignedOut(String),
}

/// The in-process bus of [`AccessEvent`]s.
#[derive(Debug, Clone)]
pub struct AccessEvents {
    sender: broadcast::Sender<AccessEvent>,
}

impl Default for AccessEvents {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl AccessEvents {
    /// Announces a change to every subscriber.
    pub fn publish(&self, event: AccessEvent) {
        // No subscribers means no open connections to re-check.
        let _ = self.sender.send(event);
    }

    /// A new subscription, seeing events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AccessEvent> {
        self.sender.subscribe()
    }
}
