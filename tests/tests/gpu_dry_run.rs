//! The GPU check's dry run (`scripts/gpu-check --cpu`, issue 17): every step of the notebook
//! check that runs on the GPU machine — the kernel venv assembled from a packed site, the
//! wrapper kernel program, `tandem serve`, the runtime switch (409 `gpu_unavailable` on a CPU
//! build), cells against numpy, the in-cell matmul timing, the inspector through a document
//! client (`doc_state`), interrupt, restart, a device error the kernel survives — on the CPU,
//! so the GPU run cannot fail on plumbing.
//!
//! Needs the `doc_state` binary beside `$TANDEM_BIN` (`cargo build --workspace --bins` builds
//! both; scripts/test does), or at `$DOC_STATE_BIN`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;
use tandem_tests::{require_kernel_venv, tandem_bin};

#[test]
fn gpu_check_dry_run_passes_on_the_cpu() {
    let bin = tandem_bin().unwrap();
    let venv = require_kernel_venv().unwrap();
    let doc_state = std::env::var_os("DOC_STATE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| bin.with_file_name("doc_state"));
    assert!(
        doc_state.is_file(),
        "{} is missing: cargo build --workspace --bins",
        doc_state.display()
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(root.join("scripts/gpu-check"))
        .arg("--cpu")
        .current_dir(&root)
        .env("TANDEM_BIN", &bin)
        .env("TANDEM_VENV", &venv)
        .env("DOC_STATE_BIN", &doc_state)
        .env("OUT", out.path())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "gpu-check --cpu failed:\n{log}");
    let results = std::fs::read_to_string(out.path().join("kernel-check.jsonl")).unwrap();
    let rows: Vec<Value> = results
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let summary = rows
        .iter()
        .find(|row| row["kind"] == "summary")
        .unwrap_or_else(|| panic!("no summary line:\n{log}"));
    assert_eq!(summary["failures"], Value::Array(vec![]), "{log}");
    assert!(summary["tandem_tflops"].as_f64().unwrap() > 0.0, "{log}");
    let ops = rows
        .iter()
        .filter(|row| row["step"] == "op" && row["ok"] == true)
        .count();
    assert_eq!(ops, 9, "every op checked against numpy:\n{log}");
    assert!(
        rows.iter()
            .any(|row| row["kind"] == "runtime_switch" && row["status"] == 409),
        "{log}"
    );
}
