//! `tandem`: the command-line entry point over the Tandem services.
//!
//! # Layout
//! - `tandem serve`: everything on one machine with the embedded store in `--data`: the
//!   collab service and, joined to it over loopback, a runtime node.
//! - `tandem collab`: the collab service alone.
//! - `tandem runtime`: a runtime node alone, joining a collab service (`--collab-url`) with
//!   the service credential both were given (`TANDEM_SERVICE_TOKEN`); with `--redis-url` it
//!   takes notebooks from Redis, and `--metrics-listen` serves its `/metrics` and `/readyz`.
//! - `tandem kernel`: internal; one kernel worker process, spawned by a runtime node.
//! - `tandem token create --email E [--name N]`: creates the user if absent and prints a new
//!   personal access token alone on the last line of stdout. Safe while the server runs.
//!
//! With local sign-in on (loopback, no OAuth provider), `serve` and `collab` print
//! `Sign in at http://…/signin?token=…` on stdout just before `listening on http://…`; the
//! token is also in `local-signin-token` in `--data`.
//!
//! Every flag also reads a `TANDEM_<FLAG>` environment variable. Logs go to stderr (`--log-format
//! json` for production; the level comes from `RUST_LOG`, default `info`).
//!
//! # Running
//! ```sh
//! cargo run -p tandem -- serve --data ./tandem-data --listen 127.0.0.1:8080
//! cargo run -p tandem -- token create --email you@example.com
//! ```

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tandem_collab::drive::DriveConfig;
use tandem_collab::{Config, Server, StoreConfig};
use tandem_runtime::metrics::Readiness;
use tandem_runtime::node::{KernelConfig, NodeConfig, RedisConfig};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "tandem", version, about = "Real-time collaborative notebooks")]
struct Cli {
    /// Log output format.
    #[arg(
        long,
        env = "TANDEM_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run Tandem on one machine with the embedded store: collab service and runtime.
    Serve(Box<ServeArgs>),
    /// Run the collab service alone.
    Collab(Box<Config>),
    /// Run a runtime node alone, joined to a collab service.
    Runtime(Box<RuntimeArgs>),
    /// Internal: one kernel worker process (spawned by a runtime node).
    #[command(hide = true)]
    Kernel(tandem_kernel::worker::WorkerArgs),
    /// Manage personal access tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    collab: Config,
    #[command(flatten)]
    kernels: KernelConfig,
}

#[derive(clap::Args)]
struct RuntimeArgs {
    /// The collab service to join: one URL (a collab node or a load balancer in front of
    /// them), or several, comma-separated or with the flag repeated. Sessions and the control
    /// link use whichever answers, and move to another when one dies.
    #[arg(
        long,
        env = "TANDEM_COLLAB_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    collab_url: Vec<String>,
    /// How long a notebook session that lost its collab node keeps its kernel while it looks
    /// for another; past it the kernel is ended and the notebook shows it dead.
    #[arg(long, env = "TANDEM_COLLAB_RECONNECT_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    collab_reconnect_timeout: std::time::Duration,
    /// The service credential the collab service was given.
    #[arg(long, env = "TANDEM_SERVICE_TOKEN", hide_env_values = true)]
    service_token: String,
    /// Take notebooks from Redis (as the collab nodes given the same URL hand them out)
    /// instead of the control WebSocket of `--collab-url`.
    #[arg(long, env = "TANDEM_REDIS_URL")]
    redis_url: Option<String>,
    /// Prefix of the Redis keys (the same as the collab nodes').
    #[arg(long, env = "TANDEM_REDIS_PREFIX", default_value = "tandem")]
    redis_prefix: String,
    /// Serve `/metrics`, `/healthz` and `/readyz` on this address (e.g. `0.0.0.0:9090`);
    /// port 0 picks one (printed as `metrics on http://…`). Unset: no HTTP listener.
    #[arg(long, env = "TANDEM_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    kernels: KernelConfig,
    #[command(flatten)]
    drive: DriveConfig,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create the user if absent and print a new token on the last line of stdout.
    Create {
        /// The user's email address.
        #[arg(long, env = "TANDEM_EMAIL")]
        email: String,
        /// The user's display name (defaults to the part of the email before the @).
        #[arg(long, env = "TANDEM_NAME")]
        name: Option<String>,
        #[command(flatten)]
        store: StoreConfig,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Kernel(args) = cli.command {
        // A kernel owns its process: no logging setup, no async runtime, its fds are its own.
        return tandem_kernel::worker::run(args);
    }
    init_logging(cli.log_format);
    let tokio_runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    tokio_runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let args = *args;
                serve(args.collab, Some(args.kernels)).await
            }
            Command::Collab(config) => serve(*config, None).await,
            Command::Runtime(args) => run_runtime(*args).await,
            Command::Kernel(_) => Ok(()),
            Command::Token {
                command: TokenCommand::Create { email, name, store },
            } => create_token(&store, &email, name.as_deref()).await,
        }
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the collab service and, with `kernels`, a runtime node joined to it.
async fn serve(mut config: Config, kernels: Option<KernelConfig>) -> anyhow::Result<()> {
    // Each WebSocket is a file descriptor; the usual soft limit of 1024 would cap a node far
    // below the connections it can hold. Raise it to the hard limit the system allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open files limit"),
    }
    let data = config.store.data.clone();
    let redis = config.store.redis_url.clone().map(|url| RedisConfig {
        url,
        prefix: config.store.redis_prefix.clone(),
    });
    if kernels.is_some() && config.service_token.is_none() {
        // The in-process runtime is the only holder of this credential.
        config.service_token = Some(tandem_collab::ids::new_token());
    }
    let service_token = config.service_token.clone();
    config.drive.settle(&data);
    let drive = drive_settings(&config.drive);
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    tracing::info!(%addr, data = %data.display(), "tandem is up");
    // Before `listening on`, so whoever waits for that line has this one as well. The token
    // in it is also in `local-signin-token` in --data, for scripts.
    if let Some(url) = server.local_sign_in_url() {
        println!("Sign in at {url}");
    }
    // Scripts and tests wait for this line to learn the port (the address may be port 0).
    println!("listening on http://{addr}");
    std::io::stdout().flush().context("writing to stdout")?;
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let node = match (kernels, service_token) {
        (Some(kernels), Some(service_token)) => {
            warn_if_no_venv(&kernels);
            let mut local = addr;
            if local.ip().is_unspecified() {
                local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let isolation = kernels.isolation()?;
            server
                .set_readiness_detail("kernel_sandbox", serde_json::to_value(isolation.status())?);
            let config = NodeConfig {
                isolation,
                collab_urls: vec![format!("http://{local}")],
                reconnect_timeout: tandem_runtime::session::DEFAULT_RECONNECT_TIMEOUT,
                service_token,
                kernels,
                redis,
                ready: Readiness::default(),
                drive: Some(drive),
            };
            Some(tokio::spawn(tandem_runtime::node::run(
                config,
                stop.clone(),
            )))
        }
        _ => None,
    };
    let served = server.run(stop.clone()).await;
    stop.cancel();
    if let Some(node) = node {
        node.await.context("runtime task")??;
    }
    served
}

