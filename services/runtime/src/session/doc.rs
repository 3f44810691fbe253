//! The session's reads and writes of the shared document that `tandem_crdt::Notebook` has no
//! typed edit for: `state.kernel`, a cell's source and type by id, and replacing one output's
//! `data`/`metadata` in place (for `update_display_data` and the truncation notice).
//!
//! Cells are found the way `tandem_crdt` readers find them: the first `Y.Map` in the `cells`
//! array whose `id` matches (later copies are leftovers of concurrent moves).

use std::collections::HashMap;
use std::sync::Arc;
use tandem_protocol::runtime::RuntimeKind;

use serde_json::{Map as JsonMap, Value};
use yrs::{Any, Array, ArrayRef, GetString, Map, MapPrelim, MapRef, Out, ReadTxn, Transact};

use tandem_crdt::Notebook;
use tandem_crdt::schema::CELLS;

/// The key of the runtime's map under the root `state` map.
pub const KERNEL_KEY: &str = tandem_crdt::schema::STATE_KERNEL;

/// `state.kernel.status`, as docs/design.md names the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelStatus {
    /// No kernel process: before the first execute, or after a shutdown.
    NotStarted,
    /// A kernel process is starting.
    Starting,
    /// Ready, no cell running.
    Idle,
    /// A cell is running.
    Busy,
    /// The kernel died (see `reason`); the next execute starts a fresh one.
    Dead,
}

impl KernelStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KernelStatus::NotStarted => "not_started",
            KernelStatus::Starting => "starting",
            KernelStatus::Idle => "idle",
            KernelStatus::Busy => "busy",
            KernelStatus::Dead => "dead",
        }
    }
}

/// Everything the session keeps in `state.kernel`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KernelState {
    pub status: KernelStatus,
    pub runtime: RuntimeKind,
    pub execution_count: Option<u32>,
    pub queue: Vec<String>,
    pub running: Option<String>,
    pub reason: Option<String>,
    /// When the kernel will be shut down for inactivity (ms since the Unix epoch), while idle.
    pub idle_shutdown_at: Option<i64>,
    /// When the kernel reaches its maximum lifetime (ms since the Unix epoch).
    pub lifetime_ends_at: Option<i64>,
    /// The variable inspector: the kernel's user variables after the last cell.
    pub variables: Vec<tandem_protocol::kernel::Variable>,
    /// On a GPU runtime: the card's name and memory.
    pub gpu: Option<String>,
    /// The stale cells, in notebook order (`session/deps.rs`).
    pub stale: Vec<String>,
    /// Who the kernel runs for, while there is one (`session/holder.rs`).
    pub holder: Option<super::Holder>,
    /// The running cell waits in `input()` for the person who ran it.
    pub input: Option<InputPrompt>,
    /// The kernel's memory and disk use, in MiB steps, while there is a kernel.
    pub resources: Option<crate::kernel::Usage>,
}

/// `state.kernel.input`: what a cell waiting in `input()` asks, and of whom.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InputPrompt {
    /// The waiting cell.
    pub cell: String,
    /// The prompt given to `input()`.
    pub prompt: String,
    /// Whether the answer is hidden (`getpass`).
    pub password: bool,
    /// Who ran the cell: the only person whose answer the runtime takes.
    pub by: Option<super::Holder>,
}

impl InputPrompt {
    fn to_any(&self) -> Any {
        let mut map = HashMap::new();
        map.insert("cell".to_owned(), Any::from(self.cell.as_str()));
        map.insert("prompt".to_owned(), Any::from(self.prompt.as_str()));
        map.insert("password".to_owned(), Any::Bool(self.password));
        map.insert(
            "by".to_owned(),
            self.by.as_ref().map_or(Any::Null, super::Holder::to_any),
        );
        Any::Map(Arc::new(map))
    }
}

fn usage_to_any(usage: &crate::kernel::Usage) -> Any {
    let number = |bytes: u64| Any::from(i64::try_from(bytes).unwrap_or(i64::MAX));
    let map = HashMap::from([
        ("memory_bytes".to_owned(), number(usage.memory_bytes)),
        (
            "memory_limit_bytes".to_owned(),
            number(usage.memory_limit_bytes),
        ),
        ("disk_bytes".to_owned(), number(usage.disk_bytes)),
        (
            "disk_limit_bytes".to_owned(),
            number(usage.disk_limit_bytes),
        ),
    ]);
    Any::Map(Arc::new(map))
}

