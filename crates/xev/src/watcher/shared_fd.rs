//! The descriptor of a watcher, shared by the watcher and the callbacks of
//! its operations, and the one way every descriptor watcher (TCP, UDP,
//! stream, file, process) lets go of it.
//!
//! - **While operations may use it** the descriptor stays open: each
//!   operation is *tracked* (its callback owns a [`Tracked`] guard holding the
//!   descriptor), so the number can never be closed, and reused, under an
//!   operation still in flight.
//! - **Closing** ([`SharedFd::close`], what every watcher's `close` does)
//!   cancels the tracked operations in flight (their callbacks run once, with
//!   `Canceled`, or with their result if it was already in) and frees the
//!   parked ones, then closes the descriptor *through the loop* once the last
//!   of them has ended: the readiness backends forget it before the number can
//!   be reused, and the peer of a socket sees the close.
//! - **Dropping** the watcher ([`FdOwner`]'s `Drop`) does the same at the
//!   loop's next tick (or right after the callback that dropped it): the
//!   watcher hands the descriptor to the loop it last used through the loop's
//!   [`Orphans`] inbox, and the loop closes it with a callback that ignores the
//!   result. A watcher never used with a loop, or whose loop is gone (which
//!   ended all its operations), closes its descriptor directly.
//! - **Rearms are vouched for**: an operation rearmed or parked from its
//!   callback, on a descriptor not closing, is vouched for
//!   ([`Loop::vouch`]): the descriptor cannot have been closed or its
//!   number reused since, so a readiness backend skips its registration
//!   check when the operation waits again.
//!
//! Tracking costs no allocation in steady state: operations are kept in a
//! slot table (ids with a free list) that only grows to the most operations
//! ever tracked at once.

use std::cell::{Cell, RefCell};
use std::io;
use crate::op::RawHandle as RawFd;
use crate::sys::types::Owned as OwnedFd;
use crate::sys::types::{into_raw, raw_of, INVALID_RAW};
use std::rc::Rc;

use crate::op::unexpected;
use crate::backend::Backend;
use crate::error::CloseError;
use crate::event_loop::orphans::{Adopt, Orphan, Orphans};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Op, OpResult};
use crate::record::Action;

/// A descriptor shared by a watcher's handles and the callbacks of its
/// tracked operations (see the module documentation).
pub(crate) struct SharedFd {
    /// `None` once handed to the close completion or taken back.
    fd: RefCell<Option<OwnedFd>>,
    ops: RefCell<OpTable>,
    /// The parked close completion, once `close` was called.
    closer: Cell<Option<Id>>,
}

/// One tracked operation.
#[derive(Clone, Copy)]
struct Slot {
    /// Its id (`Id::DETACHED` while it is being added).
    id: Id,
    /// Whether it ends by itself once the descriptor is closing, so that
    /// `close` must not free it while it is parked (a queued write waiting
    /// its turn: the write queue fails it with `Canceled`, calling its
    /// callback).
    managed: bool,
}

#[derive(Default)]
struct OpTable {
    /// The tracked operations; `None` for free slots.
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    live: usize,
}

impl OpTable {
    fn reserve(&mut self, managed: bool) -> usize {
        self.live += 1;
        let slot = Some(Slot {
            id: Id::DETACHED,
            managed,
        });
        match self.free.pop() {
            Some(i) if i < self.slots.len() => {
                self.slots[i] = slot;
                i
            }
            _ => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        }
    }

    fn release(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            if s.take().is_some() {
                self.free.push(slot);
                self.live -= 1;
            }
        }
    }
}

impl SharedFd {
    pub(crate) fn new(fd: OwnedFd) -> SharedFd {
        SharedFd {
            fd: RefCell::new(Some(fd)),
            ops: RefCell::new(OpTable::default()),
            closer: Cell::new(None),
        }
    }

    /// Whether `close` was called.
    pub(crate) fn is_closing(&self) -> bool {
        self.closer.get().is_some()
    }

