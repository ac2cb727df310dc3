//! The backend contract, for people who write or review a backend: the
//! [`Backend`] trait, what its calls answer ([`Start`], [`CancelStart`]),
//! the completion record it is lent ([`Core`], opaque) and the waker it
//! creates ([`Waker`]). On Unix the readiness backends share one engine
//! (`Readiness`, in the crate-private `backend/readiness.rs`) over a small
//! `Poller` contract that epoll and kqueue implement in `sys/`. Programs
//! that only use xev need none of this beyond naming [`Backend`] as a
//! bound (also at `xev::backend::Backend`).
//!
//! The backends live in this crate (the record's fields are private to
//! it): a new one is a module beside the others; ARCHITECTURE.md has the
//! checklist.

use std::io;
use std::ptr::NonNull;
use std::time::Duration;

use crate::options::Options;
pub use crate::record::Core;
#[cfg(any(unix, target_os = "wasi"))]
pub use crate::sys::unix::Waker;
#[cfg(windows)]
pub use crate::sys::windows::Waker;

/// How [`Backend::start`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// In flight; the result arrives through [`Backend::poll`].
    Pending,
    /// Finished at once with this raw result.
    Done(i32),
    /// The backend cannot do this asynchronously: run it on the thread pool.
    Pool,
}

/// How [`Backend::cancel`] went: backends answer at once (io_uring with a
/// synchronous cancel), so that a cancel means the same on every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelStart {
    /// The cancel's raw result: 0 (the target will complete with
    /// `-ECANCELED`), `-ENOENT` (the backend no longer has it pending: its
    /// result is already in), `-EALREADY` (it cannot be stopped and
    /// completes on its own), or another negated errno.
    pub cancel: i32,
    /// The target's raw result, when the backend let go of it at once
    /// (otherwise it arrives through [`Backend::poll`]).
    pub target: Option<i32>,
}

/// The contract between the loop and a kernel interface.
///
/// The loop owns every completion; it lends one to the backend with
/// [`Backend::start`] and gets it back exactly once, either from `start`
/// itself (`Done`/`Pool`), from [`Backend::cancel`] (`Done` with a target
/// result), or through the sink of [`Backend::poll`] or [`Backend::drain`].
pub trait Backend: Sized + 'static {
    /// Creates the backend and the waker through which other threads wake
    /// its blocking `poll` (thread-pool hand-backs, `Async` notifies of a
    /// parked loop): an eventfd on Linux, a pipe on the BSDs, the completion
    /// port itself on Windows. When the waker is signaled, `poll` must
    /// return (without reporting it as a completion) and report
    /// `woken = true`; the loop then resets it.
    fn new(opts: &Options) -> io::Result<(Self, Waker)>
    where
        Self: Sized;

    /// Whether every signal of the waker makes `poll` report
    /// `woken = true` on its own, with no reset in between (an
    /// edge-triggered watch of an eventfd: epoll's `EPOLLET`, io_uring's
    /// multishot poll, both fire on each write). The loop then skips its
    /// reset, a `read` syscall per wakeup; the eventfd's counter just
    /// grows (the waker resets it itself if it ever fills). Otherwise
    /// (`false`, the default) the loop resets the waker after each
    /// `woken`.
    const WAKE_EDGE: bool = false;

    /// The backend's name ("io_uring", "epoll", ...).
    fn name(&self) -> &'static str;

    /// What this backend does on the running system
    /// ([`Loop::capabilities`](crate::Loop::capabilities)). The default
    /// reports the name and filesystem requests on the thread pool.
    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities::without_native_fs(self.name())
    }

    /// Takes in a new buffer pool of this loop
    /// ([`Loop::add_buf_pool`](crate::generic::Loop::add_buf_pool)). The
    /// default leaves it as it is: the backend takes buffers from its free
    /// list for each pooled receive's call. A backend that hands the
    /// buffers to the kernel keeps the pool alive until the kernel is done
    /// with them.
    fn add_pool(&mut self, pool: &crate::BufPool) -> io::Result<()> {
        let _ = pool;
        Ok(())
    }

    /// Starts the I/O operation of `core` (never a noop, timer or cancel:
    /// the loop handles those).
    ///
    /// # Safety
    /// `core` is valid, is not accessed by anyone but the backend until the
    /// backend hands it back (see the trait docs), and does not move.
    unsafe fn start(&mut self, core: NonNull<Core>) -> Start;

    /// Cancels `target`, which this backend holds (started and not handed
    /// back), and says at once how it went.
    ///
    /// # Safety
    /// `target` was started on this backend and not handed back yet.
    unsafe fn cancel(&mut self, target: NonNull<Core>) -> CancelStart;

    /// Submits pending work, waits up to `timeout` (`None`: forever;
    /// zero: do not block) for results, and hands each finished operation
    /// back to `sink` as `(completion, raw result)`. Returns whether the
    /// wake fd fired.
    fn poll(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut dyn FnMut(NonNull<Core>, i32),
    ) -> io::Result<bool>;

    /// Whether any operation is held by the backend.
    fn in_flight(&self) -> usize;

    /// Whether `poll` has results to report without waiting (or must run
    /// to make finished operations reportable). When it has none and
    /// callbacks are ready, the loop skips a zero-timeout poll; operations
    /// started but not yet handed to the kernel (io_uring's unsubmitted
    /// entries) then wait for the next poll, or for [`Backend::flush`]
    /// when the run returns first.
    fn has_pending(&mut self) -> bool;

    /// Hands operations started but not yet given to the kernel to it,
    /// without waiting: the loop calls it when a run returns, so that
    /// what was started makes progress outside the run as it does on the
    /// backends that start operations with a syscall. The default has
    /// nothing to hand.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Forgets what the backend keeps about the descriptor `fd` (a
    /// readiness registration and its cached state) before its owner takes
    /// it out of the loop's hands ([`Loop::forget`](crate::Loop::forget)).
    /// No operation on `fd` is in flight. The default keeps nothing.
    fn forget(&mut self, fd: crate::RawHandle) {
        let _ = fd;
    }

    /// Called for each completion the backend holds when the loop is
    /// dropped: stop it (its result is discarded, through `drain`).
    ///
    /// # Safety
    /// `target` was started on this backend and not handed back yet.
    unsafe fn abandon(&mut self, target: NonNull<Core>);

    /// Called when the loop is dropped, after `abandon`: waits until the
    /// kernel no longer touches any completion, passing each one it lets go
    /// of to `sink` (whose results are discarded). Afterwards `in_flight`
    /// is 0, unless the kernel interface failed.
    fn drain(&mut self, sink: &mut dyn FnMut(NonNull<Core>, i32));
}

