//! The TCP, UDP and file watchers, written once for every platform (IOCP
//! included): an echo conversation through `Tcp` (accept, connect, reads,
//! queued writes, end of file, close), closing a listener with an accept
//! pending, datagrams through `Udp` with their sender, a file written
//! through its queue and read back at offsets, and a pipe made by
//! `Stream::pipe` (bytes, end of file, a pending read ended by close). Each test runs on
//! every backend this host can run (`tests/support/harness.rs`).

// Not on WASI: no pipes, threads or child processes there (the
// conformance and allocation suites cover the WASI backend).
#![cfg(not(target_os = "wasi"))]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::cell::{Cell, RefCell};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;

use xev::backend::Backend;
use xev::generic::Loop;
use xev::watcher::{File, Stream, Tcp, Udp};
use xev::{AcceptError, Action, Op, OpResult, Options, ReadError, RunMode, ThreadPool};

/// Runs `lp` until `done()` holds; a guard timer fails the test after 10 s
/// instead of hanging.
fn run_until<B: Backend>(lp: &mut Loop<B>, what: &str, done: impl Fn() -> bool) {
    lp.update_now();
    let tripped = Rc::new(Cell::new(false));
    let gone = Rc::new(Cell::new(false));
    let (t, g) = (tripped.clone(), gone.clone());
    let guard = lp.add(Op::timer(lp.now() + 10_000), move |lp, _, res| {
        if matches!(res, OpResult::Timer(Ok(()))) {
            t.set(true);
            lp.stop();
        }
        g.set(true);
        Action::Disarm
    });
    while !done() && !tripped.get() {
        lp.run(RunMode::Once).expect("Loop::run");
    }
    assert!(!tripped.get(), "timed out waiting for {what}");
    let _ = lp.cancel(guard);
    while !gone.get() {
        lp.run(RunMode::Once).expect("Loop::run");
    }
}

/// Datagrams received, with their senders.
type Received = Rc<RefCell<Vec<(Vec<u8>, SocketAddr)>>>;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

