//! Every real-world notebook survives import → export with nothing lost, export → import →
//! export is a fixed point, and every export is valid nbformat 4.5 by Python's nbformat.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly by design.

mod support;

use serde_json::Value;
use tandem_crdt::{ImportLimits, Notebook};

use support::{assert_same, corpus, normalize_like_nbformat};

#[test]
fn corpus_round_trips_without_loss() {
    for (name, text) in corpus() {
        let input: Value = serde_json::from_str(&text).unwrap();
        let notebook = Notebook::from_ipynb_str(&text, &ImportLimits::default())
            .unwrap_or_else(|e| panic!("{name}: import failed: {e}"));
        let exported = notebook.to_ipynb();
        let expected = normalize_like_nbformat(&input, &exported);
        assert_same(&exported, &expected, &name);
        assert_eq!(
            notebook.cell_count() as usize,
            input["cells"].as_array().unwrap().len(),
            "{name}"
        );
    }
}

#[test]
fn export_import_export_is_a_fixed_point() {
    for (name, text) in corpus() {
        let first = Notebook::from_ipynb_str(&text, &ImportLimits::default())
            .unwrap()
            .to_ipynb();
        let second = Notebook::from_ipynb(&first, &ImportLimits::default())
            .unwrap()
            .to_ipynb();
        assert_same(&second, &first, &format!("{name}: value re-import"));
        let serialized = serde_json::to_string_pretty(&first).unwrap();
        let third = Notebook::from_ipynb_str(&serialized, &ImportLimits::default())
            .unwrap()
            .to_ipynb();
        assert_same(&third, &first, &format!("{name}: text re-import"));
    }
}

#[test]
fn corpus_survives_the_binary_encoding() {
    for (name, text) in corpus() {
        let notebook = Notebook::from_ipynb_str(&text, &ImportLimits::default()).unwrap();
        let copy = support::decode_v1(&support::encode_v1(&notebook));
        assert_same(&copy.to_ipynb(), &notebook.to_ipynb(), &name);
    }
}

#[test]
fn exports_validate_with_python_nbformat() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (name, text) in corpus() {
        let exported = Notebook::from_ipynb_str(&text, &ImportLimits::default())
            .unwrap()
            .to_ipynb();
        let path = dir.path().join(&name);
        std::fs::write(&path, serde_json::to_string_pretty(&exported).unwrap()).unwrap();
        paths.push(path);
    }
    // A notebook edited by hand into odd shapes must export valid too.
    let odd = Notebook::new();
    let id = odd
        .insert_cell(0, tandem_crdt::NewCell::code("x = 1"))
        .unwrap();
    odd.set_cell_metadata(&id, "collapsed", Value::from("not a bool"))
        .unwrap();
    odd.set_cell_metadata(&id, "tags", serde_json::json!(["a", "a", "b,c"]))
        .unwrap();
    odd.set_notebook_metadata("kernelspec", serde_json::json!({"name": 3}));
    let path = dir.path().join("odd.ipynb");
    std::fs::write(&path, odd.to_ipynb().to_string()).unwrap();
    paths.push(path);
    let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
    support::validate_with_nbformat(&refs);
}
