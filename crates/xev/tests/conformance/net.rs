//! Sockets through raw operations, written once for every platform (the
//! sockets come from `std` and `socket2`, their handles through
//! [`raw`]): accept and connect, send and recv with end of file, datagrams
//! with their sender, cancelling and closing with a receive pending, and a
//! poll, which IOCP answers with a typed `Unsupported`.

use super::support::*;

/// A loopback listener and a connected pair made through the loop:
/// (listener, client, accepted server side).
fn connect_through<B: Backend>(lp: &mut Loop<B>) -> (TcpListener, Socket, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let client = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    make_nonblocking(&client);
    let acc = submit(lp, Op::Accept { fd: raw(&listener) });
    let con = submit(lp, Op::connect(raw(&client), addr));
    run_until(lp, "accept and connect", || acc.done() && con.done());
    settle(lp);
    expect!(con.take().0, OpResult::Connect(Ok(())));
    let server = expect!(acc.take().0, OpResult::Accept(Ok(s)) => TcpStream::from(s));
    assert_eq!(
        server.peer_addr().unwrap(),
        client.local_addr().unwrap().as_socket().unwrap(),
        "the accepted socket knows its peer"
    );
    (listener, client, server)
}

/// Sends `data` on `fd` with a send operation; checks it all went.
fn send_all<B: Backend>(lp: &mut Loop<B>, fd: xev::RawHandle, data: &[u8]) {
    let op = Op::Send {
        fd,
        buf: data.to_vec().into(),
    };
    let (res, _) = run_op(lp, op, "send");
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), data.len());
}

/// One recv operation of at most 16 bytes on `fd`: what it got.
fn recv_some<B: Backend>(lp: &mut Loop<B>, fd: xev::RawHandle) -> Vec<u8> {
    let op = Op::Recv {
        fd,
        buf: vec![0; 16].into(),
    };
    let (res, op) = run_op(lp, op, "recv");
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    op.buf().unwrap()[..n].to_vec()
}

