//! `doc_state`: the document side of `scripts/gpu-check` — what a collaborator's client sees.
//!
//! Connects to a notebook as a y-websocket peer (`tandem_client::DocConnection`), waits for the
//! server's state, and prints one JSON object: `{"kernel": state.kernel, "cells": [{"id",
//! "execution_count", "outputs"}]}`. With `--until` it keeps listening until a condition on
//! `state.kernel` holds (checked after every update), so the check sees the runtime's writes as
//! an open page would, not only the HTTP export:
//!
//! ```sh
//! doc_state --url http://127.0.0.1:8080 --token $TOKEN --notebook $ID --until gpu --timeout 60
//! ```
//!
//! `--until gpu`: `state.kernel.gpu` is set; `--until var:NAME`: the variable inspector lists
//! `NAME`; `--until idle`: a kernel is there and nothing runs. The GPU machine has no Rust
//! toolchain, so `scripts/gpu-build` builds this (no CUDA in it) and carries it; the CPU dry
//! run uses the workspace's build.
//!
//! Exit status: 0 with the JSON on stdout; 1 when `--until` did not hold in time (the JSON of
//! what was there is still printed); 2 on an error (no server, no access).

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::Notebook;

#[derive(Parser, Debug)]
#[command(about = "print a notebook's state.kernel and cells as a document client sees them")]
struct Args {
    /// The server's HTTP root.
    #[arg(long)]
    url: String,
    /// A personal access token.
    #[arg(long)]
    token: String,
    /// The notebook's id.
    #[arg(long)]
    notebook: String,
    /// Keep listening until this holds: `gpu`, `idle`, `var:NAME`, `running:ID` or `ran:ID`.
    #[arg(long)]
    until: Option<String>,
    /// Seconds to wait for `--until`.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

/// Whether `condition` holds on the document's `state.kernel` and cells (as [`snapshot`]
/// gives them).
fn holds(condition: &str, snapshot: &Value) -> bool {
    let kernel = &snapshot["kernel"];
    let idle = !kernel.is_null()
        && kernel["running"].is_null()
        && kernel["queue"].as_array().is_none_or(Vec::is_empty);
    let cell = |id: &str| {
        snapshot["cells"]
            .as_array()
            .and_then(|cells| cells.iter().find(|cell| cell["id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    match condition.split_once(':') {
        None if condition == "gpu" => kernel["gpu"].is_string(),
        None if condition == "idle" => idle,
        Some(("var", name)) => variables(kernel).any(|var| var["name"] == name),
        Some(("running", id)) => kernel["running"] == id,
        Some(("ran", id)) => idle && !cell(id)["execution_count"].is_null(),
        _ => false,
    }
}

/// The variable inspector's entries, whichever shape `state.kernel.variables` has.
fn variables(kernel: &Value) -> impl Iterator<Item = &Value> {
    let list = match &kernel["variables"] {
        Value::Array(list) => list.iter().collect::<Vec<_>>(),
        Value::Object(map) => map
            .get("items")
            .or_else(|| map.get("variables"))
            .and_then(Value::as_array)
            .map(|list| list.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    list.into_iter()
}

fn snapshot(doc: &yrs::Doc) -> Value {
    let notebook = Notebook::from_doc(doc.clone());
    let kernel = notebook.state_value("kernel").unwrap_or(Value::Null);
    let cells: Vec<Value> = notebook.to_ipynb()["cells"]
        .as_array()
        .map(|cells| {
            cells
                .iter()
                .map(|cell| {
                    json!({
                        "id": cell["id"],
                        "execution_count": cell["execution_count"],
                        "outputs": cell["outputs"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({ "kernel": kernel, "cells": cells })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    match run(&args).await {
        Ok((snapshot, held)) => {
            println!("{snapshot}");
            std::process::exit(if held { 0 } else { 1 });
        }
        Err(error) => {
            eprintln!("doc_state: {error:#}");
            std::process::exit(2);
        }
    }
}

async fn run(args: &Args) -> Result<(Value, bool)> {
    let client = Client::new(&args.url, &args.token).context("the server URL")?;
    let ws_base = client.ws_base().context("the WebSocket URL")?;
    let conn = DocConnection::connect(&ws_base, &args.notebook, Some(&args.token))
        .await
        .with_context(|| format!("connecting to {ws_base}/{}", args.notebook))?;
    tokio::time::timeout(Duration::from_secs(10), conn.synced())
        .await
        .context("no sync from the server within 10 s")?
        .context("the document connection closed before it synced")?;
    let held = match &args.until {
        None => true,
        Some(condition) => {
            let timeout = Duration::from_secs_f64(args.timeout.max(0.0));
            conn.wait_until(|doc| holds(condition, &snapshot(doc)), timeout)
                .await
                .is_ok()
        }
    };
    let snapshot = snapshot(conn.doc());
    conn.close().await;
    Ok((snapshot, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_read_state_kernel() {
        let done = json!({
            "kernel": {"gpu": "NVIDIA H200", "running": null, "queue": [],
                       "variables": [{"name": "a", "type": "tandem.Tensor", "device": "cuda:0"}]},
            "cells": [{"id": "c1", "execution_count": 3, "outputs": []}],
        });
        assert!(holds("gpu", &done));
        assert!(holds("idle", &done));
        assert!(holds("var:a", &done));
        assert!(!holds("var:b", &done));
        assert!(holds("ran:c1", &done));
        assert!(!holds("ran:c2", &done));
        let busy = json!({"kernel": {"running": "c1", "queue": ["c2"]}, "cells": []});
        assert!(holds("running:c1", &busy));
        assert!(!holds("gpu", &busy));
        assert!(!holds("idle", &busy));
        assert!(!holds("idle", &json!({"kernel": null})));
    }
}
