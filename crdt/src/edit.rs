//! Typed edits. Each is one transaction, and each leaves the document in the shape jupyter_ydoc
//! and @jupyter/ydoc expect.
//!
//! Cell indices are positions among the cells a reader sees (duplicates of a moved cell left by
//! concurrent moves are not counted, see [`crate::read`]). Source positions count Unicode
//! scalar values (`char`s), whatever offset kind the underlying `Doc` was created with.

use serde_json::Value;
use yrs::{
    Any, Array, In, Map, MapPrelim, MapRef, OffsetKind, Out, Text, Transact, TransactionMut,
};

use crate::error::EditError;
use crate::ipynb::{self, cell_prelim, output_prelim};
use crate::read::{self, Slot};
use crate::schema::{
    self, CELL_TYPE, Cell, CellType, EXECUTION_BY, EXECUTION_COUNT, EXECUTION_STATE,
    ExecutionState, ID, METADATA, NewCell, OUTPUT_TYPE, OUTPUTS, SOURCE, STALE,
};
use crate::{Notebook, ids};

impl Notebook {
    /// Inserts a cell so that it ends up at `index` (0 = first; `cell_count()` = last) and
    /// returns its id.
    pub fn insert_cell(&self, index: u32, cell: NewCell) -> Result<String, EditError> {
        let mut txn = self.doc().transact_mut();
        let slots = read::visible_cells(&self.cells, &txn);
        let len = slots.len() as u32;
        if index > len {
            return Err(EditError::IndexOutOfRange { index, len });
        }
        let id = match cell.id {
            Some(id) if !schema::is_valid_cell_id(&id) => return Err(EditError::InvalidCellId(id)),
            Some(id) if slots.iter().any(|s| s.id == id) => {
                return Err(EditError::DuplicateCellId(id));
            }
            Some(id) => id,
            None => ids::fresh_cell_id(),
        };
        let raw_index = raw_insert_index(&self.cells, &txn, &slots, index);
        let cell = Cell {
            id: id.clone(),
            cell_type: cell.cell_type,
            source: cell.source,
            metadata: Value::Object(cell.metadata),
            outputs: Vec::new(),
            execution_count: None,
            execution_state: None,
            attachments: None,
        };
        self.cells.insert(&mut txn, raw_index, cell_prelim(&cell));
        Ok(id)
    }

    /// Deletes a cell, together with any duplicate copies of it left by concurrent moves.
    pub fn delete_cell(&self, id: &str) -> Result<(), EditError> {
        let mut txn = self.doc().transact_mut();
        let copies = read::copies_of(&self.cells, &txn, id);
        if copies.is_empty() {
            return Err(EditError::CellNotFound(id.to_owned()));
        }
        for raw_index in copies.into_iter().rev() {
            self.cells.remove(&mut txn, raw_index);
        }
        Ok(())
    }

