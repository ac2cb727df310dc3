//! Backpressure on the write queues of the stream and file watchers (and
//! so of `Tcp`, which is a stream): `queued_bytes` counts exactly what is queued and
//! not written yet, `on_drain` calls back once when the queue has drained
//! to a mark (also when it drains because the writes failed), never once
//! the watcher is closed or dropped, and holds nothing after; and an echo
//! server that pauses its reads above a high-water mark, as
//! `examples/tcp_echo.rs` does, holds at most that mark plus one read's
//! worth of replies against a client that sends without reading.
//!
//! Written once against any backend in the `for_each_backend!` at the
//! bottom (`tests/support/harness.rs`), which instantiates them as
//! `BACKEND::NAME` for io_uring (skipped with a message when this host
//! cannot run it), epoll, the dynamic backend, kqueue through libkqueue
//! and IOCP (under wine). On Windows the pipes are `Stream::pipe()`'s named
//! pipes, which the test side fills through `support/win_io.rs`.
//!
//! Every test waits for events (callbacks, counts reaching their value),
//! never for time; a guard timer only turns a hang into a failure, and the
//! harness's watchdog backs it up.

// Not on WASI: no pipes or threads there (the conformance and allocation
// suites cover the WASI backend).
#![cfg(not(target_os = "wasi"))]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[cfg(unix)]
#[path = "support/pipes.rs"]
mod pipes;
#[cfg(windows)]
#[path = "support/win_io.rs"]
mod win_io;

use std::cell::{Cell, RefCell};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use xev::backend::Backend;
use xev::generic::{Loop, OwnedLoop};
use xev::watcher::{File, Stream, Tcp, Timer};
use xev::{Action, Id, Options, ReadError, RunMode, ThreadPool, ThreadPoolConfig, WriteError};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn new_loop<B: Backend>() -> OwnedLoop<B> {
    Loop::new(Options::default()).expect("loop")
}

/// The guard of [`run_until`]: 10 s (a hang fails instead of hanging).
const GUARD_MS: u64 = 10_000;

/// Runs the loop until `done()` holds; panics once a guard timer of
/// `guard_ms` fires first.
fn run_until_within<B: Backend>(lp: &mut Loop<B>, guard_ms: u64, done: impl Fn() -> bool) {
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let t = Timer::new(lp, move |lp, res| {
        if res.is_ok() {
            f.set(true);
            lp.stop();
        }
        Action::Disarm
    });
    t.run(lp, guard_ms).unwrap();
    while !done() {
        lp.run(RunMode::Once).unwrap();
        assert!(!fired.get(), "timed out after {guard_ms} ms");
    }
    let _ = t.cancel(lp);
    lp.run(RunMode::NoWait).unwrap();
    let _ = t.free(lp);
}

/// Runs the loop until `done()` holds; panics after [`GUARD_MS`].
fn run_until<B: Backend>(lp: &mut Loop<B>, done: impl Fn() -> bool) {
    run_until_within(lp, GUARD_MS, done)
}

/// A few non-blocking passes (to let a late or duplicate callback show up).
fn settle<B: Backend>(lp: &mut Loop<B>) {
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
}

/// A pipe as two streams whose pipe is full: (read end, write end, the
/// bytes in the pipe). On Unix it is filled through a duplicate of the
/// (non-blocking) write end until a write would block; on Windows through the test
/// side's writes to [`Stream::pipe`]'s write end, which stop at the first
/// one that would wait (see `support/win_io.rs`).
fn full_pipe<B: Backend>() -> (Stream<B>, Stream<B>, usize) {
    #[cfg(unix)]
    {
        use std::io::Write as _;
        let (r, w) = pipes::pipe();
        let mut filler = std::fs::File::from(w.try_clone().unwrap());
        let w: Stream<B> = Stream::from_fd(w).unwrap();
        let mut filled = 0;
        loop {
            match filler.write(&[0u8; 4096]) {
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the pipe: {e}"),
            }
        }
        drop(filler);
        (Stream::from_fd(r).unwrap(), w, filled)
    }
    #[cfg(windows)]
    {
        let (r, w) = Stream::<B>::pipe().unwrap();
        let filled = win_io::fill(w.fd());
        (r, w, filled)
    }
}

