//! Interop: a stock JavaScript client (yjs + y-websocket + @jupyter/ydoc) and a stock Python
//! client (pycrdt + jupyter_ydoc + pycrdt's y-websocket provider) edit the same notebook at the
//! same time, and everyone ends up with the same notebook: both clients, Tandem's
//! `GET /api/notebooks/{id}/ipynb` export, and `nbformat.validate` agree.
//!
//! Both clients run the same script (tests/interop/node/edit_notebook.mjs and
//! tests/interop/python/edit_notebook.py): wait for each other, insert a markdown cell before a
//! shared code cell and a code cell at the end, type a string one character per transaction at
//! the end of the shared cell's source and into their own cell, delete cells (one of them both
//! delete), set cell and notebook metadata (one key both set), then print what they see.
//! The strings use disjoint alphabets with multi-byte and astral characters, so the test can
//! tell whose keystroke is whose and catch UTF-16/UTF-8 offset mix-ups.
//!
//! The same scenario runs against the Node reference server (`y-websocket@2`'s server.cjs) as a
//! control: if it passes there and fails on Tandem, the fault is Tandem's.

// Helpers here are test code too: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::reference::ReferenceServer;
use tandem_tests::notebook::{first_difference, nbformat_validate, normalize};
use tandem_tests::{
    TestServer, corpus_dir, corpus_notebook, node_script, python_script, run_client,
};

