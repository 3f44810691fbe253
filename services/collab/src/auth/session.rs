//! Sign-in sessions: the session cookie, CSRF protection, local sign-in and sign-out.
//!
//! A session is a random 256-bit id in an HttpOnly, SameSite=Lax cookie (Secure when the
//! public URL is https); the store keeps only its hash, so ending it in the store ends it on
//! every node at once. Requests authenticated by the cookie that change state must echo the
//! session's CSRF token (readable by the page from the `tandem_csrf` cookie) in the
//! `X-CSRF-Token` header, and a cookie-authenticated WebSocket must come from Tandem's own
//! origin: another site can make the browser send the cookie, but cannot read the token.

use axum::extract::{Query, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use serde::Deserialize;
use tandem_protocol::Me;

use super::config::LocalSignIn;
use super::events::AccessEvent;
use super::{Authenticated, Credential, limits};
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

/// Longest name or email accepted at sign-in, in characters.
const MAX_FIELD_CHARS: usize = 200;

/// The sign-in routes of this module (OAuth adds its own).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/auth/local", routing::post(local_sign_in))
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
fn same_origin(app: &App, parts: &Parts) -> bool {
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
    let secure = app
        .config
        .auth
        .public_url
        .as_ref()
        .is_some_and(|url| url.scheme() == "https");
    let mut cookie = format!("{name}={value}; Path=/; Max-Age={max_age}; SameSite=Lax");
    if http_only {
        cookie.push_str("; HttpOnly");
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).map_err(ApiError::internal)
}

/// Whether the "your name and email" sign-in is offered on this server.
pub fn local_sign_in_enabled(app: &App) -> bool {
    match app.config.auth.local_sign_in {
        LocalSignIn::On => true,
        LocalSignIn::Off => false,
        LocalSignIn::Auto => app.providers.is_empty() && app.config.listen.ip().is_loopback(),
    }
}

/// `POST /auth/local`: a name and email, as JSON or a form.
#[derive(Debug, Deserialize)]
pub struct LocalSignInRequest {
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Where a form sign-in goes next (a local path).
    #[serde(default)]
    pub return_to: Option<String>,
}

async fn local_sign_in(
    State(app): State<App>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    app.limits.sign_in_attempt(limits::client_key(&parts))?;
    if !local_sign_in_enabled(&app) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "local_sign_in_disabled",
            "sign in with one of the configured providers; local sign-in is off on this server",
        ));
    }
    // A sign-in form posted from another site would sign the browser in as someone else.
    if !same_origin(&app, &parts) {
        return Err(ApiError::forbidden(
            "sign-in must come from Tandem's own page",
        ));
    }
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let request: LocalSignInRequest = if is_form {
        serde_urlencoded_form(&body)?
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?
    };
    let (name, email) = (request.name.trim(), request.email.trim());
    if !valid_email(email) || email.chars().count() > MAX_FIELD_CHARS {
        return Err(ApiError::bad_request(
            "invalid_email",
            "enter an email address such as ada@example.com",
        ));
    }
    if name.is_empty() || name.chars().count() > MAX_FIELD_CHARS {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("enter a name of 1 to {MAX_FIELD_CHARS} characters"),
        ));
    }
    let user = app.store.upsert_user(email, name).await?;
    let cookies = start(&app, &user).await?;
    let mut response = if is_form {
        let to = safe_return_to(request.return_to.as_deref());
        let location = HeaderValue::from_str(&to).map_err(ApiError::internal)?;
        (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
    } else {
        Json(Me {
            id: user.id,
            email: user.email,
            name: user.name,
        })
        .into_response()
    };
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}

fn serde_urlencoded_form(body: &[u8]) -> Result<LocalSignInRequest, ApiError> {
    let mut fields: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let mut take = |k: &str| fields.remove(k);
    Ok(LocalSignInRequest {
        name: take("name").unwrap_or_default(),
        email: take("email").unwrap_or_default(),
        return_to: take("return_to"),
    })
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

/// A local path to go to after signing in; anything else (another site, `//host`) becomes `/`.
pub fn safe_return_to(to: Option<&str>) -> String {
    match to {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
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
        "local": local_sign_in_enabled(&app),
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
        assert_eq!(safe_return_to(Some("/n/abc")), "/n/abc");
        assert_eq!(safe_return_to(Some("//evil.example")), "/");
        assert_eq!(safe_return_to(Some("https://evil.example")), "/");
        assert_eq!(safe_return_to(Some("/\\evil.example")), "/");
        assert_eq!(safe_return_to(None), "/");
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
