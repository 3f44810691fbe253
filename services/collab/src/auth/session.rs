//! Sign-in sessions: the session cookie, CSRF protection and sign-out.
//!
//! A session is a random 256-bit id in an HttpOnly, SameSite=Lax cookie (Secure when the
//! public URL is https); the store keeps only its hash, so ending it in the store ends it on
//! every node at once. Requests authenticated by the cookie that change state must echo the
//! session's CSRF token (readable by the page from the `tandem_csrf` cookie) in the
//! `X-CSRF-Token` header, and a cookie-authenticated WebSocket must come from Tandem's own
//! origin: another site can make the browser send the cookie, but cannot read the token.

use axum::extract::{Query, State};
use axum::http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use serde::Deserialize;

use super::events::AccessEvent;
use super::{Authenticated, Credential};
use crate::App;
use crate::error::ApiError;
use crate::ids;
use crate::store::{SessionRecord, User};

/// The cookie holding the session id.
pub const SESSION_COOKIE: &str = "tandem_session";
/// The cookie holding the CSRF token, readable by the page's scripts.
pub const CSRF_COOKIE: &str = "tandem_csrf";
/// The header a cookie-authenticated change must carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The sign-in routes of this module (OAuth and local sign-in add their own).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/auth/signout", routing::post(sign_out))
        .route("/auth/providers", routing::get(providers))
}

/// The live session named by the request's cookie, if any. An unknown or expired cookie is
/// as good as none (the caller is anonymous).
pub async fn from_cookie(
    app: &App,
    parts: &Parts,
) -> Result<Option<(SessionRecord, User)>, ApiError> {
    let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(app.store.session(&ids::token_hash(&id)).await?)
}

/// Refuses a cookie-authenticated request that changes state without the session's CSRF
/// token, and a cookie-authenticated WebSocket from another origin.
pub fn check_csrf(app: &App, parts: &Parts, session: &SessionRecord) -> Result<(), ApiError> {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        if parts.headers.contains_key(axum::http::header::UPGRADE) && !same_origin(app, parts) {
            return Err(ApiError::forbidden(
                "a WebSocket signed in by cookie must come from Tandem's own pages",
            ));
        }
        return Ok(());
    }
    let sent = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Compared as hashes, so timing says nothing about the token.
    if ids::token_hash(sent) != ids::token_hash(&session.csrf_token) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            format!("send the `{CSRF_COOKIE}` cookie's value in the `X-CSRF-Token` header"),
        ));
    }
    Ok(())
}

/// Whether the request's `Origin` (when a browser sent one) is Tandem's own: the public URL's
/// origin or the `Host` the request was sent to.
pub(super) fn same_origin(app: &App, parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser (browsers always send Origin on WebSockets and cross-site POSTs).
        return true;
    };
    let Ok(origin) = url::Url::parse(origin) else {
        return false;
    };
    if let Some(public) = &app.config.auth.public_url {
        return origin.origin() == public.origin();
    }
    let host = parts.headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin_host = match origin.port() {
        Some(port) => format!("{}:{port}", origin.host_str().unwrap_or_default()),
        None => origin.host_str().unwrap_or_default().to_owned(),
    };
    host == Some(origin_host.as_str())
}

/// The value of one cookie in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Starts a session for `user` and returns the `Set-Cookie` headers that hand it to the
/// browser.
pub async fn start(app: &App, user: &User) -> Result<Vec<HeaderValue>, ApiError> {
    let id = ids::new_token();
    let csrf_token = ids::random_id();
    let now = ids::now_ms();
    let ttl = app.config.auth.session_ttl;
    let session = SessionRecord {
        hash: ids::token_hash(&id),
        user_id: user.id.clone(),
        csrf_token: csrf_token.clone(),
        created_at_ms: now,
        expires_at_ms: now.saturating_add(ttl.as_millis() as i64),
    };
    app.store.insert_session(&session).await?;
    tracing::info!(user_id = %user.id, "signed in");
    let max_age = ttl.as_secs();
    Ok(vec![
        set_cookie(app, SESSION_COOKIE, &id, max_age, true)?,
        set_cookie(app, CSRF_COOKIE, &csrf_token, max_age, false)?,
    ])
}

fn set_cookie(
    app: &App,
    name: &str,
    value: &str,
    max_age: u64,
    http_only: bool,
) -> Result<HeaderValue, ApiError> {
    let secure = secure_cookies(app);
    let mut cookie = format!("{name}={value}; Path=/; Max-Age={max_age}; SameSite=Lax");
    if http_only {
        cookie.push_str("; HttpOnly");
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).map_err(ApiError::internal)
}

/// Whether cookies get `Secure`: when the public URL is https.
pub(super) fn secure_cookies(app: &App) -> bool {
    app.config
        .auth
        .public_url
        .as_ref()
        .is_some_and(|url| url.scheme() == "https")
}

/// A deliberately loose check: something@something.something, no spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
        && email.matches('@').count() == 1
}

/// Where a sign-in goes when `return_to` is missing or refused.
pub const DEFAULT_RETURN_TO: &str = "/";

/// Stands in for Tandem's origin when no `--public-url` is set: only its being one origin
/// matters, and `.invalid` can never be anyone's host.
const PLACEHOLDER_ORIGIN: &str = "http://tandem.invalid/";

