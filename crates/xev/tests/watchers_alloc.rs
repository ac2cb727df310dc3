//! Proves that the TCP watcher allocates nothing in steady state: a TCP echo
//! of 10,000 messages through `Tcp::read` / `Tcp::queue_write` (a fresh
//! completion per request, recycled by the loop) is measured after warm-up
//! with a counting global allocator (per thread, so tests running in
//! parallel don't count), on every backend this host can run
//! (`tests/support/harness.rs`: `BACKEND::NAME`).

// Linux-hosted (io_uring, epoll, dynamic, and kqueue through libkqueue) and
// Windows (IOCP, under wine in CI); kqueue on macOS and FreeBSD is covered
// by the portable conformance suite.
#![cfg(any(
    target_os = "linux",
    windows,
    all(target_os = "wasi", not(target_env = "p1"))
))]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::cell::{Cell, RefCell};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;

use xev::backend::Backend;
use xev::generic::Loop;
use xev::watcher::Tcp;
use xev::watcher::Timer;
use xev::{Action, Options, ReadError, RunMode};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

const MSG: usize = 64;

/// Server side: read -> queue the bytes back -> read ... until end of file.
/// Each step is a new request whose buffer moves from one to the next.
fn echo_read<B: Backend>(lp: &mut Loop<B>, conn: Rc<Tcp<B>>, buf: Vec<u8>) {
    let c = conn.clone();
    conn.read(lp, buf, move |lp, buf, res| match res {
        Ok(n) => {
            let mut data = std::mem::take(buf);
            data.truncate(n);
            echo_write(lp, c.clone(), data);
            Action::Disarm
        }
        Err(ReadError::Eof) => Action::Disarm,
        Err(e) => panic!("server read: {e}"),
    });
}

fn echo_write<B: Backend>(lp: &mut Loop<B>, conn: Rc<Tcp<B>>, data: Vec<u8>) {
    let c = conn.clone();
    conn.queue_write(lp, data, move |lp, buf, res| {
        res.expect("server write");
        let mut buf = std::mem::take(buf);
        buf.resize(MSG, 0);
        echo_read(lp, c.clone(), buf);
        Action::Disarm
    });
}

/// Client state shared by its requests.
struct Client {
    sent: Cell<u64>,
    got: Cell<usize>,
    acc: RefCell<[u8; MSG]>,
    warmup: u64,
    total: u64,
    mark: Cell<u64>,
    end: Cell<Option<u64>>,
}

fn message(i: u64) -> [u8; MSG] {
    let mut m = [(i % 251) as u8; MSG];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m
}

fn client_write<B: Backend>(lp: &mut Loop<B>, conn: Rc<Tcp<B>>, st: Rc<Client>, mut buf: Vec<u8>) {
    buf.resize(MSG, 0);
    buf.copy_from_slice(&message(st.sent.get()));
    let c = conn.clone();
    conn.queue_write(lp, buf, move |lp, buf, res| {
        assert_eq!(res.expect("client write"), MSG);
        client_read(lp, c.clone(), st.clone(), std::mem::take(buf));
        Action::Disarm
    });
}

fn client_read<B: Backend>(lp: &mut Loop<B>, conn: Rc<Tcp<B>>, st: Rc<Client>, mut buf: Vec<u8>) {
    buf.resize(MSG, 0);
    let c = conn.clone();
    conn.read(lp, buf, move |lp, buf, res| {
        let n = res.expect("client read");
        let got = st.got.get();
        assert!(got + n <= MSG, "echo longer than the message");
        st.acc.borrow_mut()[got..got + n].copy_from_slice(&buf[..n]);
        st.got.set(got + n);
        if got + n < MSG {
            buf.truncate(MSG - got - n); // read the rest of this echo
            return Action::Rearm;
        }
        assert_eq!(*st.acc.borrow(), message(st.sent.get()), "echo corrupted");
        st.got.set(0);
        st.sent.set(st.sent.get() + 1);
        if st.sent.get() == st.warmup {
            st.mark.set(allocs());
        }
        if st.sent.get() == st.total {
            st.end.set(Some(allocs()));
            c.shutdown(lp, Shutdown::Write, |_, r| {
                r.expect("shutdown");
                Action::Disarm
            });
            return Action::Disarm;
        }
        client_write(lp, c.clone(), st.clone(), std::mem::take(buf));
        Action::Disarm
    });
}

/// Echoes `total` messages; returns the allocations made after `warmup`.
fn tcp_echo<B: Backend>(warmup: u64, total: u64) -> u64 {
    let mut lp = Loop::<B>::new(Options::default()).expect("loop");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    let client = Rc::new(Tcp::<B>::from_fd(a.into()).unwrap());
    let server = Rc::new(Tcp::<B>::from_fd(b.into()).unwrap());

    // Safety net: a hang fails instead of hanging.
    let timed_out = Rc::new(Cell::new(false));
    let t = timed_out.clone();
    let safety = Timer::new(&mut lp, move |lp, res| {
        if res.is_ok() {
            t.set(true);
            lp.stop();
        }
        Action::Disarm
    });
    safety.run(&mut lp, 50_000).unwrap();

    let st = Rc::new(Client {
        sent: Cell::new(0),
        got: Cell::new(0),
        acc: RefCell::new([0; MSG]),
        warmup,
        total,
        mark: Cell::new(0),
        end: Cell::new(None),
    });
    echo_read(&mut lp, server.clone(), vec![0; MSG]);
    client_write(&mut lp, client.clone(), st.clone(), Vec::with_capacity(MSG));
    while st.end.get().is_none() {
        lp.run(RunMode::Once).unwrap();
        assert!(!timed_out.get(), "echo timed out after 50 s");
    }
    let _ = safety.cancel(&mut lp);
    lp.run(RunMode::UntilDone).unwrap(); // the server sees end of file
    assert!(!timed_out.get());
    assert_eq!(st.sent.get(), total);
    let allocated = st.end.get().unwrap_or(0) - st.mark.get();

    let closed = Rc::new(Cell::new(0));
    for conn in [client, server] {
        let c = closed.clone();
        Rc::try_unwrap(conn)
            .expect("connection still referenced")
            .close(&mut lp, move |_, r| {
                r.unwrap();
                c.set(c.get() + 1);
            });
    }
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(closed.get(), 2);
    allocated
}

/// Messages echoed after the warm-up: fewer on Windows, whose tests run
/// under wine at about a millisecond per socket operation.
const MEASURED: u64 = if cfg!(windows) { 2_000 } else { 10_000 };

for_each_backend!(
    fn tcp_echo_allocates_nothing<B: Backend>() {
        let a = tcp_echo::<B>(100, 100 + MEASURED);
        assert_eq!(a, 0, "{MEASURED} echoed messages allocated {a} times");
    }
);
