//! Rate limits on sign-in attempts and unknown tokens, per client address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AuthConfig;
use crate::error::ApiError;

/// The limiters of one collab node.
pub struct Limits {
    sign_in: DefaultKeyedRateLimiter<IpAddr>,
    bad_tokens: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

impl Limits {
    /// Limiters with the configured quotas.
    pub fn new(config: &AuthConfig) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            sign_in: RateLimiter::keyed(quota(config.sign_in_per_minute)),
            bad_tokens: RateLimiter::keyed(quota(config.bad_tokens_per_minute)),
        }
    }

    /// Counts a sign-in attempt; 429 past the quota.
    pub fn sign_in_attempt(&self, client: IpAddr) -> Result<(), ApiError> {
        self.sign_in
            .check_key(&client)
            .map_err(|_| too_many("sign-in attempts"))
    }

    /// Counts a request with an unknown token; 429 past the quota.
    pub fn token_failure(&self, client: IpAddr) -> Result<(), ApiError> {
        self.bad_tokens
            .check_key(&client)
            .map_err(|_| too_many("requests with an unknown token"))
    }

    /// Forgets clients whose quota has refilled, so the maps do not grow without bound.
    pub fn sweep(&self) {
        self.sign_in.retain_recent();
        self.bad_tokens.retain_recent();
    }
}

fn too_many(what: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many {what} from this address; wait a minute"),
    )
}

/// The client's address, as the TCP connection saw it (a proxy in front shows as itself).
pub fn client_key(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip())
}
