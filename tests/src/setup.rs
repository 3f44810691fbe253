//! Where the pieces the tests need are: the workspace, the `tandem` binary, the interop and
//! kernel venvs, the stock Node clients and the notebook corpus. Each lookup fails (never
//! skips) with a message saying how to set it up, which `scripts/test` does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The `tandem` binary under test: `$TANDEM_BIN`, else `<workspace>/target/debug/tandem`.
///
/// Fails when it does not exist: black-box tests must run the binary that was just built
/// (`cargo build --workspace --bins`, done by `scripts/test`), never silently skip.
pub fn tandem_bin() -> Result<PathBuf> {
    let path = match std::env::var_os("TANDEM_BIN") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("target/debug/tandem"),
    };
    if !path.is_file() {
        bail!(
            "the tandem binary is missing at {} (TANDEM_BIN or target/debug/tandem): \
             run scripts/test, or `cargo build --workspace --bins` first",
            path.display()
        );
    }
    Ok(path)
}

/// The Python interpreter of the interop venv (`$TANDEM_TEST_PYTHON`), which has pycrdt,
/// jupyter-ydoc, pycrdt-websocket and nbformat installed.
pub fn python() -> Result<PathBuf> {
    let path = std::env::var_os("TANDEM_TEST_PYTHON")
        .map(PathBuf::from)
        .ok_or_else(|| {
            anyhow!(
                "TANDEM_TEST_PYTHON is not set: run scripts/test, which builds the venv \
             target/test-venv with tests/interop/python/requirements.txt and sets it"
            )
        })?;
    if !path.is_file() {
        bail!(
            "TANDEM_TEST_PYTHON={} does not exist: run scripts/test to (re)build the venv",
            path.display()
        );
    }
    Ok(path)
}

/// The kernel venv: `$TANDEM_VENV`, else `<workspace>/.venv-kernel` (`scripts/setup-python`
/// makes it; tests that run code check for it with [`require_kernel_venv`]).
pub fn kernel_venv() -> PathBuf {
    std::env::var_os("TANDEM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-kernel"))
}

/// Fails with the fix when the kernel venv is missing.
pub fn require_kernel_venv() -> Result<PathBuf> {
    let venv = kernel_venv();
    if venv.join("bin").join("python").exists() {
        Ok(venv)
    } else {
        Err(anyhow!(
            "no kernel venv at {}: run scripts/setup-python (scripts/test does)",
            venv.display()
        ))
    }
}

/// The `node_modules` of the stock Node clients (`$TANDEM_NODE_MODULES`), with yjs,
/// y-websocket@2, @jupyter/ydoc and ws installed by `npm ci`.
pub fn node_modules() -> Result<PathBuf> {
    let path = std::env::var_os("TANDEM_NODE_MODULES")
        .map(PathBuf::from)
        .ok_or_else(|| {
            anyhow!(
                "TANDEM_NODE_MODULES is not set: run scripts/test, which runs npm ci in \
             tests/interop/node and sets it"
            )
        })?;
    for package in ["yjs", "y-websocket", "@jupyter/ydoc", "ws"] {
        if !path.join(package).join("package.json").is_file() {
            bail!(
                "{package} is missing from TANDEM_NODE_MODULES={}: run scripts/test \
                 (npm ci in tests/interop/node)",
                path.display()
            );
        }
    }
    Ok(path)
}

/// The directory of this repository's client scripts: `tests/interop`.
pub fn interop_dir() -> PathBuf {
    workspace_root().join("tests/interop")
}

/// The real-world notebook corpus, `<workspace>/../shared/notebooks`.
pub fn corpus_dir() -> Result<PathBuf> {
    let path = workspace_root().join("../shared/notebooks");
    if !path.is_dir() {
        bail!(
            "the notebook corpus is missing at {}: the tests expect shared/ beside the \
             checkout (as scripts/test and CI have it)",
            path.display()
        );
    }
    Ok(path)
}

/// One `.ipynb` of the corpus, parsed.
pub fn corpus_notebook(name: &str) -> Result<serde_json::Value> {
    let path = corpus_dir()?.join(name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
