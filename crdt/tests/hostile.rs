//! Malformed and hostile `.ipynb` input gets a precise error, quickly, without crashing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly by design.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_crdt::{ImportError, ImportLimits, Notebook};

fn import(text: &str) -> ImportError {
    Notebook::from_ipynb_str(text, &ImportLimits::default()).expect_err("import must fail")
}

fn import_value(value: Value) -> ImportError {
    Notebook::from_ipynb(&value, &ImportLimits::default()).expect_err("import must fail")
}

fn notebook_with_cell(cell: Value) -> Value {
    json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]})
}

#[test]
fn not_json() {
    let err = import("{\"nbformat\": 4,\n  oops}");
    assert!(matches!(err, ImportError::NotJson { line: 2, .. }), "{err}");
    assert!(err.to_string().starts_with("not valid json: "), "{err}");
    assert!(matches!(import(""), ImportError::NotJson { .. }));
}

#[test]
fn wrong_top_level_types() {
    assert_eq!(
        import("[1, 2]"),
        ImportError::WrongType {
            at: "the notebook".into(),
            expected: "an object",
            found: "an array"
        }
    );
    let err =
        import_value(json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": {}}));
    assert_eq!(
        err,
        ImportError::WrongType {
            at: "cells".into(),
            expected: "an array",
            found: "an object"
        }
    );
    assert_eq!(err.to_string(), "cells: expected an array, found an object");
    let err =
        import_value(json!({"nbformat": 4, "nbformat_minor": 5, "metadata": [], "cells": []}));
    assert_eq!(
        err,
        ImportError::WrongType {
            at: "metadata".into(),
            expected: "an object",
            found: "an array"
        }
    );
    let err = import_value(json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}));
    assert_eq!(
        err,
        ImportError::MissingField {
            at: "the notebook".into(),
            field: "cells"
        }
    );
}

#[test]
fn old_and_unknown_versions() {
    let v3 = json!({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []});
    assert_eq!(
        import_value(v3),
        ImportError::UnsupportedVersion { found: "3".into() }
    );
    let text = json!({"nbformat": "4", "nbformat_minor": 5, "metadata": {}, "cells": []});
    assert_eq!(
        import_value(text),
        ImportError::UnsupportedVersion {
            found: "\"4\"".into()
        }
    );
    let err = import_value(json!({"metadata": {}, "cells": []}));
    assert_eq!(
        err,
        ImportError::MissingField {
            at: "the notebook".into(),
            field: "nbformat"
        }
    );
}

#[test]
fn wrong_cell_fields() {
    let err = import_value(notebook_with_cell(
        json!({"cell_type": "code", "metadata": {}, "source": 42}),
    ));
    assert_eq!(
        err,
        ImportError::WrongType {
            at: "cells[0].source".into(),
            expected: "a string or an array of strings",
            found: "a number"
        }
    );
    assert_eq!(
        err.to_string(),
        "cells[0].source: expected a string or an array of strings, found a number"
    );
    let err = import_value(notebook_with_cell(
        json!({"cell_type": "heading", "metadata": {}, "source": ""}),
    ));
    assert_eq!(
        err,
        ImportError::UnknownCellType {
            cell: 0,
            cell_type: "heading".into()
        }
    );
    let err = import_value(notebook_with_cell(
        json!({"cell_type": "raw", "id": "no spaces", "source": ""}),
    ));
    assert_eq!(
        err,
        ImportError::InvalidCellId {
            cell: 0,
            id: "no spaces".into()
        }
    );
    let err = import_value(notebook_with_cell(
        json!({"cell_type": "code", "source": "", "execution_count": -1}),
    ));
    assert!(
        matches!(err, ImportError::WrongType { ref at, .. } if at == "cells[0].execution_count"),
        "{err}"
    );
    let err = import_value(notebook_with_cell(
        json!({"cell_type": "code", "source": "", "outputs": "none"}),
    ));
    assert!(
        matches!(err, ImportError::WrongType { ref at, .. } if at == "cells[0].outputs"),
        "{err}"
    );
    let err = import_value(notebook_with_cell(
        json!({"cell_type": "markdown", "source": "", "attachments": {"a.png": 1}}),
    ));
    assert!(
        matches!(err, ImportError::WrongType { ref at, .. } if at == "cells[0].attachments[\"a.png\"]"),
        "{err}"
    );
}

