//! The session's side of the shared document: `state.kernel` is `tandem_crdt::kernel`'s
//! ([`KernelState`], [`write_kernel_state`]); cells are read and rewritten through
//! `tandem_crdt::Notebook` (`code_source`, `code_sources`, `output_count`,
//! `replace_output_data`), which finds them as every reader does.

use tandem_crdt::Notebook;

/// The key of the runtime's map under the root `state` map.
pub const KERNEL_KEY: &str = tandem_crdt::schema::STATE_KERNEL;

pub use tandem_crdt::kernel::{InputPrompt, KernelState, KernelStatus, write_kernel_state};

/// Marks the kernel of a notebook whose runtime node vanished as dead (see
/// [`tandem_crdt::kernel::mark_kernel_dead`]); false when the state shows no live kernel.
pub(crate) fn mark_orphaned(notebook: &Notebook, reason: &str) -> bool {
    notebook.mark_kernel_dead(reason)
}
