//! Regressions for libxev's stale-completion bugs (kqueue #122, #169, #230
//! and epoll #234), written for every backend since the bug classes are
//! generic: a completion disarmed in `NoWait`, ready at submission, canceled
//! after a rearm, retired in one batch, and an async wakeup consumed by a
//! dropped loop.

use crate::support::*;

for_each_backend!(
    /// libxev #122: a `no_wait` tick returned with registration changes for a
    /// disarmed completion still unsubmitted, leaving the kernel pointing at
    /// freed memory. Here: only NoWait runs; a read disarms, its slot is reused
    /// by another completion, more data arrives: the old callback never fires
    /// again and the new one fires exactly once.
    fn stale_after_nowait_disarm<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        let first = Rc::new(Cell::new(0));
        let f = first.clone();
        let id = lp.add(
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 1].into(),
            },
            move |_, _, _| {
                f.set(f.get() + 1);
                Action::Disarm
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(raw_write(w.as_raw_fd(), b"a"), 1);
        let start = Instant::now();
        while first.get() == 0 && start.elapsed() < Duration::from_millis(GUARD_MS) {
            lp.run(RunMode::NoWait).unwrap();
            if first.get() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(first.get(), 1);
        assert!(!lp.is_active(id));
        // A new completion (most likely in the freed slot) on another pipe.
        let (r2, w2) = pipe();
        let second = Rc::new(Cell::new(0));
        let s2 = second.clone();
        let id2 = lp.add(
            Op::Read {
                fd: r2.as_raw_fd(),
                buf: vec![0; 1].into(),
            },
            move |_, _, res| {
                expect!(res, OpResult::Read(Ok(1)));
                s2.set(s2.get() + 1);
                Action::Disarm
            },
        );
        assert_ne!(id, id2, "a reused slot gets a new generation");
        lp.run(RunMode::NoWait).unwrap();
        // Data for the old, disarmed read must not reach anyone.
        assert_eq!(raw_write(w.as_raw_fd(), b"b"), 1);
        for _ in 0..5 {
            lp.run(RunMode::NoWait).unwrap();
        }
        assert_eq!(first.get(), 1, "the disarmed read fired again");
        assert_eq!(
            second.get(),
            0,
            "the new read fired for the old pipe's data"
        );
        assert_eq!(raw_write(w2.as_raw_fd(), b"c"), 1);
        run_until(&mut lp, "the new read", || second.get() == 1);
        settle(&mut lp);
        assert_eq!((first.get(), second.get()), (1, 1));
    }

    /// libxev #169: a completion whose descriptor was ready at submission was
    /// put in two queues at once. Here: data is ready before each rearmed read
    /// starts, and more keeps arriving; every read fires exactly once per
    /// rearm, in order, and the bytes add up.
    fn ready_at_submission_rearm_fires_once_each<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        assert_eq!(raw_write(w.as_raw_fd(), b"0123456789"), 10);
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let wfd = w.as_raw_fd();
        lp.add(
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 1].into(),
            },
            move |_, op, res| {
                let n = expect!(res, OpResult::Read(Ok(n)) => n);
                g.borrow_mut().extend_from_slice(&op.buf().unwrap()[..n]);
                // Keep the descriptor ready while the rearmed read is queued.
                // (Writes after reads 1..=15: 10 + 15 = 25 bytes in all.)
                if g.borrow().len() <= 15 {
                    assert_eq!(raw_write(wfd, b"x"), 1);
                }
                if g.borrow().len() == 25 {
                    Action::Disarm
                } else {
                    Action::Rearm
                }
            },
        );
        let g = got.clone();
        run_until(&mut lp, "25 one-byte reads", || g.borrow().len() == 25);
        settle(&mut lp);
        let got = got.borrow();
        assert_eq!(got.len(), 25, "one callback per read, none doubled");
        assert_eq!(lp.active(), 0);
        assert_eq!(&got[..10], b"0123456789");
        assert!(got[10..].iter().all(|&b| b == b'x'));
    }

    /// libxev #230 (and its fix #245): a read whose descriptor was ready at
    /// submission, rearmed from its callback, was left "dead" while still
    /// registered, so a cancel did nothing and the callback kept firing. Here:
    /// rearm once, cancel, write more: exactly one `Canceled`, no read after it.
    fn cancel_after_rearm_of_ready_read<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        assert_eq!(raw_write(w.as_raw_fd(), b"ab"), 2);
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let l = log.clone();
        let id = lp.add(
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 1].into(),
            },
            move |_, _, res| {
                let done = res.is_canceled();
                l.borrow_mut().push(format!("{res:?}"));
                if done || l.borrow().len() >= 2 {
                    // Second read: keep it armed (it will wait for data).
                    if done {
                        return Action::Disarm;
                    }
                }
                Action::Rearm
            },
        );
        let l = log.clone();
        run_until(&mut lp, "two reads", || l.borrow().len() == 2);
        // The rearmed third read is waiting now (the pipe is empty).
        lp.run(RunMode::NoWait).unwrap();
        assert!(lp.is_active(id));
        let cancel = submit(&mut lp, Op::Cancel { target: id });
        let l = log.clone();
        run_until(&mut lp, "the cancel", || {
            cancel.done() && l.borrow().len() == 3
        });
        expect!(cancel.take().0, OpResult::Cancel(Ok(())));
        assert_eq!(raw_write(w.as_raw_fd(), b"c"), 1);
        settle(&mut lp);
        let log = log.borrow();
        assert_eq!(log.len(), 3, "{log:?}");
        assert_eq!(log[2], "Read(Err(Canceled))", "{log:?}");
    }

    /// libxev #234: an epoll batch delivered an event to a completion that had
    /// already been retired earlier in the same batch (a queued write's
    /// callback then ran twice). Here: a read and a write wait on one socket,
    /// the peer resets it so both directions report in one batch; the read's
    /// callback cancels the write: each callback fires exactly once.
    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    fn one_batch_retire_fires_once<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (a, b) = tcp_pair();
        fill(a.as_raw_fd());
        let calls = Rc::new(RefCell::new(Vec::<String>::new()));
        let write_id = Rc::new(Cell::new(None));
        let c = calls.clone();
        let wid = write_id.clone();
        lp.add(
            Op::Read {
                fd: a.as_raw_fd(),
                buf: vec![0; 8].into(),
            },
            move |lp, _, res| {
                c.borrow_mut().push(format!("read {res:?}"));
                if let Some(id) = wid.get() {
                    let r = lp.cancel(id);
                    c.borrow_mut().push(format!("cancel {r:?}"));
                }
                Action::Disarm
            },
        );
        let c = calls.clone();
        let id = lp.add(
            Op::Write {
                fd: a.as_raw_fd(),
                buf: (vec![7; 1 << 16]).into(),
            },
            move |_, _, res| {
                c.borrow_mut().push(format!(
                    "write {}",
                    if res.is_canceled() {
                        "canceled"
                    } else {
                        "done"
                    }
                ));
                Action::Disarm
            },
        );
        write_id.set(Some(id));
        lp.run(RunMode::NoWait).unwrap();
        // Reset the connection: the read and the write both see it. WASI
        // has no SO_LINGER: there the close alone ends both.
        #[cfg(not(target_os = "wasi"))]
        SockRef::from(&b).set_linger(Some(Duration::ZERO)).unwrap();
        drop(b);
        let c = calls.clone();
        run_until(&mut lp, "both callbacks", || {
            let c = c.borrow();
            c.iter().filter(|s| s.starts_with("read")).count() == 1
                && c.iter().filter(|s| s.starts_with("write")).count() == 1
        });
        settle(&mut lp);
        let calls = calls.borrow();
        assert_eq!(
            calls.iter().filter(|s| s.starts_with("read")).count(),
            1,
            "{calls:?}"
        );
        assert_eq!(
            calls.iter().filter(|s| s.starts_with("write")).count(),
            1,
            "{calls:?}"
        );
        assert_eq!(lp.active(), 0);
    }

    /// A wait that consumed its Async's wakeup but whose callback never ran
    /// (the loop stopped, then was dropped) must not leave the Async believing
    /// a wake is still pending: the next notify must wake the next wait.
    fn async_wake_consumed_by_a_dropped_loop_is_not_lost<B: Backend>() {
        let a = Async::new().unwrap();
        a.notify().unwrap();
        {
            let mut lp = new_loop::<B>();
            lp.add(Op::Noop, |lp, _, _| {
                lp.stop();
                Action::Disarm
            });
            lp.add(Op::AsyncWait(a.clone()), |_, _, _| {
                panic!("the stopped loop must not run this callback")
            });
            // Run until the wait's read has happened (its result waits behind
            // the stop), without running its callback.
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(GUARD_MS) {
                lp.run(RunMode::NoWait).unwrap();
                if lp.active() == 1 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut lp = new_loop::<B>();
        let woke = Rc::new(Cell::new(false));
        let w = woke.clone();
        lp.add(Op::AsyncWait(a.clone()), move |_, _, res| {
            expect!(res, OpResult::Async(Ok(())));
            w.set(true);
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap();
        a.notify().unwrap();
        run_until(&mut lp, "the wake after the dropped loop", || woke.get());
    }
);
