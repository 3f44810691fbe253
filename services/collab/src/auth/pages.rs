//! The sign-in page at `GET /signin`: a button per OAuth provider and, where local sign-in is
//! on, the "your name and email" form, shown only to a browser that holds the server's sign-in
//! token ([`super::local`]); any other browser is told where the sign-in link is. Plain
//! server-rendered HTML, so signing in works before (and without) the web client's scripts,
//! styled as the product: the web client's design tokens (`client/web/src/tokens.css`) and
//! `signin.css`, inline and let through by their hash in the page's Content-Security-Policy.
//! A failed OAuth sign-in comes back here too, with its reason shown ([`failure`]).

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
    let local = local_state(&app, &parts).await?;
    Ok(respond(StatusCode::OK, render(&app, &return_to, local)))
}

/// What this browser may see of local sign-in: the form once it holds the token.
async fn local_state(app: &App, parts: &Parts) -> Result<Local, ApiError> {
    if app.local_sign_in.is_none() {
        return Ok(Local::Off);
    }
    Ok(
        match TokenCheck::of(app, local::cookie_token(parts).as_deref()).await? {
            TokenCheck::Valid => Local::Form,
            check => Local::NeedsToken(check),
        },
    )
}

/// Whether the request asks for HTML first (a browser's navigation does: `Accept:
/// text/html,…`), so an error is better shown as a page than as JSON.
pub fn wants_html(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept
                .split(',')
                .next()
                .is_some_and(|first| first.trim().starts_with("text/html"))
        })
}

/// The sign-in page again, for a sign-in that failed (an OAuth callback's error): its status
/// and reason, styled, with the ways to try again.
pub async fn failure(app: &App, parts: &Parts, error: ApiError) -> Response {
    let local = local_state(app, parts).await.unwrap_or(Local::Off);
    let page = render_page(app, "/home", local, Some(&error.message));
    respond(error.status, page)
}

/// The page's rules: the web client's design tokens, then the page's own. Inline, so the page
/// needs nothing else, and let through by their hash in its Content-Security-Policy.
const STYLE: &str = concat!(
    include_str!("../../../../client/web/src/tokens.css"),
    include_str!("signin.css")
);

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
    render_page(app, return_to, local, None)
}

/// The sign-in page's HTML, with `error` (why the last attempt failed) above the choices.
fn render_page(app: &App, return_to: &str, local: Local, error: Option<&str>) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    let mut body = String::new();
    if let Some(error) = error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>\n",
            escape(&sentence(error))
        ));
    }
    let providers = app.providers.list();
    if !providers.is_empty() {
        body.push_str("<ul class=\"providers\">\n");
        for provider in &providers {
            body.push_str(&format!(
                "<li><a class=\"provider\" data-kind=\"{}\" href=\"{}?return_to={}\">{}\
                 <span>Sign in with {}</span></a></li>\n",
                provider.kind,
                escape(&provider.url),
                escape(&encoded),
                provider_icon(provider.kind),
                escape(&provider.label)
            ));
        }
        body.push_str("</ul>\n");
    }
    let or = if providers.is_empty() {
        ""
    } else {
        "<p class=\"divider\">or</p>\n"
    };
    match local {
        Local::Off => {}
        Local::Form => body.push_str(&format!(
            "{or}<form method=\"post\" action=\"/auth/local\">\n\
             <input type=\"hidden\" name=\"return_to\" value=\"{}\">\n\
             <label>Name <input name=\"name\" autocomplete=\"name\" required maxlength=\"200\"></label>\n\
             <label>Email <input name=\"email\" type=\"email\" autocomplete=\"email\" required maxlength=\"200\"></label>\n\
             <button type=\"submit\">Sign in</button>\n</form>\n",
            escape(return_to)
        )),
        Local::NeedsToken(check) => {
            body.push_str(or);
            if check == TokenCheck::Invalid {
                body.push_str(
                    "<p class=\"error\" role=\"alert\">That sign-in link is not valid: Tandem makes \
                     a new one each time it starts. Use the one it printed last.</p>\n",
                );
            }
            body.push_str(&format!(
                "<p class=\"local\">To sign in with your name and email, open the sign-in link \
                 Tandem printed when it started:</p>\n\
                 <pre>Sign in at http://…/signin?token=…</pre>\n\
                 <p class=\"note\">The token is also in the file <code>{TOKEN_FILE}</code> in the \
                 server's data directory (<code>--data</code>, <code>./tandem-data</code> by \
                 default): open <code>/signin?token=</code> followed by it.</p>\n"
            ));
        }
    }
    if providers.is_empty() && local == Local::Off {
        body.push_str(
            "<p class=\"note\">No way to sign in is configured on this server. Configure an OAuth \
             provider (--auth-providers) or enable local sign-in (--local-sign-in on).</p>\n",
        );
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"same-origin\">\
         <title>Sign in · Tandem</title><style>{STYLE}</style></head>\
         <body><header class=\"topbar\"><a class=\"brand\" href=\"/\">\
         <span class=\"logo\" aria-hidden=\"true\">T</span>Tandem</a></header>\
         <main><div class=\"card\"><h1>Sign in</h1>\
         <p class=\"lead\">to continue to Tandem</p>\n{body}</div></main></body></html>\n"
    )
}

