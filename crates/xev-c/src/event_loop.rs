//! `xev_loop`: the caller's storage holds a pointer to a boxed xev loop and
//! to the C API's per-loop state (`Shared`); the `xev_loop_*` functions.
//!
//! A C callback may call back into the API with the `xev_loop*` it got
//! (to start operations, run the loop nested, read the clock). The loop is
//! then already borrowed by the run that called the callback, so the API
//! must not borrow it again from its box: while a C callback runs, the
//! loop reference the callback was given is parked in
//! `Shared::current`, and every API call on that loop goes through it.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int};
use std::mem::ManuallyDrop;
use std::ptr::{self, addr_of, addr_of_mut, NonNull};
use std::rc::Rc;

use crate::boundary::{checked, guard, guard_code, guard_void};
use crate::errors::io_code;
use crate::types::{fits, magic, xev_loop, xev_threadpool};

/// The backend the C API runs on: the target's default (on Linux,
/// io_uring or epoll, chosen at run time; `XEV_BACKEND` forces one), or
/// kqueue through libkqueue when built with `--cfg xev_libkqueue`.
#[cfg(not(xev_libkqueue))]
pub type Backend = xev::DefaultBackend;
/// The backend the C API runs on: kqueue through libkqueue.
#[cfg(xev_libkqueue)]
pub type Backend = xev::backend::kqueue::Kqueue;

/// The loop view callbacks get.
pub(crate) type Loop = xev::generic::Loop<Backend>;
type OwnedLoop = xev::generic::OwnedLoop<Backend>;

/// What the caller's `xev_loop` holds.
#[repr(C)]
struct LoopRepr {
    magic: u64,
    /// `Box<OwnedLoop>`, owned by the storage until `xev_loop_deinit`.
    owned: *mut OwnedLoop,
    /// `Rc<Shared>` (one strong count), likewise.
    shared: *const Shared,
}

const _: () = assert!(fits::<LoopRepr>(xev_loop::SIZE));

/// The C API's state for one loop, shared by the loop's storage and every
/// callback of its operations.
pub(crate) struct Shared {
    /// The loop reference of the C callback that is running, if one is.
    current: Cell<Option<NonNull<Loop>>>,
    /// Byte buffers that operations lent to the kernel, for reuse.
    bufs: RefCell<Vec<Vec<u8>>>,
}

/// At most this many buffers are kept per loop for reuse.
const KEPT_BUFFERS: usize = 64;
/// Buffers larger than this are not kept.
const KEPT_BUFFER_MAX: usize = 1 << 20;

impl Shared {
    /// A buffer of `len` bytes (contents unspecified), reusing a kept one.
    pub(crate) fn buffer(&self, len: usize) -> Vec<u8> {
        let mut v = self.bufs.borrow_mut().pop().unwrap_or_default();
        if v.len() >= len {
            v.truncate(len);
        } else {
            v.resize(len, 0);
        }
        v
    }

    /// A buffer holding a copy of `data`, reusing a kept one.
    pub(crate) fn copy_of(&self, data: &[u8]) -> Vec<u8> {
        let mut v = self.bufs.borrow_mut().pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(data);
        v
    }

    /// Keeps `v` for reuse.
    pub(crate) fn keep(&self, v: Vec<u8>) {
        let mut bufs = self.bufs.borrow_mut();
        if v.capacity() > 0 && v.capacity() <= KEPT_BUFFER_MAX && bufs.len() < KEPT_BUFFERS {
            bufs.push(v);
        }
    }

    /// Runs `f` (a C callback) with `lp` as the loop API calls use, and
    /// restores the previous one afterwards, even if `f` unwinds.
    pub(crate) fn with_current<R>(&self, lp: &mut Loop, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a Shared, Option<NonNull<Loop>>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.current.set(self.1);
            }
        }
        let _restore = Restore(self, self.current.replace(Some(NonNull::from(lp))));
        f()
    }
}

