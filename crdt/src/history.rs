//! Comparing two states of a notebook, and turning the document into an earlier state as an
//! ordinary edit.
//!
//! Both work on cells matched by id. The cells two states share in the same relative order
//! (the longest such run, found as a longest increasing subsequence, since ids are unique
//! among the cells a reader sees) are kept; the rest were added, removed or moved. A restore
//! ([`restore`]) keeps those cells' `Y.Map`s and edits them in place (a source changes by its
//! differing middle only), deletes the others and inserts the earlier state's cells, all in
//! the caller's transaction: collaborators receive it as one update, like anyone's edit, and
//! their carets in untouched text stay where they were.

use serde_json::{Map as JsonMap, Value};
use yrs::{
    Any, Array, ArrayPrelim, In, Map, MapPrelim, MapRef, OffsetKind, Out, Text, TransactionMut,
    WriteTxn,
};

use crate::Notebook;
use crate::ipynb::{self, cell_prelim, output_prelim};
use crate::read::{self, Slot};
use crate::schema::{
    self, ATTACHMENTS, CELL_TYPE, CELLS, Cell, CellType, EXECUTION_COUNT, META, METADATA, OUTPUTS,
    SOURCE,
};

/// What a notebook holds that a version restores: its cells and its metadata. Runtime state
/// (`state`: the kernel, the title, comments) is not part of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contents {
    /// The cells, in order, as readers see them.
    pub cells: Vec<Cell>,
    /// The notebook's metadata (`meta.metadata`).
    pub metadata: JsonMap<String, Value>,
}

impl Notebook {
    /// The cells and metadata of the document now.
    pub fn contents(&self) -> Contents {
        let metadata = match self.to_ipynb().get(METADATA) {
            Some(Value::Object(m)) => m.clone(),
            _ => JsonMap::new(),
        };
        Contents {
            cells: self.cells(),
            metadata,
        }
    }
}

/// How a cell differs between two states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Only in the later state.
    Added,
    /// Only in the earlier state.
    Removed,
    /// In both, with different content (and possibly at another place).
    Changed,
    /// In both with the same content, at another place relative to the other cells.
    Moved,
    /// In both, the same, in the same order.
    Unchanged,
}

impl ChangeKind {
    /// The name used in JSON: `added`, `removed`, `changed`, `moved`, `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
            ChangeKind::Moved => "moved",
            ChangeKind::Unchanged => "unchanged",
        }
    }
}

/// One cell of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct CellDiff {
    /// The cell id.
    pub id: String,
    /// How it differs.
    pub kind: ChangeKind,
    /// The cell in the earlier state (absent when added).
    pub before: Option<Cell>,
    /// The cell in the later state (absent when removed).
    pub after: Option<Cell>,
    /// Which parts differ, for changed cells: `cell_type`, `source`, `metadata`, `outputs`,
    /// `execution_count`, `attachments`.
    pub fields: Vec<&'static str>,
}

/// Compares two lists of cells. The result lists every cell of both: the later state's cells in
/// their order, with each removed cell placed after the cell that preceded it before.
pub fn diff(before: &[Cell], after: &[Cell]) -> Vec<CellDiff> {
    let kept = kept_in_order(before, after, |_, _| true);
    let after_ids: std::collections::HashSet<&str> = after.iter().map(|c| c.id.as_str()).collect();
    let before_by_id: std::collections::HashMap<&str, &Cell> =
        before.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut out = Vec::with_capacity(before.len().max(after.len()));
    let mut i = 0;
    for cell in after {
        // Removed cells that came before the next kept cell go here.
        while i < before.len() && !kept.contains(before[i].id.as_str()) {
            if !after_ids.contains(before[i].id.as_str()) {
                out.push(CellDiff {
                    id: before[i].id.clone(),
                    kind: ChangeKind::Removed,
                    before: Some(before[i].clone()),
                    after: None,
                    fields: Vec::new(),
                });
            }
            i += 1;
        }
        let Some(old) = before_by_id.get(cell.id.as_str()) else {
            out.push(CellDiff {
                id: cell.id.clone(),
                kind: ChangeKind::Added,
                before: None,
                after: Some(cell.clone()),
                fields: Vec::new(),
            });
            continue;
        };
        let in_order = kept.contains(cell.id.as_str());
        if in_order {
            i += 1;
        }
        let fields = changed_fields(old, cell);
        let kind = match (fields.is_empty(), in_order) {
            (false, _) => ChangeKind::Changed,
            (true, false) => ChangeKind::Moved,
            (true, true) => ChangeKind::Unchanged,
        };
        out.push(CellDiff {
            id: cell.id.clone(),
            kind,
            before: Some((*old).clone()),
            after: Some(cell.clone()),
            fields,
        });
    }
    for cell in &before[i.min(before.len())..] {
        if !after_ids.contains(cell.id.as_str()) {
            out.push(CellDiff {
                id: cell.id.clone(),
                kind: ChangeKind::Removed,
                before: Some(cell.clone()),
                after: None,
                fields: Vec::new(),
            });
        }
    }
    out
}

