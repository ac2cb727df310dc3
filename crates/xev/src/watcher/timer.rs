//! The timer watcher: fire a callback after a number of milliseconds, reset
//! it (move an active timer, start an idle one), cancel it, or repeat it by
//! returning `Rearm`. Dropping a timer releases it: a pending one is
//! canceled (its callback runs once with `Canceled`) and its completion is
//! freed, all at the loop's next tick.
//! (The whole story is on [`Timer`](super::Timer).)

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::backend::Backend;
use crate::error::{CancelError, IdError, TimerError};
use crate::event_loop::orphans::{Orphan, Orphans};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Op, OpResult};
use crate::record::Action;

/// The timer watcher: fire a callback after a number of milliseconds, reset
/// it (move an active timer, start an idle one), cancel it, or repeat it by
/// returning `Rearm`. Dropping a timer releases it: a pending one is
/// canceled (its callback runs once with `Canceled`) and its completion is
/// freed, all at the loop's next tick.
///
/// A timer bound to one loop. Its completion is allocated once, in
/// [`Timer::new`]; `run`, `reset`, `cancel` and rearming allocate nothing.
///
/// ```
/// use xev::{Action, Loop, RunMode, Timer};
/// let mut lp = Loop::new(Default::default()).unwrap();
/// let mut ticks = 0;
/// let t = Timer::new(&mut lp, move |_lp, res| {
///     res.unwrap();
///     ticks += 1;
///     if ticks < 3 { Action::Rearm } else { Action::Disarm } // every 2 ms, 3 times
/// });
/// t.run(&mut lp, 2).unwrap();
/// lp.run(RunMode::UntilDone).unwrap();
/// assert!(!t.is_active(&lp));
/// t.free(&mut lp).unwrap();
/// ```
///
/// Dropping a `Timer` (instead of calling [`Timer::free`]) releases it the
/// same way at the loop's next tick: nothing leaks.
#[must_use = "a timer does nothing until `run`, and dropping it releases it"]
pub struct Timer<B: Backend = crate::DefaultBackend> {
    id: Id,
    interval: Rc<Cell<u64>>,
    /// The loop's inbox, for `Drop`.
    orphans: Rc<Orphans<B>>,
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend> fmt::Debug for Timer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("id", &self.id)
            .field("interval", &self.interval.get())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Timer<B> {
    /// Creates an idle timer whose callback is `cb`. The callback gets
    /// `Ok(())` when the timer expires and `Err(TimerError::Canceled)` when it
    /// is canceled; returning [`Action::Rearm`] runs it again after the same
    /// number of milliseconds as the last `run`/`reset`.
    pub fn new<F>(lp: &mut Loop<B>, mut cb: F) -> Timer<B>
    where
        F: FnMut(&mut Loop<B>, Result<(), TimerError>) -> Action + 'static,
    {
        let interval = Rc::new(Cell::new(0u64));
        let iv = interval.clone();
        let id = lp.add_parked_callback(
            Op::timer(u64::MAX),
            move |lp: &mut Loop<B>, op: &mut Op, res: OpResult| {
                let res = match res {
                    OpResult::Timer(r) => r,
                    _ => return Action::Park,
                };
                match cb(lp, res) {
                    Action::Rearm => {
                        *op = Op::timer(lp.now().saturating_add(iv.get()));
                        Action::Rearm
                    }
                    Action::Disarm | Action::Park => Action::Park,
                }
            },
        );
        Timer {
            id,
            interval,
            orphans: lp.orphans(),
            _backend: PhantomData,
        }
    }

    /// Starts the timer to fire `after_ms` milliseconds from the loop's
    /// [`now`](Loop::now) (an active timer is moved, as with `reset`).
    /// Deadlines saturate instead of overflowing.
    pub fn run(&self, lp: &mut Loop<B>, after_ms: u64) -> Result<(), IdError> {
        self.reset(lp, after_ms)
    }

    /// libxev's `reset`: an active timer is moved to `after_ms` from now, an
    /// idle one is started; from inside the timer's own callback it re-arms
    /// when the callback returns.
    pub fn reset(&self, lp: &mut Loop<B>, after_ms: u64) -> Result<(), IdError> {
        self.interval.set(after_ms);
        let deadline = lp.now().saturating_add(after_ms);
        lp.timer_reset(self.id, deadline)
    }

    /// Cancels a pending timer: its callback runs with
    /// `Err(TimerError::Canceled)`. `NotFound` when it was not pending.
    pub fn cancel(&self, lp: &mut Loop<B>) -> Result<(), CancelError> {
        lp.cancel(self.id)
    }

    /// Whether the timer is pending (or fired and its callback has yet to
    /// run).
    pub fn is_active(&self, lp: &Loop<B>) -> bool {
        lp.is_active(self.id)
    }

    /// The id of the timer's completion in its loop.
    pub fn id(&self) -> Id {
        self.id
    }

    /// Releases the timer's completion now. A pending timer is canceled
    /// first: its callback still runs once, with `Err(TimerError::Canceled)`
    /// (or with `Ok(())` if it had already fired), and the completion is
    /// freed after it; from inside its own callback, the completion is
    /// freed when the callback returns. `Stale` when the loop already freed
    /// it.
    pub fn free(self, lp: &mut Loop<B>) -> Result<(), IdError> {
        // `Drop` then hands the loop an id that is already stale (or
        // freed when the callback returns): it is ignored.
        lp.detach(self.id)
    }
}

impl<B: Backend> Drop for Timer<B> {
    fn drop(&mut self) {
        // When the loop is gone, so is the completion.
        let _ = self.orphans.push(Orphan::Free(self.id));
    }
}
