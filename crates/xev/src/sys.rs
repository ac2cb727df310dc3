//! Thin, direct syscall helpers shared by the loop, the readiness backends
//! and the thread pool: one attempt at an operation's syscall (which the
//! readiness backends retry when the descriptor becomes ready, and the thread
//! pool runs blocking), and the eventfd used to wake a loop.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::backend::{neg_errno, syscall_result};
use crate::completion::Core;
use crate::op::Op;

/// Creates a non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's counter. A full counter (EAGAIN) already means
/// "signaled", so that is success too.
pub(crate) fn eventfd_signal(fd: RawFd) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local.
    let r = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
    }
    Ok(())
}

/// Resets an eventfd's counter to zero (non-blocking).
pub(crate) fn eventfd_drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live local. EAGAIN (already zero) is fine.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}

/// Blocks until `fd` is readable (used only when a loop is dropped while
/// thread-pool tasks are still running).
pub(crate) fn wait_readable(fd: RawFd) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a live pollfd array of length 1.
    unsafe { libc::poll(&mut pfd, 1, -1) };
}

fn buf_ptr(buf: &mut [u8]) -> (*mut libc::c_void, usize) {
    (buf.as_mut_ptr().cast(), buf.len())
}

/// One attempt at the syscall of `core`'s operation. Returns the raw result
/// (`-EAGAIN` when a non-blocking descriptor is not ready). Connect, poll,
/// timer, noop and cancel are handled by their callers.
///
/// # Safety
/// `core` is live and not accessed elsewhere during the call.
pub(crate) unsafe fn perform(core: *mut Core) -> i32 {
    // SAFETY: the caller gives us exclusive access to a live core; every
    // pointer passed to the kernel below points into its op's buffers, which
    // live for the duration of the (synchronous) call.
    unsafe {
        let scratch = std::ptr::addr_of_mut!((*core).scratch);
        let r: isize = match &mut (*core).op {
            Op::Accept { fd } => libc::accept4(
                *fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            ) as isize,
            Op::Read { fd, buf } => {
                let (p, n) = buf_ptr(buf);
                libc::read(*fd, p, n)
            }
            Op::Write { fd, buf } => libc::write(*fd, buf.as_ptr().cast(), buf.len()),
            Op::Pread { fd, buf, offset } => {
                let (p, n) = buf_ptr(buf);
                match libc::off_t::try_from(*offset) {
                    Ok(off) => libc::pread(*fd, p, n, off),
                    Err(_) => return -libc::EINVAL,
                }
            }
            Op::Pwrite { fd, buf, offset } => match libc::off_t::try_from(*offset) {
                Ok(off) => libc::pwrite(*fd, buf.as_ptr().cast(), buf.len(), off),
                Err(_) => return -libc::EINVAL,
            },
            Op::Recv { fd, buf } => {
                let (p, n) = buf_ptr(buf);
                libc::recv(*fd, p, n, 0)
            }
            Op::Send { fd, buf } => {
                libc::send(*fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)
            }
            Op::Recvmsg(m) => {
                let hdr = m.prepare(true);
                libc::recvmsg(m.fd, hdr, 0)
            }
            Op::Sendmsg(m) => {
                let hdr = m.prepare(false);
                libc::sendmsg(m.fd, hdr, libc::MSG_NOSIGNAL)
            }
            Op::Shutdown { fd, how } => libc::shutdown(
                *fd,
                match how {
                    std::net::Shutdown::Read => libc::SHUT_RD,
                    std::net::Shutdown::Write => libc::SHUT_WR,
                    std::net::Shutdown::Both => libc::SHUT_RDWR,
                },
            ) as isize,
            Op::Close { fd } => libc::close(*fd) as isize,
            Op::AsyncWait(a) => libc::read(a.raw_fd(), scratch.cast(), 8).min(0),
            Op::Connect { .. }
            | Op::Poll { .. }
            | Op::Noop
            | Op::Timer { .. }
            | Op::Cancel { .. } => return -libc::EINVAL,
        };
        syscall_result(r)
    }
}

/// Starts a non-blocking connect. Returns 0, `-EINPROGRESS` or an error.
pub(crate) fn connect_start(fd: RawFd, addr: &socket2::SockAddr) -> i32 {
    // SAFETY: `addr` points at a valid socket address of `addr.len()` bytes.
    let r = unsafe { libc::connect(fd, addr.as_ptr().cast(), addr.len()) };
    if r < 0 {
        neg_errno()
    } else {
        0
    }
}

/// The pending error of a socket (`SO_ERROR`), as a raw result.
pub(crate) fn socket_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are live locals of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        neg_errno()
    } else {
        -err
    }
}
