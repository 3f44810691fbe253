//! What the browser tests need: Chromium, node, playwright-core and the built web client
//! (`client/web`), or the command that sets them up. Missing pieces fail with the fix, never
//! skip; only `TANDEM_SKIP_BROWSER=1` (refused when `CI=true`) skips, for a quick local loop.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::{TestServer, run_client, workspace_root};

/// The web client's folder, `client/web`.
pub fn web_dir() -> PathBuf {
    workspace_root().join("client/web")
}

/// Whether to skip a browser test: only when asked to, and never in CI.
pub fn skip_browser() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let asked = std::env::var("TANDEM_SKIP_BROWSER").is_ok_and(|v| v == "1");
    if asked && !ci {
        eprintln!("TANDEM_SKIP_BROWSER=1: skipping the browser test");
        return true;
    }
    false
}

/// Chromium (`$CHROMIUM`, else Debian's `/usr/bin/chromium`), after checking that node,
/// playwright-core and the built client are there too.
pub fn browser_setup() -> Result<PathBuf> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.is_file() {
        bail!(
            "no Chromium at {} ($CHROMIUM): run scripts/test, which installs Debian's \
             `chromium` (apt-get install chromium)",
            chromium.display()
        );
    }
    let web = web_dir();
    if !web
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        bail!(
            "playwright-core is missing from {}/node_modules: run scripts/test \
             (npm ci in client/web)",
            web.display()
        );
    }
    if !web.join("dist/index.html").is_file() {
        bail!(
            "the web client is not built ({}/dist/index.html): run scripts/test \
             (npm run build in client/web)",
            web.display()
        );
    }
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        bail!("node is not on PATH: run scripts/test, which installs it");
    }
    Ok(chromium)
}

/// Runs the browser script `client/web/e2e/<script>` (node with playwright-core, driving
/// `chromium`) against `server`, signing in with the link it printed, writing screenshots
/// into `screenshots`, with `env` besides; gives back its output once it passed within
/// `timeout` (its stdout is printed: the timings are worth seeing in the test log).
pub async fn run_e2e(
    script: &str,
    server: &TestServer,
    chromium: &Path,
    screenshots: &Path,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output> {
    let mut command = tokio::process::Command::new("node");
    command
        .arg(web_dir().join("e2e").join(script))
        .current_dir(web_dir())
        .env("TANDEM_URL", server.http_url())
        // The link `tandem serve` printed: local sign-in works only with its token.
        .env("TANDEM_SIGNIN_URL", server.sign_in_url()?)
        .env("SCREENSHOT_DIR", screenshots)
        .env("CHROMIUM", chromium)
        .envs(env.iter().copied());
    let output = run_client(command, script, timeout).await?;
    println!("{}", String::from_utf8_lossy(&output.stdout));
    Ok(output)
}
