//! How a [`Process`](super::Process) waits on kqueue systems (macOS,
//! FreeBSD): an [`Op::ProcWait`] on the pid, watched with `EVFILT_PROC` and
//! `NOTE_EXIT`, then a reap with `waitpid(WNOHANG)` (see the
//! [module documentation](super)).
//!
//! There is no descriptor, so no [`FdOwner`](super::super::shared_fd::FdOwner)
//! to track the waits: the watcher keeps the ids of its waits in flight or
//! parked itself, to cancel (or free) them on `close`, and hands them to
//! the loop of its latest wait when dropped.

use std::cell::{Cell, RefCell};
use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::os::unix::process::ExitStatusExt;
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

/// The kqueue internals of a process watcher: its waits.
pub(super) struct Watch<B: Backend> {
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
            waits: Rc::default(),
            orphans: RefCell::new(None),
            _backend: PhantomData,
        })
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
        mut cb: F,
    ) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<ExitStatus, ProcessError>) -> Action + 'static,
    {
        let waits = self.waits.clone();
        let id = Rc::new(Cell::new(None::<Id>));
        let me = id.clone();
        let new = lp.add(Op::ProcWait { pid, fd: -1 }, move |lp, _, res: OpResult| {
            let r = wait_result(res, &status, || reap(pid)).unwrap_or_else(|| {
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

/// Reaps `pid`, which kqueue reported as exited: `Ok(None)` when it cannot
/// be reaped yet.
fn reap(pid: i32) -> Result<Option<ExitStatus>, ProcessError> {
    match crate::sys::waitpid_nohang(pid) {
        Ok(status) => Ok(status.map(ExitStatus::from_raw)),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Err(ProcessError::NotChild),
        Err(e) => Err(ProcessError::Io(e)),
    }
}
