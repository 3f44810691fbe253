//! The wire protocol between the kernel manager and one kernel worker process.
//!
//! JSON lines in both directions, over pipes that are the worker's fds 0 (requests) and 1
//! (events) at spawn time. The worker moves both to private close-on-exec descriptors before
//! the interpreter starts and points fds 0/1/2 at `/dev/null` and the manager's log pipe, so
//! nothing user code or a C library writes can corrupt the protocol stream.
//!
//! Requests (manager → worker), one per line:
//! ```json
//! {"type":"execute","id":7,"code":"1+1"}
//! {"type":"execute","id":8,"code":"y = x","peers":["x = 1"]}
//! {"type":"shutdown"}
//! {"type":"secret_reply","id":3,"value":"…"}
//! {"type":"secret_reply","id":4,"error":{"code":"notebook_access","message":"…"}}
//! {"type":"input_reply","id":5,"value":"Ada"}
//! {"type":"complete","id":9,"code":"import os\nos.pa","cursor":15}
//! {"type":"inspect","id":10,"code":"print(","cursor":6,"detail_level":0}
//! ```
//! Events (worker → manager), one per line; outputs are nbformat-shaped:
//! ```json
//! {"type":"ready","python":"3.11.2 (main, …)","ipython":"9.18.1","pid":4242}
//! {"type":"stream","name":"stdout","text":"hello\n"}
//! {"type":"display_data","data":{"text/plain":"…"},"metadata":{},"transient":{"display_id":"…"}}
//! {"type":"update_display_data","data":{…},"metadata":{},"transient":{"display_id":"…"}}
//! {"type":"execute_result","execution_count":1,"data":{"text/plain":"2"},"metadata":{}}
//! {"type":"error","ename":"ZeroDivisionError","evalue":"division by zero","traceback":["…"]}
//! {"type":"clear_output","wait":false}
//! {"type":"variables","variables":[{"name":"x","type":"tandem.Tensor","shape":[2,3],"dtype":"float32","device":"cpu","bytes":24,"value":null}]}
//! {"type":"names","cell":{"defs":["y"],"uses":["x"]},"peers":[{"defs":["x"],"uses":[]}]}
//! {"type":"done","id":7,"status":"ok","execution_count":1}
//! {"type":"fatal","message":"…"}
//! {"type":"secret_request","id":3,"name":"HF_TOKEN"}
//! {"type":"input_request","id":5,"prompt":"Name? ","password":false}
//! {"type":"complete_reply","id":9,"matches":[{"text":"path","type":"module","signature":""}],"cursor_start":13,"cursor_end":15}
//! {"type":"inspect_reply","id":10,"found":true,"text":"Signature: print(*args, …)\nDocstring: …"}
//! ```
//! A `secret_request` (from `tandem.secrets.get` in the running cell) is answered by a
//! `secret_reply` with its id; see `tandem_runtime::secrets`. An `input_request` (from `input()` or
//! `getpass()` in the running cell) is answered by an `input_reply` with its id; without a
//! `value` the cell's `input()` raises `EOFError`.
//!
//! `complete` and `inspect` are code intelligence (IPython's completer with jedi, and its
//! inspector, as Jupyter's `complete_request`/`inspect_request`): the reader thread hands them
//! to a helper thread at once, so they are answered even while a cell runs, each by exactly one
//! `complete_reply`/`inspect_reply` with its id, outside any cell's events. Cursors and ranges
//! count UTF-16 code units (the unit of CodeMirror and Yjs), not Python's code points.
//! Requests run one at a time in arrival order; every `execute` ends with exactly one `done`
//! carrying its `id`, and all output events between two `done`s belong to the cell in
//! between. An `execute` with `peers` first gets a `names` event (before any output): the
//! names the cell defines and uses, and those of each peer source (analysed, never run), from
//! `python/tandem_names.py`. `fatal` is sent instead of `ready` when the worker cannot start (for example, no
//! IPython in the venv); the worker exits right after it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The environment variable the manager sets to choose a kernel's runtime type: `gpu` makes
/// `tandem.default_device()` the first CUDA device (when the build and machine have one);
/// anything else, or unset, keeps it on the CPU.
pub const RUNTIME_ENV: &str = "TANDEM_RUNTIME";

/// The name of the drive's link in a kernel's working directory.
pub const DRIVE_LINK: &str = "drive";

/// The worker's flag that makes it only say whether a CUDA device opens (exit status 0 when
/// one does) and exit: how a runtime node, which links no CUDA itself, learns whether it can
/// offer a GPU runtime.
pub const PROBE_CUDA_FLAG: &str = "--probe-cuda";

/// One completion of a `complete_reply` (the HTTP API's shape).
pub use crate::Completion;

