//! The sign-in page at `GET /signin`: a button per OAuth provider and, where local sign-in is
//! on, the "your name and email" form, shown only to a browser that holds the server's sign-in
//! token ([`super::local`]); any other browser is told where the sign-in link is. Plain
//! server-rendered HTML, so signing in works before (and without) the web client's scripts.

use axum::extract::{Query, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Router, routing};
use serde::Deserialize;

use super::local::{self, TOKEN_FILE, TokenCheck};
use super::session::safe_return_to;
use crate::App;
use crate::error::ApiError;

/// The page's route.
pub fn routes() -> Router<App> {
    Router::new().route("/signin", routing::get(sign_in_page))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    #[serde(default)]
    return_to: Option<String>,
    /// The local sign-in token, from the link the server printed.
    #[serde(default)]
    token: Option<String>,
}

/// What the page shows of local sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// Nothing: local sign-in is off.
    Off,
    /// The form: the browser holds a valid sign-in token.
    Form,
    /// Where the sign-in link is, after a missing or wrong token.
    NeedsToken(TokenCheck),
}

async fn sign_in_page(
    State(app): State<App>,
    Query(query): Query<PageQuery>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let return_to = safe_return_to(
        app.config.auth.public_url.as_ref(),
        query.return_to.as_deref(),
    );
    if app.local_sign_in.is_none() {
        return Ok(respond(
            StatusCode::OK,
            render(&app, &return_to, Local::Off),
        ));
    }
    if let Some(token) = query.token.as_deref() {
        let check = TokenCheck::of(&app, Some(token)).await?;
        if check != TokenCheck::Valid {
            app.limits.token_failure(app.limits.client(&parts))?;
            let page = render(&app, &return_to, Local::NeedsToken(check));
            return Ok(respond(StatusCode::FORBIDDEN, page));
        }
        // The token moves into a cookie and out of the address bar and the history.
        let encoded: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        let location = HeaderValue::from_str(&format!("/signin?return_to={encoded}"))
            .map_err(ApiError::internal)?;
        let mut response = (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response();
        response
            .headers_mut()
            .append(SET_COOKIE, local::token_cookie(&app, token)?);
        return Ok(response);
    }
    let local = match TokenCheck::of(&app, local::cookie_token(&parts).as_deref()).await? {
        TokenCheck::Valid => Local::Form,
        check => Local::NeedsToken(check),
    };
    Ok(respond(StatusCode::OK, render(&app, &return_to, local)))
}

/// The page's rules, inline so the page needs nothing else, and let through by their hash in
/// its Content-Security-Policy.
const STYLE: &str = "body{font:16px system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}\
    label{display:block;margin:.75rem 0}input{display:block;width:100%;padding:.4rem;font:inherit}\
    button,.provider{display:inline-block;padding:.5rem 1rem;font:inherit}\
    pre{white-space:pre-wrap;background:#f4f4f4;padding:.5rem}.error{color:#b00020}";

/// A rendered sign-in page as a response, with a policy that lets its inline style through.
pub fn respond(status: StatusCode, page: String) -> Response {
    let mut response = (status, Html(page)).into_response();
    response.headers_mut().insert(
        CONTENT_SECURITY_POLICY,
        crate::web::headers::csp_with_inline_style(STYLE),
    );
    response
}

/// The sign-in page's HTML.
pub fn render(app: &App, return_to: &str, local: Local) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    let mut body = String::new();
    for provider in app.providers.list() {
        body.push_str(&format!(
            "<p><a class=\"provider\" href=\"{}?return_to={}\">Sign in with {}</a></p>\n",
            escape(&provider.url),
            escape(&encoded),
            escape(&provider.label)
        ));
    }
    match local {
        Local::Off => {}
        Local::Form => body.push_str(&format!(
            "<form method=\"post\" action=\"/auth/local\">\n\
             <input type=\"hidden\" name=\"return_to\" value=\"{}\">\n\
             <label>Name <input name=\"name\" autocomplete=\"name\" required maxlength=\"200\"></label>\n\
             <label>Email <input name=\"email\" type=\"email\" autocomplete=\"email\" required maxlength=\"200\"></label>\n\
             <button type=\"submit\">Sign in</button>\n</form>\n",
            escape(return_to)
        )),
        Local::NeedsToken(check) => {
            if check == TokenCheck::Invalid {
                body.push_str(
                    "<p class=\"error\">That sign-in link is not valid: Tandem makes a new one \
                     each time it starts. Use the one it printed last.</p>\n",
                );
            }
            body.push_str(&format!(
                "<p class=\"local\">To sign in with your name and email, open the sign-in link \
                 Tandem printed when it started:</p>\n\
                 <pre>Sign in at http://…/signin?token=…</pre>\n\
                 <p>The token is also in the file <code>{TOKEN_FILE}</code> in the server's data \
                 directory (<code>--data</code>, <code>./tandem-data</code> by default): open \
                 <code>/signin?token=</code> followed by it.</p>\n"
            ));
        }
    }
    if body.is_empty() {
        body.push_str(
            "<p>No way to sign in is configured on this server. Configure an OAuth provider \
             (--auth-providers) or enable local sign-in (--local-sign-in on).</p>\n",
        );
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign in · Tandem</title><style>{STYLE}</style></head>\
         <body><h1>Sign in to Tandem</h1>\n{body}</body></html>\n"
    )
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
