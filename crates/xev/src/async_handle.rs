//! Cross-thread wakeups: an [`Async`] handle that any thread may notify and
//! a loop waits on with [`Op::AsyncWait`](crate::Op::AsyncWait).
//!
//! An `Async` is a "pending" flag plus the loop that waits on it. The loop
//! handles async waits itself, in user space: a wait whose flag is set
//! completes at once (clearing the flag), and the loop checks the flags of
//! its waiting asyncs at every tick. Only a loop that is about to block (or
//! blocked) needs a kernel wakeup: it raises its `parked` flag first, and a
//! notify that sets a pending flag writes the loop's wakeup descriptor (an
//! eventfd on Linux, a pipe elsewhere) only when it sees `parked`. Both
//! sides order their two steps with sequentially consistent fences, so
//! either the loop sees the pending flag before it blocks or the notifier
//! sees `parked` and wakes it: no wakeup is ever lost. A busy loop is
//! notified with no syscall at all, and any number of notifies before the
//! loop gets to them make one wake. Notifying allocates nothing.
//!
//! Ordering: the loop clears the flag with an acquire of the notifier's
//! release, so what a thread wrote before `notify` is visible in the
//! callback.
//!
//! One loop at a time: an `Async` wakes the loop that most recently started
//! waiting on it (waits on one handle from several loops at once are not
//! supported; give each loop its own handle).

use std::io;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::shared::Shared;

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
    /// Set by the first notify since a wait last consumed it.
    pending: AtomicBool,
    /// The loop that waits (or last waited) on this handle.
    waker: Mutex<Option<Arc<Shared>>>,
    /// The address of the `Shared` in `waker` (0: none), written with it
    /// under the lock. Only ever compared, never dereferenced: a loop that
    /// starts a wait on the handle it is already registered with skips
    /// the lock (which a notifier on another thread may be holding).
    registered: AtomicUsize,
}

impl Async {
    /// Creates a handle. (It holds no kernel resource: the loop's own
    /// wakeup descriptor wakes it. The `Result` is kept for the API's
    /// stability.)
    pub fn new() -> io::Result<Async> {
        Ok(Async {
            inner: Arc::new(Inner {
                pending: AtomicBool::new(false),
                waker: Mutex::new(None),
                registered: AtomicUsize::new(0),
            }),
        })
    }

    /// Wakes the loop waiting on this handle (now, or at its next wait).
    /// Safe to call from any thread, any number of times. While a wake is
    /// pending, or while the loop is busy, it makes no syscall.
    pub fn notify(&self) -> io::Result<()> {
        if self.inner.pending.swap(true, Ordering::AcqRel) {
            return Ok(()); // a wake is already on its way
        }
        // Pairs with the fence in `Shared::park`: either the loop sees the
        // pending flag before blocking, or we see it parked.
        fence(Ordering::SeqCst);
        // The lock is held only to look: a parked loop's `Shared` is
        // cloned out and woken after it is released.
        let parked = {
            let waker = self
                .inner
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match waker.as_ref() {
                Some(shared) if shared.is_parked() => Some(Arc::clone(shared)),
                _ => None,
            }
        };
        match parked {
            Some(shared) => shared.wake(),
            None => Ok(()),
        }
    }

    /// Takes a pending notification at once, without a loop: `true` if
    /// one was pending (it is consumed, as by a wait that completes; any
    /// number of notifications make one), `false` if none was. Never
    /// blocks and makes no syscall: a program that expects a notification
    /// to be there already (a busy producer) can skip a turn of its loop.
    pub fn try_wait(&self) -> bool {
        self.consume()
    }

    /// Takes a pending notification (the loop, for a waiting completion).
    pub(crate) fn consume(&self) -> bool {
        self.inner.pending.load(Ordering::Relaxed)
            && self.inner.pending.swap(false, Ordering::AcqRel)
    }

    /// Puts back a notification a wait consumed but whose callback will
    /// never run (its loop was dropped first).
    pub(crate) fn restore(&self) {
        self.inner.pending.store(true, Ordering::Release);
    }

    /// Makes `shared`'s loop the one this handle wakes.
    pub(crate) fn register(&self, shared: &Arc<Shared>) {
        let me = Arc::as_ptr(shared) as usize;
        if self.inner.registered.load(Ordering::Relaxed) == me {
            // Already ours: `waker` holds an `Arc` of `shared` (which keeps
            // its address from being reused by another loop's meanwhile).
            return;
        }
        // `registered` mirrors `waker`, so `waker` holds another loop (or
        // none): replace it, and the mirror with it.
        let mut waker = self
            .inner
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *waker = Some(Arc::clone(shared));
        self.inner.registered.store(me, Ordering::Relaxed);
    }
}
