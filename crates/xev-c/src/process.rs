//! Processes beyond libxev's C API (`xev_process_*`): wait for a child to
//! exit, reap it, and report its exit code or the signal that ended it.
//!
//! The watcher storage holds a boxed [`xev::watcher::Process`], which does
//! the platform's work (a pidfd on Linux, `EVFILT_PROC` on kqueue systems)
//! and reaps the child without ever touching another process. The
//! callback's result encodes the status: the exit code (0 to 255) when the
//! child exited, 256 plus the signal number when a signal ended it
//! (`XEV_PROCESS_*` macros in `xev.h`), or a negative error code.

use std::ffi::{c_int, c_void};
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::ptr::{self, addr_of};
use std::rc::Rc;

use xev::{Action, ProcessError};

use crate::boundary::{guard_code, guard_void};
use crate::completion::{start, Handle, Request};
use crate::errors::family_code;
use crate::event_loop::{Loop, Shared};
use crate::types::{xev_cb, xev_completion, xev_loop, xev_watcher};
use crate::watchers::{forget, init_watcher, watcher, WatcherKind};

/// The process watcher on the C API's backend.
pub type Process = xev::watcher::Process<crate::event_loop::Backend>;

/// The result code of a wait.
#[cfg(unix)]
fn status_code(r: Result<ExitStatus, ProcessError>) -> c_int {
    match r {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(code), _) => code & 0xff,
            (None, Some(sig)) => 256 + sig,
            (None, None) => crate::errors::XEV_EUNKNOWN,
        },
        Err(e) => family_code!(&e, ProcessError, NotChild => -libc::ECHILD),
    }
}

/// The result code of a wait: on Windows the whole 32-bit exit code,
/// with its top bit cleared (so that it is never negative: an exception
/// status such as `0xC0000005` arrives as `0x40000005`).
#[cfg(windows)]
fn status_code(r: Result<ExitStatus, ProcessError>) -> c_int {
    match r {
        Ok(st) => match st.code() {
            Some(code) => code & 0x7fff_ffff,
            None => crate::errors::XEV_EUNKNOWN,
        },
        Err(e) => family_code!(&e, ProcessError, NotChild => -libc::ECHILD),
    }
}

/// Initialises a process watcher on child `pid`. Returns 0, or `-ECHILD`
/// (no such child, or it was reaped already), `-EINVAL` (a pid that is not
/// positive, bad storage), `XEV_EUNSUPPORTED` (Linux without pidfds).
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage holding no
/// initialised process watcher (it would be leaked).
#[no_mangle]
pub unsafe extern "C" fn xev_process_init(w: *mut xev_watcher, pid: c_int) -> c_int {
    guard_code(|| {
        let p = Process::new(pid).map_err(|e| status_code(Err(e)))?;
        let p = Box::into_raw(Box::new(p));
        // SAFETY: forwarded contract.
        if let Err(e) = unsafe { init_watcher(w, WatcherKind::Process, crate::sys::NO_FD, None, p) }
        {
            // SAFETY: `p` was just boxed and given to nobody.
            drop(unsafe { Box::from_raw(p) });
            return Err(e);
        }
        Ok(0)
    })
}

/// Releases a process watcher (it neither kills nor reaps the child).
/// Waits still active end with `-ECANCELED` at the loop's next pass, so
/// their completions must stay valid until then.
///
/// # Safety
///
/// `w` is null or points to readable and writable `xev_watcher` storage;
/// on the thread of the loops that waited on it.
#[no_mangle]
pub unsafe extern "C" fn xev_process_deinit(w: *mut xev_watcher) {
    guard_void("xev_process_deinit", || {
        // SAFETY: forwarded contract; the box is owned by the initialised
        // storage, which is marked uninitialised before it is dropped.
        unsafe {
            let r = watcher(w, WatcherKind::Process)?;
            forget(r);
            drop(Box::from_raw(ptr::read(addr_of!((*r).process))));
        }
        Ok(())
    })
}

/// Waits for the child to exit, and reaps it: `cb` gets its status (see
/// the `XEV_PROCESS_*` macros), `-ECHILD` if something else reaped it, or
/// `-ECANCELED`. A child that has already exited is reported at the next
/// pass; once the status is known, every wait (a rearm too) reports it
/// again at once.
///
/// # Safety
///
/// `w` and `loop` point to initialised storage (or are null); `c` is null
/// or points to writable `xev_completion` storage that is not active and
/// stays valid until its callback returns `XEV_DISARM`. On the loop's
/// thread.
#[no_mangle]
pub unsafe extern "C" fn xev_process_wait(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract; the box is initialised with the watcher.
        let p = unsafe { &*ptr::read(addr_of!((*watcher(w, WatcherKind::Process)?).process)) };
        let add = |lp: &mut Loop, shared: &Rc<Shared>, h: Handle| {
            let shared = Rc::clone(shared);
            Ok(p.wait(lp, move |lp, r| {
                let code = status_code(r);
                // SAFETY: the loop calls this while the wait is active,
                // when the C contract keeps the storage valid.
                if unsafe { h.owns() && h.deliver(lp, &shared, code) } {
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