impl KernelState {
    pub(crate) fn new(runtime: RuntimeKind) -> Self {
        KernelState {
            status: KernelStatus::NotStarted,
            runtime,
            execution_count: None,
            queue: Vec::new(),
            running: None,
            reason: None,
            idle_shutdown_at: None,
            lifetime_ends_at: None,
            variables: Vec::new(),
            gpu: None,
            stale: Vec::new(),
            holder: None,
            input: None,
            resources: None,
        }
    }

    fn fields(&self) -> [(&'static str, Option<Any>); 14] {
        let variables = serde_json::to_value(&self.variables).unwrap_or(Value::Null);
        let strings: Vec<Any> = self.queue.iter().map(|id| Any::from(id.as_str())).collect();
        [
            ("status", Some(Any::from(self.status.as_str()))),
            ("runtime", Some(Any::from(self.runtime.as_str()))),
            (
                "execution_count",
                Some(
                    self.execution_count
                        .map_or(Any::Null, |n| Any::from(i64::from(n))),
                ),
            ),
            ("queue", Some(Any::Array(strings.into()))),
            (
                "running",
                Some(self.running.as_deref().map_or(Any::Null, Any::from)),
            ),
            ("reason", self.reason.as_deref().map(Any::from)),
            ("idle_shutdown_at", self.idle_shutdown_at.map(Any::from)),
            ("lifetime_ends_at", self.lifetime_ends_at.map(Any::from)),
            ("variables", Some(json_to_any(&variables))),
            ("gpu", self.gpu.as_deref().map(Any::from)),
            (
                "stale",
                Some(Any::Array(
                    self.stale.iter().map(|id| Any::from(id.as_str())).collect(),
                )),
            ),
            ("holder", self.holder.as_ref().map(super::Holder::to_any)),
            ("input", self.input.as_ref().map(InputPrompt::to_any)),
            ("resources", self.resources.as_ref().map(usage_to_any)),
        ]
    }
}

/// Writes the keys of `state.kernel` that differ from `previous` (all of them when `None`),
/// in one transaction. Writing only what changed keeps the document's history small: every
/// map insert is a new item, even when the value is the same.
pub(crate) fn write_kernel_state(
    notebook: &Notebook,
    state: &KernelState,
    previous: Option<&KernelState>,
) {
    let new = state.fields();
    let old = previous.map(KernelState::fields);
    let root = notebook.state();
    let mut txn = notebook.doc().transact_mut();
    let kernel = match root.get(&txn, KERNEL_KEY) {
        Some(Out::YMap(map)) => map,
        _ => root.insert(&mut txn, KERNEL_KEY, MapPrelim::default()),
    };
    for (index, (key, value)) in new.into_iter().enumerate() {
        let unchanged = old.as_ref().is_some_and(|old| old[index].1 == value);
        if unchanged && previous.is_some() {
            continue;
        }
        match value {
            Some(value) => {
                kernel.insert(&mut txn, key, value);
            }
            None => {
                kernel.remove(&mut txn, key);
            }
        }
    }
}

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
    output.insert(&mut txn, "data", object_to_any(data));
    output.insert(&mut txn, "metadata", object_to_any(metadata));
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

fn object_to_any(map: &JsonMap<String, Value>) -> Any {
    Any::Map(Arc::new(
        map.iter()
            .map(|(k, v)| (k.clone(), json_to_any(v)))
            .collect::<HashMap<_, _>>(),
    ))
}

/// JSON as a plain yrs value, integers kept as integers (as `tandem_crdt` stores them).
pub(crate) fn json_to_any(value: &Value) -> Any {
    match value {
        Value::Null => Any::Null,
        Value::Bool(b) => Any::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Any::from(i),
            None => Any::from(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Any::from(s.as_str()),
        Value::Array(items) => Any::Array(items.iter().map(json_to_any).collect()),
        Value::Object(map) => object_to_any(map),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tandem_crdt::NewCell;

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
        let mut state = KernelState::new(RuntimeKind::Cpu);
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
