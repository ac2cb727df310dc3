//! Cross-thread wakeups: an [`Async`] handle that any thread may notify and
//! one loop waits on with [`Op::AsyncWait`](crate::Op::AsyncWait).
//!
//! It is an eventfd on Linux (a non-blocking pipe elsewhere): any number of
//! notifies before the loop gets to it wake the wait once (the counter is
//! read and reset), and a notify that comes after the wait read the counter
//! makes the next wait fire, so no wakeup is ever lost. Notifying allocates
//! nothing and takes one `write(2)`.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// A cross-thread wakeup handle. Cheap to clone; `Send + Sync`.
///
/// ```
/// use xev::{Action, Async, Loop, Op, OpResult, RunMode};
/// let mut lp = Loop::new(Default::default()).unwrap();
/// let a = Async::new().unwrap();
/// let remote = a.clone();
/// std::thread::spawn(move || remote.notify().unwrap()).join().unwrap();
/// lp.add(Op::AsyncWait(a), |_, _, res| {
///     assert!(matches!(res, OpResult::Async(Ok(()))));
///     Action::Disarm
/// });
/// lp.run(RunMode::UntilDone).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Async {
    fd: Arc<crate::sys::WakeFd>,
}

impl Async {
    /// Creates a handle (one eventfd on Linux, a pipe elsewhere).
    pub fn new() -> io::Result<Async> {
        Ok(Async {
            fd: Arc::new(crate::sys::WakeFd::new()?),
        })
    }

    /// Wakes the loop waiting on this handle (now, or at its next wait).
    /// Safe to call from any thread, any number of times.
    pub fn notify(&self) -> io::Result<()> {
        self.fd.signal()
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.read_fd()
    }
}
