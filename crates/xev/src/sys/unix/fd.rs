//! Descriptor basics that everything else in `sys/unix` builds on and that
//! depend on nothing of xev's: pipes, non-blocking and close-on-exec
//! flags, waiting for readability, closing, and turning a syscall's return
//! value into a raw result.

use std::io;
use std::os::fd::RawFd;
#[cfg(unix)]
use std::os::fd::{FromRawFd, OwnedFd};

/// A non-blocking, close-on-exec pipe: (read end, write end).
#[cfg(unix)]
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // `fds` is a live array of two ints for the kernel to fill.
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        syscall!(pipe(fds.as_mut_ptr()))?;
        for fd in fds {
            set_nonblocking_cloexec(fd)?;
        }
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Closes `fd`, ignoring the result (for descriptors nothing else will
/// close, when the loop is dropped).
pub(crate) fn close_quietly(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: close takes an integer; the caller owns `fd`.
        unsafe { libc::close(fd) };
    }
}

/// Sets `O_NONBLOCK` on `fd`'s open file description (other descriptors
/// sharing it see the change).
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // wasi-libc's fcntl cannot change a preview 2 socket's mode; its
    // FIONBIO can (and does any descriptor's on preview 1).
    #[cfg(target_os = "wasi")]
    {
        let mut on: libc::c_int = 1;
        // `on` is a live int that ioctl reads.
        if syscall!(ioctl(fd, libc::FIONBIO, &mut on)).is_ok() {
            return Ok(());
        }
    }
    // fcntl's F_GETFL and F_SETFL take integers only.
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    if flags & libc::O_NONBLOCK == 0 {
        syscall!(fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Sets `O_NONBLOCK` and `FD_CLOEXEC` on `fd`.
#[cfg_attr(any(target_os = "linux", target_os = "freebsd"), allow(dead_code))]
pub(crate) fn set_nonblocking_cloexec(fd: RawFd) -> io::Result<()> {
    set_nonblocking(fd)?;
    // WASI has no exec.
    #[cfg(unix)]
    {
        // fcntl's F_GETFD and F_SETFD take integers only.
        let fd_fl = syscall!(fcntl(fd, libc::F_GETFD))?;
        syscall!(fcntl(fd, libc::F_SETFD, fd_fl | libc::FD_CLOEXEC))?;
    }
    Ok(())
}

/// Blocks until `fd` is readable (when a loop is dropped while thread-pool
/// tasks are still running; the signal dispatcher between signals).
#[cfg(unix)]
pub(crate) fn wait_readable(fd: RawFd) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a live pollfd array of length 1.
    unsafe { libc::poll(&mut pfd, 1, -1) };
}

/// The thread's last OS error as a negated errno.
pub(crate) fn neg_errno() -> i32 {
    -io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Turns a syscall's return value into a raw result.
pub(crate) fn syscall_result(r: isize) -> i32 {
    if r < 0 {
        neg_errno()
    } else {
        r.min(i32::MAX as isize) as i32
    }
}