/// The parts of a cell that differ between two states of it. The run state and who ran it
/// are not content and are not compared.
fn changed_fields(a: &Cell, b: &Cell) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if a.cell_type != b.cell_type {
        fields.push("cell_type");
    }
    if a.source != b.source {
        fields.push("source");
    }
    if a.metadata != b.metadata {
        fields.push("metadata");
    }
    if a.outputs != b.outputs {
        fields.push("outputs");
    }
    if a.execution_count != b.execution_count {
        fields.push("execution_count");
    }
    if a.attachments != b.attachments {
        fields.push(ATTACHMENTS);
    }
    fields
}

/// The ids of the cells both lists hold in the same relative order (a longest such run) and
/// for which `keep` agrees.
fn kept_in_order<'a>(
    before: &'a [Cell],
    after: &[Cell],
    keep: impl Fn(&Cell, &Cell) -> bool,
) -> std::collections::HashSet<&'a str> {
    let position: std::collections::HashMap<&str, usize> = before
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    // Positions in `before` of the shared cells, in `after`'s order.
    let sequence: Vec<usize> = after
        .iter()
        .filter_map(|cell| {
            let &i = position.get(cell.id.as_str())?;
            keep(&before[i], cell).then_some(i)
        })
        .collect();
    longest_increasing(&sequence)
        .into_iter()
        .map(|i| before[i].id.as_str())
        .collect()
}

/// A longest strictly increasing subsequence (patience sorting, O(n log n)).
fn longest_increasing(sequence: &[usize]) -> Vec<usize> {
    // tails[k]: index into `sequence` of the smallest tail of an increasing run of length k+1.
    let mut tails: Vec<usize> = Vec::new();
    let mut previous = vec![usize::MAX; sequence.len()];
    for (i, &value) in sequence.iter().enumerate() {
        let k = tails.partition_point(|&t| sequence[t] < value);
        if k > 0 {
            previous[i] = tails[k - 1];
        }
        if k == tails.len() {
            tails.push(i);
        } else {
            tails[k] = i;
        }
    }
    let mut run = Vec::with_capacity(tails.len());
    let mut at = tails.last().copied().unwrap_or(usize::MAX);
    while at != usize::MAX {
        run.push(sequence[at]);
        at = previous[at];
    }
    run.reverse();
    run
}

/// What a restore changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Cells inserted (added back, or re-created at another place or with another type).
    pub inserted: u32,
    /// Cells deleted (with any hidden duplicates left by concurrent moves).
    pub deleted: u32,
    /// Cells kept and edited in place.
    pub modified: u32,
}

