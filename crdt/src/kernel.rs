//! `state.kernel`, the runtime's shared state: its shape ([`KernelState`], the one
//! definition the runtime writes, collab reads and the web client's TypeScript types are
//! generated from), writing it ([`write_kernel_state`]) and reading it
//! ([`Notebook::kernel_state`]), and marking the kernel of a runtime that is gone as dead.
//!
//! The runtime that owns a notebook's kernel writes `state.kernel` itself. When that runtime
//! vanishes (its node was killed, or it lost the notebook for longer than it may wait), nobody
//! would ever finish its cells or change its status, so whoever notices (a live runtime node,
//! or a collab node with the notebook open) writes the death with [`mark_kernel_dead`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;
use yrs::{Any, Map, MapPrelim, Out, ReadTxn, TransactionMut};

use crate::Notebook;
use crate::read;
use crate::schema::{self, EXECUTION_STATE, ExecutionState};

/// The key of the runtime's map under the root `state` map.
pub const KERNEL: &str = "kernel";

/// `state.kernel.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
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

    /// Whether a kernel process is there (starting, idle or busy).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            KernelStatus::Starting | KernelStatus::Idle | KernelStatus::Busy
        )
    }
}

/// `state.kernel.runtime`: the device the kernel runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum KernelRuntime {
    /// The CPU.
    Cpu,
    /// A CUDA device.
    Gpu,
}

/// A person as the document names them: `state.kernel.holder`, `state.kernel.input.by`, a
/// cell's `execution_by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Person {
    /// Their user id.
    pub id: String,
    /// Their display name, as collaborators see it.
    pub name: String,
}

/// `state.kernel.input`: what a cell waiting in `input()` asks, and of whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct InputPrompt {
    /// The waiting cell.
    pub cell: String,
    /// The prompt given to `input()`.
    pub prompt: String,
    /// Whether the answer is hidden (`getpass`).
    pub password: bool,
    /// Who ran the cell: the only person whose answer the runtime takes.
    pub by: Option<Person>,
}

/// `state.kernel.resources`: the kernel's memory and disk, sampled while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Resources {
    /// Memory in use, in bytes.
    #[ts(type = "number")]
    pub memory_bytes: u64,
    /// The memory it may use, in bytes.
    #[ts(type = "number")]
    pub memory_limit_bytes: u64,
    /// Disk in use, in bytes.
    #[ts(type = "number")]
    pub disk_bytes: u64,
    /// The disk it may use, in bytes.
    #[ts(type = "number")]
    pub disk_limit_bytes: u64,
}

/// One entry of the variable inspector (`state.kernel.variables`), as the kernel reports
/// it after each cell. Private names (`_x`), IPython's own (`In`, `Out`, ...) and every other
/// kind of object (modules, functions, classes, ...) are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Variable {
    /// The variable's name.
    pub name: String,
    /// Its type: `tandem.Tensor`, `numpy.ndarray`, `pandas.DataFrame`, `pandas.Series`,
    /// `int`, `float`, `str`, `numpy.float32`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Dimensions, for tensors, arrays and frames.
    #[serde(default)]
    #[ts(type = "number[] | null")]
    pub shape: Option<Vec<u64>>,
    /// Element type (`float32`, ...), for tensors, arrays, Series and numpy scalars.
    #[serde(default)]
    pub dtype: Option<String>,
    /// `cpu` or `cuda:N`, for tensors.
    #[serde(default)]
    pub device: Option<String>,
    /// Size of the data in bytes (a frame's columns and index, not the Python objects
    /// they may hold).
    #[serde(default)]
    #[ts(type = "number | null")]
    pub bytes: Option<u64>,
    /// `repr` of a scalar, cut at 80 characters.
    #[serde(default)]
    pub value: Option<String>,
}

