//! The part of a loop that other threads reach: the queue through which
//! thread-pool workers hand finished tasks back, the loop's wakeup
//! descriptor, and whether the loop is parked (so that an
//! [`Async`](crate::Async) notify writes the wakeup descriptor only when the
//! loop may be asleep).

use std::fmt;
use std::io;
use std::sync::atomic::{fence, AtomicBool, Ordering};

use crate::mpsc::Mpsc;
use crate::sys::Waker;

/// State shared with other threads: thread-pool workers hand finished tasks
/// back through `done`, and they and [`Async`](crate::Async) notifiers wake
/// the loop through `wake` (notifiers only while `parked`).
pub(crate) struct Shared {
    pub(crate) done: Mpsc,
    pub(crate) wake: Waker,
    pub(crate) parked: AtomicBool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("parked", &self.is_parked())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Whether the loop is (about to be) blocked in its backend's wait.
    pub(crate) fn is_parked(&self) -> bool {
        self.parked.load(Ordering::SeqCst)
    }

    /// Wakes the loop's blocking wait.
    pub(crate) fn wake(&self) -> io::Result<()> {
        self.wake.signal()
    }

    /// Announces that the loop is about to block. Pairs with the fence in
    /// `Async::notify`: after this, the loop re-checks its async waits.
    pub(crate) fn park(&self) {
        self.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    pub(crate) fn unpark(&self) {
        self.parked.store(false, Ordering::Relaxed);
    }
}
