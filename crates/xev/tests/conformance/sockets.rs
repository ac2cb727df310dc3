//! TCP and UDP through raw operations: a full TCP conversation, a write
//! that goes on after its run returned, end of file, refused connects, broken and reset connections, large transfers
//! with short writes, several pending accepts; UDP `sendmsg`/`recvmsg`
//! (IPv4, IPv6, connected, zero-length datagrams, rearmed receives).

use crate::support::*;

/// A non-blocking listener, a client, and the socket that an accept
/// through `lp` (waiting when the client connected) got for it.
fn listener_after_one_accept<B: Backend>(
    lp: &mut Loop<B>,
) -> (TcpListener, TcpStream, xev::OwnedHandle) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let first = submit(lp, Op::Accept { fd: l.as_raw_fd() });
    lp.run(RunMode::NoWait).unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (res, _) = wait(lp, &first, "the first accept");
    let s = expect!(res, OpResult::Accept(Ok(s)) => s);
    (l, c, s)
}

for_each_backend!(
    fn tcp_full_conversation<B: Backend>() {
        let mut lp = new_loop::<B>();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tcp_socket();
        let cfd = client.as_raw_fd();

        let acc = submit(
            &mut lp,
            Op::Accept {
                fd: listener.as_raw_fd(),
            },
        );
        let con = submit(&mut lp, Op::connect(cfd, addr));
        run_until(&mut lp, "accept and connect", || acc.done() && con.done());
        settle(&mut lp);
        let server = expect!(acc.take().0, OpResult::Accept(Ok(fd)) => fd);
        expect!(con.take().0, OpResult::Connect(Ok(())));
        let sfd = server.as_raw_fd();
        #[cfg(any(unix, target_os = "wasi"))]
        {
            let (fl, fdfl) = fd_flags(sfd);
            assert!(
                fl & libc::O_NONBLOCK != 0,
                "accepted socket must be non-blocking"
            );
            assert!(
                fdfl & libc::FD_CLOEXEC != 0,
                "accepted socket must be close-on-exec"
            );
        }
        let peer = SockRef::from(&server)
            .peer_addr()
            .unwrap()
            .as_socket()
            .unwrap();
        let local = SockRef::from(&client)
            .local_addr()
            .unwrap()
            .as_socket()
            .unwrap();
        assert_eq!(peer, local, "accepted the connection we made");

        // send -> recv
        let rx = submit(
            &mut lp,
            Op::Recv {
                fd: sfd,
                buf: vec![0; 64].into(),
            },
        );
        let tx = submit(
            &mut lp,
            Op::Send {
                fd: cfd,
                buf: b"hello".to_vec().into(),
            },
        );
        run_until(&mut lp, "send/recv", || rx.done() && tx.done());
        settle(&mut lp);
        assert_eq!(expect!(tx.take().0, OpResult::Write(Ok(n)) => n), 5);
        let (res, op) = rx.take();
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"hello");

        // write -> read, the other way
        let rd = submit(
            &mut lp,
            Op::Read {
                fd: cfd,
                buf: vec![0; 64].into(),
            },
        );
        let wr = submit(
            &mut lp,
            Op::Write {
                fd: sfd,
                buf: b"world!".to_vec().into(),
            },
        );
        run_until(&mut lp, "write/read", || rd.done() && wr.done());
        settle(&mut lp);
        assert_eq!(expect!(wr.take().0, OpResult::Write(Ok(n)) => n), 6);
        let (res, op) = rd.take();
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"world!");

        // shutdown(write) on the client: the server reads end of file, and can
        // still send to the client.
        let (res, _) = run_op(
            &mut lp,
            Op::Shutdown {
                fd: cfd,
                how: Shutdown::Write,
            },
            "shutdown",
        );
        expect!(res, OpResult::Shutdown(Ok(())));
        let (res, _) = run_op(
            &mut lp,
            Op::Read {
                fd: sfd,
                buf: vec![0; 8].into(),
            },
            "read at eof",
        );
        expect!(res, OpResult::Read(Err(ReadError::Eof)));
        let (res, _) = run_op(
            &mut lp,
            Op::Send {
                fd: sfd,
                buf: b"bye".to_vec().into(),
            },
            "send",
        );
        assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 3);
        let (res, op) = run_op(
            &mut lp,
            Op::Recv {
                fd: cfd,
                buf: vec![0; 8].into(),
            },
            "recv",
        );
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"bye");

        // close both through the loop
        let (res, _) = run_op(
            &mut lp,
            Op::Close {
                fd: server.into_raw_fd(),
            },
            "close server",
        );
        expect!(res, OpResult::Close(Ok(())));
        let (res, _) = run_op(
            &mut lp,
            Op::Recv {
                fd: cfd,
                buf: vec![0; 8].into(),
            },
            "recv at eof",
        );
        expect!(res, OpResult::Read(Err(ReadError::Eof)));
        let (res, _) = run_op(
            &mut lp,
            Op::Close {
                fd: client.into_raw_fd(),
            },
            "close client",
        );
        expect!(res, OpResult::Close(Ok(())));
        assert_eq!(lp.active(), 0);
    }

    /// An operation that a run started goes on after the run returns: a
    /// write started in a `Once` run that ended on another callback reaches
    /// the peer before the loop runs again (io_uring hands entries that a
    /// tick left unsubmitted to the kernel when a run returns).
    fn a_write_started_in_a_run_proceeds_after_it_returns<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        let noop = submit(&mut lp, Op::Noop);
        let wr = submit(
            &mut lp,
            Op::Write {
                fd: c.as_raw_fd(),
                buf: b"after".to_vec().into(),
            },
        );
        lp.run(RunMode::Once).unwrap();
        assert_eq!(noop.calls(), 1);
        // The loop does not run meanwhile.
        let mut buf = [0u8; 8];
        let n = read_when_ready(s.as_raw_fd(), &mut buf);
        assert_eq!(&buf[..n as usize], b"after");
        let (res, _) = wait(&mut lp, &wr, "the write");
        expect!(res, OpResult::Write(Ok(5)));
    }

    fn tcp_pending_read_sees_eof_when_peer_closes<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        let rd = submit(
            &mut lp,
            Op::Read {
                fd: c.as_raw_fd(),
                buf: vec![0; 16].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd.calls(), 0);
        drop(s);
        let (res, _) = wait(&mut lp, &rd, "eof");
        expect!(res, OpResult::Read(Err(ReadError::Eof)));
        // And a read started after the close sees it at once.
        let (res, _) = run_op(
            &mut lp,
            Op::Recv {
                fd: c.as_raw_fd(),
                buf: vec![0; 16].into(),
            },
            "eof",
        );
        expect!(res, OpResult::Read(Err(ReadError::Eof)));
    }

    fn tcp_eof_after_peer_shutdown<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        let rd = submit(
            &mut lp,
            Op::Recv {
                fd: c.as_raw_fd(),
                buf: vec![0; 16].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd.calls(), 0);
        s.shutdown(Shutdown::Write).unwrap();
        let (res, _) = wait(&mut lp, &rd, "eof after shutdown");
        expect!(res, OpResult::Read(Err(ReadError::Eof)));
        // The other direction still works.
        let (res, _) = run_op(
            &mut lp,
            Op::Send {
                fd: c.as_raw_fd(),
                buf: b"ok".to_vec().into(),
            },
            "send",
        );
        assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 2);
        let mut b = [0u8; 4];
        assert_eq!(read_when_ready(s.as_raw_fd(), &mut b), 2);
    }

    fn tcp_connect_refused<B: Backend>() {
        // A bound but not listening socket: connections to its port are refused,
        // and nobody else can take the port while we hold it.
        let holder = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        holder
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = holder.local_addr().unwrap().as_socket().unwrap();
        let mut lp = new_loop::<B>();
        let fd = tcp_socket();
        let (res, _) = run_op(
            &mut lp,
            Op::connect(fd.as_raw_fd(), addr),
            "refused connect",
        );
        let e = expect!(res, OpResult::Connect(Err(ConnectError::Io(e))) => e);
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    }

    fn tcp_send_to_closed_peer_breaks<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        drop(s);
        let mut last = None;
        for _ in 0..200 {
            let (res, _) = run_op(
                &mut lp,
                Op::Send {
                    fd: c.as_raw_fd(),
                    buf: vec![7; 1024].into(),
                },
                "send",
            );
            match res {
                OpResult::Write(Ok(_)) => continue,
                OpResult::Write(Err(WriteError::Io(e))) => {
                    last = Some(e);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let e = last.expect("sending to a closed peer never failed");
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ),
            "expected EPIPE or ECONNRESET, got {e}"
        );
        // Write (not send) behaves the same (SIGPIPE is ignored by the harness
        // or suppressed by the backend).
        let (res, _) = run_op(
            &mut lp,
            Op::Write {
                fd: c.as_raw_fd(),
                buf: vec![7; 16].into(),
            },
            "write",
        );
        let e = errno(&res).unwrap_or_else(|| panic!("expected an error, got {res:?}"));
        assert!(
            matches!(
                error_kind(&res),
                Some(std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset)
            ),
            "{}",
            errno_name(e)
        );
    }

    fn tcp_reset_gives_econnreset<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        let rd = submit(
            &mut lp,
            Op::Read {
                fd: c.as_raw_fd(),
                buf: vec![0; 16].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd.calls(), 0);
        SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s); // RST
        let (res, _) = wait(&mut lp, &rd, "read after reset");
        let e = expect!(res, OpResult::Read(Err(ReadError::Io(e))) => e);
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }

    /// After a read that drained a socket (it got fewer bytes than it asked
    /// for), data that arrives before the next read is still found: whether
    /// the loop ran meanwhile (a readiness backend then saw the event while
    /// nobody waited) or not. (It guards any backend that would skip such a
    /// read's first attempt.)
    fn a_read_after_a_drained_read_finds_data_that_came_since<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        let fd = c.as_raw_fd();
        let read = |lp: &mut Loop<B>, what: &str| {
            let (res, op) = run_op(
                lp,
                Op::Recv {
                    fd,
                    buf: vec![0; 16].into(),
                },
                what,
            );
            let n = expect!(res, OpResult::Read(Ok(n)) => n);
            op.buf().unwrap()[..n].to_vec()
        };
        for (round, run_between) in [(0u8, false), (1, true), (2, false), (3, true)] {
            assert_eq!(raw_write(s.as_raw_fd(), &[round; 3]), 3);
            // Wait until the bytes are there, then drain them (3 < 16).
            let got = read(&mut lp, "the first read");
            assert_eq!(got, [round; 3], "round {round}");
            // More comes while no read is pending.
            assert_eq!(raw_write(s.as_raw_fd(), &[round + 10; 2]), 2);
            if run_between {
                // Give the loop a chance to see (and drop) the event.
                std::thread::sleep(std::time::Duration::from_millis(5));
                lp.run(RunMode::NoWait).unwrap();
            }
            let got = read(&mut lp, "the read after the drained one");
            assert_eq!(got, [round + 10; 2], "round {round}");
        }
    }

    /// Operations started after their owner vouched for the socket
    /// (`Loop::vouch`: it stayed open since the loop's last operation on
    /// it) behave as without: a read that must wait is woken by data, and
    /// a read after one that came back short still sees the end of the
    /// stream that arrived with those bytes (a readiness backend that
    /// skips a drained socket's first attempt must not then wait for an
    /// event that already came). Each round runs vouched and not.
    fn vouched_reads_see_data_and_the_end_of_the_stream<B: Backend>() {
        for vouch in [true, false] {
            let mut lp = new_loop::<B>();
            let (c, s) = tcp_pair();
            let fd = c.as_raw_fd();
            let recv = |lp: &mut Loop<B>| {
                let p = submit(
                    lp,
                    Op::Recv {
                        fd,
                        buf: vec![0; 16].into(),
                    },
                );
                if vouch {
                    lp.vouch(p.id).unwrap();
                }
                p
            };
            // The first operation on the descriptor: nothing to vouch for
            // yet (a vouch is only a hint, so it is harmless here too).
            assert_eq!(write_when_ready(s.as_raw_fd(), b"abc"), 3);
            let p = recv(&mut lp);
            let (res, op) = wait(&mut lp, &p, "a read of data already there");
            assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 3);
            assert_eq!(&op.buf().unwrap()[..3], b"abc");
            for round in 0..3u8 {
                // A read that waits, woken by data.
                let p = recv(&mut lp);
                lp.run(RunMode::NoWait).unwrap();
                assert_eq!(p.calls(), 0, "vouch {vouch}, round {round}");
                assert_eq!(write_when_ready(s.as_raw_fd(), &[round; 2]), 2);
                let (res, op) = wait(&mut lp, &p, "a read woken by data");
                assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 2);
                assert_eq!(&op.buf().unwrap()[..2], &[round; 2]);
            }
            // Bytes and the end of the stream arrive together while a read
            // waits: it takes the bytes (fewer than it asked for), and the
            // next read sees the end.
            let p = recv(&mut lp);
            lp.run(RunMode::NoWait).unwrap();
            assert_eq!(p.calls(), 0);
            assert_eq!(write_when_ready(s.as_raw_fd(), b"last"), 4);
            s.shutdown(Shutdown::Write).unwrap();
            let (res, op) = wait(&mut lp, &p, "the last bytes");
            let n = expect!(res, OpResult::Read(Ok(n)) => n);
            let mut got = op.buf().unwrap()[..n].to_vec();
            while got.len() < 4 {
                let p = recv(&mut lp);
                let (res, op) = wait(&mut lp, &p, "the rest of the last bytes");
                let n = expect!(res, OpResult::Read(Ok(n)) => n);
                got.extend_from_slice(&op.buf().unwrap()[..n]);
            }
            assert_eq!(got, b"last");
            for _ in 0..2 {
                let p = recv(&mut lp);
                let (res, _) = wait(&mut lp, &p, "the end of the stream");
                expect!(res, OpResult::Read(Err(ReadError::Eof)));
            }
        }
    }

    /// A vouch given from a completion's own callback holds for its rearm
    /// (a readiness backend then skips its registration check), and the
    /// rearmed reads behave as without: woken by data, then the end of the
    /// stream. `vouch` answers `Busy` for a started completion and `Stale`
    /// for a freed one.
    fn vouch_from_a_callback_holds_for_the_rearm<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        let fd = c.as_raw_fd();
        let me: Rc<Cell<Option<Id>>> = Rc::default();
        let got: Rc<RefCell<Vec<u8>>> = Rc::default();
        let ended = Rc::new(Cell::new(false));
        let (m, g, e) = (me.clone(), got.clone(), ended.clone());
        let id = lp.add(
            Op::Recv {
                fd,
                buf: vec![0; 16].into(),
            },
            move |lp, op, res| match res {
                OpResult::Read(Ok(n)) => {
                    g.borrow_mut().extend_from_slice(&op.buf().unwrap()[..n]);
                    let me = m.get().expect("the id is set before the loop runs");
                    assert_eq!(lp.vouch(me), Ok(()));
                    Action::Rearm
                }
                OpResult::Read(Err(ReadError::Eof)) => {
                    e.set(true);
                    Action::Disarm
                }
                other => panic!("unexpected {other:?}"),
            },
        );
        me.set(Some(id));
        assert_eq!(lp.vouch(id), Ok(()), "a queued completion");
        lp.run(RunMode::NoWait).unwrap();
        assert!(got.borrow().is_empty());
        assert_eq!(lp.vouch(id), Err(IdError::Busy), "a read in flight");
        for round in 0..3u8 {
            assert_eq!(write_when_ready(s.as_raw_fd(), &[round; 2]), 2);
            let want = 2 * (round as usize + 1);
            run_until(&mut lp, "a rearmed read", || got.borrow().len() == want);
        }
        assert_eq!(write_when_ready(s.as_raw_fd(), b"end"), 3);
        s.shutdown(Shutdown::Write).unwrap();
        run_until(&mut lp, "the end of the stream", || ended.get());
        assert_eq!(*got.borrow(), [0, 0, 1, 1, 2, 2, b'e', b'n', b'd']);
        assert_eq!(lp.vouch(id), Err(IdError::Stale), "a freed completion");
    }

    /// `Op::try_now` does a socket transfer at once on Unix systems, with
    /// the result the loop would have given (data, a send, the end of the
    /// stream), or `None` when the socket is not ready; any other
    /// operation, and every operation on other systems, gives `None`.
    fn try_now_transfers_at_once_on_unix<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        let recv = |fd| Op::Recv {
            fd,
            buf: vec![0; 16].into(),
        };
        let readable = |lp: &mut Loop<B>, fd| {
            let (res, _) = run_op(
                lp,
                Op::Poll {
                    fd,
                    interest: Interest::READABLE,
                },
                "readable",
            );
            expect!(res, OpResult::Poll(Ok(_)));
        };
        assert!(Op::timer(0).try_now().is_none());
        assert!(recv(s.as_raw_fd()).try_now().is_none(), "nothing to read");
        let mut send = Op::Send {
            fd: c.as_raw_fd(),
            buf: b"abc".to_vec().into(),
        };
        let sent = send.try_now();
        if !cfg!(unix) {
            assert!(sent.is_none());
            return;
        }
        assert_eq!(expect!(sent.unwrap(), OpResult::Write(Ok(n)) => n), 3);
        readable(&mut lp, s.as_raw_fd());
        let mut op = recv(s.as_raw_fd());
        let res = op.try_now().expect("data is there");
        assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 3);
        assert_eq!(&op.buf().unwrap()[..3], b"abc");
        c.shutdown(Shutdown::Write).unwrap();
        readable(&mut lp, s.as_raw_fd());
        let res = recv(s.as_raw_fd()).try_now().expect("the end is there");
        expect!(res, OpResult::Read(Err(ReadError::Eof)));
    }

    /// A read and a write pending on one socket at once (two waiters on one
    /// descriptor for readiness backends).
    fn tcp_read_and_write_on_one_socket<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        let fd = c.as_raw_fd();
        let rd = submit(
            &mut lp,
            Op::Recv {
                fd,
                buf: vec![0; 16].into(),
            },
        );
        let rd2 = submit(
            &mut lp,
            Op::Recv {
                fd,
                buf: vec![0; 16].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd.calls() + rd2.calls(), 0);
        let wr = submit(
            &mut lp,
            Op::Send {
                fd,
                buf: b"abc".to_vec().into(),
            },
        );
        let (res, _) = wait(&mut lp, &wr, "send while a recv waits");
        assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 3);
        assert_eq!(rd.calls() + rd2.calls(), 0, "the reads still wait");
        let mut b = [0u8; 8];
        assert_eq!(read_when_ready(s.as_raw_fd(), &mut b), 3);
        assert_eq!(&b[..3], b"abc");
        // Two separate messages satisfy the two reads, one each. (Which read
        // gets which is not specified: epoll serves waiters in order, io_uring
        // in the kernel's wait-queue order, which is last-in first-out.)
        assert_eq!(raw_write(s.as_raw_fd(), b"1"), 1);
        run_until(&mut lp, "first read", || rd.done() || rd2.done());
        settle(&mut lp);
        assert_eq!(rd.calls() + rd2.calls(), 1, "one message wakes one read");
        assert_eq!(raw_write(s.as_raw_fd(), b"2"), 1);
        run_until(&mut lp, "second read", || rd.done() && rd2.done());
        settle(&mut lp);
        let mut got = Vec::new();
        for p in [&rd, &rd2] {
            let (res, op) = p.take();
            assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 1);
            got.push(op.buf().unwrap()[0]);
        }
        got.sort();
        assert_eq!(got, b"12");
    }

    fn tcp_several_pending_accepts<B: Backend>() {
        let mut lp = new_loop::<B>();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let accepts: Vec<Pending> = (0..3)
            .map(|_| submit(&mut lp, Op::Accept { fd: l.as_raw_fd() }))
            .collect();
        lp.run(RunMode::NoWait).unwrap();
        assert!(accepts.iter().all(|a| a.calls() == 0));
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        run_until(&mut lp, "three accepts", || {
            accepts.iter().all(|a| a.done())
        });
        settle(&mut lp);
        let mut peers: Vec<SocketAddr> = accepts
            .iter()
            .map(|a| {
                let fd = expect!(a.take().0, OpResult::Accept(Ok(fd)) => fd);
                SockRef::from(&fd).peer_addr().unwrap().as_socket().unwrap()
            })
            .collect();
        let mut locals: Vec<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        peers.sort();
        locals.sort();
        assert_eq!(peers, locals);
    }

    fn connections_that_come_between_accepts_wait_for_the_next<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (l, c1, s1) = listener_after_one_accept(&mut lp);
        let (addr, fd) = (l.local_addr().unwrap(), l.as_raw_fd());
        // Two more connect while no accept waits, and the loop turns.
        let c2 = TcpStream::connect(addr).unwrap();
        let c3 = TcpStream::connect(addr).unwrap();
        for _ in 0..3 {
            lp.run(RunMode::NoWait).unwrap();
        }
        // Each later accept gets one, in the order they connected.
        let mut peers = vec![SockRef::from(&s1).peer_addr().unwrap().as_socket().unwrap()];
        for what in ["the second accept", "the third accept"] {
            let (res, _) = run_op(&mut lp, Op::Accept { fd }, what);
            let s = expect!(res, OpResult::Accept(Ok(s)) => s);
            peers.push(SockRef::from(&s).peer_addr().unwrap().as_socket().unwrap());
        }
        let locals: Vec<SocketAddr> = [&c1, &c2, &c3]
            .iter()
            .map(|c| c.local_addr().unwrap())
            .collect();
        assert_eq!(peers, locals);
    }

    fn a_closed_listener_leaves_no_connection_open<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (l, _c1, _s1) = listener_after_one_accept(&mut lp);
        let addr = l.local_addr().unwrap();
        // A connection that no accept takes, then the listener's close
        // through the loop.
        let c2 = TcpStream::connect(addr).unwrap();
        for _ in 0..3 {
            lp.run(RunMode::NoWait).unwrap();
        }
        let (res, _) = run_op(
            &mut lp,
            Op::Close {
                fd: l.into_raw_fd(),
            },
            "the close",
        );
        expect!(res, OpResult::Close(Ok(())));
        // The connection ends (end of file, or an error: a reset from the
        // backlog, EIO under wasmtime), whether it waited in the backlog
        // or the loop had accepted it ahead; a leak would hang here.
        let mut b = [0u8; 1];
        let n = read_when_ready(c2.as_raw_fd(), &mut b);
        assert!(n <= 0, "the connection is still open: {n} bytes read");
        drop(c2);
    }

    fn zero_copy_sends_arrive_whole<B: Backend>() {
        let mut lp = Loop::<B>::new(Options {
            io_uring_send_zc_min: Some(4096),
            ..Options::default()
        })
        .unwrap();
        // Only io_uring takes the option (where the kernel has SEND_ZC).
        let zc = lp.capabilities().send_zc;
        if lp.backend_name() == "io_uring" {
            assert!(matches!(zc, None | Some(4096)), "{zc:?}");
        } else {
            assert_eq!(zc, None);
        }
        let (c, s) = tcp_pair();
        let data: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        let (mut sent, mut got) = (0, Vec::new());
        // Sends of 64 KiB and of 100 bytes (below the threshold), each read
        // on the other side before the next; each buffer comes back whole.
        for len in std::iter::repeat([64 * 1024, 100]).flatten() {
            if sent == data.len() {
                break;
            }
            let chunk = data[sent..(sent + len).min(data.len())].to_vec();
            let (res, mut op) = run_op(
                &mut lp,
                Op::Send {
                    fd: s.as_raw_fd(),
                    buf: chunk.clone().into(),
                },
                "a send",
            );
            let n = expect!(res, OpResult::Write(Ok(n)) => n);
            assert!(n > 0 && n <= chunk.len(), "{n}");
            assert_eq!(op.take_buf().unwrap(), chunk);
            sent += n;
            while got.len() < sent {
                let mut b = vec![0u8; 64 * 1024];
                let r = read_when_ready(c.as_raw_fd(), &mut b);
                assert!(r > 0, "{r}");
                got.extend_from_slice(&b[..r as usize]);
            }
        }
        assert_eq!(got, data);
        // A socket without zero-copy sends (a Unix socket) still sends.
        #[cfg(unix)]
        {
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let big = vec![7u8; 8192];
            let (res, _) = run_op(
                &mut lp,
                Op::Send {
                    fd: a.as_raw_fd(),
                    buf: big.clone().into(),
                },
                "a send on a Unix socket",
            );
            assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 8192);
            let mut back = vec![0u8; 8192];
            std::io::Read::read_exact(&mut &b, &mut back).unwrap();
            assert_eq!(back, big);
        }
    }

    fn udp_sendmsg_recvmsg_round_trip<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (a, a_addr) = udp_socket();
        let (b, b_addr) = udp_socket();
        let rx = submit(
            &mut lp,
            Op::Recvmsg(Msg::recv_from(b.as_raw_fd(), vec![0; 64])),
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rx.calls(), 0);
        let tx = submit(
            &mut lp,
            Op::Sendmsg(Msg::send_to(a.as_raw_fd(), b"datagram".to_vec(), b_addr)),
        );
        run_until(&mut lp, "sendmsg/recvmsg", || rx.done() && tx.done());
        settle(&mut lp);
        assert_eq!(expect!(tx.take().0, OpResult::Write(Ok(n)) => n), 8);
        let (res, op) = rx.take();
        let (n, from) = expect!(res, OpResult::RecvFrom(Ok(v)) => v);
        assert_eq!(n, 8);
        assert_eq!(from, Some(a_addr), "the sender's address");
        let Op::Recvmsg(m) = op else { panic!("{op:?}") };
        assert_eq!(&m.buf.as_vec().unwrap()[..n], b"datagram");
        assert_eq!(m.addr(), Some(a_addr));

        // Reply, reusing the received message as a send to its sender.
        let mut m = m;
        m.fd = b.as_raw_fd();
        let v = m.buf.as_vec_mut().unwrap();
        v.truncate(n);
        v.reverse();
        let (res, _) = run_op(&mut lp, Op::Sendmsg(m), "reply");
        assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 8);
        let (res, op) = run_op(
            &mut lp,
            Op::Recvmsg(Msg::recv_from(a.as_raw_fd(), vec![0; 64])),
            "reply recv",
        );
        let (n, from) = expect!(res, OpResult::RecvFrom(Ok(v)) => v);
        assert_eq!(from, Some(b_addr));
        assert_eq!(&op.buf().unwrap()[..n], b"margatad");
    }

    fn udp_connected_send_recv<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (a, a_addr) = udp_socket();
        let (b, b_addr) = udp_socket();
        a.connect(b_addr).unwrap();
        b.connect(a_addr).unwrap();
        let rx = submit(
            &mut lp,
            Op::Recv {
                fd: b.as_raw_fd(),
                buf: vec![0; 32].into(),
            },
        );
        let tx = submit(
            &mut lp,
            Op::Send {
                fd: a.as_raw_fd(),
                buf: b"one".to_vec().into(),
            },
        );
        run_until(&mut lp, "udp send/recv", || rx.done() && tx.done());
        settle(&mut lp);
        assert_eq!(expect!(tx.take().0, OpResult::Write(Ok(n)) => n), 3);
        let (res, op) = rx.take();
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"one");
        // write/read on a connected datagram socket too.
        let rd = submit(
            &mut lp,
            Op::Read {
                fd: a.as_raw_fd(),
                buf: vec![0; 32].into(),
            },
        );
        let wr = submit(
            &mut lp,
            Op::Write {
                fd: b.as_raw_fd(),
                buf: b"two".to_vec().into(),
            },
        );
        run_until(&mut lp, "udp write/read", || rd.done() && wr.done());
        settle(&mut lp);
        assert_eq!(expect!(wr.take().0, OpResult::Write(Ok(n)) => n), 3);
        let (res, op) = rd.take();
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"two");
    }

    fn udp_ipv6_round_trip<B: Backend>() {
        let (Ok(a), Ok(b)) = (UdpSocket::bind("[::1]:0"), UdpSocket::bind("[::1]:0")) else {
            eprintln!("udp_ipv6_round_trip: no IPv6 loopback here: skipping");
            return;
        };
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut lp = new_loop::<B>();
        let rx = submit(
            &mut lp,
            Op::Recvmsg(Msg::recv_from(b.as_raw_fd(), vec![0; 64])),
        );
        let tx = submit(
            &mut lp,
            Op::Sendmsg(Msg::send_to(a.as_raw_fd(), b"six".to_vec(), b_addr)),
        );
        run_until(&mut lp, "v6 round trip", || rx.done() && tx.done());
        settle(&mut lp);
        assert_eq!(expect!(tx.take().0, OpResult::Write(Ok(n)) => n), 3);
        let (n, from) = expect!(rx.take().0, OpResult::RecvFrom(Ok(v)) => v);
        assert_eq!(n, 3);
        assert_eq!(from, Some(a_addr), "IPv6 sender address");
    }

    /// A rearmed recvmsg receives several datagrams, each with its sender.
    fn recvmsg_rearmed_for_several_datagrams<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (rx_sock, rx_addr) = udp_socket();
        let senders: Vec<(UdpSocket, SocketAddr)> = (0..3).map(|_| udp_socket()).collect();
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        lp.add(
            Op::Recvmsg(Msg::recv_from(rx_sock.as_raw_fd(), vec![0; 32])),
            move |_, op, res| {
                let (n, from) = expect!(res, OpResult::RecvFrom(Ok(v)) => v);
                g.borrow_mut()
                    .push((op.buf().unwrap()[..n].to_vec(), from.unwrap()));
                if g.borrow().len() == 3 {
                    Action::Disarm
                } else {
                    Action::Rearm
                }
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        for (i, (s, _)) in senders.iter().enumerate() {
            s.send_to(&[b'a' + i as u8; 5], rx_addr).unwrap();
        }
        run_until(&mut lp, "three datagrams", || got.borrow().len() == 3);
        let got = got.borrow();
        for (i, (s_addr, (data, from))) in
            senders.iter().map(|(_, a)| a).zip(got.iter()).enumerate()
        {
            assert_eq!(data, &vec![b'a' + i as u8; 5]);
            assert_eq!(from, s_addr);
        }
    }

    /// A large transfer over TCP with one rearmed completion per side: short
    /// writes are finished, partial reads accumulate, data arrives intact.
    fn tcp_large_transfer_with_short_writes<B: Backend>() {
        const LEN: usize = 1 << 20;
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        SockRef::from(&c).set_send_buffer_size(16 * 1024).unwrap();
        SockRef::from(&s).set_recv_buffer_size(16 * 1024).unwrap();
        let data: Vec<u8> = (0..LEN).map(|i| (i * 7 + i / 251) as u8).collect();
        let writes = Rc::new(Cell::new(0usize));
        let short = Rc::new(Cell::new(false));
        let (w, sh) = (writes.clone(), short.clone());
        let cfd = c.as_raw_fd();
        lp.add(
            Op::Send {
                fd: cfd,
                buf: data.clone().into(),
            },
            move |_, op, res| {
                let n = expect!(res, OpResult::Write(Ok(n)) => n);
                w.set(w.get() + 1);
                let buf = op.buf_mut().unwrap();
                if n < buf.len() {
                    sh.set(true);
                    buf.drain(..n);
                    return Action::Rearm;
                }
                Action::Disarm
            },
        );
        let received = Rc::new(RefCell::new(Vec::with_capacity(LEN)));
        let eof = Rc::new(Cell::new(false));
        let (rcv, e) = (received.clone(), eof.clone());
        lp.add(
            Op::Recv {
                fd: s.as_raw_fd(),
                buf: vec![0; 7000].into(),
            },
            move |_, op, res| match res {
                OpResult::Read(Ok(n)) => {
                    rcv.borrow_mut().extend_from_slice(&op.buf().unwrap()[..n]);
                    if rcv.borrow().len() == LEN {
                        e.set(true);
                        return Action::Disarm;
                    }
                    Action::Rearm
                }
                other => panic!("{other:?}"),
            },
        );
        run_until(&mut lp, "1 MiB transfer", || eof.get());
        assert!(
            received.borrow().as_slice() == data.as_slice(),
            "data corrupted"
        );
        assert!(writes.get() >= 1);
        if !short.get() {
            eprintln!(
                "note: the 1 MiB send was never short on {}",
                lp.backend_name()
            );
        }
    }

    /// Several datagrams queued before the first read: each read comes
    /// back short (a datagram is smaller than the buffer) though more are
    /// waiting, and no new edge comes for them. Every one is read, each by
    /// its own read started after the last completed.
    fn short_datagram_reads_do_not_hide_queued_datagrams<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (a, a_addr) = udp_socket();
        let (b, b_addr) = udp_socket();
        a.connect(b_addr).unwrap();
        b.connect(a_addr).unwrap();
        let recv = || Op::Recv {
            fd: b.as_raw_fd(),
            buf: vec![0; 32].into(),
        };
        // The first read waits (so the socket is watched), then all four
        // come (on Linux loopback they are queued once `send` returns).
        let first = submit(&mut lp, recv());
        lp.run(RunMode::NoWait).unwrap();
        for i in 0..4u8 {
            assert_eq!(a.send(&[i; 3]).unwrap(), 3);
        }
        let (res, op) = wait(&mut lp, &first, "the first datagram");
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], &[0; 3]);
        for i in 1..4u8 {
            let (res, op) = run_op(&mut lp, recv(), "a queued datagram");
            let n = expect!(res, OpResult::Read(Ok(n)) => n);
            assert_eq!(&op.buf().unwrap()[..n], &[i; 3], "datagram {i}");
        }
    }

    fn udp_zero_length_datagram_is_not_eof<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (a, a_addr) = udp_socket();
        let (b, b_addr) = udp_socket();
        a.send_to(b"", b_addr).unwrap();
        let (res, _) = run_op(
            &mut lp,
            Op::Recvmsg(Msg::recv_from(b.as_raw_fd(), vec![0; 16])),
            "an empty datagram",
        );
        let (n, from) = expect!(res, OpResult::RecvFrom(Ok(v)) => v);
        assert_eq!(n, 0);
        assert_eq!(from, Some(a_addr), "the empty datagram's sender");
    }

    /// Vectored messages on a connected TCP socket: a gather send takes
    /// its buffers in order (an empty one among them), a scatter receive
    /// fills its buffers in order. Either may stop short (on WASI each
    /// call moves one buffer), so both loop until every byte is through.
    fn tcp_vectored_send_and_receive<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        let parts: [&[u8]; 3] = [b"vec", b"", b"tored|gather"];
        let all: Vec<u8> = parts.concat();
        let mut sent = 0;
        while sent < all.len() {
            // The parts from `sent` on, as separate buffers.
            let (mut skip, mut bufs) = (sent, Vec::new());
            for p in parts {
                let k = skip.min(p.len());
                skip -= k;
                bufs.push(xev::Buf::from(&p[k..]));
            }
            let (res, _) = run_op(
                &mut lp,
                Op::Sendmsg(Msg::send_vectored(c.as_raw_fd(), bufs)),
                "a gather send",
            );
            let n = expect!(res, OpResult::Write(Ok(n)) => n);
            assert!(n > 0);
            sent += n;
        }
        let mut got = vec![0u8; all.len()];
        let mut have = 0;
        while have < all.len() {
            let n = read_when_ready(s.as_raw_fd(), &mut got[have..]);
            assert!(n > 0, "the peer reads what was sent");
            have += n as usize;
        }
        assert_eq!(got, all, "the buffers arrived in order");

        let data = b"scatter|receive";
        assert_eq!(raw_write(s.as_raw_fd(), data), data.len() as isize);
        let mut received = Vec::new();
        while received.len() < data.len() {
            let bufs = vec![vec![0u8; 4].into(), Vec::new().into(), vec![0u8; 32].into()];
            let (res, op) = run_op(
                &mut lp,
                Op::Recvmsg(Msg::recv_vectored(c.as_raw_fd(), bufs)),
                "a scatter receive",
            );
            let (n, _) = expect!(res, OpResult::RecvFrom(Ok(v)) => v);
            assert!(n > 0);
            let Op::Recvmsg(m) = op else { panic!("{op:?}") };
            let first = m.buf.as_vec().unwrap();
            let k = n.min(4);
            received.extend_from_slice(&first[..k]);
            // Bytes past the first buffer went to the third, in order.
            received.extend_from_slice(&m.more[1].as_vec().unwrap()[..n - k]);
        }
        assert_eq!(received, data, "the buffers were filled in order");
    }

    /// A read waits on a socket; then, with the send buffer full, a write
    /// on the same socket must wait too: the loop watches the socket for
    /// writability from then on (a poller that watched only reads would
    /// never finish the write). The peer drains, the write finishes, and
    /// the read still gets its data.
    fn a_write_that_waits_beside_a_waiting_read_completes<B: Backend>() {
        const LEN: usize = 4 << 20;
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        SockRef::from(&c).set_send_buffer_size(16 * 1024).unwrap();
        SockRef::from(&s).set_recv_buffer_size(16 * 1024).unwrap();
        let fd = c.as_raw_fd();
        let rd = submit(
            &mut lp,
            Op::Recv {
                fd,
                buf: vec![0; 16].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd.calls(), 0, "the read waits");
        // Fill the send buffer (the socket is non-blocking), so that the
        // loop's write finds no room and has to wait.
        let fill = vec![7u8; 64 * 1024];
        let mut filled = 0usize;
        loop {
            let n = raw_write(fd, &fill);
            if n <= 0 {
                break;
            }
            filled += n as usize;
            assert!(filled < LEN, "the send buffer never filled");
        }
        let wr = submit(
            &mut lp,
            Op::Send {
                fd,
                buf: vec![7u8; 1000].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        // Drain the peer until the write is over (each drain makes room).
        let mut got = 0usize;
        let mut chunk = vec![0u8; 64 * 1024];
        while !wr.done() {
            if got < filled + 1000 {
                let n = read_when_ready(s.as_raw_fd(), &mut chunk);
                assert!(n > 0, "the peer reads what was sent");
                got += n as usize;
            }
            lp.run(RunMode::NoWait).unwrap();
        }
        let (res, _) = wr.take();
        let n = expect!(res, OpResult::Write(Ok(n)) => n);
        assert!(n > 0);
        assert_eq!(rd.calls(), 0, "the read still waits");
        assert_eq!(raw_write(s.as_raw_fd(), b"reply"), 5);
        let (res, op) = wait(&mut lp, &rd, "the read beside the write");
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"reply");
    }
);
