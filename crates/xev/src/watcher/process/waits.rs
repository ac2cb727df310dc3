//! The waits of a process watcher that has no descriptor to track them
//! (kqueue systems watch the pid, Windows a process handle the watcher
//! keeps itself): the ids of its waits in flight or parked, to cancel (or
//! free) them on `close`, and to hand to the loop of its latest wait when
//! the watcher is dropped.

use std::cell::{Cell, RefCell};
use std::io;
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

/// A watcher's waits in flight or parked, for `close` and `Drop`.
pub(super) struct Waits<B: Backend> {
    ids: Rc<Ids>,
    /// The inbox of the loop of the latest wait, for `Drop`.
    orphans: RefCell<Option<Rc<Orphans<B>>>>,
}

/// The ids, shared with the waits' callbacks.
#[derive(Default)]
struct Ids {
    ids: RefCell<Vec<Id>>,
    /// Set by `close` and `Drop`: callbacks then end their waits.
    closed: Cell<bool>,
}

impl<B: Backend> Waits<B> {
    pub(super) fn new() -> Waits<B> {
        Waits {
            ids: Rc::default(),
            orphans: RefCell::new(None),
        }
    }

    /// Adds the wait `op`, remembered until it ends. When the loop reports
    /// the exit, `reap` gives the status (`Ok(None)`: not reapable yet),
    /// which goes into `status` and to `cb`.
    pub(super) fn add<F, R>(
        &self,
        lp: &mut Loop<B>,
        op: Op,
        status: Rc<Cell<Option<ExitStatus>>>,
        reap: R,
        mut cb: F,
    ) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<ExitStatus, ProcessError>) -> Action + 'static,
        R: Fn() -> Result<Option<ExitStatus>, ProcessError> + 'static,
    {
        let ids = self.ids.clone();
        let id = Rc::new(Cell::new(None::<Id>));
        let me = id.clone();
        let new = lp.add(op, move |lp, _, res: OpResult| {
            let r = wait_result(res, &status, &reap).unwrap_or_else(|| {
                Err(ProcessError::Io(io::Error::other(
                    "the child was reported exited but cannot be reaped yet",
                )))
            });
            let mut action = cb(lp, r);
            if ids.closed.get() {
                action = Action::Disarm;
            }
            if action == Action::Disarm {
                if let Some(me) = me.get() {
                    ids.ids.borrow_mut().retain(|w| *w != me);
                }
            }
            action
        });
        id.set(Some(new));
        self.ids.ids.borrow_mut().push(new);
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
        self.ids.closed.set(true);
        let ids = std::mem::take(&mut *self.ids.ids.borrow_mut());
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

impl<B: Backend> Drop for Waits<B> {
    fn drop(&mut self) {
        if self.ids.closed.replace(true) {
            return; // closed already
        }
        let ids = std::mem::take(&mut *self.ids.ids.borrow_mut());
        if let Some(inbox) = self.orphans.get_mut().take() {
            // Each wait is canceled (or freed, if parked) at the loop's next
            // tick; when the loop is gone, so are the waits.
            for id in ids {
                let _ = inbox.push(Orphan::Free(id));
            }
        }
    }
}
