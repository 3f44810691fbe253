//! The `Host` check that keeps DNS rebinding out.
//!
//! A page on `http://evil.example:8080` can make its own name resolve to 127.0.0.1 a moment
//! after it loaded. From then on the browser sends the page's requests to the Tandem on
//! loopback while still treating the answers as `evil.example`'s own, so the page reads them:
//! it can take the local sign-in page's form, sign in, and read and run notebooks. What gives
//! it away is the `Host` header, which still names `evil.example`. So every request (pages,
//! API, WebSocket upgrades) must name a host Tandem answers to, or it gets 421 with the list:
//!
//! - `localhost` and IP addresses (`127.0.0.1`, `[::1]`, `10.0.0.5`), on any port: a rebinding
//!   page has to come with a name of its own, and browsers resolve `localhost` themselves;
//!   health checks and runtime nodes that reach a node by its address keep working;
//! - the host of `--public-url`;
//! - the names in `--allowed-hosts`, for proxies and nodes that reach this one by another
//!   name (`collab` in compose, `tandem-collab` in Kubernetes): `name` exactly, `.example.com`
//!   for it and every name under it, or `*` for any name (the check is off).
//!
//! Ports are not compared: a rebinding page cannot borrow a name it does not control, whatever
//! the port.

use std::net::IpAddr;

use anyhow::bail;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::HOST;
use axum::http::uri::Authority;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::App;
use crate::error::ApiError;

/// The loopback name every Tandem answers to; browsers resolve it without DNS.
const LOCALHOST: &str = "localhost";

/// The host names requests may name, besides `localhost` and IP addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    /// Names allowed exactly (lowercase, no trailing dot).
    names: Vec<String>,
    /// `.example.com` entries: the name and everything under it.
    suffixes: Vec<String>,
    /// `*`: every name.
    any: bool,
}

impl AllowedHosts {
    /// The public URL's host and the `--allowed-hosts` entries; an entry that is not a host
    /// name (a URL, a path, a port alone) is an error, so a typo stops the server at start.
    pub fn new(public_url: Option<&url::Url>, extra: &[String]) -> anyhow::Result<Self> {
        let mut hosts = Self::default();
        if let Some(host) = public_url.and_then(url::Url::host_str) {
            hosts.names.push(normalize(host));
        }
        for entry in extra.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if entry == "*" {
                hosts.any = true;
                continue;
            }
            let (suffix, name) = match entry.strip_prefix('.') {
                Some(rest) => (true, rest),
                None => (false, entry),
            };
            let Some(host) = host_of(name) else {
                bail!(
                    "--allowed-hosts: {entry:?} is not a host name (such as tandem.internal or .example.com)"
                );
            };
            if suffix {
                hosts.suffixes.push(host);
            } else {
                hosts.names.push(host);
            }
        }
        Ok(hosts)
    }

    /// Whether a request whose `Host` header (or HTTP/2 authority) is `host` may be served.
    pub fn allows(&self, host: &str) -> bool {
        let Some(host) = host_of(host) else {
            return false;
        };
        if self.any || host == LOCALHOST || host.parse::<IpAddr>().is_ok() {
            return true;
        }
        self.names.contains(&host)
            || self.suffixes.iter().any(|suffix| {
                host == *suffix
                    || host
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
    }

    /// The allowed hosts, for people: `localhost, IP addresses, tandem.example.com, *.corp`.
    pub fn describe(&self) -> String {
        if self.any {
            return "any host".to_owned();
        }
        let mut list = vec![
            "localhost".to_owned(),
            "IP addresses (127.0.0.1, [::1], …)".to_owned(),
        ];
        list.extend(self.names.iter().cloned());
        list.extend(
            self.suffixes
                .iter()
                .map(|s| format!("{s} and names under it")),
        );
        list.join(", ")
    }
}

/// The host of a `Host` header value or an `--allowed-hosts` entry: lowercase, without port,
/// brackets or a trailing dot; `None` when it is not a plain `host[:port]`.
fn host_of(value: &str) -> Option<String> {
    if value.contains('@') {
        return None;
    }
    let authority: Authority = value.parse().ok()?;
    let host = authority.host();
    if host.is_empty() {
        return None;
    }
    Some(normalize(host))
}

fn normalize(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Middleware: answers 421 (400 without any host) before routing when the request names a
/// host this server does not answer to.
pub async fn check(State(app): State<App>, request: Request, next: Next) -> Response {
    let host = match request.headers().get(HOST) {
        Some(value) => value.to_str().ok(),
        // HTTP/2 carries the host in the `:authority` pseudo-header, which lands in the URI.
        None => request.uri().authority().map(Authority::as_str),
    };
    let Some(host) = host else {
        return ApiError::bad_request(
            "host_required",
            format!(
                "send a Host header naming this server: {}",
                app.hosts.describe()
            ),
        )
        .into_response();
    };
    if app.hosts.allows(host) {
        return next.run(request).await;
    }
    let shown: String = host.chars().take(100).collect();
    tracing::info!(host = %shown, "refused a request for another host (DNS rebinding?)");
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "host_not_allowed",
        format!(
            "this server does not answer to {shown:?}; it answers to {}. If that name is \
             this server's (a proxy or another node reaching it), add it with --allowed-hosts \
             (TANDEM_ALLOWED_HOSTS)",
            app.hosts.describe()
        ),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(public: Option<&str>, extra: &[&str]) -> AllowedHosts {
        let public = public.map(|u| url::Url::parse(u).unwrap());
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        AllowedHosts::new(public.as_ref(), &extra).unwrap()
    }

    #[test]
    fn loopback_names_and_addresses_are_always_allowed() {
        let h = hosts(None, &[]);
        for ok in [
            "localhost",
            "localhost:8080",
            "LOCALHOST:1",
            "localhost.:8080",
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:8080",
            "10.1.2.3:8080",
            "[2001:db8::1]:443",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
    }

    #[test]
    fn other_names_are_refused() {
        let h = hosts(None, &[]);
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8080",
            "evil.localhost",
            "user@localhost",
            "localhost/path",
            "",
            "a b",
            "[::1",
        ] {
            assert!(!h.allows(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_public_url_and_allowed_hosts_add_names() {
        let h = hosts(
            Some("https://Tandem.Example.com"),
            &["collab", ".corp.example", " "],
        );
        assert!(h.allows("tandem.example.com"));
        assert!(h.allows("tandem.example.com:443"));
        assert!(h.allows("collab:8080"));
        assert!(h.allows("corp.example"));
        assert!(h.allows("a.b.corp.example:8080"));
        assert!(!h.allows("evilcorp.example"));
        assert!(!h.allows("example.com"));
        assert!(!h.allows("collab.evil.example"));
        assert!(
            h.describe().contains("tandem.example.com"),
            "{}",
            h.describe()
        );

        assert!(hosts(None, &["*"]).allows("anything.example"));
        assert!(AllowedHosts::new(None, &["https://x.example/".to_owned()]).is_err());
        assert!(AllowedHosts::new(None, &["a/b".to_owned()]).is_err());
    }
}
