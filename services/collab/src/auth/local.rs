//! Local sign-in: a name and an email, for a Tandem on loopback with no OAuth provider.
//!
//! Anyone who can reach the port (any process on the machine, a notebook's kernel among them)
//! could otherwise become anyone by posting an email. So, as Jupyter does, each node makes a
//! random sign-in token when it starts, prints a link carrying it
//! (`Sign in at http://127.0.0.1:8080/signin?token=…`) and writes it, mode 0600, to
//! [`TOKEN_FILE`] in `--data`; the form works only with that token.
//!
//! - Opening `/signin?token=…` with a good token sets the [`TOKEN_COOKIE`] cookie (HttpOnly,
//!   SameSite=Strict, Path=/) and redirects to `/signin` without the token, so the token
//!   leaves the address bar and the history; the form then posts with the cookie.
//! - `POST /auth/local` takes the token from its `token` field (JSON or form) or else from the
//!   cookie. Without a good one it answers 403 `sign_in_token_required` or
//!   `invalid_sign_in_token` (a form gets the sign-in page saying where the link is).
//! - A fresh token each start, replacing the file: the link lands in terminals and logs, and a
//!   restart ends whatever leaked (Jupyter does the same). Scripts read the file.
//! - Every node accepts every running node's token, so with `--redis-url` a link printed by
//!   one node works on all: each node records its token's hash in the store with a lease
//!   ([`LEASE`]) that it renews while it runs and drops when it stops; the token of a node
//!   killed outright lapses with its lease. A node compares a token with its own in constant
//!   time and looks up the others by hash, so timing says nothing about any token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tandem_protocol::Me;
use tokio_util::sync::CancellationToken;

use super::config::LocalSignIn;
use super::oauth::Providers;
use super::{AuthConfig, pages, session};
use crate::App;
use crate::error::ApiError;
use crate::ids;
use crate::store::Store;

/// The file in `--data` holding the token of the node that started last on it.
pub const TOKEN_FILE: &str = "local-signin-token";

/// The cookie that holds the token in a browser that opened the sign-in link.
pub const TOKEN_COOKIE: &str = "tandem_signin_token";

/// How long another node accepts a node's token after its last renewal: the most a node
/// killed without a clean stop leaves its token usable elsewhere.
pub const LEASE: Duration = Duration::from_secs(5 * 60);

/// How often a running node renews its lease; several renewals fit in one lease, so a store
/// that is briefly unreachable does not end the token.
const RENEW_EVERY: Duration = Duration::from_secs(60);

/// Longest name or email accepted at sign-in, in characters.
const MAX_FIELD_CHARS: usize = 200;

/// Whether a node with this configuration offers local sign-in.
pub fn enabled(config: &AuthConfig, listen: SocketAddr, providers: &Providers) -> bool {
    match config.local_sign_in {
        LocalSignIn::On => true,
        LocalSignIn::Off => false,
        LocalSignIn::Auto => providers.is_empty() && listen.ip().is_loopback(),
    }
}

/// This node's local sign-in token. Its `Debug` output never shows the token.
pub struct LocalToken {
    token: String,
    hash: String,
    file: PathBuf,
}

impl std::fmt::Debug for LocalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalToken")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl LocalToken {
    /// Makes a fresh token, records it in the store for its first lease and writes it to
    /// [`TOKEN_FILE`] in `data`, replacing the file of an earlier start.
    pub async fn create(store: &dyn Store, data: &Path) -> anyhow::Result<Self> {
        let token = ids::random_secret();
        let hash = ids::token_hash(&token);
        store
            .put_local_sign_in_token(&hash, lease_end())
            .await
            .context("recording the local sign-in token")?;
        let file = data.join(TOKEN_FILE);
        write_private(&file, &token)?;
        tracing::info!(file = %file.display(), "local sign-in: made a new sign-in token");
        Ok(Self { token, hash, file })
    }

    /// The token itself, for the link printed at start.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Where the token was written.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Whether `hash` is this token's, in constant time.
    fn is(&self, hash: &str) -> bool {
        self.hash.as_bytes().ct_eq(hash.as_bytes()).into()
    }

    /// Renews the token's lease until `stop`, then drops it from the store so no node
    /// accepts it any more.
    pub async fn keep_alive(self: Arc<Self>, store: Arc<dyn Store>, stop: CancellationToken) {
        let mut every = tokio::time::interval(RENEW_EVERY);
        // The first tick is immediate, and `create` has just recorded the first lease.
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if let Err(err) = store.put_local_sign_in_token(&self.hash, lease_end()).await {
                        tracing::warn!(
                            error = %err,
                            "cannot renew the local sign-in token; other nodes refuse it once it lapses"
                        );
                    }
                }
                () = stop.cancelled() => break,
            }
        }
        if let Err(err) = store.delete_local_sign_in_token(&self.hash).await {
            tracing::warn!(error = %err, "cannot drop the local sign-in token; it lapses by itself");
        }
    }
}

fn lease_end() -> i64 {
    ids::now_ms().saturating_add(LEASE.as_millis() as i64)
}

