//! Timer sets (compact timers that share one callback): firing order and
//! never early, stop and reset, ids that go stale, a callback that starts
//! timers and removes its own set, run modes, a panicking callback, and
//! dropping the loop (with a panicking `Drop` among the callbacks).

use std::panic::{self, AssertUnwindSafe};

use xev::{TimerId, TimerSet};

use crate::support::*;

/// What a logged set's callback saw: `(key, loop clock)` per call.
type Log = Rc<RefCell<Vec<(u64, u64)>>>;

/// A set whose callback logs `(key, loop clock)`.
fn logged_set<B: Backend>(lp: &mut Loop<B>) -> (TimerSet, Log) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let set = lp
        .add_timer_set(move |lp, key| l.borrow_mut().push((key, lp.now())))
        .unwrap();
    (set, log)
}

fn keys(log: &Log) -> Vec<u64> {
    log.borrow().iter().map(|&(k, _)| k).collect()
}

/// Counts drops of a callback's capture; panics in `Drop` when asked.
struct DropCount(Rc<Cell<u32>>, bool);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        if self.1 {
            panic!("DropCount panics on purpose");
        }
    }
}

for_each_backend!(
    /// Timers fire by deadline, equal deadlines in start order, never
    /// before their deadline, alongside timer completions.
    fn set_timers_fire_in_deadline_then_start_order<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (set, log) = logged_set(&mut lp);
        let now = lp.now();
        for (d, k) in [(30, 1), (10, 2), (20, 3), (10, 4), (0, 5), (20, 6)] {
            lp.start_timer(set, now + d, k).unwrap();
        }
        let completion_fired = Rc::new(Cell::new(false));
        let c = completion_fired.clone();
        lp.add(Op::timer(now + 15), move |_, _, res| {
            expect!(res, OpResult::Timer(Ok(())));
            c.set(true);
            Action::Disarm
        });
        assert_eq!(lp.pending_timers(set), Ok(6));
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(keys(&log), [5, 2, 4, 3, 6, 1]);
        assert!(completion_fired.get());
        let deadlines = [(1, 30), (2, 10), (3, 20), (4, 10), (5, 0), (6, 20)];
        for &(k, at) in log.borrow().iter() {
            let d = deadlines.iter().find(|x| x.0 == k).unwrap().1;
            assert!(at >= now + d, "key {k} fired at {at}, deadline {}", now + d);
        }
        assert_eq!(lp.pending_timers(set), Ok(0));
    }

    /// A stopped timer never fires and gives its key back; a reset one
    /// fires at its new deadline with the same id; ids of fired or
    /// stopped timers, and of another loop, are stale.
    fn set_timers_stop_and_reset<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (set, log) = logged_set(&mut lp);
        let now = lp.now();
        let a = lp.start_timer(set, now + 5, 1).unwrap();
        let b = lp.start_timer(set, now + 10, 2).unwrap();
        let c = lp.start_timer(set, now + 60_000, 3).unwrap();
        assert_eq!(lp.stop_timer(a), Ok(1));
        assert_eq!(lp.stop_timer(a), Err(IdError::Stale));
        assert_eq!(lp.reset_timer(a, now), Err(IdError::Stale));
        lp.reset_timer(c, now + 1).unwrap(); // earlier
        lp.reset_timer(b, now + 20).unwrap(); // later
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(keys(&log), [3, 2]);
        let at_b = log.borrow()[1].1;
        assert!(at_b >= now + 20, "the reset timer fired at {at_b}");
        assert_eq!(lp.stop_timer(b), Err(IdError::Stale), "fired");
        assert_eq!(lp.reset_timer(c, now), Err(IdError::Stale), "fired");
        // Another loop's ids and sets are stale here.
        let mut other = new_loop::<B>();
        let (oset, _) = logged_set(&mut other);
        let oid: TimerId = other.start_timer(oset, 0, 9).unwrap();
        assert_eq!(lp.stop_timer(oid), Err(IdError::Stale));
        assert_eq!(lp.start_timer(oset, 0, 9), Err(IdError::Stale));
        assert_eq!(lp.pending_timers(oset), Err(IdError::Stale));
        assert_eq!(lp.remove_timer_set(oset), Err(IdError::Stale));
        assert_eq!(other.stop_timer(oid), Ok(9));
    }

    /// A callback starts the next timer of its own set (a periodic timer)
    /// and, at the last, removes its set: the callback is dropped when that
    /// call returns, once, and the set's id goes stale. A set with pending
    /// timers cannot be removed.
    fn a_set_callback_restarts_and_removes_its_set<B: Backend>() {
        let mut lp = new_loop::<B>();
        let drops = Rc::new(Cell::new(0));
        let guard = DropCount(drops.clone(), false);
        let fired = Rc::new(Cell::new(0u64));
        let f = fired.clone();
        let me: Rc<Cell<Option<TimerSet>>> = Rc::new(Cell::new(None));
        let me2 = me.clone();
        let d = drops.clone();
        let set = lp
            .add_timer_set(move |lp, key| {
                let _keep = &guard;
                f.set(f.get() + 1);
                let set = me2.get().unwrap();
                if key < 4 {
                    lp.start_timer(set, lp.now() + 1, key + 1).unwrap();
                } else {
                    lp.remove_timer_set(set).unwrap();
                    assert_eq!(d.get(), 0, "dropped while it runs");
                    assert_eq!(lp.start_timer(set, 0, 0), Err(IdError::Stale));
                }
            })
            .unwrap();
        me.set(Some(set));
        lp.start_timer(set, 0, 0).unwrap();
        assert_eq!(lp.remove_timer_set(set), Err(IdError::Busy));
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(fired.get(), 5);
        assert_eq!(drops.get(), 1, "dropped once, after its last call");
        assert_eq!(lp.pending_timers(set), Err(IdError::Stale));
        assert_eq!(lp.remove_timer_set(set), Err(IdError::Stale));
        // An idle set is removed (and dropped) at once.
        let d2 = Rc::new(Cell::new(0));
        let g2 = DropCount(d2.clone(), false);
        let idle = lp
            .add_timer_set(move |_, _| {
                let _keep = &g2;
            })
            .unwrap();
        lp.remove_timer_set(idle).unwrap();
        assert_eq!(d2.get(), 1);
    }

    /// `Once` returns after a set callback ran; `NoWait` fires what is due;
    /// `stop` from a set callback ends the run with the next timer pending;
    /// a set callback cannot run the loop.
    fn set_timers_and_run_modes<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (set, log) = logged_set(&mut lp);
        let now = lp.now();
        lp.start_timer(set, now + 1, 1).unwrap();
        lp.start_timer(set, now + 60_000, 2).unwrap();
        lp.run(RunMode::Once).unwrap();
        assert_eq!(keys(&log), [1]);
        lp.start_timer(set, 0, 3).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(keys(&log), [1, 3]);
        let stopper = lp
            .add_timer_set(|lp, _| {
                let err = lp.run(RunMode::NoWait).unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
                lp.stop();
            })
            .unwrap();
        lp.start_timer(stopper, 0, 0).unwrap();
        lp.start_timer(set, 0, 4).unwrap();
        lp.run(RunMode::UntilDone).unwrap();
        assert!(lp.stopped());
        assert_eq!(lp.pending_timers(stopper), Ok(0));
        assert_eq!(lp.pending_timers(set), Ok(2), "key 4 and the far timer");
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(keys(&log), [1, 3, 4]);
    }

    /// A callback that keeps starting timers already due cannot hold the
    /// loop in one tick: each `NoWait` run fires only the timers due when
    /// its tick began.
    fn timers_started_from_a_set_callback_wait_for_the_next_tick<B: Backend>() {
        let mut lp = new_loop::<B>();
        let fired = Rc::new(Cell::new(0u32));
        let f = fired.clone();
        let me: Rc<Cell<Option<TimerSet>>> = Rc::new(Cell::new(None));
        let me2 = me.clone();
        let set = lp
            .add_timer_set(move |lp, key| {
                f.set(f.get() + 1);
                lp.start_timer(me2.get().unwrap(), 0, key).unwrap();
            })
            .unwrap();
        me.set(Some(set));
        // A timer far ahead does not count: only timers due fire.
        let far = lp.start_timer(set, lp.now() + 3_600_000, 0).unwrap();
        lp.start_timer(set, 0, 1).unwrap();
        lp.start_timer(set, 0, 2).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(fired.get(), 2);
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(fired.get(), 4);
        assert_eq!(lp.pending_timers(set), Ok(3));
        assert_eq!(lp.stop_timer(far), Ok(0));
    }

    /// A panic in a set callback leaves `run` with that panic; the timer
    /// that panicked is gone, its set and the other timers work on.
    fn a_panicking_set_callback_leaves_the_loop_usable<B: Backend>() {
        let mut lp = new_loop::<B>();
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let set = lp
            .add_timer_set(move |_, key| {
                if key == 1 {
                    panic!("set callback panics on purpose");
                }
                l.borrow_mut().push(key);
            })
            .unwrap();
        let now = lp.now();
        let first = lp.start_timer(set, now, 1).unwrap();
        lp.start_timer(set, now + 1, 2).unwrap();
        let res = panic::catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::UntilDone)));
        assert!(res.is_err());
        assert_eq!(lp.stop_timer(first), Err(IdError::Stale));
        lp.start_timer(set, 0, 3).unwrap();
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(*log.borrow(), [3, 2]);
    }

    /// Dropping the loop drops every set's callback once, without calling
    /// them, even when one callback's capture panics in `Drop`: the drop
    /// then panics after dropping the rest.
    fn dropping_the_loop_drops_set_callbacks<B: Backend>() {
        let drops = Rc::new(Cell::new(0));
        let called = Rc::new(Cell::new(false));
        let mut lp = new_loop::<B>();
        for panics in [false, true, false] {
            let g = DropCount(drops.clone(), panics);
            let c = called.clone();
            let set = lp
                .add_timer_set(move |_, _| {
                    let _keep = &g;
                    c.set(true);
                })
                .unwrap();
            lp.start_timer(set, lp.now() + 60_000, 0).unwrap();
        }
        let res = panic::catch_unwind(AssertUnwindSafe(move || drop(lp)));
        assert!(res.is_err(), "the panic in Drop comes out");
        assert_eq!(drops.get(), 3);
        assert!(!called.get());
    }
);
