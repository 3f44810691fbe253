//! The Tandem execution service's kernels: worker processes that run notebook code in an
//! embedded CPython through IPython, and the manager that starts and drives them.
//!
//! One kernel is one OS process (`tandem kernel`, or the `tandem-kernel` binary of this
//! crate) per running notebook session. It runs cells one at a time through IPython's
//! `InteractiveShell` from the kernel venv, so magics, `!cmd`, display hooks, rich reprs
//! and colored tracebacks behave as in Jupyter, and reports nbformat-shaped outputs over a
//! private pipe. The manager ([`kernel::Kernel`]) starts it with a clean environment in its
//! own working directory and under a memory limit, streams each cell's events, interrupts
//! it (SIGINT → `KeyboardInterrupt`), and reports why it died when it does.
//!
//! # Layout
//! - [`kernel`]: the manager side: [`kernel::Kernel`], its options, events, errors and
//!   [`kernel::Death`] reasons.
//! - [`session`]: one notebook's session: the execution queue and a kernel, writing outputs,
//!   counts, cell states and `state.kernel` into the shared document as a CRDT peer.
//! - [`node`]: a runtime node: takes commands from a collab service (control WebSocket) or
//!   from Redis, and runs a session per notebook; [`metrics`]: its Prometheus metrics.
//! - [`sandbox`]: each kernel in its own uid, namespaces (bubblewrap), network
//!   (slirp4netns) and cgroup, with its person's drive attached by an idmapped mount.
//! - [`protocol`]: the JSON-lines messages between the manager and a worker.
//! - [`secrets`]: a running cell's secret lookups, answered through the collab service.
//! - [`drive`]: users' persistent drives as kernels see them (`drive/` in each kernel's
//!   scratch folder) and the quota warning.
//! - [`tensor`]: the `tandem` Python module (candle-backed tensors, CPU or CUDA with the
//!   `cuda` feature) and the variable inspector the worker runs after each cell.
//! - [`worker`]: the worker process: fd setup, the embedded interpreter, the event sink
//!   with stream coalescing. Its Python side is `python/tandem_kernel.py`.
//!
//! # Running
//! The kernel venv comes first: `scripts/setup-python` builds it (at `.venv-kernel`) from
//! `/usr/bin/python3.11`, the CPython this crate links (see `.cargo/config.toml`). Then
//! `cargo test -p tandem-runtime` runs real kernels; `cargo test -p tandem-runtime --release
//! --test kernel -- --ignored bench --nocapture` measures start-up, round-trip and
//! streaming times.

pub mod drive;
pub mod kernel;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod sandbox;
pub mod secrets;
pub mod session;
pub mod tensor;
pub mod worker;
