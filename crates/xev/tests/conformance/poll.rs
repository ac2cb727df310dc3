//! `Op::Poll`: readable after the peer writes, writable at once, hangup,
//! and a poll rearmed while still ready fires again.

use crate::support::*;

for_each_backend!(
    fn poll_readable_after_peer_writes<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        let p = submit(
            &mut lp,
            Op::Poll {
                fd: c.as_raw_fd(),
                interest: Interest::READABLE,
            },
        );
        for _ in 0..3 {
            lp.run(RunMode::NoWait).unwrap();
        }
        assert_eq!(p.calls(), 0, "nothing to read yet");
        assert_eq!(raw_write(s.as_raw_fd(), b"!"), 1);
        let (res, _) = wait(&mut lp, &p, "readable");
        let r = expect!(res, OpResult::Poll(Ok(r)) => r);
        assert!(r.readable && !r.hangup && !r.error, "{r:?}");
        // A poll does not consume the data.
        let mut b = [0u8; 4];
        assert_eq!(read_when_ready(c.as_raw_fd(), &mut b), 1);
        // Pipes, and a poll started when data is already there.
        let (pr, pw) = pipe();
        assert_eq!(raw_write(pw.as_raw_fd(), b"?"), 1);
        let (res, _) = run_op(
            &mut lp,
            Op::Poll {
                fd: pr.as_raw_fd(),
                interest: Interest::READABLE,
            },
            "poll",
        );
        assert!(expect!(res, OpResult::Poll(Ok(r)) => r).readable);
    }

    fn poll_writable_right_away<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, _s) = tcp_pair();
        let p = submit(
            &mut lp,
            Op::Poll {
                fd: c.as_raw_fd(),
                interest: Interest::WRITABLE,
            },
        );
        run_until(&mut lp, "writable", || p.done());
        settle(&mut lp);
        let r = expect!(p.take().0, OpResult::Poll(Ok(r)) => r);
        assert!(r.writable && !r.readable, "{r:?}");
        let (_pr, pw) = pipe();
        let (res, _) = run_op(
            &mut lp,
            Op::Poll {
                fd: pw.as_raw_fd(),
                interest: Interest::BOTH,
            },
            "poll",
        );
        assert!(expect!(res, OpResult::Poll(Ok(r)) => r).writable);
    }

    fn poll_reports_hangup<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        let p = submit(
            &mut lp,
            Op::Poll {
                fd: r.as_raw_fd(),
                interest: Interest::READABLE,
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(p.calls(), 0);
        drop(w);
        let (res, _) = wait(&mut lp, &p, "hangup");
        let rd = expect!(res, OpResult::Poll(Ok(r)) => r);
        assert!(rd.hangup && rd.readable, "{rd:?}");
    }

    /// A poll reports readiness as long as it lasts (polling does not consume
    /// it): rearming it while data is unread fires again.
    fn poll_rearmed_while_ready_fires_again<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        lp.add(
            Op::Poll {
                fd: r.as_raw_fd(),
                interest: Interest::READABLE,
            },
            move |_, _, res| {
                assert!(expect!(res, OpResult::Poll(Ok(r)) => r).readable);
                c.set(c.get() + 1);
                if c.get() < 4 {
                    Action::Rearm
                } else {
                    Action::Disarm
                }
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(count.get(), 0);
        assert_eq!(raw_write(w.as_raw_fd(), b"."), 1);
        run_until(&mut lp, "four polls", || count.get() == 4);
    }
);
