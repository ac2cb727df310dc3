//! What WASI (preview 1 and 2) does its own way. WASI's libc is a POSIX
//! subset, so WASI builds the plain POSIX parts of `sys/unix` (the
//! per-operation syscalls, descriptor helpers, the `Poller` contract and
//! the leaf `types.rs`); this folder holds only the rest:
//!
//! - [`poll`]: the readiness [`Poller`](super::unix::poller::Poller) over
//!   wasi-libc's `poll(2)` (which sits on `poll_oneoff` on preview 1 and on
//!   `wasi:io/poll` on preview 2), level-triggered, bounded by the loop's
//!   timeout.
//! - [`wake`]: the loop's waker, a flag: WASI programs have one thread, so
//!   nothing can wake a loop parked in `poll`.
//! - [`fs`]: filesystem operations through `std::fs`, run inline (there is
//!   no thread pool without threads; files are always ready).
//! - [`process`] and [`resolve`]: no processes and no resolver, so typed
//!   `Unsupported` answers.
//! - [`msg`]: the message header of `sendto`/`recvfrom` (there is no
//!   `msghdr`), and `compat`: the calls and constants the `libc` crate
//!   lacks for WASI.
//! - On preview 1, which `socket2` does not support, a small [`SockAddr`].

use std::io;
use std::os::fd::{OwnedFd, RawFd};

use super::unix::FdMode;
use crate::op::{Interest, Op};

pub(crate) mod fs;
pub(crate) mod msg;
pub(crate) mod poll;
pub(crate) mod process;
pub(crate) mod resolve;
pub(crate) mod wake;
pub(crate) mod signal;

#[cfg(target_env = "p1")]
mod sockaddr;
#[cfg(target_env = "p1")]
pub use sockaddr::SockAddr;

/// The calls and constants that `sys/unix` uses and the `libc` crate does
/// not define for WASI, with wasi-libc's values.
pub(crate) mod compat {
    /// No per-call non-blocking flag on WASI: wasi-libc refuses unknown
    /// `recv`/`send` flags, so none is passed; [`socket_gate`](super::socket_gate)
    /// does the flag's work instead.
    pub(crate) const MSG_DONTWAIT: libc::c_int = 0;
    /// wasi-libc's `PIPE_BUF`.
    pub(crate) const PIPE_BUF: usize = 4096;
    /// wasi-libc's `SHUT_RD` (`__WASI_SDFLAGS_RD`).
    pub(crate) const SHUT_RD: libc::c_int = 1;
    /// wasi-libc's `SHUT_WR` (`__WASI_SDFLAGS_WR`).
    pub(crate) const SHUT_WR: libc::c_int = 2;
    /// Both halves.
    pub(crate) const SHUT_RDWR: libc::c_int = SHUT_RD | SHUT_WR;

    #[cfg(target_env = "p1")]
    extern "C" {
        /// wasi-libc's `accept` (`sock_accept`; the `libc` crate declares
        /// it for preview 2 only). The address pointers must be null.
        #[link_name = "accept"]
        fn wasi_accept(
            fd: libc::c_int,
            addr: *mut libc::c_void,
            len: *mut libc::c_void,
        ) -> libc::c_int;
    }

    /// `accept(2)` with null address pointers.
    ///
    /// # Safety
    /// `addr` and `len` are null (all `sys/unix` passes).
    #[cfg(target_env = "p1")]
    pub(crate) unsafe fn accept(
        fd: libc::c_int,
        addr: *mut libc::c_void,
        len: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: forwarded from the caller (null pointers).
        unsafe { wasi_accept(fd, addr, len) }
    }
    #[cfg(not(target_env = "p1"))]
    pub(crate) use libc::accept;

    pub(crate) use super::msg::{recvmsg, sendmsg};
}

/// The descriptor and direction of a socket call, for [`socket_gate`].
fn socket_call(op: &Op, mode: FdMode) -> Option<(RawFd, Interest, bool)> {
    let socket_mode = mode == FdMode::Socket;
    match op {
        Op::Read { fd, .. } if socket_mode => Some((*fd, Interest::READABLE, true)),
        Op::Write { fd, .. } if socket_mode => Some((*fd, Interest::WRITABLE, true)),
        Op::Recv { fd, .. } => Some((*fd, Interest::READABLE, false)),
        Op::RecvPool(r) => Some((r.fd, Interest::READABLE, false)),
        Op::Send { fd, .. } => Some((*fd, Interest::WRITABLE, false)),
        Op::Recvmsg(m) => Some((m.fd, Interest::READABLE, false)),
        Op::Sendmsg(m) => Some((m.fd, Interest::WRITABLE, false)),
        _ => None,
    }
}

/// Whether `fd` is a socket, as `fstat` says (`std`'s file-type test for
/// sockets is not stable on WASI).
pub(crate) fn is_socket(fd: RawFd) -> io::Result<bool> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // `st` is live, writable memory for one `stat`.
    syscall!(fstat(fd, st.as_mut_ptr()))?;
    // SAFETY: fstat succeeded, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

/// WASI has no pipes: `Unsupported`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "WASI has no pipes",
    ))
}

/// WASI's stand-in for `MSG_DONTWAIT`, which it lacks: before a socket
/// call (`recv`, `send`, `recvfrom`, `sendto`, and a read or write tried as
/// one), answers `Some(-ENOTSOCK)` for a read or write on something that
/// is not a socket (as the call would elsewhere; the readiness engine then
/// classifies the descriptor), and `Some(-EAGAIN)` for a blocking socket
/// that a zero-timeout `poll` does not find ready. `None`: make the call.
/// A WASI program has one thread, so nothing can take the data between
/// the poll and the call.
pub(crate) fn socket_gate(op: &Op, mode: FdMode) -> Option<i32> {
    let (fd, interest, tried_as_socket) = socket_call(op, mode)?;
    if tried_as_socket && matches!(is_socket(fd), Ok(false)) {
        return Some(-libc::ENOTSOCK);
    }
    // SAFETY: fcntl on a descriptor number takes no pointers.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 || fl & libc::O_NONBLOCK != 0 {
        return None;
    }
    let mut pfd = libc::pollfd {
        fd,
        events: interest.poll_mask() as i16,
        revents: 0,
    };
    // SAFETY: `pfd` is a live array of one pollfd.
    match unsafe { libc::poll(&mut pfd, 1, 0) } {
        0 => Some(-libc::EAGAIN),
        r if r < 0 => Some(super::unix::neg_errno()),
        _ => None,
    }
}

/// Connecting needs socket creation, which preview 1 lacks: `Unsupported`.
#[cfg(target_env = "p1")]
pub(crate) fn connect_start(_fd: RawFd, _addr: &SockAddr) -> i32 {
    crate::error::UNSUPPORTED
}

/// Never reached on preview 1 (connects are `Unsupported` at once).
#[cfg(target_env = "p1")]
pub(crate) fn socket_error(_fd: RawFd) -> i32 {
    crate::error::UNSUPPORTED
}
