//! nbformat v4 import and export.
//!
//! Import checks the notebook against nbformat v4's shape (wrong types are errors naming the
//! field, absent optional fields take their defaults), normalizes it the way nbformat's own
//! reader and upgrade to 4.5 do (multiline lists joined, missing or duplicate cell ids
//! replaced), and writes it in one transaction. Keys that nbformat v4 does not allow on cells
//! and outputs (such as a live `transient`) are left out.
//!
//! Export always writes nbformat 4.5 and is infallible: see [`crate::read`] for the repairs.

use std::collections::HashSet;

use serde_json::{Map as JsonMap, Value, json};
use yrs::{Any, Array, ArrayPrelim, In, Map, MapPrelim, Out, TextPrelim, Transact, TransactionMut};

use crate::error::ImportError;
use crate::limits::{self, ImportLimits};
use crate::read::{self, is_json_mime};
use crate::schema::{
    self, ATTACHMENTS, CELL_TYPE, Cell, CellType, EXECUTION_COUNT, EXECUTION_STATE, ExecutionState,
    ID, METADATA, NBFORMAT, NBFORMAT_MINOR, OUTPUT_TYPE, OUTPUTS, SOURCE,
};
use crate::{Notebook, ids};

/// The minor version every import is upgraded to and every export declares.
const NBFORMAT_MINOR_VERSION: i64 = 5;

impl Notebook {
    /// Imports an `.ipynb` from its JSON text, refusing input over `limits` before parsing it.
    pub fn from_ipynb_str(text: &str, limits: &ImportLimits) -> Result<Notebook, ImportError> {
        limits::check_text(text, limits)?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_owned();
            ImportError::NotJson {
                message,
                line: e.line(),
                column: e.column(),
            }
        })?;
        Notebook::from_ipynb(&value, limits)
    }

    /// A new notebook with no cells and its `meta` written (nbformat 4.5, empty metadata), as a
    /// freshly created notebook should start: replicas that later set notebook metadata then
    /// share one metadata map instead of racing to create it.
    pub fn blank() -> Notebook {
        let notebook = Notebook::new();
        notebook.write_meta(&JsonMap::new());
        notebook
    }

    fn write_meta(&self, metadata: &JsonMap<String, Value>) {
        let mut txn = self.doc().transact_mut();
        self.meta.insert(&mut txn, NBFORMAT, Any::from(4_i64));
        self.meta
            .insert(&mut txn, NBFORMAT_MINOR, Any::from(NBFORMAT_MINOR_VERSION));
        self.meta
            .insert(&mut txn, METADATA, schema::json_object_prelim(metadata));
    }

    /// Imports an already-parsed `.ipynb`.
    pub fn from_ipynb(value: &Value, limits: &ImportLimits) -> Result<Notebook, ImportError> {
        limits::check_value(value, limits)?;
        let (metadata, cells) = validate_notebook(value, limits)?;
        let notebook = Notebook::new();
        {
            let mut txn = notebook.doc().transact_mut();
            notebook.meta.insert(&mut txn, NBFORMAT, Any::from(4_i64));
            notebook
                .meta
                .insert(&mut txn, NBFORMAT_MINOR, Any::from(NBFORMAT_MINOR_VERSION));
            notebook
                .meta
                .insert(&mut txn, METADATA, schema::json_object_prelim(metadata));
            for cell in &cells {
                notebook.cells.push_back(&mut txn, cell_prelim(cell));
            }
        }
        Ok(notebook)
    }

    /// Exports the notebook as nbformat 4.5 JSON. Every cell has a unique id; whatever clients
    /// left in shapes nbformat does not allow is repaired (see the crate doc).
    pub fn to_ipynb(&self) -> Value {
        let txn = self.doc().transact();
        let mut metadata = match self
            .meta
            .get(&txn, METADATA)
            .map(|m| schema::out_to_json(&m, &txn))
        {
            Some(Value::Object(m)) => m,
            _ => JsonMap::new(),
        };
        read::repair_notebook_metadata(&mut metadata);
        let metadata = Value::Object(metadata);
        let cells: Vec<Value> = read::visible_cells(&self.cells, &txn)
            .iter()
            .map(|slot| cell_to_json(read::read_cell(slot, &txn)))
            .collect();
        json!({
            "cells": cells,
            "metadata": metadata,
            "nbformat": 4,
            "nbformat_minor": NBFORMAT_MINOR_VERSION,
        })
    }
}