    /// Moves a cell so that it ends up at `to_index` among the cells.
    ///
    /// As in JupyterLab (`YNotebook.moveCells`) and jupyter_ydoc (`YNotebook.set`), a move
    /// deletes the cell and inserts a deep copy with the same id, because yjs 13 clients cannot
    /// read yrs's native move. See the crate doc for what this means for concurrent edits.
    pub fn move_cell(&self, id: &str, to_index: u32) -> Result<(), EditError> {
        let mut txn = self.doc().transact_mut();
        let slots = read::visible_cells(&self.cells, &txn);
        let len = slots.len() as u32;
        let from = slots
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| EditError::CellNotFound(id.to_owned()))?;
        if to_index >= len {
            return Err(EditError::IndexOutOfRange {
                index: to_index,
                len,
            });
        }
        let copies = read::copies_of(&self.cells, &txn, id);
        if from as u32 == to_index && copies.len() == 1 {
            return Ok(());
        }
        let mut clone = match schema::out_to_in(&Out::YMap(slots[from].map.clone()), &txn) {
            In::Map(map) => map,
            _ => MapPrelim::default(),
        };
        // A cell whose id was derived from its item id would get a new one with the new item.
        clone.insert(ID.into(), In::Any(Any::from(id)));
        for raw_index in copies.into_iter().rev() {
            self.cells.remove(&mut txn, raw_index);
        }
        let slots = read::visible_cells(&self.cells, &txn);
        let raw_index = raw_insert_index(&self.cells, &txn, &slots, to_index);
        self.cells.insert(&mut txn, raw_index, clone);
        Ok(())
    }

    /// Replaces `delete` characters at `index` of a cell's source with `insert`.
    pub fn edit_source(
        &self,
        id: &str,
        index: u32,
        delete: u32,
        insert: &str,
    ) -> Result<(), EditError> {
        let mut txn = self.doc().transact_mut();
        let slot = self.find(&txn, id)?;
        let current = slot
            .map
            .get(&txn, SOURCE)
            .and_then(|v| schema::out_to_text(&v, &txn))
            .unwrap_or_default();
        let len = current.chars().count() as u32;
        let end = u64::from(index) + u64::from(delete);
        if end > u64::from(len) {
            return Err(EditError::SourceOutOfRange {
                id: id.to_owned(),
                index,
                end,
                len,
            });
        }
        let text = ipynb::ensure_text(&slot.map, &mut txn, SOURCE);
        let kind = self.doc().offset_kind();
        let start = offset(&current, index, kind);
        let stop = offset(&current, index + delete, kind);
        // Insert before deleting, as JupyterLab's `updateSource` does, so remote cursors at the
        // end of the replaced range stay after the new text.
        if !insert.is_empty() {
            text.insert(&mut txn, start, insert);
        }
        if stop > start {
            let inserted = offset(insert, insert.chars().count() as u32, kind);
            text.remove_range(&mut txn, start + inserted, stop - start);
        }
        Ok(())
    }

    /// Sets one key of a cell's metadata.
    pub fn set_cell_metadata(&self, id: &str, key: &str, value: Value) -> Result<(), EditError> {
        let mut txn = self.doc().transact_mut();
        let slot = self.find(&txn, id)?;
        let metadata = ensure_map(&slot.map, &mut txn, METADATA);
        metadata.insert(&mut txn, key, schema::json_to_any(&value));
        Ok(())
    }

    /// Removes one key of a cell's metadata; absent keys are fine.
    pub fn remove_cell_metadata(&self, id: &str, key: &str) -> Result<(), EditError> {
        let mut txn = self.doc().transact_mut();
        let slot = self.find(&txn, id)?;
        ensure_map(&slot.map, &mut txn, METADATA).remove(&mut txn, key);
        Ok(())
    }

    /// Sets one key of the notebook's metadata.
    pub fn set_notebook_metadata(&self, key: &str, value: Value) {
        let mut txn = self.doc().transact_mut();
        let metadata = ensure_map(&self.meta, &mut txn, METADATA);
        metadata.insert(&mut txn, key, schema::json_to_any(&value));
    }

    /// Removes one key of the notebook's metadata; absent keys are fine.
    pub fn remove_notebook_metadata(&self, key: &str) {
        let mut txn = self.doc().transact_mut();
        ensure_map(&self.meta, &mut txn, METADATA).remove(&mut txn, key);
    }

    /// Removes all outputs of a code cell.
    pub fn clear_outputs(&self, id: &str) -> Result<(), EditError> {
        let mut txn = self.doc().transact_mut();
        let outputs = self.code_outputs(&mut txn, id)?;
        let len = outputs.len(&txn);
        outputs.remove_range(&mut txn, 0, len);
        Ok(())
    }

    /// Appends an nbformat v4 output to a code cell. A stream output's text becomes a `Y.Text`.
    pub fn append_output(&self, id: &str, output: &Value) -> Result<(), EditError> {
        let output = ipynb::validate_output(output, "output", 0, 0)
            .map_err(|e| EditError::InvalidOutput(e.to_string()))?;
        let mut txn = self.doc().transact_mut();
        let outputs = self.code_outputs(&mut txn, id)?;
        outputs.push_back(&mut txn, output_prelim(&output));
        Ok(())
    }

    /// Appends stream text to a code cell: to the last output when it is the same stream, as
    /// Jupyter does, otherwise as a new stream output.
    pub fn append_stream(&self, id: &str, name: &str, text: &str) -> Result<(), EditError> {
        let mut txn = self.doc().transact_mut();
        let outputs = self.code_outputs(&mut txn, id)?;
        let len = outputs.len(&txn);
        if let Some(Out::YMap(last)) = len.checked_sub(1).and_then(|i| outputs.get(&txn, i))
            && schema::map_string(&last, &txn, OUTPUT_TYPE).as_deref() == Some("stream")
            && schema::map_string(&last, &txn, "name").as_deref() == Some(name)
        {
            let ytext = ipynb::ensure_text(&last, &mut txn, "text");
            ytext.push(&mut txn, text);
            return Ok(());
        }
        let output = serde_json::json!({"output_type": "stream", "name": name, "text": text});
        outputs.push_back(&mut txn, output_prelim(&output));
        Ok(())
    }

    /// Sets or clears a code cell's execution count.
    pub fn set_execution_count(&self, id: &str, count: Option<i64>) -> Result<(), EditError> {
        let mut txn = self.doc().transact_mut();
        let slot = self.find_code(&txn, id)?;
        slot.map.insert(
            &mut txn,
            EXECUTION_COUNT,
            count.map_or(Any::Null, Any::from),
        );
        Ok(())
    }

    /// Sets a code cell's run state.
    pub fn set_execution_state(&self, id: &str, state: ExecutionState) -> Result<(), EditError> {
        let mut txn = self.doc().transact_mut();
        let slot = self.find_code(&txn, id)?;
        slot.map
            .insert(&mut txn, EXECUTION_STATE, Any::from(state.as_str()));
        Ok(())
    }

    /// Records who ran a code cell: `execution_by` = `{"id", "name"}`, plain JSON, so late
    /// joiners see it. Tandem's own key: the `.ipynb` export leaves it out.
    pub fn set_execution_by(&self, id: &str, user_id: &str, name: &str) -> Result<(), EditError> {
        let mut txn = self.doc().transact_mut();
        let slot = self.find_code(&txn, id)?;
        let by = serde_json::json!({"id": user_id, "name": name});
        slot.map
            .insert(&mut txn, EXECUTION_BY, schema::json_to_any(&by));
        Ok(())
    }

    /// Marks a code cell stale (`tandem_stale: true`) or not (the key removed).
    pub fn set_stale(&self, id: &str, stale: bool) -> Result<(), EditError> {
        let mut txn = self.doc().transact_mut();
        let slot = self.find_code(&txn, id)?;
        if stale {
            slot.map.insert(&mut txn, STALE, Any::Bool(true));
        } else if slot.map.get(&txn, STALE).is_some() {
            slot.map.remove(&mut txn, STALE);
        }
        Ok(())
    }

    /// Whether the runtime marked a code cell stale.
    pub fn is_stale(&self, id: &str) -> bool {
        let txn = self.doc().transact();
        self.find_code(&txn, id)
            .is_ok_and(|slot| matches!(slot.map.get(&txn, STALE), Some(Out::Any(Any::Bool(true)))))
    }

    /// Who ran a code cell last (`{"id", "name"}`), if the runtime recorded it.
    pub fn execution_by(&self, id: &str) -> Option<Value> {
        let txn = self.doc().transact();
        let slot = self.find_code(&txn, id).ok()?;
        slot.map
            .get(&txn, EXECUTION_BY)
            .map(|v| schema::out_to_json(&v, &txn))
    }

    /// Deletes the later copies of cells that share an id (left by concurrent moves), keeping
    /// the copy every reader already shows. Returns how many copies were deleted. Safe to run on
    /// any replica at any time: replicas that repair concurrently delete the same copies.
    pub fn repair_duplicates(&self) -> u32 {
        let mut txn = self.doc().transact_mut();
        let slots = read::visible_cells(&self.cells, &txn);
        let mut visible = slots.iter().map(|s| s.raw_index).peekable();
        let mut extra = Vec::new();
        for raw_index in 0..self.cells.len(&txn) {
            if visible.peek() == Some(&raw_index) {
                visible.next();
            } else if let Some(Out::YMap(_)) = self.cells.get(&txn, raw_index) {
                extra.push(raw_index);
            }
        }
        for raw_index in extra.iter().rev() {
            self.cells.remove(&mut txn, *raw_index);
        }
        extra.len() as u32
    }

    fn find<T: yrs::ReadTxn>(&self, txn: &T, id: &str) -> Result<Slot, EditError> {
        read::visible_cells(&self.cells, txn)
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| EditError::CellNotFound(id.to_owned()))
    }

    fn find_code<T: yrs::ReadTxn>(&self, txn: &T, id: &str) -> Result<Slot, EditError> {
        let slot = self.find(txn, id)?;
        match schema::map_string(&slot.map, txn, CELL_TYPE).and_then(|t| CellType::parse(&t)) {
            Some(CellType::Code) => Ok(slot),
            _ => Err(EditError::NotACodeCell(id.to_owned())),
        }
    }

    fn code_outputs(&self, txn: &mut TransactionMut, id: &str) -> Result<yrs::ArrayRef, EditError> {
        let slot = self.find_code(txn, id)?;
        match slot.map.get(txn, OUTPUTS) {
            Some(Out::YArray(outputs)) => Ok(outputs),
            _ => Ok(slot.map.insert(txn, OUTPUTS, yrs::ArrayPrelim::default())),
        }
    }
}

