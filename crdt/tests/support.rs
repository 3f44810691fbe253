//! Shared helpers for the black-box tests: the real-world corpus, the Python interpreter with
//! nbformat, pycrdt and jupyter-ydoc, and update exchange between replicas.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tandem_crdt::Notebook;
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, StateVector, Transact, Update};

/// The real-world notebooks, beside the repository in `shared/notebooks`.
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/notebooks"
    ))
}

/// Every `.ipynb` in the corpus, sorted, as (file name, text).
pub fn corpus() -> Vec<(String, String)> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the notebook corpus at {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the corpus in {}, found {} notebooks",
        dir.display(),
        files.len()
    );
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// The Python named by `TANDEM_TEST_PYTHON`. Panics (the test fails, it is not skipped) when
/// it is unset: the interop and validation tests are part of the contract.
pub fn python() -> PathBuf {
    match std::env::var_os("TANDEM_TEST_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "TANDEM_TEST_PYTHON is not set: point it at a python with nbformat, pycrdt and \
             jupyter-ydoc installed (e.g. `python3 -m venv /tmp/v && /tmp/v/bin/pip install \
             nbformat pycrdt jupyter-ydoc`, then TANDEM_TEST_PYTHON=/tmp/v/bin/python)"
        ),
    }
}

/// Runs one of the Python scripts in `crdt/tests/` and returns its stdout; panics with its
/// stderr when it fails.
pub fn run_python(script: &str, args: &[&Path]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let python = python();
    let output = Command::new(&python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (TANDEM_TEST_PYTHON): {e}", python.display()));
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Validates each file with `nbformat.validate(nbformat.read(path, NO_CONVERT))`.
pub fn validate_with_nbformat(paths: &[&Path]) {
    run_python("validate_nbformat.py", paths);
}

/// The input as nbformat's reader plus its upgrade to 4.5 would have it: multiline lists
/// joined, `nbformat_minor` 5, and missing cell ids filled in from `exported` (ids present must
/// match, which the comparison then checks).
pub fn normalize_like_nbformat(input: &Value, exported: &Value) -> Value {
    let mut nb = input.clone();
    nb["nbformat_minor"] = Value::from(5);
    let cells = nb["cells"].as_array_mut().unwrap();
    for (i, cell) in cells.iter_mut().enumerate() {
        let cell = cell.as_object_mut().unwrap();
        if !cell.contains_key("id") {
            let id = exported["cells"][i]["id"].clone();
            assert!(
                id.as_str().is_some_and(tandem_crdt::is_valid_cell_id),
                "cell {i}: bad generated id {id}"
            );
            cell.insert("id".into(), id);
        }
        join(cell.get_mut("source").unwrap());
        for output in cell
            .get_mut("outputs")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(text) = output.get_mut("text") {
                join(text);
            }
            if let Some(data) = output.get_mut("data") {
                join_bundle(data);
            }
        }
        for bundle in cell
            .get_mut("attachments")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flatten()
        {
            join_bundle(bundle.1);
        }
    }
    nb
}

fn join(value: &mut Value) {
    if let Value::Array(lines) = value
        && lines.iter().all(Value::is_string)
    {
        *value = Value::String(lines.iter().map(|l| l.as_str().unwrap()).collect());
    }
}

fn join_bundle(bundle: &mut Value) {
    for (mime, value) in bundle.as_object_mut().unwrap() {
        let json_mime = mime.starts_with("application/")
            && (mime == "application/json" || mime.ends_with("+json"));
        if !json_mime {
            join(value);
        }
    }
}

/// Where two JSON values first differ, for readable failures.
pub fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                match (x.get(key), y.get(key)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_difference(u, v, &format!("{path}.{key}")) {
                            return Some(d);
                        }
                    }
                    (u, v) => return Some(format!("{path}.{key}: {u:?} vs {v:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!("{path}: {} items vs {}", x.len(), y.len()));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => {
            let show = |v: &Value| v.to_string().chars().take(200).collect::<String>();
            Some(format!("{path}: {} vs {}", show(a), show(b)))
        }
    }
}

/// Asserts two notebooks are equal, naming the first difference.
#[track_caller]
pub fn assert_same(actual: &Value, expected: &Value, what: &str) {
    if let Some(diff) = first_difference(actual, expected, "") {
        panic!("{what}: first difference at {diff}");
    }
    assert_eq!(actual, expected, "{what}");
}

/// The whole document as a v1 update.
pub fn encode_v1(notebook: &Notebook) -> Vec<u8> {
    notebook
        .doc()
        .transact()
        .encode_state_as_update_v1(&StateVector::default())
}

/// A notebook built from a v1 update.
pub fn decode_v1(update: &[u8]) -> Notebook {
    let notebook = Notebook::new();
    apply_v1(&notebook, update);
    notebook
}

/// Applies a v1 update.
pub fn apply_v1(notebook: &Notebook, update: &[u8]) {
    let update = Update::decode_v1(update).expect("decodable update");
    notebook
        .doc()
        .transact_mut()
        .apply_update(update)
        .expect("applicable update");
}

/// Sends `from` everything `to` lacks.
pub fn sync_one_way(from: &Notebook, to: &Notebook) {
    let sv = to.doc().transact().state_vector();
    let diff = from.doc().transact().encode_diff_v1(&sv);
    apply_v1(to, &diff);
}

/// Brings every replica up to date with every other.
pub fn exchange_updates(replicas: &[&Notebook]) {
    for from in replicas {
        for to in replicas {
            if !std::ptr::eq(*from, *to) {
                sync_one_way(from, to);
            }
        }
    }
}
