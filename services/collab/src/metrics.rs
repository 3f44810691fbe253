//! Prometheus metrics of a collab node, and its `/metrics` and `/readyz` routes (`/healthz`,
//! liveness, is in [`crate::api`]).
//!
//! Metrics live in the process-wide default registry, so a runtime node running in the same
//! process (`tandem serve`) shows its own metrics (`tandem_runtime_*`) on this node's
//! `/metrics` too. The hooks below are one-line calls from the code paths they measure; each
//! costs an atomic operation or two.
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `tandem_collab_connections` | gauge | open WebSocket connections (`/ws/{id}`) |
//! | `tandem_collab_rooms` | gauge | notebooks loaded in memory (sampled when scraped) |
//! | `tandem_collab_updates_applied_total` | counter | document updates that changed a room's document |
//! | `tandem_collab_fanout_seconds` | histogram | from a room applying an update to queuing it to every local peer (includes the durable append) |
//! | `tandem_collab_outbound_queue_depth` | histogram | per broadcast, the longest outbound queue among the room's peers |
//! | `tandem_collab_store_append_seconds` | histogram | one durable append of a room's pending updates |
//! | `tandem_collab_runtime_calls_total` | counter | commands sent to runtime nodes, by `outcome` |

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, TextEncoder,
};
use serde_json::json;

use crate::App;

/// How long `/readyz` waits for the store (and Redis) before calling the node not ready.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Latency buckets in seconds: 100 µs to 2.5 s, dense where loopback fan-out lives.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Queue depth buckets, up to the default `--outbound-queue` of 4096.
const DEPTH_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 4096.0];

struct Metrics {
    connections: IntGauge,
    rooms: IntGauge,
    updates: IntCounter,
    fanout: Histogram,
    outbound: Histogram,
    append: Histogram,
    runtime_calls: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = prometheus::default_registry();
    let metrics = Metrics {
        connections: IntGauge::new(
            "tandem_collab_connections",
            "Open WebSocket connections to notebooks.",
        )
        .unwrap_or_else(|_| unreachable_metric()),
        rooms: IntGauge::new("tandem_collab_rooms", "Notebooks loaded in memory.")
            .unwrap_or_else(|_| unreachable_metric()),
        updates: IntCounter::new(
            "tandem_collab_updates_applied_total",
            "Document updates applied to a room's document.",
        )
        .unwrap_or_else(|_| unreachable_metric()),
        fanout: histogram(
            "tandem_collab_fanout_seconds",
            "Time from applying an update to queuing it to every local peer.",
            LATENCY_BUCKETS,
        ),
        outbound: histogram(
            "tandem_collab_outbound_queue_depth",
            "Longest outbound queue among a room's peers, per broadcast.",
            DEPTH_BUCKETS,
        ),
        append: histogram(
            "tandem_collab_store_append_seconds",
            "Time of one durable append of a room's pending updates.",
            LATENCY_BUCKETS,
        ),
        runtime_calls: IntCounterVec::new(
            Opts::new(
                "tandem_collab_runtime_calls_total",
                "Commands sent to runtime nodes, by outcome.",
            ),
            &["outcome"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    };
    // Registration fails only for a duplicate name, which these constants rule out; a
    // failure would only hide the metric, never stop the service.
    let _ = registry.register(Box::new(metrics.connections.clone()));
    let _ = registry.register(Box::new(metrics.rooms.clone()));
    let _ = registry.register(Box::new(metrics.updates.clone()));
    let _ = registry.register(Box::new(metrics.fanout.clone()));
    let _ = registry.register(Box::new(metrics.outbound.clone()));
    let _ = registry.register(Box::new(metrics.append.clone()));
    let _ = registry.register(Box::new(metrics.runtime_calls.clone()));
    metrics
});

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .unwrap_or_else(|_| unreachable_metric())
}

/// Metric constructors fail only on invalid names or buckets, which are constants here.
fn unreachable_metric() -> ! {
    unreachable!("metric definitions are constants and valid")
}

/// A WebSocket connection opened; the returned guard counts it until dropped.
pub fn connection_opened() -> ConnectionGuard {
    METRICS.connections.inc();
    ConnectionGuard(())
}

/// Counts one open connection while alive.
#[must_use = "the connection is counted while the guard lives"]
pub struct ConnectionGuard(());

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        METRICS.connections.dec();
    }
}

/// A document update changed a room's document.
pub fn update_applied() {
    METRICS.updates.inc();
}

/// Pending updates that a room started collecting at `since` were queued to every peer.
pub fn fanned_out(since: Option<Instant>) {
    if let Some(since) = since {
        METRICS.fanout.observe(since.elapsed().as_secs_f64());
    }
}

/// The longest outbound queue among a room's peers at a broadcast.
pub fn outbound_depth(depth: usize) {
    METRICS.outbound.observe(depth as f64);
}

/// One durable append that started at `started` finished.
pub fn store_appended(started: Instant) {
    METRICS.append.observe(started.elapsed().as_secs_f64());
}

/// A command sent to a runtime node ended with `outcome` (`ok`, `refused`, `unavailable`).
pub fn runtime_call(outcome: &str) {
    METRICS.runtime_calls.with_label_values(&[outcome]).inc();
}

/// The metrics of this process in the Prometheus text format.
pub fn render() -> String {
    // Touch the collab metrics so they are listed (at zero) before their first event.
    LazyLock::force(&METRICS);
    let families = prometheus::gather();
    let mut buffer = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&families, &mut buffer) {
        tracing::warn!(error = %err, "cannot encode metrics");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

/// `GET /metrics`.
pub async fn metrics(State(app): State<App>) -> Response {
    METRICS
        .rooms
        .set(i64::try_from(app.rooms.len()).unwrap_or(i64::MAX));
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], render()).into_response()
}

/// `GET /readyz`: 200 when the store answers (a metadata read; for Redis a round trip) and,
/// with runtime nodes reached through Redis, when Redis answers a PING; else 503 with the
/// reason. Load balancers send traffic only to ready nodes.
pub async fn readyz(State(app): State<App>) -> Response {
    let details = app
        .readiness_details
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let (status, mut body) = match tokio::time::timeout(READY_TIMEOUT, check(&app)).await {
        Ok(Ok(())) => (StatusCode::OK, json!({"status": "ready"})),
        Ok(Err(reason)) => not_ready(reason),
        Err(_) => not_ready(format!("no answer within {READY_TIMEOUT:?}")),
    };
    if let Some(body) = body.as_object_mut() {
        body.extend(details);
    }
    (status, Json(body)).into_response()
}

async fn check(app: &App) -> Result<(), String> {
    // Any read that touches the backend: an id that never exists answers `None`.
    app.store
        .notebook("readyz")
        .await
        .map_err(|err| format!("the store does not answer: {err}"))?;
    app.runtimes
        .ready()
        .await
        .map_err(|err| format!("the runtime link is down: {err}"))
}

fn not_ready(reason: String) -> (StatusCode, serde_json::Value) {
    tracing::warn!(%reason, "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "not_ready", "reason": reason}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_show_in_the_text_format() {
        let guard = connection_opened();
        update_applied();
        fanned_out(Some(Instant::now()));
        outbound_depth(3);
        let text = render();
        drop(guard);
        for name in [
            "tandem_collab_connections",
            "tandem_collab_updates_applied_total",
            "tandem_collab_fanout_seconds_bucket",
            "tandem_collab_outbound_queue_depth_count",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
