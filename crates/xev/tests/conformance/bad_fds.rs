//! Bad descriptors: every operation on -1 and on a closed number fails
//! with an honest errno (never a hang or a wrong descriptor), and so does an
//! operation on the wrong kind of descriptor.

use crate::support::*;

fn bad_fd_ops(fd: RawFd) -> Vec<(&'static str, Op)> {
    let any: SocketAddr = ([127, 0, 0, 1], 9).into();
    vec![
        (
            "read",
            Op::Read {
                fd,
                buf: vec![0; 8].into(),
            },
        ),
        (
            "write",
            Op::Write {
                fd,
                buf: vec![0; 8].into(),
            },
        ),
        ("accept", Op::Accept { fd }),
        ("connect", Op::connect(fd, any)),
        (
            "recv",
            Op::Recv {
                fd,
                buf: vec![0; 8].into(),
            },
        ),
        (
            "send",
            Op::Send {
                fd,
                buf: vec![0; 8].into(),
            },
        ),
        ("recvmsg", Op::Recvmsg(Msg::recv_from(fd, vec![0; 8]))),
        ("sendmsg", Op::Sendmsg(Msg::send_to(fd, vec![0; 8], any))),
        (
            "poll",
            Op::Poll {
                fd,
                interest: Interest::READABLE,
            },
        ),
        (
            "shutdown",
            Op::Shutdown {
                fd,
                how: Shutdown::Both,
            },
        ),
        ("close", Op::Close { fd }),
    ]
}

