//! Tests of the stream, TCP and file watchers, written once against any
//! backend in the `for_each_backend!` at the bottom
//! (`tests/support/harness.rs`), which instantiates them as `BACKEND::NAME`
//! for io_uring (skipped with a message when this host cannot run it),
//! epoll, the dynamic backend, kqueue through libkqueue and IOCP (under
//! wine). Scenarios that prove closes by descriptor numbers and identities
//! are `#[cfg(unix)]`; on Windows the pipes are `Stream::pipe()`'s named
//! pipes, which the test side fills through `support/win_io.rs`.
//!
//! Every test runs its loop under a 10 s safety timer, so a hang fails
//! instead of hanging, and under the harness's watchdog besides.

// Not on WASI: no pipes, threads or child processes there (the
// conformance and allocation suites cover the WASI backend).
#![cfg(not(target_os = "wasi"))]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::cell::{Cell, RefCell};
use std::fs::OpenOptions;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use xev::backend::Backend;
use xev::generic::{Loop, OwnedLoop};
use xev::watcher::File;
use xev::watcher::Stream;
use xev::watcher::Tcp;
use xev::watcher::Timer;
use xev::{
    AcceptError, Action, CancelError, Interest, Op, Options, ReadError, RunMode, ThreadPool,
    ThreadPoolConfig, WriteError,
};

#[cfg(unix)]
#[path = "support/fd_reuse.rs"]
mod fd_reuse;
#[cfg(windows)]
#[path = "support/win_io.rs"]
mod win_io;
#[cfg(unix)]
use fd_reuse::{identity, read_on_reused_number};

/// How long anything may take before a test fails instead of hanging.
const SAFETY_NET: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn new_loop<B: Backend>(pool: bool) -> OwnedLoop<B> {
    let thread_pool = if pool {
        Some(ThreadPool::new(ThreadPoolConfig::default()).expect("thread pool"))
    } else {
        None
    };
    Loop::new(Options {
        thread_pool,
        ..Default::default()
    })
    .expect("loop")
}

/// How long [`run_until`] waits before failing: 10 s, or a minute under
/// Miri (which runs some of these tests on the real clock, ~100 times
/// slower).
const GUARD_MS: u64 = if cfg!(miri) { 60_000 } else { 10_000 };

/// Runs the loop until `done()` holds; panics after [`GUARD_MS`].
fn run_until<B: Backend>(lp: &mut Loop<B>, done: impl Fn() -> bool) {
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let t = Timer::new(lp, move |lp, res| {
        if res.is_ok() {
            f.set(true);
            lp.stop();
        }
        Action::Disarm
    });
    t.run(lp, GUARD_MS).unwrap();
    while !done() {
        lp.run(RunMode::Once).unwrap();
        assert!(!fired.get(), "timed out after {GUARD_MS} ms");
    }
    let _ = t.cancel(lp);
    lp.run(RunMode::NoWait).unwrap();
    let _ = t.free(lp);
}

/// Runs the loop until nothing but its safety timer is in flight; panics
/// after 10 s.
fn run_all<B: Backend>(lp: &mut Loop<B>) {
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let t = Timer::new(lp, move |lp, res| {
        if res.is_ok() {
            f.set(true);
            lp.stop();
        }
        Action::Disarm
    });
    t.run(lp, SAFETY_NET.as_millis() as u64).unwrap();
    while lp.active() > 1 {
        lp.run(RunMode::Once).unwrap();
        assert!(!fired.get(), "timed out after {SAFETY_NET:?}");
    }
    drop(t);
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.active(), 0);
}

/// A few non-blocking passes (to let a late or duplicate callback show up).
fn settle<B: Backend>(lp: &mut Loop<B>) {
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
}

/// A loopback TCP connection: (the accepted side as a watcher, the
/// connecting side as a blocking std stream that fails after the safety
/// net instead of blocking for ever).
fn tcp_with_peer<B: Backend>() -> (Tcp<B>, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (conn, _) = l.accept().unwrap();
    peer.set_read_timeout(Some(SAFETY_NET)).unwrap();
    (Tcp::from_fd(conn.into()).unwrap(), peer)
}

/// Asserts that the peer of a closed socket reads end of file.
fn assert_eof(peer: &mut TcpStream, what: &str) {
    let r = peer.read(&mut [0; 16]);
    assert!(
        matches!(r, Ok(0)),
        "{what}: the peer reads {r:?}, not end of file"
    );
}

type Log = Rc<RefCell<Vec<Result<usize, String>>>>;

