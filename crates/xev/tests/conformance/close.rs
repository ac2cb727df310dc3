//! Closes: a close cancels the descriptor's pending operations and
//! completes after them, keeps other descriptors' events (and a pending
//! process exit), and a descriptor number closed outside the loop or after
//! the loop closed it can be reused safely.
//!
//! On Windows (IOCP) the pipes are named pipes (see `support::pipe`), the
//! pending operations a close cancels are reads and accepts but no polls
//! (a poll is Unsupported there, which `net::poll_is_readiness_or_unsupported`
//! checks), the process is a copy of this test binary that sleeps, and the
//! two scenarios that place a descriptor at a number of their choosing
//! (`dup2`) are Unix-only.

use crate::support::*;

/// A readable poll on `fd`, pending for a close to cancel, where polls
/// exist: none on Windows, where IOCP answers a poll with Unsupported.
fn pending_poll<B: Backend>(lp: &mut Loop<B>, fd: RawFd) -> Option<Pending> {
    if cfg!(windows) {
        return None;
    }
    Some(submit(
        lp,
        Op::Poll {
            fd,
            interest: Interest::READABLE,
        },
    ))
}

/// How many times the callback of `p` (if any) ran.
fn calls(p: &Option<Pending>) -> usize {
    p.as_ref().map_or(0, Pending::calls)
}

/// Whether `p` (if any) is done.
fn done(p: &Option<Pending>) -> bool {
    p.as_ref().map_or(true, Pending::done)
}

/// Checks that `p` (if any) is a poll that was canceled.
fn expect_poll_canceled(p: &Option<Pending>) {
    if let Some(p) = p {
        expect!(p.take().0, OpResult::Poll(Err(PollError::Canceled)));
    }
}

/// Pending operations on `fd` that the test keeps apart from others: a read
/// and (where polls exist) a readable poll.
fn read_and_poll<B: Backend>(lp: &mut Loop<B>, fd: RawFd) -> (Pending, Option<Pending>) {
    let rd = submit(
        lp,
        Op::Read {
            fd,
            buf: vec![0; 8].into(),
        },
    );
    let pl = pending_poll(lp, fd);
    (rd, pl)
}

/// The platform's "connection refused" error.
const CONNECTION_REFUSED: i32 = if cfg!(windows) {
    10061 // WSAECONNREFUSED
} else {
    libc::ECONNREFUSED
};

/// A pidfd for child `pid` (Linux), or -1 where process waits ignore it
/// (kqueue watches the pid). `Err` where pidfds are forbidden.
#[cfg(any(unix, target_os = "wasi"))]
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
#[cfg(unix)]
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

