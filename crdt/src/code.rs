//! What the runtime reads and rewrites of code cells while it runs them: a cell's source by
//! id, every code cell's source, how many outputs a cell holds, and replacing one output's
//! `data`/`metadata` in place (`update_display_data`, the truncation notice). Cells are found
//! as every reader finds them ([`read::visible_cells`]: one per id, the first copy).

use serde_json::{Map as JsonMap, Value};
use yrs::{Array, Map, MapRef, Out, ReadTxn, Transact};

use crate::read::{self, Slot};
use crate::schema::{self, CELL_TYPE, CELLS, OUTPUTS, SOURCE};
use crate::{CellType, Notebook};

/// Why a cell id cannot be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeLookup {
    /// No cell has this id.
    NotFound,
    /// The cell is markdown or raw.
    NotCode,
}

/// A code cell's source, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSource {
    /// Its 1-based place among all cells.
    pub place: usize,
    /// Its id.
    pub id: String,
    /// Its source now.
    pub source: String,
}

fn find<T: ReadTxn>(txn: &T, id: &str) -> Option<MapRef> {
    let cells = txn.get_array(CELLS)?;
    read::visible_cells(&cells, txn)
        .into_iter()
        .find(|slot| slot.id == id)
        .map(|slot: Slot| slot.map)
}

fn is_code<T: ReadTxn>(map: &MapRef, txn: &T) -> bool {
    schema::map_string(map, txn, CELL_TYPE).as_deref() == Some(CellType::Code.as_str())
}

fn source<T: ReadTxn>(map: &MapRef, txn: &T) -> String {
    map.get(txn, SOURCE)
        .and_then(|value| schema::out_to_text(&value, txn))
        .unwrap_or_default()
}

impl Notebook {
    /// The source of the code cell `id`, read now.
    pub fn code_source(&self, id: &str) -> Result<String, CodeLookup> {
        let txn = self.doc().transact();
        let cell = find(&txn, id).ok_or(CodeLookup::NotFound)?;
        if !is_code(&cell, &txn) {
            return Err(CodeLookup::NotCode);
        }
        Ok(source(&cell, &txn))
    }

    /// Every code cell's place, id and source, in document order; reads nothing else
    /// (outputs can be large, and the runtime asks on every cell start and edit burst).
    pub fn code_sources(&self) -> Vec<CodeSource> {
        let txn = self.doc().transact();
        let Some(cells) = txn.get_array(CELLS) else {
            return Vec::new();
        };
        (1..)
            .zip(read::visible_cells(&cells, &txn))
            .filter(|(_, slot)| is_code(&slot.map, &txn))
            .map(|(place, slot)| CodeSource {
                place,
                source: source(&slot.map, &txn),
                id: slot.id,
            })
            .collect()
    }

    /// The ids of the code cells, in document order.
    pub fn code_cell_ids(&self) -> Vec<String> {
        let txn = self.doc().transact();
        let Some(cells) = txn.get_array(CELLS) else {
            return Vec::new();
        };
        read::visible_cells(&cells, &txn)
            .into_iter()
            .filter(|slot| is_code(&slot.map, &txn))
            .map(|slot| slot.id)
            .collect()
    }

    /// How many outputs the cell `id` holds now (0 when it has none or is gone).
    pub fn output_count(&self, id: &str) -> u32 {
        let txn = self.doc().transact();
        find(&txn, id)
            .and_then(|cell| match cell.get(&txn, OUTPUTS) {
                Some(Out::YArray(outputs)) => Some(outputs.len(&txn)),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// Replaces `data` and `metadata` of output `index` of cell `id`, keeping its place and
    /// type. Returns whether that output existed.
    pub fn replace_output_data(
        &self,
        id: &str,
        index: u32,
        data: &JsonMap<String, Value>,
        metadata: &JsonMap<String, Value>,
    ) -> bool {
        let mut txn = self.doc().transact_mut();
        let Some(cell) = find(&txn, id) else {
            return false;
        };
        let Some(Out::YArray(outputs)) = cell.get(&txn, OUTPUTS) else {
            return false;
        };
        let Some(Out::YMap(output)) = outputs.get(&txn, index) else {
            return false;
        };
        output.insert(&mut txn, "data", schema::object_to_any(data));
        output.insert(&mut txn, "metadata", schema::object_to_any(metadata));
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::NewCell;

    #[test]
    fn reads_sources_and_replaces_output_data() {
        let nb = Notebook::new();
        let code = nb.insert_cell(0, NewCell::code("1+1")).unwrap();
        let md = nb.insert_cell(1, NewCell::markdown("# hi")).unwrap();
        assert_eq!(nb.code_source(&code), Ok("1+1".into()));
        assert_eq!(nb.code_source(&md), Err(CodeLookup::NotCode));
        assert_eq!(nb.code_source("nope"), Err(CodeLookup::NotFound));
        assert_eq!(nb.code_cell_ids(), vec![code.clone()]);
        let more = nb.insert_cell(2, NewCell::code("x = 1")).unwrap();
        let place = |place, id: &str, source: &str| CodeSource {
            place,
            id: id.to_owned(),
            source: source.to_owned(),
        };
        assert_eq!(
            nb.code_sources(),
            vec![place(1, &code, "1+1"), place(3, &more, "x = 1")]
        );
        nb.delete_cell(&more).unwrap();
        let output =
            json!({"output_type": "display_data", "data": {"text/plain": "a"}, "metadata": {}});
        nb.append_output(&code, &output).unwrap();
        assert_eq!(nb.output_count(&code), 1);
        let data = json!({"text/plain": "b"});
        let empty = JsonMap::new();
        assert!(nb.replace_output_data(&code, 0, data.as_object().unwrap(), &empty));
        assert!(!nb.replace_output_data(&code, 1, data.as_object().unwrap(), &empty));
        assert_eq!(nb.cells()[0].outputs[0]["data"]["text/plain"], "b");
    }
}
