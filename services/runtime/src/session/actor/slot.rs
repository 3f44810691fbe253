//! The session's kernel: none, one starting, or a ready one together with what the session
//! keeps about it (when it became ready, since when it has had nothing to run, whether the
//! session killed it after an interrupt). Those facts are the ready kernel's, so they go when
//! it goes and nothing has to keep them in step by hand.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::Input;
use crate::kernel::{Kernel, KernelError};

/// The session's kernel and its lifecycle. Generic over the kernel only so that its tests need
/// no kernel process; the session holds a `KernelSlot<Kernel>`.
pub(super) struct KernelSlot<K = Kernel>(State<K>);

enum State<K> {
    /// No kernel: the next execute (or an eager session) starts one.
    Empty,
    /// A kernel on its way up.
    Starting(BoxFuture<'static, Result<K, KernelError>>),
    Ready(Ready<K>),
}

struct Ready<K> {
    kernel: Arc<K>,
    /// When it became ready: it is stopped at its maximum lifetime from then.
    since: Instant,
    /// Since when it has had nothing to run: it is shut down at the idle timeout from then.
    idle_since: Option<Instant>,
    /// Whether the session killed it because an interrupt did not stop the cell, so its death
    /// is put down to that.
    killed_after_interrupt: bool,
}

impl<K> Default for KernelSlot<K> {
    fn default() -> Self {
        Self(State::Empty)
    }
}

impl<K> KernelSlot<K> {
    /// Whether there is no kernel, ready or starting.
    pub(super) fn is_empty(&self) -> bool {
        matches!(self.0, State::Empty)
    }

    /// The ready kernel, if there is one.
    pub(super) fn ready(&self) -> Option<&Arc<K>> {
        match &self.0 {
            State::Ready(ready) => Some(&ready.kernel),
            _ => None,
        }
    }

    /// A kernel is on its way up: `start` ends with it (see [`KernelSlot::change`]). Whatever
    /// the slot held is dropped.
    pub(super) fn starting(&mut self, start: BoxFuture<'static, Result<K, KernelError>>) {
        self.0 = State::Starting(start);
    }

    /// `kernel` became ready at `now`; it has yet to be idle.
    pub(super) fn started(&mut self, kernel: K, now: Instant) {
        self.0 = State::Ready(Ready {
            kernel: Arc::new(kernel),
            since: now,
            idle_since: None,
            killed_after_interrupt: false,
        });
    }

    /// There is no kernel any more: it died, failed to start or is being stopped. Returns the
    /// ready kernel, for a graceful shutdown; dropping it (its last handle) kills its process
    /// group.
    pub(super) fn ended(&mut self) -> Option<Arc<K>> {
        match std::mem::replace(&mut self.0, State::Empty) {
            State::Ready(ready) => Some(ready.kernel),
            _ => None,
        }
    }

    /// The ready kernel has nothing to run as of `now`. Whether that starts its idle time: false
    /// when it was idle already (the time counts from then) or no kernel is ready.
    pub(super) fn went_idle(&mut self, now: Instant) -> bool {
        match &mut self.0 {
            State::Ready(ready) if ready.idle_since.is_none() => {
                ready.idle_since = Some(now);
                true
            }
            _ => false,
        }
    }

    /// The kernel has something to run (or none is ready): no idle time counts.
    pub(super) fn busy(&mut self) {
        if let State::Ready(ready) = &mut self.0 {
            ready.idle_since = None;
        }
    }

    /// When the ready kernel, idle since [`KernelSlot::went_idle`], reaches `timeout`.
    pub(super) fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        match &self.0 {
            State::Ready(ready) => ready.idle_since.map(|since| since + timeout),
            _ => None,
        }
    }

    /// When the ready kernel reaches the lifetime `max`.
    pub(super) fn lifetime_deadline(&self, max: Duration) -> Option<Instant> {
        match &self.0 {
            State::Ready(ready) => Some(ready.since + max),
            _ => None,
        }
    }

    /// The ready kernel, for the session to kill because an interrupt did not stop its cell:
    /// its death is then put down to that ([`KernelSlot::killed_after_interrupt`]).
    pub(super) fn kill_after_interrupt(&mut self) -> Option<&Arc<K>> {
        match &mut self.0 {
            State::Ready(ready) => {
                ready.killed_after_interrupt = true;
                Some(&ready.kernel)
            }
            _ => None,
        }
    }

