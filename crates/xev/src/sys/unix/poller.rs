//! The kernel-facing half of a readiness backend ([`Poller`]): register a
//! descriptor edge-triggered, wait, report what happened ([`Event`]). epoll
//! and kqueue implement it, and WASI's `poll(2)` poller, which is
//! level-triggered and so also learns what each descriptor's waiters wait
//! for ([`Poller::interest`]); the shared readiness-to-completion machinery
//! in `backend::readiness` drives it.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// What a poller saw on one descriptor.
#[derive(Clone, Copy, Debug, Default)]
pub struct Event {
    /// The descriptor.
    pub fd: RawFd,
    /// Readable.
    pub readable: bool,
    /// Writable.
    pub writable: bool,
    /// Hung up (peer closed, or read half shut).
    pub hangup: bool,
    /// Error pending (or, for a registration the kernel refused, `errno`).
    pub error: bool,
    /// The errno of a refused registration (0 otherwise).
    pub errno: i32,
    /// A process exited; `fd` holds its pid (pollers with `NATIVE_PROC`).
    pub proc_exit: bool,
}

/// The kernel-facing part of a readiness backend.
pub trait Poller: Sized + 'static {
    /// The backend's name.
    const NAME: &'static str;
    /// Creates the poller; `wake_fd` must be watched (level-triggered) and
    /// reported through `wait`'s return value.
    fn new(wake_fd: RawFd) -> io::Result<Self>;
    /// Starts watching `fd`, edge-triggered, and re-arms the edge.
    /// `believed_registered` says whether the backend thinks `fd` is
    /// registered already (it may have been closed and reused since).
    /// `interest` is what the descriptor's waiters wait for: a poller may
    /// watch only that (epoll does, so that re-arming a read does not
    /// report the socket's constant writability), or both directions.
    fn register(
        &mut self,
        fd: RawFd,
        believed_registered: bool,
        interest: crate::Interest,
    ) -> io::Result<()>;
    /// Whether [`Poller::register`] watches only the interest it is given
    /// (the engine then registers again when a waiter wants more).
    const REGISTERS_INTEREST: bool = false;
    /// Stops watching `fd` (before it is closed).
    fn deregister(&mut self, fd: RawFd);
    /// Whether [`Poller::register`] of an already ready descriptor reports
    /// it ready at the next wait (epoll: a `MOD` re-polls the file). The
    /// readiness engine then lets a stream read that follows a short read
    /// skip its optimistic attempt: the re-registration it makes anyway
    /// finds data that came since.
    const REGISTER_REPORTS_READY: bool = false;
    /// Whether each signal of the wake descriptor ends a wait with
    /// `woken = true` even when nobody reset it since the last one (an
    /// edge-triggered watch of an eventfd), so the loop need not reset it
    /// ([`Backend::WAKE_EDGE`](crate::backend::Backend::WAKE_EDGE)).
    const WAKE_EDGE: bool = false;
    /// Whether the poller watches process exits itself
    /// ([`Poller::register_proc`]); otherwise a process wait waits for its
    /// pidfd to become readable.
    const NATIVE_PROC: bool = false;
    /// Reports (once) when child `pid` exits, as an event with `proc_exit`.
    fn register_proc(&mut self, pid: i32) -> io::Result<()> {
        let _ = pid;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// Whether the poller is level-triggered (`poll(2)`): it then reports
    /// only the directions its descriptors' waiters wait for, which the
    /// readiness engine tells it with [`Poller::interest`] before every
    /// wait (otherwise a ready direction nobody waits for would end every
    /// wait at once).
    const LEVEL_TRIGGERED: bool = false;
    /// For a level-triggered poller: the directions the waiters of `fd`
    /// (a registered descriptor) wait for now; neither means none.
    fn interest(&mut self, fd: RawFd, readable: bool, writable: bool) {
        let _ = (fd, readable, writable);
    }
    /// Waits up to `timeout` and reports events; returns whether the wake
    /// fd fired.
    fn wait(&mut self, timeout: Option<Duration>, f: &mut dyn FnMut(Event)) -> io::Result<bool>;
}

/// Converts a `Duration` timeout into whole milliseconds for `epoll_wait` or `poll`,
/// rounding up so a timer is never woken early, and saturating.
#[cfg_attr(not(any(target_os = "linux", target_os = "wasi")), allow(dead_code))]
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> i32 {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
            ms.min(i32::MAX as u128) as i32
        }
    }
}
