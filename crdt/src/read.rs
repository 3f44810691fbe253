//! Reading cells back out of the document, repairing what clients may have left in odd shapes.
//!
//! Two rules make every replica read the same notebook from the same document state:
//! - A cell without a valid id gets one derived from its `Y.Map`'s item id (`cell-<client>-<clock>`),
//!   which all replicas share.
//! - When several cells share an id (two replicas moved the same cell at once, and each move
//!   re-created it), the first one in array order is the cell; later copies are ignored. The
//!   order of items in a `Y.Array` converges, so every replica picks the same copy.

use std::collections::HashSet;

use serde_json::{Map as JsonMap, Value};
use yrs::{Any, Array, ArrayRef, BranchID, Map, MapRef, Out, ReadTxn};

use crate::schema::{
    self, ATTACHMENTS, CELL_TYPE, Cell, CellType, EXECUTION_COUNT, EXECUTION_STATE, ExecutionState,
    ID, METADATA, OUTPUT_TYPE, OUTPUTS, SOURCE,
};

/// Where a visible cell lives in the `cells` array.
pub(crate) struct Slot {
    /// Index in the raw `Y.Array`, duplicates and non-cells included.
    pub raw_index: u32,
    /// The cell's map.
    pub map: MapRef,
    /// The cell id as read (possibly derived, see the module doc).
    pub id: String,
}

/// The cells a reader sees, in order: one per id, the first copy in array order.
pub(crate) fn visible_cells<T: ReadTxn>(cells: &ArrayRef, txn: &T) -> Vec<Slot> {
    let mut seen = HashSet::new();
    let mut slots = Vec::new();
    for (raw_index, item) in (0u32..).zip(cells.iter(txn)) {
        let Out::YMap(map) = item else { continue };
        let id = match schema::map_string(&map, txn, ID) {
            Some(id) if schema::is_valid_cell_id(&id) => id,
            _ => derived_id(&map),
        };
        if seen.insert(id.clone()) {
            slots.push(Slot { raw_index, map, id });
        }
    }
    slots
}

/// Raw indices of every copy of the cell `id`, first (visible) copy first.
pub(crate) fn copies_of<T: ReadTxn>(cells: &ArrayRef, txn: &T, id: &str) -> Vec<u32> {
    (0u32..)
        .zip(cells.iter(txn))
        .filter_map(|(raw_index, item)| match item {
            Out::YMap(map) => {
                let stored = schema::map_string(&map, txn, ID);
                let matches = match stored {
                    Some(s) if schema::is_valid_cell_id(&s) => s == id,
                    _ => derived_id(&map) == id,
                };
                matches.then_some(raw_index)
            }
            _ => None,
        })
        .collect()
}

fn derived_id(map: &MapRef) -> String {
    let branch: &yrs::branch::Branch = map.as_ref();
    match branch.id() {
        BranchID::Nested(item) => format!("cell-{}-{}", item.client, item.clock),
        BranchID::Root(name) => format!("cell-{name}"),
    }
}

/// Reads one visible cell, repaired so that it exports as valid nbformat 4.5.
pub(crate) fn read_cell<T: ReadTxn>(slot: &Slot, txn: &T) -> Cell {
    let map = &slot.map;
    let source = map
        .get(txn, SOURCE)
        .and_then(|v| schema::out_to_text(&v, txn))
        .unwrap_or_default();
    let has_outputs = map.get(txn, OUTPUTS).is_some();
    // JupyterLab refuses cells of unknown type; exporting them as raw keeps their text.
    let cell_type = schema::map_string(map, txn, CELL_TYPE)
        .and_then(|t| CellType::parse(&t))
        .unwrap_or(if has_outputs {
            CellType::Code
        } else {
            CellType::Raw
        });
    let mut metadata = match map.get(txn, METADATA).map(|v| schema::out_to_json(&v, txn)) {
        Some(Value::Object(m)) => m,
        _ => JsonMap::new(),
    };
    repair_cell_metadata(&mut metadata, cell_type);
    let mut cell = Cell {
        id: slot.id.clone(),
        cell_type,
        source,
        metadata: Value::Object(metadata),
        outputs: Vec::new(),
        execution_count: None,
        execution_state: None,
        attachments: None,
    };
    match cell_type {
        CellType::Code => {
            if let Some(Out::YArray(outputs)) = map.get(txn, OUTPUTS) {
                cell.outputs = outputs
                    .iter(txn)
                    .filter_map(|o| read_output(&o, txn))
                    .collect();
            } else if let Some(Out::Any(Any::Array(outputs))) = map.get(txn, OUTPUTS) {
                cell.outputs = outputs
                    .iter()
                    .filter_map(|o| read_output(&Out::Any(o.clone()), txn))
                    .collect();
            }
            cell.execution_count = map
                .get(txn, EXECUTION_COUNT)
                .and_then(|v| schema::out_to_int(&v))
                .filter(|n| *n >= 0);
            cell.execution_state = schema::map_string(map, txn, EXECUTION_STATE)
                .and_then(|s| ExecutionState::parse(&s));
        }
        CellType::Markdown | CellType::Raw => {
            if let Some(Value::Object(attachments)) = map
                .get(txn, ATTACHMENTS)
                .map(|v| schema::out_to_json(&v, txn))
            {
                cell.attachments = Some(Value::Object(repair_attachments(attachments)));
            }
        }
    }
    cell
}

