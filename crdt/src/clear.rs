//! Clearing outputs, as Jupyter's "Clear outputs" and "Clear all outputs" do: a code cell's
//! outputs are removed and its execution count goes back to null (and Tandem's record of who
//! ran it, which describes those outputs, goes too). Outputs are the runtime's, so clients may
//! not write them (see [`crate::guard`]); the collab service clears them for an editor inside
//! one of its own transactions with [`clear_outputs`].

use yrs::{Any, Array, Map, Out, ReadTxn, TransactionMut};

use crate::error::EditError;
use crate::read;
use crate::schema::{self, CELL_TYPE, CellType, EXECUTION_BY, EXECUTION_COUNT, OUTPUTS};

/// Which cells to clear.
#[derive(Debug, Clone, Copy)]
pub enum Clear<'a> {
    /// Every code cell.
    All,
    /// These code cells (by id); every id must name a code cell.
    Cells(&'a [String]),
}

/// Clears the outputs, execution count and `execution_by` of the chosen code cells in `txn`'s
/// document and returns the ids it cleared, in notebook order. For [`Clear::Cells`], an id
/// that names no cell ([`EditError::CellNotFound`]) or a cell that is not code
/// ([`EditError::NotACodeCell`]) fails the whole request before anything is changed.
pub fn clear_outputs(txn: &mut TransactionMut, which: Clear<'_>) -> Result<Vec<String>, EditError> {
    let Some(cells) = txn.get_array(schema::CELLS) else {
        return match which {
            Clear::Cells([first, ..]) => Err(EditError::CellNotFound(first.clone())),
            _ => Ok(Vec::new()),
        };
    };
    let slots = read::visible_cells(&cells, txn);
    let is_code = |slot: &read::Slot| {
        schema::map_string(&slot.map, txn, CELL_TYPE).and_then(|t| CellType::parse(&t))
            == Some(CellType::Code)
    };
    let chosen: Vec<&read::Slot> = match which {
        Clear::All => slots.iter().filter(|s| is_code(s)).collect(),
        Clear::Cells(ids) => {
            for id in ids {
                match slots.iter().find(|s| &s.id == id) {
                    None => return Err(EditError::CellNotFound(id.clone())),
                    Some(slot) if !is_code(slot) => {
                        return Err(EditError::NotACodeCell(id.clone()));
                    }
                    Some(_) => {}
                }
            }
            slots.iter().filter(|s| ids.contains(&s.id)).collect()
        }
    };
    for slot in &chosen {
        if let Some(Out::YArray(outputs)) = slot.map.get(txn, OUTPUTS) {
            let len = outputs.len(txn);
            if len > 0 {
                outputs.remove_range(txn, 0, len);
            }
        }
        if !matches!(
            slot.map.get(txn, EXECUTION_COUNT),
            Some(Out::Any(Any::Null)) | None
        ) {
            slot.map.insert(txn, EXECUTION_COUNT, Any::Null);
        }
        if slot.map.get(txn, EXECUTION_BY).is_some() {
            slot.map.remove(txn, EXECUTION_BY);
        }
    }
    Ok(chosen.iter().map(|s| s.id.clone()).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use yrs::Transact;

    use super::*;
    use crate::{NewCell, Notebook};

    fn ran(nb: &Notebook, id: &str, text: &str) {
        nb.append_stream(id, "stdout", text).unwrap();
        nb.set_execution_count(id, Some(3)).unwrap();
        nb.set_execution_by(id, "u1", "Ada").unwrap();
    }

    #[test]
    fn clears_all_code_cells_as_jupyter_does() {
        let nb = Notebook::new();
        let a = nb.insert_cell(0, NewCell::code("print(1)")).unwrap();
        let md = nb.insert_cell(1, NewCell::markdown("# hi")).unwrap();
        let b = nb.insert_cell(2, NewCell::code("print(2)")).unwrap();
        ran(&nb, &a, "1\n");
        ran(&nb, &b, "2\n");
        let cleared = clear_outputs(&mut nb.doc().transact_mut(), Clear::All).unwrap();
        assert_eq!(cleared, vec![a.clone(), b.clone()]);
        for cell in nb.cells().iter().filter(|c| c.id != md) {
            assert!(cell.outputs.is_empty(), "{cell:?}");
            assert_eq!(cell.execution_count, None);
        }
        assert_eq!(nb.execution_by(&a), None);
        assert_eq!(nb.cells()[0].source, "print(1)", "sources stay");
    }

    #[test]
    fn clears_only_the_cells_named() {
        let nb = Notebook::new();
        let a = nb.insert_cell(0, NewCell::code("1")).unwrap();
        let b = nb.insert_cell(1, NewCell::code("2")).unwrap();
        ran(&nb, &a, "a");
        ran(&nb, &b, "b");
        let ids = [b.clone()];
        let cleared = clear_outputs(&mut nb.doc().transact_mut(), Clear::Cells(&ids)).unwrap();
        assert_eq!(cleared, vec![b]);
        let cells = nb.cells();
        assert_eq!(cells[0].outputs.len(), 1, "the other cell keeps its output");
        assert_eq!(cells[0].execution_count, Some(3));
        assert!(cells[1].outputs.is_empty());
        assert_eq!(
            nb.execution_by(&a),
            Some(json!({"id": "u1", "name": "Ada"}))
        );
    }

    #[test]
    fn an_unknown_or_non_code_cell_changes_nothing() {
        let nb = Notebook::new();
        let a = nb.insert_cell(0, NewCell::code("1")).unwrap();
        let md = nb.insert_cell(1, NewCell::markdown("m")).unwrap();
        ran(&nb, &a, "a");
        let ids = [a.clone(), "nope".to_owned()];
        let err = clear_outputs(&mut nb.doc().transact_mut(), Clear::Cells(&ids)).unwrap_err();
        assert_eq!(err, EditError::CellNotFound("nope".into()));
        let ids = [a.clone(), md.clone()];
        let err = clear_outputs(&mut nb.doc().transact_mut(), Clear::Cells(&ids)).unwrap_err();
        assert_eq!(err, EditError::NotACodeCell(md));
        assert_eq!(nb.cells()[0].outputs.len(), 1);
    }
}
