//! No hidden state: which cell each name came from, which cells are stale, and warnings
//! about names that come from below or from cells never run.
//!
//! The kernel tells the session, before each cell runs, which names the cell defines and
//! uses ([`Names`], from its syntax tree) and the same for the other cells' sources sent with
//! it. [`Deps`] keeps, per cell, what it last ran in this kernel: its source's hash, its names,
//! and for each name it used which cell had defined it then (the last cell to run that
//! defines it) and that cell's run number.
//!
//! A cell is **stale** when
//! - its source changed since it ran;
//! - a name it used is now defined by another run (its definer ran again, or another cell
//!   that defines the name ran since) or by nobody;
//! - a cell it used a name from is stale (so a whole chain shows, not just its head);
//! - it ran in an earlier kernel (before a restart, a death or an idle shutdown, or in a
//!   session before this one) and not in this one: that kernel's state is gone.
//!
//! Cells that never ran are never stale. [`Deps::run_order`] is what "run stale" runs: the
//! stale cells plus the run cells that use a name one of them defines (transitively),
//! definers first, in notebook order otherwise.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use tandem_protocol::kernel::Names;

/// A code cell of the notebook as the stale computation sees it.
#[derive(Debug, Clone)]
pub(crate) struct CodeCell {
    /// The cell id.
    pub id: String,
    /// Its current source.
    pub source: String,
    /// Its 1-based place among all cells (what people count when they say "cell 3").
    pub position: usize,
}

/// What one cell last ran in this kernel.
#[derive(Debug, Clone)]
struct Record {
    hash: u64,
    run: u64,
    defs: BTreeSet<String>,
    /// Each name used, with the cell that had defined it then and that cell's run.
    uses: Vec<(String, Option<(String, u64)>)>,
}

/// The session's dependency records; see the module doc.
#[derive(Debug, Default)]
pub(crate) struct Deps {
    records: HashMap<String, Record>,
    /// Cells that ran in an earlier kernel and not in this one.
    previous: HashSet<String>,
    /// Runs so far (never reset, so run numbers stay unique across kernels).
    runs: u64,
    /// Names of every source analysed, by hash.
    analysed: HashMap<u64, Names>,
    /// The cell whose names are awaited: its id and source hash, and the peers' hashes.
    pending: Option<(String, u64, Vec<u64>)>,
}

/// A source's hash (stable within the process, which is all records need).
pub(crate) fn hash(source: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut hasher);
    hasher.finish()
}

impl Deps {
    /// Counts `ids` (cells with an execution count when the session started) as run in an
    /// earlier kernel.
    pub(crate) fn ran_before(&mut self, ids: impl IntoIterator<Item = String>) {
        self.previous.extend(ids);
    }

