//! The kernel sandbox's cost: Tandem's execution path sandboxed (the default) against
//! `--kernel-sandbox off`, in one run (issue 12).
//!
//! Per mode, two spawned servers: one with the warm spare kernel (the default; the first
//! execute and `1+1` as a second collaborator sees them), one with `--spare-kernels 0` (the
//! first execute then includes a cold kernel start, and afterwards the server's only kernel
//! is measured idle: the resident memory of everything the server started).

use std::time::Duration;

use anyhow::Result;

use super::{ExecConfig, tandem_with};
use crate::report::percentile;
use crate::target::TandemSource;

/// One mode's figures.
#[derive(Debug)]
pub struct SandboxRow {
    /// `sandboxed` or `--kernel-sandbox off`.
    pub mode: &'static str,
    /// First execute with the warm spare kernel.
    pub warm_first: Duration,
    /// First execute with no spare: a cold kernel start (and sandbox setup) included.
    pub cold_first: Duration,
    /// `1+1` p50 seen by a second client, with the warm spare's server, in ms.
    pub p50_ms: f64,
    /// `1+1` p99, in ms.
    pub p99_ms: f64,
    /// Resident memory of the one idle kernel and what runs for it, in MiB.
    pub kernel_mib: f64,
}

/// Runs both modes.
pub async fn run(source: &TandemSource, config: &ExecConfig) -> Vec<Result<SandboxRow>> {
    let modes: [(&'static str, &[&str]); 2] = [
        ("sandboxed", &[]),
        ("--kernel-sandbox off", &["--kernel-sandbox", "off"]),
    ];
    let mut rows = Vec::new();
    for (mode, flags) in modes {
        eprintln!("running sandbox / {mode} ...");
        rows.push(one(source, config, mode, flags).await);
    }
    rows
}

async fn one(
    source: &TandemSource,
    config: &ExecConfig,
    mode: &'static str,
    flags: &[&str],
) -> Result<SandboxRow> {
    let (warm, _) = tandem_with(source, config, flags, false).await?;
    let mut cold_flags = flags.to_vec();
    cold_flags.extend(["--spare-kernels", "0"]);
    let cold_config = ExecConfig {
        settle: Duration::ZERO,
        ..config.clone()
    };
    let (cold, memory) = tandem_with(source, &cold_config, &cold_flags, true).await?;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(SandboxRow {
        mode,
        warm_first: warm.cold_start,
        cold_first: cold.cold_start,
        p50_ms: ms(percentile(&warm.one_plus_one_us, 50.0)),
        p99_ms: ms(percentile(&warm.one_plus_one_us, 99.0)),
        kernel_mib: memory.unwrap_or(0) as f64 / (1024.0 * 1024.0),
    })
}

/// The markdown table for docs/benchmarks.md.
pub fn markdown(rows: &[SandboxRow], command: &str, machine: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Command: `{command}`  ");
    let _ = writeln!(out, "Machine: {machine}\n");
    let _ = writeln!(
        out,
        "| kernels | first execute, warm spare s | first execute, cold kernel s | 1+1 p50 ms | 1+1 p99 ms | idle kernel MiB |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:.2} | {:.2} | {:.0} |",
            r.mode,
            r.warm_first.as_secs_f64(),
            r.cold_first.as_secs_f64(),
            r.p50_ms,
            r.p99_ms,
            r.kernel_mib
        );
    }
    if let Some(sandboxed) = rows.iter().find(|r| r.mode == "sandboxed") {
        let met = sandboxed.warm_first <= Duration::from_millis(150);
        let _ = writeln!(
            out,
            "\n- Goal (issue 12): sandboxed first execute with the warm spare ≤ 150 ms: {}.",
            if met { "met" } else { "not met" }
        );
    }
    out
}
