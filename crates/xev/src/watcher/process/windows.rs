//! How a [`Process`](super::Process) waits on Windows: the watcher opens
//! the process (a handle, which keeps its exit code readable however long
//! the wait takes, and which a reused process id can never redirect), and
//! each wait is an [`Op::ProcWait`] on that handle, which the IOCP backend
//! turns into a job object reporting to the loop's completion port; the
//! exit code is then read with `GetExitCodeProcess` (see the
//! [module documentation](super)).
//!
//! As on kqueue systems the watcher keeps its waits in its own
//! [`Waits`](super::waits::Waits). The process handle is shared with the
//! waits' callbacks, so it stays open while any of them may still use it.

use std::cell::Cell;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::os::windows::process::ExitStatusExt;
use std::process::ExitStatus;
use std::rc::Rc;

use super::waits::Waits;
use crate::backend::Backend;
use crate::error::{CloseError, ProcessError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::Op;
use crate::record::Action;

/// The Windows internals of a process watcher: the process handle and its
/// waits.
pub(super) struct Watch<B: Backend> {
    /// The process, open for waiting and reading its exit code.
    process: Rc<OwnedHandle>,
    waits: Waits<B>,
}

impl<B: Backend> Watch<B> {
    /// Opens process `pid` (positive). A process that does not exist, or
    /// that this process may not open, is [`ProcessError::NotChild`].
    pub(super) fn new(pid: i32) -> Result<Watch<B>, ProcessError> {
        let process = crate::sys::open_process(pid as u32).map_err(|_| ProcessError::NotChild)?;
        Ok(Watch {
            process: Rc::new(process),
            waits: Waits::new(),
        })
    }

    /// Terminates the process (exit code 1); nothing if it has exited.
    pub(super) fn kill(&self) -> std::io::Result<()> {
        crate::sys::terminate_process(self.process.as_raw_handle() as crate::op::RawHandle)
    }

    /// No pidfd on Windows.
    pub(super) fn pidfd(&self) -> Option<crate::op::RawHandle> {
        None
    }

    /// Adds a wait for the process, remembered until it ends; the status
    /// goes into `status`.
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
        let process = Rc::clone(&self.process);
        let fd = process.as_raw_handle() as crate::op::RawHandle;
        let op = Op::ProcWait { pid, fd };
        self.waits.add(lp, op, status, move || reap(&process), cb)
    }

    /// Cancels the waits in flight and frees parked ones, then calls `cb`.
    pub(super) fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        self.waits.close(lp, cb)
    }
}

/// The exit status of the process, which the loop reported exited:
/// `Ok(None)` when it is still running.
fn reap(process: &OwnedHandle) -> Result<Option<ExitStatus>, ProcessError> {
    let h = process.as_raw_handle() as crate::op::RawHandle;
    if !crate::sys::process_exited(h) {
        return Ok(None);
    }
    match crate::sys::exit_code(h) {
        Ok(code) => Ok(Some(ExitStatus::from_raw(code))),
        Err(e) => Err(ProcessError::Io(e)),
    }
}
