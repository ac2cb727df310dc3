//! The life of a completion: noop, rearm (same or changed operation,
//! across operation kinds), park and restart, free, disarm, id errors
//! (busy, stale, wrong kind, a stale id never reaching a reused slot),
//! callbacks seeing themselves inactive, panics in callbacks and in the
//! `Drop` of their captures, and more operations in flight than io_uring
//! has ring entries.

use crate::support::*;

for_each_backend!(
    fn noop_completes_once<B: Backend>() {
        let mut lp = new_loop::<B>();
        let p = submit(&mut lp, Op::Noop);
        assert!(lp.is_active(p.id), "an added completion is active");
        assert_eq!(p.calls(), 0, "nothing runs before the loop does");
        let (res, _) = wait(&mut lp, &p, "a noop");
        expect!(res, OpResult::Noop(Ok(())));
        assert!(!lp.is_active(p.id));
        assert_eq!(lp.active(), 0);
    }

    fn noop_rearm_fires_n_times<B: Backend>() {
        const N: usize = 7;
        let mut lp = new_loop::<B>();
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        let id = lp.add(Op::Noop, move |_, _, res| {
            assert!(matches!(res, OpResult::Noop(Ok(()))));
            c.set(c.get() + 1);
            if c.get() == N {
                Action::Disarm
            } else {
                Action::Rearm
            }
        });
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(count.get(), N);
        assert!(!lp.is_active(id));
        assert_eq!(
            lp.restart(id),
            Err(IdError::Stale),
            "disarmed ids are stale"
        );
    }

    /// One completion reused for different operations: read a pipe, then write
    /// what it read to another pipe, then close that pipe's write end.
    fn rearm_with_changed_op<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r1, w1) = pipe();
        let (r2, w2) = pipe();
        assert_eq!(raw_write(w1.as_raw_fd(), b"ping"), 4);
        let out = w2.into_raw_fd();
        let rfd = r1.as_raw_fd();
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        lp.add(
            Op::Read {
                fd: rfd,
                buf: vec![0; 16].into(),
            },
            move |_, op, res| {
                l.borrow_mut().push(format!("{:?}", op.kind()));
                match res {
                    OpResult::Read(Ok(n)) => {
                        let mut buf = op.take_buf().unwrap();
                        buf.truncate(n);
                        *op = Op::Write {
                            fd: out,
                            buf: buf.into(),
                        };
                        Action::Rearm
                    }
                    OpResult::Write(Ok(n)) => {
                        assert_eq!(n, 4);
                        *op = Op::Close { fd: out };
                        Action::Rearm
                    }
                    OpResult::Close(Ok(())) => Action::Disarm,
                    other => panic!("unexpected {other:?}"),
                }
            },
        );
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(*log.borrow(), vec!["Read", "Write", "Close"]);
        let mut buf = [0u8; 16];
        assert_eq!(raw_read(r2.as_raw_fd(), &mut buf), 4);
        assert_eq!(&buf[..4], b"ping");
        assert_eq!(
            raw_read(r2.as_raw_fd(), &mut buf),
            0,
            "write end was closed"
        );
    }

    fn park_then_op_mut_and_restart<B: Backend>() {
        let mut lp = new_loop::<B>();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let id = lp.add(Op::Noop, move |_, op, res| {
            s.borrow_mut().push(format!("{:?}", op.kind()));
            match res {
                OpResult::Noop(Ok(())) => Action::Park,
                OpResult::Timer(Ok(())) => Action::Disarm,
                other => panic!("unexpected {other:?}"),
            }
        });
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(*seen.borrow(), vec!["Noop"]);
        assert!(!lp.is_active(id), "a parked completion is not active");
        assert_eq!(lp.active(), 0, "UntilDone ends with only parked work");
        // Change the parked op and start it again.
        assert!(matches!(lp.op_mut(id), Ok(Op::Noop)));
        lp.update_now();
        *lp.op_mut(id).unwrap() = Op::timer(lp.now() + 1);
        lp.restart(id).unwrap();
        assert!(lp.is_active(id));
        assert_eq!(
            lp.restart(id),
            Err(IdError::Busy),
            "restart of an active id"
        );
        assert!(matches!(lp.op_mut(id), Err(IdError::Busy)));
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(*seen.borrow(), vec!["Noop", "Timer"]);
        assert_eq!(lp.restart(id), Err(IdError::Stale));
        assert!(matches!(lp.op_mut(id), Err(IdError::Stale)));
        assert_eq!(lp.free(id), Err(IdError::Stale));
    }

    fn id_errors_busy_stale_wrong_kind<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        // Queued (added, not run yet).
        let now = lp.now();
        let t = submit(&mut lp, Op::timer(now + 10_000));
        assert_eq!(lp.restart(t.id), Err(IdError::Busy));
        assert_eq!(lp.free(t.id), Err(IdError::Busy));
        assert!(matches!(lp.op_mut(t.id), Err(IdError::Busy)));
        // In the timer heap.
        lp.run(RunMode::NoWait).unwrap();
        assert!(lp.is_active(t.id));
        assert_eq!(lp.restart(t.id), Err(IdError::Busy));
        assert_eq!(lp.free(t.id), Err(IdError::Busy));
        assert!(matches!(lp.op_mut(t.id), Err(IdError::Busy)));
        // In the backend.
        let (r, _w) = pipe();
        let rd = submit(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 8].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd.calls(), 0);
        assert_eq!(lp.restart(rd.id), Err(IdError::Busy));
        assert_eq!(lp.free(rd.id), Err(IdError::Busy));
        assert_eq!(lp.timer_reset(rd.id, 0), Err(IdError::WrongKind));
        // Parked non-timer: timer_reset is the wrong kind.
        let parked = lp.add(Op::Noop, |_, _, _| Action::Park);
        lp.run(RunMode::NoWait).unwrap();
        assert!(!lp.is_active(parked));
        assert_eq!(lp.timer_reset(parked, 0), Err(IdError::WrongKind));
        lp.free(parked).unwrap();
        // Stale ids.
        assert_eq!(lp.free(parked), Err(IdError::Stale));
        assert_eq!(lp.restart(parked), Err(IdError::Stale));
        assert_eq!(lp.timer_reset(parked, 0), Err(IdError::Stale));
        assert!(!lp.is_active(parked));
        // A new completion may reuse the slot, but the old id stays stale.
        let fresh = lp.add(Op::Noop, |_, _, _| Action::Park);
        assert_ne!(fresh, parked);
        assert_eq!(lp.free(parked), Err(IdError::Stale));
        assert_eq!(lp.restart(parked), Err(IdError::Stale));
    }

    fn free_parked_drops_callback_once<B: Backend>() {
        let mut lp = new_loop::<B>();
        let drops = Rc::new(Cell::new(0));
        let calls = Rc::new(Cell::new(0));
        let (g, c) = (DropCount(drops.clone()), calls.clone());
        let id = lp.add(Op::Noop, move |_, _, _| {
            let _keep = &g;
            c.set(c.get() + 1);
            Action::Park
        });
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(calls.get(), 1);
        assert_eq!(drops.get(), 0, "a parked completion keeps its callback");
        lp.free(id).unwrap();
        assert_eq!(drops.get(), 1, "free drops the callback");
        assert_eq!(lp.free(id), Err(IdError::Stale));
        drop(lp);
        assert_eq!(drops.get(), 1, "dropped exactly once");
        assert_eq!(calls.get(), 1);
    }

    fn free_from_own_callback<B: Backend>() {
        let mut lp = new_loop::<B>();
        let drops = Rc::new(Cell::new(0));
        let calls = Rc::new(Cell::new(0));
        let me: Rc<Cell<Option<Id>>> = Rc::new(Cell::new(None));
        let (g, c, m) = (DropCount(drops.clone()), calls.clone(), me.clone());
        let id = lp.add(Op::Noop, move |lp, _, _| {
            let _keep = &g;
            c.set(c.get() + 1);
            lp.free(m.get().unwrap()).unwrap();
            Action::Rearm // ignored: the completion was freed
        });
        me.set(Some(id));
        lp.run(RunMode::UntilDone).unwrap();
        settle(&mut lp);
        assert_eq!(calls.get(), 1, "a freed completion is not rearmed");
        assert_eq!(drops.get(), 1);
        assert_eq!(lp.free(id), Err(IdError::Stale));
        assert_eq!(lp.active(), 0);
    }

    fn disarm_drops_callback_once<B: Backend>() {
        let mut lp = new_loop::<B>();
        let drops = Rc::new(Cell::new(0));
        let g = DropCount(drops.clone());
        lp.add(Op::Noop, move |_, _, _| {
            let _keep = &g;
            Action::Disarm
        });
        assert_eq!(drops.get(), 0);
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(drops.get(), 1, "Disarm drops the completion at once");
        drop(lp);
        assert_eq!(drops.get(), 1);
    }

    /// More operations in one tick than the io_uring ring has entries, all
    /// finishing at once (completion-queue overflow).
    fn more_ops_than_ring_entries<B: Backend>() {
        const N: usize = 40;
        let mut lp = Loop::<B>::new(Options {
            entries: 2,
            ..Options::default()
        })
        .expect("a loop with a tiny ring");
        let pipes: Vec<_> = (0..N).map(|_| pipe()).collect();
        for (i, (_, w)) in pipes.iter().enumerate() {
            assert_eq!(raw_write(w.as_raw_fd(), &[i as u8]), 1);
        }
        let reads: Vec<Pending> = pipes
            .iter()
            .map(|(r, _)| {
                submit(
                    &mut lp,
                    Op::Read {
                        fd: r.as_raw_fd(),
                        buf: vec![0; 4].into(),
                    },
                )
            })
            .collect();
        let polls: Vec<Pending> = pipes
            .iter()
            .map(|(_, w)| {
                submit(
                    &mut lp,
                    Op::Poll {
                        fd: w.as_raw_fd(),
                        interest: Interest::WRITABLE,
                    },
                )
            })
            .collect();
        assert_eq!(lp.active(), 2 * N);
        run_until(&mut lp, "all reads and polls", || {
            reads.iter().chain(&polls).all(|p| p.done())
        });
        settle(&mut lp);
        for (i, p) in reads.iter().enumerate() {
            let (res, op) = p.take();
            assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 1);
            assert_eq!(
                op.buf().unwrap()[0],
                i as u8,
                "read {i} got another pipe's data"
            );
        }
        for p in &polls {
            assert!(expect!(p.take().0, OpResult::Poll(Ok(r)) => r).writable);
        }
        // Closes through the tiny ring too.
        let closes: Vec<Pending> = pipes
            .into_iter()
            .flat_map(|(r, w)| [r.into_raw_fd(), w.into_raw_fd()])
            .map(|fd| submit(&mut lp, Op::Close { fd }))
            .collect();
        run_until(&mut lp, "all closes", || closes.iter().all(|p| p.done()));
        settle(&mut lp);
        for p in &closes {
            expect!(p.take().0, OpResult::Close(Ok(())));
        }
        assert_eq!(lp.active(), 0);
    }

    /// A freed slot is reused with a new generation: the old id names nothing,
    /// and a cancel through it cannot hit the new completion.
    fn stale_id_never_reaches_a_reused_slot<B: Backend>() {
        let mut lp = new_loop::<B>();
        let old = submit(&mut lp, Op::Noop);
        wait(&mut lp, &old, "noop");
        let (r, _w) = pipe();
        let new = submit(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 4].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_ne!(old.id, new.id);
        assert!(!lp.is_active(old.id));
        assert!(lp.is_active(new.id));
        let (res, _) = run_op(&mut lp, Op::Cancel { target: old.id }, "stale cancel");
        expect!(res, OpResult::Cancel(Err(CancelError::NotFound)));
        assert_eq!(lp.cancel(old.id), Err(CancelError::NotFound));
        assert_eq!(lp.timer_reset(old.id, 0), Err(IdError::Stale));
        assert_eq!(lp.free(old.id), Err(IdError::Stale));
        settle(&mut lp);
        assert!(lp.is_active(new.id), "the new completion was not touched");
        assert_eq!(new.calls(), 0);
    }

    fn add_parked_starts_only_on_restart<B: Backend>() {
        let mut lp = new_loop::<B>();
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        let id =
            lp.add_parked_callback(Op::Noop, move |_: &mut Loop<B>, _: &mut Op, _: OpResult| {
                c.set(c.get() + 1);
                Action::Park
            });
        assert!(!lp.is_active(id));
        assert_eq!(lp.active(), 0);
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(
            calls.get(),
            0,
            "a parked completion does not start by itself"
        );
        lp.restart(id).unwrap();
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(calls.get(), 1);
        let c2 =
            xev::generic::Completion::<B, _>::new(Op::Noop, |_: &mut Loop<B>, _: &mut Op, _| {
                Action::Disarm
            });
        let id2 = lp.add_parked(c2);
        assert!(!lp.is_active(id2));
        lp.free(id2).unwrap();
        lp.free(id).unwrap();
    }

    /// A callback sees itself as not active; after Rearm it is active again.
    fn callback_sees_itself_inactive<B: Backend>() {
        let mut lp = new_loop::<B>();
        let me: Rc<Cell<Option<Id>>> = Rc::new(Cell::new(None));
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (m, s) = (me.clone(), seen.clone());
        let id = lp.add(Op::Noop, move |lp, _, _| {
            s.borrow_mut()
                .push((lp.is_active(m.get().unwrap()), lp.active()));
            if s.borrow().len() == 1 {
                Action::Rearm
            } else {
                Action::Park
            }
        });
        me.set(Some(id));
        lp.run(RunMode::Once).unwrap();
        assert_eq!(*seen.borrow(), vec![(false, 0)]);
        assert!(lp.is_active(id), "rearmed");
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(seen.borrow().len(), 2);
        assert!(!lp.is_active(id), "parked");
    }

    /// A panicking callback: the panic reaches the caller of `run`; the loop
    /// stays usable and drops the completion exactly once.
    fn panic_in_callback_leaves_loop_usable<B: Backend>() {
        let drops = Rc::new(Cell::new(0));
        let g = DropCount(drops.clone());
        let mut lp = new_loop::<B>();
        let id = lp.add(Op::Noop, move |_, _, _| {
            let _keep = &g;
            panic!("deliberate panic in a callback");
        });
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run(RunMode::UntilDone)));
        assert!(r.is_err(), "the panic propagates out of run");
        assert_eq!(drops.get(), 1, "the panicked completion is freed at once");
        assert_eq!(lp.restart(id), Err(IdError::Stale), "its id is stale");
        assert_eq!(lp.free(id), Err(IdError::Stale));
        assert_eq!(lp.active(), 0);
        let (res, _) = run_op(&mut lp, Op::Noop, "noop after a panic");
        expect!(res, OpResult::Noop(Ok(())));
        drop(lp);
        assert_eq!(drops.get(), 1, "and dropped exactly once");
    }

    /// A panic in the `Drop` of a callback's captures (when the completion is
    /// disarmed) never drops anything twice: not when the loop is dropped, not
    /// by a second `free`.
    fn panic_in_drop_of_captures_drops_once<B: Backend>() {
        struct PanicOnDrop(Rc<Cell<u32>>);
        impl Drop for PanicOnDrop {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
                panic!("deliberate panic in Drop");
            }
        }
        let drops = Rc::new(Cell::new(0));
        let mut lp = new_loop::<B>();
        // Disarmed by its callback.
        let g = PanicOnDrop(drops.clone());
        let a = lp.add(Op::Noop, move |_, _, _| {
            let _keep = &g;
            Action::Disarm
        });
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run(RunMode::UntilDone)));
        assert!(r.is_err(), "the Drop's panic propagates out of run");
        assert_eq!(drops.get(), 1);
        assert_eq!(lp.free(a), Err(IdError::Stale));
        // Freed while parked.
        let g = PanicOnDrop(drops.clone());
        let b = lp.add(Op::Noop, move |_, _, _| {
            let _keep = &g;
            Action::Park
        });
        lp.run(RunMode::UntilDone).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.free(b)));
        assert!(r.is_err());
        assert_eq!(drops.get(), 2);
        assert_eq!(
            lp.free(b),
            Err(IdError::Stale),
            "a second free finds nothing"
        );
        // Still in flight when the loop is dropped, beside a well-behaved one.
        let g = PanicOnDrop(drops.clone());
        lp.add(Op::timer(u64::MAX), move |_, _, _| {
            let _keep = &g;
            Action::Disarm
        });
        let quiet = Rc::new(Cell::new(0));
        let q = DropCount(quiet.clone());
        lp.add(Op::timer(u64::MAX), move |_, _, _| {
            let _keep = &q;
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(lp)));
        assert!(
            r.is_err(),
            "the Drop's panic propagates out of the loop's drop"
        );
        assert_eq!(drops.get(), 3, "dropped once");
        assert_eq!(quiet.get(), 1, "the other completion is dropped too");
    }

    /// One completion rearmed through operations the loop handles itself
    /// (noop, timer, cancel) and backend operations (poll, read).
    fn rearm_across_op_kinds<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        assert_eq!(raw_write(w.as_raw_fd(), b"q"), 1);
        let rfd = r.as_raw_fd();
        let stale = submit(&mut lp, Op::Noop);
        wait(&mut lp, &stale, "noop");
        let stale_id = stale.id;
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        lp.add(Op::Noop, move |lp, op, res| {
            l.borrow_mut().push(format!("{res:?}"));
            *op = match l.borrow().len() {
                1 => Op::timer(lp.now() + 1),
                2 => Op::Poll {
                    fd: rfd,
                    interest: Interest::READABLE,
                },
                3 => Op::Read {
                    fd: rfd,
                    buf: vec![0; 4].into(),
                },
                4 => Op::Cancel { target: stale_id },
                5 => Op::Noop,
                _ => return Action::Disarm,
            };
            Action::Rearm
        });
        lp.run(RunMode::UntilDone).unwrap();
        let log = log.borrow();
        assert_eq!(log.len(), 6, "{log:?}");
        assert!(log[0].starts_with("Noop"), "{log:?}");
        assert!(log[1].starts_with("Timer(Ok"), "{log:?}");
        assert!(log[2].starts_with("Poll(Ok"), "{log:?}");
        assert_eq!(log[3], "Read(Ok(1))");
        assert_eq!(log[4], "Cancel(Err(NotFound))");
        assert!(log[5].starts_with("Noop"), "{log:?}");
    }
);
