//! What every exported function does at the C boundary: catch panics
//! ([`guard`]), check pointers ([`checked`]), and say why a function that
//! returns nothing did nothing ([`complain`]).

use std::ffi::c_int;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};

use crate::errors::XEV_EPANIC;

/// Runs `f`, turning a panic into `fail` (the panic hook has already
/// printed its message): nothing unwinds into C.
pub(crate) fn guard<R>(fail: R, f: impl FnOnce() -> R) -> R {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(fail)
}

/// [`guard`] for functions that return an error code.
pub(crate) fn guard_code(f: impl FnOnce() -> Result<c_int, c_int>) -> c_int {
    guard(XEV_EPANIC, || f().unwrap_or_else(|e| e))
}

/// [`guard`] for functions that return nothing: an error is reported on
/// standard error, with the function's name.
pub(crate) fn guard_void(name: &str, f: impl FnOnce() -> Result<(), c_int>) {
    if let Err(code) = guard(Err(XEV_EPANIC), f) {
        complain(name, code);
    }
}

/// One line on standard error (never panics, even if stderr is closed).
pub(crate) fn complain(name: &str, code: c_int) {
    let _ = writeln!(
        std::io::stderr(),
        "xev: {name}: {}",
        crate::errors::describe(code).to_string_lossy()
    );
}

/// `p` cast to `T` when it is non-null and aligned for `T`; `-EINVAL`
/// otherwise.
pub(crate) fn checked<S, T>(p: *const S) -> Result<*mut T, c_int> {
    if p.is_null() || (p as usize) % std::mem::align_of::<T>() != 0 {
        Err(-libc::EINVAL)
    } else {
        Ok(p.cast_mut().cast())
    }
}
