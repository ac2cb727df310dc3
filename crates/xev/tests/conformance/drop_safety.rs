//! Dropping the loop with work in flight: reads, timers, undelivered
//! results, parked and unstarted completions, queued cancels and many kinds
//! of operation at once; every callback is dropped once and none is
//! called.

use crate::support::*;

/// Adds `op` with a callback that flags if it ever fires and holds a
/// drop-counting guard.
fn add_tracked<B: Backend>(
    lp: &mut Loop<B>,
    op: Op,
    fired: &Rc<Cell<usize>>,
    drops: &Rc<Cell<usize>>,
) -> Id {
    let (f, g) = (fired.clone(), DropCount(drops.clone()));
    lp.add(op, move |_, _, _| {
        let _keep = &g;
        f.set(f.get() + 1);
        Action::Disarm
    })
}

for_each_backend!(
    fn drop_loop_with_read_in_flight<B: Backend>() {
        let (r, w) = pipe();
        let (c, s) = tcp_pair();
        let fired = Rc::new(Cell::new(0));
        let drops = Rc::new(Cell::new(0));
        {
            let mut lp = new_loop::<B>();
            let a = add_tracked(
                &mut lp,
                Op::Read {
                    fd: r.as_raw_fd(),
                    buf: vec![0; 64].into(),
                },
                &fired,
                &drops,
            );
            let b = add_tracked(
                &mut lp,
                Op::Recv {
                    fd: c.as_raw_fd(),
                    buf: vec![0; 64].into(),
                },
                &fired,
                &drops,
            );
            for _ in 0..3 {
                lp.run(RunMode::NoWait).unwrap();
            }
            assert!(lp.is_active(a) && lp.is_active(b));
            assert_eq!(drops.get(), 0);
            drop(lp);
        }
        assert_eq!(
            fired.get(),
            0,
            "callbacks must never fire after the loop is gone"
        );
        assert_eq!(drops.get(), 2, "each closure dropped exactly once");
        // The kernel let go of the reads: data written now stays for us.
        assert_eq!(raw_write(w.as_raw_fd(), b"after"), 5);
        assert_eq!(raw_write(s.as_raw_fd(), b"later"), 5);
        let mut b = [0u8; 16];
        assert_eq!(raw_read(r.as_raw_fd(), &mut b), 5);
        assert_eq!(&b[..5], b"after");
        assert_eq!(read_when_ready(c.as_raw_fd(), &mut b), 5);
        assert_eq!(&b[..5], b"later");
    }

    fn drop_loop_with_timer_pending<B: Backend>() {
        // A timer that expired but was not delivered when the loop is dropped.
        // It is set 100 ms ahead so that the NoWait run below does not fire
        // it; a machine so slow that it did is no failure: try again.
        for attempt in 0.. {
            assert!(attempt < 50, "the 100 ms timer always fired too early");
            let fired = Rc::new(Cell::new(0));
            let drops = Rc::new(Cell::new(0));
            {
                let mut lp = new_loop::<B>();
                lp.update_now();
                let d = lp.now() + 100;
                let t = add_tracked(&mut lp, Op::timer(d), &fired, &drops);
                add_tracked(&mut lp, Op::timer(u64::MAX), &fired, &drops);
                lp.run(RunMode::NoWait).unwrap();
                if !lp.is_active(t) {
                    continue;
                }
                // Wait until it has expired (by the loop's own clock).
                while lp.now() <= d {
                    std::thread::sleep(Duration::from_millis(5));
                }
                drop(lp);
            }
            assert_eq!(fired.get(), 0);
            assert_eq!(drops.get(), 2);
            break;
        }
    }

    fn drop_loop_with_undelivered_results<B: Backend>() {
        let fired = Rc::new(Cell::new(0));
        let drops = Rc::new(Cell::new(0));
        {
            let mut lp = new_loop::<B>();
            lp.add(Op::Noop, |lp, _, _| {
                lp.stop();
                Action::Disarm
            });
            add_tracked(&mut lp, Op::Noop, &fired, &drops);
            add_tracked(&mut lp, Op::timer(0), &fired, &drops);
            lp.run(RunMode::UntilDone).unwrap();
            assert!(lp.stopped());
            assert_eq!(lp.active(), 2);
            drop(lp);
        }
        assert_eq!(fired.get(), 0);
        assert_eq!(drops.get(), 2);
    }

    fn drop_loop_with_parked_and_unstarted<B: Backend>() {
        let fired = Rc::new(Cell::new(0));
        let drops = Rc::new(Cell::new(0));
        {
            let mut lp = new_loop::<B>();
            let g = DropCount(drops.clone());
            lp.add(Op::Noop, move |_, _, _| {
                let _keep = &g;
                Action::Park
            });
            lp.run(RunMode::UntilDone).unwrap();
            assert_eq!(drops.get(), 0);
            // Never run at all.
            let (r, _w) = pipe();
            add_tracked(
                &mut lp,
                Op::Read {
                    fd: r.as_raw_fd(),
                    buf: vec![0; 8].into(),
                },
                &fired,
                &drops,
            );
            add_tracked(&mut lp, Op::Noop, &fired, &drops);
            drop(lp);
        }
        assert_eq!(fired.get(), 0);
        assert_eq!(drops.get(), 3);
    }

    fn drop_loop_with_many_kinds_in_flight<B: Backend>() {
        let fired = Rc::new(Cell::new(0));
        let drops = Rc::new(Cell::new(0));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let (u, _) = udp_socket();
        let (r, w) = pipe();
        let (_r2, w2) = pipe();
        fill(w2.as_raw_fd());
        let a = Async::new().unwrap();
        let (n, before);
        {
            let mut lp = new_loop_with_pool::<B>();
            let f = temp_file("d");
            let ops = vec![
                Op::Accept { fd: l.as_raw_fd() },
                Op::Recvmsg(Msg::recv_from(u.as_raw_fd(), vec![0; 16])),
                Op::Poll {
                    fd: r.as_raw_fd(),
                    interest: Interest::READABLE,
                },
                Op::Write {
                    fd: w2.as_raw_fd(),
                    buf: vec![1; 4096].into(),
                },
                Op::AsyncWait(a.clone()),
                Op::Pread {
                    fd: f.as_raw_fd(),
                    buf: vec![0; 16].into(),
                    offset: 0,
                },
                Op::timer(u64::MAX),
            ];
            n = ops.len();
            for op in ops {
                add_tracked(&mut lp, op, &fired, &drops);
            }
            lp.run(RunMode::NoWait).unwrap();
            // The pread may legitimately finish (and fire) before the drop;
            // nothing may fire from the drop on.
            before = fired.get();
            assert!(before <= 1, "only the pread may have finished");
            drop(lp);
        }
        assert_eq!(fired.get(), before);
        assert_eq!(drops.get(), n, "every closure dropped exactly once");
        a.notify().unwrap();
        assert_eq!(raw_write(w.as_raw_fd(), b"x"), 1);
    }

    fn drop_loop_with_cancel_queued<B: Backend>() {
        let fired = Rc::new(Cell::new(0));
        let drops = Rc::new(Cell::new(0));
        let (r, w) = pipe();
        {
            let mut lp = new_loop::<B>();
            let t = add_tracked(
                &mut lp,
                Op::Read {
                    fd: r.as_raw_fd(),
                    buf: vec![0; 8].into(),
                },
                &fired,
                &drops,
            );
            lp.run(RunMode::NoWait).unwrap();
            add_tracked(&mut lp, Op::Cancel { target: t }, &fired, &drops);
            drop(lp);
        }
        assert_eq!(fired.get(), 0);
        assert_eq!(drops.get(), 2);
        assert_eq!(raw_write(w.as_raw_fd(), b"k"), 1);
        let mut b = [0u8; 2];
        assert_eq!(
            raw_read(r.as_raw_fd(), &mut b),
            1,
            "no read survived the loop"
        );
    }
);
