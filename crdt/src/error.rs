//! Errors of the two fallible areas: importing an `.ipynb` and editing the document.
//!
//! Import errors name the place in the notebook with a JSON path such as
//! `cells[3].outputs[0].text`, so a user can find the offending field in their file.

use thiserror::Error;

/// Why an `.ipynb` could not be imported.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportError {
    /// The input is larger than [`ImportLimits::max_bytes`](crate::ImportLimits::max_bytes).
    #[error("notebook is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Size of the input in bytes (for a parsed value: a lower bound of its JSON size).
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Arrays and objects nest deeper than [`ImportLimits::max_depth`](crate::ImportLimits::max_depth).
    #[error("notebook nests arrays and objects deeper than the limit of {limit} levels (at {at})")]
    TooDeep {
        /// The configured limit.
        limit: usize,
        /// Where the limit was crossed: a byte offset in the text, or a JSON path.
        at: String,
    },
    /// A single string is longer than
    /// [`ImportLimits::max_string_bytes`](crate::ImportLimits::max_string_bytes).
    #[error("string at {at} is longer than the limit of {limit} bytes")]
    StringTooLong {
        /// Where the string is: a byte offset in the text, or a JSON path.
        at: String,
        /// The configured limit.
        limit: usize,
    },
    /// The notebook has more cells than [`ImportLimits::max_cells`](crate::ImportLimits::max_cells).
    #[error("notebook has {count} cells, more than the limit of {limit}")]
    TooManyCells {
        /// Number of cells in the input.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The input is not JSON.
    #[error("not valid json: {message} at line {line} column {column}")]
    NotJson {
        /// The parser's description of the problem.
        message: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
    },
    /// The notebook is not nbformat 4 (nbformat 3 and older must be converted first, e.g. with
    /// `jupyter nbconvert --to notebook`).
    #[error("unsupported nbformat version {found}: only nbformat 4 can be imported")]
    UnsupportedVersion {
        /// The `nbformat` value found, as JSON text.
        found: String,
    },
    /// A required field is absent.
    #[error("{at}: missing required field `{field}`")]
    MissingField {
        /// JSON path of the object that lacks the field (empty for the notebook itself).
        at: String,
        /// Name of the missing field.
        field: &'static str,
    },
    /// A field holds a value of the wrong JSON type.
    #[error("{at}: expected {expected}, found {found}")]
    WrongType {
        /// JSON path of the field.
        at: String,
        /// What nbformat v4 allows there.
        expected: &'static str,
        /// The JSON type that was found.
        found: &'static str,
    },
    /// A cell's `cell_type` is not `code`, `markdown` or `raw`.
    #[error(
        "cells[{cell}].cell_type: unknown cell type {cell_type:?} (expected \"code\", \"markdown\" or \"raw\")"
    )]
    UnknownCellType {
        /// Index of the cell.
        cell: usize,
        /// The cell type found.
        cell_type: String,
    },
    /// An output's `output_type` is not one of nbformat v4's four.
    #[error(
        "cells[{cell}].outputs[{output}].output_type: unknown output type {output_type:?} \
         (expected \"stream\", \"display_data\", \"execute_result\" or \"error\")"
    )]
    UnknownOutputType {
        /// Index of the cell.
        cell: usize,
        /// Index of the output within the cell.
        output: usize,
        /// The output type found.
        output_type: String,
    },
    /// A cell id breaks nbformat 4.5's rule: 1 to 64 characters of `a-z A-Z 0-9 - _`.
    #[error(
        "cells[{cell}].id: invalid cell id {id:?} (expected 1 to 64 characters of a-z, A-Z, 0-9, '-' or '_')"
    )]
    InvalidCellId {
        /// Index of the cell.
        cell: usize,
        /// The id found.
        id: String,
    },
}

/// Why a typed edit was refused. A refused edit changes nothing.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EditError {
    /// No cell has this id (it may have been deleted by another replica).
    #[error("no cell with id {0:?}")]
    CellNotFound(String),
    /// A cell index is past the end of the notebook.
    #[error("cell index {index} is out of range: the notebook has {len} cells")]
    IndexOutOfRange {
        /// The index asked for.
        index: u32,
        /// Number of cells (for an insert, `index` may equal it).
        len: u32,
    },
    /// A source edit reaches past the end of the cell's source.
    #[error(
        "source range {index}..{end} of cell {id:?} is out of range: the source has {len} characters"
    )]
    SourceOutOfRange {
        /// The cell edited.
        id: String,
        /// Start of the range, in characters.
        index: u32,
        /// End of the range, in characters.
        end: u64,
        /// Length of the source, in characters.
        len: u32,
    },
    /// A new cell's id breaks nbformat 4.5's rule (1 to 64 characters of `a-z A-Z 0-9 - _`).
    #[error("invalid cell id {0:?}: expected 1 to 64 characters of a-z, A-Z, 0-9, '-' or '_'")]
    InvalidCellId(String),
    /// A new cell's id is already used by another cell.
    #[error("a cell with id {0:?} already exists")]
    DuplicateCellId(String),
    /// The edit only applies to code cells (outputs, execution count and state).
    #[error("cell {0:?} is not a code cell")]
    NotACodeCell(String),
    /// An output given to [`Notebook::append_output`](crate::Notebook::append_output) is not a
    /// valid nbformat v4 output.
    #[error("invalid output: {0}")]
    InvalidOutput(String),
}
