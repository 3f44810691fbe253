//! The session's connection to its notebook, and finding another when it drops.
//!
//! A session joins its notebook through one of several collab nodes
//! ([`SessionConfig::ws_bases`](super::SessionConfig::ws_bases): every node, or one
//! load balancer in front of them). When that connection ends (the node died, a network
//! fault), the session keeps its kernel, its queue and its [`yrs::Doc`], and [`rejoin`] tries
//! the nodes in turn, with exponential backoff and jitter, until one syncs or
//! [`SessionConfig::reconnect_timeout`](super::SessionConfig::reconnect_timeout) is over.
//!
//! Nothing is lost in either direction: the new connection is opened on the same document, so
//! y-sync's step 1 and step 2 exchange exactly what each side lacks by state vector. Outputs the
//! kernel wrote while the session was away reach the server in the session's step 2; edits made
//! meanwhile by others arrive in the server's.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tracing::Instrument;

use tandem_client::{ConnectOptions, ConnectionError, DocConnection};

/// First wait after a failed attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Longest wait between two attempts: a node that comes back is found within this.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Longest one attempt (upgrade and initial sync) may take; a node that accepts but never
/// answers must not use up the whole reconnect window.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a reconnect attempt ends with: the connection and the index of its base.
pub(super) type Joined = Result<(DocConnection, usize), ConnectionError>;

/// The session's side of its notebook connection: the one it has, or the search for the next.
pub(super) struct Link {
    pub(super) target: Target,
    /// The open connection; `None` while the session looks for one.
    pub(super) conn: Option<DocConnection>,
    /// Which of [`Target::bases`] `conn` goes through (the next search starts after it).
    base: usize,
    /// The search for a new connection, while there is none.
    pub(super) rejoining: Option<BoxFuture<'static, Joined>>,
    /// When the connection was lost, while the search goes on.
    pub(super) lost_at: Option<Instant>,
    /// Whether `conn` holds its writes ([`Link::hold`]).
    holding: bool,
}

impl Link {
    pub(super) fn new(target: Target, conn: DocConnection, base: usize) -> Self {
        Link {
            target,
            conn: Some(conn),
            base,
            rejoining: None,
            lost_at: None,
            holding: false,
        }
    }

    /// Holds the connection's writes until [`Link::release`], for at most `limit`: what a
    /// cell's start writes and what its end writes then reach the notebook together when it
    /// ends within `limit`, as one stored batch instead of two in a row.
    pub(super) fn hold(&mut self, limit: Duration) {
        if let Some(conn) = &self.conn {
            conn.hold_until(Instant::now() + limit);
            self.holding = true;
        }
    }

    /// Writes what [`Link::hold`] held.
    pub(super) fn release(&mut self) {
        if std::mem::take(&mut self.holding)
            && let Some(conn) = &self.conn
        {
            conn.release();
        }
    }

    /// The connection closed: lets it go and starts looking for another until `timeout`.
    pub(super) fn lost(&mut self, doc: &yrs::Doc, timeout: Duration, close: Option<(u16, String)>) {
        // Dropped before the next one opens: each connection observes the document under one
        // key, which dropping removes.
        drop(self.conn.take());
        self.holding = false;
        let base = self.target.bases.get(self.base).map(String::as_str);
        tracing::warn!(ws_base = ?base, ?close, ?timeout, "notebook connection lost; rejoining");
        let now = Instant::now();
        self.lost_at = Some(now);
        let search = rejoin(self.target.clone(), doc.clone(), self.base, now + timeout);
        self.rejoining = Some(Box::pin(search));
    }

    /// A search ended with `conn` through base `base`.
    pub(super) fn rejoined(&mut self, conn: DocConnection, base: usize) {
        let away = self.lost_at.take().map(|at| at.elapsed());
        tracing::info!(ws_base = ?self.target.bases.get(base), ?away, "notebook connection back");
        self.rejoining = None;
        self.conn = Some(conn);
        self.base = base;
    }

    /// Closes the connection, if any, once what was written has been sent.
    pub(super) async fn close(&mut self) {
        self.rejoining = None;
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
    }
}

/// Where and as whom a session joins its notebook.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// WebSocket roots (`ws://host:port/ws`), tried in order.
    pub bases: Vec<String>,
    pub notebook_id: String,
    pub token: String,
}

/// Joins the notebook on `doc` through the first base that answers (from `first` on, wrapping
/// around) and waits for the initial sync. Returns the connection and the index of the base
/// that answered, or the last error when none did.
pub(super) async fn join_any(
    target: &Target,
    doc: &yrs::Doc,
    first: usize,
) -> Result<(DocConnection, usize), ConnectionError> {
    let count = target.bases.len().max(1);
    let mut last = None;
    for step in 0..count {
        let index = (first + step) % count;
        let Some(base) = target.bases.get(index) else {
            break;
        };
        match join(base, target, doc).await {
            Ok(conn) => return Ok((conn, index)),
            Err(error) => {
                tracing::debug!(ws_base = %base, %error, "could not join through this collab node");
                last = Some(error);
            }
        }
    }
    Err(last.unwrap_or(ConnectionError::Closed(None)))
}

/// Tries [`join_any`] again and again, starting after the base that failed (`failed`), with
/// backoff and jitter, until one succeeds or `deadline` passes.
pub(super) async fn rejoin(
    target: Target,
    doc: yrs::Doc,
    failed: usize,
    deadline: Instant,
) -> Result<(DocConnection, usize), ConnectionError> {
    let mut backoff = FIRST_BACKOFF;
    let mut first = failed + 1;
    loop {
        let attempt = tokio::time::timeout_at(deadline, join_any(&target, &doc, first));
        match attempt.await {
            Ok(Ok(joined)) => return Ok(joined),
            Ok(Err(error)) if Instant::now() + backoff >= deadline => return Err(error),
            Ok(Err(error)) => {
                tracing::info!(%error, retry_in = ?backoff, "notebook connection still down")
            }
            Err(_) => return Err(ConnectionError::Closed(None)),
        }
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        first += 1;
    }
}

async fn join(
    base: &str,
    target: &Target,
    doc: &yrs::Doc,
) -> Result<DocConnection, ConnectionError> {
    let options = ConnectOptions {
        token: Some(target.token.clone()),
        doc: Some(doc.clone()),
        ..ConnectOptions::default()
    };
    let span = tracing::debug_span!("join", ws_base = %base);
    let attempt = async {
        let conn = DocConnection::connect_with(base, &target.notebook_id, options).await?;
        conn.synced().await?;
        Ok(conn)
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt.instrument(span)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectionError::Closed(None)),
    }
}

/// `backoff` scaled into [½, 1] at random, so sessions that lost one node do not all knock on
/// the next at the same instant.
fn jittered(backoff: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
    backoff.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_whole() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(2));
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(2),
                "{d:?}"
            );
        }
    }

    #[tokio::test]
    async fn rejoin_gives_up_at_the_deadline() {
        let target = Target {
            // Nothing listens on port 9 (discard) on a test machine.
            bases: vec!["ws://127.0.0.1:9/ws".into()],
            notebook_id: "nb".into(),
            token: "t".into(),
        };
        let deadline = Instant::now() + Duration::from_millis(700);
        let result = rejoin(target, yrs::Doc::new(), 0, deadline).await;
        assert!(result.is_err());
        assert!(Instant::now() < deadline + Duration::from_secs(2));
    }
}