    /// Whether the descriptor is still here and no close was asked for.
    fn is_open(&self) -> bool {
        !self.is_closing() && self.fd.borrow().is_some()
    }

    /// The descriptor for a new operation: -1 (so the operation fails with
    /// `EBADF`) once `close` was called or the descriptor was taken back.
    pub(crate) fn raw(&self) -> RawFd {
        if self.is_closing() {
            return INVALID_RAW;
        }
        self.fd.borrow().as_ref().map_or(INVALID_RAW, raw_of)
    }

    /// Runs `f` on the open descriptor; `EBADF` once `close` was called.
    #[cfg_attr(all(target_os = "wasi", target_env = "p1"), allow(dead_code))]
    pub(crate) fn with_fd<R>(&self, f: impl FnOnce(&OwnedFd) -> io::Result<R>) -> io::Result<R> {
        match &*self.fd.borrow() {
            Some(fd) if !self.is_closing() => f(fd),
            _ => Err(io::Error::from_raw_os_error(crate::sys::types::BAD_HANDLE_CODE)),
        }
    }

    /// Tracked operations: in flight, or parked by their callback.
    pub(crate) fn in_flight(&self) -> usize {
        self.ops.borrow().live
    }

    /// Adds `op` as a tracked operation, started (or parked when `parked`;
    /// `managed` when it ends by itself once the descriptor is closing, see
    /// `Slot::managed`); `make` builds its callback from its [`Tracked`]
    /// guard, and the callback must end by returning [`Tracked::settle`]'s
    /// answer.
    fn track<B, F>(
        this: &Rc<SharedFd>,
        lp: &mut Loop<B>,
        op: Op,
        (parked, managed): (bool, bool),
        make: impl FnOnce(Tracked) -> F,
    ) -> Id
    where
        B: Backend,
        F: FnMut(&mut Loop<B>, &mut Op, OpResult) -> Action + 'static,
    {
        let slot = this.ops.borrow_mut().reserve(managed);
        let guard = Tracked {
            share: Rc::clone(this),
            slot,
            ended: false,
        };
        let id = if parked {
            lp.add_parked_callback(op, make(guard))
        } else {
            lp.add(op, make(guard))
        };
        if let Some(Some(s)) = this.ops.borrow_mut().slots.get_mut(slot) {
            s.id = id;
        }
        id
    }

    /// Closes the descriptor through the loop: cancels the tracked
    /// operations in flight, frees the parked ones (except managed ones,
    /// which end by themselves), and closes the descriptor once the last of
    /// them has ended; `cb` gets the close's result. When the descriptor is
    /// already closing (or was taken back), the close fails with `EBADF`
    /// like any double close. Returns the close completion's id.
    pub(crate) fn close<B, F>(&self, lp: &mut Loop<B>, cb: F) -> Id
    where
        B: Backend,
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        let mut cb = Some(cb);
        let callback = move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
            let r = match res {
                OpResult::Close(r) => r,
                other => Err(CloseError::Io(unexpected(&other))),
            };
            if let Some(cb) = cb.take() {
                cb(lp, r);
            }
            // Never Rearm or Park a close: its descriptor number is no
            // longer ours.
            Action::Disarm
        };
        if !self.is_open() {
            return lp.add(Op::Close { fd: INVALID_RAW }, callback);
        }
        let id = lp.add_parked_callback(Op::Close { fd: INVALID_RAW }, callback);
        self.closer.set(Some(id));
        let n = self.ops.borrow().slots.len();
        for i in 0..n {
            // No borrow is held across the loop calls: freeing an operation
            // drops its guard, which releases its slot.
            let slot = self.ops.borrow().slots.get(i).copied().flatten();
            if let Some(Slot {
                id: target,
                managed,
            }) = slot
            {
                if lp.cancel(target).is_err() && !managed {
                    // Not in flight. Parked: dropped now (its guard stops
                    // tracking it). Finished with its callback still to
                    // run, or running it now: it ends when the callback
                    // returns (`free` answers Busy, or frees it then).
                    let _ = lp.free(target);
                }
            }
        }
        self.close_if_idle(lp);
        id
    }

    /// After `close`, once no operation is tracked: hands the descriptor to
    /// the parked close completion and starts it.
    fn close_if_idle<B: Backend>(&self, lp: &mut Loop<B>) {
        let Some(closer) = self.closer.get() else {
            return;
        };
        if self.ops.borrow().live != 0 {
            return;
        }
        let Some(fd) = self.fd.borrow_mut().take() else {
            return;
        };
        match lp.op_mut(closer) {
            Ok(op) => {
                *op = Op::Close {
                    fd: into_raw(fd),
                };
                // Cannot fail: `op_mut` just found the completion parked.
                // (Were the loop dropped before it starts, the loop's drop
                // would close the descriptor.)
                let _ = lp.restart(closer);
            }
            // The close completion is gone (its loop freed it): close
            // directly; nothing waits on the descriptor anymore.
            Err(_) => drop(fd),
        }
    }
}

