//! The sign-in page at `GET /signin`: a button per OAuth provider and, where it is enabled,
//! the local "your name and email" form. Plain server-rendered HTML, so signing in works
//! before (and without) the web client's scripts.

use axum::extract::{Query, State};
use axum::response::Html;
use axum::{Router, routing};
use serde::Deserialize;

use super::session::{local_sign_in_enabled, safe_return_to};
use crate::App;

/// The page's route.
pub fn routes() -> Router<App> {
    Router::new().route("/signin", routing::get(sign_in_page))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    #[serde(default)]
    return_to: Option<String>,
}

async fn sign_in_page(State(app): State<App>, Query(query): Query<PageQuery>) -> Html<String> {
    let return_to = safe_return_to(query.return_to.as_deref());
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
    if local_sign_in_enabled(&app) {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/auth/local\">\n\
             <input type=\"hidden\" name=\"return_to\" value=\"{}\">\n\
             <label>Name <input name=\"name\" autocomplete=\"name\" required maxlength=\"200\"></label>\n\
             <label>Email <input name=\"email\" type=\"email\" autocomplete=\"email\" required maxlength=\"200\"></label>\n\
             <button type=\"submit\">Sign in</button>\n</form>\n",
            escape(&return_to)
        ));
    }
    if body.is_empty() {
        body.push_str(
            "<p>No way to sign in is configured on this server. Configure an OAuth provider \
             (--auth-providers) or enable local sign-in (--local-sign-in on).</p>\n",
        );
    }
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign in · Tandem</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}}\
         label{{display:block;margin:.75rem 0}}input{{display:block;width:100%;padding:.4rem;font:inherit}}\
         button,.provider{{display:inline-block;padding:.5rem 1rem;font:inherit}}</style></head>\
         <body><h1>Sign in to Tandem</h1>\n{body}</body></html>\n"
    ))
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
