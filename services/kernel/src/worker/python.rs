//! The embedded interpreter: the `_tandem_kernel` native module and the IPython glue.
//!
//! The glue (`python/tandem_kernel.py`, compiled into the binary) does everything that is
//! about Python: the venv's `sys.path`, the IPython shell with its display publisher,
//! display hook and traceback side channel, the stream writers. It talks back only through
//! the native module registered here, whose functions write into the worker's [`Sink`].

use std::ffi::CString;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::sink::Sink;
use crate::tensor::inspect::Inspector;
use tandem_protocol::kernel::{Event, ExecStatus, Request, StreamName};

/// The glue module's source.
const GLUE: &str = include_str!("../../python/tandem_kernel.py");

/// The sink behind the native module's functions. Python calls them as plain functions,
/// which cannot carry Rust state, and there is exactly one sink per process.
static SINK: OnceLock<Arc<Sink>> = OnceLock::new();

pub(super) fn sink() -> PyResult<&'static Sink> {
    SINK.get()
        .map(|sink| sink.as_ref())
        .ok_or_else(|| PyRuntimeError::new_err("the tandem kernel sink is not set up"))
}

fn io_error(error: std::io::Error) -> PyErr {
    PyRuntimeError::new_err(format!("the kernel's event pipe failed: {error}"))
}

/// Sends one event, given as a line of JSON.
#[pyfunction]
fn emit(line: &str) -> PyResult<()> {
    sink()?.emit_line(line).map_err(io_error)
}

/// Queues text written to `sys.stdout`.
#[pyfunction]
fn write_stdout(text: &str) -> PyResult<()> {
    sink()?
        .write_stream(StreamName::Stdout, text)
        .map_err(io_error)
}

/// Queues text written to `sys.stderr`.
#[pyfunction]
fn write_stderr(text: &str) -> PyResult<()> {
    sink()?
        .write_stream(StreamName::Stderr, text)
        .map_err(io_error)
}

/// Sends pending stream text now.
#[pyfunction]
fn flush() -> PyResult<()> {
    sink()?.flush().map_err(io_error)
}

/// How one cell ended.
pub struct Outcome {
    /// Whether an exception escaped.
    pub status: ExecStatus,
    /// The cell's execution count, if IPython counted it.
    pub execution_count: Option<u32>,
    /// User code asked the kernel to exit (`exit()`, `quit()`).
    pub exit_requested: bool,
}

/// The running glue: the Python object whose methods run cells.
pub struct Interpreter {
    kernel: Py<PyAny>,
    /// Sends the notebook's variables after each cell (`crate::tensor::inspect`).
    inspector: Inspector,
}

impl Interpreter {
    /// Starts CPython, registers `_tandem_kernel` and starts the glue, which sends `ready`.
    ///
    /// On failure, returns a message for humans (with the Python traceback, if any).
    pub fn start(sink: Arc<Sink>, venv: &Path) -> Result<Interpreter, String> {
        if SINK.set(sink).is_err() {
            return Err("the kernel interpreter was started twice".into());
        }
        // Without Python's own signal handlers (pyo3 initializes with Py_InitializeEx(0));
        // the glue installs the SIGINT handler it wants.
        Python::initialize();
        Python::attach(|py| {
            let start = || -> PyResult<Py<PyAny>> {
                let native = PyModule::new(py, "_tandem_kernel")?;
                native.add_function(wrap_pyfunction!(emit, &native)?)?;
                native.add_function(wrap_pyfunction!(write_stdout, &native)?)?;
                native.add_function(wrap_pyfunction!(write_stderr, &native)?)?;
                native.add_function(wrap_pyfunction!(flush, &native)?)?;
                super::stdin::register(&native)?;
                py.import("sys")?
                    .getattr("modules")?
                    .set_item("_tandem_kernel", &native)?;
                // `import tandem`: tensors (crate::tensor), in every kernel.
                crate::tensor::register(py)?;

                let code = CString::new(GLUE)?;
                let glue = PyModule::from_code(py, &code, c"tandem_kernel.py", c"tandem_kernel")?;
                let venv = venv.to_string_lossy().into_owned();
                let kernel = glue.getattr("start")?.call1((venv,))?.unbind();
                // After the glue: the Colab shim looks for a real `google.colab` on the
                // venv's path.
                super::secrets::register(py)?;
                Ok(kernel)
            };
            start()
                .map(|kernel| Interpreter {
                    kernel,
                    inspector: Inspector::new(),
                })
                .map_err(|error| describe(py, &error))
        })
    }

