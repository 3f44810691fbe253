//! The Tandem collab service: many people editing one notebook at once.
//!
//! An axum server that speaks the y-websocket protocol at `GET /ws/{notebook_id}` (so stock
//! Yjs and pycrdt clients work against it), keeps one in-memory room per open notebook,
//! persists every document update durably before broadcasting it, and serves the REST API of
//! docs/design.md.
//!
//! # Layout
//! - [`config`]: the [`Config`] struct (flags and `TANDEM_*` variables).
//! - [`store`]: the [`store::Store`] trait, its embedded SQLite backend and its Redis backend.
//! - [`cluster`]: with Redis, what collab nodes relay to each other (document updates,
//!   awareness, access events).
//! - [`room`]: the registry of rooms and the per-notebook actor (sync, awareness,
//!   persistence, broadcast, compaction, idle unload).
//! - [`ws`]: one WebSocket connection: frame decoding, limits, keepalive, close reasons.
//! - [`quotas`]: what one connection, person and notebook may take (connections, message
//!   rates, awareness and notebook sizes).
//! - [`api`]: the REST routes; [`auth`]: tokens and notebook access; [`error`]: the HTTP error.
//! - [`runtime_hub`]: the link to runtime nodes (execute, interrupt, restart): the control
//!   WebSocket, or Redis with `--redis-url`.
//! - [`metrics`]: Prometheus metrics at `/metrics`, readiness at `/readyz`.
//! - [`secrets`]: users' secrets sealed under the server's key (`api/secrets.rs` has their
//!   routes, `store/secrets.rs` their storage).
//! - [`drive`]: each user's persistent files, with their quota and path checks
//!   (`api/drive.rs` has their routes).
//! - [`versions`]: version history: automatic and named versions, their authors, retention
//!   (`api/versions.rs` has their routes, `store/versions.rs` their storage).
//! - [`web`]: the web client's pages and assets, from `--web-dir`, and the security headers
//!   every response carries.
//! - [`hosts`]: the `Host` check that keeps DNS rebinding out.
//! - [`git`]: clones, reads, commits and pushes through the `git` command, for notebooks
//!   opened from a repository (`api/git.rs` has their routes).
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
pub mod cluster;
pub mod config;
pub mod drive;
pub mod error;
pub mod git;
pub mod hosts;
pub mod ids;
pub mod metrics;
pub mod quotas;
pub mod room;
pub mod runtime_hub;
pub mod secrets;
pub mod store;
pub mod versions;
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

use cluster::Cluster;
use room::{RoomSettings, Rooms, Tasks};
use store::Store;
use store::redis::RedisStore;
use store::sqlite::SqliteStore;

/// Shared state of the running service, handed to every handler: one pointer, so the copy
/// every request and every open connection keeps is one reference count, not a dozen.
#[derive(Clone)]
pub struct App(Arc<AppState>);

impl std::ops::Deref for App {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

/// What [`App`] shares.
pub struct AppState {
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
    pub service_token_hash: Option<Arc<str>>,
    /// Cancelled when the service starts shutting down.
    pub rooms_shutdown: CancellationToken,
    /// The OAuth providers people may sign in with.
    pub providers: Arc<auth::oauth::Providers>,
    /// Rate limits on sign-in and token attempts.
    pub limits: Arc<auth::limits::Limits>,
    /// Open WebSockets per person.
    pub connections: Arc<quotas::Connections>,
    /// This node's local sign-in token; `None` when local sign-in is off.
    pub local_sign_in: Option<Arc<auth::local::LocalToken>>,
    /// Access changes that open connections re-check.
    pub access: auth::events::AccessEvents,
    /// The key users' secrets are sealed with; `None` when secrets are off (Redis without
    /// `--secrets-key`).
    pub secrets: Option<Arc<secrets::SecretsKey>>,
    /// Facts `/readyz` adds to its answer, set by whoever runs the service (`tandem serve`
    /// reports its kernels' sandbox here).
    pub readiness_details: Arc<std::sync::RwLock<serde_json::Map<String, serde_json::Value>>>,
    /// The host names requests may be addressed to.
    pub hosts: Arc<hosts::AllowedHosts>,
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

/// Opens the store named by `config`: Redis with `--redis-url`, else the embedded store in
/// `--data`.
pub async fn open_store(config: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = &config.redis_url {
        return Ok(Arc::new(open_redis(url, &config.redis_prefix).await?));
    }
    let store = SqliteStore::open(&config.data, config.sync_commits)
        .with_context(|| format!("opening the store in {}", config.data.display()))?;
    Ok(Arc::new(store))
}

async fn open_redis(url: &str, prefix: &str) -> anyhow::Result<RedisStore> {
    RedisStore::open(url, prefix)
        .await
        .context("opening the Redis store")
}

/// The collab service, bound to its address and ready to run.
pub struct Server {
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
}

impl Server {
    /// Opens the store and binds the listener. With `--redis-url` the node also joins the
    /// other collab nodes on that Redis ([`cluster`]).
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        if let Some(url) = &config.store.redis_url {
            let store = open_redis(url, &config.store.redis_prefix).await?;
            return Self::bind_inner(config, Arc::new(store.clone()), Some(store)).await;
        }
        let store = open_store(&config.store).await?;
        Self::bind_with_store(config, store).await
    }

