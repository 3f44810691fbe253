//! `tandem-kernel`: one kernel worker process, the same as `tandem kernel`.
//!
//! Spawned by `tandem_runtime::kernel::Kernel::start` (the integration tests point it here);
//! not meant to be run by hand. See [`tandem_kernel::worker`].

fn main() -> anyhow::Result<()> {
    tandem_kernel::worker::main()
}
