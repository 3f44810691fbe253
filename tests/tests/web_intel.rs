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

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use tandem_tests::{TestServer, require_kernel_venv, run_client, workspace_root};

/// Two sign-ins, a kernel start and a handful of runs, on a small CI machine.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);

fn web_dir() -> PathBuf {
    workspace_root().join("client/web")
}

fn skip_browser() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    std::env::var("TANDEM_SKIP_BROWSER").is_ok_and(|v| v == "1") && !ci
}

fn chromium() -> Result<PathBuf> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.is_file() {
        bail!(
            "no Chromium at {} ($CHROMIUM): run scripts/test",
            chromium.display()
        );
    }
    let web = web_dir();
    if !web
        .join("node_modules/playwright-core/package.json")
        .is_file()
        || !web.join("dist/index.html").is_file()
    {
        bail!(
            "the web client is not set up in {}: run scripts/test (npm ci, npm run build)",
            web.display()
        );
    }
    Ok(chromium)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_docstrings_input_status_and_resources_in_chromium() {
    if skip_browser() {
        return;
    }
    let chromium = chromium().unwrap();
    require_kernel_venv().unwrap();
    let dist = web_dir().join("dist");
    let server = TestServer::start_with(&["--web-dir", dist.to_str().unwrap()])
        .await
        .unwrap();
    let screenshots = workspace_root().join("target/screenshots");
    let mut command = tokio::process::Command::new("node");
    command
        .arg(web_dir().join("e2e/intel.e2e.mjs"))
        .current_dir(web_dir())
        .env("TANDEM_URL", server.http_url())
        .env("TANDEM_SIGNIN_URL", server.sign_in_url().unwrap())
        .env("SCREENSHOT_DIR", &screenshots)
        .env("CHROMIUM", &chromium);
    let output = run_client(command, "intel.e2e.mjs", BROWSER_TIMEOUT)
        .await
        .unwrap();
    println!("{}", String::from_utf8_lossy(&output.stdout));
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