async fn run_runtime(args: RuntimeArgs) -> anyhow::Result<()> {
    warn_if_no_venv(&args.kernels);
    let isolation = args.kernels.isolation()?;
    let ready = Readiness::default();
    ready.set_sandbox(isolation.status());
    let config = NodeConfig {
        isolation,
        collab_urls: args.collab_url,
        reconnect_timeout: args.collab_reconnect_timeout,
        service_token: args.service_token,
        kernels: args.kernels,
        redis: args.redis_url.map(|url| RedisConfig {
            url,
            prefix: args.redis_prefix,
        }),
        ready: ready.clone(),
        drive: Some(drive_settings(&args.drive)),
    };
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let metrics = match args.metrics_listen {
        Some(addr) => {
            let listener = tandem_runtime::metrics::bind(addr).await?;
            let bound = listener
                .local_addr()
                .context("reading the metrics address")?;
            // Tests and scripts read the port from this line (the address may be port 0).
            println!("metrics on http://{bound}");
            std::io::stdout().flush().context("writing to stdout")?;
            Some(tokio::spawn(tandem_runtime::metrics::serve(
                listener,
                ready,
                stop.clone(),
            )))
        }
        None => None,
    };
    let result = tandem_runtime::node::run(config, stop.clone()).await;
    stop.cancel();
    if let Some(metrics) = metrics {
        metrics.await.context("metrics task")??;
    }
    result
}

/// What a runtime node needs of the drive settings (the same flags as the collab service's).
fn drive_settings(config: &DriveConfig) -> tandem_runtime::drive::DriveSettings {
    tandem_runtime::drive::DriveSettings {
        dir: config.folder().to_owned(),
        quota_bytes: config.quota_bytes(),
    }
}

fn warn_if_no_venv(kernels: &KernelConfig) {
    if !kernels.venv.join("bin").join("python").exists() {
        tracing::warn!(
            venv = %kernels.venv.display(),
            "no kernel venv: cells cannot run until `scripts/setup-python` creates it"
        );
    }
}

async fn stop_on_signal(stop: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("stop requested");
    stop.cancel();
}

async fn create_token(store: &StoreConfig, email: &str, name: Option<&str>) -> anyhow::Result<()> {
    let email = email.trim();
    if !email.contains('@') {
        anyhow::bail!("--email must be an email address, got {email:?}");
    }
    let name = name
        .map(str::to_owned)
        .unwrap_or_else(|| email.split('@').next().unwrap_or(email).to_owned());
    let store = tandem_collab::open_store(store).await?;
    let (user, token) = tandem_collab::auth::create_token(store.as_ref(), email, &name).await?;
    println!(
        "token for {} <{}> (user {}):",
        user.name, user.email, user.id
    );
    println!("{token}");
    Ok(())
}