/// Writes `token` to `path`, readable by the owner only from the start: into a new file beside
/// it, renamed over it, so a reader never sees half a token.
fn write_private(path: &Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().context("the token file has no directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let temporary = dir.join(format!(".{TOKEN_FILE}.{}", ids::random_id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(format!("{token}\n").as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(err).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// The link that signs a browser in on this node: `<public URL>/signin?token=…`, or
/// `http://<address>/signin?token=…` (loopback for an address on every interface). `None`
/// when local sign-in is off.
pub fn sign_in_url(app: &App, mut addr: SocketAddr) -> Option<String> {
    let local = app.local_sign_in.as_ref()?;
    let base = match &app.config.auth.public_url {
        Some(url) => url.as_str().trim_end_matches('/').to_owned(),
        None => {
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{addr}")
        }
    };
    Some(format!("{base}/signin?token={}", local.token()))
}

/// What a request presented as the local sign-in token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// No token.
    Missing,
    /// A token no running node made (one from an earlier start, or a guess).
    Invalid,
    /// The token of a running node.
    Valid,
}

impl TokenCheck {
    /// Checks `presented` against this node's token and those of the other running nodes.
    /// Always [`TokenCheck::Invalid`] for a token when local sign-in is off.
    pub async fn of(app: &App, presented: Option<&str>) -> Result<Self, ApiError> {
        let Some(presented) = presented.filter(|token| !token.is_empty()) else {
            return Ok(Self::Missing);
        };
        let Some(local) = &app.local_sign_in else {
            return Ok(Self::Invalid);
        };
        let hash = ids::token_hash(presented);
        if local.is(&hash) || app.store.local_sign_in_token_live(&hash).await? {
            Ok(Self::Valid)
        } else {
            Ok(Self::Invalid)
        }
    }

    /// The API's answer to a sign-in without a valid token.
    fn refusal(self) -> ApiError {
        let (code, message) = match self {
            Self::Invalid => (
                "invalid_sign_in_token",
                "this sign-in token is not valid: the server makes a new one each time it \
                 starts. Open the `Sign in at …/signin?token=…` link it printed last, or send \
                 `token` from the file `local-signin-token` in its data directory",
            ),
            Self::Missing | Self::Valid => (
                "sign_in_token_required",
                "local sign-in needs the server's sign-in token: open the `Sign in at \
                 …/signin?token=…` link it printed when it started, or send `token` from the \
                 file `local-signin-token` in its data directory",
            ),
        };
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }
}

/// The token a request carries in the [`TOKEN_COOKIE`] cookie.
pub fn cookie_token(parts: &Parts) -> Option<String> {
    session::cookie(&parts.headers, TOKEN_COOKIE)
}

/// The `Set-Cookie` header that hands a (checked) token to the browser: HttpOnly, for this
/// browser session, and sent only with requests from Tandem's own pages.
pub fn token_cookie(app: &App, token: &str) -> Result<HeaderValue, ApiError> {
    let mut cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    if session::secure_cookies(app) {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).map_err(ApiError::internal)
}

/// The route of this module.
pub fn routes() -> Router<App> {
    Router::new().route("/auth/local", routing::post(local_sign_in))
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
    /// The server's sign-in token; without it, the one in the [`TOKEN_COOKIE`] cookie.
    #[serde(default)]
    pub token: Option<String>,
}

async fn local_sign_in(
    State(app): State<App>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    app.limits.sign_in_attempt(app.limits.client(&parts))?;
    if app.local_sign_in.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "local_sign_in_disabled",
            "sign in with one of the configured providers; local sign-in is off on this server",
        ));
    }
    // A sign-in form posted from another site would sign the browser in as someone else.
    if !session::same_origin(&app, &parts) {
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
        form_request(&body)
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?
    };
    // Counted per account too, before the token is checked: many addresses together get no
    // more tries at one account than one address does.
    if session::valid_email(request.email.trim()) {
        app.limits.sign_in_account(&request.email)?;
    }
    let presented = (request.token.clone())
        .filter(|token| !token.is_empty())
        .or_else(|| cookie_token(&parts));
    let check = TokenCheck::of(&app, presented.as_deref()).await?;
    if check != TokenCheck::Valid {
        tracing::info!(?check, "local sign-in refused: no valid sign-in token");
        if is_form {
            let return_to = session::safe_return_to(
                app.config.auth.public_url.as_ref(),
                request.return_to.as_deref(),
            );
            let page = pages::render(&app, &return_to, pages::Local::NeedsToken(check));
            return Ok(pages::respond(StatusCode::FORBIDDEN, page));
        }
        return Err(check.refusal());
    }
    let (name, email) = (request.name.trim(), request.email.trim());
    if !session::valid_email(email) || email.chars().count() > MAX_FIELD_CHARS {
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
    let cookies = session::start(&app, &user).await?;
    let mut response = if is_form {
        let to = session::safe_return_to(
            app.config.auth.public_url.as_ref(),
            request.return_to.as_deref(),
        );
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

fn form_request(body: &[u8]) -> LocalSignInRequest {
    let mut fields: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let mut take = |k: &str| fields.remove(k);
    LocalSignInRequest {
        name: take("name").unwrap_or_default(),
        email: take("email").unwrap_or_default(),
        return_to: take("return_to"),
        token: take("token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_private_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join(TOKEN_FILE);
        write_private(&path, "first").unwrap();
        write_private(&path, "second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(left, [TOKEN_FILE], "no temporary file stays behind");
    }
}
