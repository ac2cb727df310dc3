//! Cross-thread wakeups: an [`Async`] handle that any thread may notify and
//! one loop waits on with [`Op::AsyncWait`](crate::Op::AsyncWait).
//!
//! It is an eventfd on Linux (a non-blocking pipe elsewhere) plus a
//! "pending" flag. Any number of notifies before the loop gets to it wake
//! the wait once: the first sets the flag and writes the eventfd, later ones
//! see the flag and make no syscall at all. The loop clears the flag after
//! its wait has read (reset) the eventfd and before the wait's callback
//! runs, so a notify that finds the flag set is always followed by a
//! callback, and one that finds it clear writes the eventfd and makes the
//! next wait fire: no wakeup is ever lost. Notifying allocates nothing.
//!
//! Ordering: clearing the flag is an acquire of the notifier's release, so
//! what a thread wrote before `notify` is visible in the callback.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Ids of `Async` handles (see `Inner::id`).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Unique for the life of the process (never reused, unlike addresses).
    id: u64,
    fd: crate::sys::WakeFd,
    /// Set by the first notify since the loop last consumed a wake.
    pending: AtomicBool,
}

impl Async {
    /// Creates a handle (one eventfd on Linux, a pipe elsewhere).
    pub fn new() -> io::Result<Async> {
        Ok(Async {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                fd: crate::sys::WakeFd::new()?,
                pending: AtomicBool::new(false),
            }),
        })
    }

    /// Wakes the loop waiting on this handle (now, or at its next wait).
    /// Safe to call from any thread, any number of times; while a wake is
    /// pending, further notifies make no syscall.
    pub fn notify(&self) -> io::Result<()> {
        if self.inner.pending.swap(true, Ordering::AcqRel) {
            return Ok(()); // a wake is already on its way
        }
        self.inner.fd.signal().inspect_err(|_| {
            // Nothing was signaled: let the next notify try again.
            self.inner.pending.store(false, Ordering::Release);
        })
    }

    /// Called by the loop once a wait has read (reset) the wakeup
    /// descriptor, before the wait's callback runs.
    pub(crate) fn consumed(&self) {
        self.inner.pending.swap(false, Ordering::AcqRel);
    }

    /// Whether a notify is pending (set, not yet consumed by a wait). When
    /// it is not, the wakeup descriptor is empty, and any later notify will
    /// write it (so a readiness wait need not try to read it first).
    pub(crate) fn is_pending(&self) -> bool {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// A process-unique id of this handle (shared by its clones).
    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.inner.fd.read_fd()
    }
}