/// Generous: each client types ~100 characters with pauses of a few ms, plus start-up of
/// Node and Python. A hang (a lost update the peer waits for) fails instead of blocking CI.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// What the JavaScript client types. Its alphabet is disjoint from [`PY_TYPED`]'s, and it has
/// a 2-byte (é), a 3-byte (漢) and an astral (😀, a surrogate pair in JS) character.
const JS_TYPED: &str = "[js]abcdefghijklmnopqrstuvwxyzé漢😀";
/// What the Python client types; see [`JS_TYPED`].
const PY_TYPED: &str = "(PY)ABCDEFGHIJKLMNOPQRSTUVWXYZß字🙂";
/// How many times each client types its string.
const REPEATS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_clients_converge_with_each_other_and_the_export_on_tandem() {
    converge_on_tandem("nbformat-test4.5-cell-ids.ipynb", 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_clients_converge_on_a_notebook_with_attachments_and_raw_cells() {
    converge_on_tandem("nbsphinx-markdown-attachments.ipynb", 11).await;
}

// A control for the clients themselves, not for Tandem: on the Node reference server the
// pycrdt client stalled in 2 of 12 runs (its last updates never arrived), so it is run on
// demand (`cargo test -p tandem-tests --test interop -- --ignored`) rather than in CI.
#[ignore = "control run against the y-websocket reference server; the pycrdt client stalls there in ~1 of 6 runs"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_clients_converge_on_the_reference_server() {
    let server = ReferenceServer::from_env().await.unwrap();
    let ws_url = format!("{}/ws", server.ws_base());
    let notebook_id = "interop-control";

    // The reference server has no REST API: a stock YNotebook loads the corpus file. Lists of
    // lines are joined first, because @jupyter/ydoc's createOutputs joins a stream's list of
    // lines with commas (`text.join()`), which would corrupt the seed rather than test anything.
    let baseline = normalize(&corpus_notebook("nbformat-test4.5-cell-ids.ipynb").unwrap());
    let seed_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(seed_file.path(), baseline.to_string()).unwrap();
    let (mut seed, _dir) = node_script("seed_notebook.mjs").unwrap();
    seed.arg(&ws_url).arg(notebook_id).arg(seed_file.path());
    run_client(seed, "seed_notebook.mjs", CLIENT_TIMEOUT)
        .await
        .unwrap();

    let outcome = run_pair(&ws_url, notebook_id, "no-token", &baseline, 3).await;
    assert_views_agree(&outcome);
    check_edits(&baseline, &outcome.plans, &outcome.js);
    server.stop().await;
}

/// Creates a notebook on Tandem from `corpus_file`, runs both clients on it, and checks the
/// clients, the export and nbformat all agree.
async fn converge_on_tandem(corpus_file: &str, seed: u64) {
    let server = TestServer::start().await.unwrap();
    let client = server.client_for("interop@example.com").await.unwrap();
    let ipynb = corpus_notebook(corpus_file).unwrap();
    let created = client
        .create_notebook(corpus_file, Some(ipynb.clone()))
        .await
        .unwrap();

    // What the server made of the file is the baseline the clients' edits apply to.
    let before = client.export_ipynb(&created.id).await.unwrap();
    nbformat_validate(&before).await.unwrap();
    let baseline = normalize(&before);
    assert_import_kept_content(&normalize(&ipynb), &baseline);

    let outcome = run_pair(
        &server.ws_url(),
        &created.id,
        client.token(),
        &baseline,
        seed,
    )
    .await;
    assert_views_agree(&outcome);
    check_edits(&baseline, &outcome.plans, &outcome.js);

    // Both clients saw each other's "done" through the server, so it has every edit by now.
    let export = client.export_ipynb(&created.id).await.unwrap();
    nbformat_validate(&export).await.unwrap();
    let export = normalize(&export);
    if let Some(difference) = first_difference(&outcome.js, &export) {
        panic!(
            "the export differs from what the clients see (left: clients, right: export): \
             {difference}"
        );
    }
}

/// The edit script's parameters for one client, as the scripts read them.
struct Plans {
    js: Value,
    py: Value,
}

struct Outcome {
    plans: Plans,
    /// The JavaScript client's final view, normalized.
    js: Value,
    /// The Python client's final view, normalized.
    py: Value,
}

/// Runs both clients at once on one notebook whose content is `baseline` and returns what
/// each finally saw.
async fn run_pair(
    ws_url: &str,
    notebook_id: &str,
    token: &str,
    baseline: &Value,
    seed: u64,
) -> Outcome {
    let cells = baseline["cells"].as_array().unwrap();
    let ids: Vec<&str> = cells
        .iter()
        .map(|cell| cell["id"].as_str().unwrap())
        .collect();
    let shared = cells
        .iter()
        .find(|cell| cell["cell_type"] == "code")
        .or_else(|| cells.first())
        .map(|cell| cell["id"].as_str().unwrap())
        .expect("the corpus notebook has cells");
    let others: Vec<&str> = ids.iter().copied().filter(|id| *id != shared).collect();
    assert!(
        others.len() >= 3,
        "the scenario needs at least 4 cells, got {}",
        ids.len()
    );
    // Each deletes one cell of its own, and both delete the last one at the same time.
    let both = others[others.len() - 1];

    let plan = |name: &str, peer: &str, seed: u64, typed: &str, delete: &str| {
        json!({
            "ws_url": ws_url,
            "notebook_id": notebook_id,
            "token": token,
            "name": name,
            "peer": peer,
            "seed": seed,
            "shared_cell": shared,
            "delete_cells": [delete, both],
            "typed": typed.repeat(REPEATS),
        })
    };
    let plans = Plans {
        js: plan("js", "py", seed * 2, JS_TYPED, others[0]),
        py: plan("py", "js", seed * 2 + 1, PY_TYPED, others[1]),
    };

    let js_plan = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(js_plan.path(), plans.js.to_string()).unwrap();
    let py_plan = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(py_plan.path(), plans.py.to_string()).unwrap();

    let (mut js, _node_dir) = node_script("edit_notebook.mjs").unwrap();
    js.arg(js_plan.path());
    let mut py = python_script("edit_notebook.py").unwrap();
    py.arg(py_plan.path());

    let (js, py) = tokio::join!(
        run_client(js, "the yjs client (edit_notebook.mjs)", CLIENT_TIMEOUT),
        run_client(py, "the pycrdt client (edit_notebook.py)", CLIENT_TIMEOUT),
    );
    let (js, py) = (js.unwrap(), py.unwrap());
    Outcome {
        plans,
        js: normalize(&last_json_line(&js.stdout)),
        py: normalize(&last_json_line(&py.stdout)),
    }
}

fn last_json_line(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_else(|| {
            panic!("the client printed no notebook on stdout: {text:?}");
        });
    serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
}

fn assert_views_agree(outcome: &Outcome) {
    if let Some(difference) = first_difference(&outcome.js, &outcome.py) {
        panic!(
            "the yjs and pycrdt clients ended with different notebooks (left: js, right: py): \
             {difference}"
        );
    }
}

/// Every cell of the corpus file, with its content, is in the imported notebook, in order.
/// Ids may be added (nbformat < 4.5 has none; 4.5 exports need them) but not changed.
fn assert_import_kept_content(corpus: &Value, imported: &Value) {
    let corpus_cells = corpus["cells"].as_array().unwrap();
    let imported_cells = imported["cells"].as_array().unwrap();
    assert_eq!(
        corpus_cells.len(),
        imported_cells.len(),
        "cell count changed on import"
    );
    for (index, (want, got)) in corpus_cells.iter().zip(imported_cells).enumerate() {
        let mut want = want.clone();
        if want.get("id").is_none() {
            want["id"] = got["id"].clone();
        }
        if let Some(difference) = first_difference(&want, got) {
            panic!("cell {index} changed on import (left: file, right: export): {difference}");
        }
    }
    let metadata = corpus["metadata"].as_object().unwrap();
    for (key, value) in metadata {
        assert_eq!(
            imported["metadata"].get(key),
            Some(value),
            "notebook metadata {key}"
        );
    }
}

/// Checks that `view` is exactly `baseline` with both clients' edits applied: nothing lost,
/// nothing duplicated, concurrent edits resolved one way.
fn check_edits(baseline: &Value, plans: &Plans, view: &Value) {
    let shared = plans.js["shared_cell"].as_str().unwrap();
    let deleted: BTreeSet<&str> = [&plans.js, &plans.py]
        .iter()
        .flat_map(|plan| plan["delete_cells"].as_array().unwrap())
        .map(|id| id.as_str().unwrap())
        .collect();
    let base_cells = baseline["cells"].as_array().unwrap();
    let cells = view["cells"].as_array().unwrap();
    let ids: Vec<&str> = cells
        .iter()
        .map(|cell| cell["id"].as_str().unwrap_or("<none>"))
        .collect();

    // Structure: surviving baseline cells in order, the two new markdown cells right before the
    // shared cell (in either order: they were inserted concurrently), the two new code cells
    // at the end (likewise).
    let survivors: Vec<&str> = base_cells
        .iter()
        .map(|cell| cell["id"].as_str().unwrap())
        .filter(|id| !deleted.contains(id))
        .collect();
    let shared_at = survivors.iter().position(|id| *id == shared).unwrap();
    assert_eq!(ids.len(), survivors.len() + 4, "cells: {ids:?}");
    assert_eq!(ids[..shared_at], survivors[..shared_at], "cells: {ids:?}");
    let new_md: BTreeSet<&str> = ids[shared_at..shared_at + 2].iter().copied().collect();
    assert_eq!(new_md, BTreeSet::from(["js-md", "py-md"]), "cells: {ids:?}");
    assert_eq!(
        ids[shared_at + 2..ids.len() - 2],
        survivors[shared_at..],
        "cells: {ids:?}"
    );
    let new_code: BTreeSet<&str> = ids[ids.len() - 2..].iter().copied().collect();
    assert_eq!(
        new_code,
        BTreeSet::from(["js-code", "py-code"]),
        "cells: {ids:?}"
    );

    let cell = |id: &str| cells.iter().find(|cell| cell["id"] == id).unwrap();
    let base_cell = |id: &str| base_cells.iter().find(|cell| cell["id"] == id).unwrap();

    // Untouched cells are exactly as before.
    for id in survivors.iter().filter(|id| **id != shared) {
        if let Some(difference) = first_difference(base_cell(id), cell(id)) {
            panic!("untouched cell {id} changed: {difference}");
        }
    }

    // The shared cell: the old source, then every keystroke of both clients, each client's in
    // the order typed, nothing else.
    let js_typed = plans.js["typed"].as_str().unwrap();
    let py_typed = plans.py["typed"].as_str().unwrap();
    let source = cell(shared)["source"].as_str().unwrap();
    let original = base_cell(shared)["source"].as_str().unwrap();
    let typed = source.strip_prefix(original).unwrap_or_else(|| {
        panic!("the shared cell no longer starts with its old source: {source:?}")
    });
    let js_chars: BTreeSet<char> = js_typed.chars().collect();
    let from_js: String = typed.chars().filter(|c| js_chars.contains(c)).collect();
    let from_py: String = typed.chars().filter(|c| !js_chars.contains(c)).collect();
    assert_eq!(
        from_js, js_typed,
        "the js client's keystrokes in the shared cell: {typed:?}"
    );
    assert_eq!(
        from_py, py_typed,
        "the py client's keystrokes in the shared cell: {typed:?}"
    );

    // Each client's own cells.
    for (name, typed) in [("js", js_typed), ("py", py_typed)] {
        let md = cell(&format!("{name}-md"));
        assert_eq!(md["cell_type"], "markdown");
        assert_eq!(md["source"], format!("# Written by {name}\n"));
        let code = cell(&format!("{name}-code"));
        assert_eq!(code["cell_type"], "code");
        assert_eq!(code["source"], typed, "{name}'s own cell");
        assert_eq!(code["outputs"], json!([]));
        assert_eq!(code["execution_count"], Value::Null);
    }

    // Metadata: each client's key, and one winner for the key both set.
    let mut want_meta = base_cell(shared)["metadata"].clone();
    let winner = cell(shared)["metadata"]["interop_last_writer"].clone();
    assert!(
        winner == "js" || winner == "py",
        "cell metadata winner: {winner}"
    );
    want_meta["interop_last_writer"] = winner;
    want_meta["interop_js"] = json!({"typed_chars": js_typed.chars().count()});
    want_meta["interop_py"] = json!({"typed_chars": py_typed.chars().count()});
    assert_eq!(
        normalize(&want_meta),
        cell(shared)["metadata"],
        "shared cell metadata"
    );

    let mut want_nb_meta = baseline["metadata"].clone();
    let winner = view["metadata"]["interop_last_writer"].clone();
    assert!(
        winner == "js" || winner == "py",
        "notebook metadata winner: {winner}"
    );
    want_nb_meta["interop_last_writer"] = winner;
    want_nb_meta["interop_js"] = json!({"state": "done", "typed": js_typed});
    want_nb_meta["interop_py"] = json!({"state": "done", "typed": py_typed});
    assert_eq!(
        normalize(&want_nb_meta),
        view["metadata"],
        "notebook metadata"
    );
    assert_eq!(view["nbformat"], baseline["nbformat"]);
    assert_eq!(view["nbformat_minor"], baseline["nbformat_minor"]);
}

#[test]
fn the_corpus_has_the_notebooks_these_tests_use() {
    for file in [
        "nbformat-test4.5-cell-ids.ipynb",
        "nbsphinx-markdown-attachments.ipynb",
    ] {
        assert!(corpus_dir().unwrap().join(file).is_file(), "{file}");
    }
}
