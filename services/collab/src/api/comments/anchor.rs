//! Ranges of a cell's source that follow the text, made and found again on the live document
//! (inside [`crate::room::RoomHandle::read`]).
//!
//! A range is two yrs sticky indexes into the cell's `source` `Y.Text`: the start sticks to
//! the first character of the range ([`Assoc::After`]), the end to the last one
//! ([`Assoc::Before`]), so text typed inside the range grows it and text typed at either edge
//! stays outside, whoever typed it and in whatever order the updates arrive.
//!
//! Moving a cell re-creates it (see `tandem_crdt`'s "Moves and duplicates"), with a new
//! `Y.Text` that the sticky indexes do not point into. Such a range is found again by its
//! quote, the occurrence nearest to where it was, and anchored afresh; the caller stores the
//! new anchor. A source that is a plain string rather than a `Y.Text` (written by an old
//! client) is handled the same way.
//!
//! The API counts UTF-16 code units; the room's document may count otherwise
//! ([`Doc::offset_kind`]), so every offset is converted through the source string.

use std::collections::{HashMap, HashSet};

use tandem_crdt::schema::{CELLS, ID, SOURCE};
use yrs::branch::Branch;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Array, ArrayRef, Assoc, BranchID, Doc, GetString, IndexedSequence, Map, OffsetKind, Out,
    ReadTxn, RootRef, StickyIndex, TextRef, Transact,
};

use crate::store::comments::Anchor;

/// Why a range cannot be anchored.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// The notebook has no cell with this id.
    #[error("the notebook has no cell {0:?}")]
    UnknownCell(String),
    /// The range is not a range of the cell's source.
    #[error("{0}")]
    InvalidRange(String),
}

/// Where a thread is in the document now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The thread's cell is no longer in the notebook.
    pub orphaned: bool,
    /// The range now (UTF-16 code units) and its text; `None` for a thread on the whole cell,
    /// on a deleted cell, or whose text is nowhere to be found.
    pub range: Option<(u32, u32, String)>,
    /// A new anchor to store: the old one no longer pointed into the cell's source, and the
    /// range was found again by its quote.
    pub reanchor: Option<Anchor>,
}

/// Makes the anchor of a new thread on `cell_id`, on the range `from..to` (UTF-16 code units)
/// of its source, or `None` for a thread on the whole cell.
pub fn create(
    doc: &Doc,
    cell_id: &str,
    range: Option<(u32, u32)>,
) -> Result<Option<Anchor>, AnchorError> {
    let txn = doc.transact();
    let sources = sources(&txn, &HashSet::from([cell_id]));
    let source = sources
        .get(cell_id)
        .ok_or_else(|| AnchorError::UnknownCell(cell_id.to_owned()))?;
    let Some((from, to)) = range else {
        return Ok(None);
    };
    let len = utf16_len(&source.string);
    if from > to || to > len {
        return Err(AnchorError::InvalidRange(format!(
            "the range {from}..{to} is not within the cell's source, which is {len} UTF-16 \
             code units long"
        )));
    }
    let (Some(start), Some(end)) = (
        byte_index(&source.string, from),
        byte_index(&source.string, to),
    ) else {
        return Err(AnchorError::InvalidRange(format!(
            "the range {from}..{to} splits a character (offsets count UTF-16 code units)"
        )));
    };
    let quote = source.string[start..end].to_owned();
    Ok(Some(anchor_at(
        &txn,
        source,
        doc.offset_kind(),
        (start, end),
        quote,
    )))
}

/// Finds each thread, given as its cell id and anchor, in the document.
pub fn locate_all(doc: &Doc, threads: &[(String, Option<Anchor>)]) -> Vec<Located> {
    let txn = doc.transact();
    let wanted: HashSet<&str> = threads.iter().map(|(cell, _)| cell.as_str()).collect();
    let sources = sources(&txn, &wanted);
    let kind = doc.offset_kind();
    threads
        .iter()
        .map(|(cell, anchor)| locate(&txn, kind, sources.get(cell), anchor.as_ref()))
        .collect()
}