for_each_backend!(
    /// Accept and connect through the loop, then bytes both ways with send
    /// and recv, then end of file once the peer shuts its side down.
    fn tcp_round_trip_and_eof<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (_l, client, server) = connect_through(&mut lp);
        send_all(&mut lp, raw(&client), b"ping");
        assert_eq!(recv_some(&mut lp, raw(&server)), b"ping");

        // The other way, with write and read.
        let (res, _) = run_op(
            &mut lp,
            Op::Write {
                fd: raw(&server),
                buf: b"pong!".to_vec().into(),
            },
            "write",
        );
        expect!(res, OpResult::Write(Ok(5)));
        let mut got = Vec::new();
        while got.len() < 5 {
            let (res, op) = run_op(
                &mut lp,
                Op::Read {
                    fd: raw(&client),
                    buf: vec![0; 16].into(),
                },
                "read",
            );
            let n = expect!(res, OpResult::Read(Ok(n)) => n);
            got.extend_from_slice(&op.buf().unwrap()[..n]);
        }
        assert_eq!(got, b"pong!");

        let (res, _) = run_op(
            &mut lp,
            Op::Shutdown {
                fd: raw(&client),
                how: Shutdown::Write,
            },
            "shutdown",
        );
        expect!(res, OpResult::Shutdown(Ok(())));
        let (res, _) = run_op(
            &mut lp,
            Op::Recv {
                fd: raw(&server),
                buf: vec![0; 16].into(),
            },
            "recv at eof",
        );
        expect!(res, OpResult::Read(Err(ReadError::Eof)));
    }

    /// A datagram and its sender's address, and a zero-length datagram,
    /// which is not an end of file.
    fn udp_send_to_and_recv_from<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (a, a_addr) = udp_socket();
        let (b, b_addr) = udp_socket();
        let rx = submit(&mut lp, Op::Recvmsg(Msg::recv_from(raw(&a), vec![0; 64])));
        let tx = submit(
            &mut lp,
            Op::Sendmsg(Msg::send_to(raw(&b), b"datagram".to_vec(), a_addr)),
        );
        run_until(&mut lp, "sendto and recvfrom", || rx.done() && tx.done());
        settle(&mut lp);
        expect!(tx.take().0, OpResult::Write(Ok(8)));
        let (res, op) = rx.take();
        let (n, from) = expect!(res, OpResult::RecvFrom(Ok(v)) => v);
        assert_eq!(from, Some(b_addr));
        assert_eq!(&op.buf().unwrap()[..n], b"datagram");

        let rx = submit(&mut lp, Op::Recvmsg(Msg::recv_from(raw(&a), vec![0; 64])));
        let (res, _) = run_op(
            &mut lp,
            Op::Sendmsg(Msg::send_to(raw(&b), Vec::new(), a_addr)),
            "empty sendto",
        );
        expect!(res, OpResult::Write(Ok(0)));
        let (res, _) = wait(&mut lp, &rx, "empty datagram");
        let (n, from) = expect!(res, OpResult::RecvFrom(Ok(v)) => v);
        assert_eq!((n, from), (0, Some(b_addr)));
    }

    /// Receives on one socket, one waiting when the data arrives and two
    /// started after it (which a backend may try at once): each gets one
    /// datagram, none is lost and none delivered twice. Which receive gets
    /// which datagram is not specified (on every backend a receive started
    /// later may take data before one that waits).
    fn receives_on_one_socket_share_the_datagrams<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (a, a_addr) = udp_socket();
        let (b, _) = udp_socket();
        let recv = || Op::Recvmsg(Msg::recv_from(raw(&a), vec![0; 16]));
        let first = submit(&mut lp, recv());
        settle(&mut lp);
        assert!(!first.done(), "nothing was sent yet");
        for d in [&b"one"[..], b"two", b"three"] {
            b.send_to(d, a_addr).unwrap();
        }
        let second = submit(&mut lp, recv());
        let third = submit(&mut lp, recv());
        run_until(&mut lp, "three receives", || {
            first.done() && second.done() && third.done()
        });
        let mut got: Vec<Vec<u8>> = [first, second, third]
            .into_iter()
            .map(|p| {
                let (res, op) = p.take();
                let (n, _) = expect!(res, OpResult::RecvFrom(Ok(v)) => v);
                op.buf().unwrap()[..n].to_vec()
            })
            .collect();
        got.sort();
        assert_eq!(got, [&b"one"[..], b"three", b"two"]);
        settle(&mut lp);
        assert_eq!(lp.active(), 0, "no receive left waiting");
    }

    /// Transfers whose owner says it tried them already ([`Loop::tried`])
    /// give the results they would have given: a send, and a receive of a
    /// datagram that is already there.
    fn tried_transfers_give_the_same_results<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (a, a_addr) = udp_socket();
        let (b, _) = udp_socket();
        let tx = submit(
            &mut lp,
            Op::Sendmsg(Msg::send_to(raw(&b), b"tried".to_vec(), a_addr)),
        );
        lp.tried(tx.id).unwrap();
        let (res, _) = wait(&mut lp, &tx, "a tried send");
        expect!(res, OpResult::Write(Ok(5)));
        let rx = submit(&mut lp, Op::Recvmsg(Msg::recv_from(raw(&a), vec![0; 16])));
        lp.tried(rx.id).unwrap();
        let (res, op) = wait(&mut lp, &rx, "a tried receive of a datagram already there");
        let (n, _) = expect!(res, OpResult::RecvFrom(Ok(v)) => v);
        assert_eq!(&op.buf().unwrap()[..n], b"tried");
        assert_eq!(
            lp.tried(rx.id),
            Err(xev::IdError::Stale),
            "finished and dropped"
        );
    }

    /// A receive with nothing to read is cancelled by a cancel: the receive
    /// reports `Canceled`, the cancel `Ok`, and the cancel's callback runs
    /// after the receive's. The socket stays usable.
    fn cancel_pending_recv<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (_l, client, server) = connect_through(&mut lp);
        let rx = submit(
            &mut lp,
            Op::Recv {
                fd: raw(&server),
                buf: vec![0; 16].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert!(!rx.done(), "nothing was sent");
        let order = Rc::new(RefCell::new(Vec::new()));
        let o = order.clone();
        let rx_calls = rx.calls.clone();
        let target = rx.id;
        lp.add(Op::Cancel { target }, move |_, _, res| {
            o.borrow_mut().push((rx_calls.get(), res));
            Action::Disarm
        });
        run_until(&mut lp, "the cancel", || !order.borrow().is_empty());
        settle(&mut lp);
        expect!(rx.take().0, OpResult::Read(Err(ReadError::Canceled)));
        let (recv_calls_then, res) = order.borrow_mut().pop().unwrap();
        assert_eq!(recv_calls_then, 1, "the cancel completes after its target");
        expect!(res, OpResult::Cancel(Ok(())));

        send_all(&mut lp, raw(&client), b"still");
        assert_eq!(recv_some(&mut lp, raw(&server)), b"still");
    }

    /// Closing a socket through the loop ends the receive pending on it
    /// with `Canceled`, and the close reports `Ok`.
    fn close_ends_pending_recv<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (_l, _client, server) = connect_through(&mut lp);
        let fd = raw(&server);
        // The loop owns the socket from here: it closes it.
        std::mem::forget(server);
        let rx = submit(
            &mut lp,
            Op::Recv {
                fd,
                buf: vec![0; 16].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        let cl = submit(&mut lp, Op::Close { fd });
        run_until(&mut lp, "close and the receive", || cl.done() && rx.done());
        settle(&mut lp);
        expect!(rx.take().0, OpResult::Read(Err(ReadError::Canceled)));
        expect!(cl.take().0, OpResult::Close(Ok(())));
    }

    /// A poll reports readiness where the backend can tell it honestly
    /// (every readiness backend and io_uring) and a typed `Unsupported` on
    /// IOCP, at once and without disturbing the loop.
    fn poll_is_readiness_or_unsupported<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (_l, client, server) = connect_through(&mut lp);
        send_all(&mut lp, raw(&client), b"x");
        let (res, _) = run_op(
            &mut lp,
            Op::Poll {
                fd: raw(&server),
                interest: Interest::READABLE,
            },
            "poll",
        );
        if lp.backend_name() == "iocp" {
            expect!(res, OpResult::Poll(Err(PollError::Unsupported)));
        } else {
            let r = expect!(res, OpResult::Poll(Ok(r)) => r);
            assert!(r.readable);
        }
    }

    /// Regression for libxev #227 (IOCP: a completion reused while its
    /// previous packet was still queued gave a null result and orphaned
    /// completions): one receive is rearmed from its own callback 200
    /// times, and each callback sends the next byte only then, so every
    /// rearm reuses the completion (and its `OVERLAPPED`) right after its
    /// packet. Every byte arrives once, in order, one callback per byte.
    fn rearmed_recv_reuses_its_completion_safely<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (_l, client, server) = connect_through(&mut lp);
        let cfd = raw(&client);
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        lp.add(
            Op::Recv {
                fd: raw(&server),
                buf: vec![0; 1].into(),
            },
            move |lp, op, res| {
                let n = expect!(res, OpResult::Read(Ok(n)) => n);
                assert_eq!(n, 1);
                g.borrow_mut().push(op.buf().unwrap()[0]);
                let next = g.borrow().len();
                if next == 200 {
                    return Action::Disarm;
                }
                lp.add(
                    Op::Send {
                        fd: cfd,
                        buf: vec![next as u8].into(),
                    },
                    |_, _, res| {
                        expect!(res, OpResult::Write(Ok(1)));
                        Action::Disarm
                    },
                );
                Action::Rearm
            },
        );
        send_all(&mut lp, cfd, &[0]);
        run_until(&mut lp, "200 single-byte receives", || {
            got.borrow().len() == 200
        });
        let want: Vec<u8> = (0..200).map(|i| i as u8).collect();
        assert_eq!(*got.borrow(), want);
        settle(&mut lp);
        assert_eq!(lp.active(), 0);
    }
);