#[test]
fn wrong_outputs() {
    let cell = |output: Value| {
        notebook_with_cell(json!({"cell_type": "code", "source": "", "outputs": [output]}))
    };
    let err = import_value(cell(json!({"output_type": "pyout", "data": {}})));
    assert_eq!(
        err,
        ImportError::UnknownOutputType {
            cell: 0,
            output: 0,
            output_type: "pyout".into()
        }
    );
    let err = import_value(cell(json!({"output_type": "stream", "name": "stdout"})));
    assert_eq!(
        err,
        ImportError::MissingField {
            at: "cells[0].outputs[0]".into(),
            field: "text"
        }
    );
    let err = import_value(cell(
        json!({"output_type": "stream", "name": "stdout", "text": ["a", 1]}),
    ));
    assert!(
        matches!(err, ImportError::WrongType { ref at, .. } if at == "cells[0].outputs[0].text"),
        "{err}"
    );
    let err = import_value(cell(
        json!({"output_type": "display_data", "data": {"text/plain": 5}, "metadata": {}}),
    ));
    assert!(
        matches!(err, ImportError::WrongType { ref at, .. } if at == "cells[0].outputs[0].data[\"text/plain\"]"),
        "{err}"
    );
    let err = import_value(cell(
        json!({"output_type": "error", "ename": "E", "evalue": "v", "traceback": "tb"}),
    ));
    assert!(
        matches!(err, ImportError::WrongType { ref at, .. } if at == "cells[0].outputs[0].traceback"),
        "{err}"
    );
    let err = import_value(cell(json!(7)));
    assert!(
        matches!(err, ImportError::WrongType { ref at, .. } if at == "cells[0].outputs[0]"),
        "{err}"
    );
}

fn hundred_mb_string_notebook() -> String {
    let mut text = String::with_capacity(100 << 20);
    text.push_str(r#"{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "raw", "metadata": {}, "source": ""#);
    text.extend(std::iter::repeat_n('a', 100 << 20));
    text.push_str(r#""}]}"#);
    text
}

#[test]
fn a_100_mb_string_is_refused_fast() {
    let text = hundred_mb_string_notebook();
    let start = Instant::now();
    let err = Notebook::from_ipynb_str(&text, &ImportLimits::default()).unwrap_err();
    assert!(
        matches!(err, ImportError::TooLarge { limit, .. } if limit == 64 << 20),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "took {:?}",
        start.elapsed()
    );
    // With room for the file but not the string, the byte scan refuses it before parsing.
    let limits = ImportLimits {
        max_bytes: 200 << 20,
        ..ImportLimits::default()
    };
    let err = Notebook::from_ipynb_str(&text, &limits).unwrap_err();
    assert_eq!(
        err,
        ImportError::StringTooLong {
            at: "line 1 column 111".into(),
            limit: 32 << 20
        }
    );
    assert!(
        err.to_string()
            .contains("string at line 1 column 111 is longer than"),
        "{err}"
    );
}

#[test]
fn a_long_string_in_a_parsed_value_is_named_by_path() {
    let limits = ImportLimits {
        max_string_bytes: 1 << 20,
        ..ImportLimits::default()
    };
    let value = notebook_with_cell(
        json!({"cell_type": "raw", "metadata": {}, "source": "a".repeat(2 << 20)}),
    );
    let err = Notebook::from_ipynb(&value, &limits).unwrap_err();
    assert_eq!(
        err,
        ImportError::StringTooLong {
            at: "cells[0].source".into(),
            limit: 1 << 20
        }
    );
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let depth = 10_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let text = format!(
        r#"{{"nbformat": 4, "nbformat_minor": 5, "metadata": {{"x": {nested}}}, "cells": []}}"#
    );
    let err = import(&text);
    assert!(
        matches!(err, ImportError::TooDeep { limit: 100, .. }),
        "{err}"
    );

    // The same depth as a value built by hand, never parsed by serde_json.
    let mut value = json!([]);
    for _ in 0..depth {
        value = Value::Array(vec![value]);
    }
    // Assembled by hand: `json!` would serialize `value` recursively.
    let mut notebook = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []});
    notebook["metadata"]
        .as_object_mut()
        .unwrap()
        .insert("x".into(), value);
    let err = Notebook::from_ipynb(&notebook, &ImportLimits::default()).unwrap_err();
    assert!(
        matches!(err, ImportError::TooDeep { limit: 100, ref at } if at.starts_with("metadata.x[0]")),
        "{err}"
    );
    // Dropping a 10,000-deep Value recurses; leak it rather than depend on the test stack size.
    std::mem::forget(notebook);
}

#[test]
fn too_many_cells() {
    let cells: Vec<Value> = (0..11)
        .map(|_| json!({"cell_type": "raw", "metadata": {}, "source": ""}))
        .collect();
    let value = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells});
    let limits = ImportLimits {
        max_cells: 10,
        ..ImportLimits::default()
    };
    let err = Notebook::from_ipynb(&value, &limits).unwrap_err();
    assert_eq!(
        err,
        ImportError::TooManyCells {
            count: 11,
            limit: 10
        }
    );
    assert_eq!(
        err.to_string(),
        "notebook has 11 cells, more than the limit of 10"
    );
}

#[test]
fn a_too_large_value_is_refused() {
    let limits = ImportLimits {
        max_bytes: 1000,
        ..ImportLimits::default()
    };
    let value =
        notebook_with_cell(json!({"cell_type": "raw", "metadata": {}, "source": "a".repeat(2000)}));
    assert!(matches!(
        Notebook::from_ipynb(&value, &limits),
        Err(ImportError::TooLarge { limit: 1000, .. })
    ));
}
