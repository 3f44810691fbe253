//! The notebook page's Colab habits in a real browser against the real `tandem serve`:
//! `client/web/e2e/intel.e2e.mjs` (playwright-core on Debian's Chromium) completes names
//! before any run and from the kernel after one (`os.pa` + Tab lists `path`), shows
//! docstrings on Shift+Tab and on hover, answers `input()` under the cell (the runner types,
//! a collaborator sees it waits), shows ✓/✗ with elapsed time and who ran it (kept across a
//! reload), and the runtime's RAM and Disk. Screenshots land in `target/screenshots/ci15-*`.
//!
//! Needs what `web.rs` needs (`scripts/test` sets it up); `TANDEM_SKIP_BROWSER=1` (refused
//! when `CI=true`) skips it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tandem_tests::browser::{browser_setup, run_e2e, skip_browser, web_dir};
use tandem_tests::{TestServer, require_kernel_venv, workspace_root};

/// Two sign-ins, a kernel start and a handful of runs, on a small CI machine.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_docstrings_input_status_and_resources_in_chromium() {
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
        "intel.e2e.mjs",
        &server,
        &chromium,
        &screenshots,
        &[],
        BROWSER_TIMEOUT,
    )
    .await
    .unwrap();
    for name in [
        "completions",
        "input-prompt",
        "resources",
        "status-after-reload",
    ] {
        let file = screenshots.join(format!("ci15-{name}.png"));
        assert!(file.is_file(), "{} was written", file.display());
    }
}