/// A connected TCP pair over loopback, (client, server side), with small
/// socket buffers (`buf` bytes each way), so that a big write takes many
/// short writes and a peer that does not read stalls its writer soon.
fn tcp_pair<B: Backend>(buf: usize) -> (Tcp<B>, Tcp<B>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    for s in [&a, &b] {
        let s = socket2::SockRef::from(s);
        s.set_send_buffer_size(buf).unwrap();
        s.set_recv_buffer_size(buf).unwrap();
    }
    (
        Tcp::from_fd(a.into()).unwrap(),
        Tcp::from_fd(b.into()).unwrap(),
    )
}

/// Reads from `s` (rearming) until `want` bytes arrived; returns the
/// shared buffer the bytes go to.
fn read_into<B: Backend>(lp: &mut Loop<B>, s: &Stream<B>, want: usize) -> Rc<RefCell<Vec<u8>>> {
    let got = Rc::new(RefCell::new(Vec::with_capacity(want)));
    let g = got.clone();
    s.read(lp, vec![0; 64 * 1024], move |_, buf, res| match res {
        Ok(n) => {
            g.borrow_mut().extend_from_slice(&buf[..n]);
            if g.borrow().len() < want {
                Action::Rearm
            } else {
                Action::Disarm
            }
        }
        Err(ReadError::Eof) => Action::Disarm,
        Err(e) => panic!("read failed: {e}"),
    });
    got
}

/// Closes streams through the loop and waits for it.
fn close_all<B: Backend>(lp: &mut Loop<B>, streams: Vec<Stream<B>>) {
    let closed = Rc::new(Cell::new(0usize));
    let n = streams.len();
    for s in streams {
        let c = closed.clone();
        s.close(lp, move |_, r| {
            r.unwrap();
            c.set(c.get() + 1);
        });
    }
    run_until(lp, || closed.get() == n);
}

/// What drain callbacks saw: (which registration, the queued bytes given).
type Fired = Rc<RefCell<Vec<(&'static str, usize)>>>;

/// A drain callback that records `name` and the figure it got in `fired`.
fn record<B: Backend>(
    fired: &Fired,
    name: &'static str,
) -> impl FnOnce(&mut Loop<B>, usize) + 'static {
    let f = fired.clone();
    move |_, n| f.borrow_mut().push((name, n))
}

// ---------------------------------------------------------------------------
// The echo server of the backpressure test (the pattern of tcp_echo.rs)
// ---------------------------------------------------------------------------

/// A chunk of the client's stream: a whole number of periods of the byte
/// pattern `i % 251`, so that chunks sent back to back continue it.
const CHUNK: usize = 251 * 4096;
/// Chunks the client sends: about 66 MB.
const CHUNKS: usize = 64;
const TOTAL: usize = CHUNK * CHUNKS;
/// The server's read buffer.
const READ_BUF: usize = 64 * 1024;
/// The server stops reading from the client above this many queued bytes,
const HIGH_WATER: usize = 256 * 1024;
/// and reads again once they have drained to this many.
const LOW_WATER: usize = 64 * 1024;
/// The client's read buffer (smaller than the server's, so that once it
/// reads, it still reads slower than the server echoes).
const CLIENT_READ: usize = 16 * 1024;

#[derive(Default)]
struct Echo {
    /// The most bytes the server's queue held (checked after each
    /// `queue_write`, the only thing that raises it).
    max_queued: Cell<usize>,
    /// Times the server stopped reading.
    pauses: Cell<usize>,
    /// The server's read, parked while it pauses.
    read_id: Cell<Option<Id>>,
    server_eof: Cell<bool>,
    /// Whether the client reads yet.
    client_reading: Cell<bool>,
    received: Cell<usize>,
    chunks_queued: Cell<usize>,
    chunks_sent: Cell<usize>,
}

