//! Sign-in with OAuth 2.0 and OpenID Connect providers (Google, GitHub, any OIDC issuer).
//!
//! `GET /auth/oauth/{provider}/start?return_to=/path` makes a random `state`, a PKCE
//! verifier (S256) and, for OpenID Connect, a `nonce`; keeps them in the store under the
//! hash of the state (single use, [`LOGIN_TTL`]); binds the attempt to this browser with a
//! short-lived cookie holding the state; and sends the browser to the provider.
//!
//! `GET /auth/oauth/{provider}/callback?code=..&state=..` takes the attempt back (an
//! unknown, expired or already used state, or one started in another browser, is refused),
//! exchanges the code with the PKCE verifier, learns who signed in (a verified ID token for
//! OpenID Connect, the REST API for GitHub), requires a verified email, creates or updates
//! the user, starts a session and sends the browser to `return_to`.
//!
//! The redirect URI is `<public URL>/auth/oauth/<name>/callback`; without `--public-url` it
//! is built from the `Host` the browser used (so `http://127.0.0.1:8080` locally).
//!
//! # Layout
//! - `flow`: the two routes, `start` and `callback`.
//! - `provider`: one provider: its OAuth client, and who signed in.
//! - [`settings`]: the providers file and the `TANDEM_*` shortcuts.
//! - [`oidc`]: discovery, signing keys and ID token checks.
//! - [`github`]: who signed in with GitHub.

mod flow;
pub mod github;
pub mod oidc;
mod provider;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::{Router, routing};
use serde::Serialize;

use super::AuthConfig;
use crate::App;
use crate::error::ApiError;
use provider::Provider;
use settings::{GOOGLE_ISSUER, Kind};

/// How long a started sign-in may take to come back.
pub const LOGIN_TTL: Duration = Duration::from_secs(10 * 60);

/// The cookie that binds a sign-in attempt to the browser that started it. Without it,
/// someone could start a sign-in as themselves and trick another person's browser into
/// finishing it, signing that person in to the wrong account (login CSRF).
pub const BINDING_COOKIE: &str = "tandem_oauth";

/// Limit on each request to a provider (discovery, keys, token exchange, user info).
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// A provider as the sign-in page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderInfo {
    /// The provider's configured name (its path segment).
    pub name: String,
    /// What the button says.
    pub label: String,
    /// Where the button goes.
    pub url: String,
    /// Which mark the button shows: `google` (the OpenID Connect issuer
    /// `https://accounts.google.com`), `github`, or `oidc` for any other issuer.
    pub kind: &'static str,
}

/// The configured providers.
#[derive(Debug, Default)]
pub struct Providers {
    providers: Vec<Arc<Provider>>,
    http: reqwest::Client,
}

impl Providers {
    /// Loads the providers named in the configuration (the providers file and the `TANDEM_*`
    /// shortcuts). OpenID Connect discovery starts in the background when a runtime is
    /// running; an issuer that cannot be reached now is tried again at the first sign-in.
    pub fn load(config: &AuthConfig) -> anyhow::Result<Self> {
        let providers: Vec<_> = settings::load(config)?
            .into_iter()
            .map(|settings| {
                let issuer = match &settings.kind {
                    Kind::Oidc {
                        issuer,
                        also_accepted,
                    } => Some(oidc::Issuer::new(issuer.clone(), also_accepted.clone())),
                    Kind::GitHub => None,
                };
                Arc::new(Provider { settings, issuer })
            })
            .collect();
        let http = reqwest::Client::builder()
            // The token endpoint must answer itself: a redirect there could forward the code
            // and the client secret to another host.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let this = Self { providers, http };
        if !this.providers.is_empty() {
            let names: Vec<_> = this
                .providers
                .iter()
                .map(|p| p.settings.name.as_str())
                .collect();
            tracing::info!(providers = ?names, "sign-in providers configured");
        }
        this.warm_up();
        Ok(this)
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The providers, for the sign-in page.
    pub fn list(&self) -> Vec<ProviderInfo> {
        self.providers
            .iter()
            .map(|p| ProviderInfo {
                name: p.settings.name.clone(),
                label: p.settings.label.clone(),
                url: format!("/auth/oauth/{}/start", p.settings.name),
                kind: match &p.settings.kind {
                    Kind::GitHub => "github",
                    Kind::Oidc { issuer, .. } if issuer.trim_end_matches('/') == GOOGLE_ISSUER => {
                        "google"
                    }
                    Kind::Oidc { .. } => "oidc",
                },
            })
            .collect()
    }

    fn get(&self, name: &str) -> Result<&Provider, ApiError> {
        self.providers
            .iter()
            .find(|p| p.settings.name == name)
            .map(AsRef::as_ref)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_provider",
                    format!("no sign-in provider is called {name:?} on this server"),
                )
            })
    }

    /// Fetches every issuer's discovery document and keys in the background.
    fn warm_up(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for provider in &self.providers {
            if provider.issuer.is_none() {
                continue;
            }
            let (provider, http) = (provider.clone(), self.http.clone());
            runtime.spawn(async move {
                let Some(issuer) = &provider.issuer else {
                    return;
                };
                match issuer.warm_up(&http).await {
                    Ok(()) => tracing::info!(provider = %provider.settings.name, issuer = issuer.id(), "OpenID Connect issuer discovered"),
                    Err(err) => tracing::warn!(
                        provider = %provider.settings.name,
                        issuer = issuer.id(),
                        error = format!("{err:#}"),
                        "OpenID Connect issuer not reachable yet; trying again at the first sign-in"
                    ),
                }
            });
        }
    }
}

/// The OAuth routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/auth/oauth/{provider}/start", routing::get(flow::start))
        .route(
            "/auth/oauth/{provider}/callback",
            routing::get(flow::callback),
        )
}

fn invalid_state(message: &str) -> ApiError {
    ApiError::bad_request("invalid_state", message)
}

fn oauth_failed(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("oauth_failed", message)
}

fn invalid_id_token(label: &str, reason: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_id_token",
        format!("the ID token from {label} was refused: {reason}"),
    )
}

fn email_refused(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

fn unavailable(label: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "provider_unavailable",
        format!("{label} cannot be reached to sign in; try again in a moment"),
    )
}
