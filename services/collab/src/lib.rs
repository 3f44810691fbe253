//! The Tandem collab service: many people editing one notebook at once.
//!
//! An axum server that speaks the y-websocket protocol at `GET /ws/{notebook_id}` (so stock
//! Yjs and pycrdt clients work against it), keeps one in-memory room per open notebook,
//! persists every document update durably before broadcasting it, and serves the REST API of
//! DESIGN.md.
//!
//! # Layout
//! - [`config`]: the [`Config`] struct (flags and `TANDEM_*` variables).
//! - [`store`]: the [`store::Store`] trait and its embedded SQLite backend.
//! - [`room`]: the registry of rooms and the per-notebook actor (sync, awareness,
//!   persistence, broadcast, compaction, idle unload).
//! - [`ws`]: one WebSocket connection: frame decoding, limits, keepalive, close reasons.
//! - [`api`]: the REST routes; [`auth`]: tokens and notebook access; [`error`]: the HTTP error.
//! - [`runtime_hub`]: the control channel to the runtime (execute, interrupt, restart).
//! - [`web`]: the web client's pages and assets, from `--web-dir`.
//!
//! # Running
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = tandem_collab::Config::with_data("./tandem-data")?;
//! let server = tandem_collab::Server::bind(config).await?;
//! println!("listening on http://{}", server.local_addr());
//! server.run(tokio_util::sync::CancellationToken::new()).await
//! # }
//! ```

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod ids;
pub mod room;
pub mod runtime_hub;
pub mod store;
pub mod web;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::serve::ListenerExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{Config, StoreConfig};

use room::{RoomSettings, Rooms};
use store::Store;
use store::sqlite::SqliteStore;

/// Shared state of the running service, handed to every handler.
#[derive(Clone)]
pub struct App {
    /// The storage engine.
    pub store: Arc<dyn Store>,
    /// The loaded rooms.
    pub rooms: Rooms,
    /// The service's configuration.
    pub config: Arc<Config>,
    /// Tracks connection and room tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// The control channel to the runtime.
    pub runtimes: Arc<runtime_hub::RuntimeHub>,
    /// SHA-256 of the service credential, if one is configured.
    pub service_token_hash: Option<String>,
    /// Cancelled when the service starts shutting down.
    pub rooms_shutdown: CancellationToken,
    /// The OAuth providers people may sign in with.
    pub providers: Arc<auth::oauth::Providers>,
    /// Rate limits on sign-in and token attempts.
    pub limits: Arc<auth::limits::Limits>,
    /// Access changes that open connections re-check.
    pub access: auth::events::AccessEvents,
}

impl App {
    /// Limits for `.ipynb` imports, derived from the HTTP body limit.
    pub fn import_limits(&self) -> tandem_crdt::ImportLimits {
        tandem_crdt::ImportLimits {
            max_bytes: self.config.max_body_bytes,
            ..tandem_crdt::ImportLimits::default()
        }
    }
}

/// Opens the embedded store named by `config`.
pub fn open_store(config: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    let store = SqliteStore::open(&config.data, config.sync_commits)
        .with_context(|| format!("opening the store in {}", config.data.display()))?;
    Ok(Arc::new(store))
}

/// The collab service, bound to its address and ready to run.
pub struct Server {
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
}

impl Server {
    /// Opens the store and binds the listener.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        let store = open_store(&config.store)?;
        Self::bind_with_store(config, store).await
    }

    /// Binds the listener over an already opened store.
    pub async fn bind_with_store(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let settings = RoomSettings {
            idle: config.room_idle,
            compact_after: config.compact_after,
        };
        let rooms = Rooms::new(store.clone(), settings, tracker.clone(), shutdown.clone());
        let service_token_hash = config.service_token.as_deref().map(ids::token_hash);
        let providers =
            auth::oauth::Providers::load(&config.auth).context("loading the sign-in providers")?;
        let limits = auth::limits::Limits::new(&config.auth);
        let app = App {
            providers: Arc::new(providers),
            limits: Arc::new(limits),
            access: auth::events::AccessEvents::default(),
            store,
            rooms,
            config: Arc::new(config),
            tracker,
            runtimes: Arc::default(),
            service_token_hash,
            rooms_shutdown: shutdown.clone(),
        };
        Ok(Self {
            app,
            listener,
            shutdown,
        })
    }

    /// The address actually bound (resolves port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.app.config.listen)
    }

    /// The service's shared state (for tests and embedding).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `stop` is cancelled, then closes every connection, flushes and compacts
    /// every room, and returns once all of that is done.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let Self {
            app,
            listener,
            shutdown,
        } = self;
        let router = router(app.clone());
        // Rooms close their WebSockets as soon as the stop is asked for; the HTTP server
        // then finishes the requests in flight.
        let rooms_stop = shutdown.clone();
        let stopping = stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            rooms_stop.cancel();
        });
        // Edits are small frames that must leave at once; Nagle's algorithm would hold them
        // back waiting for the previous frame's ACK (tens of milliseconds on loopback).
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY");
            }
        });
        let limits = app.limits.clone();
        let sweeper = stopping.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = every.tick() => limits.sweep(),
                    () = sweeper.cancelled() => break,
                }
            }
        });
        // Connection info gives the rate limits each client's address.
        let router = router.into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            stopping.cancelled().await;
        });
        let result = serve.await.context("serving HTTP");
        tracing::info!("shutting down: flushing rooms");
        shutdown.cancel();
        app.tracker.close();
        app.tracker.wait().await;
        tracing::info!("shutdown complete");
        result
    }
}

/// The service's routes over `app`.
pub fn router(app: App) -> Router {
    let body_limit = app.config.max_body_bytes;
    Router::new()
        .merge(api::routes())
        .merge(auth::session::routes())
        .merge(auth::pages::routes())
        .merge(auth::oauth::routes())
        .merge(web::routes())
        .route("/ws/{id}", axum::routing::get(ws::route))
        .route(
            tandem_protocol::runtime::CONTROL_PATH,
            axum::routing::get(runtime_hub::route),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}