/// Runs `f` with the loop behind `l` and its [`Shared`] state: the loop
/// of the running C callback if there is one, else the loop in its box.
///
/// # Safety
///
/// `l` is null, or points to `xev_loop` storage that is readable (it is
/// only trusted once its magic number says `xev_loop_init` initialised
/// it), on the loop's thread.
pub(crate) unsafe fn with_loop<R>(
    l: *mut xev_loop,
    f: impl FnOnce(&mut Loop, &Rc<Shared>) -> R,
) -> Result<R, c_int> {
    let r = checked::<_, LoopRepr>(l)?;
    // SAFETY: `r` is non-null and aligned, and the caller guarantees the
    // storage is readable; the magic number says whether the other fields
    // were written by `xev_loop_init`.
    unsafe {
        if ptr::read(addr_of!((*r).magic)) != magic::LOOP {
            return Err(-libc::EINVAL);
        }
        // The storage owns one strong count; borrow it without taking it.
        let shared = ManuallyDrop::new(Rc::from_raw(ptr::read(addr_of!((*r).shared))));
        let lp: &mut Loop = match shared.current.get() {
            // A C callback of this loop is running: its loop reference is
            // the one to use (the run that called it holds the box's).
            Some(mut p) => p.as_mut(),
            // Nothing runs this loop now: the box is not borrowed.
            None => &mut *ptr::read(addr_of!((*r).owned)),
        };
        Ok(f(lp, &shared))
    }
}

fn new_loop(pool: Option<xev::ThreadPool>) -> Result<(OwnedLoop, Rc<Shared>), c_int> {
    let pool = match pool {
        Some(p) => p,
        None => xev::ThreadPool::new(xev::ThreadPoolConfig::default()).map_err(|e| io_code(&e))?,
    };
    let opts = xev::Options {
        thread_pool: Some(pool),
        // A C program may create a loop on one thread and run it on
        // another (libxev allows it): no single-issuer ring.
        io_uring_single_issuer: false,
        ..Default::default()
    };
    let lp = OwnedLoop::new(opts).map_err(|e| io_code(&e))?;
    let shared = Rc::new(Shared {
        current: Cell::new(None),
        bufs: RefCell::new(Vec::new()),
    });
    Ok((lp, shared))
}

/// Writes a new loop into the storage at `l`.
///
/// # Safety
///
/// `l` is null or points to writable `xev_loop` storage.
unsafe fn init(l: *mut xev_loop, pool: Option<xev::ThreadPool>) -> Result<c_int, c_int> {
    let r = checked::<_, LoopRepr>(l)?;
    let (lp, shared) = new_loop(pool)?;
    let repr = LoopRepr {
        magic: magic::LOOP,
        owned: Box::into_raw(Box::new(lp)),
        shared: Rc::into_raw(shared),
    };
    // SAFETY: `r` is non-null, aligned, and writable (the caller's word).
    unsafe { r.write(repr) };
    Ok(0)
}

/// Initialises a loop in the caller's storage. Returns 0, or a negative
/// error code (nothing was initialised then).
///
/// The loop runs file work that its backend cannot do in the kernel (on
/// epoll and kqueue) on a thread pool of its own, whose threads start
/// only when such work comes. The loop must stay where it is, and be used
/// only on this thread, until `xev_loop_deinit`.
///
/// # Safety
///
/// `loop` is null (`-EINVAL`) or points to `XEV_SIZEOF_LOOP` writable bytes
/// that hold no initialised loop (one would be leaked).
#[no_mangle]
pub unsafe extern "C" fn xev_loop_init(loop_: *mut xev_loop) -> c_int {
    // SAFETY: forwarded contract.
    guard_code(|| unsafe { init(loop_, None) })
}

/// Initialises a loop like `xev_loop_init`, whose file work runs on `pool`
/// (which may be shared by several loops). The loop keeps its own handle
/// of the pool: `xev_threadpool_deinit` then waits for the loop's work too.
///
/// # Safety
///
/// As `xev_loop_init`; `pool` is null (`-EINVAL`) or points to readable
/// `xev_threadpool` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_loop_init_with_threadpool(
    loop_: *mut xev_loop,
    pool: *mut xev_threadpool,
) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract.
        let pool = unsafe { crate::thread_pool::handle(pool)? };
        // SAFETY: forwarded contract.
        unsafe { init(loop_, Some(pool)) }
    })
}

