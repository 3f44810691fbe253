//! Rate limits on sign-in attempts and unknown tokens: per client address, and sign-in
//! attempts per account (email) as well.
//!
//! The client's address is the TCP peer's, unless the peer is one of `--trusted-proxies`:
//! then it is read from the header those proxies append it to (`--proxy-header`,
//! `X-Forwarded-For` by default, or RFC 7239 `Forwarded`), walking the list from the nearest
//! hop back past every trusted proxy to the first address that is not one. A client behind
//! them can write anything at the start of that list but cannot change what the proxies
//! append, so it cannot choose its bucket; a peer that is not trusted is never believed. Only
//! one header is read: proxies pass the other one on untouched from the client.
//!
//! IPv6 clients are counted per /64, the block one subscriber usually holds, so hopping
//! between the addresses of one block does not buy fresh quotas.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use super::AuthConfig;
use crate::error::ApiError;

/// The header trusted proxies put the client's address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, …` (Caddy, nginx, Traefik, ingress-nginx, Envoy,
    /// cloud load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1` (HAProxy's `option forwarded`, …).
    Forwarded,
}

/// Parses one `--trusted-proxies` entry: a CIDR block or a single address.
pub fn parse_proxy(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{entry:?} is not an IP address or CIDR block (10.0.0.0/8, ::1)"))
}

/// The limiters of one collab node.
pub struct Limits {
    sign_in: DefaultKeyedRateLimiter<IpAddr>,
    sign_in_accounts: DefaultKeyedRateLimiter<String>,
    bad_tokens: DefaultKeyedRateLimiter<IpAddr>,
    proxies: Vec<IpNet>,
    header: ProxyHeader,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("proxies", &self.proxies)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// Limiters with the configured quotas and proxies.
    pub fn new(config: &AuthConfig) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            sign_in: RateLimiter::keyed(quota(config.sign_in_per_minute)),
            sign_in_accounts: RateLimiter::keyed(quota(config.sign_in_per_account_per_minute)),
            bad_tokens: RateLimiter::keyed(quota(config.bad_tokens_per_minute)),
            proxies: config.trusted_proxies.clone(),
            header: config.proxy_header,
        }
    }

    /// Counts a sign-in attempt from `client`; 429 past the quota.
    pub fn sign_in_attempt(&self, client: IpAddr) -> Result<(), ApiError> {
        self.sign_in
            .check_key(&bucket(client))
            .map_err(|_| too_many("sign-in attempts from this address"))
    }

    /// Counts a sign-in attempt for the account `email`, from wherever it comes; 429 past the
    /// quota.
    pub fn sign_in_account(&self, email: &str) -> Result<(), ApiError> {
        self.sign_in_accounts
            .check_key(&email.trim().to_lowercase())
            .map_err(|_| too_many("sign-in attempts for this account"))
    }

    /// Counts a request with an unknown token from `client`; 429 past the quota.
    pub fn token_failure(&self, client: IpAddr) -> Result<(), ApiError> {
        self.bad_tokens
            .check_key(&bucket(client))
            .map_err(|_| too_many("requests with an unknown token from this address"))
    }

    /// Forgets clients whose quota has refilled, so the maps do not grow without bound.
    pub fn sweep(&self) {
        self.sign_in.retain_recent();
        self.sign_in_accounts.retain_recent();
        self.bad_tokens.retain_recent();
    }

    /// The address of the client that made the request: the TCP peer's, or behind trusted
    /// proxies the one they forwarded.
    pub fn client(&self, parts: &Parts) -> IpAddr {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        self.client_behind(peer, &parts.headers)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(&ip))
    }

    /// The first address, walking back from `peer` through the forwarded hops, that is not a
    /// trusted proxy. A hop that is not an address (`unknown`, an obfuscated name, garbage)
    /// ends the walk at the last trusted one.
    fn client_behind(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops = match self.header {
            ProxyHeader::XForwardedFor => x_forwarded_for(headers),
            ProxyHeader::Forwarded => forwarded(headers),
        };
        for hop in hops.into_iter().rev() {
            let Some(hop) = hop else { break };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

fn too_many(what: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many {what}; wait a minute"),
    )
}

/// The key an address is counted under: itself, or its /64 for IPv6.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// The hops of every `X-Forwarded-For` header, in order (`client, proxy1, proxy2`).
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{0}").split(','))
        .map(node_address)
        .collect()
}