/// Everything the runtime keeps in `state.kernel`. Keys whose value is absent here are
/// absent from the map (`reason`, the lifecycle times, `gpu`, `holder`, `input`,
/// `resources`); `execution_count` and `running` are there, `null` when unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct KernelState {
    /// What the kernel is doing.
    pub status: KernelStatus,
    /// The device.
    pub runtime: KernelRuntime,
    /// The last execution count of this kernel (`[n]`), `null` before its first cell.
    pub execution_count: Option<u32>,
    /// The cells waiting, in order.
    #[serde(default)]
    pub queue: Vec<String>,
    /// The running cell.
    #[serde(default)]
    pub running: Option<String>,
    /// Why the kernel is dead (or was shut down), for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reason: Option<String>,
    /// When the kernel will be shut down for inactivity (ms since the Unix epoch), while idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub idle_shutdown_at: Option<i64>,
    /// When the kernel reaches its maximum lifetime (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub lifetime_ends_at: Option<i64>,
    /// The variable inspector: the kernel's user variables after the last cell.
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// On a GPU runtime: the card's name and memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub gpu: Option<String>,
    /// The stale cells, in notebook order.
    #[serde(default)]
    pub stale: Vec<String>,
    /// Who the kernel runs for, while there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub holder: Option<Person>,
    /// The running cell waits in `input()` for the person who ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub input: Option<InputPrompt>,
    /// The kernel's memory and disk use, while there is a kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub resources: Option<Resources>,
}

impl KernelState {
    /// No kernel yet, on `runtime`.
    pub fn new(runtime: KernelRuntime) -> Self {
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

    /// The map's keys and values as JSON.
    fn entries(&self) -> serde_json::Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }
}

/// The keys [`write_kernel_state`] manages: every field of [`KernelState`].
const KERNEL_KEYS: [&str; 14] = [
    "status",
    "runtime",
    "execution_count",
    "queue",
    "running",
    "reason",
    "idle_shutdown_at",
    "lifetime_ends_at",
    "variables",
    "gpu",
    "stale",
    "holder",
    "input",
    "resources",
];

/// Writes the keys of `state.kernel` that differ from `previous` (all of them when `None`),
/// in one transaction; a key whose value is absent is removed. Writing only what changed
/// keeps the document's history small: every map insert is a new item, even when the value
/// is the same.
pub fn write_kernel_state(
    notebook: &Notebook,
    state: &KernelState,
    previous: Option<&KernelState>,
) {
    let new = state.entries();
    let old = previous.map(KernelState::entries);
    let root = notebook.state();
    let mut txn = yrs::Transact::transact_mut(notebook.doc());
    let kernel = match root.get(&txn, KERNEL) {
        Some(Out::YMap(map)) => map,
        _ => root.insert(&mut txn, KERNEL, MapPrelim::default()),
    };
    for key in KERNEL_KEYS {
        let value = new.get(key);
        if let Some(old) = &old
            && old.get(key) == value
        {
            continue;
        }
        match value {
            Some(value) => {
                kernel.insert(&mut txn, key, schema::json_to_any(value));
            }
            None => {
                kernel.remove(&mut txn, key);
            }
        }
    }
}

impl Notebook {
    /// `state.kernel` as the runtime wrote it; `None` before any runtime did, or when it does
    /// not have the shape of [`KernelState`].
    pub fn kernel_state(&self) -> Option<KernelState> {
        serde_json::from_value(self.state_value(KERNEL)?).ok()
    }
}

/// Marks the kernel dead in `txn`'s document: `state.kernel.status = "dead"` with `reason`,
/// nothing queued or running, no holder or lifecycle announcements, and every queued or
/// running code cell back to idle. Writes nothing and returns false when `state.kernel` shows
/// no live kernel (never started, shut down, or already dead).
pub fn mark_kernel_dead(txn: &mut TransactionMut, reason: &str) -> bool {
    let Some(state) = txn.get_map(schema::STATE) else {
        return false;
    };
    let Some(Out::YMap(kernel)) = state.get(txn, KERNEL) else {
        return false;
    };
    let status = schema::map_string(&kernel, txn, "status")
        .and_then(|status| serde_json::from_value::<KernelStatus>(Value::String(status)).ok());
    if !status.is_some_and(KernelStatus::is_live) {
        return false;
    }
    kernel.insert(txn, "status", KernelStatus::Dead.as_str());
    kernel.insert(txn, "reason", reason);
    kernel.insert(txn, "queue", Any::Array(Vec::<Any>::new().into()));
    kernel.insert(txn, "running", Any::Null);
    for key in ["idle_shutdown_at", "lifetime_ends_at", "holder"] {
        kernel.remove(txn, key);
    }
    if let Some(cells) = txn.get_array(schema::CELLS) {
        for slot in read::visible_cells(&cells, txn) {
            let state = schema::map_string(&slot.map, txn, EXECUTION_STATE);
            let busy = [ExecutionState::Queued, ExecutionState::Running]
                .iter()
                .any(|s| state.as_deref() == Some(s.as_str()));
            if busy {
                slot.map
                    .insert(txn, EXECUTION_STATE, ExecutionState::Idle.as_str());
            }
        }
    }
    true
}

