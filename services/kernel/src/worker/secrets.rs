//! The kernel's end of secret lookups: `tandem.secrets` and the `google.colab.userdata` shim
//! (`python/tandem_secrets.py`), over the native `_tandem_kernel.secret(name)`.
//!
//! A lookup sends a `secret_request` event and waits for the `secret_reply` with its id,
//! which the request reader thread hands over ([`deliver`]) even while the cell runs. The
//! wait releases the GIL and checks for signals every [`POLL`], so an interrupt still raises
//! `KeyboardInterrupt` in the cell.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use tandem_protocol::kernel::{Event, SecretFailure, SecretText};

/// The Python side, compiled into the binary.
const SOURCE: &str = include_str!("../../python/tandem_secrets.py");

/// How long a lookup waits for its answer (the session's own lookup gives up sooner).
const TIMEOUT: Duration = Duration::from_secs(30);

/// How often a waiting lookup checks for an interrupt.
const POLL: Duration = Duration::from_millis(100);

type Reply = Result<SecretText, SecretFailure>;

static PENDING: Mutex<Option<HashMap<u64, mpsc::Sender<Reply>>>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(1);
static IN_CELL: AtomicBool = AtomicBool::new(false);

fn pending() -> std::sync::MutexGuard<'static, Option<HashMap<u64, mpsc::Sender<Reply>>>> {
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks whether a cell is running: only a running cell has someone whose secrets apply.
pub fn set_in_cell(running: bool) {
    IN_CELL.store(running, Ordering::SeqCst);
}

/// Whether a cell is running now.
pub fn in_cell() -> bool {
    IN_CELL.load(Ordering::SeqCst)
}

/// Hands a `secret_reply` to the lookup waiting for it (a late one, after a timeout, is
/// dropped).
pub fn deliver(id: u64, value: Option<SecretText>, error: Option<SecretFailure>) {
    let reply = match (value, error) {
        (Some(value), _) => Ok(value),
        (None, Some(error)) => Err(error),
        (None, None) => Err(SecretFailure::new("unavailable", "an empty answer")),
    };
    if let Some(waiter) = pending().as_mut().and_then(|p| p.remove(&id)) {
        let _ = waiter.send(reply);
    }
}

/// `_tandem_kernel.secret(name)`: `(True, value, "")`, or `(False, code, message)` for the
/// Python side to raise as the matching exception.
#[pyfunction]
fn secret(py: Python<'_>, name: &str) -> PyResult<(bool, String, String)> {
    if !in_cell() {
        return Ok((
            false,
            "notebook_access".into(),
            "secrets can be read only while a cell runs".into(),
        ));
    }
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let (sender, receiver) = mpsc::channel();
    pending()
        .get_or_insert_with(HashMap::new)
        .insert(id, sender);
    let event = Event::SecretRequest {
        id,
        name: name.to_owned(),
    };
    let sent = super::python::sink().and_then(|sink| {
        sink.emit(&event).map_err(|error| {
            pyo3::exceptions::PyRuntimeError::new_err(format!("the event pipe failed: {error}"))
        })
    });
    let forget = || {
        pending().as_mut().map(|p| p.remove(&id));
    };
    if let Err(error) = sent {
        forget();
        return Err(error);
    }
    let deadline = Instant::now() + TIMEOUT;
    let mut receiver = receiver;
    loop {
        // The receiver travels into the GIL-free closure and back (it is not `Sync`).
        let (back, received) = py.detach(move || {
            let received = receiver.recv_timeout(POLL);
            (receiver, received)
        });
        receiver = back;
        match received {
            Ok(Ok(SecretText(value))) => return Ok((true, value, String::new())),
            Ok(Err(failure)) => return Ok((false, failure.code, failure.message)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Ok((false, "unavailable".into(), "the lookup was dropped".into()));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Err(interrupt) = py.check_signals() {
            forget();
            return Err(interrupt);
        }
        if Instant::now() >= deadline {
            forget();
            return Ok((
                false,
                "timeout".into(),
                format!("no answer for secret {name} within {}s", TIMEOUT.as_secs()),
            ));
        }
    }
}

/// Adds `secret` to the native module and installs `tandem.secrets` and, unless a real one
/// is importable, `google.colab.userdata`. Runs after the glue set up `sys.path`.
pub fn register(py: Python<'_>) -> PyResult<()> {
    let native = py.import("_tandem_kernel")?;
    native.add_function(wrap_pyfunction!(secret, &native)?)?;
    let code = CString::new(SOURCE)?;
    let module = PyModule::from_code(py, &code, c"tandem_secrets.py", c"tandem_secrets")?;
    module.getattr("install")?.call0()?;
    Ok(())
}
