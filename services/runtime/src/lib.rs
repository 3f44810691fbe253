//! The Tandem execution service's node side: the manager that starts and drives kernel
//! worker processes, the notebook sessions that write what they produce into the shared
//! document, and the runtime node that runs them for the collab service.
//!
//! The kernel itself is another program, in another crate (`tandem-kernel`,
//! `services/kernel`): one OS process (`tandem kernel`, or that crate's `tandem-kernel`
//! binary) per running notebook session. This crate never links CPython or candle; it speaks
//! to the kernel only through the JSON-lines protocol of [`tandem_protocol::kernel`]. It runs cells one at a time through IPython's
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
//! - [`secrets`]: a running cell's secret lookups, answered through the collab service.
//! - [`drive`]: users' persistent drives as kernels see them (`drive/` in each kernel's
//!   scratch folder).
//!
//! # Tests
//! The black-box tests of real kernels, alone and under a session, live with the worker in
//! `services/kernel/tests` (they need its binary).

pub mod drive;
pub mod kernel;
pub mod metrics;
pub mod node;
pub mod sandbox;
pub mod secrets;
pub mod session;
