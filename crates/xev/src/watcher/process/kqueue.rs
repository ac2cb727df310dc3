//! How a [`Process`](super::Process) waits on kqueue systems (macOS,
//! FreeBSD): an [`Op::ProcWait`] on the pid, watched with `EVFILT_PROC` and
//! `NOTE_EXIT`, then a reap with `waitpid(WNOHANG)` (see the
//! [module documentation](super)).
//!
//! There is no descriptor, so no [`FdOwner`](super::super::shared_fd::FdOwner)
//! to track the waits: the watcher keeps them in its own
//! [`Waits`](super::waits::Waits).

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::rc::Rc;
use std::cell::Cell;

use super::waits::Waits;
use crate::backend::Backend;
use crate::error::{CloseError, ProcessError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::Op;
use crate::record::Action;

/// The kqueue internals of a process watcher: its waits.
pub(super) struct Watch<B: Backend> {
    waits: Waits<B>,
}

impl<B: Backend> Watch<B> {
    /// Checks that `pid` (positive) is our child, without reaping it.
    pub(super) fn new(pid: i32) -> Result<Watch<B>, ProcessError> {
        if let Some(r) = crate::sys::proc_exited(pid) {
            if r < 0 {
                return Err(if r == -libc::ECHILD {
                    ProcessError::NotChild
                } else {
                    ProcessError::Io(io::Error::from_raw_os_error(-r))
                });
            }
        }
        Ok(Watch {
            waits: Waits::new(),
        })
    }

    /// Sends `sig` to `pid`, which the caller knows is not reaped yet (so
    /// its number is still ours).
    pub(super) fn signal(&self, pid: i32, sig: i32) -> io::Result<()> {
        crate::sys::kill(pid, sig)
    }

    /// No pidfd: kqueue watches the pid itself.
    pub(super) fn pidfd(&self) -> Option<RawFd> {
        None
    }

    /// Adds a wait for `pid`, remembered until it ends; the status goes
    /// into `status`.
    pub(super) fn wait<F>(
        &self,
        lp: &mut Loop<B>,
        pid: i32,
        status: Rc<Cell<Option<ExitStatus>>>,
        cb: F,
    ) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<ExitStatus, ProcessError>) -> Action + 'static,
    {
        let op = Op::ProcWait { pid, fd: -1 };
        self.waits.add(lp, op, status, move || reap(pid), cb)
    }

    /// Cancels the waits in flight and frees parked ones, then calls `cb`.
    pub(super) fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        self.waits.close(lp, cb)
    }
}

/// Reaps `pid`, which kqueue reported as exited: `Ok(None)` when it cannot
/// be reaped yet.
fn reap(pid: i32) -> Result<Option<ExitStatus>, ProcessError> {
    match crate::sys::waitpid_nohang(pid) {
        Ok(status) => Ok(status.map(ExitStatus::from_raw)),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Err(ProcessError::NotChild),
        Err(e) => Err(ProcessError::Io(e)),
    }
}
