//! The Tandem kernel: the program that runs one notebook session's code (`tandem kernel`, or
//! this crate's `tandem-kernel` binary), one OS process per running session.
//!
//! It embeds CPython (pyo3) and runs cells one at a time through IPython's
//! `InteractiveShell` from the kernel venv, so magics, `!cmd`, display hooks, rich reprs and
//! coloured tracebacks behave as in Jupyter, and it gives notebook code candle tensors
//! (`import tandem`). It speaks the JSON-lines protocol of [`tandem_protocol::kernel`] over a
//! private pipe with its manager, `tandem_runtime::kernel::Kernel`, which starts it (in the
//! sandbox, with a clean environment, under limits), streams each cell's events, interrupts
//! it and reports why it died. The manager's crate never links CPython or candle: this crate
//! is the process boundary.
//!
//! # Layout
//! - [`worker`]: the worker process: fd setup, the embedded interpreter, the event sink
//!   with stream coalescing. Its Python side is `python/tandem_kernel.py`.
//! - [`tensor`]: the `tandem` Python module (candle-backed tensors, CPU or CUDA with the
//!   `cuda` feature) and the variable inspector the worker runs after each cell.
//! - [`quota`]: the warning under a cell when the user's drive is over its quota.
//!
//! # Running
//! The kernel venv comes first: `scripts/setup-python` builds it (at `.venv-kernel`) from
//! `/usr/bin/python3.11`, the CPython this crate links (see `.cargo/config.toml`). Then
//! `cargo test -p tandem-kernel` runs real kernels, alone (`tests/kernel`) and under a
//! notebook session (`tests/session.rs`, `tests/stale.rs`); `cargo test -p tandem-kernel
//! --release --test kernel -- --ignored bench --nocapture` measures start-up, round-trip and
//! streaming times.

pub mod quota;
pub mod tensor;
pub mod worker;
