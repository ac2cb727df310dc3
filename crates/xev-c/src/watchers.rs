//! `xev_watcher`: what the caller's watcher storage holds (a kind, a
//! descriptor, an async handle or a process watcher), and libxev's two
//! watchers, timers (`xev_timer_*`) and async wakeups (`xev_async_*`).
//!
//! A timer keeps nothing in its watcher (as in libxev): each run is an
//! operation on the caller's completion, a loop timer at an absolute
//! deadline. `xev_timer_reset` moves an active timer in place (the loop's
//! `timer_reset`), so its callback does not run for the old deadline, and
//! the cancel completion it is given stays unused; a dead timer is simply
//! run. Returning `XEV_REARM` from a timer callback runs it again at the
//! same, already passed deadline, hence on the loop's next pass, as in
//! libxev: to repeat after an interval, call `xev_timer_run` (or
//! `xev_timer_reset`) from the callback and return `XEV_DISARM`.

use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;
use std::ptr::{self, addr_of, addr_of_mut};
use std::rc::Rc;

use xev::Op;

use crate::boundary::{checked, guard_code, guard_void};
use crate::completion::{active, cancel, set_callback, start_op, Kind, Request};
use crate::errors::io_code;
use crate::event_loop::with_loop;
use crate::sys::NO_FD;
use crate::types::{fits, magic, xev_cb, xev_completion, xev_fd, xev_loop, xev_watcher};

/// What a watcher is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub(crate) enum WatcherKind {
    Timer = 1,
    Async = 2,
    Tcp = 3,
    Udp = 4,
    Stream = 5,
    File = 6,
    Process = 7,
    Signal = 8,
}

/// What the caller's `xev_watcher` holds.
#[repr(C)]
pub(crate) struct WatcherRepr {
    pub(crate) magic: u64,
    pub(crate) kind: u32,
    /// The descriptor of a socket, stream or file watcher (`NO_FD` once
    /// closed).
    pub(crate) fd: xev_fd,
    /// An async watcher's handle.
    pub(crate) handle: MaybeUninit<xev::Async>,
    /// A process watcher's `Box<Process>`.
    pub(crate) process: *mut crate::process::Process,
    /// A signal watcher's `Box<Rc<Signal>>`.
    pub(crate) signal: *mut Rc<crate::signal::Signal>,
}

const _: () = assert!(fits::<WatcherRepr>(xev_watcher::SIZE));

/// Writes an initialised watcher of `kind` into the storage at `w`.
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage.
pub(crate) unsafe fn init_watcher(
    w: *mut xev_watcher,
    kind: WatcherKind,
    fd: xev_fd,
    handle: Option<xev::Async>,
    process: *mut crate::process::Process,
) -> Result<*mut WatcherRepr, c_int> {
    let r = checked::<_, WatcherRepr>(w)?;
    let handle = handle.map_or(MaybeUninit::uninit(), MaybeUninit::new);
    // SAFETY: non-null, aligned and writable, per the contract.
    unsafe {
        r.write(WatcherRepr {
            magic: magic::WATCHER,
            kind: kind as u32,
            fd,
            handle,
            process,
            signal: ptr::null_mut(),
        })
    };
    Ok(r)
}

/// The storage at `w` if it holds an initialised watcher of `kind`;
/// `-EINVAL` otherwise.
///
/// # Safety
///
/// `w` is null or points to readable `xev_watcher` storage.
pub(crate) unsafe fn watcher(
    w: *const xev_watcher,
    kind: WatcherKind,
) -> Result<*mut WatcherRepr, c_int> {
    let r = checked::<_, WatcherRepr>(w)?;
    // SAFETY: non-null, aligned and readable.
    unsafe {
        if ptr::read(addr_of!((*r).magic)) != magic::WATCHER
            || ptr::read(addr_of!((*r).kind)) != kind as u32
        {
            return Err(-libc::EINVAL);
        }
    }
    Ok(r)
}

/// Marks the watcher at `r` uninitialised.
///
/// # Safety
///
/// `r` came from [`watcher`] and is writable.
pub(crate) unsafe fn forget(r: *mut WatcherRepr) {
    // SAFETY: per the contract.
    unsafe { ptr::write(addr_of_mut!((*r).magic), 0) };
}

/// Initialises a timer watcher. Always returns 0 for valid storage
/// (`-EINVAL` for a null or misaligned pointer).
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_timer_init(w: *mut xev_watcher) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract.
        unsafe { init_watcher(w, WatcherKind::Timer, NO_FD, None, ptr::null_mut())? };
        Ok(0)
    })
}

