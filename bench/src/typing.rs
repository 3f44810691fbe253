//! The typing scenario: N clients in one room, each appending small inserts to one shared
//! Y.Text at a fixed rate, every edit carrying its author and send time.
//!
//! Each edit inserts `{client}:{seq}:{sent_us};` at the end of the root text `bench`. Appending
//! at the end never splits another client's insert, so every receiver's text observer sees each
//! edit's token whole and can time its delivery: arrival minus `sent_us`, on the clock all
//! clients share (one process, one `Instant` epoch). Latency therefore includes the receiving
//! client's decode and apply, as a real client's would.
//!
//! With several collab nodes, client `i` connects to node `i mod N`; a delivery whose sender
//! and receiver are on different nodes is also counted as cross-node (it went through Redis).
//!
//! The presence scenario is the same with fewer typists than clients (one teacher, a class
//! watching) and presence kept as browsers keep it: every client announces a name, a typist
//! moves its cursor with each edit, every watcher renews its state every 15 s (y-protocols'
//! `outdatedTimeout / 2`), and every client sends back each awareness change it receives, as
//! y-websocket's browser client does. It also counts the awareness frames the watchers receive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::future::join_all;
use tandem_client::yrs::types::Delta;
use tandem_client::yrs::{Any, Observable, Out, Text, Transact};
use tandem_client::{ConnectOptions, DocConnection};

use crate::sys;
use crate::target::Target;

/// The root Y.Text the clients type into. A root-level text keeps the bench schema-agnostic:
/// any y-websocket server relays it, and Tandem stores it beside the notebook's own types.
const TEXT: &str = "bench";

/// How long connecting and syncing all clients may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// The typing scenario's knobs.
#[derive(Debug, Clone, Copy)]
pub struct TypingConfig {
    /// Clients in the room.
    pub clients: usize,
    /// Edits per second per client.
    pub rate: f64,
    /// Measured time.
    pub duration: Duration,
    /// Typing before measuring starts (connections warm, server caches filled).
    pub warmup: Duration,
    /// How long to wait after typing stops for the last edits to arrive.
    pub drain: Duration,
    /// How many of the clients type (the first ones); the others only watch.
    pub typists: usize,
    /// Keep presence as browsers do (see the module's documentation).
    pub presence: bool,
}

/// How often a client renews its awareness state: y-protocols renews a state not updated for
/// `outdatedTimeout / 2`.
pub const RENEWAL: Duration = Duration::from_secs(15);

/// What one run of the scenario measured.
#[derive(Debug, Clone)]
pub struct TypingResult {
    /// Edits sent during the measured window.
    pub sent: u64,
    /// Deliveries (edit × receiving client) of those edits.
    pub delivered: u64,
    /// Deliveries expected: `sent × (clients − 1)`.
    pub expected: u64,
    /// The measured window.
    pub window: Duration,
    /// Every delivery latency, in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// The latencies of deliveries between clients of different nodes, sorted (empty with
    /// one node).
    pub cross_node_us: Vec<u64>,
    /// Server CPU seconds used from the start of the window to the end of the drain.
    pub server_cpu_s: f64,
    /// Server memory at the end.
    pub memory: sys::Memory,
    /// Awareness frames the watchers received during the window (presence only).
    pub watcher_awareness_frames: u64,
}

/// Shared between the typing tasks, the receivers' observers and the conductor.
struct Clock {
    epoch: Instant,
    /// Edits sent at or after this many µs since `epoch` are measured; `u64::MAX` during warmup.
    measure_from_us: AtomicU64,
    stop: AtomicBool,
    sent: AtomicU64,
    delivered: AtomicU64,
}

