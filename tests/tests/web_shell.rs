//! Tandem's shell in a real browser against the real `tandem serve` (issue 15):
//! `client/web/e2e/shell.e2e.mjs` checks that the sign-in page is styled as the product (its
//! computed styles, with and without the printed link, its error, and a button with its mark
//! for each provider of a providers file: Google, GitHub, an OpenID Connect issuer), that the home page
//! searches, sorts (title, last edited, last opened), names owner and last editor, renames and
//! makes a copy with SVG icons, and never scrolls sideways at 1366, 1024 or 800 px (nor the
//! sign-in page on a phone), that a signed-in link viewer makes their own copy from the
//! notebook page, and that KaTeX (chunk, stylesheet, woff2 fonts) loads only once a notebook
//! shows math; all under the server's Content-Security-Policy (a violation fails the run).
//! Screenshots land in `target/screenshots/shell15-*.png`.
//!
//! Needs what `web.rs` needs (Chromium, node, `npm ci` and `npm run build` in `client/web`);
//! [`tandem_tests::browser`] says what is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tandem_tests::browser::{browser_setup, run_e2e, skip_browser, web_dir};
use tandem_tests::{TestServer, workspace_root};

/// Sign-ins and a dozen page loads on a small CI machine; no kernel starts.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);

/// Google, GitHub and an OpenID Connect issuer of the organisation's.
const PROVIDERS: &str = r#"
[[provider]]
name = "google"
kind = "google"
client_id = "tandem-test"
client_secret = "not-a-secret"

[[provider]]
name = "github"
kind = "github"
client_id = "tandem-test"
client_secret = "not-a-secret"

[[provider]]
name = "acme"
kind = "oidc"
label = "Acme SSO"
issuer = "https://sso.acme.invalid/realms/main"
client_id = "tandem-test"
client_secret = "not-a-secret"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_home_and_copies_in_chromium() {
    if skip_browser() {
        return;
    }
    let chromium = browser_setup().unwrap();
    let dist = web_dir().join("dist");
    // Three providers, for their buttons (nobody signs in with them here: no provider runs).
    let config = tempfile::tempdir().unwrap();
    let providers = config.path().join("providers.toml");
    std::fs::write(&providers, PROVIDERS).unwrap();
    let server = TestServer::start_with(&[
        "--web-dir",
        dist.to_str().unwrap(),
        "--auth-providers",
        providers.to_str().unwrap(),
        // Beside the providers (off by default once there are some): the people here sign in
        // with the printed link.
        "--local-sign-in",
        "on",
    ])
    .await
    .unwrap();
    let screenshots = workspace_root().join("target/screenshots");
    run_e2e(
        "shell.e2e.mjs",
        &server,
        &chromium,
        &screenshots,
        &[("EXPECT_PROVIDERS", "1")],
        BROWSER_TIMEOUT,
    )
    .await
    .unwrap();
    for name in [
        "signin-form",
        "home",
        "viewer-copy-opened",
        "math-on-demand",
    ] {
        let shot = screenshots.join(format!("shell15-{name}.png"));
        assert!(shot.is_file(), "{} is written", shot.display());
    }
}