/// A dropped watcher's descriptor, handed to its loop: closed through the
/// loop (operations in flight canceled first), its result ignored.
impl<B: Backend> Adopt<B> for SharedFd {
    fn adopt(self: Rc<Self>, lp: &mut Loop<B>) {
        if self.is_open() {
            self.close(lp, |_: &mut Loop<B>, _: Result<(), CloseError>| {});
        }
    }
}

/// One tracked operation of a [`SharedFd`], owned by the operation's
/// callback: it keeps the descriptor open while the operation may use it,
/// and frees the operation's tracking slot when the operation ends — in
/// [`Tracked::settle`], or when the callback is dropped without having
/// ended it (its loop was dropped with the operation in flight, or the
/// operation was freed while parked), so that no stale id stays tracked.
pub(crate) struct Tracked {
    share: Rc<SharedFd>,
    slot: usize,
    ended: bool,
}

impl Tracked {
    /// The shared descriptor.
    pub(crate) fn share(&self) -> &SharedFd {
        &self.share
    }

    /// Turns the action returned by the user's callback into the loop's
    /// action: `Rearm` and `Park` keep the operation (still tracked) unless
    /// the descriptor is closing; anything else ends it, and the last
    /// operation to end after `close` starts the close.
    pub(crate) fn settle<B: Backend>(&mut self, lp: &mut Loop<B>, action: Action) -> Action {
        if self.ended {
            return Action::Disarm;
        }
        if action != Action::Disarm && !self.share.is_closing() {
            // The descriptor stays open while this operation is tracked
            // (this guard holds it, and a close waits for every tracked
            // operation to end), so the operation's next start may trust
            // a readiness backend's registration: one `epoll_ctl` less
            // when it must wait.
            let tracked = self.share.ops.borrow().slots.get(self.slot).copied().flatten();
            if let Some(tracked) = tracked {
                // Fails only for an id that is not this running completion
                // (a slot still being added): nothing is vouched then.
                let _ = lp.vouch(tracked.id);
            }
            return action;
        }
        self.ended = true;
        self.share.ops.borrow_mut().release(self.slot);
        self.share.close_if_idle(lp);
        Action::Disarm
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.ended {
            // Never contended (no borrow is held while completions are
            // dropped); skip rather than panic if it ever were.
            if let Ok(mut ops) = self.share.ops.try_borrow_mut() {
                ops.release(self.slot);
            }
        }
    }
}

/// A watcher's ownership of its [`SharedFd`]: adds its operations as
/// tracked operations, remembers the loop they went to, and, when dropped
/// without `close`, hands the descriptor to that loop (see the module
/// documentation). A watcher's operations go to one loop at a time: the
/// descriptor goes to the loop of the latest one.
pub(crate) struct FdOwner<B: Backend> {
    share: Rc<SharedFd>,
    /// The inbox of the loop of the latest operation.
    orphans: RefCell<Option<Rc<Orphans<B>>>>,
}

