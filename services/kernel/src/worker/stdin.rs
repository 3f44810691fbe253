//! The kernel's stdin: `input()` and `getpass.getpass()` in a cell (`python/tandem_kernel.py`),
//! over the native `_tandem_kernel.read_input(prompt, password)`.
//!
//! A read sends an `input_request` event and waits for the `input_reply` with its id, which
//! the request reader thread hands over ([`deliver`]) while the cell waits. There is no
//! timeout: a person may take their time, as in Jupyter. The wait releases the GIL and checks
//! for signals every [`POLL`], so an interrupt raises `KeyboardInterrupt` in the cell.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use pyo3::exceptions::{PyEOFError, PyRuntimeError};
use pyo3::prelude::*;

use tandem_protocol::kernel::Event;

/// How often a waiting read checks for an interrupt.
const POLL: Duration = Duration::from_millis(100);

/// The read waiting for its answer (one at a time: only the running cell reads).
static PENDING: Mutex<Option<(u64, mpsc::Sender<Option<String>>)>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(1);

fn pending() -> std::sync::MutexGuard<'static, Option<(u64, mpsc::Sender<Option<String>>)>> {
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Hands an `input_reply` to the read waiting for it; a reply for another id (a read that was
/// interrupted meanwhile) is dropped.
pub fn deliver(id: u64, value: Option<String>) {
    let mut waiting = pending();
    if waiting.as_ref().is_some_and(|(wanted, _)| *wanted == id)
        && let Some((_, sender)) = waiting.take()
    {
        let _ = sender.send(value);
    }
}

/// `_tandem_kernel.read_input(prompt, password)`: the line the person typed. Raises
/// `EOFError` when nobody will answer, `KeyboardInterrupt` when the cell is interrupted.
#[pyfunction]
fn read_input(py: Python<'_>, prompt: &str, password: bool) -> PyResult<String> {
    if !super::secrets::in_cell() {
        return Err(PyEOFError::new_err(
            "input() works only while a cell runs: nobody can answer it now",
        ));
    }
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let (sender, receiver) = mpsc::channel();
    *pending() = Some((id, sender));
    let event = Event::InputRequest {
        id,
        prompt: prompt.to_owned(),
        password,
    };
    let forget = || {
        let mut waiting = pending();
        if waiting.as_ref().is_some_and(|(wanted, _)| *wanted == id) {
            *waiting = None;
        }
    };
    let sent = super::python::sink().and_then(|sink| {
        sink.emit(&event)
            .map_err(|error| PyRuntimeError::new_err(format!("the event pipe failed: {error}")))
    });
    if let Err(error) = sent {
        forget();
        return Err(error);
    }
    let mut receiver = receiver;
    loop {
        // The receiver travels into the GIL-free closure and back (it is not `Sync`).
        let (back, received) = py.detach(move || {
            let received = receiver.recv_timeout(POLL);
            (receiver, received)
        });
        receiver = back;
        match received {
            Ok(Some(value)) => return Ok(value),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(PyEOFError::new_err(
                    "no answer to input(): the runtime could not ask anyone",
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Err(interrupt) = py.check_signals() {
            forget();
            return Err(interrupt);
        }
    }
}

/// Adds `read_input` to the native module (before the glue, which looks it up when a cell
/// calls `input()`).
pub fn register(native: &Bound<'_, PyModule>) -> PyResult<()> {
    native.add_function(wrap_pyfunction!(read_input, native)?)
}