/// The `for=` hops of every `Forwarded` header, in order; an element without `for=` is an
/// unknown hop.
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(axum::http::header::FORWARDED)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{0}").split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| node_address(value))
        })
        .collect()
}

/// An address as proxies write a hop: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `"[2001:db8::1]:4711"`; `None` for anything else.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    let ip = node
        .parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            let bare = node.strip_prefix('[')?.strip_suffix(']')?;
            bare.parse::<IpAddr>().ok()
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        auth: AuthConfig,
    }

    fn limits(args: &[&str]) -> Limits {
        let args =
            Args::try_parse_from(std::iter::once("tandem").chain(args.iter().copied())).unwrap();
        Limits::new(&args.auth)
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let l = limits(&[]);
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        assert_eq!(l.client_behind(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let l = limits(&["--trusted-proxies", "10.0.0.0/8"]);
        assert_eq!(l.client_behind(ip("192.0.2.7"), &h), ip("192.0.2.7"));
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_is_the_client() {
        let l = limits(&["--trusted-proxies", "10.0.0.0/8, 127.0.0.1"]);
        let client = |pairs| l.client_behind(ip("127.0.0.1"), &headers(pairs));
        assert_eq!(
            client(&[("x-forwarded-for", "203.0.113.9")]),
            ip("203.0.113.9")
        );
        // The client wrote the first entries itself; the proxies appended the rest.
        assert_eq!(
            client(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(&[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "203.0.113.9:5555"),
            ]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(&[("x-forwarded-for", "2001:db8::1")]),
            ip("2001:db8::1")
        );
        assert_eq!(
            client(&[("x-forwarded-for", "[2001:db8::1]:443")]),
            ip("2001:db8::1")
        );
        assert_eq!(
            client(&[("x-forwarded-for", "::ffff:203.0.113.9")]),
            ip("203.0.113.9")
        );
        // Garbage or nothing: the nearest trusted hop stands for the client.
        assert_eq!(
            client(&[("x-forwarded-for", "evil, 10.0.0.2")]),
            ip("10.0.0.2")
        );
        assert_eq!(client(&[]), ip("127.0.0.1"));
        // Only the configured header is read: a client's own `Forwarded` passes proxies untouched.
        assert_eq!(
            client(&[("forwarded", "for=198.51.100.1")]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_forwarded_header_when_asked_for() {
        let l = limits(&[
            "--trusted-proxies",
            "127.0.0.1,10.0.0.0/8",
            "--proxy-header",
            "forwarded",
        ]);
        let client = |value| l.client_behind(ip("127.0.0.1"), &headers(&[("forwarded", value)]));
        assert_eq!(
            client("for=1.1.1.1, for=203.0.113.9;proto=https, for=10.0.0.2"),
            ip("203.0.113.9")
        );
        assert_eq!(
            client("For=\"[2001:db8:cafe::17]:4711\""),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(client("for=unknown"), ip("127.0.0.1"));
        assert_eq!(client("proto=https;by=10.0.0.3"), ip("127.0.0.1"));
        assert_eq!(
            l.client_behind(
                ip("127.0.0.1"),
                &headers(&[("x-forwarded-for", "203.0.113.9")])
            ),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn proxies_parse_as_blocks_or_addresses() {
        assert_eq!(parse_proxy("10.1.2.3/8"), Ok("10.0.0.0/8".parse().unwrap()));
        assert_eq!(parse_proxy(" ::1 "), Ok("::1/128".parse().unwrap()));
        assert!(parse_proxy("proxy.internal").is_err());
        assert!(Args::try_parse_from(["tandem", "--trusted-proxies", "10.0.0.0/33"]).is_err());
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let l = limits(&["--sign-in-per-minute", "1"]);
        assert!(l.sign_in_attempt(ip("2001:db8:1:2::1")).is_ok());
        assert!(l.sign_in_attempt(ip("2001:db8:1:2::ffff")).is_err());
        assert!(l.sign_in_attempt(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn accounts_are_counted_whatever_the_case() {
        let l = limits(&["--sign-in-per-account-per-minute", "2"]);
        assert!(l.sign_in_account("ada@example.com").is_ok());
        assert!(l.sign_in_account(" Ada@Example.com").is_ok());
        assert!(l.sign_in_account("ADA@example.com").is_err());
        assert!(l.sign_in_account("bob@example.com").is_ok());
    }
}
