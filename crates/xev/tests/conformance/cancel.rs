//! Cancellation: of a pending operation of every kind, of timers, file
//! operations, queued, parked, stale and undelivered targets, by
//! `Op::Cancel` and by `Loop::cancel`; and the cancel contract (the same
//! answers and order on every backend: two cancels of one target, a cancel
//! completing after its target, a timer reset after an undelivered
//! cancel).

use crate::support::*;

/// Starts `op`, checks it is pending, cancels it, and checks that the target
/// fired exactly once with its `Canceled` error and the cancel with `Ok`.
fn cancel_pending<B: Backend>(lp: &mut Loop<B>, op: Op, what: &str) -> OpResult {
    let t = submit(lp, op);
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(t.calls(), 0, "{what} should be pending");
    assert!(lp.is_active(t.id));
    let c = submit(lp, Op::Cancel { target: t.id });
    run_until(lp, what, || t.done() && c.done());
    settle(lp);
    let (res, _) = t.take();
    assert!(res.is_canceled(), "{what}: expected Canceled, got {res:?}");
    expect!(c.take().0, OpResult::Cancel(Ok(())));
    assert!(!lp.is_active(t.id));
    res
}

/// Adds `op` with a callback that appends `(tag, result)` to `log`.
fn logged<B: Backend>(
    lp: &mut Loop<B>,
    op: Op,
    tag: &'static str,
    log: &Rc<RefCell<Vec<(&'static str, String)>>>,
) -> Id {
    let l = log.clone();
    lp.add(op, move |_, _, res| {
        l.borrow_mut().push((tag, format!("{res:?}")));
        Action::Disarm
    })
}

for_each_backend!(
    fn cancel_timer<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let now = lp.now();
        let t = submit(&mut lp, Op::timer(now + 10_000));
        lp.run(RunMode::NoWait).unwrap();
        let c = submit(&mut lp, Op::Cancel { target: t.id });
        run_until(&mut lp, "cancel and timer", || c.done() && t.done());
        settle(&mut lp);
        expect!(t.take().0, OpResult::Timer(Err(TimerError::Canceled)));
        expect!(c.take().0, OpResult::Cancel(Ok(())));
        assert_eq!(lp.active(), 0);
    }

    fn cancel_pending_accept<B: Backend>() {
        let mut lp = new_loop::<B>();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let res = cancel_pending(&mut lp, Op::Accept { fd: l.as_raw_fd() }, "accept");
        expect!(res, OpResult::Accept(Err(AcceptError::Canceled)));
    }

    fn cancel_pending_pipe_read<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, _w) = pipe();
        let op = Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 32].into(),
        };
        let res = cancel_pending(&mut lp, op, "pipe read");
        expect!(res, OpResult::Read(Err(ReadError::Canceled)));
    }

    fn cancel_pending_socket_read<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, _s) = tcp_pair();
        let op = Op::Read {
            fd: c.as_raw_fd(),
            buf: vec![0; 32].into(),
        };
        let res = cancel_pending(&mut lp, op, "socket read");
        expect!(res, OpResult::Read(Err(ReadError::Canceled)));
    }

    fn cancel_pending_recv<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, _s) = tcp_pair();
        let op = Op::Recv {
            fd: c.as_raw_fd(),
            buf: vec![0; 32].into(),
        };
        let res = cancel_pending(&mut lp, op, "recv");
        expect!(res, OpResult::Read(Err(ReadError::Canceled)));
    }

    fn cancel_pending_recvmsg<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (u, _) = udp_socket();
        let op = Op::Recvmsg(Msg::recv_from(u.as_raw_fd(), vec![0; 32]));
        let res = cancel_pending(&mut lp, op, "recvmsg");
        expect!(res, OpResult::RecvFrom(Err(ReadError::Canceled)));
    }

    fn cancel_pending_write<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (_r, w) = pipe();
        fill(w.as_raw_fd());
        let op = Op::Write {
            fd: w.as_raw_fd(),
            buf: vec![1; 4096].into(),
        };
        let res = cancel_pending(&mut lp, op, "write to a full pipe");
        expect!(res, OpResult::Write(Err(WriteError::Canceled)));
    }

    fn cancel_pending_poll<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, _w) = pipe();
        let op = Op::Poll {
            fd: r.as_raw_fd(),
            interest: Interest::READABLE,
        };
        let res = cancel_pending(&mut lp, op, "poll");
        expect!(res, OpResult::Poll(Err(PollError::Canceled)));
    }

    fn cancel_pending_async_wait<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = Async::new().unwrap();
        let res = cancel_pending(&mut lp, Op::AsyncWait(a.clone()), "async wait");
        expect!(res, OpResult::Async(Err(AsyncError::Canceled)));
        // The handle still works afterwards.
        a.notify().unwrap();
        let (res, _) = run_op(&mut lp, Op::AsyncWait(a), "async wait after cancel");
        expect!(res, OpResult::Async(Ok(())));
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    fn cancel_pending_connect<B: Backend>() {
        // A listener with a full accept queue drops SYNs, so a connect pends.
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        l.listen(0).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        let mut full = false;
        for _ in 0..16 {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            match s.connect_timeout(&addr.into(), Duration::from_millis(150)) {
                Ok(()) => fillers.push(s),
                Err(_) => {
                    full = true;
                    break;
                }
            }
        }
        if !full {
            eprintln!("cancel_pending_connect: could not make a connect pend here: skipping");
            return;
        }
        let mut lp = new_loop::<B>();
        let fd = tcp_socket();
        let res = cancel_pending(&mut lp, Op::connect(fd.as_raw_fd(), addr), "connect");
        expect!(res, OpResult::Connect(Err(ConnectError::Canceled)));
    }

    fn cancel_stale_id_is_not_found<B: Backend>() {
        let mut lp = new_loop::<B>();
        let p = submit(&mut lp, Op::Noop);
        wait(&mut lp, &p, "noop");
        let (res, _) = run_op(
            &mut lp,
            Op::Cancel { target: p.id },
            "cancel of a finished op",
        );
        expect!(res, OpResult::Cancel(Err(CancelError::NotFound)));
        assert_eq!(p.calls(), 1, "the target is not called again");
    }

    fn cancel_parked_is_not_found<B: Backend>() {
        let mut lp = new_loop::<B>();
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        let id = lp.add(Op::Noop, move |_, _, _| {
            c.set(c.get() + 1);
            Action::Park
        });
        lp.run(RunMode::UntilDone).unwrap();
        let (res, _) = run_op(&mut lp, Op::Cancel { target: id }, "cancel of a parked op");
        expect!(res, OpResult::Cancel(Err(CancelError::NotFound)));
        assert_eq!(calls.get(), 1, "a parked target is not called");
        assert!(lp.restart(id).is_ok(), "still parked and restartable");
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(calls.get(), 2);
    }

    /// A target whose result is ready but not delivered yet cannot be canceled
    /// anymore: the cancel answers AlreadyFinished and the target gets its
    /// real result.
    fn cancel_of_undelivered_result_is_already_finished<B: Backend>() {
        let mut lp = new_loop::<B>();
        lp.add(Op::Noop, |lp, _, _| {
            lp.stop();
            Action::Disarm
        });
        let t = submit(&mut lp, Op::Noop);
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(t.calls(), 0);
        let c = submit(&mut lp, Op::Cancel { target: t.id });
        run_until(&mut lp, "cancel", || c.done() && t.done());
        settle(&mut lp);
        expect!(
            c.take().0,
            OpResult::Cancel(Err(CancelError::AlreadyFinished))
        );
        expect!(t.take().0, OpResult::Noop(Ok(())));
    }

    /// A cancel added before its (parked) target is restarted finds the target
    /// still queued: the target never runs and gets Canceled.
    fn cancel_of_queued_target<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        assert_eq!(raw_write(w.as_raw_fd(), b"x"), 1);
        let results = Rc::new(RefCell::new(Vec::new()));
        let rs = results.clone();
        let id = lp.add(Op::Noop, move |_, _, res| {
            rs.borrow_mut().push(format!("{res:?}"));
            Action::Park
        });
        lp.run(RunMode::UntilDone).unwrap();
        *lp.op_mut(id).unwrap() = Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 8].into(),
        };
        let c = submit(&mut lp, Op::Cancel { target: id });
        lp.restart(id).unwrap();
        run_until(&mut lp, "cancel", || {
            c.done() && results.borrow().len() == 2
        });
        settle(&mut lp);
        expect!(c.take().0, OpResult::Cancel(Ok(())));
        assert_eq!(results.borrow().len(), 2);
        assert!(
            results.borrow()[1].contains("Canceled"),
            "queued target must be canceled: {:?}",
            results.borrow()
        );
        let mut b = [0u8; 4];
        assert_eq!(raw_read(r.as_raw_fd(), &mut b), 1, "the read never ran");
    }

    /// `Loop::cancel`: cancels without a cancel completion.
    fn loop_cancel_direct<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, _w) = pipe();
        let rd = submit(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 4].into(),
            },
        );
        let t = submit(&mut lp, Op::timer(u64::MAX));
        let q = submit(&mut lp, Op::timer(u64::MAX)); // still queued when canceled
        lp.run(RunMode::NoWait).unwrap();
        let q2 = submit(&mut lp, Op::Noop);
        assert_eq!(lp.cancel(rd.id), Ok(()));
        assert_eq!(lp.cancel(t.id), Ok(()));
        assert_eq!(lp.cancel(q.id), Ok(()));
        assert_eq!(lp.cancel(q2.id), Ok(()), "a queued noop can be canceled");
        run_until(&mut lp, "direct cancels", || {
            rd.done() && t.done() && q.done() && q2.done()
        });
        settle(&mut lp);
        expect!(rd.take().0, OpResult::Read(Err(ReadError::Canceled)));
        expect!(t.take().0, OpResult::Timer(Err(TimerError::Canceled)));
        expect!(q.take().0, OpResult::Timer(Err(TimerError::Canceled)));
        expect!(q2.take().0, OpResult::Noop(Err(NoopError::Canceled)));
        assert_eq!(lp.cancel(rd.id), Err(CancelError::NotFound), "stale");
        let parked = lp.add(Op::Noop, |_, _, _| Action::Park);
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(lp.cancel(parked), Err(CancelError::NotFound), "parked");
        assert_eq!(lp.active(), 0);
    }

    /// Cancel of a thread-pool (or native) file operation: either it was
    /// canceled in time, or it ran; either way its callback fires exactly once.
    fn cancel_file_op_exactly_once<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let f = temp_file("cf");
        f.set_len(4096).unwrap();
        for _ in 0..20 {
            let t = submit(
                &mut lp,
                Op::Pread {
                    fd: f.as_raw_fd(),
                    buf: vec![0; 4096].into(),
                    offset: 0,
                },
            );
            lp.run(RunMode::NoWait).unwrap();
            if t.done() {
                continue; // finished before we could try
            }
            let c = submit(&mut lp, Op::Cancel { target: t.id });
            run_until(&mut lp, "cancel and pread", || c.done() && t.done());
            settle(&mut lp);
            let (tres, _) = t.take();
            let (cres, _) = c.take();
            match cres {
                OpResult::Cancel(Ok(())) => assert!(tres.is_canceled(), "{tres:?}"),
                OpResult::Cancel(Err(CancelError::AlreadyFinished)) => {
                    expect!(tres, OpResult::Read(Ok(4096)))
                }
                other => panic!("cancel result {other:?}"),
            }
        }
        assert_eq!(lp.active(), 0);
    }

    /// Two cancels of one pending read: the first cancels it, the second is
    /// too late; the read ends once, with Canceled, before either cancel's
    /// callback.
    fn two_cancels_of_one_pending_read<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, _w) = pipe();
        let log = Rc::new(RefCell::new(Vec::new()));
        let rd = logged(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 8].into(),
            },
            "read",
            &log,
        );
        lp.run(RunMode::NoWait).unwrap();
        logged(&mut lp, Op::Cancel { target: rd }, "cancel1", &log);
        logged(&mut lp, Op::Cancel { target: rd }, "cancel2", &log);
        run_until(&mut lp, "the read and both cancels", || {
            log.borrow().len() == 3
        });
        settle(&mut lp);
        let got: Vec<_> = log.borrow().clone();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(
            got[0],
            ("read", "Read(Err(Canceled))".to_string()),
            "{got:?}"
        );
        let cancels: Vec<_> = got[1..].to_vec();
        assert!(
            cancels.contains(&("cancel1", "Cancel(Ok(()))".to_string())),
            "{got:?}"
        );
        assert!(
            cancels.contains(&("cancel2", "Cancel(Err(AlreadyFinished))".to_string())),
            "{got:?}"
        );
    }

    /// `Loop::cancel` gives the real answer on every backend: Ok for a
    /// pending read, AlreadyFinished the second time (and for a result that is
    /// in but not delivered), NotFound for a parked or freed completion.
    fn loop_cancel_answers<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, _w) = pipe();
        let rd = submit(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 8].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(lp.cancel(rd.id), Ok(()));
        assert_eq!(lp.cancel(rd.id), Err(CancelError::AlreadyFinished));
        let (res, _) = wait(&mut lp, &rd, "the canceled read");
        expect!(res, OpResult::Read(Err(ReadError::Canceled)));
        assert_eq!(lp.cancel(rd.id), Err(CancelError::NotFound), "freed");
        // A result that is in but not delivered: a noop that stops the run
        // first leaves the second noop's result waiting.
        lp.add(Op::Noop, |lp, _, _| {
            lp.stop();
            Action::Disarm
        });
        let done = submit(&mut lp, Op::Noop);
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(done.calls(), 0);
        assert_eq!(lp.cancel(done.id), Err(CancelError::AlreadyFinished));
        let (res, _) = wait(&mut lp, &done, "the noop");
        expect!(res, OpResult::Noop(Ok(())));
        let parked = lp.add(Op::Noop, |_, _, _| Action::Park);
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(lp.cancel(parked), Err(CancelError::NotFound), "parked");
        lp.free(parked).unwrap();
    }

    /// A cancel's callback runs after its target's, whatever held the target
    /// (the loop's queue, the timer wheel, an async wait, the backend).
    fn cancel_completes_after_its_target<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, _w) = pipe();
        let a = Async::new().unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let read = Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 8].into(),
        };
        let targets = [
            logged(&mut lp, read, "read", &log),
            logged(&mut lp, Op::timer(u64::MAX), "timer", &log),
            logged(&mut lp, Op::AsyncWait(a), "async", &log),
        ];
        lp.run(RunMode::NoWait).unwrap();
        let queued = logged(&mut lp, Op::timer(u64::MAX), "queued", &log);
        for (t, tag) in targets
            .iter()
            .copied()
            .zip(["c-read", "c-timer", "c-async"])
            .chain([(queued, "c-queued")])
        {
            logged(&mut lp, Op::Cancel { target: t }, tag, &log);
        }
        run_until(&mut lp, "all targets and cancels", || {
            log.borrow().len() == 8
        });
        settle(&mut lp);
        let got = log.borrow().clone();
        for (target, cancel) in [
            ("read", "c-read"),
            ("timer", "c-timer"),
            ("async", "c-async"),
            ("queued", "c-queued"),
        ] {
            let ti = got.iter().position(|(t, _)| *t == target).expect(target);
            let ci = got.iter().position(|(t, _)| *t == cancel).expect(cancel);
            assert!(ti < ci, "{target} must end before its cancel: {got:?}");
            assert_eq!(got[ci].1, "Cancel(Ok(()))", "{got:?}");
            assert!(got[ti].1.contains("Canceled"), "{got:?}");
        }
    }

    /// A timer reset after a cancel whose `Canceled` was not delivered yet:
    /// the cancel stands (the callback gets Canceled), then the timer runs
    /// again with the new deadline.
    fn timer_reset_after_undelivered_cancel<B: Backend>() {
        let mut lp = new_loop::<B>();
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let t = lp.add(Op::timer(u64::MAX), move |_, _, res| {
            l.borrow_mut().push(format!("{res:?}"));
            Action::Park
        });
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(lp.cancel(t), Ok(()));
        let now = lp.now();
        lp.timer_reset(t, now + 1).unwrap();
        run_until(&mut lp, "the canceled then reset timer", || {
            log.borrow().len() == 2
        });
        assert_eq!(
            *log.borrow(),
            vec![
                "Timer(Err(Canceled))".to_string(),
                "Timer(Ok(()))".to_string()
            ]
        );
        lp.free(t).unwrap();
    }
);
