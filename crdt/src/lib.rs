//! The Tandem notebook document: Jupyter's YNotebook schema (document version 2.0.0) on
//! [`yrs`], with typed edits and nbformat v4 import/export.
//!
//! A [`Notebook`] wraps a [`yrs::Doc`] laid out exactly as Python's `jupyter_ydoc` (on `pycrdt`)
//! and JavaScript's `@jupyter/ydoc` (on `yjs`) lay it out, so stock Jupyter clients edit the
//! same document over the y-websocket protocol. The crate does no IO: syncing, storage and
//! execution live in other crates, which drive the document through this API or through yrs.
//!
//! # Quick start
//!
//! ```
//! use tandem_crdt::{ImportLimits, NewCell, Notebook};
//!
//! let text = r##"{"nbformat": 4, "nbformat_minor": 4, "metadata": {},
//!   "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Hello\n", "world"]}]}"##;
//! let notebook = Notebook::from_ipynb_str(text, &ImportLimits::default())?;
//!
//! let id = notebook.insert_cell(1, NewCell::code("print('hi')"))?;
//! notebook.edit_source(&id, 7, 2, "hello")?;
//! notebook.move_cell(&id, 0)?;
//!
//! let cells = notebook.cells();
//! assert_eq!(cells[0].source, "print('hello')");
//! assert_eq!(cells[1].source, "# Hello\nworld");
//!
//! let ipynb = notebook.to_ipynb();
//! assert_eq!(ipynb["nbformat_minor"], 5);
//! assert_eq!(ipynb["cells"][0]["id"], id.as_str());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! - [`schema`]: root and key names, [`Cell`], [`NewCell`], [`CellType`], [`ExecutionState`],
//!   and the JSON ⇄ yrs value conversions.
//! - `ipynb`: [`Notebook::from_ipynb_str`], [`Notebook::from_ipynb`], [`Notebook::to_ipynb`].
//! - `limits`: [`ImportLimits`] and the checks run before an import builds anything.
//! - `read`: reading cells back, de-duplication and repair.
//! - `edit`: the typed edits ([`Notebook::insert_cell`] and friends).
//! - `error`: [`ImportError`], [`EditError`].
//! - [`kernel`]: `state.kernel`, as others than the runtime write it ([`kernel::mark_kernel_dead`]).
//! - [`clear`]: clearing outputs and execution counts, as the server does for an editor.
//! - [`history`]: comparing two states cell by cell, and restoring an earlier state as an edit.
//! - [`guard`]: [`Guard`], which applies clients' updates and refuses those that write the
//!   values only the runtime or the server may write ([`schema::RUNTIME_CELL_KEYS`],
//!   [`schema::SERVER_STATE_KEYS`]).
//!
//! # The document
//!
//! - `cells`: `Y.Array` of `Y.Map`. A cell holds `id` (string), `cell_type` (`"code"`,
//!   `"markdown"`, `"raw"`), `source` (`Y.Text`) and `metadata` (a `Y.Map` whose values are plain
//!   JSON, as both libraries store it). Code cells add `outputs` (`Y.Array` of `Y.Map`),
//!   `execution_count` (integer or null) and `execution_state` (`"idle"`, `"queued"`,
//!   `"running"`). Markdown and raw cells may hold `attachments` (plain JSON).
//! - Outputs are `Y.Map`s of plain JSON, except a stream output's `text`, which is a `Y.Text`
//!   so the runtime can append to it.
//! - `meta`: `Y.Map` with `nbformat`, `nbformat_minor` (numbers) and `metadata` (`Y.Map` of plain
//!   JSON). Imports store 4 and 5: both libraries strip cell ids when reading a 4.0–4.4 document.
//! - `state`: `Y.Map` of shared runtime state; not part of the `.ipynb`.
//!
//! Who writes what: the runtime alone writes cells' [`schema::RUNTIME_CELL_KEYS`] and the
//! runtime or the collab service alone the [`schema::SERVER_STATE_KEYS`] of `state`; the
//! collab service applies editors' updates through a [`Guard`], which refuses the others.
//!
//! Where the two Jupyter libraries differ, this crate writes what both read and reads what
//! either writes:
//!
//! - Stream text given as a list of lines: jupyter_ydoc joins it with `""`, @jupyter/ydoc with
//!   `Array.join()`'s `","` (a bug). We join with `""`, nbformat's meaning. Readers accept a
//!   `Y.Text`, a plain string or a list of strings.
//! - `execution_state`: jupyter_ydoc writes `"idle"` into every new code cell, @jupyter/ydoc
//!   writes nothing. We write `"idle"`; a missing one reads as `None`.
//! - Attachments: jupyter_ydoc drops an empty `attachments` object on write and read;
//!   @jupyter/ydoc keeps it. We keep whatever the file had, so nothing is lost on round trips.
//! - Numbers: pycrdt stores every Python integer as a float, and JavaScript has no integers,
//!   so jupyter_ydoc's `get()` reads every integral float as an integer. So do we: a file's
//!   `18.0` exports as `18` (equal as JSON numbers; no corpus notebook has one). We write
//!   integers as integers, which both libraries read as numbers.
//! - jupyter_ydoc's `set()` adds empty `language_info` and `kernelspec` metadata when missing;
//!   we do not.
//!
//! # Moves and duplicates
//!
//! yjs 13 cannot read yrs's native move, so, as in JupyterLab and jupyter_ydoc, moving a cell
//! deletes it and inserts a deep copy (same id, same source, outputs and metadata) at the new
//! place. Consequences under concurrency, and how this crate handles them:
//!
//! - Two replicas move the same cell at once: both copies survive the merge, with one id.
//!   Readers ([`Notebook::cells`], [`Notebook::to_ipynb`]) show only the first copy in array
//!   order. Array order converges, so every replica shows the same copy; typed edits address
//!   that copy; [`Notebook::delete_cell`] and [`Notebook::move_cell`] remove every copy; and
//!   [`Notebook::repair_duplicates`] deletes the hidden copies. (jupyter_ydoc's `get()` instead
//!   renames a non-identical duplicate and writes the new id back; running
//!   `repair_duplicates` after applying remote updates keeps that from happening.)
//! - One replica moves a cell while another edits its source: the edit lands in the deleted
//!   original and is lost; the moved copy holds the source as of the move.
//! - One replica moves a cell while another deletes it: the moved copy survives.
//!
//! No interleaving duplicates or loses a cell that nobody deleted.
//!
//! # Export repairs
//!
//! [`Notebook::to_ipynb`] always returns valid nbformat 4.5, whatever clients wrote: cells
//! without a valid id get one derived from their item id (`cell-<client>-<clock>`, the same on
//! every replica); unknown cell types export as raw (code if they hold outputs); outputs of
//! unknown type are dropped and outputs keep only their schema fields; the few metadata keys
//! whose type nbformat fixes (`collapsed`, `scrolled`, `tags`, `name`, `kernelspec`, …) are
//! dropped when malformed. Object keys come out sorted, as nbformat writes them.

