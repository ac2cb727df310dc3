//! Signals (Unix) and console control events (Windows), delivered to loops:
//! [`SignalSubscription`], the process-wide registry behind it, and the
//! numbers that can be watched. The [`Signal`](crate::watcher::Signal)
//! watcher is built on it.
//!
//! # How a signal reaches a loop
//!
//! One mechanism on every Unix backend (io_uring, epoll, kqueue), whatever
//! the loop: the first subscription to a signal installs xev's handler
//! with `sigaction` and keeps the previous action; the handler only counts
//! the signal (an atomic per signal number) and writes a byte to a
//! process-wide pipe. A dispatcher thread (started with the first
//! subscription; it then stays, blocked on the pipe) reads the pipe and
//! adds each signal's count to every subscription of that signal, waking
//! its loop through the subscription's [`Async`]. Every subscription (on
//! one loop or several, on any threads) sees every occurrence; a signal
//! that arrives while nobody waits stays counted and wakes the next wait
//! (occurrences coalesce, as the kernel's do: a wait reports how many it
//! stands for). Dropping the last subscription of a signal puts the saved
//! action back.
//!
//! Why not `signalfd` or `EVFILT_SIGNAL`: reading a signalfd consumes the
//! signal, so only one of several loops would see it, and it needs the
//! signal blocked in every thread of the process (else the kernel hands it
//! to a thread that has it unblocked and the default action runs);
//! libkqueue's `EVFILT_SIGNAL` sits on signalfd and has the same limits. A
//! handler works the same everywhere and coexists with the process
//! watcher, which never relies on `SIGCHLD` (it watches pidfds or
//! `EVFILT_PROC`).
//!
//! On Windows the same registry is fed by a console control handler
//! (`SetConsoleCtrlHandler`): Ctrl-C, Ctrl-Break and the console's close,
//! logoff and shutdown events. The handler claims an event (so the
//! default, ending the process, does not run) while it has subscribers;
//! for close, logoff and shutdown Windows ends the process once the
//! handlers return anyway.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::SignalError;
use crate::Async;

/// One subscriber: its signal, the occurrences not yet taken, and the
/// handle its loop waits on.
pub(crate) struct Sub {
    signo: i32,
    count: AtomicU64,
    notify: Async,
}

/// The process-wide table of subscriptions.
struct Registry {
    subs: Vec<Arc<Sub>>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { subs: Vec::new() });

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds `n` occurrences of `signo` to every subscription of it and wakes
/// their loops. Returns whether anyone subscribes to it. Called by the
/// platform's dispatcher, never from a signal handler.
#[cfg_attr(target_os = "wasi", allow(dead_code))]
pub(crate) fn deliver(signo: i32, n: u64) -> bool {
    let reg = registry();
    let mut any = false;
    for s in reg.subs.iter().filter(|s| s.signo == signo) {
        s.count.fetch_add(n, Ordering::AcqRel);
        // Cannot fail for a live loop; a loop that is gone needs no wake.
        let _ = s.notify.notify();
        any = true;
    }
    any
}

/// A subscription to one signal (or console event): every occurrence from
/// now on is counted and notifies its [`Async`]. Wait for it with
/// [`Op::AsyncWait`](crate::Op::AsyncWait) on
/// [`SignalSubscription::async_handle`], then [`SignalSubscription::take`]
/// the count; or use the [`Signal`](crate::watcher::Signal) watcher, which
/// does both. Dropping the last subscription of a signal restores the
/// action the process had before the first.
pub struct SignalSubscription {
    sub: Arc<Sub>,
}

impl SignalSubscription {
    /// Subscribes to `signo` (a Unix signal number such as
    /// `libc::SIGINT`, or on Windows one of the `CTRL_*` constants of
    /// [`crate::signal`]).
    ///
    /// # Errors
    /// [`SignalError::Invalid`] for a number that cannot be watched
    /// (`SIGKILL`, `SIGSTOP`, the synchronous faults `SIGSEGV`, `SIGBUS`,
    /// `SIGILL`, `SIGFPE`, out of range, or not a console event on
    /// Windows); an OS error if the handler cannot be installed.
    pub fn new(signo: i32) -> Result<SignalSubscription, SignalError> {
        crate::sys::signal::check(signo)?;
        let sub = Arc::new(Sub {
            signo,
            count: AtomicU64::new(0),
            notify: Async::new()?,
        });
        let mut reg = registry();
        if !reg.subs.iter().any(|s| s.signo == signo) {
            crate::sys::signal::install(signo)?;
        }
        reg.subs.push(sub.clone());
        Ok(SignalSubscription { sub })
    }

