//! The ipykernel side of the execution scenario: `bench/python/ipykernel_bench.py` in a venv
//! of its own, made on demand, whose JSON line becomes an [`ExecResult`].

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use super::{ExecConfig, ExecResult, workspace};

/// The CPython the ipykernel venv is made from: the one Tandem embeds, for a fair comparison.
const PYTHON: &str = "/usr/bin/python3.11";

/// What `ipykernel_bench.py` prints.
#[derive(Debug, serde::Deserialize)]
struct IpykernelReport {
    cold_start_s: f64,
    first_execute_ms: f64,
    one_plus_one_ms: Vec<f64>,
    prints_s: f64,
    stream_messages: u64,
    versions: IpykernelVersions,
}

#[derive(Debug, serde::Deserialize)]
struct IpykernelVersions {
    python: String,
    ipykernel: String,
    jupyter_client: String,
}

/// Runs `ipykernel_bench.py` in the bench venv, making the venv first when needed.
pub async fn run(config: &ExecConfig) -> Result<ExecResult> {
    let root = workspace();
    let python = bench_venv(&root.join("target/bench-venv"), &root.join("bench/python")).await?;
    let script = root.join("bench/python/ipykernel_bench.py");
    let output = Command::new(&python)
        .arg(&script)
        .args(["--runs", &config.runs.to_string()])
        .args(["--prints", &config.prints.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    if !output.status.success() {
        bail!("{} failed ({})", script.display(), output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("no JSON line from {}: {stdout}", script.display()))?;
    let report: IpykernelReport =
        serde_json::from_str(line).with_context(|| format!("parsing {line}"))?;
    let mut latencies: Vec<u64> = report
        .one_plus_one_ms
        .iter()
        .map(|ms| (ms * 1000.0).round() as u64)
        .collect();
    latencies.sort_unstable();
    let versions = &report.versions;
    Ok(ExecResult {
        system: format!("ipykernel {}", versions.ipykernel),
        cold_start: Duration::from_secs_f64(report.cold_start_s.max(0.0)),
        one_plus_one_us: latencies,
        prints: config.prints,
        prints_time: Duration::from_secs_f64(report.prints_s.max(0.0)),
        note: format!(
            "jupyter_client {} over ZMQ straight to the kernel (Python {}), no collaboration; \
             cold start is start_kernel until the kernel_info reply, after which the first 1+1 \
             took {:.2} ms; the print loop came in {} stream messages",
            versions.jupyter_client,
            versions.python,
            report.first_execute_ms,
            report.stream_messages,
        ),
    })
}

/// Makes `venv` from [`PYTHON`] with `requirements.txt` from `python_dir` installed, unless it
/// already holds exactly those requirements. Returns the venv's python.
async fn bench_venv(venv: &Path, python_dir: &Path) -> Result<PathBuf> {
    let requirements = python_dir.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    // A copy of the requirements the venv was built from; a change makes the next run reinstall.
    let stamp = venv.join("tandem-bench-requirements.txt");
    let python = venv.join("bin").join("python");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        eprintln!("  ipykernel venv {} is up to date", venv.display());
        return Ok(python);
    }
    if !python.exists() {
        eprintln!(
            "  creating the ipykernel venv {} from {PYTHON}",
            venv.display()
        );
        run_to_stderr(Command::new(PYTHON).args(["-m", "venv"]).arg(venv)).await?;
    }
    eprintln!(
        "  installing {} into {} (pip)",
        requirements.display(),
        venv.display()
    );
    run_to_stderr(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )
    .await?;
    std::fs::write(&stamp, &wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}

/// Runs a setup command with its output on our stderr (stdout is the report's).
async fn run_to_stderr(command: &mut Command) -> Result<()> {
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr")?;
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .stderr(Stdio::inherit())
        .status()
        .await
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}
