//! [`Notify`]: a wakeup that any thread may send and a task on a runtime
//! awaits. A flag and the waiting task's waker, with no loop operation of
//! its own: a notification from another thread wakes the task through its
//! runtime's run queue, which wakes that runtime's loop with xev's
//! [`xev::Async`] (no syscall when the loop is busy, one eventfd or pipe
//! write when it sleeps); a notification on the runtime's own thread is a
//! plain local wake. Notifying allocates nothing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// A cross-thread wakeup: [`Notify::notify`] from any thread sets it,
/// [`Notify::notified`] on a runtime waits until it is set and clears it.
/// Notifications before anyone waits are kept, and any number of them
/// make one wakeup. One task waits on a `Notify` at a time (a second
/// waiter takes the first one's place: give each waiter its own). Cheap
/// to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Notify {
    inner: Arc<Inner>,
}

struct Inner {
    set: AtomicBool,
    /// The waker of the task that waits, if one does.
    waiter: Mutex<Option<Waker>>,
}

impl Notify {
    /// A new, unset wakeup. (It cannot fail today; the `Result` is kept
    /// for the API's sake.)
    pub fn new() -> io::Result<Notify> {
        Ok(Notify {
            inner: Arc::new(Inner {
                set: AtomicBool::new(false),
                waiter: Mutex::new(None),
            }),
        })
    }

    /// Sets it, waking the task that waits (from any thread). The flag is
    /// set before the waiter is looked at, and a waiter stores its waker
    /// before it looks at the flag, so no notification is lost.
    pub fn notify(&self) -> io::Result<()> {
        self.inner.set.store(true, Ordering::Release);
        // Woken outside the lock: a waker may run its owner's code.
        if let Some(w) = self.inner.take_waiter() {
            w.wake();
        }
        Ok(())
    }

    /// Waits until it is set, and clears it. Dropping the future ends the
    /// wait (a notification that arrives later is kept). When it is set
    /// already, it completes at once, without a turn of the loop (as a
    /// socket operation may: at most 128 times per poll of a task, so that
    /// the loop and the other tasks still run; past that it completes at
    /// the task's next poll, after a turn of the loop).
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            inner: &self.inner,
            waiting: false,
        }
    }
}

impl Inner {
    /// Takes the stored waker, if a task waits.
    fn take_waiter(&self) -> Option<Waker> {
        self.waiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Takes the notification, if it is set.
    fn consume(&self) -> bool {
        self.set.load(Ordering::Relaxed) && self.set.swap(false, Ordering::AcqRel)
    }
}

/// The future of [`Notify::notified`].
pub struct Notified<'a> {
    inner: &'a Inner,
    /// Whether this future's waker may be the stored one.
    waiting: bool,
}

impl Future for Notified<'_> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if crate::op::spend_eager_budget() && self.inner.consume() {
            self.waiting = false;
            return Poll::Ready(Ok(()));
        }
        {
            let mut w = self
                .inner
                .waiter
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        self.waiting = true;
        // Set meanwhile, or set already but past this poll's budget: the
        // task runs again at its runtime's next round, after a turn of the
        // loop, and takes it then.
        if self.inner.set.load(Ordering::Acquire) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        if self.waiting {
            // Stops waiting. A waiter's waker left behind would only wake
            // its task once for nothing, but it would keep the task alive.
            drop(self.inner.take_waiter());
        }
    }
}