for_each_backend!(
    /// A client sends 100 messages one at a time; the server echoes each;
    /// the client checks every byte, shuts down its side, the server sees
    /// end of file, and both close through the loop, leaving it empty.
    fn tcp_echo_conversation<B: Backend>() {
        let mut lp = Loop::<B>::new(Options::default()).unwrap();
        let server: Tcp<B> = Tcp::new(loopback()).unwrap();
        server.bind(loopback()).unwrap();
        server.listen(8).unwrap();
        let addr = server.local_addr().unwrap();

        let conn: Rc<RefCell<Option<Tcp<B>>>> = Rc::default();
        let server_eof = Rc::new(Cell::new(false));
        let (c, eof) = (conn.clone(), server_eof.clone());
        server.accept(&mut lp, move |lp, res| {
            let tcp = res.expect("accept");
            let (c2, eof) = (c.clone(), eof.clone());
            tcp.read(lp, vec![0; 64], move |lp, buf, res| match res {
                Ok(n) => {
                    let echo = buf[..n].to_vec();
                    if let Some(t) = c2.borrow().as_ref() {
                        t.queue_write(lp, echo, |_, _, r| {
                            r.expect("echo write");
                            Action::Disarm
                        });
                    }
                    Action::Rearm
                }
                Err(ReadError::Eof) => {
                    eof.set(true);
                    Action::Disarm
                }
                Err(e) => panic!("server read: {e}"),
            });
            *c.borrow_mut() = Some(tcp);
            Action::Disarm
        });

        let client: Rc<Tcp<B>> = Rc::new(Tcp::new(addr).unwrap());
        let connected = Rc::new(Cell::new(false));
        let k = connected.clone();
        client.connect(&mut lp, addr, move |_, res| {
            res.expect("connect");
            k.set(true);
            Action::Disarm
        });
        run_until(&mut lp, "the connection", || {
            connected.get() && conn.borrow().is_some()
        });
        assert_eq!(
            conn.borrow().as_ref().unwrap().peer_addr().unwrap(),
            client.local_addr().unwrap()
        );

        for i in 0..100u32 {
            let msg = format!("message {i:03} of the echo test").into_bytes();
            client.queue_write(&mut lp, msg.clone(), |_, _, r| {
                r.expect("client write");
                Action::Disarm
            });
            let got = Rc::new(RefCell::new(Vec::new()));
            let g = got.clone();
            let want = msg.len();
            client.read(&mut lp, vec![0; 64], move |_, buf, res| {
                let n = res.expect("client read");
                g.borrow_mut().extend_from_slice(&buf[..n]);
                if g.borrow().len() < want {
                    Action::Rearm
                } else {
                    Action::Disarm
                }
            });
            run_until(&mut lp, "the echo", || got.borrow().len() >= want);
            assert_eq!(*got.borrow(), msg, "round trip {i}");
        }

        let shut = Rc::new(Cell::new(false));
        let s = shut.clone();
        client.shutdown(&mut lp, Shutdown::Write, move |_, r| {
            r.expect("shutdown");
            s.set(true);
            Action::Disarm
        });
        run_until(&mut lp, "end of file at the server", || {
            shut.get() && server_eof.get()
        });

        let closed = Rc::new(Cell::new(0));
        for tcp in [
            conn.borrow_mut().take().unwrap(),
            Rc::try_unwrap(client).ok().unwrap(),
            server,
        ] {
            let c = closed.clone();
            tcp.close(&mut lp, move |_, r| {
                r.expect("close");
                c.set(c.get() + 1);
            });
        }
        run_until(&mut lp, "the closes", || closed.get() == 3);
        assert_eq!(lp.active(), 0);
    }

    /// Closing a listener with an accept pending ends the accept with
    /// `Canceled`, then reports the close, and leaves nothing in the loop.
    fn tcp_close_listener_with_accept_pending<B: Backend>() {
        let mut lp = Loop::<B>::new(Options::default()).unwrap();
        let server: Tcp<B> = Tcp::new(loopback()).unwrap();
        server.bind(loopback()).unwrap();
        server.listen(8).unwrap();
        let order = Rc::new(RefCell::new(Vec::new()));
        let o = order.clone();
        server.accept(&mut lp, move |_, res| {
            assert!(matches!(res, Err(AcceptError::Canceled)), "{res:?}");
            o.borrow_mut().push("accept");
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap();
        assert!(order.borrow().is_empty());
        let o = order.clone();
        server.close(&mut lp, move |_, r| {
            r.expect("close");
            o.borrow_mut().push("close");
        });
        run_until(&mut lp, "the accept and the close", || {
            order.borrow().len() == 2
        });
        assert_eq!(*order.borrow(), ["accept", "close"]);
        assert_eq!(lp.active(), 0);
    }

    /// Datagrams through `Udp`: each arrives whole, with its sender.
    fn udp_datagrams_with_sender<B: Backend>() {
        let mut lp = Loop::<B>::new(Options::default()).unwrap();
        let a: Udp<B> = Udp::new(loopback()).unwrap();
        a.bind(loopback()).unwrap();
        let b: Udp<B> = Udp::new(loopback()).unwrap();
        b.bind(loopback()).unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let got: Received = Rc::default();
        let g = got.clone();
        a.read(&mut lp, vec![0; 64], move |_, buf, res| {
            let (n, from) = res.expect("udp read");
            g.borrow_mut().push((buf[..n].to_vec(), from));
            if g.borrow().len() < 3 {
                Action::Rearm
            } else {
                Action::Disarm
            }
        });
        for i in 0..3u8 {
            b.write(&mut lp, a_addr, vec![i; 10 + usize::from(i)], |_, _, r| {
                r.expect("udp write");
                Action::Disarm
            });
            let n = usize::from(i) + 1;
            run_until(&mut lp, "a datagram", || got.borrow().len() >= n);
        }
        for (i, (data, from)) in got.borrow().iter().enumerate() {
            assert_eq!(*data, vec![i as u8; 10 + i]);
            assert_eq!(*from, b_addr);
        }
        let closed = Rc::new(Cell::new(0));
        for u in [a, b] {
            let c = closed.clone();
            u.close(&mut lp, move |_, r| {
                r.expect("close");
                c.set(c.get() + 1);
            });
        }
        run_until(&mut lp, "the closes", || closed.get() == 2);
        assert_eq!(lp.active(), 0);
    }

    /// A file written through the watcher's queue (in order, at the queue
    /// offset), then read back at offsets with `pread` (on the thread pool
    /// where the backend needs one), end of file included.
    fn file_queue_then_pread<B: Backend>() {
        let pool = ThreadPool::new(Default::default()).unwrap();
        let mut lp = Loop::<B>::new(Options {
            thread_pool: Some(pool),
            ..Options::default()
        })
        .unwrap();
        let path = std::env::temp_dir().join(format!(
            "xev-watchers-portable-{}-{}",
            std::process::id(),
            harness::backend()
        ));
        let f: File<B> = File::open(
            &path,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
        )
        .unwrap();
        let written = Rc::new(Cell::new(0));
        for part in ["first ", "second ", "third"] {
            let w = written.clone();
            f.queue_write(&mut lp, part.as_bytes().to_vec(), move |_, _, r| {
                w.set(w.get() + r.expect("queued write"));
                Action::Disarm
            });
        }
        run_until(&mut lp, "the queued writes", || written.get() == 18);
        assert_eq!(f.queue_offset(), 18);

        let got = Rc::new(RefCell::new(Vec::new()));
        let eof = Rc::new(Cell::new(false));
        let (g, e) = (got.clone(), eof.clone());
        f.pread(&mut lp, vec![0; 5], 6, move |_, buf, res| match res {
            Ok(n) => {
                g.borrow_mut().extend_from_slice(&buf[..n]);
                Action::Rearm
            }
            Err(ReadError::Eof) => {
                e.set(true);
                Action::Disarm
            }
            Err(err) => panic!("pread: {err}"),
        });
        run_until(&mut lp, "the reads up to end of file", || eof.get());
        assert_eq!(&got.borrow()[..], b"second third");

        let closed = Rc::new(Cell::new(false));
        let c = closed.clone();
        f.close(&mut lp, move |_, r| {
            r.expect("close");
            c.set(true);
        });
        run_until(&mut lp, "the close", || closed.get());
        assert_eq!(std::fs::read(&path).unwrap(), b"first second third");
        std::fs::remove_file(&path).unwrap();
    }

    /// A pipe from `Stream::pipe`: queued writes arrive in order at the
    /// read end, end of file follows the write end's close, and closing a
    /// read end with a read pending ends that read with `Canceled`.
    fn pipe_stream_bytes_eof_and_close<B: Backend>() {
        let mut lp = Loop::<B>::new(Options::default()).unwrap();
        let (r, w) = Stream::<B>::pipe().unwrap();
        for part in ["one ", "two ", "three"] {
            w.queue_write(&mut lp, part.as_bytes().to_vec(), |_, _, res| {
                res.expect("pipe write");
                Action::Disarm
            });
        }
        let got = Rc::new(RefCell::new(Vec::new()));
        let eof = Rc::new(Cell::new(false));
        let (g, e) = (got.clone(), eof.clone());
        r.read(&mut lp, vec![0; 8], move |_, buf, res| match res {
            Ok(n) => {
                g.borrow_mut().extend_from_slice(&buf[..n]);
                Action::Rearm
            }
            Err(ReadError::Eof) => {
                e.set(true);
                Action::Disarm
            }
            Err(err) => panic!("pipe read: {err}"),
        });
        run_until(&mut lp, "the bytes", || got.borrow().len() == 13);
        assert_eq!(&got.borrow()[..], b"one two three");
        let closed = Rc::new(Cell::new(0));
        let c = closed.clone();
        w.close(&mut lp, move |_, res| {
            res.expect("close");
            c.set(c.get() + 1);
        });
        run_until(&mut lp, "end of file", || eof.get() && closed.get() == 1);

        let (r2, _w2) = Stream::<B>::pipe().unwrap();
        let ended = Rc::new(RefCell::new(None));
        let en = ended.clone();
        r2.read(&mut lp, vec![0; 8], move |_, _, res| {
            *en.borrow_mut() = Some(res.map(|_| ()));
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap();
        assert!(ended.borrow().is_none(), "nothing was written");
        for s in [r, r2] {
            let c = closed.clone();
            s.close(&mut lp, move |_, res| {
                res.expect("close");
                c.set(c.get() + 1);
            });
        }
        run_until(&mut lp, "the closes", || closed.get() == 3);
        assert!(
            matches!(*ended.borrow(), Some(Err(ReadError::Canceled))),
            "{:?}",
            ended.borrow()
        );
    }
);
