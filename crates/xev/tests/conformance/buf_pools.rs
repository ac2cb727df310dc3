//! Pooled receives (`Op::recv_pool`) and their buffer pools
//! (`Loop::add_buf_pool`): data and end of file through rearmed receives,
//! an exhausted pool (`NoBuffers`) and its recovery, idle receives sharing
//! a pool smaller than their number, a cancel giving its buffer back, a
//! pool of another loop, bad sizes, buffers that outlive their loop,
//! data left for the next receive, a close freeing what its socket held,
//! two receives at once on one socket, and a forgotten socket.

use crate::support::*;
use xev::{BufPool, PoolBuf};

/// What [`receive_all`] recorded: each result's bytes, or its error.
type Received = Rc<RefCell<Vec<Result<Vec<u8>, ReadError>>>>;

/// A pooled receive on `fd` whose callback records each result (the bytes,
/// its buffer dropped at once) and rearms until an error (end of file
/// included).
fn receive_all<B: Backend>(lp: &mut Loop<B>, fd: RawFd, pool: &BufPool) -> (Id, Received) {
    let got: Received = Rc::default();
    let g = got.clone();
    let id = lp.add(Op::recv_pool(fd, pool), move |_, _, res| {
        let r = expect!(res, OpResult::RecvPool(r) => r);
        let more = r.is_ok();
        g.borrow_mut().push(r.map(|b| {
            assert!(!b.is_empty() && b.len() <= 8, "{} bytes", b.len());
            b.to_vec()
        }));
        if more {
            Action::Rearm
        } else {
            Action::Disarm
        }
    });
    (id, got)
}

fn recv_one<B: Backend>(lp: &mut Loop<B>, fd: RawFd, pool: &BufPool) -> Result<PoolBuf, ReadError> {
    let (res, _) = run_op(lp, Op::recv_pool(fd, pool), "a pooled receive");
    expect!(res, OpResult::RecvPool(r) => r)
}

