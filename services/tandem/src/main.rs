//! `tandem`: the command-line entry point over the Tandem services.
//!
//! # Layout
//! - `tandem serve`: everything on one machine with the embedded store in `--data`.
//! - `tandem collab`: the collab service alone.
//! - `tandem token create --email E [--name N]`: creates the user if absent and prints a new
//!   personal access token alone on the last line of stdout. Safe while the server runs.
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
use tandem_collab::{Config, Server, StoreConfig};
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
    /// Run Tandem on one machine with the embedded store (the collab service; the execution
    /// runtime and the web client join it as they land).
    Serve(Config),
    /// Run the collab service alone.
    Collab(Config),
    /// Manage personal access tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
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
    init_logging(cli.log_format);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(config) | Command::Collab(config) => serve(config).await,
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

async fn serve(config: Config) -> anyhow::Result<()> {
    // Each WebSocket is a file descriptor; the usual soft limit of 1024 would cap a node far
    // below the connections it can hold. Raise it to the hard limit the system allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open files limit"),
    }
    let data = config.store.data.clone();
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    tracing::info!(%addr, data = %data.display(), "tandem is up");
    // Scripts and tests wait for this line to learn the port (the address may be port 0).
    println!("listening on http://{addr}");
    std::io::stdout().flush().context("writing to stdout")?;
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    server.run(stop).await
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
    let store = tandem_collab::open_store(store)?;
    let (user, token) = tandem_collab::auth::create_token(store.as_ref(), email, &name).await?;
    println!(
        "token for {} <{}> (user {}):",
        user.name, user.email, user.id
    );
    println!("{token}");
    Ok(())
}
