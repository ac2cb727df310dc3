//! Run modes: `NoWait` never blocks, `Once` returns after a callback,
//! `UntilDone` runs everything, `stop` ends a run early and defers the rest,
//! the loop's clock (`now`, `update_now`), nested runs from a callback, and
//! the backend's reported name.

use crate::support::*;

for_each_backend!(
    fn backend_name_is_reported<B: Backend>() {
        let lp = new_loop::<B>();
        assert!(
            ["io_uring", "epoll", "kqueue", "iocp", "wasi-poll"].contains(&lp.backend_name()),
            "unexpected backend name {:?}",
            lp.backend_name()
        );
    }

    /// A loop made for calls from several threads over its life (as the C
    /// API makes them) works the same, and its io_uring ring is not a
    /// single-issuer one.
    fn loop_without_single_issuer_ring<B: Backend>() {
        let mut lp = Loop::<B>::new(Options {
            io_uring_single_issuer: false,
            ..Options::default()
        })
        .expect("creating the loop");
        let caps = lp.capabilities();
        if lp.backend_name() == "io_uring" {
            assert_ne!(
                caps.ring_setup,
                Some("single_issuer+defer_taskrun"),
                "{caps}"
            );
        }
        let (res, _) = run_op(&mut lp, Op::Timer { deadline: 0 }, "a timer");
        expect!(res, OpResult::Timer(Ok(())));
        let (res, _) = run_op(&mut lp, Op::Noop, "a noop");
        expect!(res, OpResult::Noop(Ok(())));
    }

    fn run_nowait_never_blocks<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let id = lp.add(Op::timer(lp.now() + 10_000), move |_, _, _| {
            f.set(true);
            Action::Disarm
        });
        let start = Instant::now();
        for _ in 0..3 {
            lp.run(RunMode::NoWait).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "NoWait blocked for {:?}",
            start.elapsed()
        );
        assert!(!fired.get(), "a 10 s timer fired within NoWait runs");
        assert!(lp.is_active(id));
        assert_eq!(lp.active(), 1);
        assert!(!lp.stopped());
    }

    fn run_once_returns_after_a_callback<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let now = lp.now();
        let far = submit(&mut lp, Op::timer(now + 10_000));
        let noop = submit(&mut lp, Op::Noop);
        lp.run(RunMode::Once).unwrap();
        assert_eq!(noop.calls(), 1, "Once must run the ready noop");
        assert_eq!(far.calls(), 0, "Once must not wait for the 10 s timer");
        assert!(lp.is_active(far.id));

        // Once with only a short timer pending blocks until it fires.
        lp.update_now();
        let now = lp.now();
        let short = submit(&mut lp, Op::timer(now + 3));
        while short.calls() == 0 {
            lp.run(RunMode::Once).unwrap();
        }
        assert_eq!(short.calls(), 1);
        expect!(short.take().0, OpResult::Timer(Ok(())));
        assert_eq!(far.calls(), 0);
    }

    fn run_until_done_runs_everything<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let now = lp.now();
        let mut ops: Vec<Pending> = (0..4)
            .map(|i| submit(&mut lp, Op::timer(now + i)))
            .collect();
        ops.extend((0..3).map(|_| submit(&mut lp, Op::Noop)));
        // A completion that adds more work from its callback: UntilDone runs
        // that too.
        let late = Rc::new(Cell::new(0));
        let l = late.clone();
        lp.add(Op::Noop, move |lp, _, _| {
            let l = l.clone();
            let d = lp.now() + 2;
            lp.add(Op::timer(d), move |_, _, _| {
                l.set(l.get() + 1);
                Action::Disarm
            });
            Action::Disarm
        });
        assert_eq!(lp.active(), 8);
        lp.run(RunMode::UntilDone).unwrap();
        for p in &ops {
            assert_eq!(p.calls(), 1);
            assert!(!lp.is_active(p.id));
        }
        assert_eq!(late.get(), 1);
        assert_eq!(lp.active(), 0);
        assert!(!lp.stopped());
    }

    fn run_with_nothing_active_returns_at_once<B: Backend>() {
        let mut lp = new_loop::<B>();
        let start = Instant::now();
        lp.run(RunMode::Once).unwrap();
        lp.run(RunMode::UntilDone).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        // After work has come and gone, too.
        run_op(&mut lp, Op::Noop, "a noop");
        lp.run(RunMode::Once).unwrap();
        lp.run(RunMode::UntilDone).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "an idle run blocked for {:?}",
            start.elapsed()
        );
        assert_eq!(lp.active(), 0);
    }

    fn stop_ends_until_done_with_work_active<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let now = lp.now();
        let far = submit(&mut lp, Op::timer(now + 10_000));
        let stopper_calls = Rc::new(Cell::new(0));
        let s = stopper_calls.clone();
        lp.add(Op::timer(lp.now() + 2), move |lp, _, _| {
            s.set(s.get() + 1);
            lp.stop();
            Action::Disarm
        });
        let start = Instant::now();
        lp.run(RunMode::UntilDone).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "stop() did not end UntilDone"
        );
        assert_eq!(stopper_calls.get(), 1);
        assert!(lp.stopped(), "stopped() must report the stop");
        assert!(lp.is_active(far.id), "stop must leave work in flight");
        assert_eq!(lp.active(), 1);
        assert_eq!(far.calls(), 0);
        // The next run starts afresh.
        lp.run(RunMode::NoWait).unwrap();
        assert!(!lp.stopped(), "a new run resets stopped()");
    }

    fn stop_defers_the_remaining_callbacks<B: Backend>() {
        let mut lp = new_loop::<B>();
        let order = Rc::new(RefCell::new(Vec::new()));
        for i in 0..3 {
            let o = order.clone();
            lp.add(Op::Noop, move |lp, _, _| {
                o.borrow_mut().push(i);
                if i == 0 {
                    lp.stop();
                }
                Action::Disarm
            });
        }
        lp.run(RunMode::UntilDone).unwrap();
        assert!(lp.stopped());
        assert_eq!(
            *order.borrow(),
            vec![0],
            "stop ends the run after its callback"
        );
        assert_eq!(lp.active(), 2, "the other results wait for the next run");
        lp.run(RunMode::UntilDone).unwrap();
        assert!(!lp.stopped());
        assert_eq!(*order.borrow(), vec![0, 1, 2]);
        assert_eq!(lp.active(), 0);
    }

    fn now_advances_and_update_now<B: Backend>() {
        let mut lp = new_loop::<B>();
        let t0 = lp.now();
        std::thread::sleep(Duration::from_millis(15));
        let t1 = lp.now();
        assert!(
            t1 >= t0 + 15,
            "outside a run now() reads the clock: {t0} -> {t1}"
        );
        // Inside a run it is the tick's cached time, until update_now.
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        std::thread::sleep(Duration::from_millis(5));
        lp.add(Op::Noop, move |lp, _, _| {
            let a = lp.now();
            std::thread::sleep(Duration::from_millis(15));
            let b = lp.now();
            lp.update_now();
            s.borrow_mut().extend([a, b, lp.now()]);
            Action::Disarm
        });
        lp.run(RunMode::UntilDone).unwrap();
        let v = seen.borrow().clone();
        assert!(
            v[0] >= t1 + 5,
            "a callback sees the tick's time: {t1} -> {}",
            v[0]
        );
        assert_eq!(v[1], v[0], "inside a callback now() is cached");
        assert!(v[2] >= v[0] + 15, "update_now refreshes it: {v:?}");
    }

    /// Running the loop from inside a callback works and keeps every
    /// completion's callback at exactly one call.
    fn nested_run_from_a_callback<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let now = lp.now();
        let inner = submit(&mut lp, Op::timer(now + 2));
        let outer_calls = Rc::new(Cell::new(0));
        let inner_seen = Rc::new(Cell::new(0));
        let (oc, is, ic) = (outer_calls.clone(), inner_seen.clone(), inner.calls.clone());
        lp.add(Op::Noop, move |lp, _, _| {
            oc.set(oc.get() + 1);
            lp.run(RunMode::UntilDone).unwrap();
            is.set(ic.get());
            Action::Disarm
        });
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(outer_calls.get(), 1);
        assert_eq!(inner_seen.get(), 1, "the nested run ran the timer");
        assert_eq!(inner.calls(), 1);
        assert_eq!(lp.active(), 0);
    }
);
