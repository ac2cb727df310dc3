//! Signals on WASI: there are none (no `sigaction`, no second thread to
//! dispatch them), so every subscription answers `Unsupported`.

use crate::error::SignalError;

/// Every signal: `Unsupported`.
pub(crate) fn check(_signo: i32) -> Result<(), SignalError> {
    Err(SignalError::Unsupported)
}

/// Never reached ([`check`] refuses every number first).
pub(crate) fn install(_signo: i32) -> Result<(), SignalError> {
    Err(SignalError::Unsupported)
}

/// Nothing was installed.
pub(crate) fn restore(_signo: i32) {}