/// An error message as a sentence: capitalized, ending with a full stop.
fn sentence(message: &str) -> String {
    let mut chars = message.trim().chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// The mark on a provider's button: Google's "G", GitHub's octocat, a key for other OpenID
/// Connect issuers. Inline SVG with presentation attributes only (no `style`), so the page's
/// policy needs nothing more.
fn provider_icon(kind: &str) -> &'static str {
    match kind {
        "google" => {
            "<svg width=\"18\" height=\"18\" viewBox=\"0 0 48 48\" aria-hidden=\"true\">\
             <path fill=\"#EA4335\" d=\"M24 9.5c3.54 0 6.71 1.22 9.21 3.6l6.85-6.85C35.9 2.38 30.47 0 24 0 14.62 0 6.51 5.38 2.56 13.22l7.98 6.19C12.43 13.72 17.74 9.5 24 9.5z\"/>\
             <path fill=\"#4285F4\" d=\"M46.98 24.55c0-1.57-.15-3.09-.38-4.55H24v9.02h12.94c-.58 2.96-2.26 5.48-4.78 7.18l7.73 6c4.51-4.18 7.09-10.36 7.09-17.65z\"/>\
             <path fill=\"#FBBC05\" d=\"M10.53 28.59A14.5 14.5 0 0 1 9.5 24c0-1.59.28-3.14.76-4.59l-7.98-6.19A23.94 23.94 0 0 0 0 24c0 3.77.9 7.35 2.56 10.78l7.97-6.19z\"/>\
             <path fill=\"#34A853\" d=\"M24 48c6.48 0 11.93-2.13 15.89-5.81l-7.73-6c-2.15 1.45-4.92 2.3-8.16 2.3-6.26 0-11.57-4.22-13.47-9.91l-7.98 6.19C6.51 42.62 14.62 48 24 48z\"/></svg>"
        }
        "github" => {
            "<svg width=\"18\" height=\"18\" viewBox=\"0 0 16 16\" aria-hidden=\"true\">\
             <path fill=\"#24292f\" d=\"M8 0C3.58 0 0 3.58 0 8c0 3.54 2.29 6.53 5.47 7.59.4.07.55-.17.55-.38 0-.19-.01-.82-.01-1.49-2.01.37-2.53-.49-2.69-.94-.09-.23-.48-.94-.82-1.13-.28-.15-.68-.52-.01-.53.63-.01 1.08.58 1.23.82.72 1.21 1.87.87 2.33.66.07-.52.28-.87.51-1.07-1.78-.2-3.64-.89-3.64-3.95 0-.87.31-1.59.82-2.15-.08-.2-.36-1.02.08-2.12 0 0 .67-.21 2.2.82.64-.18 1.32-.27 2-.27.68 0 1.36.09 2 .27 1.53-1.04 2.2-.82 2.2-.82.44 1.1.16 1.92.08 2.12.51.56.82 1.27.82 2.15 0 3.07-1.87 3.75-3.65 3.95.29.25.54.73.54 1.48 0 1.07-.01 1.93-.01 2.2 0 .21.15.46.55.38A8.01 8.01 0 0 0 16 8c0-4.42-3.58-8-8-8z\"/></svg>"
        }
        _ => {
            "<svg width=\"18\" height=\"18\" viewBox=\"0 0 16 16\" aria-hidden=\"true\">\
             <path fill=\"none\" stroke=\"#5f6368\" stroke-width=\"1.4\" stroke-linecap=\"round\" \
             d=\"M10 2.5a3.5 3.5 0 1 1-2.9 5.46L2.5 12.5V14h2v-1.5h1.5V11h1.5l1.2-1.2A3.5 3.5 0 0 1 10 2.5zM10.8 5.2h.01\"/></svg>"
        }
    }
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
    fn errors_read_as_sentences() {
        assert_eq!(
            sentence("this sign-in is unknown, expired or already finished; start again"),
            "This sign-in is unknown, expired or already finished; start again."
        );
        assert_eq!(sentence("Done!"), "Done!");
        assert_eq!(sentence(" "), "");
    }

    #[test]
    fn the_style_carries_the_client_tokens() {
        assert!(STYLE.contains("--accent:"), "tokens.css is embedded");
        assert!(STYLE.contains(".provider"), "signin.css is embedded");
        // Nothing the policy would need beyond the style's hash.
        assert!(!STYLE.contains("url("));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
