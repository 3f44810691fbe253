//! Interop with jupyter_ydoc on pycrdt, the library Jupyter Server reads and writes notebooks
//! with. Needs `TANDEM_TEST_PYTHON` (a python with nbformat, pycrdt and jupyter-ydoc).
//!
//! Known differences, each checked rather than ignored:
//! - jupyter_ydoc's `get()` drops empty `attachments` objects (none in the corpus).
//! - jupyter_ydoc's `set()` adds `language_info: {name: ""}` and
//!   `kernelspec: {name: "", display_name: ""}` to notebook metadata when missing.
//! - jupyter_ydoc's `set()` turns a notebook without cells into one with an empty, trusted code
//!   cell.
//! - Jupyter Server reads files with nbformat, which drops the transient `trusted` cell metadata
//!   key before `set()` sees it, and keeps the file's minor version. For a 4.0–4.4 file,
//!   jupyter_ydoc stores that minor and ids it generated, and its `get()` strips the ids again;
//!   we export 4.5 with those stored ids.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly by design.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use tandem_crdt::{ImportLimits, Notebook};

use support::{assert_same, corpus, corpus_dir, run_python};

#[test]
fn jupyter_ydoc_reads_our_documents() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut ours = Vec::new();
    for (name, text) in corpus() {
        let notebook = Notebook::from_ipynb_str(&text, &ImportLimits::default()).unwrap();
        let path = dir.path().join(format!("{name}.update"));
        std::fs::write(&path, support::encode_v1(&notebook)).unwrap();
        paths.push(path);
        ours.push((name, notebook.to_ipynb()));
    }
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let mut args = vec![Path::new("read")];
    args.extend(refs);
    let theirs: Vec<Value> =
        serde_json::from_str(&run_python("read_with_jupyter_ydoc.py", &args)).unwrap();
    assert_eq!(theirs.len(), ours.len());
    for ((name, ours), theirs) in ours.iter().zip(&theirs) {
        assert_same(
            theirs,
            ours,
            &format!("{name}: jupyter_ydoc's get() vs our export"),
        );
    }
}

#[test]
fn we_read_documents_jupyter_ydoc_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = corpus().into_iter().map(|(name, _)| name).collect();
    let inputs: Vec<std::path::PathBuf> =
        files.iter().map(|name| corpus_dir().join(name)).collect();
    let mut args = vec![Path::new("write"), dir.path()];
    args.extend(inputs.iter().map(|p| p.as_path()));
    run_python("read_with_jupyter_ydoc.py", &args);
    for name in &files {
        let update = std::fs::read(dir.path().join(format!("{name}.update"))).unwrap();
        let reference: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let ours = support::decode_v1(&update).to_ipynb();
        let ours = as_jupyter_ydoc_reports(ours, &reference["get"]);
        // What jupyter_ydoc itself reads back must equal what we read.
        assert_same(
            &ours,
            &reference["get"],
            &format!("{name}: our export vs jupyter_ydoc's get()"),
        );
        // And both equal the notebook given to set(), plus the defaults set() adds.
        let mut expected = reference["set"].clone();
        let metadata = expected["metadata"].as_object_mut().unwrap();
        metadata
            .entry("language_info")
            .or_insert(json!({"name": ""}));
        metadata
            .entry("kernelspec")
            .or_insert(json!({"name": "", "display_name": ""}));
        if expected["cells"].as_array().unwrap().is_empty() {
            let id = ours["cells"][0]["id"].clone();
            expected["cells"] = json!([{"cell_type": "code", "execution_count": null, "id": id,
                "metadata": {"trusted": true}, "outputs": [], "source": ""}]);
        }
        assert_same(
            &ours,
            &expected,
            &format!("{name}: our export vs the notebook given to set()"),
        );
    }
}

/// Our 4.5 export as jupyter_ydoc reports a document of the file's own minor version: ids
/// (checked present and unique first) stripped below 4.5.
fn as_jupyter_ydoc_reports(mut ours: Value, theirs: &Value) -> Value {
    let minor = theirs["nbformat_minor"].as_i64().unwrap();
    let cells = ours["cells"].as_array_mut().unwrap();
    let ids: std::collections::HashSet<String> = cells
        .iter()
        .map(|c| {
            c["id"]
                .as_str()
                .expect("every exported cell has an id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), cells.len(), "exported ids are unique");
    if minor < 5 {
        for cell in cells.iter_mut() {
            cell.as_object_mut().unwrap().remove("id");
        }
        ours["nbformat_minor"] = Value::from(minor);
    }
    ours
}
