//! The collab service's configuration: one struct, every field a flag with a `TANDEM_*`
//! environment variable, defaults documented on the field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Where the embedded store lives. Shared by `tandem serve`, `tandem collab` and `tandem token`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreConfig {
    /// Directory of the embedded store (a SQLite file, `tandem.db`).
    #[arg(long = "data", env = "TANDEM_DATA", default_value = "./tandem-data")]
    pub data: PathBuf,

    /// Flush every commit to disk (fsync) before an update is broadcast. With `false`, a
    /// committed update still survives the server being killed (it is in the OS's cache), but
    /// not a power loss or OS crash; in exchange each update costs far less I/O.
    #[arg(long, env = "TANDEM_SYNC_COMMITS", default_value_t = true, action = clap::ArgAction::Set)]
    pub sync_commits: bool,

    /// Redis, the shared engine of a scaled-out deployment (`redis://host:6379/0`): with it,
    /// users, notebooks, comments and documents live in Redis instead of `--data`, collab
    /// nodes relay each other's edits and presence, and runtime nodes take notebooks from
    /// Redis instead of the control WebSocket. Updates are as durable as Redis makes them:
    /// run it with `appendonly yes` and `appendfsync always` (infra/).
    #[arg(long, env = "TANDEM_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key Tandem writes, so several deployments (or test runs) can
    /// share one Redis.
    #[arg(long, env = "TANDEM_REDIS_PREFIX", default_value = "tandem")]
    pub redis_prefix: String,
}

/// Configuration of the collab service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// The store to use.
    #[command(flatten)]
    pub store: StoreConfig,

    /// Sign-in and sessions.
    #[command(flatten)]
    pub auth: crate::auth::AuthConfig,

    /// Version history: automatic versions and their retention.
    #[command(flatten)]
    pub versions: crate::versions::VersionConfig,

    /// Users' persistent files (the Drive).
    #[command(flatten)]
    pub drive: crate::drive::DriveConfig,

    /// Per-connection, per-person and per-notebook quotas.
    #[command(flatten)]
    pub quotas: crate::quotas::QuotaConfig,

    /// Address to listen on; port 0 picks a free one (the bound address is printed).
    #[arg(long, env = "TANDEM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Host names requests may be addressed to besides `localhost`, IP addresses and the
    /// `--public-url` host (comma-separated): the names a proxy or a runtime node uses to
    /// reach this node, such as `collab` or `tandem-collab`. `.example.com` allows the name
    /// and every name under it; `*` allows any (only behind a proxy that checks `Host`
    /// itself). Requests naming any other host get 421, which keeps DNS rebinding out.
    #[arg(long, env = "TANDEM_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Largest WebSocket message accepted, in bytes; a larger one closes that connection with
    /// code 1009. Importing a large notebook goes through HTTP, so this can stay modest.
    #[arg(long, env = "TANDEM_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Largest HTTP request body (an `.ipynb` upload), in bytes; larger ones get 413.
    #[arg(long, env = "TANDEM_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Messages queued for one WebSocket client before it counts as a slow reader and is
    /// disconnected (it reconnects and resyncs; nothing is silently dropped).
    #[arg(long, env = "TANDEM_OUTBOUND_QUEUE", default_value_t = 4096)]
    pub outbound_queue: usize,

    /// Interval of WebSocket pings; a client silent for two intervals is disconnected.
    #[arg(long, env = "TANDEM_KEEPALIVE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub keepalive: Duration,

    /// How long a notebook with no connections stays in memory before it is compacted and
    /// unloaded.
    #[arg(long, env = "TANDEM_ROOM_IDLE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub room_idle: Duration,

    /// Shared secret of the runtime nodes (the service credential): it lets a runtime join any
    /// notebook as an editor and open the control channel. `tandem serve` makes a random one
    /// for its own runtime when unset. Never logged, never given to kernels.
    #[arg(long, env = "TANDEM_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,

    /// How long an execute, interrupt or restart request waits for the runtime to accept it.
    #[arg(long, env = "TANDEM_RUNTIME_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub runtime_timeout: Duration,

    /// Fold a notebook's update log into a snapshot once it holds this many updates.
    #[arg(long, env = "TANDEM_COMPACT_AFTER", default_value_t = 1000)]
    pub compact_after: u64,

    /// With `--redis-url`: how long a presence (awareness) state from a client of another
    /// collab node lives without being renewed; Yjs clients renew every 15 s, so this is how
    /// long the clients of a node that died stay visible.
    #[arg(long, env = "TANDEM_AWARENESS_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub awareness_timeout: Duration,

    /// The built web client (`npm run build` in `client/web`, which `scripts/run` does):
    /// `index.html` and `assets/`. Relative paths are taken from the working directory.
    /// Without it the pages answer 503 saying how to build it; the API works regardless.
    #[arg(long, env = "TANDEM_WEB_DIR", default_value = "client/web/dist")]
    pub web_dir: PathBuf,

    /// How long one git operation (a clone and read for an import; a clone, commit and push
    /// for a commit) may take before it is stopped and answered 502 `git_unavailable`.
    #[arg(long, env = "TANDEM_GIT_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub git_timeout: Duration,

    /// Let git imports and commits reach hosts that are not on the public internet
    /// (loopback, private, link-local, carrier-grade NAT, cloud metadata addresses): for git
    /// servers on the same private network as Tandem. Off, such a repository URL is refused,
    /// so nobody can make the server call services only it can reach.
    #[arg(long, env = "TANDEM_GIT_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub git_allow_private: bool,

    /// The key users' secrets are sealed with: base64 of 32 random bytes
    /// (`head -c32 /dev/urandom | base64`). Unset, the embedded store keeps one in
    /// `secrets.key` in `--data` (made on first start, mode 0600); with `--redis-url` every
    /// collab node needs the same key, and without it secrets are off (503
    /// `secrets_unconfigured`). Losing it loses every stored secret.
    #[arg(long, env = "TANDEM_SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<String>,
}

#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// The documented defaults (`TANDEM_*` environment variables still apply), with the store
    /// in `data` and a free loopback port. Handy for tests and embedding.
    pub fn with_data(data: impl Into<PathBuf>) -> Result<Self, clap::Error> {
        let mut config = Defaults::try_parse_from(["tandem"])?.config;
        config.store.data = data.into();
        config.drive.settle(&config.store.data);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(config)
    }
}