/// A request from the manager to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Run one cell's code through IPython.
    Execute {
        /// Chosen by the manager, echoed in the matching `done`.
        id: u64,
        /// The cell source.
        code: String,
        /// Ask for a `names` event before the cell runs: the cell's names, and those of these
        /// other sources (analysed only). `None`: no `names` event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peers: Option<Vec<String>>,
    },
    /// Run exit hooks and exit with status 0.
    Shutdown,
    /// The answer to an `input_request` event. Taken off the pipe by the reader thread at
    /// once (the cell is waiting in `input()`).
    InputReply {
        /// The `input_request`'s id.
        id: u64,
        /// What the person typed (without the newline); `None`: nobody will answer, and
        /// `input()` raises `EOFError`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// Completions at `cursor` in `code` (answered by `complete_reply`, even while a cell
    /// runs).
    Complete {
        /// Chosen by the manager, echoed in the reply.
        id: u64,
        /// The cell's code.
        code: String,
        /// Where the caret is, in UTF-16 code units.
        cursor: u32,
    },
    /// What the object at `cursor` is: signature and docstring (answered by
    /// `inspect_reply`, even while a cell runs).
    Inspect {
        /// Chosen by the manager, echoed in the reply.
        id: u64,
        /// The cell's code.
        code: String,
        /// Where the caret (or mouse) is, in UTF-16 code units.
        cursor: u32,
        /// 0: signature and docstring; 1: also the source, when Python has it.
        #[serde(default)]
        detail_level: u8,
    },
    /// The answer to a `secret_request` event: the value, or why there is none. Taken off
    /// the pipe by the worker's reader thread at once, even while a cell runs.
    SecretReply {
        /// The `secret_request`'s id.
        id: u64,
        /// The value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<SecretText>,
        /// Why there is no value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<SecretFailure>,
    },
}

/// An event from the worker to the manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The interpreter and IPython are up; requests may follow.
    Ready {
        /// `sys.version` inside the kernel.
        python: String,
        /// `IPython.__version__`.
        #[serde(default)]
        ipython: String,
        /// The worker's process id, as the worker sees it.
        #[serde(default)]
        pid: u32,
    },
    /// The running cell asks for one of its runner's secrets (`tandem.secrets.get`); the
    /// manager answers with a `secret_reply` request with the same id.
    SecretRequest {
        /// Chosen by the worker.
        id: u64,
        /// The secret's name.
        name: String,
    },
    /// The running cell reads from stdin (`input()`, `getpass.getpass()`); the manager
    /// answers with an `input_reply` request with the same id. The cell waits until then,
    /// or until it is interrupted.
    InputRequest {
        /// Chosen by the worker.
        id: u64,
        /// The prompt `input()` was given.
        prompt: String,
        /// Whether the answer is a password (`getpass`): not echoed.
        #[serde(default)]
        password: bool,
    },
    /// The answer to a `complete` request.
    CompleteReply {
        /// The request's id.
        id: u64,
        /// What may replace `cursor_start..cursor_end`, best first.
        matches: Vec<Completion>,
        /// Start of the text the matches replace (UTF-16 code units).
        cursor_start: u32,
        /// End of the text the matches replace (UTF-16 code units).
        cursor_end: u32,
    },
    /// The answer to an `inspect` request.
    InspectReply {
        /// The request's id.
        id: u64,
        /// Whether there was an object to describe at the cursor.
        found: bool,
        /// IPython's description (`Signature:`, `Docstring:`, …) as plain text.
        #[serde(default)]
        text: String,
    },
    /// The worker cannot start; it exits after sending this.
    Fatal {
        /// What went wrong, for humans.
        message: String,
    },
    /// Text written to `sys.stdout` or `sys.stderr`, coalesced.
    Stream {
        /// Which stream.
        name: StreamName,
        /// The text, as written.
        text: String,
    },
    /// `display(...)` and friends.
    DisplayData {
        /// The mime bundle.
        data: Map<String, Value>,
        /// Per-mime metadata.
        #[serde(default)]
        metadata: Map<String, Value>,
        /// Not saved with the notebook: holds `display_id` when the display can be updated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transient: Option<Transient>,
    },
    /// Replace the data of every earlier display with the same display id.
    UpdateDisplayData {
        /// The new mime bundle.
        data: Map<String, Value>,
        /// The new per-mime metadata.
        #[serde(default)]
        metadata: Map<String, Value>,
        /// Holds the `display_id` to update.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transient: Option<Transient>,
    },
    /// The value of a cell's last expression.
    ExecuteResult {
        /// The cell's execution count.
        execution_count: Option<u32>,
        /// The mime bundle.
        data: Map<String, Value>,
        /// Per-mime metadata.
        #[serde(default)]
        metadata: Map<String, Value>,
    },
    /// An exception escaped the cell.
    Error {
        /// The exception class name.
        ename: String,
        /// `str(exception)`.
        evalue: String,
        /// IPython's formatted traceback, one entry per frame, with ANSI colors.
        traceback: Vec<String>,
    },
    /// `IPython.display.clear_output(wait=...)`.
    ClearOutput {
        /// Clear only when the next output arrives, to avoid flicker.
        wait: bool,
    },
    /// The notebook's variables after a cell (see [`Variable`]), sent just before its
    /// `done` when they differ from the last list sent (never for a namespace that has
    /// always been empty).
    Variables {
        /// Every listed variable, sorted by name.
        variables: Vec<Variable>,
    },
    /// The names a cell defines and uses (sent before it runs, when its `execute` asked).
    Names {
        /// The cell's; `None` when its code does not parse.
        cell: Option<Names>,
        /// Each peer source's, in the order of the request's `peers`.
        #[serde(default)]
        peers: Vec<Option<Names>>,
    },
    /// The cell with this `id` finished.
    Done {
        /// The request id.
        id: u64,
        /// Whether the cell raised.
        status: ExecStatus,
        /// The cell's execution count (none for code IPython does not count, like blank cells).
        execution_count: Option<u32>,
    },
}

