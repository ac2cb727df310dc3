//! The operating system boundary. Only this folder calls the OS (the
//! io_uring backend talks to the kernel through the `io-uring` crate's ring
//! instead); everything above it, the loop, the readiness machinery and the
//! watchers, calls the functions here. One folder per platform family:
//! `unix` (with Linux- and BSD-specific parts inside), `windows`, and
//! `wasi`, which holds only what WASI does its own way: WASI's libc is a
//! POSIX subset, so WASI builds the plain POSIX parts of `unix` too (each
//! Linux-, BSD- or process-only item there is gated to `unix`).
//!
//! `syscall!` is the one way a libc call that returns -1 on error is made
//! here: it gives an `io::Result` of the call's value. It is in scope in
//! every module below this one (textual macro scope).

/// Calls `libc::$fn(args..)` and returns `Ok(value)`, or
/// `Err(io::Error::last_os_error())` when it returned -1.
#[cfg(any(unix, target_os = "wasi"))]
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

#[cfg(any(unix, target_os = "wasi"))]
pub(crate) mod unix;
#[cfg(any(unix, target_os = "wasi"))]
pub(crate) use unix::*;
#[cfg(target_os = "wasi")]
pub(crate) mod wasi;
#[cfg(windows)]
pub(crate) mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
