//! Cross-thread wakeups (`Async`): notifications from another thread,
//! before the wait, coalescing, several handles, two waits on one
//! `Async`, rounds in lockstep with a parked loop.

use crate::support::*;

for_each_backend!(
    fn async_notified_many_times_from_a_thread<B: Backend>() {
        const N: usize = 2_000;
        let mut lp = new_loop::<B>();
        let a = Async::new().unwrap();
        let finished = Arc::new(AtomicBool::new(false));
        let wakes = Rc::new(Cell::new(0usize));
        let disarmed = Rc::new(Cell::new(false));
        let (w, f, d) = (wakes.clone(), finished.clone(), disarmed.clone());
        lp.add(Op::AsyncWait(a.clone()), move |_, _, res| {
            assert!(matches!(res, OpResult::Async(Ok(()))), "{res:?}");
            w.set(w.get() + 1);
            // The thread notifies once more after setting `finished`, so some
            // wake sees it.
            if f.load(Ordering::Acquire) {
                d.set(true);
                Action::Disarm
            } else {
                Action::Rearm
            }
        });
        let th = std::thread::spawn(move || {
            for _ in 0..N {
                a.notify().unwrap();
            }
            finished.store(true, Ordering::Release);
            a.notify().unwrap();
        });
        run_until(&mut lp, "async wakeups", || disarmed.get());
        th.join().unwrap();
        assert!(wakes.get() >= 1, "no wakeup at all");
        assert!(
            wakes.get() <= N + 1,
            "{} wakeups for {} notifies",
            wakes.get(),
            N + 1
        );
        assert_eq!(lp.active(), 0);
    }

    /// A thread and the loop take turns: each notify comes after the
    /// loop answered the previous one, so the loop is mostly parked and
    /// every round needs its own kernel wakeup. epoll and io_uring no
    /// longer reset their eventfd between wakeups (`WAKE_EDGE`): each
    /// signal must wake the loop again on its own.
    fn async_lockstep_rounds_wake_a_parked_loop_each_time<B: Backend>() {
        const ROUNDS: usize = 500;
        let mut lp = new_loop::<B>();
        let a = Async::new().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<usize>();
        let rounds = Rc::new(Cell::new(0usize));
        let r = rounds.clone();
        lp.add(Op::AsyncWait(a.clone()), move |_, _, res| {
            assert!(matches!(res, OpResult::Async(Ok(()))), "{res:?}");
            r.set(r.get() + 1);
            tx.send(r.get()).unwrap();
            if r.get() == ROUNDS {
                Action::Disarm
            } else {
                Action::Rearm
            }
        });
        let th = std::thread::spawn(move || {
            for round in 1..=ROUNDS {
                a.notify().unwrap();
                assert_eq!(rx.recv().unwrap(), round, "answers in order");
            }
        });
        run_until(&mut lp, "every round's wakeup", || rounds.get() == ROUNDS);
        th.join().unwrap();
        assert_eq!(lp.active(), 0);
    }

    /// `Async::try_wait` takes a pending notification without a loop (any
    /// number of notifications make one); a wait that starts after it took
    /// one waits for the next, and a notification a wait took is not there
    /// for `try_wait`.
    fn try_wait_takes_a_pending_notification_at_once<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = Async::new().unwrap();
        assert!(!a.try_wait(), "nothing pending");
        a.notify().unwrap();
        a.notify().unwrap();
        assert!(a.try_wait(), "two notifications make one");
        assert!(!a.try_wait());
        let p = submit(&mut lp, Op::AsyncWait(a.clone()));
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(p.calls(), 0, "the notification was taken before the wait");
        a.notify().unwrap();
        let (res, _) = wait(&mut lp, &p, "the next notification");
        expect!(res, OpResult::Async(Ok(())));
        assert!(!a.try_wait(), "the wait took it");
    }

    fn async_notify_before_wait_is_not_lost<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = Async::new().unwrap();
        a.notify().unwrap();
        a.notify().unwrap();
        let (res, _) = run_op(&mut lp, Op::AsyncWait(a.clone()), "early notify");
        expect!(res, OpResult::Async(Ok(())));
        // From another thread, before the wait is added.
        let remote = a.clone();
        std::thread::spawn(move || remote.notify().unwrap())
            .join()
            .unwrap();
        let (res, _) = run_op(&mut lp, Op::AsyncWait(a), "early remote notify");
        expect!(res, OpResult::Async(Ok(())));
    }

    fn async_notifications_coalesce<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = Async::new().unwrap();
        for _ in 0..5 {
            a.notify().unwrap();
        }
        let (res, _) = run_op(&mut lp, Op::AsyncWait(a.clone()), "first wait");
        expect!(res, OpResult::Async(Ok(())));
        let second = submit(&mut lp, Op::AsyncWait(a.clone()));
        for _ in 0..3 {
            lp.run(RunMode::NoWait).unwrap();
        }
        assert_eq!(second.calls(), 0, "five notifies wake one wait only");
        a.notify().unwrap();
        let (res, _) = wait(&mut lp, &second, "second wait");
        expect!(res, OpResult::Async(Ok(())));
    }

    fn async_several_handles<B: Backend>() {
        let mut lp = new_loop::<B>();
        let handles: Vec<Async> = (0..3).map(|_| Async::new().unwrap()).collect();
        let waits: Vec<Pending> = handles
            .iter()
            .map(|h| submit(&mut lp, Op::AsyncWait(h.clone())))
            .collect();
        lp.run(RunMode::NoWait).unwrap();
        assert!(waits.iter().all(|w| w.calls() == 0));
        let h1 = handles[1].clone();
        std::thread::spawn(move || h1.notify().unwrap())
            .join()
            .unwrap();
        run_until(&mut lp, "wait 1", || waits[1].done());
        settle(&mut lp);
        assert_eq!(waits[0].calls(), 0, "only the notified handle wakes");
        assert_eq!(waits[2].calls(), 0, "only the notified handle wakes");
        let hs = handles.clone();
        std::thread::spawn(move || {
            hs[2].notify().unwrap();
            hs[0].notify().unwrap();
        })
        .join()
        .unwrap();
        run_until(&mut lp, "waits 0 and 2", || {
            waits[0].done() && waits[2].done()
        });
        settle(&mut lp);
        for w in &waits {
            expect!(w.take().0, OpResult::Async(Ok(())));
        }
    }

    /// Two waits on one Async: one notify wakes one of them.
    fn two_waits_on_one_async<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = Async::new().unwrap();
        let w1 = submit(&mut lp, Op::AsyncWait(a.clone()));
        let w2 = submit(&mut lp, Op::AsyncWait(a.clone()));
        lp.run(RunMode::NoWait).unwrap();
        a.notify().unwrap();
        run_until(&mut lp, "one wait", || w1.done() || w2.done());
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(2));
            lp.run(RunMode::NoWait).unwrap();
        }
        assert_eq!(w1.calls() + w2.calls(), 1, "one notify, one wakeup");
        a.notify().unwrap();
        run_until(&mut lp, "the other wait", || w1.done() && w2.done());
        settle(&mut lp);
        expect!(w1.take().0, OpResult::Async(Ok(())));
        expect!(w2.take().0, OpResult::Async(Ok(())));
    }
);
