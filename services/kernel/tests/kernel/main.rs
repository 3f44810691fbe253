//! Black-box tests of kernels: real `tandem-kernel` worker processes embedding CPython,
//! running IPython from the kernel venv (`scripts/setup-python`; `TANDEM_VENV` overrides
//! the default `.venv-kernel` at the workspace root), driven through [`Kernel`].
//!
//! [`Kernel`]: tandem_runtime::kernel::Kernel

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod bench;
mod crashes;
mod intel;
mod isolation;
mod magics;
mod names;
mod outputs;
mod tensor;