for_each_backend!(
    fn pooled_receives_deliver_the_stream_then_eof<B: Backend>() {
        let mut lp = new_loop::<B>();
        let pool = lp.add_buf_pool(4, 8).unwrap();
        assert_eq!((pool.count(), pool.buf_size()), (4, 8));
        let (c, s) = tcp_pair();
        let (_, got) = receive_all(&mut lp, s.as_raw_fd(), &pool);
        let data = b"pooled receives, eight bytes at a time";
        let mut sent = 0;
        // Written in pieces while the loop runs, then the write side closed.
        for chunk in data.chunks(13) {
            assert_eq!(write_when_ready(c.as_raw_fd(), chunk), chunk.len() as isize);
            sent += chunk.len();
            let n = sent;
            run_until(&mut lp, "the chunk", || {
                got.borrow()
                    .iter()
                    .map(|r| r.as_ref().map_or(0, |b| b.len()))
                    .sum::<usize>()
                    == n
            });
        }
        c.shutdown(Shutdown::Write).unwrap();
        run_until(&mut lp, "end of file", || {
            got.borrow().last().is_some_and(|r| r.is_err())
        });
        settle(&mut lp);
        let got = got.take();
        let (last, bufs) = got.split_last().unwrap();
        assert!(matches!(last, Err(ReadError::Eof)), "{last:?}");
        let mut all = Vec::new();
        for b in bufs {
            all.extend_from_slice(b.as_ref().unwrap());
        }
        assert_eq!(all, data);
    }

    fn an_exhausted_pool_gives_no_buffers_then_recovers<B: Backend>() {
        let mut lp = new_loop::<B>();
        let pool = lp.add_buf_pool(1, 8).unwrap();
        let (c, s) = tcp_pair();
        assert_eq!(write_when_ready(c.as_raw_fd(), b"abc"), 3);
        let mut held = recv_one(&mut lp, s.as_raw_fd(), &pool).unwrap();
        assert_eq!(&*held, b"abc");
        // The program holds the only buffer.
        assert_eq!(write_when_ready(c.as_raw_fd(), b"def"), 3);
        let r = recv_one(&mut lp, s.as_raw_fd(), &pool);
        assert!(matches!(r, Err(ReadError::NoBuffers)), "{r:?}");
        // Its bytes can be changed in place; dropped, it serves again.
        held[0] = b'A';
        assert_eq!(&*held, b"Abc");
        drop(held);
        let b = recv_one(&mut lp, s.as_raw_fd(), &pool).unwrap();
        assert_eq!(&*b, b"def", "the data waited in the socket");
    }

    fn idle_pooled_receives_share_a_smaller_pool<B: Backend>() {
        let mut lp = new_loop::<B>();
        let pool = lp.add_buf_pool(2, 16).unwrap();
        let pairs: Vec<_> = (0..5).map(|_| tcp_pair()).collect();
        let waits: Vec<_> = pairs
            .iter()
            .map(|(_, s)| submit(&mut lp, Op::recv_pool(s.as_raw_fd(), &pool)))
            .collect();
        lp.run(RunMode::NoWait).unwrap();
        assert!(waits.iter().all(|w| w.calls() == 0), "nothing was sent yet");
        // One connection at a time gets data; each answer is read and its
        // buffer dropped before the next.
        for (i, ((c, _), w)) in pairs.iter().zip(&waits).enumerate() {
            let msg = format!("conn {i}");
            assert_eq!(
                write_when_ready(c.as_raw_fd(), msg.as_bytes()),
                msg.len() as isize
            );
            let (res, _) = wait(&mut lp, w, "its data");
            let b = expect!(res, OpResult::RecvPool(Ok(b)) => b);
            assert_eq!(&*b, msg.as_bytes());
        }
    }

    fn a_canceled_pooled_receive_gives_its_buffer_back<B: Backend>() {
        let mut lp = new_loop::<B>();
        let pool = lp.add_buf_pool(1, 8).unwrap();
        let (c, s) = tcp_pair();
        let rx = submit(&mut lp, Op::recv_pool(s.as_raw_fd(), &pool));
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rx.calls(), 0);
        lp.cancel(rx.id).unwrap();
        let (res, _) = wait(&mut lp, &rx, "the canceled receive");
        assert!(res.is_canceled(), "{res:?}");
        assert_eq!(write_when_ready(c.as_raw_fd(), b"after"), 5);
        let b = recv_one(&mut lp, s.as_raw_fd(), &pool).unwrap();
        assert_eq!(&*b, b"after");
    }

    fn a_pool_of_another_loop_is_refused<B: Backend>() {
        let mut lp = new_loop::<B>();
        let mut other = new_loop::<B>();
        let foreign = other.add_buf_pool(1, 8).unwrap();
        let (c, s) = tcp_pair();
        assert_eq!(write_when_ready(c.as_raw_fd(), b"x"), 1);
        let r = recv_one(&mut lp, s.as_raw_fd(), &foreign);
        let e = r.expect_err("a foreign pool");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e:?}");
        // The data is still there for a pool of this loop.
        let pool = lp.add_buf_pool(1, 8).unwrap();
        assert_eq!(&*recv_one(&mut lp, s.as_raw_fd(), &pool).unwrap(), b"x");
    }

    fn bad_pool_sizes_are_refused<B: Backend>() {
        let mut lp = new_loop::<B>();
        for (count, size) in [(0, 8), (1, 0), (1, usize::MAX)] {
            let e = lp.add_buf_pool(count, size).expect_err("a bad size");
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::InvalidInput,
                "{count} x {size}"
            );
        }
    }

    fn buffers_and_pools_outlive_their_loop<B: Backend>() {
        let mut lp = new_loop::<B>();
        let pool = lp.add_buf_pool(2, 8).unwrap();
        let (c, s) = tcp_pair();
        let (c2, s2) = tcp_pair();
        assert_eq!(write_when_ready(c.as_raw_fd(), b"kept"), 4);
        let kept = recv_one(&mut lp, s.as_raw_fd(), &pool).unwrap();
        // A receive left pending when the loop goes.
        let pending = submit(&mut lp, Op::recv_pool(s2.as_raw_fd(), &pool));
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(pending.calls(), 0);
        drop(lp);
        assert_eq!(&*kept, b"kept");
        drop(kept);
        drop(pool);
        drop((c, c2));
    }

    fn data_left_by_one_pooled_receive_goes_to_the_next<B: Backend>() {
        let mut lp = new_loop::<B>();
        let pool = lp.add_buf_pool(8, 4).unwrap();
        let (c, s) = tcp_pair();
        let data = b"0123456789abcdefghij";
        assert_eq!(write_when_ready(c.as_raw_fd(), data), data.len() as isize);
        // Each receive takes at most 4 bytes and disarms; the rest waits
        // (in the socket, or in buffers already filled) for the next one.
        let mut got = Vec::new();
        while got.len() < data.len() {
            let b = recv_one(&mut lp, s.as_raw_fd(), &pool).unwrap();
            assert!(b.len() <= 4);
            got.extend_from_slice(&b);
        }
        assert_eq!(got, data);
        // A receive parked and restarted gets what came meanwhile.
        let n = Rc::new(RefCell::new(Vec::new()));
        let n2 = n.clone();
        let id = lp.add(Op::recv_pool(s.as_raw_fd(), &pool), move |_, _, res| {
            n2.borrow_mut()
                .push(expect!(res, OpResult::RecvPool(Ok(b)) => b.to_vec()));
            Action::Park
        });
        assert_eq!(write_when_ready(c.as_raw_fd(), b"abcdefgh"), 8);
        run_until(&mut lp, "the first part", || !n.borrow().is_empty());
        settle(&mut lp);
        assert_eq!(n.borrow().len(), 1, "parked after one result");
        while n.borrow().concat().len() < 8 {
            lp.restart(id).unwrap();
            let k = n.borrow().len();
            run_until(&mut lp, "the next part", || n.borrow().len() > k);
        }
        assert_eq!(n.borrow().concat(), b"abcdefgh");
        lp.free(id).unwrap();
    }

    fn a_close_through_the_loop_drops_what_its_socket_left<B: Backend>() {
        let mut lp = new_loop::<B>();
        let pool = lp.add_buf_pool(8, 2).unwrap();
        let (c, s) = tcp_pair();
        assert_eq!(write_when_ready(c.as_raw_fd(), b"old data"), 8);
        let b = recv_one(&mut lp, s.as_raw_fd(), &pool).unwrap();
        assert_eq!(&*b, b"ol");
        drop(b);
        // A receive waiting on the socket ends with the close.
        let (c2, s2) = tcp_pair();
        let waiting = submit(&mut lp, Op::recv_pool(s2.as_raw_fd(), &pool));
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(waiting.calls(), 0);
        let (res, _) = run_op(
            &mut lp,
            Op::Close {
                fd: s.into_raw_fd(),
            },
            "the close",
        );
        expect!(res, OpResult::Close(Ok(())));
        let (res, _) = run_op(
            &mut lp,
            Op::Close {
                fd: s2.into_raw_fd(),
            },
            "the second close",
        );
        expect!(res, OpResult::Close(Ok(())));
        let (res, _) = wait(&mut lp, &waiting, "the receive ended by the close");
        assert!(res.is_canceled(), "{res:?}");
        // New sockets (likely with the closed ones' numbers) get their own
        // data only, and the whole pool is free again.
        let (c3, s3) = tcp_pair();
        assert_eq!(write_when_ready(c3.as_raw_fd(), b"new"), 3);
        let mut held = Vec::new();
        let mut got = Vec::new();
        while got.len() < 3 {
            let b = recv_one(&mut lp, s3.as_raw_fd(), &pool).unwrap();
            got.extend_from_slice(&b);
            held.push(b);
        }
        assert_eq!(got, b"new");
        // The rest of the pool: eight buffers in all, none kept by the
        // closed sockets (the last byte finds none).
        assert_eq!(write_when_ready(c3.as_raw_fd(), b"0123456789abc"), 13);
        while held.len() < 8 {
            let b = recv_one(&mut lp, s3.as_raw_fd(), &pool).unwrap();
            got.extend_from_slice(&b);
            held.push(b);
        }
        assert_eq!(got, b"new0123456789ab", "two bytes per buffer");
        let r = recv_one(&mut lp, s3.as_raw_fd(), &pool);
        assert!(matches!(r, Err(ReadError::NoBuffers)), "{r:?}");
        drop((c, c2));
    }

    fn two_pooled_receives_on_one_socket_both_get_data<B: Backend>() {
        let mut lp = new_loop::<B>();
        let pool = lp.add_buf_pool(4, 8).unwrap();
        let (c, s) = tcp_pair();
        let first = submit(&mut lp, Op::recv_pool(s.as_raw_fd(), &pool));
        let second = submit(&mut lp, Op::recv_pool(s.as_raw_fd(), &pool));
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!((first.calls(), second.calls()), (0, 0));
        // One of them gets the first message, the other the second.
        assert_eq!(write_when_ready(c.as_raw_fd(), b"one"), 3);
        run_until(&mut lp, "one receive done", || {
            first.calls() + second.calls() == 1
        });
        assert_eq!(write_when_ready(c.as_raw_fd(), b"two"), 3);
        let (a, b) = if first.calls() == 1 {
            (&first, &second)
        } else {
            (&second, &first)
        };
        let (res, _) = wait(&mut lp, b, "the other receive");
        let later = expect!(res, OpResult::RecvPool(Ok(b)) => b);
        let (res, _) = wait(&mut lp, a, "the first receive");
        let earlier = expect!(res, OpResult::RecvPool(Ok(b)) => b);
        assert_eq!((&*earlier, &*later), (&b"one"[..], &b"two"[..]));
        assert_eq!((first.calls(), second.calls()), (1, 1));
    }

    fn a_forgotten_socket_keeps_its_later_data<B: Backend>() {
        let mut lp = new_loop::<B>();
        let pool = lp.add_buf_pool(4, 8).unwrap();
        let (c, s) = tcp_pair();
        assert_eq!(write_when_ready(c.as_raw_fd(), b"pooled"), 6);
        assert_eq!(
            &*recv_one(&mut lp, s.as_raw_fd(), &pool).unwrap(),
            b"pooled"
        );
        // Handed out of the loop: what comes next is in the socket, for
        // its new owner.
        lp.forget(s.as_raw_fd());
        assert_eq!(write_when_ready(c.as_raw_fd(), b"plain"), 5);
        let mut buf = [0u8; 8];
        assert_eq!(read_when_ready(s.as_raw_fd(), &mut buf), 5);
        assert_eq!(&buf[..5], b"plain");
        drop(c);
    }
);
