//! Sign-in settings: the public URL, OAuth providers, local sign-in, sessions and limits.

use std::path::PathBuf;
use std::time::Duration;

/// When the "your name and email" sign-in is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LocalSignIn {
    /// On when no OAuth provider is configured and the server listens on loopback only.
    Auto,
    /// Always on, also on a public address (anyone who has the sign-in link the server
    /// printed can sign in as anyone: for trusted networks only).
    On,
    /// Never.
    Off,
}

/// Configuration of sign-in and sessions.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthConfig {
    /// The URL people reach Tandem at, such as `https://tandem.example.com`. OAuth redirect
    /// URIs are built from it and cookies get `Secure` when it is https. Default:
    /// `http://<listen address>`.
    #[arg(long, env = "TANDEM_PUBLIC_URL")]
    pub public_url: Option<url::Url>,

    /// The "your name and email" sign-in: `auto` offers it only when no OAuth provider is
    /// configured and Tandem listens on a loopback address. It works only with the token of
    /// the `Sign in at …/signin?token=…` link printed at start (also in `local-signin-token`
    /// in `--data`).
    #[arg(long, env = "TANDEM_LOCAL_SIGN_IN", value_enum, default_value = "auto")]
    pub local_sign_in: LocalSignIn,

    /// A TOML file of OAuth / OpenID Connect providers (see docs/api.md, "Sign-in").
    #[arg(long, env = "TANDEM_AUTH_PROVIDERS")]
    pub auth_providers: Option<PathBuf>,

    /// Client id of a Google OAuth client: adds the provider `google` without a providers
    /// file (needs `--google-client-secret` too).
    #[arg(long, env = "TANDEM_GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,

    /// Client secret of the Google OAuth client.
    #[arg(long, env = "TANDEM_GOOGLE_CLIENT_SECRET", hide_env_values = true)]
    pub google_client_secret: Option<String>,

    /// Client id of a GitHub OAuth app: adds the provider `github` without a providers file
    /// (needs `--github-client-secret` too).
    #[arg(long, env = "TANDEM_GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,

    /// Client secret of the GitHub OAuth app.
    #[arg(long, env = "TANDEM_GITHUB_CLIENT_SECRET", hide_env_values = true)]
    pub github_client_secret: Option<String>,

    /// Issuer URL of an OpenID Connect provider (its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`): adds the provider `oidc` without a
    /// providers file (needs `--oidc-client-id` and `--oidc-client-secret` too).
    #[arg(long, env = "TANDEM_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// Client id registered at the `--oidc-issuer` provider.
    #[arg(long, env = "TANDEM_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,

    /// Client secret registered at the `--oidc-issuer` provider.
    #[arg(long, env = "TANDEM_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,

    /// How long a sign-in session lasts.
    #[arg(long, env = "TANDEM_SESSION_TTL", default_value = "30days", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,

    /// Sign-in attempts (local or OAuth, started or finished) allowed per client address per
    /// minute (see `--trusted-proxies` behind a proxy); more get 429.
    #[arg(long, env = "TANDEM_SIGN_IN_PER_MINUTE", default_value_t = 30)]
    pub sign_in_per_minute: u32,

    /// Sign-in attempts allowed per account (email address) per minute, from all addresses
    /// together; more get 429.
    #[arg(
        long,
        env = "TANDEM_SIGN_IN_PER_ACCOUNT_PER_MINUTE",
        default_value_t = 10
    )]
    pub sign_in_per_account_per_minute: u32,

    /// Requests with an unknown access token allowed per client address per minute; more get
    /// 429, so tokens cannot be guessed at speed (they carry 256 random bits regardless).
    #[arg(long, env = "TANDEM_BAD_TOKENS_PER_MINUTE", default_value_t = 30)]
    pub bad_tokens_per_minute: u32,

    /// Proxies in front of Tandem whose forwarded client address is believed
    /// (comma-separated CIDR blocks or addresses, such as `10.0.0.0/8,127.0.0.1`). A request
    /// from one of them is counted against the client address named in `--proxy-header`;
    /// from anyone else, against its own address, whatever headers it sends.
    #[arg(long, env = "TANDEM_TRUSTED_PROXIES", value_delimiter = ',', value_parser = super::limits::parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// The header the `--trusted-proxies` put the client's address in: `x-forwarded-for`
    /// or `forwarded` (RFC 7239). Only that one is read; proxies pass the other one on from
    /// the client untouched.
    #[arg(
        long,
        env = "TANDEM_PROXY_HEADER",
        value_enum,
        default_value = "x-forwarded-for"
    )]
    pub proxy_header: super::limits::ProxyHeader,
}