/// The server: echoes what it reads; above [`HIGH_WATER`] queued bytes it
/// parks its read and restarts it from the drain callback at
/// [`LOW_WATER`].
fn serve<B: Backend>(lp: &mut Loop<B>, server: &Rc<Tcp<B>>, client: &Rc<Tcp<B>>, st: &Rc<Echo>) {
    let (s, c, state) = (server.clone(), client.clone(), st.clone());
    let st = state.clone();
    let id = server.read(lp, vec![0; READ_BUF], move |lp, buf, res| match res {
        Ok(n) => {
            s.queue_write(lp, buf[..n].to_vec(), |_, _, r| {
                r.expect("echo");
                Action::Disarm
            });
            let queued = s.queued_bytes();
            st.max_queued.set(st.max_queued.get().max(queued));
            // Fail at once rather than let the queue grow.
            assert!(
                queued <= HIGH_WATER + READ_BUF,
                "the server queued {queued} bytes, over {HIGH_WATER} + {READ_BUF}"
            );
            if queued <= HIGH_WATER {
                return Action::Rearm;
            }
            st.pauses.set(st.pauses.get() + 1);
            client_read(lp, &c, &st);
            let st = st.clone();
            s.on_drain(lp, LOW_WATER, move |lp, _| {
                let id = st.read_id.get().expect("the server's read");
                lp.restart(id).expect("restart the parked read");
            });
            Action::Park
        }
        Err(ReadError::Eof) => {
            st.server_eof.set(true);
            Action::Disarm
        }
        Err(e) => panic!("server read: {e}"),
    });
    state.read_id.set(Some(id));
}

/// The client sends [`CHUNKS`] chunks, two queued at a time, then shuts
/// its side down; it reads nothing until the server first pauses (or, were
/// the server never to, until it has sent everything).
fn client_send<B: Backend>(lp: &mut Loop<B>, client: &Rc<Tcp<B>>, st: &Rc<Echo>) {
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    for _ in 0..2 {
        st.chunks_queued.set(st.chunks_queued.get() + 1);
        let (c, st) = (client.clone(), st.clone());
        client.queue_write(lp, chunk.clone(), move |lp, _, res| {
            assert_eq!(res.expect("client send"), CHUNK);
            st.chunks_sent.set(st.chunks_sent.get() + 1);
            if st.chunks_queued.get() < CHUNKS {
                st.chunks_queued.set(st.chunks_queued.get() + 1);
                return Action::Rearm; // the same chunk again, at the back
            }
            if st.chunks_sent.get() == CHUNKS {
                c.shutdown(lp, Shutdown::Write, |_, r| {
                    r.expect("shutdown");
                    Action::Disarm
                });
                // Reads at the latest now (a server that never pauses
                // fails the test instead of hanging it).
                client_read(lp, &c, &st);
            }
            Action::Disarm
        });
    }
}

/// The client starts reading the echo (unless it already does), checking
/// every byte, until it has it all.
fn client_read<B: Backend>(lp: &mut Loop<B>, client: &Rc<Tcp<B>>, st: &Rc<Echo>) {
    if st.client_reading.replace(true) {
        return;
    }
    let st = st.clone();
    let pattern: Vec<u8> = (0..251 + CLIENT_READ).map(|i| (i % 251) as u8).collect();
    client.read(lp, vec![0; CLIENT_READ], move |_, buf, res| {
        let n = res.expect("client read");
        let at = st.received.get();
        let p = at % 251;
        assert!(
            buf[..n] == pattern[p..p + n],
            "echo corrupted near byte {at}"
        );
        st.received.set(at + n);
        if at + n < TOTAL {
            Action::Rearm
        } else {
            Action::Disarm
        }
    });
}

// ---------------------------------------------------------------------------
// Steady state: one queued write and one drain registration per cycle
// ---------------------------------------------------------------------------

