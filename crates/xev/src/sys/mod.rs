//! The operating system boundary. Only this folder calls the OS (the
//! io_uring backend talks to the kernel through the `io-uring` crate's ring
//! instead); everything above it, the loop, the readiness machinery and the
//! watchers, calls the functions here. One folder per platform family:
//! `unix` today (with Linux- and BSD-specific parts inside); `windows` and
//! `wasi` go beside it.
//!
//! `syscall!` is the one way a libc call that returns -1 on error is made
//! here: it gives an `io::Result` of the call's value. It is in scope in
//! every module below this one (textual macro scope).

/// Calls `libc::$fn(args..)` and returns `Ok(value)`, or
/// `Err(io::Error::last_os_error())` when it returned -1.
#[cfg(unix)]
macro_rules! syscall {
    ($fn:ident($($arg:expr),* $(,)?)) => {{
        // SAFETY: the caller's `syscall!` site states why the call is sound
        // (arguments are plain integers or point at live, sized memory).
        let r = unsafe { libc::$fn($($arg),*) };
        if r == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }};
}

#[cfg(unix)]
pub(crate) mod unix;
#[cfg(unix)]
pub(crate) use unix::*;
#[cfg(windows)]
pub(crate) mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
