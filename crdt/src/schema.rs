//! The YNotebook schema: root and key names, the typed cell values, and the conversions between
//! JSON and yrs values that every other module shares.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map as JsonMap, Value};
use yrs::types::ToJson;
use yrs::{
    Any, Array, ArrayPrelim, GetString, In, Map, MapPrelim, Number, Out, ReadTxn, TextPrelim,
};

/// Root `Y.Array` of cell `Y.Map`s.
pub const CELLS: &str = "cells";
/// Root `Y.Map` holding `nbformat`, `nbformat_minor` and `metadata`.
pub const META: &str = "meta";
/// Root `Y.Map` of shared runtime state (Tandem keeps the kernel's state under `kernel`).
pub const STATE: &str = "state";
/// Key of `state`: the notebook's title, mirrored by the collab service on every rename so
/// open pages update at once.
pub const STATE_TITLE: &str = "title";
/// Key of `state`: changed by the collab service after every comment change, so open pages
/// know to fetch the threads again (comments themselves live outside the document).
pub const STATE_COMMENTS_REV: &str = "comments_rev";
/// Key of a code cell's `Y.Map`: who ran it last, `{"id", "name"}`, written by the runtime
/// when the cell starts. Tandem's own: the `.ipynb` export leaves it out.
pub const EXECUTION_BY: &str = "execution_by";
/// Key of a code cell's `Y.Map`: `true` while the cell is stale (its code or a name it used
/// changed since it ran), absent otherwise; written by the runtime. Tandem's own: the
/// `.ipynb` export leaves it out.
pub const STALE: &str = "tandem_stale";

/// Key of `state`: the runtime's shared state (`status`, `queue`, `execution_count`, …).
pub const STATE_KERNEL: &str = "kernel";
/// Key of `state`: where a notebook opened from git came from (`url`, `branch`, `path`,
/// `base_commit`), written by the collab service at import and after each push.
pub const STATE_GIT: &str = "git";

/// Keys of a cell's `Y.Map` that only the runtime writes: what a run produced and who asked
/// for it. Clients may create a cell with them at their initial values (see
/// [`crate::guard`]) or carry them along when moving a cell, and never write them afterwards.
pub const RUNTIME_CELL_KEYS: [&str; 5] = [
    OUTPUTS,
    EXECUTION_COUNT,
    EXECUTION_STATE,
    EXECUTION_BY,
    STALE,
];

/// Keys of the `state` map that only the runtime ([`STATE_KERNEL`]) or the collab service
/// ([`STATE_GIT`], [`STATE_TITLE`], [`STATE_COMMENTS_REV`]) writes; each has its own API.
/// Other keys of `state` (Jupyter's `dirty`, `path`) stay open to editors.
pub const SERVER_STATE_KEYS: [&str; 4] = [STATE_KERNEL, STATE_GIT, STATE_TITLE, STATE_COMMENTS_REV];

/// Key of a cell's `Y.Map`: its id.
pub const ID: &str = "id";
/// Key of a cell's `Y.Map`: `code`, `markdown` or `raw`.
pub const CELL_TYPE: &str = "cell_type";
/// Key of a cell's `Y.Map`: its source, a `Y.Text`.
pub const SOURCE: &str = "source";
/// Key of a cell's `Y.Map`: its metadata, a `Y.Map` of plain JSON values.
pub const METADATA: &str = "metadata";
/// Key of a code cell's `Y.Map`: its outputs, a `Y.Array` of `Y.Map`s.
pub const OUTPUTS: &str = "outputs";
pub(crate) const EXECUTION_COUNT: &str = "execution_count";
pub(crate) const EXECUTION_STATE: &str = "execution_state";
pub(crate) const ATTACHMENTS: &str = "attachments";
pub(crate) const OUTPUT_TYPE: &str = "output_type";
pub(crate) const NBFORMAT: &str = "nbformat";
pub(crate) const NBFORMAT_MINOR: &str = "nbformat_minor";

/// The kind of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CellType {
    /// Executable code with outputs and an execution count.
    Code,
    /// Markdown text, optionally with attachments.
    Markdown,
    /// Raw text passed through untouched by renderers, optionally with attachments.
    Raw,
}

impl CellType {
    /// The nbformat name: `"code"`, `"markdown"` or `"raw"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CellType::Code => "code",
            CellType::Markdown => "markdown",
            CellType::Raw => "raw",
        }
    }

    /// Parses an nbformat name; `None` for anything else.
    pub fn parse(name: &str) -> Option<CellType> {
        match name {
            "code" => Some(CellType::Code),
            "markdown" => Some(CellType::Markdown),
            "raw" => Some(CellType::Raw),
            _ => None,
        }
    }
}

impl fmt::Display for CellType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code cell's run state, as stored in its `execution_state` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionState {
    /// Not queued or running.
    Idle,
    /// Waiting for the kernel.
    Queued,
    /// Being executed now.
    Running,
}