    /// Whether the session killed the ready kernel because an interrupt did not stop its cell.
    pub(super) fn killed_after_interrupt(&self) -> bool {
        matches!(&self.0, State::Ready(ready) if ready.killed_after_interrupt)
    }
}

impl KernelSlot {
    /// Waits for the kernel's next change: the starting one is started (or failed to), the
    /// ready one died. Pending otherwise, and for a ready kernel unless `watch_death`: while a
    /// cell runs, its `Done` reports a death, and watching here too would race it.
    pub(super) async fn change(&mut self, watch_death: bool) -> Input {
        match &mut self.0 {
            State::Starting(start) => Input::Started(start.await),
            State::Ready(ready) if watch_death => Input::Died(ready.kernel.wait().await),
            _ => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(90 * 60);
    const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

    #[test]
    fn an_empty_slot_has_no_kernel_and_no_deadlines() {
        let mut slot = KernelSlot::<&str>::default();
        assert!(slot.is_empty());
        assert!(slot.ready().is_none());
        assert!(!slot.went_idle(Instant::now()));
        assert_eq!(slot.idle_deadline(IDLE), None);
        assert_eq!(slot.lifetime_deadline(LIFETIME), None);
        assert!(slot.kill_after_interrupt().is_none());
        assert!(!slot.killed_after_interrupt());
        assert!(slot.ended().is_none());
    }

    #[test]
    fn a_starting_kernel_is_neither_empty_nor_ready_and_ending_drops_it() {
        let mut slot = KernelSlot::default();
        slot.starting(Box::pin(async { Ok("a") }));
        assert!(!slot.is_empty());
        assert!(slot.ready().is_none());
        assert!(!slot.went_idle(Instant::now()));
        assert_eq!(slot.lifetime_deadline(LIFETIME), None);
        assert!(slot.ended().is_none());
        assert!(slot.is_empty());
    }

    #[test]
    fn the_lifetime_counts_from_start_and_idle_time_from_the_first_idle_moment() {
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut slot = KernelSlot::default();
        slot.started("a", t0);
        assert_eq!(slot.ready().map(|k| **k), Some("a"));
        assert_eq!(slot.lifetime_deadline(LIFETIME), Some(t0 + LIFETIME));
        assert_eq!(slot.idle_deadline(IDLE), None, "not idle until told");

        assert!(slot.went_idle(at(5)));
        assert!(
            !slot.went_idle(at(9)),
            "already idle: the time counts from 5 s"
        );
        assert_eq!(slot.idle_deadline(IDLE), Some(at(5) + IDLE));

        slot.busy();
        assert_eq!(slot.idle_deadline(IDLE), None);
        assert!(slot.went_idle(at(20)));
        assert_eq!(slot.idle_deadline(IDLE), Some(at(20) + IDLE));
        assert_eq!(
            slot.lifetime_deadline(LIFETIME),
            Some(t0 + LIFETIME),
            "running cells do not extend the lifetime"
        );
    }

    #[test]
    fn a_kill_after_an_interrupt_belongs_to_that_kernel() {
        let t0 = Instant::now();
        let mut slot = KernelSlot::default();
        slot.started("a", t0);
        assert!(!slot.killed_after_interrupt());
        assert_eq!(slot.kill_after_interrupt().map(|k| **k), Some("a"));
        assert!(slot.killed_after_interrupt());

        assert_eq!(slot.ended().map(|k| *k), Some("a"));
        assert!(slot.is_empty());
        assert!(!slot.killed_after_interrupt());
        assert_eq!(slot.idle_deadline(IDLE), None);
        assert_eq!(slot.lifetime_deadline(LIFETIME), None);

        let t1 = t0 + Duration::from_secs(60);
        slot.started("b", t1);
        assert!(
            !slot.killed_after_interrupt(),
            "the next kernel starts clean"
        );
        assert_eq!(slot.lifetime_deadline(LIFETIME), Some(t1 + LIFETIME));
        assert_eq!(slot.idle_deadline(IDLE), None);
    }
}
