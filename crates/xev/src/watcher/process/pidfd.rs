//! How a [`Process`](super::Process) waits on Linux: through a pidfd,
//! polled for readability by the loop, and reaped with
//! `waitid(P_PIDFD, WEXITED | WNOHANG)` (see the
//! [module documentation](super)).
//!
//! The pidfd is a descriptor watcher's descriptor like any other
//! ([`FdOwner`]): each wait is tracked by it, and closing or dropping the
//! watcher cancels the waits and closes the pidfd through the loop.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::rc::Rc;

use super::super::shared_fd::FdOwner;
use super::status::wait_result;
use crate::backend::Backend;
use crate::error::{CloseError, ProcessError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Op, OpResult};
use crate::record::Action;

/// The Linux internals of a process watcher: its pidfd.
pub(super) struct Watch<B: Backend> {
    pidfd: FdOwner<B>,
}

impl<B: Backend> Watch<B> {
    /// Opens a pidfd for `pid` (positive) and checks that it is our child.
    pub(super) fn new(pid: i32) -> Result<Watch<B>, ProcessError> {
        let pidfd = crate::sys::pidfd_open(pid).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM) => ProcessError::Unsupported,
            Some(libc::ESRCH) => ProcessError::NotChild,
            _ => ProcessError::Io(e),
        })?;
        // The pidfd names exactly the process we will wait for: ask the
        // kernel whether it is our child without reaping it. (`waitid`
        // answers ECHILD for a process that is not our child, or that was
        // reaped already.)
        check_child(pidfd.as_raw_fd())?;
        Ok(Watch {
            pidfd: FdOwner::new(pidfd),
        })
    }

    /// Sends `sig` through the pidfd. A process that exited (reaped or
    /// not) makes the kernel answer `ESRCH`.
    pub(super) fn signal(&self, sig: i32) -> io::Result<()> {
        match self.pidfd() {
            Some(fd) => crate::sys::pidfd_send_signal(fd, sig),
            None => Err(io::Error::from_raw_os_error(libc::EBADF)),
        }
    }

    /// The pidfd, while the watcher has it.
    pub(super) fn pidfd(&self) -> Option<RawFd> {
        Some(self.pidfd.share().raw()).filter(|&fd| fd >= 0)
    }

    /// Adds a wait for `pid`: a poll of the pidfd, tracked by it, then a
    /// reap; the status goes into `status`.
    pub(super) fn wait<F>(
        &self,
        lp: &mut Loop<B>,
        pid: i32,
        status: Rc<Cell<Option<ExitStatus>>>,
        mut cb: F,
    ) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<ExitStatus, ProcessError>) -> Action + 'static,
    {
        let fd = self.pidfd.share().raw();
        let op = Op::ProcWait { pid, fd };
        self.pidfd.track(lp, op, move |mut t| {
            move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
                // The pidfd stays open while this wait is tracked, so `fd`
                // still names it.
                let r = match wait_result(res, &status, || reap(fd)) {
                    Some(r) => r,
                    // Readable but not reapable yet: poll again.
                    None if !t.share().is_closing() => return Action::Rearm,
                    None => Err(ProcessError::Canceled),
                };
                let action = cb(lp, r);
                t.settle(lp, action)
            }
        })
    }

    /// Cancels the waits, then closes the pidfd through the loop.
    pub(super) fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        self.pidfd.close(lp, cb)
    }
}

/// Whether the process behind `pidfd` is our child, without reaping it.
fn check_child(pidfd: RawFd) -> Result<(), ProcessError> {
    match crate::sys::waitid_pidfd(pidfd, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.raw_os_error() {
            Some(libc::ECHILD) => ProcessError::NotChild,
            // Linux 5.3 has pidfd_open but waitid does not know P_PIDFD.
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EPERM) => {
                ProcessError::Unsupported
            }
            _ => ProcessError::Io(e),
        }),
    }
}

/// Reaps the process behind `pidfd` if it has exited: `Ok(None)` when it
/// has not.
fn reap(pidfd: RawFd) -> Result<Option<ExitStatus>, ProcessError> {
    let info = crate::sys::waitid_pidfd(pidfd, libc::WEXITED | libc::WNOHANG).map_err(|e| {
        if e.raw_os_error() == Some(libc::ECHILD) {
            ProcessError::NotChild
        } else {
            ProcessError::Io(e)
        }
    })?;
    // SAFETY: after a successful waitid the kernel has filled in the SIGCHLD
    // member of the union (pid, uid, status), or left the zeroed struct
    // alone when no child was ready (si_pid stays 0); both are plain
    // integers, valid to read either way.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    wait_status(info.si_code, status)
        .map(|raw| Some(ExitStatus::from_raw(raw)))
        .ok_or_else(|| {
            ProcessError::Io(io::Error::other(format!(
                "waitid reported an unexpected si_code {}",
                info.si_code
            )))
        })
}

/// Rebuilds the `wait(2)` status word that `ExitStatus::from_raw` expects
/// from `waitid`'s `si_code` and `si_status`.
fn wait_status(code: libc::c_int, status: libc::c_int) -> Option<libc::c_int> {
    match code {
        // WIFEXITED: exit code in bits 8..16.
        libc::CLD_EXITED => Some((status & 0xff) << 8),
        // WIFSIGNALED: the signal in the low 7 bits.
        libc::CLD_KILLED => Some(status & 0x7f),
        // ... plus the core-dump flag.
        libc::CLD_DUMPED => Some((status & 0x7f) | 0x80),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_round_trips() {
        let s = ExitStatus::from_raw(wait_status(libc::CLD_EXITED, 42).unwrap());
        assert_eq!((s.code(), s.signal()), (Some(42), None));
        let s = ExitStatus::from_raw(wait_status(libc::CLD_KILLED, 9).unwrap());
        assert_eq!(
            (s.code(), s.signal(), s.core_dumped()),
            (None, Some(9), false)
        );
        let s = ExitStatus::from_raw(wait_status(libc::CLD_DUMPED, 11).unwrap());
        assert_eq!(
            (s.code(), s.signal(), s.core_dumped()),
            (None, Some(11), true)
        );
        assert!(wait_status(libc::CLD_STOPPED, 19).is_none());
    }
}
