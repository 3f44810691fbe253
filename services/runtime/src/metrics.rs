//! Prometheus metrics of a runtime node, and the small HTTP listener a runtime node running
//! alone (`tandem runtime --metrics-listen ADDR`) serves them on.
//!
//! The metrics live in the process-wide default registry: under `tandem serve` the collab
//! router's `/metrics` shows them beside its own.
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `tandem_runtime_kernels` | gauge | notebook sessions with a kernel process (starting, idle or busy) |
//! | `tandem_runtime_sessions` | gauge | notebook sessions this node runs |
//! | `tandem_runtime_queued_cells` | gauge | cells waiting in this node's notebook queues |
//! | `tandem_runtime_executions_total` | counter | cells accepted for execution |
//! | `tandem_runtime_orphans_marked_total` | counter | notebooks of vanished runtime nodes this node marked dead |

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, IntCounter, IntGauge, TextEncoder};
use tokio_util::sync::CancellationToken;

struct Metrics {
    kernels: IntGauge,
    sessions: IntGauge,
    queued: IntGauge,
    executions: IntCounter,
    orphans: IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let gauge = |name: &str, help: &str| {
        IntGauge::new(name, help).unwrap_or_else(|_| unreachable!("constant metric definition"))
    };
    let counter = |name: &str, help: &str| {
        IntCounter::new(name, help).unwrap_or_else(|_| unreachable!("constant metric definition"))
    };
    let metrics = Metrics {
        kernels: gauge(
            "tandem_runtime_kernels",
            "Notebook sessions with a kernel process (starting, idle or busy).",
        ),
        sessions: gauge("tandem_runtime_sessions", "Notebook sessions on this node."),
        queued: gauge(
            "tandem_runtime_queued_cells",
            "Cells waiting in this node's notebook queues.",
        ),
        executions: counter(
            "tandem_runtime_executions_total",
            "Cells accepted for execution.",
        ),
        orphans: counter(
            "tandem_runtime_orphans_marked_total",
            "Notebooks of vanished runtime nodes marked dead by this node.",
        ),
    };
    let registry = prometheus::default_registry();
    // Registration fails only for a duplicate name, which these constants rule out.
    let _ = registry.register(Box::new(metrics.kernels.clone()));
    let _ = registry.register(Box::new(metrics.sessions.clone()));
    let _ = registry.register(Box::new(metrics.queued.clone()));
    let _ = registry.register(Box::new(metrics.executions.clone()));
    let _ = registry.register(Box::new(metrics.orphans.clone()));
    metrics
});

/// Registers the runtime metrics (at zero), so they are listed before anything happens.
pub fn init() {
    LazyLock::force(&METRICS);
}

/// `cells` cells were accepted for execution.
pub fn executions(cells: usize) {
    METRICS
        .executions
        .inc_by(u64::try_from(cells).unwrap_or(u64::MAX));
}

/// A notebook of a vanished node was marked dead.
pub fn orphan_marked() {
    METRICS.orphans.inc();
}

/// The node's sessions now: how many, how many with a kernel, and the cells queued.
pub fn sessions(sessions: usize, kernels: usize, queued: usize) {
    let int = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    METRICS.sessions.set(int(sessions));
    METRICS.kernels.set(int(kernels));
    METRICS.queued.set(int(queued));
}

/// Whether a runtime node's link to its work (the control WebSocket, or Redis) is up, and
/// what its kernels run in.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    up: Arc<AtomicBool>,
    sandbox: Arc<std::sync::RwLock<Option<crate::sandbox::SandboxStatus>>>,
}

impl Readiness {
    /// Records whether the link is up.
    pub fn set(&self, ready: bool) {
        self.up.store(ready, Ordering::Relaxed);
    }

    /// Whether the link is up.
    pub fn is_ready(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records what kernels run in (`/readyz` shows it; an unavailable sandbox makes the
    /// node not ready, since it cannot start kernels).
    pub fn set_sandbox(&self, status: crate::sandbox::SandboxStatus) {
        *self
            .sandbox
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(status);
    }

    fn sandbox(&self) -> Option<crate::sandbox::SandboxStatus> {
        self.sandbox
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The metrics of this process in the Prometheus text format.
pub fn render() -> String {
    init();
    let mut buffer = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&prometheus::gather(), &mut buffer) {
        tracing::warn!(error = %err, "cannot encode metrics");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

/// Serves `/metrics`, `/healthz` (liveness) and `/readyz` (200 while `ready`, else 503) on
/// `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ready: Readiness,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    init();
    let router = Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz))
        .with_state(ready);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .context("serving runtime metrics")
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding --metrics-listen {addr}"))
}

async fn metrics() -> Response {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], render()).into_response()
}

async fn healthz() -> Response {
    json(StatusCode::OK, r#"{"status":"ok"}"#)
}

async fn readyz(State(ready): State<Readiness>) -> Response {
    let sandbox = ready.sandbox();
    let (status, body) = match &sandbox {
        Some(crate::sandbox::SandboxStatus::Unavailable { reason }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not_ready", "reason": format!("the kernel sandbox is unavailable: {reason}")}),
        ),
        _ if ready.is_ready() => (StatusCode::OK, serde_json::json!({"status": "ready"})),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not_ready", "reason": "the runtime's link to the collab service or Redis is down"}),
        ),
    };
    let mut body = body;
    if let Some(sandbox) = sandbox {
        body["kernel_sandbox"] = serde_json::to_value(sandbox).unwrap_or_default();
    }
    (status, axum::Json(body)).into_response()
}

fn json(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
