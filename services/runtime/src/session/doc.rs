//! The session's reads and writes of the shared document that `tandem_crdt::Notebook` has no
//! typed edit for: a cell's source and type by id, and replacing one output's
//! `data`/`metadata` in place (for `update_display_data` and the truncation notice).
//! `state.kernel` is `tandem_crdt::kernel`'s ([`KernelState`], [`write_kernel_state`]).
//!
//! Cells are found the way `tandem_crdt` readers find them: the first `Y.Map` in the `cells`
//! array whose `id` matches (later copies are leftovers of concurrent moves).

use serde_json::{Map as JsonMap, Value};
use yrs::{Any, Array, ArrayRef, GetString, Map, MapRef, Out, ReadTxn, Transact};

use tandem_crdt::Notebook;
use tandem_crdt::schema::{self, CELLS};

/// The key of the runtime's map under the root `state` map.
pub const KERNEL_KEY: &str = tandem_crdt::schema::STATE_KERNEL;

pub use tandem_crdt::kernel::{InputPrompt, KernelState, KernelStatus, write_kernel_state};

/// Marks the kernel of a notebook whose runtime node vanished as dead (see
/// [`tandem_crdt::kernel::mark_kernel_dead`]); false when the state shows no live kernel.
pub(crate) fn mark_orphaned(notebook: &Notebook, reason: &str) -> bool {
    notebook.mark_kernel_dead(reason)
}

/// Why a cell id cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    NotFound,
    NotCode,
}

/// The source of the code cell `id`, read now.
pub(crate) fn code_source(notebook: &Notebook, id: &str) -> Result<String, Lookup> {
    let txn = notebook.doc().transact();
    let cell = find_cell(&txn, id).ok_or(Lookup::NotFound)?;
    if string(&cell, &txn, "cell_type").as_deref() != Some("code") {
        return Err(Lookup::NotCode);
    }
    Ok(match cell.get(&txn, "source") {
        Some(Out::YText(text)) => text.get_string(&txn),
        Some(Out::Any(Any::String(s))) => s.to_string(),
        _ => String::new(),
    })
}

/// The ids of the code cells, in document order.
pub(crate) fn code_cell_ids(notebook: &Notebook) -> Vec<String> {
    notebook
        .cells()
        .into_iter()
        .filter(|cell| cell.cell_type == tandem_crdt::CellType::Code)
        .map(|cell| cell.id)
        .collect()
}

/// Every code cell's 1-based place among all cells, id and source, in document order; reads
/// nothing else (outputs can be large, and this runs on every cell start and edit burst).
pub(crate) fn code_sources(notebook: &Notebook) -> Vec<(usize, String, String)> {
    let txn = notebook.doc().transact();
    let Some(cells) = txn.get_array(CELLS) else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    let mut place = 0;
    let mut out = Vec::new();
    for item in cells.iter(&txn) {
        let Out::YMap(cell) = item else { continue };
        let Some(id) = string(&cell, &txn, "id") else {
            continue;
        };
        // Later copies of an id are leftovers of concurrent moves, as readers skip them.
        if !seen.insert(id.clone()) {
            continue;
        }
        place += 1;
        if string(&cell, &txn, "cell_type").as_deref() != Some("code") {
            continue;
        }
        let source = match cell.get(&txn, "source") {
            Some(Out::YText(text)) => text.get_string(&txn),
            Some(Out::Any(Any::String(s))) => s.to_string(),
            _ => String::new(),
        };
        out.push((place, id, source));
    }
    out
}

/// How many outputs the cell `id` holds now (0 when it has none or is gone).
pub(crate) fn output_count(notebook: &Notebook, id: &str) -> u32 {
    let txn = notebook.doc().transact();
    find_cell(&txn, id)
        .and_then(|cell| match cell.get(&txn, "outputs") {
            Some(Out::YArray(outputs)) => Some(outputs.len(&txn)),
            _ => None,
        })
        .unwrap_or(0)
}

/// Replaces `data` and `metadata` of output `index` of cell `id`, keeping its place and type.
/// Returns whether that output existed.
pub(crate) fn replace_output_data(
    notebook: &Notebook,
    id: &str,
    index: u32,
    data: &JsonMap<String, Value>,
    metadata: &JsonMap<String, Value>,
) -> bool {
    let mut txn = notebook.doc().transact_mut();
    let Some(cell) = find_cell(&txn, id) else {
        return false;
    };
    let Some(Out::YArray(outputs)) = cell.get(&txn, "outputs") else {
        return false;
    };
    let Some(Out::YMap(output)) = outputs.get(&txn, index) else {
        return false;
    };
    output.insert(&mut txn, "data", schema::object_to_any(data));
    output.insert(&mut txn, "metadata", schema::object_to_any(metadata));
    true
}