pub mod clear;
mod code;
mod edit;
mod error;
pub mod guard;
pub mod history;
mod ids;
mod ipynb;
pub mod kernel;
mod limits;
mod read;
pub mod schema;

pub use code::{CodeLookup, CodeSource};
pub use error::{EditError, ImportError};
pub use guard::{Guard, Outcome};
pub use limits::ImportLimits;
pub use schema::{Cell, CellType, ExecutionState, NewCell, is_valid_cell_id};

use yrs::{ArrayRef, Doc, MapRef, ReadTxn, StateVector, Transact};

/// Whether `doc` holds everything `state_vector` describes: for every client in it, at least
/// as many of its changes. A peer that sends its state vector along with a request (an
/// execute) can so be sure the receiver has seen its latest edits.
pub fn doc_includes(doc: &Doc, state_vector: &StateVector) -> bool {
    let local = doc.transact().state_vector();
    state_vector
        .iter()
        .all(|(client, clock)| local.get(client) >= *clock)
}

/// A notebook document: a [`yrs::Doc`] in the YNotebook schema.
///
/// Cloning is cheap and shares the document.
#[derive(Clone)]
pub struct Notebook {
    doc: Doc,
    cells: ArrayRef,
    meta: MapRef,
    state: MapRef,
}

impl std::fmt::Debug for Notebook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notebook")
            .field("client_id", &self.doc.client_id())
            .finish_non_exhaustive()
    }
}