/// The raw array index that puts a new cell at visible position `index`.
fn raw_insert_index<T: yrs::ReadTxn>(
    cells: &yrs::ArrayRef,
    txn: &T,
    slots: &[Slot],
    index: u32,
) -> u32 {
    slots
        .get(index as usize)
        .map_or_else(|| cells.len(txn), |s| s.raw_index)
}

/// The `Y.Map` under `key`, replacing a plain object (keeping its entries) or anything else.
fn ensure_map(parent: &MapRef, txn: &mut TransactionMut, key: &str) -> MapRef {
    match parent.get(txn, key) {
        Some(Out::YMap(map)) => map,
        other => {
            let entries: MapPrelim = match other {
                Some(Out::Any(Any::Map(m))) => m
                    .iter()
                    .map(|(k, v)| (k.as_str(), In::Any(v.clone())))
                    .collect(),
                _ => MapPrelim::default(),
            };
            parent.insert(txn, key, entries)
        }
    }
}

/// The offset of the `chars`-th character of `s`, in the units of `kind`.
fn offset(s: &str, chars: u32, kind: OffsetKind) -> u32 {
    let prefix = s.chars().take(chars as usize);
    match kind {
        OffsetKind::Bytes => prefix.map(char::len_utf8).sum::<usize>() as u32,
        OffsetKind::Utf16 => prefix.map(char::len_utf16).sum::<usize>() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(nb: &Notebook) -> Vec<String> {
        nb.cells().into_iter().map(|c| c.source).collect()
    }

    #[test]
    fn insert_move_delete() {
        let nb = Notebook::new();
        let a = nb.insert_cell(0, NewCell::code("a")).unwrap();
        let b = nb.insert_cell(1, NewCell::markdown("b")).unwrap();
        let c = nb.insert_cell(2, NewCell::raw("c")).unwrap();
        nb.move_cell(&a, 2).unwrap();
        assert_eq!(sources(&nb), ["b", "c", "a"]);
        nb.move_cell(&a, 0).unwrap();
        assert_eq!(sources(&nb), ["a", "b", "c"]);
        nb.move_cell(&c, 1).unwrap();
        assert_eq!(sources(&nb), ["a", "c", "b"]);
        nb.delete_cell(&b).unwrap();
        assert_eq!(sources(&nb), ["a", "c"]);
        assert_eq!(nb.delete_cell(&b), Err(EditError::CellNotFound(b)));
        assert_eq!(
            nb.move_cell(&a, 2),
            Err(EditError::IndexOutOfRange { index: 2, len: 2 })
        );
    }

    #[test]
    fn source_edits_count_characters_in_either_offset_kind() {
        for kind in [OffsetKind::Bytes, OffsetKind::Utf16] {
            let doc = yrs::Doc::with_options(yrs::Options {
                offset_kind: kind,
                ..Default::default()
            });
            let nb = Notebook::from_doc(doc);
            let id = nb.insert_cell(0, NewCell::code("héllo 😀 wörld")).unwrap();
            nb.edit_source(&id, 6, 1, "🎉!").unwrap();
            nb.edit_source(&id, 1, 1, "e").unwrap();
            assert_eq!(sources(&nb), ["hello 🎉! wörld"]);
            let err = nb.edit_source(&id, 10, 10, "").unwrap_err();
            assert!(
                matches!(err, EditError::SourceOutOfRange { len: 14, .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn metadata_and_outputs() {
        let nb = Notebook::new();
        let id = nb.insert_cell(0, NewCell::code("print(1)")).unwrap();
        nb.set_cell_metadata(&id, "tags", serde_json::json!(["a"]))
            .unwrap();
        nb.set_notebook_metadata("title", serde_json::json!("T"));
        nb.set_execution_state(&id, ExecutionState::Running)
            .unwrap();
        nb.append_stream(&id, "stdout", "1\n").unwrap();
        nb.append_stream(&id, "stdout", "2\n").unwrap();
        nb.append_stream(&id, "stderr", "oops\n").unwrap();
        nb.set_execution_count(&id, Some(1)).unwrap();
        let cell = &nb.cells()[0];
        assert_eq!(cell.metadata, serde_json::json!({"tags": ["a"]}));
        assert_eq!(cell.outputs.len(), 2);
        assert_eq!(cell.outputs[0]["text"], "1\n2\n");
        assert_eq!(cell.execution_count, Some(1));
        assert_eq!(cell.execution_state, Some(ExecutionState::Running));
        assert_eq!(nb.to_ipynb()["metadata"]["title"], "T");
        nb.clear_outputs(&id).unwrap();
        assert!(nb.cells()[0].outputs.is_empty());
        let md = nb.insert_cell(1, NewCell::markdown("x")).unwrap();
        assert_eq!(nb.clear_outputs(&md), Err(EditError::NotACodeCell(md)));
        let bad = nb.append_output(&id, &serde_json::json!({"output_type": "nope"}));
        assert!(matches!(bad, Err(EditError::InvalidOutput(_))));
    }

    #[test]
    fn who_ran_a_cell_stays_out_of_the_export() {
        let nb = Notebook::new();
        let id = nb.insert_cell(0, NewCell::code("1+1")).unwrap();
        let before = nb.to_ipynb();
        nb.set_execution_by(&id, "u1", "Ada").unwrap();
        assert_eq!(
            nb.execution_by(&id),
            Some(serde_json::json!({"id": "u1", "name": "Ada"}))
        );
        assert_eq!(nb.to_ipynb(), before, "the export has no `execution_by`");
        assert!(!nb.to_ipynb().to_string().contains("Ada"));
        // A move copies the cell with it.
        nb.insert_cell(1, NewCell::code("2")).unwrap();
        nb.move_cell(&id, 1).unwrap();
        assert_eq!(nb.execution_by(&id).unwrap()["name"], "Ada");
        let md = nb.insert_cell(0, NewCell::markdown("x")).unwrap();
        assert_eq!(
            nb.set_execution_by(&md, "u1", "Ada"),
            Err(EditError::NotACodeCell(md))
        );
    }

    #[test]
    fn stale_marks_stay_out_of_the_export() {
        let nb = Notebook::new();
        let id = nb.insert_cell(0, NewCell::code("x = 1")).unwrap();
        let before = nb.to_ipynb();
        nb.set_stale(&id, true).unwrap();
        assert!(nb.is_stale(&id));
        assert_eq!(nb.to_ipynb(), before, "the export has no `tandem_stale`");
        assert!(!nb.to_ipynb().to_string().contains(STALE));
        nb.set_stale(&id, false).unwrap();
        assert!(!nb.is_stale(&id));
        let md = nb.insert_cell(0, NewCell::markdown("x")).unwrap();
        assert_eq!(nb.set_stale(&md, true), Err(EditError::NotACodeCell(md)));
    }

    #[test]
    fn insert_refuses_bad_and_taken_ids() {
        let nb = Notebook::new();
        nb.insert_cell(0, NewCell::code("").with_id("x")).unwrap();
        let taken = nb.insert_cell(0, NewCell::code("").with_id("x"));
        assert_eq!(taken, Err(EditError::DuplicateCellId("x".into())));
        let bad = nb.insert_cell(0, NewCell::code("").with_id("a b"));
        assert_eq!(bad, Err(EditError::InvalidCellId("a b".into())));
        assert_eq!(
            nb.insert_cell(5, NewCell::code("")),
            Err(EditError::IndexOutOfRange { index: 5, len: 1 })
        );
    }
}