fn find_cell<T: ReadTxn>(txn: &T, id: &str) -> Option<MapRef> {
    let cells: ArrayRef = txn.get_array(CELLS)?;
    cells.iter(txn).find_map(|item| match item {
        Out::YMap(map) if string(&map, txn, "id").as_deref() == Some(id) => Some(map),
        _ => None,
    })
}

fn string<T: ReadTxn>(map: &MapRef, txn: &T, key: &str) -> Option<String> {
    match map.get(txn, key) {
        Some(Out::Any(Any::String(s))) => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tandem_crdt::NewCell;
    use tandem_crdt::kernel::KernelRuntime;

    fn kernel_json(nb: &Notebook) -> Value {
        let txn = nb.doc().transact();
        match nb.state().get(&txn, KERNEL_KEY) {
            Some(Out::YMap(map)) => {
                let mut out = JsonMap::new();
                for (k, v) in map.iter(&txn) {
                    if let Out::Any(any) = v {
                        out.insert(k.to_string(), serde_json::to_value(&any).unwrap());
                    }
                }
                Value::Object(out)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kernel_state_writes_only_changes_and_removes_reason() {
        let nb = Notebook::new();
        let mut state = KernelState::new(KernelRuntime::Cpu);
        write_kernel_state(&nb, &state, None);
        assert_eq!(
            kernel_json(&nb),
            json!({"status": "not_started", "runtime": "cpu", "execution_count": null,
                   "queue": [], "running": null, "variables": [], "stale": []})
        );
        let before = state.clone();
        state.status = KernelStatus::Dead;
        state.reason = Some("boom".into());
        state.queue = vec!["a".into()];
        write_kernel_state(&nb, &state, Some(&before));
        assert_eq!(kernel_json(&nb)["reason"], "boom");
        assert_eq!(kernel_json(&nb)["queue"], json!(["a"]));
        let before = state.clone();
        state.reason = None;
        write_kernel_state(&nb, &state, Some(&before));
        assert!(kernel_json(&nb).get("reason").is_none());
        let before = state.clone();
        state.holder = Some(crate::session::Holder {
            id: "u1".into(),
            name: "Alice".into(),
        });
        write_kernel_state(&nb, &state, Some(&before));
        assert_eq!(
            kernel_json(&nb)["holder"],
            json!({"id": "u1", "name": "Alice"})
        );
        let before = state.clone();
        state.holder = None;
        write_kernel_state(&nb, &state, Some(&before));
        assert!(kernel_json(&nb).get("holder").is_none());
    }

    #[test]
    fn reads_sources_and_replaces_output_data() {
        let nb = Notebook::new();
        let code = nb.insert_cell(0, NewCell::code("1+1")).unwrap();
        let md = nb.insert_cell(1, NewCell::markdown("# hi")).unwrap();
        assert_eq!(code_source(&nb, &code), Ok("1+1".into()));
        assert_eq!(code_source(&nb, &md), Err(Lookup::NotCode));
        assert_eq!(code_source(&nb, "nope"), Err(Lookup::NotFound));
        assert_eq!(code_cell_ids(&nb), vec![code.clone()]);
        let more = nb.insert_cell(2, NewCell::code("x = 1")).unwrap();
        assert_eq!(
            code_sources(&nb),
            vec![
                (1, code.clone(), "1+1".into()),
                (3, more.clone(), "x = 1".into())
            ]
        );
        nb.delete_cell(&more).unwrap();
        let output =
            json!({"output_type": "display_data", "data": {"text/plain": "a"}, "metadata": {}});
        nb.append_output(&code, &output).unwrap();
        assert_eq!(output_count(&nb, &code), 1);
        let data = json!({"text/plain": "b"});
        assert!(replace_output_data(
            &nb,
            &code,
            0,
            data.as_object().unwrap(),
            &JsonMap::new()
        ));
        assert!(!replace_output_data(
            &nb,
            &code,
            1,
            data.as_object().unwrap(),
            &JsonMap::new()
        ));
        assert_eq!(nb.cells()[0].outputs[0]["data"]["text/plain"], "b");
    }
}