fn locate<T: ReadTxn>(
    txn: &T,
    kind: OffsetKind,
    source: Option<&Source>,
    anchor: Option<&Anchor>,
) -> Located {
    let Some(source) = source else {
        return Located {
            orphaned: true,
            range: None,
            reanchor: None,
        };
    };
    let Some(anchor) = anchor else {
        return Located {
            orphaned: false,
            range: None,
            reanchor: None,
        };
    };
    let followed = source
        .text
        .as_ref()
        .and_then(|text| follow(txn, text, &source.string, kind, anchor));
    if let Some((start, end)) = followed {
        return Located {
            orphaned: false,
            range: Some(range_of(&source.string, start, end)),
            reanchor: None,
        };
    }
    match find_quote(&source.string, &anchor.quote, anchor.from) {
        Some((start, end)) => Located {
            orphaned: false,
            range: Some(range_of(&source.string, start, end)),
            reanchor: source
                .text
                .as_ref()
                .map(|_| anchor_at(txn, source, kind, (start, end), anchor.quote.clone())),
        },
        None => Located {
            orphaned: false,
            range: None,
            reanchor: None,
        },
    }
}

/// A cell's source as readers see it.
struct Source {
    /// The `Y.Text`, when the source is one (a plain string cannot hold sticky indexes).
    text: Option<TextRef>,
    /// Its text.
    string: String,
}

/// The sources of the visible cells whose ids are in `wanted`. As in `tandem_crdt`, when
/// several cells share an id the first in array order is the cell, and a cell without a
/// valid id goes by one derived from its item id.
fn sources<T: ReadTxn>(txn: &T, wanted: &HashSet<&str>) -> HashMap<String, Source> {
    let mut seen = HashSet::new();
    let mut found = HashMap::new();
    let Some(cells) = ArrayRef::root(CELLS).get(txn) else {
        return found;
    };
    for item in cells.iter(txn) {
        let Out::YMap(map) = item else { continue };
        let id = match map.get(txn, ID) {
            Some(Out::Any(Any::String(id))) if tandem_crdt::is_valid_cell_id(&id) => id.to_string(),
            _ => match AsRef::<Branch>::as_ref(&map).id() {
                BranchID::Nested(item) => format!("cell-{}-{}", item.client, item.clock),
                BranchID::Root(name) => format!("cell-{name}"),
            },
        };
        if !seen.insert(id.clone()) || !wanted.contains(id.as_str()) {
            continue;
        }
        let source = match map.get(txn, SOURCE) {
            Some(Out::YText(text)) => Source {
                string: text.get_string(txn),
                text: Some(text),
            },
            Some(Out::Any(Any::String(s))) => Source {
                text: None,
                string: s.to_string(),
            },
            Some(Out::Any(Any::Array(parts))) => Source {
                text: None,
                string: parts
                    .iter()
                    .filter_map(|part| match part {
                        Any::String(s) => Some(s.as_ref()),
                        _ => None,
                    })
                    .collect(),
            },
            _ => Source {
                text: None,
                string: String::new(),
            },
        };
        found.insert(id, source);
    }
    found
}

/// An anchor on the byte range `start..end` of a source.
fn anchor_at<T: ReadTxn>(
    txn: &T,
    source: &Source,
    kind: OffsetKind,
    (start, end): (usize, usize),
    quote: String,
) -> Anchor {
    let (start_index, end_index) = match &source.text {
        Some(text) => {
            let at = |byte| doc_index(&source.string, byte, kind);
            // At the very end of the text nothing follows the start; stick it to what precedes.
            let first = text
                .sticky_index(txn, at(start), Assoc::After)
                .or_else(|| text.sticky_index(txn, at(start), Assoc::Before));
            let last = text.sticky_index(txn, at(end), Assoc::Before);
            (
                first.map(|s| s.encode_v1()).unwrap_or_default(),
                last.map(|s| s.encode_v1()).unwrap_or_default(),
            )
        }
        None => (Vec::new(), Vec::new()),
    };
    Anchor {
        start: start_index,
        end: end_index,
        from: utf16_len(&source.string[..start]),
        to: utf16_len(&source.string[..end]),
        quote,
    }
}

/// Where an anchor's sticky indexes point now, as byte offsets of the source, if both point
/// into `text` (not into a deleted copy of the cell).
fn follow<T: ReadTxn>(
    txn: &T,
    text: &TextRef,
    string: &str,
    kind: OffsetKind,
    anchor: &Anchor,
) -> Option<(usize, usize)> {
    let here = AsRef::<Branch>::as_ref(text).id();
    let byte = |encoded: &[u8]| {
        let offset = StickyIndex::decode_v1(encoded).ok()?.get_offset(txn)?;
        (offset.branch.id() == here).then(|| byte_of_doc_index(string, offset.index, kind))
    };
    let start = byte(&anchor.start)?;
    // An empty range typed into lands between its two ends; keep it empty.
    let end = byte(&anchor.end)?.max(start);
    Some((start, end))
}