/// The fields of a map-like stored value, whether a `Y.Map` or a plain JSON object.
fn fields<T: ReadTxn>(out: &Out, txn: &T) -> Option<Vec<(String, Out)>> {
    match out {
        Out::YMap(map) => Some(map.iter(txn).map(|(k, v)| (k.to_string(), v)).collect()),
        Out::Any(Any::Map(map)) => Some(
            map.iter()
                .map(|(k, v)| (k.clone(), Out::Any(v.clone())))
                .collect(),
        ),
        _ => None,
    }
}

/// Reads one output as nbformat v4 JSON, keeping only the fields the schema allows; `None` for
/// something that is not an output at all.
pub(crate) fn read_output<T: ReadTxn>(out: &Out, txn: &T) -> Option<Value> {
    let fields = fields(out, txn)?;
    let get = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let json = |key: &str| get(key).map(|v| schema::out_to_json(v, txn));
    let string = |key: &str| match json(key) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    let object = |key: &str| match json(key) {
        Some(Value::Object(m)) => m,
        _ => JsonMap::new(),
    };
    let output_type = match json(OUTPUT_TYPE) {
        Some(Value::String(s)) => s,
        _ => return None,
    };
    let mut result = JsonMap::new();
    match output_type.as_str() {
        "stream" => {
            let name = match json("name") {
                Some(Value::String(s)) => s,
                _ => "stdout".to_owned(),
            };
            let text = get("text")
                .and_then(|v| schema::out_to_text(v, txn))
                .unwrap_or_default();
            result.insert("name".into(), name.into());
            result.insert(OUTPUT_TYPE.into(), output_type.into());
            result.insert("text".into(), text.into());
        }
        "display_data" | "execute_result" => {
            result.insert(
                "data".into(),
                Value::Object(repair_mimebundle(object("data"))),
            );
            if output_type == "execute_result" {
                let count = get(EXECUTION_COUNT)
                    .and_then(schema::out_to_int)
                    .filter(|n| *n >= 0);
                result.insert(
                    EXECUTION_COUNT.into(),
                    count.map_or(Value::Null, Value::from),
                );
            }
            result.insert(METADATA.into(), Value::Object(object(METADATA)));
            result.insert(OUTPUT_TYPE.into(), output_type.into());
        }
        "error" => {
            let traceback = match json("traceback") {
                Some(Value::Array(lines)) => lines.into_iter().filter(Value::is_string).collect(),
                Some(Value::String(s)) => vec![Value::String(s)],
                _ => Vec::new(),
            };
            result.insert("ename".into(), string("ename").into());
            result.insert("evalue".into(), string("evalue").into());
            result.insert(OUTPUT_TYPE.into(), output_type.into());
            result.insert("traceback".into(), Value::Array(traceback));
        }
        _ => return None,
    }
    Some(Value::Object(result))
}

/// Whether nbformat lets a mime type hold any JSON (`application/json`, `application/*+json`).
pub(crate) fn is_json_mime(mime: &str) -> bool {
    mime.strip_prefix("application/")
        .is_some_and(|rest| rest == "json" || rest.ends_with("+json"))
}

/// Non-JSON mime types must hold text: a list of lines is joined, anything else dropped.
pub(crate) fn repair_mimebundle(bundle: JsonMap<String, Value>) -> JsonMap<String, Value> {
    bundle
        .into_iter()
        .filter_map(|(mime, value)| {
            if is_json_mime(&mime) {
                return Some((mime, value));
            }
            match value {
                Value::String(_) => Some((mime, value)),
                Value::Array(lines) if lines.iter().all(Value::is_string) => {
                    let text: String = lines.iter().filter_map(Value::as_str).collect();
                    Some((mime, Value::String(text)))
                }
                _ => None,
            }
        })
        .collect()
}

