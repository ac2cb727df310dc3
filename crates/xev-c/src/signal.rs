//! Signals beyond libxev's C API (`xev_signal_*`): a watcher subscribed to
//! one signal (a console control event on Windows) whose waits complete
//! once per delivery, with the number of occurrences it stands for (see
//! `xev::signal` for how signals reach loops: every watcher sees every
//! occurrence; occurrences while nobody waits are kept and coalesce).
//!
//! The watcher storage holds a boxed `Rc` of the subscription; each wait's
//! callback holds another, so a wait in flight keeps the subscription
//! until it ends. `xev_signal_deinit` marks it gone: a wait still active
//! then ends with `-ECANCELED` at the next occurrence (cancel it first
//! with `xev_cancel` to end it at once).

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::ptr::{self, addr_of, addr_of_mut};
use std::rc::Rc;

use xev::{Action, Op, OpResult, SignalError, SignalSubscription};

use crate::boundary::{guard_code, guard_void};
use crate::completion::{start, Handle, Request};
use crate::errors::family_code;
use crate::event_loop::{Loop, Shared};
use crate::types::{xev_cb, xev_completion, xev_loop, xev_watcher};
use crate::watchers::{forget, init_watcher, watcher, WatcherKind};

/// What a signal watcher's storage points at.
pub struct Signal {
    sub: SignalSubscription,
    /// Set by `xev_signal_deinit`.
    gone: Cell<bool>,
}

/// The result code of an error.
fn error_code(e: &SignalError) -> c_int {
    family_code!(e, SignalError, Invalid => -libc::EINVAL)
}

/// Initialises a signal watcher on `signo` (a Unix signal number; on
/// Windows one of `XEV_CTRL_*`). Returns 0, or `-EINVAL` for a signal that
/// cannot be watched (`SIGKILL`, `SIGSTOP`, the synchronous faults, out of
/// range) or bad storage.
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage holding no
/// initialised signal watcher (it would be leaked).
#[no_mangle]
pub unsafe extern "C" fn xev_signal_init(w: *mut xev_watcher, signo: c_int) -> c_int {
    guard_code(|| {
        let sub = SignalSubscription::new(signo).map_err(|e| error_code(&e))?;
        let s = Box::into_raw(Box::new(Rc::new(Signal {
            sub,
            gone: Cell::new(false),
        })));
        // SAFETY: forwarded contract.
        match unsafe {
            init_watcher(
                w,
                WatcherKind::Signal,
                crate::sys::NO_FD,
                None,
                ptr::null_mut(),
            )
        } {
            // SAFETY: `r` is the initialised storage.
            Ok(r) => unsafe { ptr::write(addr_of_mut!((*r).signal), s) },
            Err(e) => {
                // SAFETY: `s` was just boxed and given to nobody.
                drop(unsafe { Box::from_raw(s) });
                return Err(e);
            }
        }
        Ok(0)
    })
}

/// Releases a signal watcher; when it was the last subscription of its
/// signal (waits in flight count until they end), the signal's previous
/// action is back. A wait still active ends with `-ECANCELED` at the
/// signal's next occurrence: cancel it first (`xev_cancel`) to end it now.
///
/// # Safety
///
/// `w` is null or points to readable and writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_signal_deinit(w: *mut xev_watcher) {
    guard_void("xev_signal_deinit", || {
        // SAFETY: forwarded contract; the box is owned by the initialised
        // storage, which is marked uninitialised before it is dropped.
        unsafe {
            let r = watcher(w, WatcherKind::Signal)?;
            forget(r);
            let s = Box::from_raw(ptr::read(addr_of!((*r).signal)));
            s.gone.set(true);
        }
        Ok(())
    })
}

/// Waits for the next delivery of the watcher's signal (occurrences since
/// the last delivery are reported at once): `cb` gets how many occurrences
/// it stands for (at least 1), or `-ECANCELED`. `XEV_REARM` waits for the
/// next one.
///
/// # Safety
///
/// `w` and `loop` point to initialised storage (or are null); `c` is null
/// or points to writable `xev_completion` storage that is not active and
/// stays valid until its callback returns `XEV_DISARM`. On the loop's
/// thread.
#[no_mangle]
pub unsafe extern "C" fn xev_signal_wait(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract; the box is initialised with the watcher.
        let s = unsafe {
            Rc::clone(&*ptr::read(addr_of!(
                (*watcher(w, WatcherKind::Signal)?).signal
            )))
        };
        let add = |lp: &mut Loop, shared: &Rc<Shared>, h: Handle| {
            let shared = Rc::clone(shared);
            let op = Op::AsyncWait(s.sub.async_handle().clone());
            Ok(lp.add(op, move |lp, _, res| {
                let code = match res {
                    _ if s.gone.get() => -libc::ECANCELED,
                    OpResult::Async(Ok(())) => match s.sub.take() {
                        // A wake whose occurrences a delivery took already.
                        0 => return Action::Rearm,
                        n => c_int::try_from(n).unwrap_or(c_int::MAX),
                    },
                    _ => -libc::ECANCELED,
                };
                // SAFETY: the loop calls this while the wait is active,
                // when the C contract keeps the storage valid.
                let rearm = unsafe { h.owns() && h.deliver(lp, &shared, code) };
                // An error ends the wait whatever the callback asked.
                if rearm && code > 0 {
                    Action::Rearm
                } else {
                    Action::Disarm
                }
            }))
        };
        // SAFETY: forwarded contract.
        unsafe { start(loop_, c, Request::new(cb, userdata), add) }
    })
}