/// A child that sleeps until killed: this test binary re-run on one of
/// its helper tests (`tests/support/children.rs`), on every platform.
#[cfg(not(target_os = "wasi"))]
fn sleeping_child() -> std::process::Child {
    crate::children::spawn(
        crate::children::sleeping()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
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
                buf: vec![0; 8].into(),
            },
        );
        let pl = pending_poll(&mut lp, rfd);
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd.calls() + calls(&pl), 0);
        let cl = submit(&mut lp, Op::Close { fd: rfd });
        run_until(&mut lp, "close and its victims", || {
            cl.done() && rd.done() && done(&pl)
        });
        settle(&mut lp);
        expect!(cl.take().0, OpResult::Close(Ok(())));
        expect!(rd.take().0, OpResult::Read(Err(ReadError::Canceled)));
        expect_poll_canceled(&pl);
        // The read end is really gone: writing now breaks the pipe.
        assert_eq!(
            raw_write(w.as_raw_fd(), b"x"),
            -1,
            "a reader is still alive"
        );
        let e = std::io::Error::last_os_error();
        assert!(is_broken_pipe(e.raw_os_error()), "{e}");

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
        assert_eq!(e.raw_os_error(), Some(CONNECTION_REFUSED), "{e}");
        assert_eq!(lp.active(), 0);
    }

    /// A descriptor number closed through the loop and reused for a new file
    /// is waited on afresh (readiness backends must forget the old one).
    /// Unix: it places the descriptor with `dup2`.
    #[cfg(unix)]
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
                    buf: vec![0; 4].into(),
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
    /// on the new socket must still be woken. Unix: it replaces the file
    /// behind a number with `dup2`.
    #[cfg(unix)]
    fn fd_closed_outside_the_loop_and_reused<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r1, w1) = pipe();
        let (res, _) = {
            assert_eq!(raw_write(w1.as_raw_fd(), b"x"), 1);
            run_op(
                &mut lp,
                Op::Read {
                    fd: r1.as_raw_fd(),
                    buf: vec![0; 1].into(),
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
                buf: vec![0; 1].into(),
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
                buf: vec![0; 1].into(),
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
                buf: vec![0; 8].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd_a.calls() + calls(&pl_a) + rd_b.calls(), 0, "no data yet");
        // B becomes readable while nobody polls; then A is closed.
        assert_eq!(raw_write(wb.as_raw_fd(), b"for b"), 5);
        let cl = submit(&mut lp, Op::Close { fd: ra });
        run_until(&mut lp, "the read on B after A's close", || {
            rd_b.done() && cl.done() && rd_a.done() && done(&pl_a)
        });
        settle(&mut lp);
        expect!(cl.take().0, OpResult::Close(Ok(())));
        expect!(rd_a.take().0, OpResult::Read(Err(ReadError::Canceled)));
        expect_poll_canceled(&pl_a);
        let (res, op) = rd_b.take();
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"for b");
        assert_eq!(lp.active(), 0);
    }

    #[cfg(not(target_os = "wasi"))]
    /// Closing a pipe through the loop while a child's exit is being waited
    /// for, after the child exited but before the loop collected the exit:
    /// the exit is still delivered. kqueue under libkqueue lost it (its
    /// one-shot `EVFILT_PROC` event was collected and dropped by the close's
    /// deregistration).
    ///
    /// On Windows the wait is on the child's process handle, and "exited,
    /// not reaped" is the handle signalled (Windows reaps nothing: the exit
    /// code stays with the handle).
    fn close_keeps_a_pending_process_exit<B: Backend>() {
        let mut child = sleeping_child();
        let pid = child.id() as i32;
        #[cfg(any(unix, target_os = "wasi"))]
        let pidfd = match pidfd_for(pid) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("pidfd_open unavailable here ({e}): skipping");
                child.kill().unwrap();
                child.wait().unwrap();
                return;
            }
        };
        #[cfg(any(unix, target_os = "wasi"))]
        let proc_fd = pidfd.as_ref().map_or(-1, |fd| fd.as_raw_fd());
        #[cfg(windows)]
        let proc_fd = std::os::windows::io::AsRawHandle::as_raw_handle(&child) as RawFd;
        let mut lp = new_loop::<B>();
        let (ra, _wa) = pipe();
        let ra = ra.into_raw_fd();
        let (rd_a, pl_a) = read_and_poll(&mut lp, ra);
        let exit = submit(&mut lp, Op::ProcWait { pid, fd: proc_fd });
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd_a.calls() + calls(&pl_a) + exit.calls(), 0);
        // The child exits while nobody polls; then the pipe is closed.
        child.kill().unwrap();
        #[cfg(any(unix, target_os = "wasi"))]
        wait_exited_unreaped(pid);
        #[cfg(windows)]
        {
            use windows_sys::Win32::Foundation::WAIT_OBJECT_0;
            use windows_sys::Win32::System::Threading::{WaitForSingleObject, INFINITE};
            // SAFETY: `proc_fd` is the live process handle `child` owns.
            let r = unsafe { WaitForSingleObject(proc_fd as _, INFINITE) };
            assert_eq!(r, WAIT_OBJECT_0, "waiting for the child's exit");
        }
        let cl = submit(&mut lp, Op::Close { fd: ra });
        run_until(&mut lp, "the child's exit after the pipe's close", || {
            exit.done() && cl.done() && rd_a.done() && done(&pl_a)
        });
        settle(&mut lp);
        expect!(exit.take().0, OpResult::ProcExit(Ok(())));
        expect!(cl.take().0, OpResult::Close(Ok(())));
        expect!(rd_a.take().0, OpResult::Read(Err(ReadError::Canceled)));
        expect_poll_canceled(&pl_a);
        assert_eq!(lp.active(), 0);
        // The wait did not reap the child: its status is still there
        // (Windows: `Child::kill`'s exit code, 1).
        let status = child.wait().unwrap();
        #[cfg(any(unix, target_os = "wasi"))]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        }
        #[cfg(windows)]
        assert_eq!(status.code(), Some(1), "{status:?}");
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
        let mut ops = vec![(
            Op::Read {
                fd: rfd,
                buf: vec![0; 8].into(),
            },
            "read",
        )];
        // No poll on Windows (see `pending_poll`).
        if cfg!(unix) {
            ops.push((
                Op::Poll {
                    fd: rfd,
                    interest: Interest::READABLE,
                },
                "poll",
            ));
        }
        ops.push((Op::Close { fd: rfd }, "close"));
        let n = ops.len();
        for (op, name) in ops {
            if name == "close" {
                // The read and the poll are waiting before the close starts.
                lp.run(RunMode::NoWait).unwrap();
                assert!(log.borrow().is_empty(), "no data yet: {:?}", log.borrow());
            }
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
        }
        run_until(&mut lp, "the close and its victims", || {
            log.borrow().len() == n
        });
        settle(&mut lp);
        let log = log.borrow();
        assert_eq!(log.len(), n, "{log:?}");
        assert_eq!(
            log[n - 1],
            "close",
            "the close completed before the operations it canceled: {log:?}"
        );
        assert_eq!(lp.active(), 0);
    }
);