impl Clock {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// Runs the scenario against one target.
pub async fn run(target: &Target, config: TypingConfig) -> Result<TypingResult> {
    let clock = Arc::new(Clock {
        epoch: Instant::now(),
        measure_from_us: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
    });
    let nodes = target.ws_bases.len().max(1);
    let connects = (0..config.clients).map(|id| {
        let options = ConnectOptions {
            token: target.token.clone(),
            doc: None,
            echo_awareness: config.presence,
        };
        DocConnection::connect_with(&target.ws_bases[id % nodes], &target.room, options)
    });
    let conns = tokio::time::timeout(CONNECT_TIMEOUT, join_all(connects))
        .await
        .context("connecting the typing clients timed out")?
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .context("connecting a typing client")?;
    for conn in &conns {
        tokio::time::timeout(CONNECT_TIMEOUT, conn.synced())
            .await
            .context("initial sync timed out")??;
    }
    let conns: Vec<Arc<DocConnection>> = conns.into_iter().map(Arc::new).collect();
    if config.presence {
        announce(&conns).await?;
    }

    let mut latencies = Vec::new();
    for (id, conn) in conns.iter().enumerate() {
        let samples = Arc::new(Mutex::new(Samples::default()));
        observe_deliveries(conn, (id, nodes), clock.clone(), samples.clone());
        latencies.push(samples);
    }

    let period = Duration::from_secs_f64(1.0 / config.rate.max(0.001));
    let typing = config.typists.min(config.clients);
    let typists: Vec<_> = conns[..typing]
        .iter()
        .enumerate()
        .map(|(id, conn)| {
            // Spread the clients' ticks over one period so edits do not arrive in lockstep.
            let offset = period.mul_f64(id as f64 / typing as f64);
            let presence = config.presence;
            tokio::spawn(type_loop(
                conn.clone(),
                id,
                clock.clone(),
                (period, offset),
                presence,
            ))
        })
        .collect();
    let watchers = &conns[typing..];
    let renewals: Vec<_> = if config.presence {
        watchers
            .iter()
            .enumerate()
            .map(|(n, conn)| {
                // Spread over one renewal period, as clients that joined at different times.
                let offset = RENEWAL.mul_f64(n as f64 / watchers.len() as f64);
                tokio::spawn(renew_loop(conn.clone(), clock.clone(), offset))
            })
            .collect()
    } else {
        Vec::new()
    };
    let watcher_frames = || -> u64 {
        watchers
            .iter()
            .map(|conn| conn.awareness_frames_received())
            .sum()
    };

    tokio::time::sleep(config.warmup).await;
    clock
        .measure_from_us
        .store(clock.now_us(), Ordering::SeqCst);
    let cpu_before = sys::cpu_seconds_all(&target.pids)?;
    let frames_before = watcher_frames();
    let window_start = Instant::now();
    tokio::time::sleep(config.duration).await;
    clock.stop.store(true, Ordering::SeqCst);
    let window = window_start.elapsed();
    let watcher_awareness_frames = watcher_frames() - frames_before;
    for renewal in renewals {
        renewal.abort();
    }
    for typist in typists {
        typist.await.context("typing task panicked")?;
    }

    let sent = clock.sent.load(Ordering::SeqCst);
    let expected = sent * (config.clients as u64).saturating_sub(1);
    let drain_deadline = Instant::now() + config.drain;
    while clock.delivered.load(Ordering::SeqCst) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let server_cpu_s = sys::cpu_seconds_all(&target.pids)? - cpu_before;
    let memory = sys::memory_all(&target.pids)?;

    for (id, conn) in conns.iter().enumerate() {
        let _ = conn
            .doc()
            .get_or_insert_text(TEXT)
            .unobserve(observer_key(id));
    }
    join_all(conns.iter().map(|c| c.close())).await;

    let samples: Vec<Samples> = latencies
        .iter()
        .map(|samples| samples.lock().map(|s| s.clone()).unwrap_or_default())
        .collect();
    let mut latencies_us: Vec<u64> = samples.iter().flat_map(|s| s.all.clone()).collect();
    latencies_us.sort_unstable();
    let mut cross_node_us: Vec<u64> = samples.iter().flat_map(|s| s.cross.clone()).collect();
    cross_node_us.sort_unstable();
    Ok(TypingResult {
        sent,
        delivered: clock.delivered.load(Ordering::SeqCst),
        expected,
        window,
        latencies_us,
        cross_node_us,
        server_cpu_s,
        memory,
        watcher_awareness_frames,
    })
}

/// How long every client may take to see every other client's name.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(120);

/// Every client announces its name; returns once every client sees all of them.
async fn announce(conns: &[Arc<DocConnection>]) -> Result<()> {
    for (id, conn) in conns.iter().enumerate() {
        conn.set_awareness(user_state(id, None))
            .context("setting a client's awareness")?;
    }
    let everyone = conns.len();
    let deadline = Instant::now() + ANNOUNCE_TIMEOUT;
    for conn in conns {
        while conn.with_awareness(|a| a.iter().filter(|(_, s)| s.data.is_some()).count()) < everyone
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "not every client saw every other's name within {ANNOUNCE_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Client `id`'s awareness state, as a notebook page sets it: a name, and a cursor once it
/// types.
fn user_state(id: usize, cursor: Option<u32>) -> serde_json::Value {
    let mut state = serde_json::json!({
        "user": { "name": format!("Student {id}"), "color": "#30bced" },
    });
    if let Some(index) = cursor {
        state["cursor"] = serde_json::json!({ "cell": "bench", "index": index });
    }
    state
}

/// Renews a watcher's state every [`RENEWAL`] (a newer clock, the same state) until the run
/// stops (the conductor aborts it).
async fn renew_loop(conn: Arc<DocConnection>, clock: Arc<Clock>, offset: Duration) {
    tokio::time::sleep(offset).await;
    let mut ticks = tokio::time::interval(RENEWAL);
    while !clock.stop.load(Ordering::SeqCst) {
        ticks.tick().await;
        let state = conn.with_awareness(|a| a.local_state::<serde_json::Value>());
        if let Some(state) = state {
            let _ = conn.set_awareness(state);
        }
    }
}

fn observer_key(id: usize) -> String {
    format!("tandem-bench/{id}")
}

/// One receiving client's delivery latencies, in microseconds.
#[derive(Debug, Clone, Default)]
struct Samples {
    all: Vec<u64>,
    /// Those from clients of another node.
    cross: Vec<u64>,
}

/// Records, on client `id` (of `nodes`), the latency of every other client's measured edit
/// that arrives.
fn observe_deliveries(
    conn: &DocConnection,
    (id, nodes): (usize, usize),
    clock: Arc<Clock>,
    samples: Arc<Mutex<Samples>>,
) {
    let text = conn.doc().get_or_insert_text(TEXT);
    text.observe(observer_key(id), move |txn, event| {
        let now = clock.now_us();
        let from = clock.measure_from_us.load(Ordering::Relaxed);
        let mut arrived = 0;
        let Ok(mut samples) = samples.lock() else {
            return;
        };
        for delta in event.delta(txn) {
            let Delta::Inserted(Out::Any(Any::String(inserted)), _) = delta else {
                continue;
            };
            for (author, sent_us) in parse_tokens(inserted) {
                if author != id && sent_us >= from {
                    let latency = now.saturating_sub(sent_us);
                    samples.all.push(latency);
                    if author % nodes != id % nodes {
                        samples.cross.push(latency);
                    }
                    arrived += 1;
                }
            }
        }
        clock.delivered.fetch_add(arrived, Ordering::Relaxed);
    });
}

/// `(author, sent_us)` of each `{client}:{seq}:{sent_us};` token in an inserted chunk.
fn parse_tokens(chunk: &str) -> impl Iterator<Item = (usize, u64)> + '_ {
    chunk.split(';').filter_map(|token| {
        let mut parts = token.split(':');
        let author = parts.next()?.parse().ok()?;
        let _seq = parts.next()?;
        let sent_us = parts.next()?.parse().ok()?;
        Some((author, sent_us))
    })
}

async fn type_loop(
    conn: Arc<DocConnection>,
    id: usize,
    clock: Arc<Clock>,
    (period, offset): (Duration, Duration),
    presence: bool,
) {
    tokio::time::sleep(offset).await;
    let text = conn.doc().get_or_insert_text(TEXT);
    let mut ticks = tokio::time::interval(period);
    // A bench that falls behind must not burst to catch up: that would measure its own
    // backlog, not the server.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    while !clock.stop.load(Ordering::SeqCst) {
        ticks.tick().await;
        if clock.stop.load(Ordering::SeqCst) {
            break;
        }
        let sent_us = clock.now_us();
        let cursor = {
            let mut txn = conn.doc().transact_mut();
            let end = text.len(&txn);
            let token = format!("{id}:{seq}:{sent_us};");
            text.insert(&mut txn, end, &token);
            end + token.len() as u32
        };
        if presence {
            // The editor moves the typist's cursor with each keystroke.
            let _ = conn.set_awareness(user_state(id, Some(cursor)));
        }
        if sent_us >= clock.measure_from_us.load(Ordering::SeqCst) {
            clock.sent.fetch_add(1, Ordering::Relaxed);
        }
        seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_even_when_merged() {
        let tokens: Vec<_> = parse_tokens("3:0:100;12:7:250;").collect();
        assert_eq!(tokens, vec![(3, 100), (12, 250)]);
        assert_eq!(parse_tokens("garbage;1:2").count(), 0);
    }
}