/// A cell as nbformat JSON, keys in the sorted order nbformat writes them.
pub(crate) fn cell_to_json(cell: Cell) -> Value {
    let mut out = JsonMap::new();
    if let Some(attachments) = cell.attachments {
        out.insert(ATTACHMENTS.into(), attachments);
    }
    out.insert(CELL_TYPE.into(), cell.cell_type.as_str().into());
    if cell.cell_type == CellType::Code {
        out.insert(
            EXECUTION_COUNT.into(),
            cell.execution_count.map_or(Value::Null, Value::from),
        );
    }
    out.insert(ID.into(), cell.id.into());
    out.insert(METADATA.into(), cell.metadata);
    if cell.cell_type == CellType::Code {
        out.insert(OUTPUTS.into(), Value::Array(cell.outputs));
    }
    out.insert(SOURCE.into(), cell.source.into());
    Value::Object(out)
}

/// The `Y.Map` prelim of a cell, shaped as jupyter_ydoc's `create_ycell` shapes it.
pub(crate) fn cell_prelim(cell: &Cell) -> MapPrelim {
    let mut map = MapPrelim::default();
    map.insert(ID.into(), In::Any(Any::from(cell.id.as_str())));
    map.insert(
        CELL_TYPE.into(),
        In::Any(Any::from(cell.cell_type.as_str())),
    );
    map.insert(SOURCE.into(), TextPrelim::new(cell.source.as_str()).into());
    let metadata = match &cell.metadata {
        Value::Object(m) => schema::json_object_prelim(m),
        _ => MapPrelim::default(),
    };
    map.insert(METADATA.into(), In::Map(metadata));
    match cell.cell_type {
        CellType::Code => {
            let outputs: ArrayPrelim = cell.outputs.iter().map(output_prelim).collect();
            map.insert(OUTPUTS.into(), In::Array(outputs));
            let count = cell.execution_count.map_or(Any::Null, Any::from);
            map.insert(EXECUTION_COUNT.into(), In::Any(count));
            let state = cell.execution_state.unwrap_or(ExecutionState::Idle);
            map.insert(EXECUTION_STATE.into(), In::Any(Any::from(state.as_str())));
        }
        CellType::Markdown | CellType::Raw => {
            if let Some(attachments) = &cell.attachments {
                map.insert(
                    ATTACHMENTS.into(),
                    In::Any(schema::json_to_any(attachments)),
                );
            }
        }
    }
    map
}

/// The `Y.Map` prelim of an output: plain values, except a stream's text, which is a `Y.Text`
/// so the runtime can append to it.
pub(crate) fn output_prelim(output: &Value) -> In {
    let Value::Object(fields) = output else {
        return In::Any(schema::json_to_any(output));
    };
    let is_stream = fields.get(OUTPUT_TYPE).and_then(Value::as_str) == Some("stream");
    let map: MapPrelim = fields
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(text) if is_stream && k == "text" => {
                    TextPrelim::new(text.as_str()).into()
                }
                _ => In::Any(schema::json_to_any(v)),
            };
            (k.as_str(), value)
        })
        .collect();
    In::Map(map)
}

fn wrong_type(at: impl Into<String>, expected: &'static str, found: &Value) -> ImportError {
    ImportError::WrongType {
        at: at.into(),
        expected,
        found: schema::json_type_name(found),
    }
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a JsonMap<String, Value>, ImportError> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(at, "an object", value))
}

/// A string or a list of strings (nbformat's `multiline_string`), joined.
fn multiline(value: &Value, at: &str) -> Result<String, ImportError> {
    const EXPECTED: &str = "a string or an array of strings";
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Array(lines) => lines
            .iter()
            .map(|line| line.as_str().ok_or_else(|| wrong_type(at, EXPECTED, value)))
            .collect(),
        other => Err(wrong_type(at, EXPECTED, other)),
    }
}

fn required<'a>(
    fields: &'a JsonMap<String, Value>,
    at: &str,
    field: &'static str,
) -> Result<&'a Value, ImportError> {
    fields.get(field).ok_or_else(|| ImportError::MissingField {
        at: at.to_owned(),
        field,
    })
}

fn string_field(
    fields: &JsonMap<String, Value>,
    at: &str,
    field: &'static str,
) -> Result<String, ImportError> {
    let value = required(fields, at, field)?;
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| wrong_type(format!("{at}.{field}"), "a string", value))
}

fn execution_count(value: Option<&Value>, at: &str) -> Result<Option<i64>, ImportError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Ok(Some(n)),
            _ => Err(wrong_type(at, "a non-negative integer or null", v)),
        },
    }
}

