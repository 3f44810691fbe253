//! Sign-in with OAuth 2.0 and OpenID Connect providers.

use axum::Router;
use serde::Serialize;

use super::AuthConfig;
use crate::App;

/// A provider as the sign-in page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderInfo {
    /// The provider's configured name (its path segment).
    pub name: String,
    /// What the button says.
    pub label: String,
    /// Where the button goes.
    pub url: String,
}

/// The configured providers.
#[derive(Debug, Default)]
pub struct Providers {}

impl Providers {
    /// Loads the providers named in the configuration.
    pub fn load(_config: &AuthConfig) -> anyhow::Result<Self> {
        Ok(Self {})
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        true
    }

    /// The providers, for the sign-in page.
    pub fn list(&self) -> Vec<ProviderInfo> {
        Vec::new()
    }
}

/// The OAuth routes.
pub fn routes() -> Router<App> {
    Router::new()
}