fn check_bad_fd<B: Backend>(fd: RawFd) {
    let mut lp = new_loop_with_pool::<B>();
    let mut ops = bad_fd_ops(fd);
    ops.push((
        "pread",
        Op::Pread {
            fd,
            buf: vec![0; 8].into(),
            offset: 0,
        },
    ));
    ops.push((
        "pwrite",
        Op::Pwrite {
            fd,
            buf: vec![0; 8].into(),
            offset: 0,
        },
    ));
    let pending: Vec<(&str, Pending)> = ops
        .into_iter()
        .map(|(name, op)| (name, submit(&mut lp, op)))
        .collect();
    run_until(&mut lp, "bad-fd results", || {
        pending.iter().all(|(_, p)| p.done())
    });
    settle(&mut lp);
    let mut wrong = Vec::new();
    for (name, p) in &pending {
        assert_eq!(p.calls(), 1, "{name} on fd {fd}: callback must fire once");
        let (res, _) = p.take();
        // IOCP has no poll: it answers Unsupported before looking at the
        // handle.
        if name == &"poll" && lp.backend_name() == "iocp" {
            if !matches!(res, OpResult::Poll(Err(PollError::Unsupported))) {
                wrong.push(format!("{name}: {res:?}"));
            }
        } else if !is_bad_handle(errno(&res)) {
            wrong.push(format!("{name}: {res:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected EBADF on fd {fd}, got:\n{}",
        wrong.join("\n")
    );
    assert_eq!(lp.active(), 0);
}

for_each_backend!(
    fn bad_fd_minus_one<B: Backend>() {
        check_bad_fd::<B>(invalid_handle());
    }

    fn bad_fd_closed_number<B: Backend>() {
        check_bad_fd::<B>(closed_fd());
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    fn wrong_kind_of_fd_gives_honest_errno<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        let (res, _) = run_op(
            &mut lp,
            Op::Accept { fd: r.as_raw_fd() },
            "accept on a pipe",
        );
        assert_eq!(errno(&res), Some(NOT_A_SOCKET), "{res:?}");
        let (res, _) = run_op(
            &mut lp,
            Op::Recv {
                fd: r.as_raw_fd(),
                buf: vec![0; 4].into(),
            },
            "recv on a pipe",
        );
        assert_eq!(errno(&res), Some(NOT_A_SOCKET), "{res:?}");
        let (res, _) = run_op(
            &mut lp,
            Op::Send {
                fd: w.as_raw_fd(),
                buf: vec![0; 4].into(),
            },
            "send on a pipe",
        );
        assert_eq!(errno(&res), Some(NOT_A_SOCKET), "{res:?}");
        let (res, _) = run_op(
            &mut lp,
            Op::Read {
                fd: w.as_raw_fd(),
                buf: vec![0; 4].into(),
            },
            "read a write end",
        );
        // Windows: the handle lacks read access.
        #[cfg(any(unix, target_os = "wasi"))]
        assert!(is_bad_handle(errno(&res)), "{res:?}");
        #[cfg(windows)]
        assert_eq!(errno(&res), Some(5), "ERROR_ACCESS_DENIED: {res:?}");
        // Accept on a socket that is not listening.
        let s = tcp_socket();
        let (res, _) = run_op(
            &mut lp,
            Op::Accept { fd: s.as_raw_fd() },
            "accept, not listening",
        );
        assert_eq!(errno(&res), Some(INVALID_ARGUMENT), "{res:?}");
    }

    /// A receive that read a socket, rearmed by its callback on a pipe,
    /// fails at once as a fresh one does: nothing a backend learned about
    /// the socket (its readiness, say) is carried to the other descriptor,
    /// where the receive would then wait for data before failing.
    fn receive_rearmed_on_a_pipe_fails_at_once<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (mut client, server) = tcp_pair();
        let (r, _w) = pipe();
        let pipe_fd = r.as_raw_fd();
        let results = Rc::new(RefCell::new(Vec::new()));
        let out = results.clone();
        lp.add(
            Op::Recv {
                fd: server.as_raw_fd(),
                buf: vec![0; 8].into(),
            },
            move |_, op, res| {
                let first = out.borrow().is_empty();
                out.borrow_mut().push(res);
                if !first {
                    return Action::Disarm;
                }
                *op = Op::Recv {
                    fd: pipe_fd,
                    buf: vec![0; 8].into(),
                };
                Action::Rearm
            },
        );
        std::io::Write::write_all(&mut client, b"x").unwrap();
        run_until(&mut lp, "the receive rearmed on a pipe", || {
            results.borrow().len() == 2
        });
        let results = results.borrow();
        assert!(
            matches!(results[0], OpResult::Read(Ok(1))),
            "{:?}",
            results[0]
        );
        assert_eq!(errno(&results[1]), Some(NOT_A_SOCKET), "{:?}", results[1]);
    }

    /// A socket's number reused for a pipe (`dup2`): once an operation
    /// has started on the new file without a vouch, a receive vouched for
    /// on the number (an honest vouch: it stayed open since that start)
    /// fails at once: what a backend remembers of the socket is forgotten
    /// by the unvouched start.
    #[cfg(unix)]
    fn vouched_receive_on_a_reused_number_fails_at_once<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (mut client, server) = tcp_pair();
        std::io::Write::write_all(&mut client, b"x").unwrap();
        let fd = server.as_raw_fd();
        let recv = || Op::Recv {
            fd,
            buf: vec![0; 8].into(),
        };
        let (res, _) = run_op(&mut lp, recv(), "a receive that reads the socket empty");
        assert!(matches!(res, OpResult::Read(Ok(1))), "{res:?}");
        let (r, _w) = pipe();
        // SAFETY: both descriptors are owned by this test; afterwards
        // `server` owns the pipe's read end under the socket's number.
        assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), fd) }, fd);
        let (res, _) = run_op(
            &mut lp,
            Op::Write {
                fd,
                buf: vec![0; 1].into(),
            },
            "a write to the read end, not vouched for",
        );
        assert!(is_bad_handle(errno(&res)), "{res:?}");
        let p = submit(&mut lp, recv());
        lp.vouch(p.id).unwrap();
        let (res, _) = wait(&mut lp, &p, "a vouched receive on the reused number");
        assert_eq!(errno(&res), Some(NOT_A_SOCKET), "{res:?}");
        drop(server);
    }
);