impl ExecutionState {
    /// The stored name: `"idle"`, `"queued"` or `"running"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionState::Idle => "idle",
            ExecutionState::Queued => "queued",
            ExecutionState::Running => "running",
        }
    }

    /// Parses a stored name; `None` for anything else.
    pub fn parse(name: &str) -> Option<ExecutionState> {
        match name {
            "idle" => Some(ExecutionState::Idle),
            "queued" => Some(ExecutionState::Queued),
            "running" => Some(ExecutionState::Running),
            _ => None,
        }
    }
}

/// A cell as read back from the document, repaired the same way as in
/// [`Notebook::to_ipynb`](crate::Notebook::to_ipynb).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The cell id, unique within the notebook.
    pub id: String,
    /// Code, markdown or raw.
    pub cell_type: CellType,
    /// The whole source text.
    pub source: String,
    /// Cell metadata: always a JSON object.
    pub metadata: Value,
    /// nbformat v4 outputs (code cells; empty otherwise), stream text joined into one string.
    pub outputs: Vec<Value>,
    /// The execution count (code cells; `None` when never run or cleared).
    pub execution_count: Option<i64>,
    /// The run state (code cells; `None` when absent or not a known state).
    pub execution_state: Option<ExecutionState>,
    /// Attachments (markdown and raw cells), when present.
    pub attachments: Option<Value>,
}

/// A cell to insert with [`Notebook::insert_cell`](crate::Notebook::insert_cell).
#[derive(Debug, Clone, PartialEq)]
pub struct NewCell {
    /// The id to give the cell; `None` generates a fresh UUID.
    pub id: Option<String>,
    /// Code, markdown or raw.
    pub cell_type: CellType,
    /// Initial source text.
    pub source: String,
    /// Initial cell metadata.
    pub metadata: JsonMap<String, Value>,
}

impl NewCell {
    /// A code cell with this source, no outputs and no execution count.
    pub fn code(source: impl Into<String>) -> NewCell {
        NewCell::new(CellType::Code, source)
    }

    /// A markdown cell with this source.
    pub fn markdown(source: impl Into<String>) -> NewCell {
        NewCell::new(CellType::Markdown, source)
    }

    /// A raw cell with this source.
    pub fn raw(source: impl Into<String>) -> NewCell {
        NewCell::new(CellType::Raw, source)
    }

    /// A cell of any type with this source, a generated id and empty metadata.
    pub fn new(cell_type: CellType, source: impl Into<String>) -> NewCell {
        NewCell {
            id: None,
            cell_type,
            source: source.into(),
            metadata: JsonMap::new(),
        }
    }

    /// The same cell with a chosen id.
    pub fn with_id(mut self, id: impl Into<String>) -> NewCell {
        self.id = Some(id.into());
        self
    }
}

/// Whether `id` follows nbformat 4.5's cell id rule.
pub fn is_valid_cell_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Converts JSON to a yrs value for storing as a plain (non-collaborative) value.
pub fn json_to_any(value: &Value) -> Any {
    match value {
        Value::Null => Any::Null,
        Value::Bool(b) => Any::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Any::Number(Number::Int(i)),
            None => Any::Number(Number::Float(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => Any::String(Arc::from(s.as_str())),
        Value::Array(items) => Any::Array(items.iter().map(json_to_any).collect()),
        Value::Object(map) => object_to_any(map),
    }
}

/// [`json_to_any`] of a JSON object.
pub fn object_to_any(map: &JsonMap<String, Value>) -> Any {
    Any::Map(Arc::new(
        map.iter()
            .map(|(k, v)| (k.clone(), json_to_any(v)))
            .collect::<HashMap<_, _>>(),
    ))
}

/// A JSON object as a `Y.Map` prelim whose values are plain JSON: how both jupyter_ydoc and
/// @jupyter/ydoc store cell and notebook metadata.
pub(crate) fn json_object_prelim(map: &JsonMap<String, Value>) -> MapPrelim {
    map.iter()
        .map(|(k, v)| (k.as_str(), In::Any(json_to_any(v))))
        .collect()
}

fn number_to_json(n: &Number) -> Value {
    match *n {
        Number::Int(i) => Value::from(i),
        // pycrdt stores every Python int as a float, JavaScript has no integers, and the lib0
        // encoding turns integers beyond 32 bits into floats; so, like jupyter_ydoc's `get()`,
        // an integral float reads as an integer.
        Number::Float(f) => {
            if f.fract() == 0.0 && f.abs() <= Number::F64_MAX_SAFE_INTEGER {
                Value::from(f as i64)
            } else {
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
        }
    }
}

/// Converts a stored plain value to JSON. Object keys come out sorted, because yrs keeps no key
/// order and every replica must export the same notebook.
pub(crate) fn any_to_json(any: &Any) -> Value {
    match any {
        Any::Null | Any::Undefined => Value::Null,
        Any::Bool(b) => Value::Bool(*b),
        Any::Number(n) => number_to_json(n),
        Any::String(s) => Value::String(s.to_string()),
        Any::Buffer(bytes) => Value::Array(bytes.iter().map(|b| Value::from(*b)).collect()),
        Any::Array(items) => Value::Array(items.iter().map(any_to_json).collect()),
        Any::Map(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), any_to_json(&map[k])))
                    .collect(),
            )
        }
    }
}