/// Releases a timer watcher (it holds nothing; its timers keep running
/// on their completions).
///
/// # Safety
///
/// `w` is null or points to readable and writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_timer_deinit(w: *mut xev_watcher) {
    guard_void("xev_timer_deinit", || {
        // SAFETY: forwarded contract.
        unsafe { forget(watcher(w, WatcherKind::Timer)?) };
        Ok(())
    })
}

/// Starts a timer on completion `c` that fires `next_ms` milliseconds from
/// the loop's now: `cb` then gets 0, or `-ECANCELED` if it was canceled.
/// Does nothing (with a message on standard error) when the watcher, loop
/// or callback is invalid.
///
/// # Safety
///
/// `w` and `loop` point to storage their `init` functions initialised (or
/// are null); `c` is null or points to writable `xev_completion` storage
/// that is not active and stays valid until its callback returns
/// `XEV_DISARM`. On the loop's thread.
#[no_mangle]
pub unsafe extern "C" fn xev_timer_run(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    next_ms: u64,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) {
    guard_void("xev_timer_run", || {
        // SAFETY: forwarded contract.
        unsafe { run(w, loop_, c, next_ms, userdata, cb) }.map(drop)
    })
}

/// `xev_timer_run`.
///
/// # Safety
///
/// As [`xev_timer_run`].
unsafe fn run(
    w: *mut xev_watcher,
    l: *mut xev_loop,
    c: *mut xev_completion,
    next_ms: u64,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> Result<c_int, c_int> {
    // SAFETY: forwarded contract.
    unsafe { watcher(w, WatcherKind::Timer)? };
    let mut req = Request::new(cb, userdata);
    req.kind = Kind::Timer;
    // SAFETY: forwarded contract.
    unsafe {
        start_op(l, c, req, |lp, _| {
            Ok(Op::timer(lp.now().saturating_add(next_ms)))
        })
    }
}

/// Moves the timer on `c` to fire `next_ms` milliseconds from now with
/// callback `cb` and `userdata`: an active timer is moved (its callback
/// does not run for the old deadline), a dead one is started as by
/// `xev_timer_run`. `c_cancel` is not used (libxev may use it to cancel
/// the old timer; it stays as it is here). `c` must be zeroed with
/// `xev_completion_zero` or have been used before, as in libxev.
///
/// # Safety
///
/// As `xev_timer_run`; `c_cancel` is not read.
#[no_mangle]
pub unsafe extern "C" fn xev_timer_reset(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    c_cancel: *mut xev_completion,
    next_ms: u64,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) {
    let _ = c_cancel;
    guard_void("xev_timer_reset", || {
        // SAFETY: forwarded contract.
        unsafe { watcher(w, WatcherKind::Timer)? };
        let cb_checked = cb.ok_or(-libc::EINVAL)?;
        // SAFETY: forwarded contract.
        if let Some((Kind::Timer, id)) = unsafe { active(c) } {
            // SAFETY: forwarded contract.
            let moved = unsafe {
                with_loop(loop_, |lp, _| {
                    let deadline = lp.now().saturating_add(next_ms);
                    lp.timer_reset(id, deadline)
                })?
            };
            if moved.is_ok() {
                // SAFETY: `c` is active.
                unsafe { set_callback(c, cb_checked, userdata) };
                return Ok(());
            }
        }
        // SAFETY: forwarded contract.
        unsafe { run(w, loop_, c, next_ms, userdata, cb) }.map(drop)
    })
}

/// Cancels the timer running on `c` (it need not be a timer started from
/// `w`): its callback runs with `-ECANCELED`. `cb` runs on `c_cancel` with
/// 0, `-ENOENT` (nothing active on `c`) or `-EALREADY` (it had fired).
///
/// # Safety
///
/// `w` and `loop` as for `xev_timer_run`; `c` is null or points to
/// readable `xev_completion` storage; `c_cancel` to writable storage that
/// is not active and stays valid until its callback returns `XEV_DISARM`.
#[no_mangle]
pub unsafe extern "C" fn xev_timer_cancel(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    c_cancel: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) {
    guard_void("xev_timer_cancel", || {
        // SAFETY: forwarded contract.
        unsafe { watcher(w, WatcherKind::Timer)? };
        // SAFETY: forwarded contract.
        unsafe { cancel(loop_, c, c_cancel, userdata, cb) }.map(drop)
    })
}

/// Initialises an async watcher: a wakeup that any thread may send with
/// `xev_async_notify` and a loop waits for with `xev_async_wait`. Returns
/// 0 (`-EINVAL` for a null or misaligned pointer).
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage that holds no
/// initialised async watcher (it would be leaked).
#[no_mangle]
pub unsafe extern "C" fn xev_async_init(w: *mut xev_watcher) -> c_int {
    guard_code(|| {
        let handle = xev::Async::new().map_err(|e| io_code(&e))?;
        // SAFETY: forwarded contract.
        unsafe { init_watcher(w, WatcherKind::Async, NO_FD, Some(handle), ptr::null_mut())? };
        Ok(0)
    })
}

/// Releases an async watcher. A wait on it that is still active stays
/// active (holding its own reference), but nothing can notify it any more:
/// cancel it first.
///
/// # Safety
///
/// `w` is null or points to readable and writable `xev_watcher` storage;
/// no other thread uses the watcher during or after the call.
#[no_mangle]
pub unsafe extern "C" fn xev_async_deinit(w: *mut xev_watcher) {
    guard_void("xev_async_deinit", || {
        // SAFETY: forwarded contract.
        unsafe {
            let r = watcher(w, WatcherKind::Async)?;
            forget(r);
            ptr::drop_in_place(addr_of_mut!((*r).handle).cast::<xev::Async>());
        }
        Ok(())
    })
}

/// Wakes the loop waiting on `w` (now, or at its next wait): its wait's
/// callback runs once however many notifies came before it. Any thread may
/// call it, any number of times. Returns 0, or a negative error code.
///
/// # Safety
///
/// `w` is null or points to readable `xev_watcher` storage, initialised
/// by `xev_async_init` and not deinitialised before this returns.
#[no_mangle]
pub unsafe extern "C" fn xev_async_notify(w: *mut xev_watcher) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract; the handle is initialised for an
        // async watcher, and `Async` is `Sync`.
        let handle =
            unsafe { &*addr_of!((*watcher(w, WatcherKind::Async)?).handle).cast::<xev::Async>() };
        handle.notify().map(|()| 0).map_err(|e| io_code(&e))
    })
}

