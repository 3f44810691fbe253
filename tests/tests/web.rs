//! The web client in a real browser against the real `tandem serve`.
//!
//! `client/web/e2e/notebook.e2e.mjs` drives Debian's Chromium with playwright-core: without
//! the sign-in link the server printed, the sign-in page offers no form; with it, two people
//! sign in (two browser contexts), open one notebook, see a rename live, type into the same
//! cell at once and converge; one types a line and runs the cell at once, and both see the
//! output of every line, `[1]` and "run by"; both see whose runtime it is ("Runtime: you",
//! "Runtime: Ada Lovelace"), the other is asked once before his first run in it, and is refused
//! with the server's reason while the owner's share dialog keeps editors out of her runtime; a
//! markdown cell renders with math; an idle-shutdown warning shows; a running cell is
//! interrupted; a viewer sees changes live but cannot type; a commenter comments on a range,
//! the owner sees it marked, replies and resolves; a named version is previewed, compared and restored while another person stays
//! connected; an `.ipynb` uploads and downloads unchanged and its owner hands it over; a
//! 500-cell notebook opens in under 2 s. Screenshots of each state land in
//! `target/web-screenshots/`. All of it under the server's Content-Security-Policy: a
//! violation any page reports fails the run. It also plays issue 13's browser attacks: DNS
//! rebinding (a name Chromium maps to 127.0.0.1) gets 421, another page cannot frame
//! Tandem, `java&#x09;script:` markdown links lose their URL, and an HTML output's popup
//! stays sandboxed.
//!
//! `web_hardening.rs` has the HTTP side of those attacks.
//!
//! Needs `node`, Chromium (`/usr/bin/chromium`, or `$CHROMIUM`), `npm ci` and `npm run build`
//! in `client/web`: `scripts/test` sets all of that up. Missing pieces fail the test with the
//! fix, never skip it; only `TANDEM_SKIP_BROWSER=1` (refused when `CI=true`) skips it, for a
//! quick local loop on a machine without a browser.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tandem_tests::browser::{browser_setup, run_e2e, skip_browser, web_dir};
use tandem_tests::{TestServer, require_kernel_venv, workspace_root};

/// Sign-ins, a kernel start, uploads and a 500-cell notebook, on a small CI machine.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_edit_run_and_share_a_notebook_in_chromium() {
    if skip_browser() {
        return;
    }
    let chromium = browser_setup().unwrap();
    require_kernel_venv().unwrap();
    let dist = web_dir().join("dist");
    // Idle kernels shut down after 9 minutes, inside the page's 10-minute warning: the
    // warning shows as soon as the first run ends.
    let server = TestServer::start_with(&[
        "--web-dir",
        dist.to_str().unwrap(),
        "--kernel-idle-timeout",
        "9m",
    ])
    .await
    .unwrap();
    let screenshots = workspace_root().join("target/web-screenshots");
    run_e2e(
        "notebook.e2e.mjs",
        &server,
        &chromium,
        &screenshots,
        &[],
        BROWSER_TIMEOUT,
    )
    .await
    .unwrap();
    assert!(
        screenshots.join("04-output-seen-by-bob.png").is_file(),
        "screenshots are written to {}",
        screenshots.display()
    );
}

/// The notebook page's shell (issue 15), in `client/web/e2e/page.e2e.mjs`: layout at four
/// window sizes (no horizontal overflow, a one-row header that never covers the toolbar, cell
/// controls off the code, wide editors at 800 px), Colab's Ctrl+M chords, menus, palette and
/// shortcut sheet, a 2000-line output in a scroll box cleared for both people, undoing a
/// deletion, the offline state, the table of contents and sections, forms' bare titles,
/// caret labels, find, dark mode and drag to reorder. Screenshots land in
/// `target/screenshots/page15-*.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notebook_page_shell_in_chromium() {
    if skip_browser() {
        return;
    }
    let chromium = browser_setup().unwrap();
    require_kernel_venv().unwrap();
    let dist = web_dir().join("dist");
    let server = TestServer::start_with(&["--web-dir", dist.to_str().unwrap()])
        .await
        .unwrap();
    let screenshots = workspace_root().join("target/screenshots");
    run_e2e(
        "page.e2e.mjs",
        &server,
        &chromium,
        &screenshots,
        &[],
        BROWSER_TIMEOUT,
    )
    .await
    .unwrap();
    assert!(
        screenshots.join("page15-viewport-800x700.png").is_file(),
        "screenshots are written to {}",
        screenshots.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_say_how_to_build_the_client_when_it_is_missing() {
    let missing = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&["--web-dir", missing.path().to_str().unwrap()])
        .await
        .unwrap();
    let http = reqwest::Client::new();
    for path in ["/", "/home", "/n/some-notebook"] {
        let response = http
            .get(format!("{}{path}", server.http_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains("npm run build"), "{path}: {body}");
    }
    // The API does not depend on the client.
    let health = http
        .get(format!("{}/healthz", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Once built, the same server serves it: index.html uncached, hashed assets for a year,
    // and nothing outside the assets folder.
    std::fs::create_dir_all(missing.path().join("assets")).unwrap();
    std::fs::write(
        missing.path().join("index.html"),
        "<!doctype html><title>t</title>",
    )
    .unwrap();
    std::fs::write(missing.path().join("assets/app-X1.js"), "export {}").unwrap();
    let index = http
        .get(format!("{}/n/abc", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["cache-control"], "no-cache");
    let asset = http
        .get(format!("{}/assets/app-X1.js", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
    assert!(
        asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let escape = http
        .get(format!("{}/assets/..%2findex.html", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), 404);
}