    /// Whether anything ran, here or before: otherwise nothing can be stale.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty() && self.previous.is_empty()
    }

    /// The kernel is gone (restart, death, shutdown): every cell run in it ran "before".
    pub(crate) fn kernel_reset(&mut self) {
        self.previous.extend(self.records.drain().map(|(id, _)| id));
        self.pending = None;
    }

    /// The sources to send with cell `id` for analysis: the other code cells' sources not
    /// analysed yet. Remembers the cell as started.
    pub(crate) fn start(&mut self, id: &str, source: &str, cells: &[CodeCell]) -> Vec<String> {
        let current: HashSet<u64> = cells.iter().map(|cell| hash(&cell.source)).collect();
        // Forget analyses of sources no cell has any more.
        self.analysed.retain(|hash, _| current.contains(hash));
        let mut hashes = Vec::new();
        let mut peers = Vec::new();
        for cell in cells.iter().filter(|cell| cell.id != id) {
            let hash = hash(&cell.source);
            if !self.analysed.contains_key(&hash) && !hashes.contains(&hash) {
                hashes.push(hash);
                peers.push(cell.source.clone());
            }
        }
        self.pending = Some((id.to_owned(), hash(source), hashes));
        peers
    }

    /// The started cell's names arrived: records its run and returns the warnings to show
    /// in it (one line each) about names it uses from cells below or never run.
    pub(crate) fn names(
        &mut self,
        cell: Option<Names>,
        peers: Vec<Option<Names>>,
        cells: &[CodeCell],
    ) -> Vec<String> {
        let Some((id, hash, hashes)) = self.pending.take() else {
            return Vec::new();
        };
        for (hash, names) in hashes.into_iter().zip(peers) {
            self.analysed.insert(hash, names.unwrap_or_default());
        }
        let names = cell.unwrap_or_default();
        self.analysed.insert(hash, names.clone());
        let warnings = self.warnings(&id, &names.uses, cells);
        let previous = self.records.get(&id);
        let uses = names
            .uses
            .iter()
            .map(|name| {
                let definer = match self.definer(name) {
                    // `x += 1` again: what it reads goes back to where its last run read it.
                    Some((definer, _)) if definer == id => previous.and_then(|record| {
                        record
                            .uses
                            .iter()
                            .find(|(used, _)| used == name)
                            .and_then(|(_, then)| then.clone())
                    }),
                    other => other,
                };
                (name.clone(), definer)
            })
            .collect();
        self.runs += 1;
        self.previous.remove(&id);
        self.records.insert(
            id,
            Record {
                hash,
                run: self.runs,
                defs: names.defs.into_iter().collect(),
                uses,
            },
        );
        warnings
    }

    /// The cell whose run last defined `name` in this kernel, and that run.
    fn definer(&self, name: &str) -> Option<(String, u64)> {
        self.records
            .iter()
            .filter(|(_, record)| record.defs.contains(name))
            .max_by_key(|(_, record)| record.run)
            .map(|(id, record)| (id.clone(), record.run))
    }

    /// What a cell's current source defines: its analysis, or what its last run defined.
    fn defs_of(&self, cell: &CodeCell) -> Option<Vec<String>> {
        match self.analysed.get(&hash(&cell.source)) {
            Some(names) => Some(names.defs.clone()),
            None => self
                .records
                .get(&cell.id)
                .map(|record| record.defs.iter().cloned().collect()),
        }
    }

    /// What a cell's current source uses: its analysis, or what its last run used.
    fn uses_of(&self, cell: &CodeCell) -> Vec<String> {
        match self.analysed.get(&hash(&cell.source)) {
            Some(names) => names.uses.clone(),
            None => self.records.get(&cell.id).map_or_else(Vec::new, |record| {
                record.uses.iter().map(|(name, _)| name.clone()).collect()
            }),
        }
    }

    fn warnings(&self, id: &str, uses: &[String], cells: &[CodeCell]) -> Vec<String> {
        let Some(here) = cells.iter().position(|cell| cell.id == id) else {
            return Vec::new();
        };
        let mut warnings = Vec::new();
        for name in uses {
            let defines = |cell: &CodeCell| {
                self.defs_of(cell)
                    .is_some_and(|defs| defs.iter().any(|d| d == name))
            };
            // Fine when a cell above that ran in this kernel defines it.
            let above_ran = cells[..here].iter().any(|cell| {
                self.records
                    .get(&cell.id)
                    .is_some_and(|record| record.defs.contains(name))
            });
            if above_ran {
                continue;
            }
            let others: Vec<(usize, &CodeCell)> = cells
                .iter()
                .enumerate()
                .filter(|(_, cell)| cell.id != id && defines(cell))
                .collect();
            // The kernel's current definer when it is one of them, else the first.
            let current = self.definer(name).map(|(definer, _)| definer);
            let chosen = others
                .iter()
                .find(|(_, cell)| Some(&cell.id) == current.as_ref())
                .or_else(|| others.first());
            let Some((index, cell)) = chosen else {
                continue;
            };
            let ran = self.records.contains_key(&cell.id);
            let place = if *index > here { " below" } else { "" };
            let when = match (*index > here, ran) {
                (true, true) => "which runs after this one",
                (true, false) => "which runs after this one and has not been run",
                (false, _) if self.previous.contains(&cell.id) => {
                    "which has not been run since the kernel started"
                }
                (false, _) => "which has not been run",
            };
            warnings.push(format!(
                "Warning: `{name}` is defined in cell {}{place} (id {}), {when}\n",
                cell.position, cell.id
            ));
        }
        warnings
    }

    /// The stale cells, in notebook order.
    pub(crate) fn stale(&self, cells: &[CodeCell]) -> Vec<String> {
        let present: HashSet<&str> = cells.iter().map(|cell| cell.id.as_str()).collect();
        let mut stale: HashSet<String> = HashSet::new();
        for cell in cells {
            if self.previous.contains(&cell.id) {
                stale.insert(cell.id.clone());
                continue;
            }
            let Some(record) = self.records.get(&cell.id) else {
                continue;
            };
            let changed = record.hash != hash(&cell.source);
            let input_changed = record.uses.iter().any(|(name, then)| {
                if then
                    .as_ref()
                    .is_some_and(|(definer, _)| definer == &cell.id)
                {
                    return false; // its own earlier run
                }
                if record.defs.contains(name) {
                    // `x += 1`: the cell is now the definer; only the one it read from counts.
                    return then.as_ref().is_some_and(|(definer, run)| {
                        self.records.get(definer).map(|r| r.run) != Some(*run)
                    });
                }
                self.definer(name) != *then
            });
            if changed || input_changed {
                stale.insert(cell.id.clone());
            }
        }
        // Downstream of a stale cell is stale too.
        loop {
            let before = stale.len();
            for cell in cells {
                let Some(record) = self.records.get(&cell.id) else {
                    continue;
                };
                if stale.contains(&cell.id) {
                    continue;
                }
                let upstream_stale = record.uses.iter().any(|(_, then)| {
                    then.as_ref().is_some_and(|(definer, _)| {
                        definer != &cell.id
                            && present.contains(definer.as_str())
                            && stale.contains(definer)
                    })
                });
                if upstream_stale {
                    stale.insert(cell.id.clone());
                }
            }
            if stale.len() == before {
                break;
            }
        }
        cells
            .iter()
            .filter(|cell| stale.contains(&cell.id))
            .map(|cell| cell.id.clone())
            .collect()
    }

    /// What "run stale" runs, in order: the stale cells and the run cells that use what one
    /// of them defines (transitively), each after the cells whose names it uses, in notebook
    /// order otherwise (and where names go round in a cycle).
    pub(crate) fn run_order(&self, cells: &[CodeCell]) -> Vec<String> {
        let mut chosen: HashSet<String> = self.stale(cells).into_iter().collect();
        let defs: Vec<Vec<String>> = cells
            .iter()
            .map(|cell| self.defs_of(cell).unwrap_or_default())
            .collect();
        let uses: Vec<Vec<String>> = cells.iter().map(|cell| self.uses_of(cell)).collect();
        loop {
            let defined: HashSet<&String> = cells
                .iter()
                .zip(&defs)
                .filter(|(cell, _)| chosen.contains(&cell.id))
                .flat_map(|(_, defs)| defs)
                .collect();
            let more: Vec<String> = cells
                .iter()
                .zip(&uses)
                .filter(|(cell, uses)| {
                    !chosen.contains(&cell.id)
                        && self.records.contains_key(&cell.id)
                        && uses.iter().any(|name| defined.contains(name))
                })
                .map(|(cell, _)| cell.id.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            chosen.extend(more);
        }
        // Kahn's algorithm over "defines a name the other uses", lowest position first.
        let members: Vec<usize> = (0..cells.len())
            .filter(|&i| chosen.contains(&cells[i].id))
            .collect();
        let needs = |user: usize, definer: usize| {
            user != definer && uses[user].iter().any(|name| defs[definer].contains(name))
        };
        let mut left = members.clone();
        let mut order = Vec::new();
        while !left.is_empty() {
            let ready = left
                .iter()
                .position(|&user| !left.iter().any(|&definer| needs(user, definer)))
                .unwrap_or(0);
            order.push(cells[left.remove(ready)].id.clone());
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(defs: &[&str], uses: &[&str]) -> Option<Names> {
        Some(Names {
            defs: defs.iter().map(|s| s.to_string()).collect(),
            uses: uses.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn cells(sources: &[(&str, &str)]) -> Vec<CodeCell> {
        sources
            .iter()
            .enumerate()
            .map(|(i, (id, source))| CodeCell {
                id: id.to_string(),
                source: source.to_string(),
                position: i + 1,
            })
            .collect()
    }

    /// Runs cell `id` with the given names (peers analysed as `peers` says, by id).
    fn run(
        deps: &mut Deps,
        nb: &[CodeCell],
        id: &str,
        cell: Option<Names>,
        peers: &[(&str, Option<Names>)],
    ) -> Vec<String> {
        let source = &nb.iter().find(|c| c.id == id).unwrap().source;
        let sent = deps.start(id, source, nb);
        let answers = sent
            .iter()
            .map(|src| {
                let peer = nb.iter().find(|c| &c.source == src).unwrap();
                peers
                    .iter()
                    .find(|(pid, _)| *pid == peer.id)
                    .and_then(|(_, n)| n.clone())
            })
            .collect();
        deps.names(cell, answers, nb)
    }

    #[test]
    fn upstream_rerun_and_edit_make_downstream_stale() {
        let mut deps = Deps::default();
        let mut nb = cells(&[("a", "x = 1"), ("b", "y = x + 1"), ("c", "print(y)")]);
        run(&mut deps, &nb, "a", names(&["x"], &[]), &[]);
        run(&mut deps, &nb, "b", names(&["y"], &["x"]), &[]);
        run(&mut deps, &nb, "c", names(&[], &["print", "y"]), &[]);
        assert!(deps.stale(&nb).is_empty());
        // Editing `a` makes it stale, and everything downstream with it.
        nb[0].source = "x = 2".into();
        assert_eq!(deps.stale(&nb), ["a", "b", "c"]);
        assert_eq!(deps.run_order(&nb), ["a", "b", "c"]);
        // Re-running `a` clears it; `b` (and `c` through it) still used the old `x`.
        run(&mut deps, &nb, "a", names(&["x"], &[]), &[]);
        assert_eq!(deps.stale(&nb), ["b", "c"]);
        run(&mut deps, &nb, "b", names(&["y"], &["x"]), &[]);
        assert_eq!(deps.stale(&nb), ["c"]);
        run(&mut deps, &nb, "c", names(&[], &["print", "y"]), &[]);
        assert!(deps.stale(&nb).is_empty());
    }

    #[test]
    fn self_updates_and_builtins_do_not_make_a_cell_stale() {
        let mut deps = Deps::default();
        let nb = cells(&[("a", "x = 0"), ("b", "x += 1\nprint(x)")]);
        run(&mut deps, &nb, "a", names(&["x"], &[]), &[]);
        run(&mut deps, &nb, "b", names(&["x"], &["print", "x"]), &[]);
        run(&mut deps, &nb, "b", names(&["x"], &["print", "x"]), &[]);
        assert!(deps.stale(&nb).is_empty());
        // Re-running `a` does make `b` stale: what it read changed.
        run(&mut deps, &nb, "a", names(&["x"], &[]), &[]);
        assert_eq!(deps.stale(&nb), ["b"]);
    }

    #[test]
    fn a_redefinition_elsewhere_makes_users_stale_and_run_order_fixes_it() {
        let mut deps = Deps::default();
        let nb = cells(&[("a", "x = 1"), ("b", "x = 2"), ("c", "print(x)")]);
        run(&mut deps, &nb, "a", names(&["x"], &[]), &[]);
        run(&mut deps, &nb, "c", names(&[], &["print", "x"]), &[]);
        run(&mut deps, &nb, "b", names(&["x"], &[]), &[]);
        assert_eq!(deps.stale(&nb), ["c"]);
        let order = deps.run_order(&nb);
        assert_eq!(order, ["c"]);
        run(&mut deps, &nb, "c", names(&[], &["print", "x"]), &[]);
        assert!(deps.stale(&nb).is_empty());
    }

    #[test]
    fn run_order_puts_definers_first() {
        let mut deps = Deps::default();
        // Run out of order: `b` (below) defines what `a` uses.
        let mut nb = cells(&[("a", "print(x)"), ("b", "x = 1")]);
        run(&mut deps, &nb, "b", names(&["x"], &[]), &[]);
        run(&mut deps, &nb, "a", names(&[], &["print", "x"]), &[]);
        nb[1].source = "x = 2".into();
        assert_eq!(deps.stale(&nb), ["a", "b"]);
        // `b`'s new source was never analysed; its last run's names stand in.
        assert_eq!(deps.run_order(&nb), ["b", "a"]);
    }

    #[test]
    fn warns_about_names_from_below_and_from_cells_never_run() {
        let mut deps = Deps::default();
        let nb = cells(&[
            ("a", "y = 1"),
            ("b", "print(x, y)"),
            ("c", "x = 2"),
            ("d", "z = 3"),
        ]);
        // Nothing ran: `y` comes from `a`, above but never run; `x` from `c` below.
        let warnings = run(
            &mut deps,
            &nb,
            "b",
            names(&[], &["print", "x", "y"]),
            &[
                ("a", names(&["y"], &[])),
                ("c", names(&["x"], &[])),
                ("d", names(&["z"], &[])),
            ],
        );
        assert_eq!(
            warnings,
            [
                "Warning: `x` is defined in cell 3 below (id c), which runs after this one and has not been run\n",
                "Warning: `y` is defined in cell 1 (id a), which has not been run\n",
            ]
        );
        // After `a` and `c` ran, only `x` (still below) warns.
        run(&mut deps, &nb, "a", names(&["y"], &[]), &[]);
        run(&mut deps, &nb, "c", names(&["x"], &[]), &[]);
        let warnings = run(&mut deps, &nb, "b", names(&[], &["print", "x", "y"]), &[]);
        assert_eq!(
            warnings,
            ["Warning: `x` is defined in cell 3 below (id c), which runs after this one\n"]
        );
    }

    #[test]
    fn a_new_kernel_makes_every_cell_that_ran_stale() {
        let mut deps = Deps::default();
        let nb = cells(&[("a", "x = 1"), ("b", "x"), ("c", "never = 1")]);
        run(&mut deps, &nb, "a", names(&["x"], &[]), &[]);
        run(&mut deps, &nb, "b", names(&[], &["x"]), &[]);
        deps.kernel_reset();
        assert_eq!(deps.stale(&nb), ["a", "b"]);
        assert_eq!(deps.run_order(&nb), ["a", "b"]);
        let warnings = run(&mut deps, &nb, "b", names(&[], &["x"]), &[]);
        assert_eq!(
            warnings,
            [
                "Warning: `x` is defined in cell 1 (id a), which has not been run since the kernel started\n"
            ]
        );
        run(&mut deps, &nb, "a", names(&["x"], &[]), &[]);
        assert_eq!(deps.stale(&nb), ["b"]);
    }
}
