//! Timers on the loop's timing wheel: deadline and insertion order, timers
//! in the past and far in the future, rearms, resets (earlier, later,
//! before the first run, of parked, undelivered and self-resetting timers),
//! and many timers with cancels and resets.

use crate::support::*;

/// Adds a timer that logs `(label, loop clock)` when it fires.
fn logged_timer<B: Backend>(
    lp: &mut Loop<B>,
    deadline: u64,
    label: u32,
    log: &Rc<RefCell<Vec<(u32, u64)>>>,
) -> Id {
    let l = log.clone();
    lp.add(Op::timer(deadline), move |lp, _, res| {
        assert!(matches!(res, OpResult::Timer(Ok(()))), "{res:?}");
        l.borrow_mut().push((label, lp.now()));
        Action::Disarm
    })
}

fn labels(log: &Rc<RefCell<Vec<(u32, u64)>>>) -> Vec<u32> {
    log.borrow().iter().map(|&(l, _)| l).collect()
}

for_each_backend!(
    /// A deadline computed outside the loop after a long setup counts from
    /// when it was computed, not from the loop's last tick (the cached clock
    /// is not stale outside a run).
    fn timer_set_after_setup_counts_from_when_it_was_set<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.run(RunMode::NoWait).unwrap();
        let setup = Instant::now();
        std::thread::sleep(Duration::from_millis(40)); // "setup" after the last tick
        let armed_at = Instant::now();
        let fired = Rc::new(Cell::new(None));
        let f = fired.clone();
        lp.add(Op::timer(lp.now() + 30), move |_, _, res| {
            expect!(res, OpResult::Timer(Ok(())));
            f.set(Some(Instant::now()));
            Action::Disarm
        });
        run_until(&mut lp, "the timer", || fired.get().is_some());
        let waited = fired.get().unwrap() - armed_at;
        // Lower bound only (a loaded machine may fire late, never early); the
        // clock counts whole milliseconds, so up to 1 ms is lost to rounding.
        assert!(
            waited >= Duration::from_millis(29),
            "fired {waited:?} after being set (setup took {:?})",
            armed_at - setup
        );
    }

    /// `Loop::ms_at` gives an instant's loop time, rounded up: a timer for
    /// it never fires before the instant; instants before the loop map to 0,
    /// and later instants to later (or equal) times.
    fn timer_at_an_instant_never_fires_before_it<B: Backend>() {
        let before = Instant::now();
        let mut lp = new_loop::<B>();
        assert_eq!(lp.ms_at(before), 0, "an instant before the loop");
        let target = Instant::now() + Duration::from_micros(25_500);
        let at = lp.ms_at(target);
        assert!(at >= 25, "{at}");
        assert!(lp.ms_at(target + Duration::from_millis(1)) > at);
        assert!(lp.ms_at(target + Duration::from_nanos(1)) >= at);
        let fired = Rc::new(Cell::new(None));
        let f = fired.clone();
        lp.add(Op::timer(at), move |_, _, res| {
            expect!(res, OpResult::Timer(Ok(())));
            f.set(Some(Instant::now()));
            Action::Disarm
        });
        run_until(&mut lp, "the timer", || fired.get().is_some());
        let fired = fired.get().unwrap();
        assert!(fired >= target, "fired {:?} early", target - fired);
    }

    /// A loop without timers reads no clock at each tick, but `now` in a
    /// callback is still the time of its tick: the same for every call in
    /// one tick, and later in a later tick. The first callback waits (on the
    /// clock, not the loop) until 3 ms have passed before it rearms.
    fn now_in_callbacks_follows_the_ticks_without_timers<B: Backend>() {
        let mut lp = new_loop::<B>();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        lp.add(Op::Noop, move |lp, _, res| {
            expect!(res, OpResult::Noop(Ok(())));
            let first = lp.now();
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(3) {
                std::hint::spin_loop();
            }
            assert_eq!(lp.now(), first, "one time per tick");
            s.borrow_mut().push(first);
            if s.borrow().len() == 2 {
                Action::Disarm
            } else {
                Action::Rearm
            }
        });
        // No guard timer (`run_until` adds one): the loop must hold none.
        // Two no-ops complete at once, so this run ends.
        lp.run(RunMode::UntilDone).unwrap();
        let seen = seen.borrow();
        assert!(seen[1] >= seen[0] + 2, "{seen:?}");
    }

    fn timer_rearm_fires_n_times<B: Backend>() {
        const N: usize = 5;
        let mut lp = new_loop::<B>();
        lp.update_now();
        let fires = Rc::new(RefCell::new(Vec::new()));
        let f = fires.clone();
        let first = lp.now() + 1;
        lp.add(Op::timer(first), move |lp, op, res| {
            assert!(matches!(res, OpResult::Timer(Ok(()))));
            let Op::Timer { deadline } = *op else {
                panic!("op changed under us: {op:?}")
            };
            f.borrow_mut().push((deadline, lp.now()));
            if f.borrow().len() == N {
                return Action::Disarm;
            }
            *op = Op::timer(lp.now() + 2);
            Action::Rearm
        });
        lp.run(RunMode::UntilDone).unwrap();
        let fires = fires.borrow();
        assert_eq!(fires.len(), N);
        for &(deadline, at) in fires.iter() {
            assert!(
                at >= deadline,
                "timer fired at {at} before its deadline {deadline}"
            );
        }
    }

    fn timers_fire_in_deadline_order<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let now = lp.now();
        let log = Rc::default();
        let deadlines = [30u64, 10, 20, 5, 25, 1, 15];
        for (i, d) in deadlines.iter().enumerate() {
            logged_timer(&mut lp, now + d, i as u32, &log);
        }
        lp.run(RunMode::UntilDone).unwrap();
        let mut expected: Vec<(u64, u32)> = deadlines
            .iter()
            .enumerate()
            .map(|(i, &d)| (d, i as u32))
            .collect();
        expected.sort();
        assert_eq!(
            labels(&log),
            expected.iter().map(|&(_, l)| l).collect::<Vec<_>>()
        );
        for &(label, at) in log.borrow().iter() {
            let d = now + deadlines[label as usize];
            assert!(
                at >= d,
                "timer {label} fired at {at}, before its deadline {d}"
            );
        }
    }

    fn equal_deadlines_fire_in_insertion_order<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let d = lp.now() + 3;
        let log = Rc::default();
        for i in 0..8 {
            logged_timer(&mut lp, d, i, &log);
        }
        // Equal deadlines already in the past, too.
        let past = Rc::default();
        for i in 0..5 {
            logged_timer(&mut lp, 0, i, &past);
        }
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(labels(&log), (0..8).collect::<Vec<_>>());
        assert_eq!(labels(&past), (0..5).collect::<Vec<_>>());
    }

    fn timer_in_the_past_fires_on_next_tick<B: Backend>() {
        let mut lp = new_loop::<B>();
        std::thread::sleep(Duration::from_millis(3));
        let p = submit(&mut lp, Op::timer(0));
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(p.calls(), 1, "an expired deadline fires on the next tick");
        expect!(p.take().0, OpResult::Timer(Ok(())));
    }

    /// Timer `a` is moved later from the callback of timer `b`, whose
    /// deadline comes first, so `a` is still pending then (in the wheel,
    /// or due and not yet delivered) however slowly the loop runs: it
    /// fires once, at its new deadline, after `b`.
    fn timer_reset_moves_a_pending_timer_later<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let now = lp.now();
        let log = Rc::default();
        let a = logged_timer(&mut lp, now + 20, 0, &log);
        let moved_to = Rc::new(Cell::new(0));
        let (l, m) = (log.clone(), moved_to.clone());
        lp.add(Op::timer(now + 10), move |lp, _, res| {
            assert!(matches!(res, OpResult::Timer(Ok(()))), "{res:?}");
            l.borrow_mut().push((1, lp.now()));
            assert!(lp.is_active(a), "a is pending when b fires");
            let to = lp.now().max(now + 20) + 30;
            lp.timer_reset(a, to).unwrap();
            m.set(to);
            Action::Disarm
        });
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(labels(&log), vec![1, 0]);
        let at = log.borrow()[1].1;
        let to = moved_to.get();
        assert!(at >= to, "moved timer fired at {at}, before {to}");
    }

    /// A far timer moved to now fires well before its first deadline; one
    /// still pending (also far) is not disturbed.
    fn timer_reset_moves_a_pending_timer_earlier<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let now = lp.now();
        let log = Rc::default();
        let a = logged_timer(&mut lp, now + 10_000, 0, &log);
        let b = logged_timer(&mut lp, now + 20_000, 1, &log);
        lp.run(RunMode::NoWait).unwrap();
        lp.update_now();
        lp.timer_reset(a, lp.now() + 3).unwrap();
        run_until(&mut lp, "the moved timer", || !log.borrow().is_empty());
        assert_eq!(labels(&log), vec![0]);
        assert!(log.borrow()[0].1 < now + 10_000);
        assert!(lp.is_active(b));
        lp.timer_reset(b, lp.now()).unwrap();
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(labels(&log), vec![0, 1]);
    }

    fn timer_reset_before_first_run<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let log = Rc::default();
        let now = lp.now();
        let a = logged_timer(&mut lp, now + 10_000, 0, &log);
        lp.timer_reset(a, lp.now() + 2).unwrap(); // still queued
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(labels(&log), vec![0]);
    }

    fn timer_reset_starts_a_parked_timer<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        let id = lp.add(Op::timer(lp.now() + 1), move |_, _, res| {
            assert!(matches!(res, OpResult::Timer(Ok(()))));
            c.set(c.get() + 1);
            Action::Park
        });
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(count.get(), 1);
        assert!(!lp.is_active(id));
        lp.update_now();
        let d = lp.now() + 3;
        lp.timer_reset(id, d).unwrap();
        assert!(lp.is_active(id), "timer_reset starts a parked timer");
        assert!(matches!(lp.op_mut(id), Err(IdError::Busy)));
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(count.get(), 2);
        assert!(lp.now() >= d);
        lp.free(id).unwrap();
    }

    fn timer_reset_from_own_callback_rearms<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let fires = Rc::new(RefCell::new(Vec::new()));
        let me: Rc<Cell<Option<Id>>> = Rc::new(Cell::new(None));
        let (f, m) = (fires.clone(), me.clone());
        let id = lp.add(Op::timer(lp.now() + 1), move |lp, op, res| {
            assert!(matches!(res, OpResult::Timer(Ok(()))));
            let Op::Timer { deadline } = *op else {
                panic!("{op:?}")
            };
            f.borrow_mut().push((deadline, lp.now()));
            if f.borrow().len() == 1 {
                let d = lp.now() + 4;
                lp.timer_reset(m.get().unwrap(), d).unwrap();
                // A second reset before returning wins.
                lp.timer_reset(m.get().unwrap(), d + 1).unwrap();
            }
            Action::Disarm // the reset re-arms it anyway (libxev semantics)
        });
        me.set(Some(id));
        lp.run(RunMode::UntilDone).unwrap();
        let fires = fires.borrow();
        assert_eq!(
            fires.len(),
            2,
            "reset from the callback must rearm: {fires:?}"
        );
        let (d2, at2) = fires[1];
        assert_eq!(
            d2,
            fires[0].1 + 5,
            "the op carries the last reset's deadline"
        );
        assert!(at2 >= d2, "fired at {at2} before {d2}");
        assert_eq!(lp.timer_reset(id, 0), Err(IdError::Stale));
    }

    /// A timer whose result is waiting (the run was stopped before its
    /// callback) is taken back by `timer_reset` and fires once, later.
    fn timer_reset_of_an_undelivered_timer<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        lp.add(Op::Noop, |lp, _, _| {
            lp.stop();
            Action::Disarm
        });
        let t = submit(&mut lp, Op::timer(0));
        lp.run(RunMode::UntilDone).unwrap();
        assert!(lp.stopped());
        assert_eq!(t.calls(), 0, "timer result must still be waiting");
        lp.update_now();
        let d = lp.now() + 5;
        lp.timer_reset(t.id, d).unwrap();
        let (res, _) = wait(&mut lp, &t, "the reset timer");
        expect!(res, OpResult::Timer(Ok(())));
        assert!(lp.now() >= d);
    }

    fn far_future_timers_do_not_overflow<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let max = submit(&mut lp, Op::timer(u64::MAX));
        let now = lp.now();
        let half = submit(&mut lp, Op::timer(now.saturating_add(u64::MAX / 2)));
        for _ in 0..3 {
            lp.run(RunMode::NoWait).unwrap();
        }
        assert_eq!(max.calls() + half.calls(), 0);
        assert!(lp.is_active(max.id) && lp.is_active(half.id));
        // Moving one far away and back works too.
        lp.timer_reset(half.id, u64::MAX).unwrap();
        lp.timer_reset(half.id, u64::MAX - 1).unwrap();
        let c1 = submit(&mut lp, Op::Cancel { target: max.id });
        let c2 = submit(&mut lp, Op::Cancel { target: half.id });
        run_until(&mut lp, "cancels", || {
            c1.done() && c2.done() && max.done() && half.done()
        });
        settle(&mut lp);
        expect!(max.take().0, OpResult::Timer(Err(TimerError::Canceled)));
        expect!(half.take().0, OpResult::Timer(Err(TimerError::Canceled)));
        expect!(c1.take().0, OpResult::Cancel(Ok(())));
        expect!(c2.take().0, OpResult::Cancel(Ok(())));
    }

    /// A blocking wait bounded only by a far-future timer still works (the
    /// timeout handed to the kernel must not overflow into an error) and is
    /// interrupted by other work.
    fn far_future_wait_is_woken_by_other_work<B: Backend>() {
        for deadline in [u64::MAX, u64::MAX / 2] {
            let mut lp = new_loop::<B>();
            lp.update_now();
            let far = submit(&mut lp, Op::timer(deadline));
            let a = Async::new().unwrap();
            let w = submit(&mut lp, Op::AsyncWait(a.clone()));
            let th = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                a.notify().unwrap();
            });
            lp.run(RunMode::Once)
                .expect("a far-future wait must not fail");
            th.join().unwrap();
            assert_eq!(w.calls(), 1, "the async wait fired");
            assert_eq!(far.calls(), 0);
            // The far timer's wait must not be an error when nothing else comes
            // either: bounded by the NoWait pass here.
            lp.run(RunMode::NoWait).unwrap();
            assert_eq!(far.calls(), 0);
        }
    }

    /// Many timers with pseudo-random deadlines, some canceled and some reset:
    /// each fires or is canceled exactly once, in deadline order, never early.
    fn many_timers_with_cancels_and_resets<B: Backend>() {
        const N: usize = 300;
        let mut lp = new_loop::<B>();
        lp.update_now();
        let now = lp.now();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        // (timer, deadline, loop clock when reported, fired rather than canceled)
        type Log = Rc<RefCell<Vec<(usize, u64, u64, bool)>>>;
        let log: Log = Rc::default();
        let mut ids = Vec::new();
        let mut deadlines = Vec::new();
        // Deadlines well clear of the setup below, so that a busy machine
        // cannot make a timer expire before it is canceled or reset.
        for i in 0..N {
            let d = now + 200 + rnd(40);
            let l = log.clone();
            ids.push(lp.add(Op::timer(d), move |lp, op, res| {
                let Op::Timer { deadline } = *op else {
                    panic!()
                };
                let ok = match res {
                    OpResult::Timer(Ok(())) => true,
                    OpResult::Timer(Err(TimerError::Canceled)) => false,
                    other => panic!("{other:?}"),
                };
                l.borrow_mut().push((i, deadline, lp.now(), ok));
                Action::Disarm
            }));
            deadlines.push(d);
        }
        lp.run(RunMode::NoWait).unwrap();
        let mut canceled = std::collections::HashSet::new();
        for i in 0..N {
            match rnd(6) {
                0 => {
                    lp.cancel(ids[i]).expect("cancel of a pending timer");
                    canceled.insert(i);
                }
                1 => {
                    deadlines[i] = now + 200 + rnd(40);
                    lp.timer_reset(ids[i], deadlines[i]).unwrap();
                }
                _ => {}
            }
        }
        lp.run(RunMode::UntilDone).unwrap();
        let log = log.borrow();
        assert_eq!(log.len(), N, "every timer reported exactly once");
        let mut seen = std::collections::HashSet::new();
        let mut last = 0;
        for &(i, deadline, at, ok) in log.iter() {
            assert!(seen.insert(i), "timer {i} reported twice");
            assert_eq!(ok, !canceled.contains(&i), "timer {i}");
            if ok {
                assert_eq!(deadline, deadlines[i]);
                assert!(at >= deadline, "timer {i} fired at {at} before {deadline}");
                assert!(
                    deadline >= last,
                    "timer {i} ({deadline}) fired after one at {last}"
                );
                last = deadline;
            }
        }
    }
);