impl Notebook {
    /// [`mark_kernel_dead`] in one transaction on this notebook.
    pub fn mark_kernel_dead(&self, reason: &str) -> bool {
        let mut txn = yrs::Transact::transact_mut(self.doc());
        mark_kernel_dead(&mut txn, reason)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use yrs::{MapPrelim, Transact};

    use super::*;
    use crate::NewCell;

    #[test]
    fn marks_a_live_kernel_dead_once() {
        let nb = Notebook::new();
        let id = nb.insert_cell(0, NewCell::code("x")).unwrap();
        nb.set_execution_state(&id, ExecutionState::Running)
            .unwrap();
        assert!(!nb.mark_kernel_dead("gone"), "no kernel map yet");
        {
            let mut txn = nb.doc().transact_mut();
            let kernel = nb.state().insert(&mut txn, KERNEL, MapPrelim::default());
            kernel.insert(&mut txn, "status", "busy");
            kernel.insert(&mut txn, "running", id.as_str());
            kernel.insert(&mut txn, "holder", "someone");
        }
        assert!(nb.mark_kernel_dead("gone"));
        let kernel = nb.state_value(KERNEL).unwrap();
        assert_eq!(kernel["status"], "dead");
        assert_eq!(kernel["reason"], "gone");
        assert_eq!(kernel["queue"], json!([]));
        assert_eq!(kernel["running"], json!(null));
        assert!(kernel.get("holder").is_none());
        assert_eq!(nb.cells()[0].execution_state, Some(ExecutionState::Idle));
        assert!(!nb.mark_kernel_dead("again"), "already dead");
    }

    #[test]
    fn the_kernel_state_reads_back_as_written_and_absent_keys_go() {
        let nb = Notebook::new();
        assert_eq!(nb.kernel_state(), None);
        let mut state = KernelState::new(KernelRuntime::Gpu);
        state.status = KernelStatus::Busy;
        state.execution_count = Some(3);
        state.queue = vec!["b".into()];
        state.running = Some("a".into());
        state.holder = Some(Person {
            id: "u".into(),
            name: "Ada".into(),
        });
        state.resources = Some(Resources {
            memory_bytes: 1 << 30,
            ..Resources::default()
        });
        write_kernel_state(&nb, &state, None);
        assert_eq!(nb.kernel_state().as_ref(), Some(&state));
        let raw = nb.state_value(KERNEL).unwrap();
        assert_eq!(raw["status"], "busy");
        assert_eq!(raw["runtime"], "gpu");
        assert_eq!(raw["resources"]["memory_bytes"], 1 << 30);
        assert!(raw.get("reason").is_none());

        let previous = state.clone();
        state.status = KernelStatus::Dead;
        state.holder = None;
        state.reason = Some("gone".into());
        write_kernel_state(&nb, &state, Some(&previous));
        assert_eq!(nb.kernel_state().as_ref(), Some(&state));
        let raw = nb.state_value(KERNEL).unwrap();
        assert!(raw.get("holder").is_none(), "{raw}");
        assert_eq!(raw["reason"], "gone");
    }

    fn kernel_json(nb: &Notebook) -> serde_json::Value {
        let txn = nb.doc().transact();
        match nb.state().get(&txn, KERNEL) {
            Some(Out::YMap(map)) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map.iter(&txn) {
                    if let Out::Any(any) = v {
                        out.insert(k.to_string(), serde_json::to_value(&any).unwrap());
                    }
                }
                serde_json::Value::Object(out)
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
        state.holder = Some(Person {
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
}