/// The path (with query and fragment) to go to after signing in: `to` resolved against
/// Tandem's public URL the way a browser would resolve it, kept only when it stays on that
/// origin. Anything else (another site, `//host`, `/\host`, `/\t/host`, a scheme) becomes
/// [`DEFAULT_RETURN_TO`]. The answer is the `url` crate's serialization, so it is
/// percent-encoded and fit for a `Location` header, and never starts with `//`.
pub fn safe_return_to(public_url: Option<&url::Url>, to: Option<&str>) -> String {
    let placeholder;
    let base = match public_url {
        Some(url) => url,
        None => match url::Url::parse(PLACEHOLDER_ORIGIN) {
            Ok(url) => {
                placeholder = url;
                &placeholder
            }
            Err(_) => return DEFAULT_RETURN_TO.to_owned(),
        },
    };
    let Some(to) = to.filter(|to| !to.is_empty()) else {
        return DEFAULT_RETURN_TO.to_owned();
    };
    let Ok(resolved) = base.join(to) else {
        return DEFAULT_RETURN_TO.to_owned();
    };
    if resolved.origin() != base.origin() {
        return DEFAULT_RETURN_TO.to_owned();
    }
    let path = &resolved[url::Position::BeforePath..];
    // A path that normalizes to `//host` (`/.//host`) would read as another site once it
    // stands alone in a `Location` header.
    if !path.starts_with('/') || path.starts_with("//") {
        return DEFAULT_RETURN_TO.to_owned();
    }
    path.to_owned()
}

#[derive(Debug, Deserialize)]
struct SignOutQuery {
    #[serde(default)]
    everywhere: bool,
}

/// `POST /auth/signout[?everywhere=true]`: ends this session (or all of the user's) and cuts
/// the WebSockets it opened.
async fn sign_out(
    State(app): State<App>,
    Query(query): Query<SignOutQuery>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    match (&auth.credential, &auth.caller) {
        (Credential::Session(hash), super::Caller::User(user)) => {
            if query.everywhere {
                app.store.delete_user_sessions(&user.id).await?;
                app.access
                    .publish(AccessEvent::UserSignedOut(user.id.clone()));
            } else {
                app.store.delete_session(hash).await?;
                app.access.publish(AccessEvent::SessionEnded(hash.clone()));
            }
            tracing::info!(user_id = %user.id, everywhere = query.everywhere, "signed out");
        }
        (Credential::Token(_), _) => {
            return Err(ApiError::bad_request(
                "not_a_session",
                "a personal access token is not a session; revoke it instead",
            ));
        }
        _ => {}
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        let expired = HeaderValue::from_str(&format!("{name}=; Path=/; Max-Age=0; SameSite=Lax"))
            .map_err(ApiError::internal)?;
        response.headers_mut().append(SET_COOKIE, expired);
    }
    Ok(response)
}

async fn providers(State(app): State<App>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "providers": app.providers.list(),
        "local": app.local_sign_in.is_some(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_parse_from_every_header() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; tandem_session=abc"));
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn return_to_stays_on_this_site() {
        let public = url::Url::parse("https://tandem.example.com").unwrap();
        for base in [None, Some(&public)] {
            let to = |path| safe_return_to(base, Some(path));
            assert_eq!(to("/n/abc"), "/n/abc");
            assert_eq!(to("/n/abc?x=1#c"), "/n/abc?x=1#c");
            assert_eq!(to("/home/../n/abc"), "/n/abc");
            assert_eq!(
                to("/a b"),
                "/a%20b",
                "percent-encoded for a Location header"
            );
            for evil in [
                "//evil.example",
                "https://evil.example",
                "/\\evil.example",
                "\\\\evil.example",
                "/\t/evil.example",
                "/\n/evil.example",
                "\t//evil.example",
                " //evil.example",
                "/.//evil.example",
                "/..//evil.example",
                "javascript:alert(1)",
                "data:text/html,x",
                "https://tandem.example.com.evil.example/",
                "https://user@evil.example",
            ] {
                assert_eq!(to(evil), "/", "{evil:?} with base {base:?}");
            }
            assert_eq!(safe_return_to(base, None), "/");
            assert_eq!(safe_return_to(base, Some("")), "/");
        }
        // A full URL on the public origin is kept as its path; without a public URL there is
        // no origin to compare with, so full URLs are refused.
        assert_eq!(
            safe_return_to(Some(&public), Some("https://tandem.example.com/n/abc")),
            "/n/abc"
        );
        assert_eq!(
            safe_return_to(None, Some("http://127.0.0.1:8080/n/abc")),
            "/"
        );
        // Relative paths resolve against the root, as a browser on `/signin` would; so does
        // `http:x` on an http origin (a path there), while on https it is another site.
        assert_eq!(safe_return_to(Some(&public), Some("n/abc")), "/n/abc");
        assert_eq!(
            safe_return_to(None, Some("http:evil.example")),
            "/evil.example"
        );
        assert_eq!(
            safe_return_to(Some(&public), Some("http:evil.example")),
            "/"
        );
    }

    #[test]
    fn emails_are_checked_loosely() {
        assert!(valid_email("ada@example.com"));
        assert!(!valid_email("ada"));
        assert!(!valid_email("ada@localhost"));
        assert!(!valid_email("a b@example.com"));
        assert!(!valid_email("a@b@example.com"));
    }
}