/// One entry of the variable inspector, as the worker reports it after each cell: the shape
/// the session writes into `state.kernel.variables`.
pub use tandem_crdt::kernel::Variable;

/// What a cell's code binds and reads at module level (see `python/tandem_names.py`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    /// Names the cell defines (assigns, imports, `def`/`class`, `del`), sorted.
    #[serde(default)]
    pub defs: Vec<String>,
    /// Names the cell reads before defining them itself, sorted.
    #[serde(default)]
    pub uses: Vec<String>,
}

/// A secret's value on its way to the kernel; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(..)")
    }
}

/// Why a secret lookup gave no value: `secret_not_found`, `notebook_access`, `timeout`,
/// `unavailable`, with a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFailure {
    /// Stable snake_case code; the kernel raises the matching exception.
    pub code: String,
    /// For humans.
    pub message: String,
}

impl SecretFailure {
    /// A failure with this code and message.
    pub fn new(code: &str, message: &str) -> Self {
        Self {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// The `transient` part of a display message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transient {
    /// The id that `update_display_data` targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_id: Option<String>,
}

/// A text stream of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamName {
    /// `sys.stdout`.
    Stdout,
    /// `sys.stderr`.
    Stderr,
}

/// How a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    /// No exception escaped.
    Ok,
    /// An exception escaped (an `error` event preceded this), or the kernel died.
    Error,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_round_trip_in_the_documented_shape() {
        let execute = Request::Execute {
            id: 7,
            code: "1+1".into(),
            peers: None,
        };
        let text = serde_json::to_string(&execute).unwrap();
        assert_eq!(text, r#"{"type":"execute","id":7,"code":"1+1"}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), execute);
        assert_eq!(
            serde_json::to_string(&Request::Shutdown).unwrap(),
            r#"{"type":"shutdown"}"#
        );
    }

    #[test]
    fn intel_and_stdin_messages_round_trip_in_the_documented_shape() {
        let complete = Request::Complete {
            id: 9,
            code: "import os\nos.pa".into(),
            cursor: 15,
        };
        let text = serde_json::to_string(&complete).unwrap();
        assert_eq!(
            text,
            r#"{"type":"complete","id":9,"code":"import os\nos.pa","cursor":15}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), complete);
        let reply: Event = serde_json::from_value(json!({
            "type": "complete_reply", "id": 9, "cursor_start": 13, "cursor_end": 15,
            "matches": [{"text": "path", "type": "module", "signature": ""}]
        }))
        .unwrap();
        let Event::CompleteReply { matches, .. } = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(matches[0].kind, "module");
        let input: Event = serde_json::from_value(
            json!({"type": "input_request", "id": 5, "prompt": "Name? ", "password": false}),
        )
        .unwrap();
        assert_eq!(
            input,
            Event::InputRequest {
                id: 5,
                prompt: "Name? ".into(),
                password: false
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::InputReply { id: 5, value: None }).unwrap(),
            r#"{"type":"input_reply","id":5}"#
        );
    }

    #[test]
    fn events_parse_from_the_documented_shape() {
        let event: Event = serde_json::from_value(json!({
            "type": "display_data", "data": {"text/plain": "x"}, "metadata": {},
            "transient": {"display_id": "abc"}
        }))
        .unwrap();
        let Event::DisplayData { transient, .. } = event else {
            panic!("{event:?}")
        };
        assert_eq!(transient.unwrap().display_id.as_deref(), Some("abc"));
        let done: Event = serde_json::from_str(
            r#"{"type":"done","id":1,"status":"error","execution_count":null}"#,
        )
        .unwrap();
        assert_eq!(
            done,
            Event::Done {
                id: 1,
                status: ExecStatus::Error,
                execution_count: None
            }
        );
    }
}
