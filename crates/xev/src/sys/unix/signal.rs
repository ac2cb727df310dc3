//! The Unix side of [`crate::signal`]: the `sigaction` handler (which only
//! counts the signal and writes a byte to a pipe), the saved actions it
//! restores, and the dispatcher thread that reads the pipe and hands the
//! counts to the registry.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::error::SignalError;

/// Signal numbers this module can hold (Linux's real-time signals end at
/// 64; the BSDs' and macOS's below).
const MAX: usize = 65;

/// Occurrences counted by the handler and not yet dispatched, per signal.
static PENDING: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];

/// The pipe's write end, for the handler (-1 until the pipe exists).
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// The pipe, made once, with the dispatcher thread that reads it.
static DISPATCHER: OnceLock<Result<(), i32>> = OnceLock::new();

/// The actions in place before xev's handler, per signal, while installed.
static SAVED: Mutex<[Option<SavedAction>; MAX]> = Mutex::new([const { None }; MAX]);

/// A `sigaction` as it was.
struct SavedAction(libc::sigaction);

// SAFETY: a `sigaction` is plain data (a handler address, a mask, flags);
// it is only handed back to the kernel.
unsafe impl Send for SavedAction {}

/// Whether `signo` can be watched.
pub(crate) fn check(signo: i32) -> Result<(), SignalError> {
    let forbidden = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
    ];
    if signo <= 0 || signo as usize >= MAX || forbidden.contains(&signo) {
        return Err(SignalError::Invalid);
    }
    Ok(())
}

/// The handler: counts the signal and wakes the dispatcher. Only
/// async-signal-safe calls (an atomic add, `write`), with `errno` kept.
extern "C" fn handler(signo: libc::c_int) {
    let Some(slot) = PENDING.get(signo as usize) else {
        return;
    };
    slot.fetch_add(1, Ordering::AcqRel);
    let fd = PIPE_WRITE.load(Ordering::Acquire);
    if fd >= 0 {
        let errno = errno_location();
        // SAFETY: `errno_location` points at this thread's errno.
        let saved = unsafe { *errno };
        let byte = signo as u8;
        // SAFETY: writes one byte from a live local; the pipe is
        // non-blocking, so a full pipe (a wake already pending) just fails.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        // SAFETY: as above.
        unsafe { *errno = saved };
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: returns this thread's errno address; no preconditions.
    unsafe { libc::__errno_location() }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: returns this thread's errno address; no preconditions.
    unsafe { libc::__error() }
}

/// Makes the pipe and starts the dispatcher thread, once.
fn start_dispatcher() -> Result<(), SignalError> {
    let r = DISPATCHER.get_or_init(|| {
        // Both ends non-blocking: the handler never waits, and the
        // dispatcher polls before it drains.
        let (r, w) = super::fd::pipe().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let spawned = std::thread::Builder::new()
            .name("xev-signals".into())
            .spawn(move || dispatch(r));
        match spawned {
            Ok(_) => {
                // The write end lives as long as the process.
                PIPE_WRITE.store(std::os::fd::IntoRawFd::into_raw_fd(w), Ordering::Release);
                Ok(())
            }
            Err(e) => Err(e.raw_os_error().unwrap_or(libc::EAGAIN)),
        }
    });
    r.map_err(|e| SignalError::Io(io::Error::from_raw_os_error(e)))
}

/// The dispatcher: waits for the handler's bytes, then hands every
/// signal's count to the registry.
fn dispatch(pipe: std::os::fd::OwnedFd) {
    let fd: RawFd = std::os::fd::AsRawFd::as_raw_fd(&pipe);
    let mut buf = [0u8; 64];
    loop {
        super::fd::wait_readable(fd);
        // Drain the wakes (one per signal since the last drain at most).
        // SAFETY: reads into a live local buffer of its length.
        while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        for (signo, slot) in PENDING.iter().enumerate() {
            let count = slot.swap(0, Ordering::AcqRel);
            if count > 0 {
                crate::signal::deliver(signo as i32, u64::from(count));
            }
        }
    }
}

/// Installs xev's handler for `signo`, keeping the action in place.
pub(crate) fn install(signo: i32) -> Result<(), SignalError> {
    start_dispatcher()?;
    let mut saved = SAVED.lock().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: an all-zero sigaction is a valid value to fill in.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
    new.sa_flags = libc::SA_RESTART;
    // SAFETY: `new.sa_mask` is a live sigset_t.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    let mut old = MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: both pointers are valid; `signo` was checked.
    if unsafe { libc::sigaction(signo, &new, old.as_mut_ptr()) } != 0 {
        return Err(SignalError::Io(io::Error::last_os_error()));
    }
    // SAFETY: sigaction succeeded and filled `old`.
    saved[signo as usize] = Some(SavedAction(unsafe { old.assume_init() }));
    Ok(())
}

/// Puts back the action `signo` had before [`install`].
pub(crate) fn restore(signo: i32) {
    let mut saved = SAVED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(SavedAction(old)) = saved.get_mut(signo as usize).and_then(Option::take) {
        // SAFETY: `old` is the action the kernel gave us for this signal.
        unsafe { libc::sigaction(signo, &old, std::ptr::null_mut()) };
    }
}
