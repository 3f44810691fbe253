//! Whose runtime it is: the holder of a session's kernel, written to `state.kernel.holder`.
//!
//! A kernel runs for the person who started it (its holder: their `drive/`, and whatever
//! their cells left in memory, such as secrets they read). The runtime node decides who that
//! is (`node/holders.rs`) and sets the session's [`HolderLink`] before the kernel starts; the
//! session reads it each time a kernel starts (a fresh start, a restart, a warm spare) and
//! writes `{"id", "name"}` into `state.kernel.holder` for as long as that kernel lives. With no
//! kernel (`not_started`, `dead`) there is no holder, and the key is absent.

use std::sync::{Arc, Mutex, PoisonError};

/// The person a kernel runs for (`{"id", "name"}` in `state.kernel.holder`, the shape of a
/// cell's `execution_by`).
pub use tandem_crdt::kernel::Person as Holder;

/// Who the session's next kernel runs for, set by the runtime node and read by the session
/// when a kernel starts. Clones share the value.
#[derive(Debug, Clone, Default)]
pub struct HolderLink(Arc<Mutex<Option<Holder>>>);

impl HolderLink {
    /// The next kernels run for `holder`.
    pub fn set(&self, holder: Holder) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(holder);
    }

    /// Who the next kernel runs for (`None`: nobody known, as in tests that start sessions
    /// directly).
    pub fn get(&self) -> Option<Holder> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
