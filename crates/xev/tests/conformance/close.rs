//! Closes: a close cancels the descriptor's pending operations and
//! completes after them, keeps other descriptors' events (and a pending
//! process exit), and a descriptor number closed outside the loop or after
//! the loop closed it can be reused safely.

use crate::support::*;

/// Pending operations on `fd` that the test keeps apart from others: a read
/// and a readable poll.
fn read_and_poll<B: Backend>(lp: &mut Loop<B>, fd: RawFd) -> (Pending, Pending) {
    let rd = submit(
        lp,
        Op::Read {
            fd,
            buf: vec![0; 8],
        },
    );
    let pl = submit(
        lp,
        Op::Poll {
            fd,
            interest: Interest::READABLE,
        },
    );
    (rd, pl)
}

/// A pidfd for child `pid` (Linux), or -1 where process waits ignore it
/// (kqueue watches the pid). `Err` where pidfds are forbidden.
fn pidfd_for(pid: i32) -> Result<Option<OwnedFd>, std::io::Error> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: pidfd_open takes two integers and no pointers.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a successful pidfd_open returns a new descriptor that
        // nothing else owns.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) }))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        Ok(None)
    }
}

/// Blocks until child `pid` has exited, without reaping it.
fn wait_exited_unreaped(pid: i32) {
    loop {
        // SAFETY: all-zero is a valid siginfo_t; waitid writes only into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a live, writable siginfo_t.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::EINTR), "waitid: {e}");
    }
}