impl<B: Backend> FdOwner<B> {
    pub(crate) fn new(fd: OwnedFd) -> FdOwner<B> {
        FdOwner {
            share: Rc::new(SharedFd::new(fd)),
            orphans: RefCell::new(None),
        }
    }

    /// The shared descriptor.
    pub(crate) fn share(&self) -> &SharedFd {
        &self.share
    }

    /// Remembers `lp` as the loop to hand the descriptor to (an `Rc`
    /// clone: no allocation). On Windows, a watcher that moves to another
    /// loop also ends its handle's association with the former loop's
    /// completion port, so that its operations complete on the new one
    /// (where the system can: see [`crate::sys::disassociate`]).
    fn bind(&self, lp: &Loop<B>) {
        let inbox = lp.orphans();
        let mut cur = self.orphans.borrow_mut();
        if !cur.as_ref().is_some_and(|c| Rc::ptr_eq(c, &inbox)) {
            #[cfg(windows)]
            if cur.is_some() {
                if let Some(fd) = self.share.fd.borrow().as_ref() {
                    crate::sys::disassociate(raw_of(fd));
                }
            }
            *cur = Some(inbox);
        }
    }

    /// Adds `op` to `lp` as a tracked operation; see [`SharedFd::track`].
    pub(crate) fn track<F>(&self, lp: &mut Loop<B>, op: Op, make: impl FnOnce(Tracked) -> F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Op, OpResult) -> Action + 'static,
    {
        self.bind(lp);
        SharedFd::track(&self.share, lp, op, (false, false), make)
    }

    /// Adds `op` to `lp` parked, as a managed tracked operation: one that
    /// ends by itself once the descriptor is closing, so that `close` only
    /// cancels it when it is in flight (the write queue's writes).
    pub(crate) fn track_parked<F>(
        &self,
        lp: &mut Loop<B>,
        op: Op,
        make: impl FnOnce(Tracked) -> F,
    ) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Op, OpResult) -> Action + 'static,
    {
        self.bind(lp);
        SharedFd::track(&self.share, lp, op, (true, true), make)
    }

    /// Adds `op` to `lp` parked, as an ordinary tracked operation: `close`
    /// frees it while it is parked, without calling its callback (the
    /// write queue's drain registrations, which the queue restarts when
    /// it drains).
    pub(crate) fn track_idle<F>(
        &self,
        lp: &mut Loop<B>,
        op: Op,
        make: impl FnOnce(Tracked) -> F,
    ) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Op, OpResult) -> Action + 'static,
    {
        self.bind(lp);
        SharedFd::track(&self.share, lp, op, (true, false), make)
    }

    /// Closes through the loop; see [`SharedFd::close`]. Dropping the owner
    /// afterwards does nothing more.
    pub(crate) fn close<F>(&self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        self.share.close(lp, cb)
    }

    /// Takes the descriptor back, when no operation is tracked (`None`
    /// otherwise, or when it is closing). Dropping the owner afterwards
    /// does nothing more.
    pub(crate) fn take_fd<T>(&self, convert: impl FnOnce(OwnedFd) -> Result<T, OwnedFd>) -> Option<T> {
        if self.share.is_closing() || self.share.in_flight() != 0 {
            return None;
        }
        let mut slot = self.share.fd.borrow_mut();
        match convert(slot.take()?) {
            Ok(t) => Some(t),
            Err(back) => {
                *slot = Some(back);
                None
            }
        }
    }
}

impl<B: Backend> Drop for FdOwner<B> {
    fn drop(&mut self) {
        if !self.share.is_open() {
            return; // closed or taken back already
        }
        let Some(inbox) = self.orphans.get_mut().take() else {
            // Never used with a loop: our `Rc` is the last one, and dropping
            // it closes the descriptor.
            return;
        };
        let share: Rc<dyn Adopt<B>> = self.share.clone();
        // The loop is gone when the orphan comes back: it ended every
        // operation (their guards are dropped), so dropping it and our
        // `Rc` closes the descriptor directly.
        drop(inbox.push(Orphan::Adopt(share)));
    }
}