/// The byte range of the occurrence of `quote` in `string` that starts nearest to `near`
/// (UTF-16 code units). An empty quote is found at `near`, or the end.
fn find_quote(string: &str, quote: &str, near: u32) -> Option<(usize, usize)> {
    if quote.is_empty() {
        let at = byte_of_doc_index(string, near, OffsetKind::Utf16);
        return Some((at, at));
    }
    string
        .match_indices(quote)
        .map(|(at, _)| at)
        .min_by_key(|at| utf16_len(&string[..*at]).abs_diff(near))
        .map(|at| (at, at + quote.len()))
}

/// The range as the API shows it: UTF-16 offsets and its text.
fn range_of(string: &str, start: usize, end: usize) -> (u32, u32, String) {
    (
        utf16_len(&string[..start]),
        utf16_len(&string[..end]),
        string[start..end].to_owned(),
    )
}

fn utf16_len(s: &str) -> u32 {
    s.encode_utf16().count() as u32
}

/// The byte offset of the UTF-16 offset `units` of `s`, or `None` past the end or inside a
/// surrogate pair.
fn byte_index(s: &str, units: u32) -> Option<usize> {
    let mut counted = 0u32;
    for (byte, c) in s.char_indices() {
        if counted == units {
            return Some(byte);
        }
        if counted > units {
            return None;
        }
        counted += c.len_utf16() as u32;
    }
    (counted == units).then_some(s.len())
}

/// A byte offset of `s` in the document's units.
fn doc_index(s: &str, byte: usize, kind: OffsetKind) -> u32 {
    match kind {
        OffsetKind::Bytes => byte as u32,
        OffsetKind::Utf16 => utf16_len(&s[..byte]),
    }
}

