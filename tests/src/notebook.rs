//! Notebooks as JSON for tests: building ones of code cells, comparing them, and validating
//! them with Python `nbformat`.
//!
//! Tandem's export, `@jupyter/ydoc`'s `YNotebook.toJSON()` and `jupyter_ydoc`'s
//! `YNotebook.get()` all describe the same document, but nbformat allows the same content to be
//! written in more than one way. [`normalize`] maps each to one form so equality means "same
//! notebook"; each rule says which writer it is there for. Anything it does not cover is a real
//! difference and makes the comparison fail.

use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

/// An nbformat v4 code cell `id` with `source`, never run.
pub fn code_cell(id: &str, source: &str) -> Value {
    serde_json::json!({"id": id, "cell_type": "code", "source": source, "metadata": {},
                       "outputs": [], "execution_count": null})
}

/// An nbformat v4.5 notebook of the code cells `(id, source)`, in order.
pub fn code_notebook(cells: &[(&str, &str)]) -> Value {
    let cells: Vec<Value> = cells
        .iter()
        .map(|(id, source)| code_cell(id, source))
        .collect();
    serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})
}

/// The notebook `nb` in one canonical form:
/// - object keys sorted (JSON key order carries no meaning, and the writers differ);
/// - integral floats written as integers (`pycrdt` reads Yjs numbers as floats and
///   `jupyter_ydoc` casts some back, JavaScript has only doubles);
/// - nbformat "multiline strings" (cell `source`, stream `text`, mime bundle values in `data`
///   and `attachments`) joined when given as a list of lines: the corpus stores lists, the Yjs
///   schema stores one `Y.Text`;
/// - a cell's `execution_state` dropped: it is live state of the Yjs schema, not nbformat
///   (`jupyter_ydoc` drops it, `@jupyter/ydoc` never reads it into JSON);
/// - an empty `attachments` on a markdown or raw cell dropped (`jupyter_ydoc` drops it,
///   `@jupyter/ydoc` writes `undefined`, which JSON omits).
pub fn normalize(nb: &Value) -> Value {
    let mut nb = canonical(nb);
    if let Some(cells) = nb.get_mut("cells").and_then(Value::as_array_mut) {
        for cell in cells {
            normalize_cell(cell);
        }
    }
    nb
}

fn normalize_cell(cell: &mut Value) {
    let Some(cell) = cell.as_object_mut() else {
        return;
    };
    cell.remove("execution_state");
    join_multiline(cell.get_mut("source"));
    let is_text_cell = matches!(
        cell.get("cell_type").and_then(Value::as_str),
        Some("markdown") | Some("raw")
    );
    let empty_attachments = cell
        .get("attachments")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty);
    if is_text_cell && empty_attachments {
        cell.remove("attachments");
    }
    if let Some(attachments) = cell.get_mut("attachments").and_then(Value::as_object_mut) {
        for bundle in attachments.values_mut().filter_map(Value::as_object_mut) {
            bundle
                .values_mut()
                .for_each(|value| join_multiline(Some(value)));
        }
    }
    if let Some(outputs) = cell.get_mut("outputs").and_then(Value::as_array_mut) {
        for output in outputs.iter_mut().filter_map(Value::as_object_mut) {
            if output.get("output_type").and_then(Value::as_str) == Some("stream") {
                join_multiline(output.get_mut("text"));
            }
            if let Some(data) = output.get_mut("data").and_then(Value::as_object_mut) {
                // A list of strings in a mime bundle is a multiline string; JSON mime types
                // hold objects, which are left alone.
                data.values_mut()
                    .for_each(|value| join_multiline(Some(value)));
            }
        }
    }
}

fn join_multiline(value: Option<&mut Value>) {
    let Some(value) = value else {
        return;
    };
    let Some(lines) = value.as_array() else {
        return;
    };
    let joined: Option<String> = lines.iter().map(Value::as_str).collect();
    if let Some(joined) = joined {
        *value = Value::String(joined);
    }
}

/// Sorted keys and integral numbers as integers, recursively.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let sorted: Map<String, Value> = keys
                .into_iter()
                .map(|key| (key.clone(), canonical(&map[key])))
                .collect();
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Number(number) => {
            // JSON integers past 2^53 are not exact in JavaScript anyway; only integral values
            // that survive the round trip are rewritten.
            match number.as_f64() {
                Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < 9.0e15 => {
                    #[allow(clippy::cast_possible_truncation)]
                    let integer = float as i64;
                    Value::from(integer)
                }
                _ => value.clone(),
            }
        }
        _ => value.clone(),
    }
}

