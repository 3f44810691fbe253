//! The idle scenario: many synced connections to one room that then do nothing, to measure what
//! an open connection costs the server in memory.
//!
//! Both ends need a file descriptor per connection: the bench raises its own `RLIMIT_NOFILE`
//! before spawning servers, so spawned servers inherit the higher limit; a server started by
//! hand (`--tandem-url`) needs `ulimit -n` raised in its shell.

use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use tandem_client::{ConnectOptions, DocConnection};

use crate::sys;
use crate::target::Target;

/// Connections opened at once: enough to finish 10,000 in seconds, few enough not to overflow
/// the server's accept backlog.
const CONCURRENCY: usize = 128;

/// How long the server gets to settle (allocators return memory, timers fire) before memory is
/// read.
const SETTLE: Duration = Duration::from_secs(2);

/// What the idle scenario measured.
#[derive(Debug, Clone, Copy)]
pub struct IdleResult {
    /// Connections held open.
    pub connections: usize,
    /// Server memory before connecting.
    pub before: sys::Memory,
    /// Server memory with all connections open and synced.
    pub after: sys::Memory,
    /// Seconds it took to open and sync them all.
    pub connect_s: f64,
}

/// Opens `connections` idle connections to the target's room and reads the server's memory.
pub async fn run(target: &Target, connections: usize) -> Result<IdleResult> {
    let before = sys::memory_all(&target.pids)?;
    let started = std::time::Instant::now();
    let conns: Vec<DocConnection> = futures_util::stream::iter(0..connections)
        .map(|_| async {
            let options = ConnectOptions {
                token: target.token.clone(),
                doc: None,
                ..ConnectOptions::default()
            };
            let conn =
                DocConnection::connect_with(&target.ws_bases[0], &target.room, options).await?;
            tokio::time::timeout(Duration::from_secs(60), conn.synced())
                .await
                .context("initial sync timed out")??;
            anyhow::Ok(conn)
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
        .context("opening idle connections (is the open-file limit high enough on both ends?)")?;
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let after = sys::memory_all(&target.pids)?;
    let closed = conns.iter().filter(|c| c.is_closed()).count();
    anyhow::ensure!(
        closed == 0,
        "the server closed {closed} of {connections} idle connections"
    );
    drop(conns);
    Ok(IdleResult {
        connections,
        before,
        after,
        connect_s,
    })
}