/// A document index into `s` as a byte offset, clamped to the end and to a character
/// boundary.
fn byte_of_doc_index(s: &str, index: u32, kind: OffsetKind) -> usize {
    match kind {
        OffsetKind::Bytes => {
            let mut byte = (index as usize).min(s.len());
            while !s.is_char_boundary(byte) {
                byte -= 1;
            }
            byte
        }
        OffsetKind::Utf16 => {
            let mut counted = 0u32;
            for (byte, c) in s.char_indices() {
                if counted >= index {
                    return byte;
                }
                counted += c.len_utf16() as u32;
            }
            s.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use tandem_crdt::{ImportLimits, Notebook};
    use yrs::{StateVector, Update};

    use super::*;

    /// A notebook with one code cell `a` holding `source`, in a document counting offsets as
    /// `kind` (the room's documents count bytes).
    fn notebook(source: &str, kind: OffsetKind) -> Notebook {
        let ipynb = serde_json::json!({
            "nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [
                {"id": "a", "cell_type": "code", "source": source, "metadata": {},
                 "outputs": [], "execution_count": null},
                {"id": "b", "cell_type": "markdown", "source": "other", "metadata": {}},
            ],
        });
        let built = Notebook::from_ipynb(&ipynb, &ImportLimits::default()).unwrap();
        let state = built
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let doc = Doc::with_options(yrs::Options {
            offset_kind: kind,
            ..yrs::Options::default()
        });
        doc.transact_mut()
            .apply_update(Update::decode_v1(&state).unwrap())
            .unwrap();
        Notebook::from_doc(doc)
    }

    fn locate_one(nb: &Notebook, cell: &str, anchor: &Option<Anchor>) -> Located {
        locate_all(nb.doc(), &[(cell.to_owned(), anchor.clone())])
            .pop()
            .unwrap()
    }

    #[test]
    fn ranges_count_utf16_and_follow_edits() {
        for kind in [OffsetKind::Bytes, OffsetKind::Utf16] {
            // "é" is one UTF-16 unit (two bytes), "😀" two units (four bytes).
            let nb = notebook("é😀 x = 1 + 2", kind);
            let anchor = create(nb.doc(), "a", Some((4, 9))).unwrap();
            assert_eq!(anchor.as_ref().unwrap().quote, "x = 1", "{kind:?}");

            // Typed before the range (in characters: "é😀 " is 3 of them): it moves.
            nb.edit_source("a", 3, 0, "😀😀").unwrap();
            let here = locate_one(&nb, "a", &anchor);
            assert_eq!(here.range, Some((8, 13, "x = 1".into())), "{kind:?}");
            // Typed at both edges: it stays out. Typed inside: it grows.
            nb.edit_source("a", 5, 0, "<").unwrap();
            nb.edit_source("a", 11, 0, ">").unwrap();
            nb.edit_source("a", 8, 0, "yy").unwrap();
            let here = locate_one(&nb, "a", &anchor);
            assert_eq!(here.range, Some((9, 16, "x yy= 1".into())), "{kind:?}");
            assert!(!here.orphaned && here.reanchor.is_none());
        }
    }

    #[test]
    fn bad_ranges_and_cells_are_refused() {
        let nb = notebook("a😀b", OffsetKind::Bytes);
        assert_eq!(
            create(nb.doc(), "zz", None),
            Err(AnchorError::UnknownCell("zz".into()))
        );
        assert_eq!(create(nb.doc(), "a", None), Ok(None));
        for range in [(2, 1), (0, 5), (2, 3), (1, 2)] {
            assert!(
                matches!(
                    create(nb.doc(), "a", Some(range)),
                    Err(AnchorError::InvalidRange(_))
                ),
                "{range:?}"
            );
        }
        let whole = create(nb.doc(), "a", Some((0, 4))).unwrap().unwrap();
        assert_eq!(whole.quote, "a😀b");
    }

    #[test]
    fn empty_ranges_and_the_end_of_the_text() {
        let nb = notebook("abc", OffsetKind::Bytes);
        let at_end = create(nb.doc(), "a", Some((3, 3))).unwrap();
        let middle = create(nb.doc(), "a", Some((1, 1))).unwrap();
        nb.edit_source("a", 1, 0, "XY").unwrap();
        nb.edit_source("a", 5, 0, "!").unwrap();
        assert_eq!(
            locate_one(&nb, "a", &at_end).range,
            Some((5, 5, String::new()))
        );
        let middle = locate_one(&nb, "a", &middle).range.unwrap();
        assert_eq!(middle.0, middle.1, "an empty range stays empty");

        let empty = notebook("", OffsetKind::Bytes);
        let anchor = create(empty.doc(), "a", Some((0, 0))).unwrap();
        empty.edit_source("a", 0, 0, "new").unwrap();
        assert_eq!(locate_one(&empty, "a", &anchor).range.unwrap().0, 0);
    }

    #[test]
    fn moved_cells_are_found_by_quote_and_deleted_ones_orphaned() {
        let nb = notebook("one two one two", OffsetKind::Bytes);
        let anchor = create(nb.doc(), "a", Some((12, 15))).unwrap();
        nb.move_cell("a", 1).unwrap();
        let moved = locate_one(&nb, "a", &anchor);
        assert_eq!(
            moved.range,
            Some((12, 15, "two".into())),
            "the nearest copy"
        );
        let fresh = moved.reanchor.expect("a new anchor into the new source");
        // The new anchor follows edits again.
        nb.edit_source("a", 0, 0, ">> ").unwrap();
        let fresh = Some(fresh);
        assert_eq!(
            locate_one(&nb, "a", &fresh).range,
            Some((15, 18, "two".into()))
        );

        nb.edit_source("a", 0, 18, "").unwrap();
        let gone = locate_one(&nb, "a", &fresh);
        assert_eq!(gone.range, Some((0, 0, String::new())), "deleted text");

        nb.delete_cell("a").unwrap();
        let orphaned = locate_one(&nb, "a", &fresh);
        assert!(orphaned.orphaned);
        assert_eq!(orphaned.range, None);
        assert!(!locate_one(&nb, "b", &None).orphaned);
    }

    #[test]
    fn offsets_convert() {
        let s = "é😀x";
        assert_eq!(byte_index(s, 0), Some(0));
        assert_eq!(byte_index(s, 1), Some(2));
        assert_eq!(byte_index(s, 2), None, "inside the surrogate pair");
        assert_eq!(byte_index(s, 3), Some(6));
        assert_eq!(byte_index(s, 4), Some(7));
        assert_eq!(byte_index(s, 5), None);
        assert_eq!(byte_of_doc_index(s, 3, OffsetKind::Bytes), 2);
        assert_eq!(byte_of_doc_index(s, 3, OffsetKind::Utf16), 6);
        assert_eq!(byte_of_doc_index(s, 99, OffsetKind::Utf16), 7);
        assert_eq!(find_quote("ab ab ab", "ab", 4), Some((3, 5)));
        assert_eq!(find_quote("ab", "zz", 0), None);
        assert_eq!(find_quote("é😀", "", 9), Some((6, 6)));
    }
}
