//! Outside clients: commands that run this repository's Node and Python client scripts
//! (`tests/interop/`), and running one to completion with a deadline.

use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::{interop_dir, node_modules, python};

/// A command that runs `tests/interop/node/<script>` with Node against the packages in
/// [`node_modules`].
///
/// Node resolves ES module imports next to the script, not through `NODE_PATH`, so the script
/// is copied into a temporary folder beside a `node_modules` link; keep the returned folder
/// alive while the command runs.
pub fn node_script(script: &str) -> Result<(tokio::process::Command, TempDir)> {
    let modules = node_modules()?;
    let source = interop_dir().join("node").join(script);
    let dir = tempfile::Builder::new()
        .prefix("tandem-node-client-")
        .tempdir()?;
    std::fs::copy(&source, dir.path().join(script))
        .with_context(|| format!("copying {}", source.display()))?;
    std::os::unix::fs::symlink(&modules, dir.path().join("node_modules"))
        .context("linking node_modules")?;
    std::fs::write(dir.path().join("package.json"), r#"{"type":"module"}"#)?;
    let mut command = tokio::process::Command::new("node");
    command.arg(dir.path().join(script));
    Ok((command, dir))
}

/// A command that runs `tests/interop/python/<script>` with the interop venv's [`python`].
pub fn python_script(script: &str) -> Result<tokio::process::Command> {
    let mut command = tokio::process::Command::new(python()?);
    command.arg(interop_dir().join("python").join(script));
    Ok(command)
}

/// Runs an outside client (a Node or Python script) to completion within `timeout`, killing it
/// past that. Fails when it exits non-zero, with its stdout and stderr in the message.
pub async fn run_client(
    mut command: tokio::process::Command,
    what: &str,
    timeout: Duration,
) -> Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output.with_context(|| format!("waiting for {what}"))?,
        Err(_) => bail!("{what} did not finish within {timeout:?} (killed)"),
    };
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n--- stdout (end) ---\n{}\n--- stderr (end) ---\n{}",
            output.status,
            tail(&output.stdout, CLIENT_OUTPUT_SHOWN),
            tail(&output.stderr, CLIENT_OUTPUT_SHOWN)
        );
    }
    Ok(output)
}

/// How much of a failed client's stdout and stderr goes into the error: the end says why it
/// failed; whole notebooks dumped by a client would bury that in CI logs.
const CLIENT_OUTPUT_SHOWN: usize = 4000;

/// The last `max` bytes of `bytes` as text (cut at a character boundary).
pub fn tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= max {
        return text.into_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}
