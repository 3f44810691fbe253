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
    let path = dir.path().join("raw-shapes.ipynb");
    std::fs::write(&path, odd_shapes().to_ipynb().to_string()).unwrap();
    paths.push(path);
    let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
    support::validate_with_nbformat(&refs);
}

/// A document written through raw yrs into shapes no Jupyter library writes.
fn odd_shapes() -> Notebook {
    use yrs::{Any, Array, ArrayPrelim, In, Map, MapPrelim, Transact};
    let notebook = Notebook::new();
    let doc = notebook.doc();
    let cells = doc.get_or_insert_array("cells");
    let meta = doc.get_or_insert_map("meta");
    let mut txn = doc.transact_mut();
    meta.insert(&mut txn, "metadata", Any::from("not a map"));
    cells.push_back(&mut txn, Any::from("not a cell"));
    // No id, a numeric source, metadata as a plain value, an output of unknown type, an
    // output with extra keys, a negative execution count.
    let mut outputs = ArrayPrelim::default();
    outputs.push(In::Map(MapPrelim::from([(
        "output_type",
        In::Any(Any::from("mystery")),
    )])));
    outputs.push(In::Map(MapPrelim::from([
        ("output_type", In::Any(Any::from("execute_result"))),
        ("data", In::Any(Any::from(3_i64))),
        ("transient", In::Any(Any::from("x"))),
    ])));
    cells.push_back(
        &mut txn,
        MapPrelim::from([
            ("cell_type", In::Any(Any::from("code"))),
            ("source", In::Any(Any::from(5_i64))),
            ("metadata", In::Any(Any::from("m"))),
            ("outputs", In::Array(outputs)),
            ("execution_count", In::Any(Any::from(-2_i64))),
        ]),
    );
    // An unknown cell type and a bad id; then two cells with one id.
    cells.push_back(
        &mut txn,
        MapPrelim::from([
            ("cell_type", In::Any(Any::from("heading"))),
            ("id", In::Any(Any::from("bad id"))),
        ]),
    );
    for source in ["first", "second"] {
        cells.push_back(
            &mut txn,
            MapPrelim::from([
                ("cell_type", In::Any(Any::from("markdown"))),
                ("id", In::Any(Any::from("same"))),
                ("source", In::Any(Any::from(source))),
                ("attachments", In::Any(Any::from(1_i64))),
            ]),
        );
    }
    drop(txn);
    notebook
}

#[test]
fn odd_shapes_export_repaired_and_deterministic() {
    let notebook = odd_shapes();
    let exported = notebook.to_ipynb();
    let cells = exported["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3, "{exported:#}");
    assert_eq!(cells[0]["cell_type"], "code");
    assert_eq!(cells[0]["source"], "");
    assert_eq!(cells[0]["execution_count"], Value::Null);
    assert_eq!(cells[0]["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(
        cells[0]["outputs"][0],
        serde_json::json!({"data": {}, "execution_count": null, "metadata": {}, "output_type": "execute_result"})
    );
    assert_eq!(cells[1]["cell_type"], "raw");
    assert!(cells[1]["id"].as_str().unwrap().starts_with("cell-"));
    assert_eq!(cells[2]["id"], "same");
    assert_eq!(cells[2]["source"], "first");
    assert_eq!(exported["metadata"], serde_json::json!({}));
    // Another replica reads the same repaired notebook.
    let copy = support::decode_v1(&support::encode_v1(&notebook));
    assert_same(&copy.to_ipynb(), &exported, "replica of odd shapes");
    // Edits reach cells through their derived ids.
    let derived = cells[0]["id"].as_str().unwrap();
    notebook.edit_source(derived, 0, 0, "x = 1").unwrap();
    notebook.move_cell(derived, 2).unwrap();
    assert_eq!(notebook.cells()[2].source, "x = 1");
    assert_eq!(notebook.cells()[2].id, derived);
}
