//! The security headers every response carries (tower-http's `SetResponseHeaderLayer`, so a
//! handler that sets its own value keeps it).
//!
//! - `Content-Security-Policy` [`APP_CSP`]: the client's scripts, styles, fonts and frames
//!   come from Tandem itself; nothing is inline but `style` attributes (KaTeX positions math
//!   with them, and they cannot run script) and, on the app's page, `<style>` elements with
//!   that page load's nonce (CodeMirror's); images may come from anywhere, as markdown links
//!   them; no plugins, no `<base>`, forms post only to Tandem, and only Tandem's own pages may
//!   frame it (clickjacking). Outputs' HTML runs in frames of [`OUTPUT_FRAME_CSP`] instead.
//! - `X-Frame-Options: SAMEORIGIN`, the same framing rule for browsers without CSP 2.
//! - `X-Content-Type-Options: nosniff`: nothing is run as a type it was not sent as.
//! - `Referrer-Policy: same-origin`: notebook ids are in page URLs and are their sharing
//!   links, so they never travel to the sites a notebook links to.

use axum::Router;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue};
use base64::Engine;
use sha2::{Digest, Sha256};
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy of the app's pages and of every other response.
pub const APP_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    style-src-attr 'unsafe-inline'; img-src * data: blob:; font-src 'self' data:; \
    connect-src 'self'; frame-src 'self'; worker-src 'self' blob:; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'self'";

/// The policy of the frame that outputs' HTML runs in (`/output-frame`): sandboxed whoever
/// loads it (scripts and popups, which stay sandboxed, on an opaque origin: no cookies, no
/// storage, nothing of Tandem's), while inside it the output may load and run what it likes,
/// as in Jupyter; only Tandem's pages may frame it.
pub const OUTPUT_FRAME_CSP: &str = "sandbox allow-scripts allow-popups; \
    default-src * data: blob: 'unsafe-inline' 'unsafe-eval'; frame-ancestors 'self'";

/// Adds the security headers to every response of `router` that does not set them itself.
pub fn apply<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let headers: [(HeaderName, &'static str); 4] = [
        (CONTENT_SECURITY_POLICY, APP_CSP),
        (X_FRAME_OPTIONS, "SAMEORIGIN"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "same-origin"),
    ];
    headers.into_iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

/// The placeholder in the client's `index.html` (on its script tag) that each page load
/// replaces with a fresh nonce.
pub const NONCE_PLACEHOLDER: &str = "__CSP_NONCE__";

/// [`APP_CSP`] that also lets one inline `<style>` element through, by its hash: for the
/// server-rendered pages (sign-in, "not built"), which carry their few rules inline.
pub fn csp_with_inline_style(style: &str) -> HeaderValue {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
    csp_with_style_source(&format!("'sha256-{hash}'"))
}

/// [`APP_CSP`] that also lets `<style>` elements carrying `nonce` through: for the app's
/// page, where CodeMirror writes its styles into one (`EditorView.cspNonce`).
pub fn csp_with_style_nonce(nonce: &str) -> HeaderValue {
    csp_with_style_source(&format!("'nonce-{nonce}'"))
}

fn csp_with_style_source(source: &str) -> HeaderValue {
    let policy = APP_CSP.replacen(
        "style-src 'self';",
        &format!("style-src 'self' {source};"),
        1,
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(APP_CSP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_policy_has_the_protections_it_promises() {
        for directive in [
            "script-src 'self';",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'self'",
        ] {
            assert!(APP_CSP.contains(directive), "{directive}");
        }
        assert!(!APP_CSP.contains("script-src 'self' 'unsafe"));
        assert!(HeaderValue::from_str(APP_CSP).is_ok());
        assert!(HeaderValue::from_str(OUTPUT_FRAME_CSP).is_ok());
    }

    #[test]
    fn an_inline_style_is_allowed_by_its_hash() {
        let csp = csp_with_inline_style("body{margin:0}");
        let csp = csp.to_str().unwrap();
        // echo -n 'body{margin:0}' | openssl dgst -sha256 -binary | base64
        let hash = "IAdwN3biDCQ3brrgp1m8kBEsPQYyqfREKOEfeoREopc=";
        assert!(
            csp.contains(&format!("style-src 'self' 'sha256-{hash}';")),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'self'"));
    }
}
