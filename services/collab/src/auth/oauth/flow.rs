//! The two routes of a sign-in: `start` sends the browser to the provider, `callback` takes
//! its answer.

use axum::extract::{Path, State};
use axum::http::header::{HOST, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};

use super::provider::exchange_error;
use super::{BINDING_COOKIE, LOGIN_TTL, invalid_state, oauth_failed};
use crate::App;
use crate::auth::session;
use crate::error::ApiError;
use crate::ids;
use crate::store::PendingLogin;

/// `GET /auth/oauth/{provider}/start?return_to=/path`: sends the browser to the provider.
#[tracing::instrument(skip_all, fields(provider = %name))]
pub(super) async fn start(
    State(app): State<App>,
    Path(name): Path<String>,
    parts: Parts,
) -> Result<Response, ApiError> {
    app.limits.sign_in_attempt(app.limits.client(&parts))?;
    let providers = &app.providers;
    let provider = providers.get(&name)?;
    let client = provider
        .client(&providers.http, redirect_uri(&app, &parts, &name)?)
        .await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = ids::random_id();
    let mut request = client
        .authorize_url(|| CsrfToken::new(state.clone()))
        .add_scopes(provider.settings.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge);
    let nonce = if provider.issuer.is_some() {
        let nonce = ids::random_id();
        request = request.add_extra_param("nonce", nonce.clone());
        nonce
    } else {
        String::new()
    };
    let (url, _) = request.url();
    let login = PendingLogin {
        provider: name.clone(),
        pkce_verifier: verifier.secret().clone(),
        nonce,
        return_to: header_safe(&session::safe_return_to(
            app.config.auth.public_url.as_ref(),
            query_param(&parts, "return_to").as_deref(),
        )),
        expires_at_ms: ids::now_ms().saturating_add(LOGIN_TTL.as_millis() as i64),
    };
    app.store
        .insert_login(&ids::token_hash(&state), &login)
        .await?;
    let location = HeaderValue::from_str(url.as_str()).map_err(ApiError::internal)?;
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response();
    let binding = binding_cookie(&app, &state, LOGIN_TTL.as_secs())?;
    response.headers_mut().append(SET_COOKIE, binding);
    Ok(response)
}

/// `GET /auth/oauth/{provider}/callback`: where the provider sends the browser back. The
/// binding cookie is cleared once its attempt is answered, whatever the outcome (a request
/// for another state leaves it, so a forged link cannot spoil a sign-in in progress).
pub(super) async fn callback(
    State(app): State<App>,
    Path(name): Path<String>,
    parts: Parts,
) -> Response {
    // A browser (which asks for HTML) sees a failure on the sign-in page, with its reason;
    // anything else gets the API's JSON error.
    let mut response = match finish(&app, &name, &parts).await {
        Ok(response) => response,
        Err(error) if crate::auth::pages::wants_html(&parts.headers) => {
            crate::auth::pages::failure(&app, &parts, error).await
        }
        Err(error) => error.into_response(),
    };
    let state = query_param(&parts, "state");
    if state.is_some()
        && session::cookie(&parts.headers, BINDING_COOKIE) == state
        && let Ok(clear) = binding_cookie(&app, "", 0)
    {
        response.headers_mut().append(SET_COOKIE, clear);
    }
    response
}

