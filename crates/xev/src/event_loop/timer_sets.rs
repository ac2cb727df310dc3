//! The loop's compact timers: [`TimerSet`]s, whose timers share one
//! callback and cost 32 bytes each (the store is in `timer_set`). They fire
//! on every backend alike: the loop keeps them, as it keeps timer
//! completions.

use std::io;
use std::panic::{self, AssertUnwindSafe};

use crate::backend::Backend;
use crate::error::IdError;
use crate::event_loop::Loop;
use crate::timer_set::{TimerId, TimerSet};

/// A timer set's callback, as the loop stores it.
pub(crate) type SetCallback<B> = Box<dyn FnMut(&mut Loop<B>, u64)>;

impl<B: Backend> Loop<B> {
    /// Adds a set of compact timers that share the callback `cb`, which
    /// receives the loop and the key of the timer that fired.
    ///
    /// A timer started in the set ([`Loop::start_timer`]) costs 32 bytes
    /// of loop memory, against a whole completion for an
    /// [`Op::Timer`](crate::Op::Timer) (88 bytes on 64-bit targets), and
    /// starting one allocates nothing in steady state: made for programs
    /// that hold a deadline per connection or per request. Set timers fire
    /// like timer completions (by deadline, equal deadlines in the order
    /// they were started or last reset), after the tick's completion
    /// callbacks. Pending set timers keep [`RunMode::UntilDone`]
    /// running, as completions do.
    ///
    /// The callback must not call [`Loop::run`] (that call returns an
    /// `Unsupported` error).
    ///
    /// Errors: `OutOfMemory` when the loop already holds 65,535 sets.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use xev::{Loop, RunMode};
    /// let mut lp = Loop::new(Default::default()).unwrap();
    /// let fired = Rc::new(RefCell::new(Vec::new()));
    /// let log = fired.clone();
    /// let set = lp.add_timer_set(move |_lp, key| log.borrow_mut().push(key)).unwrap();
    /// let now = lp.now();
    /// lp.start_timer(set, now + 2, 7).unwrap();
    /// lp.start_timer(set, now + 1, 8).unwrap();
    /// lp.run(RunMode::UntilDone).unwrap();
    /// assert_eq!(*fired.borrow(), [8, 7]);
    /// ```
    ///
    /// [`RunMode::UntilDone`]: crate::RunMode::UntilDone
    pub fn add_timer_set<F>(&mut self, cb: F) -> io::Result<TimerSet>
    where
        F: FnMut(&mut Loop<B>, u64) + 'static,
    {
        let (index, gen) = self.s.sets.add_set(Box::new(cb)).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "a loop holds at most 65,535 timer sets",
            )
        })?;
        Ok(TimerSet {
            index,
            gen,
            tag: self.s.tag,
        })
    }

    /// Starts a timer in `set` that fires at `deadline` (loop
    /// milliseconds, as [`Loop::now`]) and hands `key` to the set's
    /// callback. A deadline already passed fires at the next tick.
    ///
    /// Errors: `Stale` when `set` was removed or belongs to another loop.
    pub fn start_timer(&mut self, set: TimerSet, deadline: u64, key: u64) -> Result<TimerId, IdError> {
        self.own(set.tag)?;
        let (index, gen) = self.s.sets.start(set.index, set.gen, deadline, key)?;
        self.s.active += 1;
        Ok(TimerId {
            index,
            gen,
            tag: self.s.tag,
        })
    }

    /// Stops a pending set timer before it fires; returns its key.
    ///
    /// Errors: `Stale` when the timer already fired (its callback may be
    /// running) or was stopped, or belongs to another loop.
    pub fn stop_timer(&mut self, id: TimerId) -> Result<u64, IdError> {
        self.own(id.tag)?;
        let key = self.s.sets.stop(id.index, id.gen)?;
        self.s.active -= 1;
        Ok(key)
    }

    /// Moves a pending set timer to a new `deadline` (behind the timers
    /// already due then); its id stays valid.
    ///
    /// Errors: as [`Loop::stop_timer`].
    pub fn reset_timer(&mut self, id: TimerId, deadline: u64) -> Result<(), IdError> {
        self.own(id.tag)?;
        self.s.sets.reset(id.index, id.gen, deadline)
    }

    /// How many timers of `set` are pending.
    ///
    /// Errors: `Stale` when `set` was removed or belongs to another loop.
    pub fn pending_timers(&self, set: TimerSet) -> Result<usize, IdError> {
        self.own(set.tag)?;
        self.s.sets.pending(set.index, set.gen)
    }

    /// Removes `set` and drops its callback (from its own callback: when
    /// that call returns). Its id, and its slot's old ids, go stale.
    ///
    /// Errors: `Stale` when `set` was already removed or belongs to
    /// another loop; `Busy` while timers of the set are pending (stop
    /// them first).
    pub fn remove_timer_set(&mut self, set: TimerSet) -> Result<(), IdError> {
        self.own(set.tag)?;
        let cb = self.s.sets.remove_set(set.index, set.gen)?;
        // The store is consistent before a user `Drop` runs.
        drop(cb);
        Ok(())
    }

    /// `Stale` unless `tag` (of a set or timer id) is this loop's.
    fn own(&self, tag: u32) -> Result<(), IdError> {
        if tag == self.s.tag {
            Ok(())
        } else {
            Err(IdError::Stale)
        }
    }

    /// Whether the loop holds pending set timers.
    pub(crate) fn has_set_timers(&self) -> bool {
        !self.s.sets.is_empty()
    }

    /// Calls the callbacks of the set timers due by the tick's clock, in
    /// firing order; returns how many ran. Timers started meanwhile with a
    /// deadline already passed wait for the next tick (at most as many
    /// timers fire as were due when this began), so a callback that keeps
    /// starting them cannot hold the loop in one tick.
    pub(crate) fn dispatch_sets(&mut self) -> usize {
        let now = self.s.now.get();
        let mut budget = self.s.sets.due(now);
        let mut n = 0;
        while budget > 0 && !self.s.stopped {
            budget -= 1;
            let Some((set, key)) = self.s.sets.pop_expired(now) else {
                break;
            };
            self.s.active -= 1;
            // Out only while it runs, and set callbacks never nest (they
            // cannot run the loop), so it is always there.
            let Some(mut cb) = self.s.sets.take_callback(set) else {
                continue;
            };
            n += 1;
            self.s.in_set_callback = true;
            let called = panic::catch_unwind(AssertUnwindSafe(|| cb(self, key)));
            self.s.in_set_callback = false;
            self.adopt_orphans();
            // Dropped here (set removed by its own callback) or put back.
            let dropped = panic::catch_unwind(AssertUnwindSafe(|| {
                drop(self.s.sets.put_back(set, cb));
            }));
            if let Err(payload) = called.and(dropped) {
                panic::resume_unwind(payload);
            }
        }
        n
    }

    /// The error [`Loop::run`] returns when called from a set's callback.
    pub(crate) fn run_from_set_callback() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "Loop::run was called from a timer set's callback",
        )
    }
}
