//! The Windows side of [`crate::signal`]: console control events through
//! `SetConsoleCtrlHandler`. The handler is added with the first
//! subscription and removed with the last; it runs on a thread Windows
//! starts for the event and hands the event to the registry, claiming it
//! (so the default, ending the process, does not run) when anyone
//! subscribes to it.

use std::io;
use std::sync::{Mutex, PoisonError};

use windows_sys::core::BOOL;
use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;

use crate::error::SignalError;
use crate::signal::{CTRL_BREAK, CTRL_C, CTRL_CLOSE, CTRL_LOGOFF, CTRL_SHUTDOWN};

/// Console events subscribed to, per event number (the handler is
/// installed while any is).
static INSTALLED: Mutex<u32> = Mutex::new(0);

/// Whether `signo` is a console event xev can watch.
pub(crate) fn check(signo: i32) -> Result<(), SignalError> {
    match signo {
        CTRL_C | CTRL_BREAK | CTRL_CLOSE | CTRL_LOGOFF | CTRL_SHUTDOWN => Ok(()),
        _ => Err(SignalError::Invalid),
    }
}

/// The console control handler.
pub(crate) unsafe extern "system" fn handler(event: u32) -> BOOL {
    let signo = event as i32;
    // Claimed only if someone subscribes (else the next handler, or the
    // default, runs).
    BOOL::from(crate::signal::deliver(signo, 1))
}

/// Adds the handler when the first event is subscribed to.
pub(crate) fn install(signo: i32) -> Result<(), SignalError> {
    let mut n = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if *n == 0 {
        // SAFETY: `handler` has the signature Windows calls and lives for
        // the program.
        if unsafe { SetConsoleCtrlHandler(Some(handler), 1) } == 0 {
            return Err(SignalError::Io(io::Error::last_os_error()));
        }
    }
    *n |= 1 << signo;
    Ok(())
}

/// Removes the handler when the last event is unsubscribed.
pub(crate) fn restore(signo: i32) {
    let mut n = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    let was = *n;
    *n &= !(1 << signo);
    if was != 0 && *n == 0 {
        // SAFETY: removes the handler added in `install`.
        unsafe { SetConsoleCtrlHandler(Some(handler), 0) };
    }
}