/// Waits on `loop` until `w` is notified: `cb` gets 0 once per wakeup
/// (returning `XEV_REARM` waits again), or `-ECANCELED`.
///
/// # Safety
///
/// `w` and `loop` point to initialised storage (or are null); `c` is null
/// or points to writable `xev_completion` storage that is not active and
/// stays valid until its callback returns `XEV_DISARM`. On the loop's
/// thread.
#[no_mangle]
pub unsafe extern "C" fn xev_async_wait(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) {
    guard_void("xev_async_wait", || {
        // SAFETY: forwarded contract; the handle is initialised for an
        // async watcher.
        let handle = unsafe {
            (*addr_of!((*watcher(w, WatcherKind::Async)?).handle).cast::<xev::Async>()).clone()
        };
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, Request::new(cb, userdata), |_, _| {
                Ok(Op::AsyncWait(handle))
            })
        }
        .map(drop)
    })
}

/// The descriptor of a TCP, UDP, stream or file watcher: -1 once it was
/// closed, `-EINVAL` for any other watcher.
///
/// # Safety
///
/// `w` is null or points to readable `xev_watcher` storage.
#[cfg(unix)]
#[no_mangle]
pub unsafe extern "C" fn xev_watcher_fd(w: *const xev_watcher) -> xev_fd {
    // SAFETY: forwarded contract.
    guard_code(|| unsafe { watcher_fd(w) })
}

/// The handle of a TCP, UDP, stream or file watcher (a `SOCKET` or
/// `HANDLE`): `XEV_INVALID_FD` once it was closed, and for any other
/// watcher.
///
/// # Safety
///
/// `w` is null or points to readable `xev_watcher` storage.
#[cfg(windows)]
#[no_mangle]
pub unsafe extern "C" fn xev_watcher_fd(w: *const xev_watcher) -> xev_fd {
    // SAFETY: forwarded contract.
    crate::boundary::guard(NO_FD, || unsafe { watcher_fd(w) }.unwrap_or(NO_FD))
}

/// The descriptor of the watcher at `w`, if it has a descriptor.
///
/// # Safety
///
/// `w` is null or points to readable `xev_watcher` storage.
unsafe fn watcher_fd(w: *const xev_watcher) -> Result<xev_fd, c_int> {
    let r = checked::<_, WatcherRepr>(w)?;
    // SAFETY: non-null, aligned and readable.
    unsafe {
        if ptr::read(addr_of!((*r).magic)) != magic::WATCHER {
            return Err(-libc::EINVAL);
        }
        match ptr::read(addr_of!((*r).kind)) {
            3..=6 => Ok(ptr::read(addr_of!((*r).fd))),
            _ => Err(-libc::EINVAL),
        }
    }
}