    /// Runs one cell. Its outputs go out through the sink; returns how it ended.
    pub fn execute(&self, code: &str) -> Outcome {
        Python::attach(|py| {
            // An interrupt that arrived after the previous cell ended is still pending in
            // Python's signal flag; running it now would abort this cell before it starts.
            let _ = py.check_signals();
            let kernel = self.kernel.bind(py);
            let outcome = kernel
                .call_method1("execute", (code,))
                .and_then(|result| result.extract::<(bool, Option<u32>, bool)>());
            let outcome = match outcome {
                Ok((ok, execution_count, exit_requested)) => Outcome {
                    status: if ok {
                        ExecStatus::Ok
                    } else {
                        ExecStatus::Error
                    },
                    execution_count,
                    exit_requested,
                },
                Err(error) => {
                    // Raised in the glue itself, not the cell: most likely an interrupt
                    // that landed between IPython finishing and the glue returning.
                    let event = error_event(py, &error);
                    if let Err(io) = sink().and_then(|sink| sink.emit(&event).map_err(io_error)) {
                        tracing::warn!(error = %io, "could not report a glue error");
                    }
                    let execution_count = kernel
                        .getattr("execution_count")
                        .and_then(|count| count.extract::<Option<u32>>())
                        .ok()
                        .flatten();
                    Outcome {
                        status: ExecStatus::Error,
                        execution_count,
                        exit_requested: false,
                    }
                }
            };
            if let Some(event) = self.inspector.after_cell(kernel)
                && let Err(error) = sink().and_then(|sink| sink.emit(&event).map_err(io_error))
            {
                tracing::warn!(%error, "could not send the variables");
            }
            outcome
        })
    }

    /// A second handle on the glue's kernel object, for the helper thread that answers
    /// code intelligence requests ([`Intel`]).
    pub fn intel(&self) -> Intel {
        Python::attach(|py| Intel {
            kernel: self.kernel.clone_ref(py),
        })
    }

    /// Runs the shell's exit hooks (`atexit` functions included); errors are only logged.
    pub fn shutdown(&self) {
        Python::attach(|py| {
            if let Err(error) = self.kernel.bind(py).call_method0("shutdown") {
                tracing::warn!(error = %describe(py, &error), "kernel exit hooks failed");
            }
        });
    }
}

/// Answers `complete` and `inspect` requests on a thread of its own, so they do not wait for
/// the running cell (they take the GIL between its bytecodes, as any Python thread does).
pub struct Intel {
    kernel: Py<PyAny>,
}

impl Intel {
    /// Answers one request; the glue sends the reply event itself. A failure is logged and
    /// answered empty, so the manager never waits in vain.
    pub fn answer(&self, request: &Request) {
        Python::attach(|py| {
            let kernel = self.kernel.bind(py);
            let (id, result, empty) = match request {
                Request::Complete { id, code, cursor } => (
                    *id,
                    kernel.call_method1("complete", (*id, code.as_str(), *cursor)),
                    Event::CompleteReply {
                        id: *id,
                        matches: Vec::new(),
                        cursor_start: *cursor,
                        cursor_end: *cursor,
                    },
                ),
                Request::Inspect {
                    id,
                    code,
                    cursor,
                    detail_level,
                } => (
                    *id,
                    kernel.call_method1("inspect", (*id, code.as_str(), *cursor, *detail_level)),
                    Event::InspectReply {
                        id: *id,
                        found: false,
                        text: String::new(),
                    },
                ),
                _ => return,
            };
            if let Err(error) = result {
                eprintln!(
                    "tandem kernel: request {id} failed: {}",
                    describe(py, &error)
                );
                if let Err(io) = sink().and_then(|sink| sink.emit(&empty).map_err(io_error)) {
                    eprintln!("tandem kernel: could not answer request {id}: {io}");
                }
            }
        });
    }
}

/// An `error` event for an exception raised outside IPython's own handling.
fn error_event(py: Python<'_>, error: &PyErr) -> Event {
    let ename = error
        .get_type(py)
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let evalue = error
        .value(py)
        .str()
        .map(|text| text.to_string())
        .unwrap_or_default();
    Event::Error {
        ename,
        evalue,
        traceback: vec![describe(py, error)],
    }
}

/// Formats an exception with its traceback, as Python would print it.
fn describe(py: Python<'_>, error: &PyErr) -> String {
    let formatted = || -> PyResult<String> {
        let traceback = py.import("traceback")?;
        let args = PyTuple::new(
            py,
            [
                error.get_type(py).into_any(),
                error.value(py).clone().into_any(),
                error
                    .traceback(py)
                    .map_or_else(|| py.None().into_bound(py), |tb| tb.into_any()),
            ],
        )?;
        let lines = traceback.getattr("format_exception")?.call1(args)?;
        Ok(lines.extract::<Vec<String>>()?.concat())
    };
    formatted().unwrap_or_else(|_| error.to_string())
}
