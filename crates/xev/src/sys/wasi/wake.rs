//! The waker of a loop on WASI: a flag. A WASI program has one thread, so
//! nothing can signal a loop that is blocked in `poll`: an
//! [`Async`](crate::Async) notified from a callback is seen by the loop's
//! next tick (the loop checks notifications before it blocks), and there
//! are no thread-pool workers to hand work back. The flag keeps the
//! waker's contract (a signal before a drain counts once) for the code
//! that calls it.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// A wakeup flag: set by `signal`, cleared by `drain`; no descriptor.
#[derive(Debug, Default)]
pub struct Waker {
    signaled: AtomicBool,
}

impl Waker {
    /// Creates the flag (never fails).
    pub(crate) fn new() -> io::Result<Waker> {
        Ok(Waker::default())
    }

    /// No descriptor: -1, which the poll poller ignores.
    pub(crate) fn read_fd(&self) -> RawFd {
        -1
    }

    /// Sets the flag.
    pub(crate) fn signal(&self) -> io::Result<()> {
        self.signaled.store(true, Ordering::Release);
        Ok(())
    }

    /// Clears the flag. (Only a loop dropped while thread-pool tasks run
    /// blocks here elsewhere; WASI has no thread pool.)
    pub(crate) fn wait(&self) {
        self.drain();
    }

    /// Clears the flag.
    pub(crate) fn drain(&self) {
        self.signaled.store(false, Ordering::Release);
    }
}