/// Destroys a loop. Operations still active are dropped without their
/// callbacks (their completions' storage is not touched again); their
/// kernel work is stopped first. Must not be called from one of the
/// loop's own callbacks (that call is ignored, with a message on standard
/// error). A loop that is not initialised is left alone, so a second
/// `xev_loop_deinit` is harmless.
///
/// # Safety
///
/// `loop` is null or points to readable and writable `xev_loop` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_loop_deinit(loop_: *mut xev_loop) {
    guard_void("xev_loop_deinit", || {
        let r = checked::<_, LoopRepr>(loop_)?;
        // SAFETY: `r` is non-null and aligned; its fields are trusted only
        // after the magic number; `with_loop` checks the same.
        unsafe {
            if ptr::read(addr_of!((*r).magic)) != magic::LOOP {
                return Err(-libc::EINVAL);
            }
            let shared = Rc::from_raw(ptr::read(addr_of!((*r).shared)));
            if shared.current.get().is_some() {
                // A callback of this loop is running: the loop is borrowed.
                let _ = Rc::into_raw(shared);
                return Err(-libc::EBUSY);
            }
            ptr::write(addr_of_mut!((*r).magic), 0);
            drop(Box::from_raw(ptr::read(addr_of!((*r).owned))));
            drop(shared);
        }
        Ok(())
    })
}

/// Runs the loop: `XEV_RUN_NO_WAIT` (one pass, never blocks),
/// `XEV_RUN_ONCE` (until at least one callback ran) or
/// `XEV_RUN_UNTIL_DONE` (until no operation is active, or
/// `xev_loop_stop`). Returns 0, or a negative error code when the kernel
/// interface failed (operations report their own errors to their
/// callbacks), `-EINVAL` for a bad mode or loop, `XEV_EPANIC` after a
/// caught panic. A callback may run its loop again (nested).
///
/// # Safety
///
/// `loop` is null or points to `xev_loop` storage; on the loop's thread.
#[no_mangle]
pub unsafe extern "C" fn xev_loop_run(loop_: *mut xev_loop, mode: c_int) -> c_int {
    guard_code(|| {
        let mode = match mode {
            0 => xev::RunMode::NoWait,
            1 => xev::RunMode::Once,
            2 => xev::RunMode::UntilDone,
            _ => return Err(-libc::EINVAL),
        };
        // SAFETY: forwarded contract.
        unsafe { with_loop(loop_, |lp, _| lp.run(mode)) }?
            .map(|()| 0)
            .map_err(|e| io_code(&e))
    })
}

/// The loop's clock in milliseconds: monotonic, counted from when the loop
/// was created (libxev counts from the system's monotonic epoch; both only
/// make sense as differences). In a callback it is the time cached when
/// the current pass of the loop started. 0 for a loop that is not
/// initialised.
///
/// # Safety
///
/// `loop` is null or points to `xev_loop` storage; on the loop's thread.
#[no_mangle]
pub unsafe extern "C" fn xev_loop_now(loop_: *mut xev_loop) -> i64 {
    guard(0, || {
        // SAFETY: forwarded contract.
        unsafe { with_loop(loop_, |lp, _| lp.now()) }
            .map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX))
    })
}

/// Refreshes the cached clock that `xev_loop_now` returns in callbacks.
///
/// # Safety
///
/// `loop` is null or points to `xev_loop` storage; on the loop's thread.
#[no_mangle]
pub unsafe extern "C" fn xev_loop_update_now(loop_: *mut xev_loop) {
    guard_void("xev_loop_update_now", || {
        // SAFETY: forwarded contract.
        unsafe { with_loop(loop_, |lp, _| lp.update_now()) }
    })
}

/// Ends the current `xev_loop_run` once the running callback returns (or
/// before its next wait); active operations stay active.
///
/// # Safety
///
/// `loop` is null or points to `xev_loop` storage; on the loop's thread.
#[no_mangle]
pub unsafe extern "C" fn xev_loop_stop(loop_: *mut xev_loop) {
    guard_void("xev_loop_stop", || {
        // SAFETY: forwarded contract.
        unsafe { with_loop(loop_, |lp, _| lp.stop()) }
    })
}

/// The name of the loop's backend ("io_uring", "epoll", "kqueue", "iocp"),
/// a static string; NULL for a loop that is not initialised.
///
/// # Safety
///
/// `loop` is null or points to `xev_loop` storage; on the loop's thread.
#[no_mangle]
pub unsafe extern "C" fn xev_loop_backend(loop_: *mut xev_loop) -> *const c_char {
    guard(ptr::null(), || {
        // SAFETY: forwarded contract.
        let name = unsafe { with_loop(loop_, |lp, _| lp.backend_name()) };
        match name {
            Ok("io_uring") => c"io_uring".as_ptr(),
            Ok("epoll") => c"epoll".as_ptr(),
            Ok("kqueue") => c"kqueue".as_ptr(),
            Ok("iocp") => c"iocp".as_ptr(),
            Ok(_) => c"unknown".as_ptr(),
            Err(_) => ptr::null(),
        }
    })
}