/// Where `a` and `b` first differ, as a JSON path with both values, or `None` when equal.
/// Made for assertion messages: a whole notebook in a panic message is unreadable.
pub fn first_difference(a: &Value, b: &Value) -> Option<String> {
    difference_at("$", a, b)
}

fn difference_at(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(a_map), Value::Object(b_map)) => {
            for (key, a_value) in a_map {
                let child = format!("{path}.{key}");
                match b_map.get(key) {
                    Some(b_value) => {
                        if let Some(found) = difference_at(&child, a_value, b_value) {
                            return Some(found);
                        }
                    }
                    None => return Some(format!("{child}: only on the left: {}", short(a_value))),
                }
            }
            b_map
                .iter()
                .find(|(key, _)| !a_map.contains_key(*key))
                .map(|(key, value)| format!("{path}.{key}: only on the right: {}", short(value)))
        }
        (Value::Array(a_items), Value::Array(b_items)) => {
            for (index, (a_item, b_item)) in a_items.iter().zip(b_items).enumerate() {
                if let Some(found) = difference_at(&format!("{path}[{index}]"), a_item, b_item) {
                    return Some(found);
                }
            }
            (a_items.len() != b_items.len()).then(|| {
                format!(
                    "{path}: length {} on the left, {} on the right",
                    a_items.len(),
                    b_items.len()
                )
            })
        }
        _ if a == b => None,
        _ => Some(format!("{path}: left {} / right {}", short(a), short(b))),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 300 {
        let cut: String = text.chars().take(300).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The Python that validates stdin as a notebook without converting it (a 4.5 notebook must
/// be valid 4.5, not merely upgradable).
const VALIDATE_PY: &str = r#"
import sys
import nbformat
nb = nbformat.reads(sys.stdin.read(), as_version=nbformat.NO_CONVERT)
nbformat.validate(nb)
print(f"valid nbformat {nb.nbformat}.{nb.nbformat_minor}")
"#;

/// Validates `nb` with Python `nbformat.validate` in the interop venv ([`crate::python`]).
pub async fn nbformat_validate(nb: &Value) -> Result<()> {
    let python = crate::python()?;
    let mut child = tokio::process::Command::new(python)
        .args(["-c", VALIDATE_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning python for nbformat.validate")?;
    let mut stdin = child.stdin.take().context("python has no stdin pipe")?;
    stdin
        .write_all(nb.to_string().as_bytes())
        .await
        .context("writing the notebook to python")?;
    drop(stdin);
    let output = child
        .wait_with_output()
        .await
        .context("waiting for nbformat.validate")?;
    if !output.status.success() {
        bail!(
            "nbformat.validate rejected the notebook:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn normalize_unifies_what_the_writers_legitimately_differ_in() {
        let from_corpus = json!({
            "nbformat": 4, "nbformat_minor": 5, "metadata": {"b": 1, "a": 2.0},
            "cells": [
                {"id": "x", "cell_type": "markdown", "source": ["# a\n", "b"], "metadata": {},
                 "attachments": {}},
                {"id": "y", "cell_type": "code", "source": "1", "metadata": {},
                 "execution_count": 3, "execution_state": "idle",
                 "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n", "2"]},
                             {"output_type": "display_data", "metadata": {},
                              "data": {"text/plain": ["a\n", "b"], "application/json": {"k": [1]}}}]}
            ]
        });
        let from_yjs = json!({
            "cells": [
                {"cell_type": "markdown", "id": "x", "metadata": {}, "source": "# a\nb"},
                {"cell_type": "code", "id": "y", "metadata": {}, "source": "1",
                 "execution_count": 3.0,
                 "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n2"},
                             {"output_type": "display_data", "metadata": {},
                              "data": {"text/plain": "a\nb", "application/json": {"k": [1.0]}}}]}
            ],
            "metadata": {"a": 2, "b": 1}, "nbformat": 4.0, "nbformat_minor": 5
        });
        assert_eq!(normalize(&from_corpus), normalize(&from_yjs));
        assert_eq!(
            first_difference(&normalize(&from_corpus), &normalize(&from_yjs)),
            None
        );
    }

    #[test]
    fn normalize_keeps_real_differences() {
        let a = json!({"cells": [{"cell_type": "code", "source": "ab", "outputs": []}]});
        let b = json!({"cells": [{"cell_type": "code", "source": "ba", "outputs": []}]});
        assert_ne!(normalize(&a), normalize(&b));
        let found = first_difference(&normalize(&a), &normalize(&b)).unwrap();
        assert!(found.starts_with("$.cells[0].source"), "{found}");

        let fractional = json!({"metadata": {"x": 0.5}});
        assert_eq!(normalize(&fractional), fractional);
    }
}