/// Cycles of the allocation test.
struct Cycles {
    done: Cell<u64>,
    warmup: u64,
    total: u64,
    mark: Cell<u64>,
    end: Cell<Option<u64>>,
    /// The buffer, between its write's callback and the next cycle.
    buf: RefCell<Vec<u8>>,
}

/// Queues the buffer on `w` and registers a drain at 0 whose callback
/// starts the next cycle.
fn cycle<B: Backend>(lp: &mut Loop<B>, w: &Rc<Stream<B>>, st: &Rc<Cycles>) {
    let buf = std::mem::take(&mut *st.buf.borrow_mut());
    let s = st.clone();
    w.queue_write(lp, buf, move |_, buf, res| {
        assert_eq!(res.expect("queued write"), 64);
        *s.buf.borrow_mut() = std::mem::take(buf);
        Action::Disarm
    });
    let (w2, s) = (w.clone(), st.clone());
    w.on_drain(lp, 0, move |lp, n| {
        assert_eq!(n, 0);
        let done = s.done.get() + 1;
        s.done.set(done);
        if done == s.warmup {
            s.mark.set(counting_alloc::allocs());
        }
        if done == s.total {
            s.end.set(Some(counting_alloc::allocs()));
            return;
        }
        cycle(lp, &w2, &s);
    });
}

/// Cycles measured after the warm-up: fewer on Windows, whose tests run
/// under wine at about a millisecond per pipe operation.
const MEASURED: u64 = if cfg!(windows) { 2_000 } else { 10_000 };

// ---------------------------------------------------------------------------
// Tests, on every backend
// ---------------------------------------------------------------------------

