//! How a [`Process`](super::Process) waits on Windows: the watcher opens
//! the process (a handle, which keeps its exit code readable however long
//! the wait takes, and which a reused process id can never redirect), and
//! each wait is an [`Op::ProcWait`] on that handle, which the IOCP backend
//! turns into a job object reporting to the loop's completion port; the
//! exit code is then read with `GetExitCodeProcess` (see the
//! [module documentation](super)).
//!
//! As on kqueue systems the watcher keeps the ids of its waits in flight
//! or parked itself, to cancel (or free) them on `close`, and hands them
//! to the loop of its latest wait when dropped. The process handle is
//! shared with the waits' callbacks, so it stays open while any of them
//! may still use it.

use std::cell::{Cell, RefCell};
use std::io;
use std::marker::PhantomData;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::os::windows::process::ExitStatusExt;
use std::process::ExitStatus;
use std::rc::Rc;

use super::status::wait_result;
use crate::backend::Backend;
use crate::error::{CloseError, ProcessError};
use crate::event_loop::orphans::{Orphan, Orphans};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Op, OpResult};
use crate::record::Action;

/// The Windows internals of a process watcher: the process handle and its
/// waits.
pub(super) struct Watch<B: Backend> {
    /// The process, open for waiting and reading its exit code.
    process: Rc<OwnedHandle>,
    /// Waits in flight or parked, for `close` and `Drop`.
    waits: Rc<Waits>,
    /// The inbox of the loop of the latest wait, for `Drop`.
    orphans: RefCell<Option<Rc<Orphans<B>>>>,
    _backend: PhantomData<fn() -> B>,
}

/// The waits of a watcher, shared with their callbacks.
#[derive(Default)]
struct Waits {
    ids: RefCell<Vec<Id>>,
    /// Set by `close` and `Drop`: callbacks then end their waits.
    closed: Cell<bool>,
}

impl<B: Backend> Watch<B> {
    /// Opens process `pid` (positive). A process that does not exist, or
    /// that this process may not open, is [`ProcessError::NotChild`].
    pub(super) fn new(pid: i32) -> Result<Watch<B>, ProcessError> {
        let process = crate::sys::open_process(pid as u32).map_err(|_| ProcessError::NotChild)?;
        Ok(Watch {
            process: Rc::new(process),
            waits: Rc::default(),
            orphans: RefCell::new(None),
            _backend: PhantomData,
        })
    }

    /// No pidfd on Windows.
    pub(super) fn pidfd(&self) -> Option<crate::op::RawHandle> {
        None
    }

    /// Adds a wait for `pid`, remembered until it ends; the status goes
    /// into `status`.
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
        let waits = self.waits.clone();
        let id = Rc::new(Cell::new(None::<Id>));
        let me = id.clone();
        let process = Rc::clone(&self.process);
        let fd = process.as_raw_handle() as crate::op::RawHandle;
        let new = lp.add(Op::ProcWait { pid, fd }, move |lp, _, res: OpResult| {
            let r = wait_result(res, &status, || reap(&process)).unwrap_or_else(|| {
                Err(ProcessError::Io(io::Error::other(
                    "the child was reported exited but cannot be reaped yet",
                )))
            });
            let mut action = cb(lp, r);
            if waits.closed.get() {
                action = Action::Disarm;
            }
            if action == Action::Disarm {
                if let Some(me) = me.get() {
                    waits.ids.borrow_mut().retain(|w| *w != me);
                }
            }
            action
        });
        id.set(Some(new));
        self.waits.ids.borrow_mut().push(new);
        let inbox = lp.orphans();
        let mut cur = self.orphans.borrow_mut();
        if !cur.as_ref().is_some_and(|c| Rc::ptr_eq(c, &inbox)) {
            *cur = Some(inbox);
        }
        new
    }

    /// Cancels the waits in flight and frees parked ones, then calls `cb`
    /// (from a no-op completion).
    pub(super) fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        self.waits.closed.set(true);
        let ids = std::mem::take(&mut *self.waits.ids.borrow_mut());
        for id in ids {
            if lp.cancel(id).is_err() {
                // Parked: freed now; finished or running: freed once its
                // callback returns (or `Busy`, and it ends by itself).
                let _ = lp.free(id);
            }
        }
        let mut cb = Some(cb);
        lp.add(Op::Noop, move |lp, _, _| {
            if let Some(cb) = cb.take() {
                cb(lp, Ok(()));
            }
            Action::Disarm
        })
    }
}

impl<B: Backend> Drop for Watch<B> {
    fn drop(&mut self) {
        if self.waits.closed.replace(true) {
            return; // closed already
        }
        let ids = std::mem::take(&mut *self.waits.ids.borrow_mut());
        if let Some(inbox) = self.orphans.get_mut().take() {
            // Each wait is canceled (or freed, if parked) at the loop's next
            // tick; when the loop is gone, so are the waits.
            for id in ids {
                let _ = inbox.push(Orphan::Free(id));
            }
        }
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
