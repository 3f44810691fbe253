//! What one connection, one person and one notebook may take of a collab node: open
//! WebSockets per person, messages and bytes per connection, the size of an awareness state
//! and of a notebook. Anyone with an editor link, anonymous ones included, could otherwise
//! grow a notebook, or the memory of every peer, without limit.
//!
//! The runtime's connections (the service credential) are exempt: they write what the
//! runtime produced, which `--output-cap` bounds.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::MonotonicClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// A connection's token bucket, on `std::time::Instant`: the default clock (quanta) costs 40
/// bytes more per bucket, times two per connection, times every watcher of a classroom.
type Bucket =
    RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>;

/// The quotas of the collab service (flags and `TANDEM_*` variables).
#[derive(Debug, Clone, clap::Args)]
pub struct QuotaConfig {
    /// Open WebSockets one person may hold at once (signed in: per user, whatever the
    /// credential; anonymous: per client address). More are refused before the upgrade with
    /// 429 `too_many_connections`. 0: no limit.
    #[arg(long, env = "TANDEM_MAX_CONNECTIONS_PER_USER", default_value_t = 50)]
    pub max_connections_per_user: usize,

    /// WebSocket messages one connection may send per minute (a burst of as many is
    /// allowed); beyond it the connection is closed with 1008. Typing sends a few per
    /// keystroke.
    #[arg(long, env = "TANDEM_WS_MESSAGES_PER_MINUTE", default_value_t = 6000)]
    pub ws_messages_per_minute: u32,

    /// Bytes one connection may send per minute (a burst of as many is allowed); beyond it
    /// the connection is closed with 1008. At least `--max-message-bytes`.
    #[arg(long, env = "TANDEM_WS_BYTES_PER_MINUTE", default_value_t = 128 * 1024 * 1024)]
    pub ws_bytes_per_minute: u32,

    /// Largest awareness (presence) state one client may publish, in bytes: every peer
    /// receives it. A larger one closes the connection with 1009.
    #[arg(long, env = "TANDEM_MAX_AWARENESS_BYTES", default_value_t = 64 * 1024)]
    pub max_awareness_bytes: usize,

    /// Largest a notebook may grow through editors' WebSocket updates, in bytes as stored
    /// (snapshot plus update log). An update past it closes the connection with 1008; updates
    /// that only delete still pass, so a full notebook can be trimmed. 0: no limit.
    #[arg(long, env = "TANDEM_MAX_NOTEBOOK_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_notebook_bytes: u64,
}

/// Counts the open WebSockets of each person.
#[derive(Debug, Default)]
pub struct Connections {
    /// Open connections per key; a key is shared with its connections' [`Counted`]s.
    open: Mutex<HashMap<Arc<str>, usize>>,
}

/// One counted connection; dropping it counts it out.
#[derive(Debug)]
pub struct Counted {
    connections: Arc<Connections>,
    key: Arc<str>,
}

impl Connections {
    /// Counts a new connection of `key` (a user id or a client address), unless it already
    /// holds `limit` (0: no limit). `None` when it is over.
    pub fn open(self: &Arc<Self>, key: String, limit: usize) -> Option<Counted> {
        let mut open = self.lock();
        // One copy of the key however many connections it has open.
        let key = match open.get_key_value(key.as_str()) {
            Some((shared, _)) => shared.clone(),
            None => Arc::from(key),
        };
        let count = open.entry(key.clone()).or_default();
        if limit != 0 && *count >= limit {
            return None;
        }
        *count += 1;
        Some(Counted {
            connections: self.clone(),
            key,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, usize>> {
        // Only counters: a panic elsewhere cannot leave them half-updated.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The message and byte budgets of one connection.
pub struct Rate {
    messages: Bucket,
    bytes: Bucket,
    config: (u32, u32),
}

impl std::fmt::Debug for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rate")
            .field("per_minute", &self.config)
            .finish()
    }
}

impl Rate {
    /// Full budgets, as configured.
    pub fn new(config: &QuotaConfig) -> Self {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            messages: RateLimiter::direct_with_clock(
                per_minute(config.ws_messages_per_minute),
                MonotonicClock,
            ),
            bytes: RateLimiter::direct_with_clock(
                per_minute(config.ws_bytes_per_minute),
                MonotonicClock,
            ),
            config: (config.ws_messages_per_minute, config.ws_bytes_per_minute),
        }
    }

    /// Takes one message of `len` bytes from the budgets; the reason to close when over.
    pub fn take(&self, len: usize) -> Result<(), String> {
        if self.messages.check().is_err() {
            return Err(format!(
                "rate limit: more than {} messages a minute",
                self.config.0
            ));
        }
        let bytes = u32::try_from(len)
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN);
        match self.bytes.check_n(bytes) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(format!(
                "rate limit: more than {} bytes a minute",
                self.config.1
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        quotas: QuotaConfig,
    }

    fn config(args: &[&str]) -> QuotaConfig {
        let mut all = vec!["tandem"];
        all.extend_from_slice(args);
        Flags::parse_from(all).quotas
    }

    #[test]
    fn connections_are_counted_per_key_and_counted_out_on_drop() {
        let connections = Arc::new(Connections::default());
        let a1 = connections.open("alice".into(), 2).unwrap();
        let _a2 = connections.open("alice".into(), 2).unwrap();
        assert!(connections.open("alice".into(), 2).is_none());
        assert!(connections.open("bob".into(), 2).is_some());
        drop(a1);
        assert!(connections.open("alice".into(), 2).is_some());
        assert!(connections.open("alice".into(), 0).is_some(), "0: no limit");
    }

    #[test]
    fn a_connection_over_its_budget_is_told_why() {
        let rate = Rate::new(&config(&[
            "--ws-messages-per-minute",
            "3",
            "--ws-bytes-per-minute",
            "100",
        ]));
        assert!(rate.take(10).is_ok());
        assert!(rate.take(10).is_ok());
        assert!(rate.take(10).is_ok());
        assert!(rate.take(10).unwrap_err().contains("3 messages"));
        let rate = Rate::new(&config(&["--ws-bytes-per-minute", "100"]));
        assert!(rate.take(60).is_ok());
        assert!(rate.take(60).unwrap_err().contains("100 bytes"));
        assert!(rate.take(1000).unwrap_err().contains("100 bytes"));
    }
}