#[tracing::instrument(skip_all, fields(provider = %name))]
async fn finish(app: &App, name: &str, parts: &Parts) -> Result<Response, ApiError> {
    app.limits.sign_in_attempt(app.limits.client(parts))?;
    let providers = &app.providers;
    let provider = providers.get(name)?;
    let label = &provider.settings.label;
    let state = query_param(parts, "state")
        .ok_or_else(|| invalid_state("the provider's answer has no state; start again"))?;
    let state_hash = ids::token_hash(&state);
    // Taken before anything else is checked, so a state is good for one try whatever happens.
    let login = app.store.take_login(&state_hash).await?.ok_or_else(|| {
        invalid_state("this sign-in is unknown, expired or already finished; start again")
    })?;
    if login.provider != name {
        return Err(invalid_state(
            "this sign-in was started with another provider; start again",
        ));
    }
    let bound = session::cookie(&parts.headers, BINDING_COOKIE).map(|s| ids::token_hash(&s));
    if bound.as_deref() != Some(state_hash.as_str()) {
        return Err(invalid_state(
            "this sign-in was started in another browser (or its cookie was lost); start again",
        ));
    }
    if let Some(error) = query_param(parts, "error") {
        let detail = query_param(parts, "error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        tracing::info!(error = %error, "the provider refused the sign-in");
        return Err(ApiError::bad_request(
            "provider_error",
            format!("{label} did not sign you in ({error}{detail})"),
        ));
    }
    // RFC 9207: an issuer that names itself in the answer must be the one asked (a mix-up
    // attack swaps in an answer from another provider).
    if let (Some(iss), Some(issuer)) = (query_param(parts, "iss"), &provider.issuer)
        && !issuer.accepts(&iss)
    {
        return Err(oauth_failed(format!(
            "the answer names the issuer {iss:?}, not {label}'s; start again"
        )));
    }
    let code = query_param(parts, "code")
        .ok_or_else(|| oauth_failed("the provider's answer has no code; start again"))?;

    let client = provider
        .client(&providers.http, redirect_uri(app, parts, name)?)
        .await?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier))
        .request_async(&providers.http)
        .await
        .map_err(|err| exchange_error(provider, err))?;
    let identity = provider
        .identity(&providers.http, &tokens, &login.nonce)
        .await?;
    app.limits.sign_in_account(&identity.email)?;
    let user = app
        .store
        .upsert_user(&identity.email, &identity.name)
        .await?;
    let cookies = session::start(app, &user).await?;
    tracing::info!(user_id = %user.id, "signed in with an OAuth provider");
    let to = session::safe_return_to(app.config.auth.public_url.as_ref(), Some(&login.return_to));
    let location = HeaderValue::from_str(&to).map_err(ApiError::internal)?;
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response();
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `<public URL or http://<Host>>/auth/oauth/<name>/callback`.
fn redirect_uri(app: &App, parts: &Parts, name: &str) -> Result<RedirectUrl, ApiError> {
    let base = match &app.config.auth.public_url {
        Some(url) => url.as_str().trim_end_matches('/').to_owned(),
        None => request_origin(parts).unwrap_or_else(|| format!("http://{}", app.config.listen)),
    };
    RedirectUrl::new(format!("{base}/auth/oauth/{name}/callback")).map_err(ApiError::internal)
}

/// `http://<Host>` when the request's `Host` is a plain host and port.
fn request_origin(parts: &Parts) -> Option<String> {
    let host = parts.headers.get(HOST)?.to_str().ok()?;
    let url = url::Url::parse(&format!("http://{host}")).ok()?;
    let plain = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    plain.then(|| url.origin().ascii_serialization())
}

/// `path` with every byte that may not stand in a `Location` header (controls, spaces,
/// non-ASCII) percent-encoded, as a browser would have sent it.
fn header_safe(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_graphic() {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn query_param(parts: &Parts, name: &str) -> Option<String> {
    let query = parts.uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The binding cookie: HttpOnly, SameSite=Lax (sent on the provider's redirect back, a
/// top-level navigation), only on the OAuth paths, Secure behind an https public URL.
fn binding_cookie(app: &App, state: &str, max_age: u64) -> Result<HeaderValue, ApiError> {
    let mut cookie = format!(
        "{BINDING_COOKIE}={state}; Path=/auth/oauth/; Max-Age={max_age}; SameSite=Lax; HttpOnly"
    );
    let https = app
        .config
        .auth
        .public_url
        .as_ref()
        .is_some_and(|url| url.scheme() == "https");
    if https {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(host: &str, uri: &str) -> Parts {
        Request::builder()
            .uri(uri)
            .header(HOST, host)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn the_request_origin_comes_from_a_plain_host_only() {
        let p = |host| request_origin(&parts(host, "/"));
        assert_eq!(
            p("127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            p("Tandem.Example").as_deref(),
            Some("http://tandem.example")
        );
        assert_eq!(p("evil.example/path"), None);
        assert_eq!(p("user@evil.example"), None);
        assert_eq!(p("a b"), None);
    }

    #[test]
    fn return_paths_are_made_fit_for_a_location_header() {
        assert_eq!(header_safe("/n/abc?x=1"), "/n/abc?x=1");
        assert_eq!(
            header_safe("/a b\r\nSet-Cookie: x"),
            "/a%20b%0D%0ASet-Cookie:%20x"
        );
        assert_eq!(header_safe("/ü"), "/%C3%BC");
        assert!(HeaderValue::from_str(&header_safe("/ü\u{7f}")).is_ok());
    }

    #[test]
    fn query_parameters_are_decoded() {
        let p = parts("x", "/cb?code=a%2Fb&state=s+t&error_description=no%20way");
        assert_eq!(query_param(&p, "code").as_deref(), Some("a/b"));
        assert_eq!(query_param(&p, "state").as_deref(), Some("s t"));
        assert_eq!(query_param(&p, "missing"), None);
    }
}
