//! The C API's platform glue: what a descriptor is in C (`xev_fd`: an
//! `int` on Unix, a `SOCKET` or `HANDLE` as `uintptr_t` on Windows), C
//! socket addresses, creating, adopting, binding and listening on
//! sockets, and the raw error code of a failed system call (a negated
//! errno value; on Windows the Win32 or WinSock code mapped to the C
//! runtime's errno value, see [`crate::errors`]). Everything else in the
//! crate is the same on every platform.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

/// Whether a socket type is a stream or a datagram socket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SockType {
    Stream,
    Datagram,
}