/// Converts any stored value, shared types included, to JSON: text becomes a string, maps and
/// arrays become objects and arrays, anything without a JSON meaning becomes null.
pub(crate) fn out_to_json<T: ReadTxn>(out: &Out, txn: &T) -> Value {
    match out {
        Out::Any(any) => any_to_json(any),
        Out::YText(text) => Value::String(text.get_string(txn)),
        Out::YArray(array) => Value::Array(array.iter(txn).map(|v| out_to_json(&v, txn)).collect()),
        Out::YMap(map) => {
            let mut entries: Vec<(String, Value)> = map
                .iter(txn)
                .map(|(k, v)| (k.to_string(), out_to_json(&v, txn)))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Out::YXmlText(text) => Value::String(text.get_string(txn)),
        other => any_to_json(&other.to_json(txn)),
    }
}

/// Deep-copies a stored value into a prelim that recreates it elsewhere, keeping shared types
/// shared (a `Y.Text` stays a `Y.Text`) so a moved cell has the same shape as the original.
pub(crate) fn out_to_in<T: ReadTxn>(out: &Out, txn: &T) -> In {
    match out {
        Out::Any(any) => In::Any(any.clone()),
        Out::YText(text) => TextPrelim::new(text.get_string(txn)).into(),
        Out::YArray(array) => In::Array(
            array
                .iter(txn)
                .map(|v| out_to_in(&v, txn))
                .collect::<ArrayPrelim>(),
        ),
        Out::YMap(map) => In::Map(
            map.iter(txn)
                .map(|(k, v)| (k.to_string(), out_to_in(&v, txn)))
                .collect::<MapPrelim>(),
        ),
        other => In::Any(json_to_any(&out_to_json(other, txn))),
    }
}

/// A stored string-ish value: `Y.Text`, a plain string, or (as older clients wrote multiline
/// text) a list of strings.
pub(crate) fn out_to_text<T: ReadTxn>(out: &Out, txn: &T) -> Option<String> {
    match out {
        Out::YText(text) => Some(text.get_string(txn)),
        Out::Any(Any::String(s)) => Some(s.to_string()),
        Out::Any(Any::Array(items)) => items
            .iter()
            .map(|item| match item {
                Any::String(s) => Some(s.as_ref()),
                _ => None,
            })
            .collect::<Option<Vec<&str>>>()
            .map(|parts| parts.concat()),
        _ => None,
    }
}

/// A stored number that is a whole number, as an integer.
pub(crate) fn out_to_int(out: &Out) -> Option<i64> {
    match out {
        Out::Any(Any::Number(Number::Int(i))) => Some(*i),
        Out::Any(Any::Number(Number::Float(f)))
            if f.fract() == 0.0 && f.abs() <= Number::F64_MAX_SAFE_INTEGER =>
        {
            Some(*f as i64)
        }
        _ => None,
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a plain string field of a map.
pub(crate) fn map_string<T: ReadTxn>(map: &yrs::MapRef, txn: &T, key: &str) -> Option<String> {
    match map.get(txn, key) {
        Some(Out::Any(Any::String(s))) => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cell_id_rule_matches_nbformat() {
        assert!(is_valid_cell_id("2fcdfa53"));
        assert!(is_valid_cell_id("651e71b1-c7a1-4f5e-9d2f-598cd8a09e4d"));
        assert!(is_valid_cell_id("a_b"));
        assert!(!is_valid_cell_id(""));
        assert!(!is_valid_cell_id("has space"));
        assert!(!is_valid_cell_id(&"x".repeat(65)));
    }

    #[test]
    fn json_round_trips_through_any() {
        let value = json!({"b": [1, 2.5, null, true, "s"], "a": {"x": -3}});
        assert_eq!(any_to_json(&json_to_any(&value)), value);
    }

    #[test]
    fn integral_floats_read_as_integers() {
        let any = Any::Number(Number::Float(1_700_000_000_000.0));
        assert_eq!(any_to_json(&any), json!(1_700_000_000_000_i64));
        let any = Any::Number(Number::Float(300.0));
        assert!(any_to_json(&any).is_i64());
        assert!(any_to_json(&Any::Number(Number::Float(0.5))).is_f64());
    }
}