/// Turns the document's cells and notebook metadata into `target`'s, inside `txn`: the
/// changes are an ordinary edit that merges with concurrent ones. Cells keep their `Y.Map`
/// where they can (same id, same type, same relative order): their source is edited by its
/// differing middle, their metadata key by key, their outputs replaced only when they differ.
/// A cell's run state and who ran it are left alone, and so is the `state` map.
pub fn restore(txn: &mut TransactionMut, target: &Contents) -> RestoreSummary {
    let cells = txn.get_or_insert_array(CELLS);
    let meta = txn.get_or_insert_map(META);
    let kind = txn.doc().offset_kind();
    let mut summary = RestoreSummary::default();

    let slots = read::visible_cells(&cells, txn);
    let current: Vec<Cell> = slots.iter().map(|s| read::read_cell(s, txn)).collect();
    let kept = kept_in_order(&current, &target.cells, |a, b| a.cell_type == b.cell_type);
    let kept_maps: std::collections::HashMap<String, (MapRef, Cell)> = slots
        .iter()
        .zip(&current)
        .filter(|(slot, _)| kept.contains(slot.id.as_str()))
        .map(|(slot, cell)| (slot.id.clone(), (slot.map.clone(), cell.clone())))
        .collect();
    let keep_raw: std::collections::HashSet<u32> = slots
        .iter()
        .filter(|s| kept.contains(s.id.as_str()))
        .map(|s: &Slot| s.raw_index)
        .collect();

    // Everything but the kept cells goes: other cells, hidden duplicates, stray values.
    let len = cells.len(txn);
    for raw in (0..len).rev() {
        if !keep_raw.contains(&raw) {
            cells.remove(txn, raw);
            if slots.iter().any(|s| s.raw_index == raw) {
                summary.deleted += 1;
            }
        }
    }
    // The array now holds the kept cells in `target`'s order; fill in the rest around them.
    for (index, cell) in (0u32..).zip(&target.cells) {
        match kept_maps.get(&cell.id) {
            Some((map, now)) => {
                if update_cell(txn, map, now, cell, kind) {
                    summary.modified += 1;
                }
            }
            None => {
                cells.insert(txn, index, cell_prelim(cell));
                summary.inserted += 1;
            }
        }
    }
    let metadata = ensure_map(&meta, txn, METADATA);
    sync_map(txn, &metadata, &target.metadata);
    summary
}

/// Edits a kept cell into `target`. Returns whether anything changed.
fn update_cell(
    txn: &mut TransactionMut,
    map: &MapRef,
    now: &Cell,
    target: &Cell,
    kind: OffsetKind,
) -> bool {
    let fields = changed_fields(now, target);
    for field in &fields {
        match *field {
            "source" => {
                let text = ipynb::ensure_text(map, txn, SOURCE);
                replace_middle(txn, &text, &now.source, &target.source, kind);
            }
            METADATA => {
                let metadata = ensure_map(map, txn, METADATA);
                let wanted = match &target.metadata {
                    Value::Object(m) => m.clone(),
                    _ => JsonMap::new(),
                };
                sync_map(txn, &metadata, &wanted);
            }
            OUTPUTS => {
                let outputs: ArrayPrelim = target.outputs.iter().map(output_prelim).collect();
                map.insert(txn, OUTPUTS, outputs);
            }
            EXECUTION_COUNT => {
                let count = target.execution_count.map_or(Any::Null, Any::from);
                map.insert(txn, EXECUTION_COUNT, count);
            }
            ATTACHMENTS => match &target.attachments {
                Some(value) => {
                    map.insert(txn, ATTACHMENTS, schema::json_to_any(value));
                }
                None => {
                    map.remove(txn, ATTACHMENTS);
                }
            },
            // Kept cells have the target's type; a type change re-creates the cell.
            _ => {}
        }
    }
    // A cell whose id was derived (no valid stored id) keeps that id by storing it.
    if schema::map_string(map, txn, schema::ID).as_deref() != Some(target.id.as_str()) {
        map.insert(txn, schema::ID, target.id.as_str());
    }
    if schema::map_string(map, txn, CELL_TYPE).as_deref() != Some(target.cell_type.as_str()) {
        map.insert(txn, CELL_TYPE, target.cell_type.as_str());
    }
    if target.cell_type == CellType::Code && !matches!(map.get(txn, OUTPUTS), Some(Out::YArray(_)))
    {
        let outputs: ArrayPrelim = target.outputs.iter().map(output_prelim).collect();
        map.insert(txn, OUTPUTS, outputs);
    }
    !fields.is_empty()
}

/// Replaces the part of `text` (holding `now`) that differs from `wanted`: the common prefix
/// and suffix stay, so remote carets outside the changed middle do not move.
fn replace_middle(
    txn: &mut TransactionMut,
    text: &yrs::TextRef,
    now: &str,
    wanted: &str,
    kind: OffsetKind,
) {
    let a: Vec<char> = now.chars().collect();
    let b: Vec<char> = wanted.chars().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let width = |chars: &[char]| -> u32 {
        chars
            .iter()
            .map(|c| match kind {
                OffsetKind::Bytes => c.len_utf8(),
                OffsetKind::Utf16 => c.len_utf16(),
            })
            .sum::<usize>() as u32
    };
    let start = width(&a[..prefix]);
    let removed = width(&a[prefix..a.len() - suffix]);
    let inserted: String = b[prefix..b.len() - suffix].iter().collect();
    if removed > 0 {
        text.remove_range(txn, start, removed);
    }
    if !inserted.is_empty() {
        text.insert(txn, start, &inserted);
    }
}

