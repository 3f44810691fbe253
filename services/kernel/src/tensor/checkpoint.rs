//! `tandem.checkpoint(obj, name)`, `tandem.restore(name)` and `tandem.checkpoints()`: objects
//! saved to the user's drive, which outlives the kernel (see [`crate::drive`]).
//!
//! They are plain Python (`python/tandem_checkpoint.py`, compiled in): pickling is Python's
//! business, and the only Rust-side type involved, `tandem.Tensor`, goes through numpy.

use std::ffi::CString;

use pyo3::prelude::*;

/// The helpers' source.
const SOURCE: &str = include_str!("../../python/tandem_checkpoint.py");

/// What the helper module contributes to `tandem`. The `_rebuild_*` functions are what
/// pickles name to bring tensors and dtypes back, so they must be reachable as `tandem.…`.
const EXPORTS: [&str; 6] = [
    "checkpoint",
    "restore",
    "checkpoints",
    "CheckpointNotFound",
    "_rebuild_tensor",
    "_rebuild_dtype",
];

/// Runs the helpers' source and adds them to `module`.
pub fn add(py: Python<'_>, module: &Bound<'_, PyModule>) -> PyResult<()> {
    let code = CString::new(SOURCE)?;
    let helpers = PyModule::from_code(py, &code, c"tandem_checkpoint.py", c"tandem._checkpoint")?;
    for name in EXPORTS {
        module.add(name, helpers.getattr(name)?)?;
    }
    Ok(())
}