/// A read callback that records each result in `log` and rearms.
/// Checks that the read end of the pipe written through `w` (made
/// non-blocking here) is closed: a write fails with `EPIPE`, at once or, if the pipe fills
/// first, once its write end reports the error. CI saw the read end still
/// open right after a `Stream` whose loop was gone closed it directly, once,
/// on kqueue under libkqueue and AddressSanitizer (never reproduced since);
/// this waits for the close instead of failing on a write that comes just
/// before it, and still fails if the read end never closes.
#[cfg(unix)]
fn assert_read_end_closes(w: &mut std::fs::File) {
    // SAFETY: fcntl on a descriptor `w` owns; no pointers.
    let r = unsafe {
        let flags = libc::fcntl(w.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(w.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
    };
    assert_eq!(r, 0, "fcntl: {}", std::io::Error::last_os_error());
    let chunk = [0u8; 4096];
    loop {
        match w.write(&chunk) {
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => return,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("writing to the pipe: {e}"),
        }
    }
    // Full, so not writable while a reader exists: wait for the error.
    let mut pfd = libc::pollfd {
        fd: w.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `pfd` is one live pollfd for the kernel to fill.
    let n = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    assert!(
        n == 1 && pfd.revents & libc::POLLERR != 0,
        "the pipe's read end is still open after 10 s (poll: {n}, revents {:#x})",
        pfd.revents
    );
    let e = w.write(b"x").expect_err("the read end is closed");
    assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
}

fn record_read<B: Backend>(
    log: &Log,
) -> impl FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, ReadError>) -> Action + 'static {
    let log = log.clone();
    move |_, _, res| {
        log.borrow_mut().push(res.map_err(|e| e.to_string()));
        // Ignored once the watcher is gone: the read ends.
        Action::Rearm
    }
}

/// A pipe: (read end, write end), blocking, close-on-exec: `pipe2` where
/// it exists (Miri emulates it), else `pipe` and `fcntl`.
#[cfg(unix)]
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        // SAFETY: `fds` is a live array of two ints for pipe2 to fill.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        // SAFETY: `fds` is a live array of two ints for pipe to fill.
        let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
        assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
        for fd in fds {
            // SAFETY: sets a flag on a descriptor we own.
            let r = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            assert_eq!(r, 0);
        }
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A pipe as two streams, (read end, write end): on Unix from blocking
/// descriptors (the watcher makes them non-blocking); on Windows from
/// [`Stream::pipe`] (a local named pipe opened for overlapped I/O).
fn pipe_streams<B: Backend>() -> (Stream<B>, Stream<B>) {
    #[cfg(unix)]
    {
        let (r, w) = pipe();
        (Stream::from_fd(r).unwrap(), Stream::from_fd(w).unwrap())
    }
    #[cfg(windows)]
    Stream::pipe().unwrap()
}

/// A pipe as two streams whose pipe is full: (read end, write end, the
/// bytes in the pipe). On Unix it is filled through a blocking duplicate
/// of the write end (the watcher makes the pipe non-blocking, so the
/// duplicate's writes stop when it is full); on Windows through the test
/// side's writes of [`Stream::pipe`]'s write end, which stop at the first
/// one that would wait (see `support/win_io.rs`).
fn full_pipe<B: Backend>() -> (Stream<B>, Stream<B>, usize) {
    #[cfg(unix)]
    {
        let (r, w) = pipe();
        let mut filler = std::fs::File::from(w.try_clone().unwrap());
        let w: Stream<B> = Stream::from_fd(w).unwrap(); // makes the pipe non-blocking
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

/// A connected TCP pair over loopback: (client, server side).
fn tcp_pair<B: Backend>() -> (Tcp<B>, Tcp<B>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (
        Tcp::from_fd(a.into()).unwrap(),
        Tcp::from_fd(b.into()).unwrap(),
    )
}

/// The error code of a socket call on something that is not a socket.
fn not_a_socket() -> i32 {
    #[cfg(unix)]
    return libc::ENOTSOCK;
    #[cfg(windows)]
    return 10038; // WSAENOTSOCK
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Reads from `s` (rearming) until `want` bytes arrived or end of file;
/// returns the shared buffer the bytes go to.
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

fn temp_path(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("xev-watchers-{}-{tag}-{n}", std::process::id()))
}

// ---------------------------------------------------------------------------
// Dropping watchers (issue #8): the same on every backend
// ---------------------------------------------------------------------------

fn canceled() -> Result<usize, String> {
    Err(ReadError::Canceled.to_string())
}

// ---------------------------------------------------------------------------
// Tests, on every backend
// ---------------------------------------------------------------------------

for_each_backend!(
    fn pipe_read_write<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (r, w) = pipe_streams::<B>();
        assert!(!r.is_socket());
        let wrote = Rc::new(Cell::new(None));
        let wr = wrote.clone();
        w.write(&mut lp, b"hello pipe".to_vec(), move |_, buf, res| {
            assert_eq!(&buf[..], b"hello pipe", "buffer handed back");
            wr.set(Some(res.unwrap()));
            Action::Disarm
        });
        let got = read_into(&mut lp, &r, 10);
        run_until(&mut lp, || {
            got.borrow().len() == 10 && wrote.get().is_some()
        });
        assert_eq!(wrote.get(), Some(10));
        assert_eq!(&got.borrow()[..], b"hello pipe");
        close_all(&mut lp, vec![r, w]);
    }

    /// Windows: a pipe end opened for synchronous I/O (std's anonymous
    /// pipe, like a child's stdout or a console handle) cannot go through
    /// the completion port. Without a thread pool its read fails with
    /// `NoThreadPool`; with one, it reads on the pool, then sees end of
    /// file once the writer is gone.
    #[cfg(windows)]
    #[allow(clippy::incompatible_msrv)] // std::io::pipe: tests build on stable
    fn synchronous_pipe_reads_go_to_the_pool<B: Backend>() {
        let (r, mut w) = std::io::pipe().unwrap();
        let r: Stream<B> = Stream::from_handle(r.into());
        {
            let mut lp = new_loop::<B>(false);
            let res = Rc::new(RefCell::new(None));
            let rs = res.clone();
            r.read(&mut lp, vec![0; 8], move |_, _, got| {
                *rs.borrow_mut() = Some(got.map_err(|e| e.to_string()));
                Action::Disarm
            });
            run_until(&mut lp, || res.borrow().is_some());
            assert_eq!(
                *res.borrow(),
                Some(Err(ReadError::NoThreadPool.to_string()))
            );
        }
        let mut lp = new_loop::<B>(true);
        w.write_all(b"via the pool").unwrap();
        drop(w);
        let got = read_into(&mut lp, &r, 12);
        run_until(&mut lp, || got.borrow().len() == 12);
        assert_eq!(&got.borrow()[..], b"via the pool");
        let eof = Rc::new(Cell::new(false));
        let e = eof.clone();
        r.read(&mut lp, vec![0; 8], move |_, _, res| {
            assert!(matches!(res, Err(ReadError::Eof)), "{res:?}");
            e.set(true);
            Action::Disarm
        });
        run_until(&mut lp, || eof.get());
        close_all(&mut lp, vec![r]);
    }

    fn tcp_read_write<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (a, b) = tcp_pair::<B>();
        assert!(a.is_socket());
        // Both directions at once.
        a.write(&mut lp, b"from a".to_vec(), |_, _, r| {
            assert_eq!(r.unwrap(), 6);
            Action::Disarm
        });
        b.write(&mut lp, b"from b!".to_vec(), |_, _, r| {
            assert_eq!(r.unwrap(), 7);
            Action::Disarm
        });
        let at_b = read_into(&mut lp, &b, 6);
        let at_a = read_into(&mut lp, &a, 7);
        run_until(&mut lp, || {
            at_b.borrow().len() == 6 && at_a.borrow().len() == 7
        });
        assert_eq!(&at_b.borrow()[..], b"from a");
        assert_eq!(&at_a.borrow()[..], b"from b!");
        close_all(&mut lp, vec![a.into_stream(), b.into_stream()]);
    }

    /// 1,000 queued writes of varying sizes, over a pipe and over TCP: their
    /// callbacks run in order, each with its whole buffer written, and the
    /// reader sees the bytes in order.
    fn queued_writes_in_order<B: Backend>() {
        for over_tcp in [false, true] {
            let mut lp = new_loop::<B>(false);
            let (r, w) = if over_tcp {
                let (a, b) = tcp_pair::<B>();
                (b.into_stream(), a.into_stream())
            } else {
                pipe_streams::<B>()
            };
            let mut expected = Vec::new();
            let next = Rc::new(Cell::new(0usize));
            for i in 0..1000usize {
                let msg: Vec<u8> = (0..1 + i % 97).map(|j| (i * 31 + j) as u8).collect();
                expected.extend_from_slice(&msg);
                let n = next.clone();
                let copy = msg.clone();
                w.queue_write(&mut lp, msg, move |_, buf, res| {
                    assert_eq!(n.get(), i, "queued write callbacks out of order");
                    n.set(i + 1);
                    assert_eq!(res.unwrap(), copy.len());
                    assert_eq!(*buf, copy, "buffer not handed back intact");
                    Action::Disarm
                });
            }
            assert_eq!(w.queued_writes(), 1000);
            let got = read_into(&mut lp, &r, expected.len());
            run_until(&mut lp, || {
                next.get() == 1000 && got.borrow().len() >= expected.len()
            });
            assert_eq!(w.queued_writes(), 0);
            assert!(*got.borrow() == expected, "bytes arrived out of order");
            close_all(&mut lp, vec![r, w]);
        }
    }

    /// A queued write whose callback returns `Rearm` is queued again at the
    /// back: behind the writes queued meanwhile, and at once when it is alone.
    fn queued_write_rearm<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (r, w) = pipe_streams::<B>();
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let mut times = 0;
        w.queue_write(&mut lp, b"A".to_vec(), move |_, buf, res| {
            assert_eq!(res.unwrap(), 1);
            assert_eq!(&buf[..], b"A");
            times += 1;
            l.borrow_mut().push("A");
            if times < 3 {
                Action::Rearm
            } else {
                Action::Disarm
            }
        });
        let l = log.clone();
        w.queue_write(&mut lp, b"B".to_vec(), move |_, _, res| {
            assert_eq!(res.unwrap(), 1);
            l.borrow_mut().push("B");
            Action::Disarm
        });
        let got = read_into(&mut lp, &r, 4);
        run_until(&mut lp, || {
            log.borrow().len() == 4 && got.borrow().len() == 4
        });
        assert_eq!(*log.borrow(), vec!["A", "B", "A", "A"]);
        assert_eq!(&got.borrow()[..], b"ABAA");
        assert_eq!(w.queued_writes(), 0);
        close_all(&mut lp, vec![r, w]);
    }

    /// An 8 MiB queued write over a socket with small buffers (so the kernel
    /// takes it in many short writes) completes whole, before the write queued
    /// after it, and the reader gets every byte in order.
    fn queued_big_write<B: Backend>() {
        const BIG: usize = 8 << 20;
        let mut lp = new_loop::<B>(false);
        let (a, b) = tcp_pair::<B>();
        socket2::SockRef::from(&*a)
            .set_send_buffer_size(64 * 1024)
            .unwrap();
        socket2::SockRef::from(&*b)
            .set_recv_buffer_size(64 * 1024)
            .unwrap();
        let pattern = |i: usize| (i % 251) as u8;
        let big: Vec<u8> = (0..BIG).map(pattern).collect();
        let order = Rc::new(Cell::new(0));
        let o = order.clone();
        a.queue_write(&mut lp, big, move |_, buf, res| {
            assert_eq!(o.get(), 0);
            o.set(1);
            assert_eq!(res.unwrap(), BIG);
            assert_eq!(buf.len(), BIG);
            assert!(
                buf.iter().enumerate().all(|(i, &x)| x == pattern(i)),
                "big buffer not handed back intact"
            );
            Action::Disarm
        });
        let o = order.clone();
        a.queue_write(&mut lp, b"tail".to_vec(), move |_, _, res| {
            assert_eq!(o.get(), 1, "small write finished before the big one");
            o.set(2);
            assert_eq!(res.unwrap(), 4);
            Action::Disarm
        });
        let got = read_into(&mut lp, &b, BIG + 4);
        run_until(&mut lp, || {
            order.get() == 2 && got.borrow().len() == BIG + 4
        });
        let got = got.borrow();
        assert!(
            got[..BIG].iter().enumerate().all(|(i, &x)| x == pattern(i)),
            "big write corrupted or reordered"
        );
        assert_eq!(&got[BIG..], b"tail");
        drop(got);
        close_all(&mut lp, vec![a.into_stream(), b.into_stream()]);
    }

    /// Writes to a peer that is gone fail: EPIPE on a pipe (and the writes
    /// queued behind a failed one fail with the same error, in order), EPIPE or
    /// ECONNRESET on TCP (their Windows equivalents: a broken pipe,
    /// WSAECONNRESET or WSAECONNABORTED).
    fn write_to_closed_peer<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (r, w) = pipe_streams::<B>();
        drop(r);
        let errs = Rc::new(RefCell::new(Vec::new()));
        for i in 0..3 {
            let e = errs.clone();
            w.queue_write(&mut lp, vec![1; 10], move |_, buf, res| {
                assert_eq!(buf.len(), 10);
                let err = res.expect_err("write to a closed pipe succeeded");
                e.borrow_mut().push((i, err.kind()));
                Action::Disarm
            });
        }
        run_until(&mut lp, || errs.borrow().len() == 3);
        let epipe = std::io::ErrorKind::BrokenPipe;
        assert_eq!(*errs.borrow(), vec![(0, epipe), (1, epipe), (2, epipe)]);

        let (a, b) = tcp_pair::<B>();
        drop(b);
        let err = Rc::new(Cell::new(None));
        let e = err.clone();
        let mut tries = 0;
        a.write(&mut lp, vec![7; 1024], move |_, _, res| match res {
            Ok(_) => {
                tries += 1;
                assert!(tries < 100_000, "writes to a closed peer keep succeeding");
                Action::Rearm
            }
            Err(er) => {
                e.set(Some(er.kind()));
                Action::Disarm
            }
        });
        run_until(&mut lp, || err.get().is_some());
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        let kind = err.get().unwrap();
        assert!(
            matches!(kind, BrokenPipe | ConnectionReset)
                || (cfg!(windows) && kind == ConnectionAborted),
            "expected EPIPE or ECONNRESET, got {kind:?}"
        );
        close_all(&mut lp, vec![w, a.into_stream()]);
    }

    /// A read on a pipe whose writer is gone reports `Eof`, after the bytes
    /// written before.
    fn read_sees_eof<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (r, w) = pipe_streams::<B>();
        let wrote = Rc::new(Cell::new(false));
        let wr = wrote.clone();
        w.queue_write(&mut lp, b"last words".to_vec(), move |_, _, res| {
            assert_eq!(res.unwrap(), 10);
            wr.set(true);
            Action::Disarm
        });
        run_until(&mut lp, || wrote.get());
        close_all(&mut lp, vec![w]);
        let got = Rc::new(RefCell::new(Vec::new()));
        let eof = Rc::new(Cell::new(0));
        let (g, e) = (got.clone(), eof.clone());
        r.read(&mut lp, vec![0; 4], move |_, buf, res| match res {
            Ok(n) => {
                g.borrow_mut().extend_from_slice(&buf[..n]);
                Action::Rearm
            }
            Err(ReadError::Eof) => {
                e.set(e.get() + 1);
                Action::Disarm
            }
            Err(er) => panic!("unexpected {er}"),
        });
        run_until(&mut lp, || eof.get() == 1);
        assert_eq!(&got.borrow()[..], b"last words");
        close_all(&mut lp, vec![r]);
    }

    /// Canceling a pending accept and a pending read: each callback runs
    /// exactly once, with `Canceled`.
    fn cancel_pending_accept_and_read<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let server: Tcp<B> = Tcp::new(localhost()).unwrap();
        server.bind(localhost()).unwrap();
        server.listen(8).unwrap();
        let accept_calls = Rc::new(Cell::new(0));
        let read_calls = Rc::new(Cell::new(0));
        let a = accept_calls.clone();
        let accept = server.accept(&mut lp, move |_, res| {
            assert!(matches!(res, Err(AcceptError::Canceled)), "{res:?}");
            a.set(a.get() + 1);
            // Rearm once (the new accept is canceled below), then stop.
            if a.get() == 1 {
                Action::Rearm
            } else {
                Action::Disarm
            }
        });
        let (r, w) = pipe_streams::<B>();
        let rc = read_calls.clone();
        let read = r.read(&mut lp, vec![0; 8], move |_, _, res| {
            assert!(matches!(res, Err(ReadError::Canceled)), "{res:?}");
            rc.set(rc.get() + 1);
            Action::Disarm
        });
        // Let both reach the backend, then cancel them.
        lp.run(RunMode::NoWait).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!((accept_calls.get(), read_calls.get()), (0, 0));
        lp.cancel(accept).unwrap();
        lp.cancel(read).unwrap();
        run_until(&mut lp, || accept_calls.get() == 1 && read_calls.get() == 1);
        // The accept callback rearmed: that new accept is pending; cancel it
        // too, then make sure nothing else runs.
        lp.run(RunMode::NoWait).unwrap();
        lp.cancel(accept).unwrap();
        run_until(&mut lp, || accept_calls.get() == 2);
        for _ in 0..3 {
            lp.run(RunMode::NoWait).unwrap();
        }
        assert_eq!((accept_calls.get(), read_calls.get()), (2, 1));
        assert_eq!(lp.cancel(read), Err(CancelError::NotFound));
        close_all(&mut lp, vec![r, w, server.into_stream()]);
    }

    /// Canceling the head of a write queue (blocked on a full pipe) fails it
    /// and every write behind it with `Canceled`, in order; only the head can
    /// be canceled; writes queued afterwards work.
    fn cancel_queued_writes<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (r, w, filled) = full_pipe::<B>();
        let results = Rc::new(RefCell::new(Vec::new()));
        let mut ids = Vec::new();
        for i in 0..3 {
            let res_ = results.clone();
            ids.push(w.queue_write(&mut lp, vec![9; 100], move |_, _, res| {
                res_.borrow_mut()
                    .push((i, matches!(res, Err(WriteError::Canceled))));
                Action::Disarm
            }));
        }
        lp.run(RunMode::NoWait).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert!(
            results.borrow().is_empty(),
            "a write to a full pipe finished"
        );
        assert_eq!(w.queued_writes(), 3);
        assert_eq!(lp.cancel(ids[1]), Err(CancelError::NotFound));
        lp.cancel(ids[0]).unwrap();
        run_until(&mut lp, || results.borrow().len() == 3);
        assert_eq!(*results.borrow(), vec![(0, true), (1, true), (2, true)]);
        assert_eq!(w.queued_writes(), 0);

        // The queue starts afresh: drain the pipe and write once more.
        let ok = Rc::new(Cell::new(false));
        let o = ok.clone();
        w.queue_write(&mut lp, b"after".to_vec(), move |_, _, res| {
            assert_eq!(res.unwrap(), 5);
            o.set(true);
            Action::Disarm
        });
        let got = read_into(&mut lp, &r, filled + 5);
        run_until(&mut lp, || ok.get() && got.borrow().len() == filled + 5);
        assert_eq!(&got.borrow()[filled..], b"after");
        close_all(&mut lp, vec![r, w]);
    }

    /// A listening `Tcp` accepts what a connecting `Tcp` connects; a request
    /// and its answer go through.
    fn accept_connect_round_trip<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let server: Tcp<B> = Tcp::new(localhost()).unwrap();
        server.bind(localhost()).unwrap();
        server.listen(8).unwrap();
        let addr = server.local_addr().unwrap();
        assert_ne!(addr.port(), 0);

        let conn_slot: Rc<RefCell<Option<Rc<Tcp<B>>>>> = Rc::new(RefCell::new(None));
        let slot = conn_slot.clone();
        server.accept(&mut lp, move |lp, res| {
            let conn = Rc::new(res.unwrap());
            let c = conn.clone();
            conn.read(lp, vec![0; 4], move |lp, buf, res| {
                assert_eq!(res.unwrap(), 4);
                assert_eq!(&buf[..], b"ping");
                c.queue_write(lp, b"pong".to_vec(), |_, _, r| {
                    r.unwrap();
                    Action::Disarm
                });
                Action::Disarm
            });
            *slot.borrow_mut() = Some(conn);
            Action::Disarm
        });

        let client = Rc::new(Tcp::<B>::new(addr).unwrap());
        let done = Rc::new(Cell::new(false));
        let (c, d) = (client.clone(), done.clone());
        client.connect(&mut lp, addr, move |lp, res| {
            res.unwrap();
            c.write(lp, b"ping".to_vec(), |_, _, r| {
                assert_eq!(r.unwrap(), 4);
                Action::Disarm
            });
            let d = d.clone();
            c.read(lp, vec![0; 4], move |_, buf, res| {
                assert_eq!(res.unwrap(), 4);
                assert_eq!(&buf[..], b"pong");
                d.set(true);
                Action::Disarm
            });
            Action::Disarm
        });
        run_until(&mut lp, || done.get());
        let conn = conn_slot.borrow_mut().take().unwrap();
        let conn = Rc::try_unwrap(conn).unwrap();
        let client = Rc::try_unwrap(client).unwrap();
        assert_eq!(client.peer_addr().unwrap(), addr);
        assert_eq!(conn.peer_addr().unwrap(), client.local_addr().unwrap());
        close_all(
            &mut lp,
            vec![
                conn.into_stream(),
                client.into_stream(),
                server.into_stream(),
            ],
        );
    }

    /// Shutting down the write half: the peer reads `Eof`, and can still write
    /// back.
    fn shutdown_half_close<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (a, b) = tcp_pair::<B>();
        let shut = Rc::new(Cell::new(false));
        let eof = Rc::new(Cell::new(false));
        let s = shut.clone();
        a.shutdown(&mut lp, Shutdown::Write, move |_, r| {
            r.unwrap();
            s.set(true);
            Action::Disarm
        });
        let e = eof.clone();
        b.read(&mut lp, vec![0; 8], move |_, _, res| {
            assert!(matches!(res, Err(ReadError::Eof)), "{res:?}");
            e.set(true);
            Action::Disarm
        });
        run_until(&mut lp, || shut.get() && eof.get());
        b.queue_write(&mut lp, b"bye".to_vec(), |_, _, r| {
            r.unwrap();
            Action::Disarm
        });
        let got = read_into(&mut lp, &a, 3);
        run_until(&mut lp, || got.borrow().len() == 3);
        assert_eq!(&got.borrow()[..], b"bye");

        // Shutdown of something that is not a socket fails with ENOTSOCK.
        let (r, w) = pipe_streams::<B>();
        let err = Rc::new(Cell::new(None));
        let e = err.clone();
        w.shutdown(&mut lp, Shutdown::Both, move |_, r| {
            e.set(Some(r.expect_err("shutdown of a pipe").raw_os_error()));
            Action::Disarm
        });
        run_until(&mut lp, || err.get().is_some());
        assert_eq!(err.get(), Some(Some(not_a_socket())));
        close_all(&mut lp, vec![a.into_stream(), b.into_stream(), r, w]);
    }

    /// Polling for readiness: a pipe's write end is writable; its read end
    /// becomes readable only once something is written.
    fn poll_readiness<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (r, w) = pipe_streams::<B>();
        let writable = Rc::new(Cell::new(false));
        let readable = Rc::new(Cell::new(false));
        let wr = writable.clone();
        w.poll(&mut lp, Interest::WRITABLE, move |_, res| {
            assert!(res.unwrap().writable);
            wr.set(true);
            Action::Disarm
        });
        let rd = readable.clone();
        r.poll(&mut lp, Interest::READABLE, move |_, res| {
            let ready = res.unwrap();
            assert!(ready.readable && !ready.hangup, "{ready:?}");
            rd.set(true);
            Action::Disarm
        });
        run_until(&mut lp, || writable.get());
        for _ in 0..3 {
            lp.run(RunMode::NoWait).unwrap();
        }
        assert!(!readable.get(), "empty pipe polled readable");
        w.write(&mut lp, b"x".to_vec(), |_, _, r| {
            r.unwrap();
            Action::Disarm
        });
        run_until(&mut lp, || readable.get());

        // Closing the write end: the read end reports a hang-up.
        close_all(&mut lp, vec![w]);
        let hup = Rc::new(Cell::new(false));
        let h = hup.clone();
        let mut n = 0;
        r.read(&mut lp, vec![0; 8], move |_, _, res| {
            // The one byte written above, then end of file.
            n += 1;
            match res {
                Ok(1) if n == 1 => Action::Rearm,
                Err(ReadError::Eof) => {
                    h.set(true);
                    Action::Disarm
                }
                other => panic!("unexpected {other:?}"),
            }
        });
        run_until(&mut lp, || hup.get());
        let hung = Rc::new(Cell::new(false));
        let h = hung.clone();
        r.poll(&mut lp, Interest::READABLE, move |_, res| {
            let ready = res.unwrap();
            assert!(ready.hangup, "{ready:?}");
            h.set(true);
            Action::Disarm
        });
        run_until(&mut lp, || hung.get());
        close_all(&mut lp, vec![r]);
    }

    /// Files: write at the position, pwrite, queued writes at increasing
    /// offsets, pread (one shot and rearming through the file), read at the
    /// position until end of file. Uses a thread pool (needed on epoll).
    fn file_round_trip<B: Backend>() {
        let mut lp = new_loop::<B>(true);
        let path = temp_path("round-trip");
        let f: File<B> = File::open(
            &path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
        )
        .unwrap();
        let steps = Rc::new(Cell::new(0));

        let s = steps.clone();
        f.write(&mut lp, b"0123456789".to_vec(), move |_, _, r| {
            assert_eq!(r.unwrap(), 10);
            s.set(s.get() + 1);
            Action::Disarm
        });
        run_until(&mut lp, || steps.get() == 1);
        let s = steps.clone();
        f.pwrite(&mut lp, b"AB".to_vec(), 2, move |_, _, r| {
            assert_eq!(r.unwrap(), 2);
            s.set(s.get() + 1);
            Action::Disarm
        });
        run_until(&mut lp, || steps.get() == 2);

        f.set_queue_offset(10);
        let order = Rc::new(RefCell::new(Vec::new()));
        for part in ["x", "yy", "zzz"] {
            let o = order.clone();
            f.queue_write(&mut lp, part.as_bytes().to_vec(), move |_, buf, r| {
                assert_eq!(r.unwrap(), part.len());
                assert_eq!(&buf[..], part.as_bytes());
                o.borrow_mut().push(part);
                Action::Disarm
            });
        }
        assert_eq!(f.queue_offset(), 16);
        run_until(&mut lp, || order.borrow().len() == 3);
        assert_eq!(*order.borrow(), vec!["x", "yy", "zzz"]);

        let want: &[u8] = b"01AB456789xyyzzz";
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        f.pread(&mut lp, vec![0; 64], 0, move |_, buf, r| {
            let n = r.unwrap();
            g.borrow_mut().extend_from_slice(&buf[..n]);
            Action::Disarm
        });
        run_until(&mut lp, || !got.borrow().is_empty());
        assert_eq!(&got.borrow()[..], want);

        // pread in chunks of 5, rearming: offsets advance by what was read.
        let chunks = Rc::new(RefCell::new(Vec::new()));
        let eof = Rc::new(Cell::new(false));
        let (c, e) = (chunks.clone(), eof.clone());
        f.pread(&mut lp, vec![0; 5], 0, move |_, buf, r| match r {
            Ok(n) => {
                c.borrow_mut().push(buf[..n].to_vec());
                Action::Rearm
            }
            Err(ReadError::Eof) => {
                e.set(true);
                Action::Disarm
            }
            Err(er) => panic!("pread: {er}"),
        });
        run_until(&mut lp, || eof.get());
        assert_eq!(
            *chunks.borrow(),
            vec![
                b"01AB4".to_vec(),
                b"56789".to_vec(),
                b"xyyzz".to_vec(),
                b"z".to_vec()
            ]
        );

        // pwrite rearming: writes the next chunk right after the last one.
        let left = Rc::new(Cell::new(2));
        let l = left.clone();
        f.pwrite(&mut lp, b"++".to_vec(), 16, move |_, buf, r| {
            assert_eq!(r.unwrap(), 2);
            l.set(l.get() - 1);
            if l.get() > 0 {
                buf.copy_from_slice(b"--");
                Action::Rearm
            } else {
                Action::Disarm
            }
        });
        run_until(&mut lp, || left.get() == 0);

        // A second watcher reads the whole file at its position.
        let g: File<B> = File::open(&path, OpenOptions::new().read(true)).unwrap();
        let all = Rc::new(RefCell::new(Vec::new()));
        let done = Rc::new(Cell::new(false));
        let (a, d) = (all.clone(), done.clone());
        g.read(&mut lp, vec![0; 3], move |_, buf, r| match r {
            Ok(n) => {
                a.borrow_mut().extend_from_slice(&buf[..n]);
                Action::Rearm
            }
            Err(ReadError::Eof) => {
                d.set(true);
                Action::Disarm
            }
            Err(er) => panic!("read: {er}"),
        });
        run_until(&mut lp, || done.get());
        assert_eq!(&all.borrow()[..], b"01AB456789xyyzzz++--");
        assert_eq!(std::fs::read(&path).unwrap(), b"01AB456789xyyzzz++--");

        let closed = Rc::new(Cell::new(0));
        for file in [f, g] {
            let c = closed.clone();
            file.close(&mut lp, move |_, r| {
                r.unwrap();
                c.set(c.get() + 1);
            });
        }
        run_until(&mut lp, || closed.get() == 2);
        std::fs::remove_file(&path).unwrap();
    }

    /// Without a thread pool, positional file I/O fails with `NoThreadPool` on
    /// epoll and kqueue (and the queued write behind the failed one too),
    /// and works on io_uring and IOCP; reads at the position work everywhere.
    fn file_without_pool<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        // Readiness backends (epoll, kqueue) have no asynchronous file I/O;
        // io_uring and IOCP (`File::open` opens files for overlapped I/O
        // there) have.
        let epoll = matches!(lp.backend_name(), "epoll" | "kqueue");
        let path = temp_path("no-pool");
        std::fs::write(&path, b"abc").unwrap();
        let f: File<B> = File::open(&path, OpenOptions::new().read(true).write(true)).unwrap();
        let results = Rc::new(RefCell::new(Vec::new()));

        let r_ = results.clone();
        f.pread(&mut lp, vec![0; 8], 0, move |_, _, r| {
            r_.borrow_mut().push(match r {
                Ok(n) => format!("ok {n}"),
                Err(ReadError::NoThreadPool) => "no pool".to_string(),
                Err(e) => format!("error {e}"),
            });
            Action::Disarm
        });
        let r_ = results.clone();
        f.pwrite(&mut lp, b"d".to_vec(), 3, move |_, _, r| {
            r_.borrow_mut().push(match r {
                Ok(n) => format!("ok {n}"),
                Err(WriteError::NoThreadPool) => "no pool".to_string(),
                Err(e) => format!("error {e}"),
            });
            Action::Disarm
        });
        run_until(&mut lp, || results.borrow().len() == 2);
        f.set_queue_offset(4);
        for part in ["e", "f"] {
            let r_ = results.clone();
            f.queue_write(&mut lp, part.as_bytes().to_vec(), move |_, _, r| {
                r_.borrow_mut().push(match r {
                    Ok(n) => format!("ok {n}"),
                    Err(WriteError::NoThreadPool) => "no pool".to_string(),
                    Err(e) => format!("error {e}"),
                });
                Action::Disarm
            });
        }
        run_until(&mut lp, || results.borrow().len() == 4);
        let want = if epoll {
            ["no pool", "no pool", "no pool", "no pool"]
        } else {
            ["ok 3", "ok 1", "ok 1", "ok 1"]
        };
        assert_eq!(*results.borrow(), want);

        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        f.read(&mut lp, vec![0; 8], move |_, buf, r| {
            let n = r.unwrap();
            g.borrow_mut().extend_from_slice(&buf[..n]);
            Action::Disarm
        });
        run_until(&mut lp, || !got.borrow().is_empty());
        assert_eq!(&got.borrow()[..3], b"abc");
        let closed = Rc::new(Cell::new(false));
        let c = closed.clone();
        f.close(&mut lp, move |_, r| {
            r.unwrap();
            c.set(true);
        });
        run_until(&mut lp, || closed.get());
        std::fs::remove_file(&path).unwrap();
    }

    /// Closing a stream cancels the queued writes that have not started, and
    /// dropping one lets them fail with `Canceled` once the write in flight
    /// finishes; `from_fd` rejects non-sockets for `Tcp` (Unix: on Windows
    /// it takes an owned socket, which a pipe's handle cannot be).
    fn close_and_drop_with_queued_writes<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (a, b) = tcp_pair::<B>();
        let results = Rc::new(RefCell::new(Vec::new()));
        for i in 0..3 {
            let r_ = results.clone();
            a.queue_write(&mut lp, vec![i; 10], move |_, _, r| {
                r_.borrow_mut().push((i, r.map_err(|e| e.to_string())));
                Action::Disarm
            });
        }
        // The head may already be in flight; the other two have not started.
        let closed = Rc::new(Cell::new(false));
        let c = closed.clone();
        a.close(&mut lp, move |_, r| {
            r.unwrap();
            c.set(true);
        });
        run_until(&mut lp, || closed.get() && results.borrow().len() == 3);
        {
            let res = results.borrow();
            let canceled = WriteError::Canceled.to_string();
            assert_eq!(res[1], (1, Err(canceled.clone())));
            assert_eq!(res[2], (2, Err(canceled)));
        }

        // `into_fd` hands the watcher back while writes are queued; dropping it
        // then cancels every one (the head had not started: the loop did not
        // run), in order, and closes the socket: the peer sees end of file.
        results.borrow_mut().clear();
        let (c2, d) = tcp_pair::<B>();
        for i in 0..3 {
            let r_ = results.clone();
            c2.queue_write(&mut lp, vec![i; 10], move |_, _, r| {
                r_.borrow_mut().push((i, r.map_err(|e| e.to_string())));
                Action::Rearm // ignored: the watcher is gone
            });
        }
        let c2 = c2.into_fd().expect_err("writes are queued");
        assert_eq!(c2.in_flight(), 3);
        drop(c2);
        run_until(&mut lp, || results.borrow().len() == 3);
        {
            let res = results.borrow();
            let canceled = Err(WriteError::Canceled.to_string());
            assert_eq!(
                *res,
                vec![(0, canceled.clone()), (1, canceled.clone()), (2, canceled)]
            );
        }
        let d = d.into_fd().expect("nothing in flight on d");
        let mut peer = std::net::TcpStream::from(d);
        peer.set_read_timeout(Some(SAFETY_NET)).unwrap();
        assert_eq!(
            peer.read(&mut [0; 32]).unwrap(),
            0,
            "the peer sees end of file"
        );

        // Once its writes are done, `into_fd` takes the descriptor back, open.
        let (e, f) = tcp_pair::<B>();
        let done = Rc::new(Cell::new(false));
        let dn = done.clone();
        e.queue_write(&mut lp, b"kept".to_vec(), move |_, _, r| {
            assert_eq!(r.unwrap(), 4);
            dn.set(true);
            Action::Disarm
        });
        run_until(&mut lp, || done.get());
        let fd = e.into_fd().expect("nothing in flight");
        let got = read_into(&mut lp, &f, 4);
        run_until(&mut lp, || got.borrow().len() == 4);
        assert_eq!(&got.borrow()[..], b"kept");
        #[cfg(unix)]
        let taken_back = Stream::from_fd(fd).unwrap();
        #[cfg(windows)]
        let taken_back = Tcp::from_fd(fd).unwrap().into_stream();
        close_all(&mut lp, vec![taken_back, b.into_stream(), f.into_stream()]);

        #[cfg(unix)]
        {
            let (r, w) = pipe();
            let e = Tcp::<B>::from_fd(r).expect_err("a pipe is not a TCP socket");
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            drop(w);
        }
    }

    // ---------------------------------------------------------------------------
    // Dropping watchers (issue #8): the same on every backend
    // ---------------------------------------------------------------------------

    /// A `Tcp` dropped with a read pending: the read's callback runs once, with
    /// `Canceled` (its `Rearm` ignored); the socket is closed through the loop
    /// (the peer sees end of file); a new descriptor with the same number
    /// works on the same loop.
    #[cfg(unix)]
    fn tcp_dropped_with_read_pending<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (conn, mut peer) = tcp_with_peer::<B>();
        let fd = conn.as_raw_fd();
        let log: Log = Rc::default();
        conn.read(&mut lp, vec![0; 8], record_read(&log));
        // Let the read find nothing and wait in the backend.
        lp.run(RunMode::NoWait).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert!(log.borrow().is_empty());
        drop(conn);
        run_all(&mut lp);
        settle(&mut lp);
        assert_eq!(*log.borrow(), vec![canceled()], "one Canceled callback");
        assert_eof(&mut peer, "dropped with a read pending");
        read_on_reused_number(&mut lp, fd);
    }

    /// A `Tcp` dropped from inside a callback is released right after that
    /// callback returns (the next callback of the same pass finds its read
    /// already canceled); one dropped after its loop was dropped, or never
    /// used with a loop, closes its socket directly.
    fn tcp_dropped_in_callback_or_without_loop<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (conn, mut peer) = tcp_with_peer::<B>();
        let log: Log = Rc::default();
        let read = conn.read(&mut lp, vec![0; 8], record_read(&log));
        lp.run(RunMode::NoWait).unwrap();
        let slot = RefCell::new(Some(conn));
        lp.add(Op::Noop, move |_, _, _| {
            drop(slot.borrow_mut().take());
            Action::Disarm
        });
        let next = Rc::new(RefCell::new(None));
        let n = next.clone();
        lp.add(Op::Noop, move |lp, _, _| {
            *n.borrow_mut() = Some(lp.cancel(read));
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(
            *next.borrow(),
            Some(Err(CancelError::AlreadyFinished)),
            "the read was canceled before the next callback"
        );
        run_all(&mut lp);
        settle(&mut lp);
        assert_eq!(*log.borrow(), vec![canceled()], "one Canceled callback");
        assert_eof(&mut peer, "dropped in a callback");

        // The loop goes first (with the read pending); then the watcher.
        let (conn, mut peer) = tcp_with_peer::<B>();
        {
            let mut lp2 = new_loop::<B>(false);
            conn.read(&mut lp2, vec![0; 8], |_, _, _| panic!("never runs"));
            lp2.run(RunMode::NoWait).unwrap();
            assert_eq!(conn.in_flight(), 1);
        }
        assert_eq!(conn.in_flight(), 0, "the loop's drop ended the read");
        drop(conn);
        assert_eof(&mut peer, "dropped after its loop");

        // Never used with a loop.
        let (conn, mut peer) = tcp_with_peer::<B>();
        drop(conn);
        assert_eof(&mut peer, "dropped unused");

        // The loop is dropped once the watcher's close is queued, before it
        // started: the loop's drop closes the socket.
        let (conn, mut peer) = tcp_with_peer::<B>();
        {
            let mut lp3 = new_loop::<B>(false);
            let log: Log = Rc::default();
            conn.read(&mut lp3, vec![0; 8], record_read(&log));
            lp3.run(RunMode::NoWait).unwrap();
            drop(conn);
            // The read's `Canceled` runs (and queues the close) in a pass.
            while log.borrow().is_empty() {
                lp3.run(RunMode::Once).unwrap();
            }
        }
        assert_eof(&mut peer, "loop dropped with the close queued");
    }

    /// A pipe `Stream` dropped with a read pending: one `Canceled`, the read
    /// end is closed through the loop (writing to the pipe fails with EPIPE),
    /// and its number works again; one dropped after its loop closes directly.
    #[cfg(unix)]
    fn stream_dropped_with_read_pending<B: Backend>() {
        let mut lp = new_loop::<B>(false);
        let (r, w) = pipe();
        let r: Stream<B> = Stream::from_fd(r).unwrap();
        let mut w = std::fs::File::from(w);
        let fd = r.fd();
        let log: Log = Rc::default();
        r.read(&mut lp, vec![0; 8], record_read(&log));
        lp.run(RunMode::NoWait).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert!(log.borrow().is_empty());
        drop(r);
        run_all(&mut lp);
        settle(&mut lp);
        assert_eq!(*log.borrow(), vec![canceled()], "one Canceled callback");
        let e = w.write(b"x").expect_err("the read end is closed");
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
        read_on_reused_number(&mut lp, fd);

        let (r, w) = pipe();
        let r: Stream<B> = Stream::from_fd(r).unwrap();
        let mut w = std::fs::File::from(w);
        {
            let mut lp2 = new_loop::<B>(false);
            r.read(&mut lp2, vec![0; 8], |_, _, _| panic!("never runs"));
            lp2.run(RunMode::NoWait).unwrap();
        }
        drop(r);
        assert_read_end_closes(&mut w);
    }

    /// A `File` dropped with requests added (a read, a pread and two queued
    /// writes): each callback runs once, with `Canceled`, nothing is written,
    /// and the file is closed through the loop; one dropped after its loop
    /// closes directly.
    #[cfg(unix)]
    fn file_dropped_with_requests_pending<B: Backend>() {
        let mut lp = new_loop::<B>(true);
        let path = temp_path("drop");
        let open = || {
            File::<B>::open(
                &path,
                OpenOptions::new().read(true).write(true).create(true),
            )
            .unwrap()
        };
        let f = open();
        let fd = f.fd();
        let id = identity(fd);
        assert!(id.is_some());
        let log: Log = Rc::default();
        f.read(&mut lp, vec![0; 8], record_read(&log));
        f.pread(&mut lp, vec![0; 8], 0, record_read(&log));
        for i in 0..2u8 {
            let l = log.clone();
            f.queue_write(&mut lp, vec![i; 4], move |_, _, res| {
                l.borrow_mut().push(res.map_err(|e| e.to_string()));
                Action::Rearm
            });
        }
        assert_eq!(f.in_flight(), 4);
        let f = f.into_std().expect_err("requests are in flight");
        // Dropped before the loop started them: they never run.
        drop(f);
        run_all(&mut lp);
        settle(&mut lp);
        let w = Err(WriteError::Canceled.to_string());
        assert_eq!(*log.borrow(), vec![canceled(), canceled(), w.clone(), w]);
        assert_ne!(identity(fd), id, "the file is closed");
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            0,
            "nothing written"
        );
        read_on_reused_number(&mut lp, fd);

        let f = open();
        let (fd, id) = (f.fd(), identity(f.fd()));
        {
            let mut lp2 = new_loop::<B>(true);
            f.pread(&mut lp2, vec![0; 8], 0, |_, _, _| panic!("never runs"));
        }
        drop(f);
        assert_ne!(identity(fd), id, "the file is closed");
        std::fs::remove_file(&path).unwrap();
    }
);
