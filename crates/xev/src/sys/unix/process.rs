//! Child processes: a pidfd and `waitid(P_PIDFD)` on Linux, `waitpid` on
//! the BSDs and macOS, and a non-reaping "has it exited?" check for the
//! readiness backends' process waits.

use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::fd::neg_errno;

/// Opens a pidfd for `pid` (Linux 5.3+). The descriptor is close-on-exec.
#[cfg(target_os = "linux")]
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and no pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_open,
            libc::c_long::from(pid),
            0 as libc::c_long,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let raw = RawFd::try_from(r).map_err(|_| io::Error::other("pidfd_open returned a bad fd"))?;
    // SAFETY: a successful pidfd_open returns a new descriptor (already
    // close-on-exec) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// An all-zero `siginfo_t`, for `waitid` to fill.
#[cfg(target_os = "linux")]
fn zeroed_siginfo() -> libc::siginfo_t {
    // SAFETY: siginfo_t is a plain C struct (integers and a union of
    // integers and pointers) for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

#[cfg(target_os = "linux")]
/// `waitid` on a pidfd, retrying on EINTR.
pub(crate) fn waitid_pidfd(pidfd: RawFd, flags: libc::c_int) -> io::Result<libc::siginfo_t> {
    let id = libc::id_t::try_from(pidfd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    loop {
        let mut info = zeroed_siginfo();
        // SAFETY: `info` is a live, writable siginfo_t; waitid writes only
        // into it and keeps no pointer.
        let r = unsafe { libc::waitid(libc::P_PIDFD, id, &mut info, flags) };
        if r == 0 {
            return Ok(info);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `waitpid(pid, WNOHANG)`, retrying on EINTR: the raw status once the
/// child exited, `None` while it runs.
#[cfg(not(target_os = "linux"))]
pub(crate) fn waitpid_nohang(pid: i32) -> io::Result<Option<libc::c_int>> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a live int for waitpid to fill.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ok(Some(status));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Whether child `pid` has exited, without reaping it: `Some(0)` when it
/// has, `None` while it runs, `Some(-errno)` when it cannot be waited for
/// (`-ECHILD`: not our child, or already reaped).
pub(crate) fn proc_exited(pid: i32) -> Option<i32> {
    if pid <= 0 {
        return Some(-libc::ECHILD);
    }
    // `id_t` is unsigned on some systems and 64-bit on others; a positive
    // pid fits in all of them.
    let id = pid as libc::id_t;
    loop {
        // SAFETY: all-zero is a valid siginfo_t; waitid writes only into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a live, writable siginfo_t.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                id,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r < 0 {
            let e = neg_errno();
            if e == -libc::EINTR {
                continue;
            }
            return Some(e);
        }
        // SAFETY: waitid filled `info` (or left it zeroed: nothing exited).
        let exited_pid = unsafe { info.si_pid() };
        return if exited_pid == 0 { None } else { Some(0) };
    }
}

/// Sends `sig` to the process of `pidfd` (Linux 5.1+): never to another
/// process, even once the pid number is reused.
#[cfg(target_os = "linux")]
pub(crate) fn pidfd_send_signal(pidfd: RawFd, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: four integers; no siginfo (null) and no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            libc::c_long::from(pidfd),
            libc::c_long::from(sig),
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_long,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `sig` to process `pid` (the caller makes sure the pid cannot have
/// been reused: a child not yet reaped).
#[cfg(not(target_os = "linux"))]
pub(crate) fn kill(pid: i32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: takes two integers.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