fn mimebundle(value: &Value, at: &str) -> Result<Value, ImportError> {
    let bundle = object(value, at)?;
    let mut out = JsonMap::new();
    for (mime, data) in bundle {
        let data = if is_json_mime(mime) {
            data.clone()
        } else {
            Value::String(multiline(data, &format!("{at}[{mime:?}]"))?)
        };
        out.insert(mime.clone(), data);
    }
    Ok(Value::Object(out))
}

fn optional_object(
    fields: &JsonMap<String, Value>,
    at: &str,
    field: &str,
) -> Result<Value, ImportError> {
    match fields.get(field) {
        None => Ok(Value::Object(JsonMap::new())),
        Some(v) => Ok(Value::Object(object(v, &format!("{at}.{field}"))?.clone())),
    }
}

/// Checks and normalizes one output; `at` is its JSON path.
pub(crate) fn validate_output(
    value: &Value,
    at: &str,
    cell: usize,
    index: usize,
) -> Result<Value, ImportError> {
    let fields = object(value, at)?;
    let output_type = string_field(fields, at, "output_type")?;
    let mut out = JsonMap::new();
    match output_type.as_str() {
        "stream" => {
            out.insert("name".into(), string_field(fields, at, "name")?.into());
            out.insert(OUTPUT_TYPE.into(), output_type.into());
            let text = multiline(required(fields, at, "text")?, &format!("{at}.text"))?;
            out.insert("text".into(), text.into());
        }
        "display_data" | "execute_result" => {
            let data = mimebundle(required(fields, at, "data")?, &format!("{at}.data"))?;
            out.insert("data".into(), data);
            if output_type == "execute_result" {
                let count = execution_count(
                    fields.get(EXECUTION_COUNT),
                    &format!("{at}.execution_count"),
                )?;
                out.insert(
                    EXECUTION_COUNT.into(),
                    count.map_or(Value::Null, Value::from),
                );
            }
            out.insert(METADATA.into(), optional_object(fields, at, METADATA)?);
            out.insert(OUTPUT_TYPE.into(), output_type.into());
        }
        "error" => {
            out.insert("ename".into(), string_field(fields, at, "ename")?.into());
            out.insert("evalue".into(), string_field(fields, at, "evalue")?.into());
            out.insert(OUTPUT_TYPE.into(), output_type.into());
            let traceback = required(fields, at, "traceback")?;
            let lines = traceback
                .as_array()
                .filter(|lines| lines.iter().all(Value::is_string))
                .ok_or_else(|| {
                    wrong_type(format!("{at}.traceback"), "an array of strings", traceback)
                })?;
            out.insert("traceback".into(), Value::Array(lines.clone()));
        }
        _ => {
            return Err(ImportError::UnknownOutputType {
                cell,
                output: index,
                output_type,
            });
        }
    }
    Ok(Value::Object(out))
}

fn validate_cell(
    value: &Value,
    index: usize,
    used_ids: &mut HashSet<String>,
) -> Result<Cell, ImportError> {
    let at = format!("cells[{index}]");
    let fields = object(value, &at)?;
    let type_name = string_field(fields, &at, "cell_type")?;
    let cell_type = CellType::parse(&type_name).ok_or(ImportError::UnknownCellType {
        cell: index,
        cell_type: type_name,
    })?;
    let id = match fields.get(ID) {
        None => None,
        Some(Value::String(id)) if schema::is_valid_cell_id(id) => Some(id.clone()),
        Some(Value::String(id)) => {
            return Err(ImportError::InvalidCellId {
                cell: index,
                id: id.clone(),
            });
        }
        Some(other) => return Err(wrong_type(format!("{at}.id"), "a string", other)),
    };
    // Like nbformat's validator, a repeated id is replaced rather than refused: the notebook is
    // otherwise fine, and the document must never start out with two cells of one id.
    let id = match id {
        Some(id) if used_ids.insert(id.clone()) => id,
        _ => loop {
            let fresh = ids::fresh_cell_id();
            if used_ids.insert(fresh.clone()) {
                break fresh;
            }
        },
    };
    let source = multiline(required(fields, &at, "source")?, &format!("{at}.source"))?;
    let metadata = optional_object(fields, &at, METADATA)?;
    let mut cell = Cell {
        id,
        cell_type,
        source,
        metadata,
        outputs: Vec::new(),
        execution_count: None,
        execution_state: None,
        attachments: None,
    };
    match cell_type {
        CellType::Code => {
            cell.execution_count = execution_count(
                fields.get(EXECUTION_COUNT),
                &format!("{at}.execution_count"),
            )?;
            if let Some(outputs) = fields.get(OUTPUTS) {
                let list = outputs
                    .as_array()
                    .ok_or_else(|| wrong_type(format!("{at}.outputs"), "an array", outputs))?;
                for (i, output) in list.iter().enumerate() {
                    cell.outputs.push(validate_output(
                        output,
                        &format!("{at}.outputs[{i}]"),
                        index,
                        i,
                    )?);
                }
            }
        }
        CellType::Markdown | CellType::Raw => {
            if let Some(attachments) = fields.get(ATTACHMENTS) {
                let at = format!("{at}.attachments");
                let mut out = JsonMap::new();
                for (name, bundle) in object(attachments, &at)? {
                    out.insert(
                        name.clone(),
                        mimebundle(bundle, &format!("{at}[{name:?}]"))?,
                    );
                }
                cell.attachments = Some(Value::Object(out));
            }
        }
    }
    Ok(cell)
}