for_each_backend!(
    /// Writes queued into a full pipe: `queued_bytes` is their sum, and
    /// stays so while nothing can be written; each write's callback sees
    /// exactly the bytes of the writes behind it; once the reader has read
    /// everything, each drain registration has run once (at its mark or
    /// below) and the count is 0. A registration made when the queue is
    /// already at its mark runs at the next tick, not from inside
    /// `on_drain`.
    fn queued_bytes_count_exactly<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w, filled) = full_pipe::<B>();
        let w = Rc::new(w);
        assert_eq!(w.queued_bytes(), 0);
        // The first is bigger than any room a full pipe may have left.
        let sizes = [70_000usize, 1_000, 5_000, 1, 0, 123_456];
        let total: usize = sizes.iter().sum();
        let done = Rc::new(Cell::new(0usize));
        let mut expected = Vec::new();
        for (i, &len) in sizes.iter().enumerate() {
            let msg = vec![i as u8 + 1; len];
            expected.extend_from_slice(&msg);
            let behind: usize = sizes[i + 1..].iter().sum();
            let (wk, d) = (Rc::downgrade(&w), done.clone());
            w.queue_write(&mut lp, msg, move |_, buf, res| {
                assert_eq!(res.unwrap(), len);
                assert_eq!(buf.len(), len);
                assert_eq!(d.get(), i, "queued write callbacks out of order");
                d.set(i + 1);
                let w = wk.upgrade().expect("the watcher");
                assert_eq!(
                    w.queued_bytes(),
                    behind,
                    "write {i}'s callback: the count is not the writes behind it"
                );
                assert_eq!(w.queued_writes(), sizes.len() - i - 1);
                Action::Disarm
            });
            assert_eq!(w.queued_bytes(), sizes[..=i].iter().sum::<usize>());
        }
        settle(&mut lp);
        assert_eq!(w.queued_bytes(), total, "a full pipe took bytes");
        assert_eq!(w.queued_writes(), sizes.len());

        let fired: Fired = Rc::default();
        w.on_drain(&mut lp, total / 2, record(&fired, "half"));
        w.on_drain(&mut lp, 0, record(&fired, "empty"));
        assert_eq!(w.in_flight(), sizes.len() + 2);
        settle(&mut lp);
        assert!(
            fired.borrow().is_empty(),
            "a drain ran before the queue drained"
        );

        let got = read_into(&mut lp, &r, filled + total);
        run_until(&mut lp, || {
            done.get() == sizes.len()
                && fired.borrow().len() == 2
                && got.borrow().len() == filled + total
        });
        settle(&mut lp);
        {
            let fired = fired.borrow();
            assert_eq!(fired.len(), 2, "a drain ran twice: {fired:?}");
            let half = fired.iter().find(|(n, _)| *n == "half").expect("half");
            let empty = fired.iter().find(|(n, _)| *n == "empty").expect("empty");
            assert!(half.1 <= total / 2, "half-way drain ran at {}", half.1);
            assert_eq!(empty.1, 0);
        }
        assert_eq!(w.queued_bytes(), 0);
        assert_eq!(w.queued_writes(), 0);
        assert_eq!(w.in_flight(), 0);
        assert!(got.borrow()[filled..] == expected[..], "bytes out of order");

        // Already drained: the callback runs at the next tick, once.
        fired.borrow_mut().clear();
        w.on_drain(&mut lp, 0, record(&fired, "idle"));
        w.on_drain(&mut lp, usize::MAX, record(&fired, "max"));
        assert!(
            fired.borrow().is_empty(),
            "on_drain called back from inside"
        );
        run_until(&mut lp, || fired.borrow().len() == 2);
        settle(&mut lp);
        assert_eq!(*fired.borrow(), vec![("idle", 0), ("max", 0)]);

        let w = Rc::try_unwrap(w).expect("the watcher is still referenced");
        close_all(&mut lp, vec![r, w]);
    }

    /// One big write over a socket with small buffers: the count goes down
    /// as the kernel takes its bytes, so a drain at half of it runs (on
    /// Unix, where the kernel takes a big send in short writes, before the
    /// write has finished); the write's callback then sees 0.
    fn short_writes_count_as_they_complete<B: Backend>() {
        const BIG: usize = 8 << 20;
        let mut lp = new_loop::<B>();
        let (a, b) = tcp_pair::<B>(64 * 1024);
        let a = Rc::new(a);
        let order = Rc::new(RefCell::new(Vec::new()));
        let (o, wk) = (order.clone(), Rc::downgrade(&a));
        a.queue_write(&mut lp, vec![7; BIG], move |_, _, res| {
            assert_eq!(res.unwrap(), BIG);
            assert_eq!(wk.upgrade().expect("the watcher").queued_bytes(), 0);
            o.borrow_mut().push(("write", 0));
            Action::Disarm
        });
        assert_eq!(a.queued_bytes(), BIG);
        let o = order.clone();
        a.on_drain(&mut lp, BIG / 2, move |_, n| {
            o.borrow_mut().push(("drain", n))
        });
        let got = read_into(&mut lp, &b, BIG);
        run_until(&mut lp, || {
            order.borrow().len() == 2 && got.borrow().len() == BIG
        });
        settle(&mut lp);
        let order = order.borrow();
        assert_eq!(order.len(), 2, "{order:?}");
        let drain = order
            .iter()
            .find(|(n, _)| *n == "drain")
            .expect("drain ran");
        assert!(drain.1 <= BIG / 2, "drain ran at {}", drain.1);
        #[cfg(unix)]
        assert_eq!(order[0].0, "drain", "short writes were not counted");
        assert_eq!(a.queued_bytes(), 0);
        drop(order);
        let a = Rc::try_unwrap(a).expect("the watcher is still referenced");
        close_all(&mut lp, vec![a.into_stream(), b.into_stream()]);
    }

    /// A queue that drains because its writes fail (the pipe's reader, or
    /// the socket's peer, is gone) runs its drain callback, once, at 0.
    fn drain_on_failure<B: Backend>() {
        let mut lp = new_loop::<B>();

        // A pipe: the head fails with a broken pipe, the rest with it.
        let (r, w, _) = full_pipe::<B>();
        let errs = Rc::new(RefCell::new(Vec::new()));
        for _ in 0..3 {
            let e = errs.clone();
            w.queue_write(&mut lp, vec![1; 10_000], move |_, _, res| {
                let err = res.expect_err("a write to a full pipe without reader succeeded");
                e.borrow_mut().push(err.kind());
                Action::Disarm
            });
        }
        let fired: Fired = Rc::default();
        w.on_drain(&mut lp, 0, record(&fired, "pipe"));
        settle(&mut lp);
        assert!(fired.borrow().is_empty());
        assert_eq!(w.queued_bytes(), 30_000);
        drop(r);
        run_until(&mut lp, || {
            fired.borrow().len() == 1 && errs.borrow().len() == 3
        });
        settle(&mut lp);
        assert_eq!(*fired.borrow(), vec![("pipe", 0)]);
        assert_eq!(w.queued_bytes(), 0);
        let errs = errs.borrow().clone();
        assert!(errs.iter().all(|k| *k == errs[0]), "{errs:?}");
        #[cfg(unix)]
        assert_eq!(errs[0], std::io::ErrorKind::BrokenPipe);

        // A socket whose peer has closed: once the peer's reset is in, the
        // head fails (EPIPE or ECONNRESET) and the writes behind it with it.
        // Each write queues itself again while it succeeds, so the queue is
        // never empty until then.
        let (a, b) = tcp_pair::<B>(64 * 1024);
        drop(b); // closed at once: it was never used with a loop
        let (sent, failed) = (Rc::new(Cell::new(0usize)), Rc::new(Cell::new(0usize)));
        for _ in 0..3 {
            let (s, f) = (sent.clone(), failed.clone());
            a.queue_write(&mut lp, vec![2; 16 * 1024], move |_, _, res| match res {
                Ok(_) => {
                    s.set(s.get() + 1);
                    assert!(s.get() < 100_000, "writes to a closed peer keep succeeding");
                    Action::Rearm
                }
                Err(_) => {
                    f.set(f.get() + 1);
                    Action::Disarm
                }
            });
        }
        fired.borrow_mut().clear();
        a.on_drain(&mut lp, 0, record(&fired, "tcp"));
        run_until(&mut lp, || fired.borrow().len() == 1 && failed.get() == 3);
        settle(&mut lp);
        assert_eq!(*fired.borrow(), vec![("tcp", 0)]);
        assert_eq!(failed.get(), 3);
        assert_eq!(a.queued_bytes(), 0);
        assert_eq!(a.queued_writes(), 0);
        close_all(&mut lp, vec![w, a.into_stream()]);
    }

    /// A drain registration waiting when its watcher is dropped, or
    /// closed, never runs, and what its callback captured is released
    /// (likewise once freed with `Loop::free`, or when the loop is
    /// dropped); a callback that holds the watcher itself keeps it only
    /// until it has run.
    fn drain_registration_dropped_with_watcher<B: Backend>() {
        let mut lp = new_loop::<B>();
        let token = Rc::new(());

        for close in [false, true] {
            let (_r, w, _) = full_pipe::<B>();
            let res = Rc::new(RefCell::new(Vec::new()));
            let r_ = res.clone();
            w.queue_write(&mut lp, vec![1; 10_000], move |_, _, r| {
                r_.borrow_mut().push(r.map_err(|e| e.to_string()));
                Action::Disarm
            });
            let ran = Rc::new(Cell::new(false));
            let (t, rn) = (token.clone(), ran.clone());
            w.on_drain(&mut lp, 0, move |_, _| {
                let _ = &t;
                rn.set(true);
            });
            assert_eq!(Rc::strong_count(&token), 2);
            assert_eq!(w.in_flight(), 2);
            settle(&mut lp);
            let closed = Rc::new(Cell::new(!close));
            if close {
                let c = closed.clone();
                w.close(&mut lp, move |_, r| {
                    r.unwrap();
                    c.set(true);
                });
            } else {
                drop(w);
            }
            run_until(&mut lp, || {
                closed.get() && res.borrow().len() == 1 && Rc::strong_count(&token) == 1
            });
            settle(&mut lp);
            assert!(
                !ran.get(),
                "a drain ran after its watcher was closed (close: {close})"
            );
            assert_eq!(*res.borrow(), vec![Err(WriteError::Canceled.to_string())]);
            assert_eq!(Rc::strong_count(&token), 1);
        }

        // Freed while it waits: released at once, never runs.
        let (r, w, filled) = full_pipe::<B>();
        w.queue_write(&mut lp, vec![1; 10_000], |_, _, r| {
            r.unwrap();
            Action::Disarm
        });
        let ran = Rc::new(Cell::new(false));
        let (t, rn) = (token.clone(), ran.clone());
        let id = w.on_drain(&mut lp, 0, move |_, _| {
            let _ = &t;
            rn.set(true);
        });
        lp.free(id).expect("a waiting registration is parked");
        assert_eq!(Rc::strong_count(&token), 1);
        assert_eq!(w.in_flight(), 1);
        let got = read_into(&mut lp, &r, filled + 10_000);
        run_until(&mut lp, || {
            got.borrow().len() == filled + 10_000 && w.queued_writes() == 0
        });
        settle(&mut lp);
        assert!(!ran.get(), "a freed drain registration ran");

        // A callback holding the watcher: the watcher lives until it ran.
        let (r2, w2, filled) = full_pipe::<B>();
        let w2 = Rc::new(w2);
        let weak = Rc::downgrade(&w2);
        w2.queue_write(&mut lp, vec![1; 10_000], |_, _, r| {
            r.unwrap();
            Action::Disarm
        });
        let ran = Rc::new(Cell::new(false));
        let (keep, rn) = (w2.clone(), ran.clone());
        w2.on_drain(&mut lp, 0, move |_, n| {
            assert_eq!(keep.queued_bytes(), n);
            rn.set(true);
        });
        drop(w2);
        assert!(
            weak.upgrade().is_some(),
            "the registration holds the watcher"
        );
        let got = read_into(&mut lp, &r2, filled + 10_000);
        run_until(&mut lp, || {
            ran.get() && weak.upgrade().is_none() && got.borrow().len() == filled + 10_000
        });

        // A loop dropped with a registration waiting releases it.
        {
            let mut lp2 = new_loop::<B>();
            let (r3, w3, _) = full_pipe::<B>();
            w3.queue_write(&mut lp2, vec![1; 10_000], |_, _, _| Action::Disarm);
            let t = token.clone();
            w3.on_drain(&mut lp2, 0, move |_, _| {
                let _ = &t;
                panic!("a drain ran on a dropped loop");
            });
            lp2.run(RunMode::NoWait).unwrap();
            drop(lp2);
            assert_eq!(Rc::strong_count(&token), 1);
            drop((r3, w3));
        }
        close_all(&mut lp, vec![r, w, r2]);
    }

    /// An echo server written like `examples/tcp_echo.rs` against a client
    /// that sends about 66 MB and reads nothing until the server has
    /// stopped reading from it (then reads slower than the server
    /// echoes): the server's queued bytes never exceed the high-water mark
    /// plus one read buffer, and every byte comes back in order.
    fn echo_server_queue_stays_under_the_mark<B: Backend>() {
        harness::watchdog_limit(Duration::from_secs(600));
        let mut lp = new_loop::<B>();
        let (a, b) = tcp_pair::<B>(64 * 1024);
        let (client, server) = (Rc::new(a), Rc::new(b));
        let st = Rc::new(Echo::default());
        serve(&mut lp, &server, &client, &st);
        client_send(&mut lp, &client, &st);
        let srv = server.clone();
        run_until_within(&mut lp, 540_000, || {
            st.received.get() == TOTAL && st.server_eof.get() && srv.queued_bytes() == 0
        });
        settle(&mut lp);
        drop(srv);
        let max = st.max_queued.get();
        eprintln!(
            "{}: {TOTAL} bytes echoed; the server paused {} times; its queue peaked at {max} bytes",
            harness::backend(),
            st.pauses.get()
        );
        assert!(st.pauses.get() >= 1, "the server never had to stop reading");
        assert!(
            max <= HIGH_WATER + READ_BUF,
            "the server queued {max} bytes, over {HIGH_WATER} + {READ_BUF}"
        );
        assert_eq!(st.chunks_sent.get(), CHUNKS);
        let client = Rc::try_unwrap(client).expect("the client is still referenced");
        let server = Rc::try_unwrap(server).expect("the server is still referenced");
        close_all(&mut lp, vec![client.into_stream(), server.into_stream()]);
    }

    /// The file watcher's queue counts and drains the same way (its
    /// writes go to the thread pool on epoll and kqueue).
    fn file_queue_counts_and_drains<B: Backend>() {
        let pool = ThreadPool::new(ThreadPoolConfig::default()).expect("thread pool");
        let mut lp = Loop::<B>::new(Options {
            thread_pool: Some(pool),
            ..Default::default()
        })
        .expect("loop");
        let path = std::env::temp_dir().join(format!(
            "xev-backpressure-{}-{}",
            std::process::id(),
            harness::backend()
        ));
        let f = File::<B>::open(
            &path,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
        )
        .unwrap();
        let done = Rc::new(Cell::new(0usize));
        for len in [4096usize, 100_000, 1] {
            let d = done.clone();
            f.queue_write(&mut lp, vec![9; len], move |_, _, r| {
                assert_eq!(r.unwrap(), len);
                d.set(d.get() + 1);
                Action::Disarm
            });
        }
        assert_eq!(f.queued_bytes(), 104_097);
        let fired: Fired = Rc::default();
        f.on_drain(&mut lp, 0, record(&fired, "file"));
        run_until(&mut lp, || done.get() == 3 && fired.borrow().len() == 1);
        settle(&mut lp);
        assert_eq!(*fired.borrow(), vec![("file", 0)]);
        assert_eq!(f.queued_bytes(), 0);
        assert_eq!(f.queue_offset(), 104_097);
        let closed = Rc::new(Cell::new(false));
        let c = closed.clone();
        f.close(&mut lp, move |_, r| {
            r.unwrap();
            c.set(true);
        });
        run_until(&mut lp, || closed.get());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 104_097);
        std::fs::remove_file(&path).unwrap();
    }

    /// A queued write and a drain registration per cycle allocate nothing
    /// once warm (the loop recycles both completions; the queue keeps its
    /// capacity).
    fn queue_and_drain_allocate_nothing<B: Backend>() {
        let mut lp = new_loop::<B>();
        #[cfg(unix)]
        let (r, w) = {
            let (r, w) = pipes::pipe();
            (
                Stream::<B>::from_fd(r).unwrap(),
                Stream::<B>::from_fd(w).unwrap(),
            )
        };
        #[cfg(windows)]
        let (r, w) = Stream::<B>::pipe().unwrap();
        let w = Rc::new(w);
        r.read(&mut lp, vec![0; 4096], |_, _, res| match res {
            Ok(_) => Action::Rearm,
            Err(ReadError::Canceled | ReadError::Eof) => Action::Disarm,
            Err(e) => panic!("reader: {e}"),
        });
        let st = Rc::new(Cycles {
            done: Cell::new(0),
            warmup: 100,
            total: 100 + MEASURED,
            mark: Cell::new(0),
            end: Cell::new(None),
            buf: RefCell::new(vec![5; 64]),
        });
        cycle(&mut lp, &w, &st);
        run_until_within(&mut lp, 120_000, || st.end.get().is_some());
        let allocated = st.end.get().unwrap_or(0) - st.mark.get();
        assert_eq!(
            allocated, 0,
            "{MEASURED} cycles allocated {allocated} times"
        );
        settle(&mut lp);
        let w = Rc::try_unwrap(w).expect("the watcher is still referenced");
        close_all(&mut lp, vec![r, w]);
    }
);
