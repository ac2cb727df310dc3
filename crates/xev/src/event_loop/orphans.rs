//! The loop's inbox for dropped watchers ([`Orphans`]): what a watcher's
//! `Drop`, which has no loop at hand, leaves for its loop to release.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::backend::Backend;
use crate::event_loop::Loop;
use crate::id::Id;

/// What a watcher dropped without its loop at hand leaves for the loop: see
/// [`Orphans`].
pub(crate) enum Orphan<B: Backend> {
    /// Free this completion ([`Loop::detach`]): cancel it if in flight,
    /// drop it once its callback ran.
    Free(Id),
    /// Hand this to the loop at its next tick (a watcher's descriptor, to
    /// cancel what is pending on it and close it through the loop).
    Adopt(Rc<dyn Adopt<B>>),
}

/// Something a dropped watcher hands to its loop (see [`Orphan::Adopt`]).
pub(crate) trait Adopt<B: Backend> {
    /// Called once, from the loop's next tick.
    fn adopt(self: Rc<Self>, lp: &mut Loop<B>);
}

/// The loop's inbox for dropped watchers. A watcher's `Drop` has no loop to
/// call, so it pushes what must be released here (watchers keep an `Rc` of
/// it, taken when they first use a loop); the loop handles it at its next
/// tick, so that in-flight operations end with `Canceled` and descriptors
/// are closed through the loop, never behind its back. Pushing allocates
/// only while the inbox grows past its largest size so far.
pub(crate) struct Orphans<B: Backend> {
    /// False once the loop is dropped: then watchers release directly.
    pub(super) alive: Cell<bool>,
    /// Whether `list` may be non-empty (one load to check, per callback).
    pending: Cell<bool>,
    pub(super) list: RefCell<Vec<Orphan<B>>>,
}

impl<B: Backend> Orphans<B> {
    pub(super) fn new() -> Orphans<B> {
        Orphans {
            alive: Cell::new(true),
            pending: Cell::new(false),
            list: RefCell::new(Vec::new()),
        }
    }

    /// Hands `o` to the loop; gives it back when the loop is gone.
    pub(crate) fn push(&self, o: Orphan<B>) -> Result<(), Orphan<B>> {
        if !self.alive.get() {
            return Err(o);
        }
        match self.list.try_borrow_mut() {
            Ok(mut l) => {
                l.push(o);
                self.pending.set(true);
                Ok(())
            }
            // Only while the loop is taking an orphan out: never.
            Err(_) => Err(o),
        }
    }

    /// Whether anything waits to be adopted (cheap: checked after every
    /// callback).
    #[inline]
    pub(super) fn is_pending(&self) -> bool {
        self.pending.get()
    }

    pub(super) fn pop(&self) -> Option<Orphan<B>> {
        if !self.pending.get() {
            return None;
        }
        let mut l = self.list.borrow_mut();
        let o = l.pop();
        if l.is_empty() {
            self.pending.set(false);
        }
        o
    }
}
