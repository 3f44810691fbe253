//! The `names` event: what a cell defines and uses, from `python/tandem_names.py` (compiled
//! into the binary, loaded on first use), sent before the cell runs.

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::sink::Sink;

/// The analysis module's source.
const SOURCE: &str = include_str!("../../python/tandem_names.py");

static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Analyses `code` and `peers` and emits the `names` event. A failure (which would be a bug
/// in the analysis) is logged, and the cell runs without one.
pub(super) fn report(sink: &Sink, code: &str, peers: &[String]) {
    let line = Python::attach(|py| -> PyResult<String> {
        let module = MODULE.get_or_try_init(py, || -> PyResult<Py<PyModule>> {
            let source = CString::new(SOURCE)?;
            Ok(PyModule::from_code(py, &source, c"tandem_names.py", c"tandem_names")?.unbind())
        })?;
        module
            .bind(py)
            .getattr("report")?
            .call1((code, peers.to_vec()))?
            .extract()
    });
    match line {
        Ok(line) => {
            if let Err(error) = sink.emit_line(&line) {
                eprintln!("tandem kernel: could not send the names event: {error}");
            }
        }
        Err(error) => eprintln!("tandem kernel: name analysis failed: {error}"),
    }
}