fn validate_notebook<'a>(
    value: &'a Value,
    limits: &ImportLimits,
) -> Result<(&'a JsonMap<String, Value>, Vec<Cell>), ImportError> {
    const ROOT: &str = "the notebook";
    let fields = object(value, ROOT)?;
    let nbformat = required(fields, ROOT, "nbformat")?;
    if nbformat.as_i64() != Some(4) {
        return Err(ImportError::UnsupportedVersion {
            found: nbformat.to_string(),
        });
    }
    let minor = required(fields, ROOT, "nbformat_minor")?;
    if minor.as_u64().is_none() {
        return Err(wrong_type(
            "nbformat_minor",
            "a non-negative integer",
            minor,
        ));
    }
    static EMPTY: std::sync::LazyLock<JsonMap<String, Value>> =
        std::sync::LazyLock::new(JsonMap::new);
    let metadata = match fields.get(METADATA) {
        None => &*EMPTY,
        Some(m) => object(m, "metadata")?,
    };
    let cells = required(fields, ROOT, "cells")?;
    let cells = cells
        .as_array()
        .ok_or_else(|| wrong_type("cells", "an array", cells))?;
    if cells.len() > limits.max_cells {
        return Err(ImportError::TooManyCells {
            count: cells.len(),
            limit: limits.max_cells,
        });
    }
    let mut used: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(cells.len());
    for (index, cell) in cells.iter().enumerate() {
        out.push(validate_cell(cell, index, &mut used)?);
    }
    Ok((metadata, out))
}

/// The `Y.Text` under `key`, first replacing a plain string (or nothing) there with one holding
/// the same text, so an edit always has a shared text to work on.
pub(crate) fn ensure_text(map: &yrs::MapRef, txn: &mut TransactionMut, key: &str) -> yrs::TextRef {
    match map.get(txn, key) {
        Some(Out::YText(text)) => text,
        other => {
            let current = other
                .and_then(|v| schema::out_to_text(&v, txn))
                .unwrap_or_default();
            map.insert(txn, key, TextPrelim::new(current))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ImportLimits {
        ImportLimits::default()
    }

    #[test]
    fn imports_and_exports_a_small_notebook() {
        let input = json!({
            "nbformat": 4, "nbformat_minor": 2, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            "cells": [
                {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", "text"]},
                {"cell_type": "code", "execution_count": 3, "metadata": {"tags": ["x"]}, "source": "print(1)",
                 "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n", "2\n"]}]}
            ]
        });
        let nb = Notebook::from_ipynb(&input, &limits()).unwrap();
        let out = nb.to_ipynb();
        assert_eq!(out["nbformat_minor"], 5);
        assert_eq!(out["cells"][0]["source"], "# Title\ntext");
        assert_eq!(out["cells"][1]["outputs"][0]["text"], "1\n2\n");
        assert_eq!(out["cells"][1]["execution_count"], 3);
        assert_ne!(out["cells"][0]["id"], out["cells"][1]["id"]);
    }

    #[test]
    fn blank_writes_meta_only() {
        let out = Notebook::blank().to_ipynb();
        assert_eq!(
            out,
            json!({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
        );
        assert_eq!(Notebook::new().to_ipynb(), out);
    }

    #[test]
    fn duplicate_ids_in_a_file_are_replaced() {
        let input = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
            {"id": "a", "cell_type": "raw", "metadata": {}, "source": "1"},
            {"id": "a", "cell_type": "raw", "metadata": {}, "source": "2"},
        ]});
        let out = Notebook::from_ipynb(&input, &limits()).unwrap().to_ipynb();
        assert_eq!(out["cells"].as_array().unwrap().len(), 2);
        assert_eq!(out["cells"][0]["id"], "a");
        assert_ne!(out["cells"][1]["id"], "a");
    }
}