/// Makes a map of plain JSON values hold exactly `wanted`, touching only keys that differ.
fn sync_map(txn: &mut TransactionMut, map: &MapRef, wanted: &JsonMap<String, Value>) {
    let present: Vec<(String, Value)> = map
        .iter(txn)
        .map(|(k, v)| (k.to_string(), schema::out_to_json(&v, txn)))
        .collect();
    for (key, value) in &present {
        match wanted.get(key) {
            None => {
                map.remove(txn, key);
            }
            Some(target) if target != value => {
                map.insert(txn, key.as_str(), schema::json_to_any(target));
            }
            Some(_) => {}
        }
    }
    for (key, value) in wanted {
        if !present.iter().any(|(k, _)| k == key) {
            map.insert(txn, key.as_str(), schema::json_to_any(value));
        }
    }
}

/// The `Y.Map` under `key`, replacing whatever else is there (keeping a plain object's
/// entries).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewCell;
    use yrs::updates::decoder::Decode;
    use yrs::{ReadTxn, Transact, Update};

    fn sync(from: &Notebook, to: &Notebook) {
        let update = from
            .doc()
            .transact()
            .encode_state_as_update_v1(&to.doc().transact().state_vector());
        to.doc()
            .transact_mut()
            .apply_update(Update::decode_v1(&update).unwrap())
            .unwrap();
    }

    fn ids(nb: &Notebook) -> Vec<String> {
        nb.cell_ids()
    }

    fn sample() -> Notebook {
        let nb = Notebook::new();
        nb.insert_cell(0, NewCell::markdown("# Title").with_id("a"))
            .unwrap();
        nb.insert_cell(1, NewCell::code("x = 1").with_id("b"))
            .unwrap();
        nb.insert_cell(2, NewCell::code("print(x)").with_id("c"))
            .unwrap();
        nb.append_stream("c", "stdout", "1\n").unwrap();
        nb.set_notebook_metadata(
            "kernelspec",
            serde_json::json!({"name": "python3", "display_name": "Python 3"}),
        );
        nb
    }

    #[test]
    fn longest_increasing_finds_a_longest_run() {
        assert_eq!(longest_increasing(&[]), Vec::<usize>::new());
        assert_eq!(longest_increasing(&[0, 1, 2]), vec![0, 1, 2]);
        assert_eq!(longest_increasing(&[2, 0, 1]), vec![0, 1]);
        assert_eq!(longest_increasing(&[3, 1, 2, 0, 4]).len(), 3);
    }

    #[test]
    fn diff_names_added_removed_changed_and_moved_cells() {
        let old = sample();
        let new = Notebook::new();
        sync(&old, &new);
        new.edit_source("b", 4, 1, "2").unwrap();
        new.delete_cell("a").unwrap();
        new.insert_cell(2, NewCell::code("y").with_id("d")).unwrap();
        new.move_cell("c", 0).unwrap();
        let changes = diff(&old.cells(), &new.cells());
        let summary: Vec<(&str, ChangeKind)> =
            changes.iter().map(|c| (c.id.as_str(), c.kind)).collect();
        assert_eq!(
            summary,
            [
                ("a", ChangeKind::Removed),
                ("c", ChangeKind::Moved),
                ("b", ChangeKind::Changed),
                ("d", ChangeKind::Added),
            ],
            "{changes:#?}"
        );
        let b = &changes[2];
        assert_eq!(b.id, "b");
        assert_eq!(b.fields, ["source"]);
        assert_eq!(b.before.as_ref().unwrap().source, "x = 1");
        assert_eq!(b.after.as_ref().unwrap().source, "x = 2");
        assert!(
            diff(&old.cells(), &old.cells())
                .iter()
                .all(|c| c.kind == ChangeKind::Unchanged)
        );
    }

    #[test]
    fn restore_turns_the_document_into_the_version_in_one_update() {
        let version = sample();
        let saved = version.contents();
        let live = Notebook::new();
        sync(&version, &live);
        // Everything changes after the version was taken.
        live.edit_source("a", 2, 5, "Другое 😀").unwrap();
        live.delete_cell("b").unwrap();
        live.insert_cell(0, NewCell::raw("new").with_id("z"))
            .unwrap();
        live.move_cell("c", 0).unwrap();
        live.clear_outputs("c").unwrap();
        live.set_cell_metadata("a", "tags", serde_json::json!(["x"]))
            .unwrap();
        live.remove_notebook_metadata("kernelspec");
        live.set_notebook_metadata("extra", serde_json::json!(1));
        // Another peer holds the live document and receives the restore as an update.
        let peer = Notebook::new();
        sync(&live, &peer);
        let before = live.doc().transact().state_vector();
        let summary = {
            let mut txn = live.doc().transact_mut();
            restore(&mut txn, &saved)
        };
        assert!(summary.inserted > 0 && summary.deleted > 0, "{summary:?}");
        assert_eq!(live.contents(), saved);
        let update = live.doc().transact().encode_state_as_update_v1(&before);
        peer.doc()
            .transact_mut()
            .apply_update(Update::decode_v1(&update).unwrap())
            .unwrap();
        assert_eq!(peer.contents(), saved);
        assert_eq!(ids(&peer), ["a", "b", "c"]);
        // Restoring what is already there changes nothing.
        let sv = live.doc().transact().state_vector();
        let again = {
            let mut txn = live.doc().transact_mut();
            restore(&mut txn, &saved)
        };
        assert_eq!(again, RestoreSummary::default());
        assert_eq!(live.doc().transact().state_vector(), sv);
    }

    #[test]
    fn a_restore_edits_sources_in_place_and_merges_with_concurrent_edits() {
        let version = sample();
        let saved = version.contents();
        let live = Notebook::new();
        sync(&version, &live);
        live.edit_source("b", 0, 0, "# set\n").unwrap();
        let peer = Notebook::new();
        sync(&live, &peer);
        // The peer types at the end of cell c while the restore happens.
        peer.edit_source("c", 8, 0, " # peer").unwrap();
        {
            let mut txn = live.doc().transact_mut();
            restore(&mut txn, &saved);
        }
        sync(&live, &peer);
        sync(&peer, &live);
        assert_eq!(live.cells(), peer.cells());
        let c = &live.cells()[2];
        assert_eq!(c.source, "print(x) # peer", "the concurrent edit survives");
        assert_eq!(live.cells()[1].source, "x = 1");
        let all = Notebook::new();
        sync(&live, &all);
        assert_eq!(
            all.doc().transact().state_vector(),
            live.doc().transact().state_vector()
        );
    }

    #[test]
    fn sources_with_wide_characters_restore_on_a_byte_offset_document() {
        // The collab service's rooms count text offsets in bytes, clients in UTF-16 units.
        let version = Notebook::new();
        version
            .insert_cell(0, NewCell::code("é = '😀'\nprint(é)").with_id("w"))
            .unwrap();
        let saved = version.contents();
        let live = Notebook::from_doc(yrs::Doc::new());
        sync(&version, &live);
        live.edit_source("w", 5, 1, "🎉🎉").unwrap();
        live.edit_source("w", 0, 1, "ü").unwrap();
        let peer = Notebook::new();
        sync(&live, &peer);
        let before = live.doc().transact().state_vector();
        {
            let mut txn = live.doc().transact_mut();
            restore(&mut txn, &saved);
        }
        assert_eq!(live.contents(), saved);
        let update = live.doc().transact().encode_state_as_update_v1(&before);
        peer.doc()
            .transact_mut()
            .apply_update(Update::decode_v1(&update).unwrap())
            .unwrap();
        assert_eq!(peer.contents(), saved);
    }

    #[test]
    fn type_changes_and_derived_ids_survive_a_restore() {
        let version = sample();
        let saved = version.contents();
        let live = Notebook::new();
        sync(&version, &live);
        // Turn b into markdown the way clients do: replace the cell.
        live.delete_cell("b").unwrap();
        live.insert_cell(1, NewCell::markdown("x = 1").with_id("b"))
            .unwrap();
        {
            let mut txn = live.doc().transact_mut();
            restore(&mut txn, &saved);
        }
        assert_eq!(live.contents(), saved);
        assert_eq!(live.cells()[1].cell_type, CellType::Code);
    }
}
