//! Access changes that open connections must act on within a second: a notebook's sharing
//! changed, its owner changed, or a session ended. Every WebSocket subscribes and checks its
//! credential and role again when an event concerns it.

use tokio::sync::{broadcast, mpsc};

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

/// The in-process bus of [`AccessEvent`]s; with several collab nodes, also relayed to and from
/// the others (see [`crate::cluster`]).
#[derive(Debug, Clone)]
pub struct AccessEvents {
    sender: broadcast::Sender<AccessEvent>,
    relay: Option<mpsc::UnboundedSender<AccessEvent>>,
}

impl Default for AccessEvents {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
            relay: None,
        }
    }
}

impl AccessEvents {
    /// A bus whose events are also handed to the returned receiver, to be sent to the other
    /// nodes.
    pub fn relayed() -> (Self, mpsc::UnboundedReceiver<AccessEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let events = Self {
            relay: Some(tx),
            ..Self::default()
        };
        (events, rx)
    }

    /// Announces a change to every subscriber, on this node and the others.
    pub fn publish(&self, event: AccessEvent) {
        if let Some(relay) = &self.relay {
            let _ = relay.send(event.clone());
        }
        self.publish_local(event);
    }

    /// Announces a change to this node's subscribers only (one that came from another node).
    pub fn publish_local(&self, event: AccessEvent) {
        // No subscribers means no open connections to re-check.
        let _ = self.sender.send(event);
    }

    /// A new subscription, seeing events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AccessEvent> {
        self.sender.subscribe()
    }
}
