//! A connection as its room sees it: a bounded queue of frames on their way to the client,
//! and a request to close, both behind one lock with the connection task's waker.
//!
//! One small allocation per connection, and nothing more while its queue is empty: an idle
//! watcher in a classroom of thousands costs only this (issue 14).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use super::Frames;

/// Why frames could not be queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// The queue is full: the client reads too slowly.
    Full,
    /// The connection has ended.
    Gone,
}

/// What the connection task is woken for.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// Frames are queued.
    Frames,
    /// Time to ping the client (and to give up on one silent for too long).
    Ping,
    /// A close was requested.
    Close,
}

/// The room's end of one connection.
#[derive(Debug)]
pub struct Link {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Frames>,
    /// The first close requested: code and reason.
    close: Option<(u16, String)>,
    /// The room's keepalive tick came and the task has yet to see it.
    ping: bool,
    /// The connection task, when it waits for frames or a close.
    waker: Option<Waker>,
    /// The connection has ended; nothing more is queued.
    gone: bool,
}

impl Link {
    /// A link whose queue holds at most `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned state is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `frames` for the client.
    pub fn try_send(&self, frames: Frames) -> Result<(), Unsent> {
        let mut state = self.state();
        if state.gone {
            return Err(Unsent::Gone);
        }
        if state.queue.len() >= self.capacity {
            return Err(Unsent::Full);
        }
        state.queue.push_back(frames);
        wake(&mut state);
        Ok(())
    }

    /// Items queued and not yet taken.
    pub fn depth(&self) -> usize {
        self.state().queue.len()
    }

    /// Asks the connection to close with `code` and `reason`; later requests keep the first.
    pub fn close(&self, code: u16, reason: impl Into<String>) {
        let mut state = self.state();
        if state.close.is_none() {
            state.close = Some((code, reason.into()));
        }
        wake(&mut state);
    }

    /// Asks the connection to ping its client: the room's keepalive tick, one timer for all
    /// its connections rather than one each.
    pub fn ping(&self) {
        let mut state = self.state();
        state.ping = true;
        wake(&mut state);
    }

    /// The close requested, if any.
    pub fn close_reason(&self) -> Option<(u16, String)> {
        self.state().close.clone()
    }

    /// Ready when a close was requested, a ping is due or, if `frames` are wanted, some are
    /// queued (in that order); otherwise wakes the task when one of them happens.
    pub fn poll_wake(&self, cx: &mut Context<'_>, frames: bool) -> Poll<Wake> {
        let mut state = self.state();
        if state.close.is_some() {
            return Poll::Ready(Wake::Close);
        }
        if std::mem::take(&mut state.ping) {
            return Poll::Ready(Wake::Ping);
        }
        if frames && !state.queue.is_empty() {
            return Poll::Ready(Wake::Frames);
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Takes up to `max` queued items, oldest first, into `into`.
    pub fn take(&self, max: usize, into: impl FnMut(Frames)) {
        let mut state = self.state();
        let n = state.queue.len().min(max);
        state.queue.drain(..n).for_each(into);
        if state.queue.is_empty() {
            // Free what a burst grew, so an idle connection holds nothing here.
            state.queue = VecDeque::new();
        }
    }

    /// The connection ended: later sends report it gone, and what was queued is dropped.
    pub fn end(&self) {
        let mut state = self.state();
        state.gone = true;
        state.queue = VecDeque::new();
        state.waker = None;
    }
}

fn wake(state: &mut State) {
    if let Some(waker) = state.waker.take() {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    fn frames(text: &'static str) -> Frames {
        Arc::from([Bytes::from_static(text.as_bytes())])
    }

    #[tokio::test]
    async fn queued_frames_wake_the_task_and_come_out_in_order() {
        let link = Arc::new(Link::new(2));
        let waiter = tokio::spawn({
            let link = link.clone();
            async move { std::future::poll_fn(|cx| link.poll_wake(cx, true)).await }
        });
        tokio::task::yield_now().await;
        link.try_send(frames("a")).unwrap();
        assert_eq!(waiter.await.unwrap(), Wake::Frames);
        link.try_send(frames("b")).unwrap();
        assert_eq!(link.try_send(frames("c")), Err(Unsent::Full));
        assert_eq!(link.depth(), 2);
        let mut taken = Vec::new();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(
            link.poll_wake(&mut cx, false).is_pending(),
            "frames are not taken while the last ones are being written"
        );
        link.take(1, |f| taken.push(f));
        link.take(8, |f| taken.push(f));
        assert_eq!(taken, [frames("a"), frames("b")]);
        assert_eq!(link.depth(), 0);
    }

    #[test]
    fn pings_then_the_first_close_wins_and_an_ended_link_takes_nothing() {
        let link = Link::new(4);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        link.try_send(frames("queued")).unwrap();
        link.ping();
        assert_eq!(
            link.poll_wake(&mut cx, false),
            Poll::Ready(Wake::Ping),
            "a ping is due even while frames wait"
        );
        assert!(link.poll_wake(&mut cx, false).is_pending(), "once");
        link.close(1008, "access ended");
        link.close(1001, "going away");
        assert_eq!(link.close_reason(), Some((1008, "access ended".into())));
        link.ping();
        link.end();
        assert_eq!(link.try_send(frames("late")), Err(Unsent::Gone));
    }
}