    /// Binds the listener over an already opened store, as a node on its own.
    pub async fn bind_with_store(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        Self::bind_inner(config, store, None).await
    }

    async fn bind_inner(
        config: Config,
        store: Arc<dyn Store>,
        shared: Option<RedisStore>,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let settings = RoomSettings {
            idle: config.room_idle,
            keepalive: config.keepalive,
            compact_after: config.compact_after,
            awareness_timeout: config.awareness_timeout,
            versions: config.versions.clone(),
            max_awareness_bytes: config.quotas.max_awareness_bytes,
            max_notebook_bytes: config.quotas.max_notebook_bytes,
        };
        let (access, cluster) = match &shared {
            Some(redis) => {
                let (access, relayed) = auth::events::AccessEvents::relayed();
                let cluster =
                    Cluster::start(redis, access.clone(), relayed, &tracker, shutdown.clone())
                        .await
                        .context("joining the other collab nodes on Redis")?;
                (access, Some(cluster))
            }
            None => (auth::events::AccessEvents::default(), None),
        };
        let tasks = Tasks {
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        };
        let rooms = Rooms::clustered(store.clone(), settings, tasks, cluster);
        let service_token_hash = config
            .service_token
            .as_deref()
            .map(|token| Arc::from(ids::token_hash(token)));
        let providers =
            auth::oauth::Providers::load(&config.auth).context("loading the sign-in providers")?;
        let limits = auth::limits::Limits::new(&config.auth);
        let hosts =
            hosts::AllowedHosts::new(config.auth.public_url.as_ref(), &config.allowed_hosts)?;
        let local_sign_in = if auth::local::enabled(&config.auth, config.listen, &providers) {
            let token = auth::local::LocalToken::create(store.as_ref(), &config.store.data)
                .await
                .context("starting local sign-in")?;
            Some(Arc::new(token))
        } else {
            None
        };
        let secrets = secrets::configure(&config)?.map(Arc::new);
        let runtimes = match &config.store.redis_url {
            Some(url) => {
                let hub = runtime_hub::redis::RedisHub::connect(
                    url,
                    &config.store.redis_prefix,
                    &tracker,
                    shutdown.clone(),
                )
                .await?;
                hub.watch_orphans(rooms.clone(), &tracker, shutdown.clone());
                runtime_hub::RuntimeHub::with_redis(hub)
            }
            None => runtime_hub::RuntimeHub::default(),
        };
        let app = App(Arc::new(AppState {
            providers: Arc::new(providers),
            limits: Arc::new(limits),
            connections: Arc::default(),
            local_sign_in,
            access,
            store,
            rooms,
            config: Arc::new(config),
            tracker,
            runtimes: Arc::new(runtimes),
            service_token_hash,
            rooms_shutdown: shutdown.clone(),
            secrets,
            readiness_details: Arc::default(),
            hosts: Arc::new(hosts),
        }));
        if let Some(redis) = app.runtimes.redis() {
            redis
                .serve_asks(app.clone(), &app.tracker, shutdown.clone())
                .await?;
        }
        Ok(Self {
            app,
            listener,
            shutdown,
        })
    }

    /// Adds `key` to what `/readyz` answers.
    pub fn set_readiness_detail(&self, key: &str, value: serde_json::Value) {
        self.app
            .readiness_details
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_owned(), value);
    }

    /// The address actually bound (resolves port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.app.config.listen)
    }

    /// The link that signs a browser in with this node's local sign-in token
    /// (`http://127.0.0.1:8080/signin?token=…`), when local sign-in is on. `tandem serve`
    /// prints it.
    pub fn local_sign_in_url(&self) -> Option<String> {
        auth::local::sign_in_url(&self.app, self.local_addr())
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
        if let Some(local) = &app.local_sign_in {
            app.tracker.spawn(
                local
                    .clone()
                    .keep_alive(app.store.clone(), stopping.clone()),
            );
        }
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
    let router = Router::new()
        .merge(api::routes())
        .merge(auth::session::routes())
        .merge(auth::local::routes())
        .merge(auth::pages::routes())
        .merge(auth::oauth::routes())
        .merge(web::routes())
        .route("/ws/{id}", axum::routing::get(ws::route))
        .route("/metrics", axum::routing::get(metrics::metrics))
        .route("/readyz", axum::routing::get(metrics::readyz))
        .route(
            tandem_protocol::runtime::CONTROL_PATH,
            axum::routing::get(runtime_hub::route),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            hosts::check,
        ));
    web::headers::apply(router).with_state(app)
}
