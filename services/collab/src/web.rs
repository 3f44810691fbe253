//! The web client's pages and assets, served from `--web-dir` (`client/web/dist`).
//!
//! [`headers`] has the security headers (CSP and the rest) that every response carries.
//!
//! The client is a single-page app: every page (`/`, `/home`, `/n/{id}`) answers the same
//! `index.html`, which reads the path and draws the page. `index.html` is sent with
//! `Cache-Control: no-cache`, so a new build shows on the next load; the bundles it names live
//! under `/assets/` with a content hash in their names (esbuild's `[name]-[hash]`), so they
//! are cached for a year. The build writes a brotli (`.br`) and a gzip (`.gz`) copy beside each
//! asset; a browser that accepts one gets it (`Content-Encoding`, `Vary: Accept-Encoding`),
//! with no compression work per request. Files are read from disk on every request: the
//! directory can be rebuilt while the server runs. When it is missing, the pages answer 503 saying how to
//! build it; the API and WebSocket do not depend on it.

pub mod headers;

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, VARY,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Router, routing};
use tower_http::services::ServeFile;

use crate::{App, ids};

/// The page outputs' HTML runs in, in `--web-dir` (`client/web/src/output-frame.html`).
const OUTPUT_FRAME: &str = "output-frame.html";

/// Hashed asset names never change content, so browsers may keep them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The pages and assets of the web client.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/", routing::get(index))
        .route("/home", routing::get(index))
        .route("/n/{id}", routing::get(index))
        .route("/output-frame", routing::get(output_frame))
        .route("/assets/{*path}", routing::get(asset))
        .route("/favicon.ico", routing::get(favicon))
}

/// Browsers ask for `/favicon.ico` on every page, the server-rendered ones included.
async fn favicon() -> Response {
    const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
        <rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#1a73e8\"/>\
        <text x=\"8\" y=\"12\" font-size=\"11\" text-anchor=\"middle\" fill=\"white\" \
        font-family=\"sans-serif\">T</text></svg>";
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("image/svg+xml")),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        ICON,
    )
        .into_response()
}

async fn index(State(app): State<App>) -> Response {
    let path = app.config.web_dir.join("index.html");
    match tokio::fs::read_to_string(&path).await {
        Ok(page) => {
            // A fresh nonce per page load lets CodeMirror's <style> element in, and nothing
            // an attacker could inject.
            let nonce = ids::random_id();
            let page = page.replace(headers::NONCE_PLACEHOLDER, &nonce);
            let mut response = page.into_response();
            let headers = response.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(
                CONTENT_SECURITY_POLICY,
                headers::csp_with_style_nonce(&nonce),
            );
            response
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "web client not built");
            not_built(&app.config.web_dir)
        }
    }
}

/// `GET /output-frame`: the empty page an output's HTML is written into (by the notebook
/// page, through `postMessage`), under a policy of its own: sandboxed on an opaque origin
/// even when opened directly, and free inside to run and load what the output needs.
async fn output_frame(State(app): State<App>) -> Response {
    let path = app.config.web_dir.join(OUTPUT_FRAME);
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return not_built(&app.config.web_dir);
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(headers::OUTPUT_FRAME_CSP),
    );
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `GET /assets/{path}`: a built asset, as the build's precompressed `.br` or `.gz` beside it
/// when the browser accepts that encoding (tower-http's `ServeFile`, which also answers
/// `Range` and `If-Modified-Since`), else as is.
async fn asset(
    State(app): State<App>,
    UrlPath(path): UrlPath<String>,
    request: Request,
) -> Response {
    let Some(file) = asset_path(&app.config.web_dir, &path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Only the files themselves: a folder (or the precompressed copies' absence) is not
    // something `ServeFile` should be asked about.
    if !tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_file()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let served = ServeFile::new(&file)
        .precompressed_br()
        .precompressed_gzip()
        .try_call(request)
        .await;
    let mut response = match served {
        Ok(response) => response.map(Body::new),
        Err(error) => {
            tracing::warn!(path = %file.display(), %error, "cannot read an asset");
            return StatusCode::NOT_FOUND.into_response();
        }
    };
    let headers = response.headers_mut();
    // Caches keep one copy per encoding.
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if response.status().is_success() {
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(&file)));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    }
    response
}

/// The file under `<web_dir>/assets` that a URL path names, or `None` for anything that
/// could step outside it (`..`, absolute paths, backslashes).
fn asset_path(web_dir: &Path, path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.contains('\\') {
        return None;
    }
    let relative = Path::new(path);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(web_dir.join("assets").join(relative))
}

/// The `Content-Type` of a built asset, by extension.
fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        _ => "application/octet-stream",
    }
}

/// The rules of the "not built" page, allowed by their hash in its CSP.
const NOT_BUILT_STYLE: &str = "body{font:16px system-ui,sans-serif;max-width:40rem;margin:4rem auto;\
    padding:0 1rem}code{background:#f1f3f4;padding:.1rem .3rem}";

/// The 503 page shown while the web client has not been built.
fn not_built(web_dir: &Path) -> Response {
    let dir = escape(&web_dir.display().to_string());
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Web client not built · Tandem</title>\
         <style>{NOT_BUILT_STYLE}</style></head><body>\
         <h1>The web client is not built</h1>\
         <p>Tandem serves the browser client from <code>{dir}</code> (<code>--web-dir</code>, \
         <code>TANDEM_WEB_DIR</code>), and there is no <code>index.html</code> there.</p>\
         <p>Build it with <code>scripts/run</code>, which does it for you, or by hand: \
         <code>cd client/web &amp;&amp; npm ci &amp;&amp; npm run build</code>. \
         The HTTP API and WebSocket work without it.</p></body></html>\n"
    );
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        headers::csp_with_inline_style(NOT_BUILT_STYLE),
    );
    response
}

/// Escapes text for HTML content.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_paths_stay_inside_the_assets_folder() {
        let dir = Path::new("/srv/web");
        assert_eq!(
            asset_path(dir, "app-1234.js"),
            Some(PathBuf::from("/srv/web/assets/app-1234.js"))
        );
        assert_eq!(
            asset_path(dir, "fonts/KaTeX_Main.woff2"),
            Some(PathBuf::from("/srv/web/assets/fonts/KaTeX_Main.woff2"))
        );
        assert_eq!(asset_path(dir, "../index.html"), None);
        assert_eq!(asset_path(dir, "a/../../etc/passwd"), None);
        assert_eq!(asset_path(dir, "/etc/passwd"), None);
        assert_eq!(asset_path(dir, "a\\..\\b"), None);
        assert_eq!(asset_path(dir, ""), None);
    }

    #[test]
    fn content_types_follow_extensions() {
        assert_eq!(
            content_type(Path::new("a.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a.woff2")), "font/woff2");
        assert_eq!(content_type(Path::new("a")), "application/octet-stream");
    }

    #[test]
    fn the_missing_build_page_says_how_to_build() {
        let response = not_built(Path::new("client/web/dist"));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
