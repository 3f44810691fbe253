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
//! {"type":"shutdown"}
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
//! {"type":"done","id":7,"status":"ok","execution_count":1}
//! {"type":"fatal","message":"…"}
//! ```
//! Requests run one at a time in arrival order; every `execute` ends with exactly one `done`
//! carrying its `id`, and all output events between two `done`s belong to the cell in
//! between. `fatal` is sent instead of `ready` when the worker cannot start (for example, no
//! IPython in the venv); the worker exits right after it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    },
    /// Run exit hooks and exit with status 0.
    Shutdown,
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

/// One entry of the variable inspector: a tensor, numpy array, pandas DataFrame or Series,
/// or scalar (bool, int, float, complex, str, numpy scalar) in the user namespace. Names
/// starting with `_`, IPython's own (`In`, `Out`, ...) and every other kind of object
/// (modules, functions, classes, ...) are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variable {
    /// The variable's name.
    pub name: String,
    /// Its type: `tandem.Tensor`, `numpy.ndarray`, `pandas.DataFrame`, `pandas.Series`,
    /// `int`, `float`, `str`, `numpy.float32`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Dimensions, for tensors, arrays and frames.
    #[serde(default)]
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
    pub bytes: Option<u64>,
    /// `repr` of a scalar, cut at 80 characters.
    #[serde(default)]
    pub value: Option<String>,
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