for_each_backend!(
    /// Closing a descriptor through the loop finishes the operations still
    /// pending on it with `Canceled` (they must not keep the file open and go
    /// on consuming data), and really releases the file.
    fn close_cancels_pending_ops_on_the_fd<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        let rfd = r.into_raw_fd();
        let rd = submit(
            &mut lp,
            Op::Read {
                fd: rfd,
                buf: vec![0; 8],
            },
        );
        let pl = submit(
            &mut lp,
            Op::Poll {
                fd: rfd,
                interest: Interest::READABLE,
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd.calls() + pl.calls(), 0);
        let cl = submit(&mut lp, Op::Close { fd: rfd });
        run_until(&mut lp, "close and its victims", || {
            cl.done() && rd.done() && pl.done()
        });
        settle(&mut lp);
        expect!(cl.take().0, OpResult::Close(Ok(())));
        expect!(rd.take().0, OpResult::Read(Err(ReadError::Canceled)));
        expect!(pl.take().0, OpResult::Poll(Err(PollError::Canceled)));
        // The read end is really gone: writing now breaks the pipe.
        assert_eq!(
            raw_write(w.as_raw_fd(), b"x"),
            -1,
            "a reader is still alive"
        );
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EPIPE)
        );

        // A listener closed with an accept pending stops listening.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let lfd = l.into_raw_fd();
        let acc = submit(&mut lp, Op::Accept { fd: lfd });
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(acc.calls(), 0);
        let cl = submit(&mut lp, Op::Close { fd: lfd });
        run_until(&mut lp, "close of the listener", || cl.done() && acc.done());
        settle(&mut lp);
        expect!(cl.take().0, OpResult::Close(Ok(())));
        expect!(acc.take().0, OpResult::Accept(Err(AcceptError::Canceled)));
        let e = TcpStream::connect(addr).expect_err("the closed listener still accepts");
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "{e}");
        assert_eq!(lp.active(), 0);
    }

    /// A descriptor number closed through the loop and reused for a new file
    /// is waited on afresh (readiness backends must forget the old one).
    fn fd_number_reused_after_loop_close<B: Backend>() {
        let mut lp = new_loop::<B>();
        // A high number no other test thread will be handed meanwhile.
        let h = high_fd_number();
        for round in 0..3u8 {
            let (r, w) = pipe();
            // SAFETY: `h` is unused by anyone else (see closed_fd).
            assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), h) }, h);
            drop(r);
            let rd = submit(
                &mut lp,
                Op::Read {
                    fd: h,
                    buf: vec![0; 4],
                },
            );
            lp.run(RunMode::NoWait).unwrap();
            assert_eq!(rd.calls(), 0);
            assert_eq!(raw_write(w.as_raw_fd(), &[round]), 1);
            let (res, op) = wait(&mut lp, &rd, "read on a reused descriptor number");
            assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 1);
            assert_eq!(op.buf().unwrap()[0], round);
            let (res, _) = run_op(&mut lp, Op::Close { fd: h }, "close");
            expect!(res, OpResult::Close(Ok(())));
        }
    }

    /// A descriptor the loop waited on, then closed behind the loop's back
    /// (not through `Op::Close`), whose number is reused by a new socket: waits
    /// on the new socket must still be woken.
    fn fd_closed_outside_the_loop_and_reused<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r1, w1) = pipe();
        let (res, _) = {
            assert_eq!(raw_write(w1.as_raw_fd(), b"x"), 1);
            run_op(
                &mut lp,
                Op::Read {
                    fd: r1.as_raw_fd(),
                    buf: vec![0; 1],
                },
                "first read",
            )
        };
        expect!(res, OpResult::Read(Ok(1)));
        // A read that had to wait, so the loop registered the descriptor.
        let p = submit(
            &mut lp,
            Op::Read {
                fd: r1.as_raw_fd(),
                buf: vec![0; 1],
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(raw_write(w1.as_raw_fd(), b"y"), 1);
        run_until(&mut lp, "the waiting read", || p.done());
        expect!(p.take().0, OpResult::Read(Ok(1)));
        // Replace the file behind the number in one step (dup2 closes the old
        // pipe and reuses its number atomically, so no other thread of this
        // test binary can grab the number in between).
        let (r2, w2) = pipe();
        // SAFETY: both descriptors are owned by this test; afterwards `r1`
        // owns the new open file description under the old number.
        let r = unsafe { libc::dup2(r2.as_raw_fd(), r1.as_raw_fd()) };
        assert_eq!(r, r1.as_raw_fd());
        drop(w1);
        let reused = r1;
        let p = submit(
            &mut lp,
            Op::Read {
                fd: reused.as_raw_fd(),
                buf: vec![0; 1],
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(p.calls(), 0);
        assert_eq!(raw_write(w2.as_raw_fd(), b"z"), 1);
        let (res, op) = wait(&mut lp, &p, "a read on the reused descriptor number");
        expect!(res, OpResult::Read(Ok(1)));
        assert_eq!(op.buf().unwrap()[0], b'z');
        drop(r2);
    }

    /// Closing one descriptor through the loop touches only that descriptor's
    /// registrations: a read pending on another pipe, whose data arrived while
    /// the loop was not polling (so its readiness event still waits in the
    /// backend when the close starts), completes all the same. kqueue under
    /// libkqueue lost it: the close's deregistration collected the pending
    /// event of the other pipe and dropped it.
    fn close_keeps_other_descriptors_events<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (ra, _wa) = pipe();
        let (rb, wb) = pipe();
        let ra = ra.into_raw_fd();
        let (rd_a, pl_a) = read_and_poll(&mut lp, ra);
        let rd_b = submit(
            &mut lp,
            Op::Read {
                fd: rb.as_raw_fd(),
                buf: vec![0; 8],
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd_a.calls() + pl_a.calls() + rd_b.calls(), 0, "no data yet");
        // B becomes readable while nobody polls; then A is closed.
        assert_eq!(raw_write(wb.as_raw_fd(), b"for b"), 5);
        let cl = submit(&mut lp, Op::Close { fd: ra });
        run_until(&mut lp, "the read on B after A's close", || {
            rd_b.done() && cl.done() && rd_a.done() && pl_a.done()
        });
        settle(&mut lp);
        expect!(cl.take().0, OpResult::Close(Ok(())));
        expect!(rd_a.take().0, OpResult::Read(Err(ReadError::Canceled)));
        expect!(pl_a.take().0, OpResult::Poll(Err(PollError::Canceled)));
        let (res, op) = rd_b.take();
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"for b");
        assert_eq!(lp.active(), 0);
    }

    /// Closing a pipe through the loop while a child's exit is being waited
    /// for, after the child exited but before the loop collected the exit:
    /// the exit is still delivered. kqueue under libkqueue lost it (its
    /// one-shot `EVFILT_PROC` event was collected and dropped by the close's
    /// deregistration).
    fn close_keeps_a_pending_process_exit<B: Backend>() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawning sleep");
        let pid = child.id() as i32;
        let pidfd = match pidfd_for(pid) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("pidfd_open unavailable here ({e}): skipping");
                child.kill().unwrap();
                child.wait().unwrap();
                return;
            }
        };
        let mut lp = new_loop::<B>();
        let (ra, _wa) = pipe();
        let ra = ra.into_raw_fd();
        let (rd_a, pl_a) = read_and_poll(&mut lp, ra);
        let exit = submit(
            &mut lp,
            Op::ProcWait {
                pid,
                fd: pidfd.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd_a.calls() + pl_a.calls() + exit.calls(), 0);
        // The child exits while nobody polls; then the pipe is closed.
        child.kill().unwrap();
        wait_exited_unreaped(pid);
        let cl = submit(&mut lp, Op::Close { fd: ra });
        run_until(&mut lp, "the child's exit after the pipe's close", || {
            exit.done() && cl.done() && rd_a.done() && pl_a.done()
        });
        settle(&mut lp);
        expect!(exit.take().0, OpResult::ProcExit(Ok(())));
        expect!(cl.take().0, OpResult::Close(Ok(())));
        expect!(rd_a.take().0, OpResult::Read(Err(ReadError::Canceled)));
        expect!(pl_a.take().0, OpResult::Poll(Err(PollError::Canceled)));
        assert_eq!(lp.active(), 0);
        // The wait did not reap the child: its status is still there.
        use std::os::unix::process::ExitStatusExt;
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    }

    /// A request that cancels others completes after them: the operations a
    /// close cancels (a read and a poll on its descriptor) get their
    /// `Canceled` callbacks before the close's own callback, on every backend
    /// (io_uring does it so; the readiness backends used to report the close
    /// first).
    fn close_completes_after_the_ops_it_cancels<B: Backend>() {
        let mut lp = new_loop::<B>();
        let log: Rc<RefCell<Vec<&'static str>>> = Rc::default();
        let (r, _w) = pipe();
        let rfd = r.into_raw_fd();
        let ops = [
            (
                Op::Read {
                    fd: rfd,
                    buf: vec![0; 8],
                },
                "read",
            ),
            (
                Op::Poll {
                    fd: rfd,
                    interest: Interest::READABLE,
                },
                "poll",
            ),
            (Op::Close { fd: rfd }, "close"),
        ];
        for (i, (op, name)) in ops.into_iter().enumerate() {
            let l = log.clone();
            lp.add(op, move |_, _, res| {
                let ok = match name {
                    "read" => matches!(res, OpResult::Read(Err(ReadError::Canceled))),
                    "poll" => matches!(res, OpResult::Poll(Err(PollError::Canceled))),
                    _ => matches!(res, OpResult::Close(Ok(()))),
                };
                assert!(ok, "{name}: unexpected {res:?}");
                l.borrow_mut().push(name);
                Action::Disarm
            });
            if i == 1 {
                // The read and the poll are waiting before the close starts.
                lp.run(RunMode::NoWait).unwrap();
                assert!(log.borrow().is_empty(), "no data yet: {:?}", log.borrow());
            }
        }
        run_until(&mut lp, "the close and its victims", || {
            log.borrow().len() == 3
        });
        settle(&mut lp);
        let log = log.borrow();
        assert_eq!(log.len(), 3, "{log:?}");
        assert_eq!(
            log[2], "close",
            "the close completed before the operations it canceled: {log:?}"
        );
        assert_eq!(lp.active(), 0);
    }
);