    /// The signal (or console event) number.
    pub fn signal(&self) -> i32 {
        self.sub.signo
    }

    /// The handle its loop waits on: notified at every occurrence.
    pub fn async_handle(&self) -> &Async {
        &self.sub.notify
    }

    /// The occurrences since the last `take` (0 if none), resetting the
    /// count.
    pub fn take(&self) -> u64 {
        self.sub.count.swap(0, Ordering::AcqRel)
    }
}

impl Drop for SignalSubscription {
    fn drop(&mut self) {
        let mut reg = registry();
        reg.subs.retain(|s| !Arc::ptr_eq(s, &self.sub));
        let signo = self.sub.signo;
        if !reg.subs.iter().any(|s| s.signo == signo) {
            crate::sys::signal::restore(signo);
        }
    }
}

impl fmt::Debug for SignalSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalSubscription")
            .field("signal", &self.sub.signo)
            .finish_non_exhaustive()
    }
}

/// Ctrl-C in the console (`CTRL_C_EVENT`).
#[cfg(windows)]
pub const CTRL_C: i32 = 0;
/// Ctrl-Break in the console (`CTRL_BREAK_EVENT`).
#[cfg(windows)]
pub const CTRL_BREAK: i32 = 1;
/// The console is being closed (`CTRL_CLOSE_EVENT`); Windows ends the
/// process once the handlers return.
#[cfg(windows)]
pub const CTRL_CLOSE: i32 = 2;
/// The user logs off (`CTRL_LOGOFF_EVENT`, services only).
#[cfg(windows)]
pub const CTRL_LOGOFF: i32 = 5;
/// The system shuts down (`CTRL_SHUTDOWN_EVENT`, services only).
#[cfg(windows)]
pub const CTRL_SHUTDOWN: i32 = 6;

#[cfg(all(test, any(unix, windows)))]
mod tests {
    use super::*;

    /// The fan-out: every subscription of a signal gets every occurrence,
    /// others get none, and counts coalesce until taken.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call sigaction")]
    fn delivery_reaches_every_subscription_of_its_signal() {
        // A number no other unit test subscribes to.
        #[cfg(unix)]
        let (sig, other) = (libc::SIGTTIN, libc::SIGTTOU);
        #[cfg(windows)]
        let (sig, other) = (CTRL_LOGOFF, CTRL_SHUTDOWN);
        let a = SignalSubscription::new(sig).unwrap();
        let b = SignalSubscription::new(sig).unwrap();
        let c = SignalSubscription::new(other).unwrap();
        assert!(deliver(sig, 2));
        assert!(deliver(sig, 1));
        assert_eq!((a.take(), b.take(), c.take()), (3, 3, 0));
        assert_eq!(a.take(), 0, "taken");
        drop((a, b));
        assert!(!deliver(sig, 1), "nobody subscribes any more");
        assert_eq!(c.signal(), other);
    }

    /// The console handler claims an event only while someone subscribes
    /// (wine cannot raise console events, so the handler is called as
    /// Windows would call it).
    #[cfg(windows)]
    #[test]
    fn console_handler_feeds_the_registry() {
        let s = SignalSubscription::new(CTRL_BREAK).unwrap();
        // SAFETY: the handler takes any event number.
        assert_ne!(unsafe { crate::sys::signal::handler(CTRL_BREAK as u32) }, 0);
        assert_eq!(s.take(), 1);
        drop(s);
        // SAFETY: as above.
        assert_eq!(unsafe { crate::sys::signal::handler(CTRL_BREAK as u32) }, 0);
        assert!(matches!(
            SignalSubscription::new(3),
            Err(SignalError::Invalid)
        ));
    }
}