impl Default for Notebook {
    fn default() -> Self {
        Notebook::new()
    }
}

impl Notebook {
    /// An empty document with nothing written to it, counting text offsets in UTF-16 code
    /// units as yjs does.
    pub fn new() -> Self {
        Notebook::from_doc(Doc::with_options(yrs::Options {
            offset_kind: yrs::OffsetKind::Utf16,
            ..yrs::Options::default()
        }))
    }

    /// Wraps an existing document (for example one synced from clients or loaded from storage).
    pub fn from_doc(doc: Doc) -> Self {
        let cells = doc.get_or_insert_array(schema::CELLS);
        let meta = doc.get_or_insert_map(schema::META);
        let state = doc.get_or_insert_map(schema::STATE);
        Notebook {
            doc,
            cells,
            meta,
            state,
        }
    }

    /// The underlying document.
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// Unwraps the underlying document.
    pub fn into_doc(self) -> Doc {
        self.doc
    }

    /// The `state` root map, where Tandem keeps shared runtime state.
    pub fn state(&self) -> &MapRef {
        &self.state
    }

    /// One entry of the `state` map as plain JSON (for example `kernel`, the runtime's shared
    /// state), or `None` when absent.
    pub fn state_value(&self, key: &str) -> Option<serde_json::Value> {
        let txn = self.doc.transact();
        yrs::Map::get(&self.state, &txn, key).map(|v| schema::out_to_json(&v, &txn))
    }

    /// The cells as readers see them, in order (see the crate doc on duplicates and repairs).
    pub fn cells(&self) -> Vec<Cell> {
        let txn = self.doc.transact();
        read::visible_cells(&self.cells, &txn)
            .iter()
            .map(|slot| read::read_cell(slot, &txn))
            .collect()
    }

    /// The number of cells readers see.
    pub fn cell_count(&self) -> u32 {
        let txn = self.doc.transact();
        read::visible_cells(&self.cells, &txn).len() as u32
    }

    /// The cell ids in order.
    pub fn cell_ids(&self) -> Vec<String> {
        let txn = self.doc.transact();
        read::visible_cells(&self.cells, &txn)
            .into_iter()
            .map(|slot| slot.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;

    #[test]
    fn a_doc_includes_the_state_vectors_it_has_seen() {
        let a = Notebook::new();
        a.insert_cell(0, NewCell::code("1")).unwrap();
        let b = Notebook::new();
        assert!(doc_includes(b.doc(), &StateVector::default()));
        let sv = a.doc().transact().state_vector();
        assert!(!doc_includes(b.doc(), &sv));
        let update = a
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        b.doc()
            .transact_mut()
            .apply_update(yrs::Update::decode_v1(&update).unwrap())
            .unwrap();
        assert!(doc_includes(b.doc(), &sv));
        // b's own later edits do not matter; a's later ones do.
        b.insert_cell(1, NewCell::code("2")).unwrap();
        assert!(doc_includes(b.doc(), &sv));
        a.insert_cell(0, NewCell::code("0")).unwrap();
        assert!(!doc_includes(b.doc(), &a.doc().transact().state_vector()));
    }

    #[test]
    fn new_writes_nothing() {
        let nb = Notebook::new();
        let txn = nb.doc().transact();
        assert_eq!(txn.state_vector(), yrs::StateVector::default());
    }
}