fn repair_attachments(attachments: JsonMap<String, Value>) -> JsonMap<String, Value> {
    attachments
        .into_iter()
        .filter_map(|(name, bundle)| match bundle {
            Value::Object(b) => Some((name, Value::Object(repair_mimebundle(b)))),
            _ => None,
        })
        .collect()
}

/// Drops the few cell metadata keys whose shape nbformat's schema fixes, when a client wrote
/// them wrong; everything else is free-form and kept.
fn repair_cell_metadata(metadata: &mut JsonMap<String, Value>, cell_type: CellType) {
    if metadata.get("jupyter").is_some_and(|v| !v.is_object()) {
        metadata.remove("jupyter");
    }
    if metadata
        .get("name")
        .is_some_and(|v| v.as_str().is_none_or(str::is_empty))
    {
        metadata.remove("name");
    }
    if let Some(tags) = metadata.get_mut("tags") {
        match tags {
            Value::Array(items) => {
                let mut seen = HashSet::new();
                items.retain(|t| {
                    t.as_str().is_some_and(|s| {
                        !s.is_empty() && !s.contains(',') && seen.insert(s.to_owned())
                    })
                });
            }
            _ => {
                metadata.remove("tags");
            }
        }
    }
    match cell_type {
        CellType::Code => {
            if metadata.get("collapsed").is_some_and(|v| !v.is_boolean()) {
                metadata.remove("collapsed");
            }
            if metadata
                .get("scrolled")
                .is_some_and(|v| !v.is_boolean() && v.as_str() != Some("auto"))
            {
                metadata.remove("scrolled");
            }
            match metadata.get_mut("execution") {
                Some(Value::Object(times)) => times.retain(|_, v| v.is_string()),
                Some(_) => {
                    metadata.remove("execution");
                }
                None => {}
            }
        }
        CellType::Raw => {
            if metadata.get("format").is_some_and(|v| !v.is_string()) {
                metadata.remove("format");
            }
        }
        CellType::Markdown => {}
    }
}

/// Drops notebook metadata keys whose shape nbformat's schema fixes, when a client wrote them
/// wrong.
pub(crate) fn repair_notebook_metadata(metadata: &mut JsonMap<String, Value>) {
    let has_strings =
        |v: &Value, keys: &[&str]| keys.iter().all(|k| v.get(k).is_some_and(Value::is_string));
    if metadata
        .get("kernelspec")
        .is_some_and(|v| !v.is_object() || !has_strings(v, &["name", "display_name"]))
    {
        metadata.remove("kernelspec");
    }
    let language_ok = |v: &Value| {
        v.is_object()
            && has_strings(v, &["name"])
            && ["file_extension", "mimetype", "pygments_lexer"]
                .iter()
                .all(|k| v.get(k).is_none_or(Value::is_string))
            && v.get("codemirror_mode")
                .is_none_or(|m| m.is_string() || m.is_object())
    };
    if metadata
        .get("language_info")
        .is_some_and(|v| !language_ok(v))
    {
        metadata.remove("language_info");
    }
    if metadata
        .get("orig_nbformat")
        .is_some_and(|v| v.as_i64().is_none_or(|n| n < 1))
    {
        metadata.remove("orig_nbformat");
    }
    if metadata.get("title").is_some_and(|v| !v.is_string()) {
        metadata.remove("title");
    }
    if metadata.get("authors").is_some_and(|v| !v.is_array()) {
        metadata.remove("authors");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_mimes() {
        assert!(is_json_mime("application/json"));
        assert!(is_json_mime("application/vnd.vegalite.v2+json"));
        assert!(!is_json_mime("application/javascript"));
        assert!(!is_json_mime("text/json"));
    }

    #[test]
    fn mimebundle_repair_joins_lines_and_drops_non_text() {
        let bundle =
            json!({"text/plain": ["a\n", "b"], "image/png": 3, "application/json": {"x": 1}});
        let Value::Object(bundle) = bundle else {
            unreachable!()
        };
        let repaired = Value::Object(repair_mimebundle(bundle));
        assert_eq!(
            repaired,
            json!({"text/plain": "a\nb", "application/json": {"x": 1}})
        );
    }

    #[test]
    fn cell_metadata_repair_keeps_free_form_keys() {
        let Value::Object(mut m) = json!({
            "collapsed": "yes", "scrolled": "auto", "tags": ["a", "a", "b,c", 3], "custom": {"k": 1}
        }) else {
            unreachable!()
        };
        repair_cell_metadata(&mut m, CellType::Code);
        assert_eq!(
            Value::Object(m),
            json!({"scrolled": "auto", "tags": ["a"], "custom": {"k": 1}})
        );
    }
}
