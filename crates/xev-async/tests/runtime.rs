//! The async layer on every backend (`tests/support/harness.rs` of the xev
//! crate): tasks (spawn, join, abort, panics, yield), time (sleep,
//! timeout, interval), TCP, UDP and files, cancellation by dropping a
//! future for each kind of operation, work handed over from another
//! thread, dropping a runtime with work in flight, and backpressure.

// WASI preview 1 has no sockets: the socket scenarios and what only they
// use are left out there.
#![cfg_attr(
    all(target_os = "wasi", target_env = "p1"),
    allow(unused_imports, dead_code)
)]

#[path = "../../xev/tests/support/harness.rs"]
#[macro_use]
mod harness;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use xev::backend::Backend;
use xev::Options;
#[cfg(not(target_os = "wasi"))]
use xev::ThreadPool;
use xev_async::Notify;
use xev_async::{interval, sleep, spawn, timeout, yield_now, File, IoBuf, JoinError, Runtime};
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
use xev_async::{TcpListener, TcpStream, UdpSocket};

fn rt<B: Backend>() -> Runtime<B> {
    Runtime::<B>::with_options(Options::default()).expect("a runtime")
}

/// A runtime with a thread pool; on WASI, which has no threads, one
/// without (files run inline there).
fn rt_with_pool<B: Backend>() -> Runtime<B> {
    #[cfg(target_os = "wasi")]
    return rt::<B>();
    #[cfg(not(target_os = "wasi"))]
    Runtime::<B>::with_options(Options {
        thread_pool: Some(ThreadPool::new(Default::default()).unwrap()),
        ..Options::default()
    })
    .expect("a runtime")
}

/// A file name for a test: in the system's temporary directory; on WASI
/// (no temporary directory, no process ids) in the current directory, the
/// one the runner preopens (`wasmtime run --dir .`). Unique per call:
/// `dynamic` reports the backend it picked, so the backend's name alone
/// would clash between instances running side by side.
fn scratch_path(tag: &str, backend: &str) -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    if cfg!(target_os = "wasi") {
        std::path::PathBuf::from(format!("xev-async-{tag}-{backend}-{n}"))
    } else {
        std::env::temp_dir().join(format!(
            "xev-async-{tag}-{}-{backend}-{n}",
            std::process::id()
        ))
    }
}

/// A task that waits on `n` (not set) stays waiting through a turn of
/// the loop and is woken by the next notification.
async fn a_waiter_waits_for_the_next_notification(n: &Notify) {
    let waiter = {
        let n = n.clone();
        spawn(async move { n.notified().await })
    };
    yield_now().await;
    assert!(!waiter.is_finished(), "nothing was sent for it");
    n.notify().unwrap();
    waiter.await.unwrap().unwrap();
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
/// A connected TCP pair on the loopback: (client, server).
async fn connected() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(local()).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
/// After a canceled or dropped read: the server still reads what the
/// client writes next, into a new counted buffer.
async fn still_reads(client: &TcpStream, server: &TcpStream, drops: &Rc<Cell<usize>>) {
    let (r, _) = client.write_all(b"after".as_slice()).await;
    r.unwrap();
    let (r, got) = server
        .read(Counted(Vec::with_capacity(64), drops.clone()))
        .await;
    assert_eq!((r.unwrap(), &got.0[..]), (5, &b"after"[..]));
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// `SIGPIPE` blocked in the calling thread while it lives: a `SIGPIPE`
/// raised for this thread then stays pending (a blocked signal is kept
/// even when its disposition is to ignore it, as in Rust programs), so a
/// test can see whether one was raised. Restores the mask (taking a
/// pending `SIGPIPE` first) when dropped.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
struct SigpipeBlocked {
    old: libc::sigset_t,
}

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
impl SigpipeBlocked {
    fn pipe_set() -> libc::sigset_t {
        // SAFETY: sigemptyset/sigaddset initialize the zeroed set they get.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            set
        }
    }

    fn new() -> SigpipeBlocked {
        let set = Self::pipe_set();
        // SAFETY: valid sets; this thread's mask only.
        unsafe {
            let mut old: libc::sigset_t = std::mem::zeroed();
            assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old), 0);
            SigpipeBlocked { old }
        }
    }

    /// Whether a `SIGPIPE` is pending (for this thread or the process).
    fn pending(&self) -> bool {
        // SAFETY: sigpending fills the zeroed set it gets.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            assert_eq!(libc::sigpending(&mut set), 0);
            libc::sigismember(&set, libc::SIGPIPE) == 1
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        let set = Self::pipe_set();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid sets and timeout; takes a pending SIGPIPE (if any)
        // without waiting, then restores this thread's mask.
        unsafe {
            while self.pending() && libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) > 0 {}
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

/// A waker that does nothing (for polling a future by hand).
struct Noop;

impl std::task::Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// Counts its drops.
struct Dropped(Rc<Cell<usize>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A vector that counts its drops, lent as a buffer.
struct Counted(Vec<u8>, Rc<Cell<usize>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.set(self.1.get() + 1);
    }
}

// SAFETY: delegates to the vector.
unsafe impl xev_async::IoBuf for Counted {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.len()
    }
    fn bytes_total(&self) -> usize {
        self.0.capacity()
    }
}

// SAFETY: delegates to the vector.
unsafe impl xev_async::IoBufMut for Counted {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: per the caller.
        unsafe { xev_async::IoBufMut::set_init(&mut self.0, pos) }
    }
}

for_each_backend!(
    fn tasks_join_abort_and_panic<B: Backend>() {
        let rt = rt::<B>();
        let order = Rc::new(RefCell::new(Vec::new()));
        let o = order.clone();
        let out = rt.block_on(async move {
            let (o1, o2) = (o.clone(), o.clone());
            let a = spawn(async move {
                o1.borrow_mut().push("a1");
                yield_now().await;
                o1.borrow_mut().push("a2");
                1
            });
            let b = spawn(async move {
                o2.borrow_mut().push("b1");
                yield_now().await;
                o2.borrow_mut().push("b2");
                2
            });
            let forever = spawn(async {
                sleep(Duration::from_secs(3600)).await;
                unreachable!("aborted first")
            });
            // A panicking task (where panics unwind: WASI builds abort).
            #[cfg(panic = "unwind")]
            let panics = spawn(async {
                yield_now().await;
                panic!("on purpose")
            });
            forever.abort();
            let sum = a.await.unwrap() + b.await.unwrap();
            assert!(matches!(forever.await, Err(JoinError::Cancelled)));
            #[cfg(panic = "unwind")]
            assert!(matches!(panics.await, Err(JoinError::Panicked(_))));
            sum
        });
        assert_eq!(out, 3);
        // Tasks take turns at each yield.
        assert_eq!(*order.borrow(), vec!["a1", "b1", "a2", "b2"]);
        assert_eq!(rt.ops_in_flight(), 0, "the aborted sleep was canceled");
    }

    /// A sleep dropped from inside a loop callback (where the loop is
    /// busy) stops its timer before the loop runs next: the loop holds no
    /// more than before it started, and the runtime nothing.
    fn a_sleep_dropped_in_a_loop_callback_stops_its_timer<B: Backend>() {
        let rt = rt::<B>();
        let before = rt.with_loop(|lp| lp.active());
        let held: Rc<RefCell<Option<Pin<Box<xev_async::Sleep>>>>> = Rc::default();
        let h = held.clone();
        rt.block_on(async move {
            let mut s = Box::pin(sleep(Duration::from_secs(3600)));
            // Started by one poll, then handed to the callback below.
            let started =
                std::future::poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx).is_pending())).await;
            assert!(started);
            *h.borrow_mut() = Some(s);
        });
        assert_eq!(rt.ops_in_flight(), 1);
        assert_eq!(rt.with_loop(|lp| lp.active()), before + 1);
        let h = held.clone();
        let dropped = Rc::new(Cell::new(false));
        let d = dropped.clone();
        rt.with_loop(|lp| {
            lp.add(xev::Op::Noop, move |_, _, _| {
                h.borrow_mut().take();
                d.set(true);
                xev::Action::Disarm
            })
        });
        rt.block_on(async {
            while !dropped.get() {
                yield_now().await;
            }
            // One more turn: the stop deferred by the callback is made.
            yield_now().await;
        });
        assert_eq!(rt.ops_in_flight(), 0);
        assert_eq!(rt.with_loop(|lp| lp.active()), before);
    }

    fn sleep_timeout_and_interval<B: Backend>() {
        let rt = rt::<B>();
        let before = rt.with_loop(|lp| lp.active());
        rt.block_on(async {
            let t0 = Instant::now();
            sleep(Duration::from_millis(20)).await;
            assert!(t0.elapsed() >= Duration::from_millis(20));
            // The timer wins: the inner sleep is dropped (canceled).
            let r = timeout(Duration::from_millis(1), sleep(Duration::from_secs(3600))).await;
            assert!(r.is_err());
            // The future wins.
            assert_eq!(timeout(Duration::from_secs(3600), async { 7 }).await, Ok(7));
            let mut iv = interval(Duration::from_millis(5));
            let first = iv.tick().await;
            let second = iv.tick().await;
            assert!(second >= first + Duration::from_millis(5));
        });
        assert_eq!(rt.ops_in_flight(), 0);
        // The sleeps that lost their race were stopped, not left pending.
        assert_eq!(rt.with_loop(|lp| lp.active()), before);
    }

    /// A sleep whose deadline has been reached when it is first polled
    /// (`sleep_until` of an instant just passed, `sleep(0)`) completes at
    /// the loop's next turn, not at the next millisecond; and a task that
    /// yields runs once per turn of the loop (`yield_now`'s promise), so
    /// that it can count the turns the sleep takes. Rounding such a
    /// deadline up to the next millisecond (as one build did) lets the
    /// loop turn hundreds of times first, and a runtime that reran a
    /// yielding task within one round counted 1,024 turns; the count does
    /// not depend on the machine's speed.
    fn reached_deadlines_fire_at_the_next_turn<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let turns = Rc::new(Cell::new(0u32));
            let done = Rc::new(Cell::new(false));
            let (t, d) = (turns.clone(), done.clone());
            let counter = spawn(async move {
                while !d.get() {
                    t.set(t.get() + 1);
                    yield_now().await;
                }
            });
            for round in 0..20 {
                let before = turns.get();
                if round % 2 == 0 {
                    xev_async::sleep_until(Instant::now()).await;
                } else {
                    sleep(Duration::ZERO).await;
                }
                let took = turns.get() - before;
                assert!(took <= 3, "round {round}: {took} loop turns");
            }
            done.set(true);
            counter.await.unwrap();
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    fn tcp_echo_between_tasks<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let listener = TcpListener::bind(local()).unwrap();
            let addr = listener.local_addr().unwrap();
            let server = spawn(async move {
                let (conn, peer) = listener.accept().await.unwrap();
                assert_eq!(peer, conn.peer_addr().unwrap());
                let mut buf = Vec::with_capacity(4096);
                let mut total = 0;
                loop {
                    buf.clear();
                    let (r, b) = conn.read(buf).await;
                    let n = r.unwrap();
                    assert_eq!(b.len(), n, "the read set the length");
                    if n == 0 {
                        break;
                    }
                    let (r, b) = conn.write_all(b).await;
                    r.unwrap();
                    total += n;
                    buf = b;
                }
                total
            });
            let client = TcpStream::connect(addr).await.unwrap();
            let mut sent = Vec::new();
            for i in 0..100u32 {
                let msg = format!("message {i}\n").into_bytes();
                sent.extend_from_slice(&msg);
                let (r, _) = client.write_all(msg).await;
                r.unwrap();
            }
            let (r, got) = client
                .read_exact(vec![0; sent.len()].into_boxed_slice())
                .await;
            r.unwrap();
            assert_eq!(&*got, &sent[..]);
            client.shutdown(Shutdown::Write).await.unwrap();
            let (r, _) = client.read(Vec::with_capacity(16)).await;
            assert_eq!(r.unwrap(), 0, "end of stream after the server closed");
            assert_eq!(server.await.unwrap(), sent.len());
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }

    /// Many request / response connections at once: each round of the
    /// runtime runs several tasks, whose answers (on io_uring) go to the
    /// loop in one batch instead of being sent at once. Every answer
    /// arrives whole and in order.
    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    fn many_tasks_answer_in_one_round<B: Backend>() {
        const CONNS: usize = 8;
        const ROUNDS: u32 = 200;
        let rt = rt::<B>();
        rt.block_on(async {
            let listener = TcpListener::bind(local()).unwrap();
            let addr = listener.local_addr().unwrap();
            let server = spawn(async move {
                let mut echoes = Vec::new();
                for _ in 0..CONNS {
                    let (conn, _) = listener.accept().await.unwrap();
                    echoes.push(spawn(async move {
                        let mut buf = Vec::with_capacity(64);
                        let mut answered = 0u32;
                        loop {
                            buf.clear();
                            let (r, b) = conn.read(buf).await;
                            if r.unwrap() == 0 {
                                return answered;
                            }
                            let (r, b) = conn.write_all(b).await;
                            r.unwrap();
                            answered += 1;
                            buf = b;
                        }
                    }));
                }
                let mut answered = 0;
                for e in echoes {
                    answered += e.await.unwrap();
                }
                answered
            });
            let mut clients = Vec::new();
            for c in 0..CONNS {
                clients.push(spawn(async move {
                    let conn = TcpStream::connect(addr).await.unwrap();
                    for i in 0..ROUNDS {
                        let msg = format!("{c}:{i};").into_bytes();
                        let (r, msg) = conn.write_all(msg).await;
                        r.unwrap();
                        let (r, got) = conn.read_exact(Vec::with_capacity(msg.len())).await;
                        r.unwrap();
                        assert_eq!(got, msg, "connection {c}, request {i}");
                    }
                    conn.shutdown(Shutdown::Write).await.unwrap();
                }));
            }
            for c in clients {
                c.await.unwrap();
            }
            assert_eq!(server.await.unwrap(), CONNS as u32 * ROUNDS);
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    fn connect_by_name<B: Backend>() {
        let rt = rt_with_pool::<B>();
        rt.block_on(async {
            let listener = TcpListener::bind(local()).unwrap();
            let port = listener.local_addr().unwrap().port();
            // WASI has no resolver the loop can run off its one thread: a
            // name is Unsupported there, at once.
            if cfg!(target_os = "wasi") {
                let e = TcpStream::connect_to(&format!("localhost:{port}"))
                    .await
                    .err()
                    .unwrap();
                assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e:?}");
                return;
            }
            let accepted = spawn(async move { listener.accept().await.map(|(_, a)| a) });
            let s = TcpStream::connect_to(&format!("localhost:{port}"))
                .await
                .unwrap();
            assert_eq!(accepted.await.unwrap().unwrap(), s.local_addr().unwrap());
            let missing = format!("{}.invalid:80", "a".repeat(64));
            let e = TcpStream::connect_to(&missing).await.err().unwrap();
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e:?}");
            let e = TcpStream::connect_to("no-port").await.err().unwrap();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e:?}");
        });
    }

    /// A signal raised at the process completes `recv` (Unix: wine cannot
    /// raise console events). The instances take turns: signals are
    /// process-wide.
    #[cfg(unix)]
    fn signals_are_awaited<B: Backend>() {
        static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _t = TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rt = rt::<B>();
        rt.block_on(async {
            let mut s = xev_async::Signals::new(libc::SIGUSR1).unwrap();
            // SAFETY: raise with a valid signal; xev's handler is in place.
            unsafe { libc::raise(libc::SIGUSR1) };
            let mut got = s.recv().await.unwrap();
            // Two more, awaited from a task while this one sleeps.
            let waiter = spawn(async move {
                let mut n = 0;
                while n < 2 {
                    n += s.recv().await.unwrap();
                }
                n
            });
            yield_now().await;
            // SAFETY: as above.
            unsafe {
                libc::raise(libc::SIGUSR1);
                libc::raise(libc::SIGUSR1);
            }
            got += waiter.await.unwrap();
            assert_eq!(got, 3);
            assert!(xev_async::Signals::new(libc::SIGKILL).is_err());
        });
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    fn split_halves_in_two_tasks<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let listener = TcpListener::bind(local()).unwrap();
            let addr = listener.local_addr().unwrap();
            // The peer, an echo of five bytes, is a task too.
            let peer = spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                let (r, buf) = s.read_exact(vec![0; 5].into_boxed_slice()).await;
                r.unwrap();
                let (r, _) = s.write_all(buf).await;
                r.unwrap();
            });
            let (rd, wr) = TcpStream::connect(addr).await.unwrap().into_split();
            let reader = spawn(async move { rd.read_exact(vec![0; 5].into_boxed_slice()).await });
            let (r, _) = wr.write_all(b"hello".to_vec()).await;
            r.unwrap();
            let (r, got) = reader.await.unwrap();
            r.unwrap();
            assert_eq!(&*got, b"hello");
            peer.await.unwrap();
        });
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    fn udp_round_trip<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let a = UdpSocket::bind(local()).unwrap();
            let b = UdpSocket::bind(local()).unwrap();
            let (r, _) = a.send_to(b"ping".to_vec(), b.local_addr().unwrap()).await;
            assert_eq!(r.unwrap(), 4);
            let (r, buf) = b.recv_from(Vec::with_capacity(16)).await;
            let (n, from) = r.unwrap();
            assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
        });
    }

    /// A task whose socket is always ready (datagrams into a socket nobody
    /// reads: every send succeeds at once, without the loop on Unix) still
    /// lets the loop and the other tasks run: a poll of a task completes
    /// only so many operations at once, then waits for the loop.
    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    fn an_always_ready_socket_does_not_starve_the_others<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let a = UdpSocket::bind(local()).unwrap();
            let sink = UdpSocket::bind(local()).unwrap();
            let to = sink.local_addr().unwrap();
            let stop = Rc::new(Cell::new(false));
            let sent = Rc::new(Cell::new(0u64));
            let (s, n) = (stop.clone(), sent.clone());
            let flood = spawn(async move {
                while !s.get() {
                    // A full receive buffer drops datagrams (or, on some
                    // systems, fails the send): either way it goes on.
                    let _ = a.send_to(b"x", to).await;
                    n.set(n.get() + 1);
                }
            });
            let other = spawn(async { 7 });
            // The timer and the other task need the loop and the runtime.
            sleep(Duration::from_millis(1)).await;
            assert_eq!(other.await.unwrap(), 7);
            stop.set(true);
            flood.await.unwrap();
            assert!(sent.get() > 0);
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }

    fn file_round_trip<B: Backend>() {
        let rt = rt_with_pool::<B>();
        let path = scratch_path("file", rt.backend_name());
        rt.block_on(async {
            let f = File::create(&path).await.unwrap();
            let (r, _) = f.write_all_at(b"0123456789".to_vec(), 0).await;
            r.unwrap();
            let (r, _) = f.write_all_at(b"abc".to_vec(), 10).await;
            r.unwrap();
            f.sync_all().await.unwrap();
            assert_eq!(f.metadata().await.unwrap().size, 13);
            let g = File::open_read(&path).await.unwrap();
            let (r, buf) = g.read_at(Vec::with_capacity(8), 5).await;
            let n = r.unwrap();
            assert_eq!(&buf[..n], b"56789abc");
            let (r, _) = g.read_at(Vec::with_capacity(8), 13).await;
            assert_eq!(r.unwrap(), 0, "at the end");
        });
        std::fs::remove_file(&path).unwrap();
    }

    /// Writes to a peer that closed its end fail (`ECONNRESET`, then
    /// `EPIPE`) without raising `SIGPIPE`, as the loop's sends do,
    /// also when it is made at once (the eager send, which these writes
    /// take while the socket has room).
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    fn writes_to_a_closed_peer_fail_without_sigpipe<B: Backend>() {
        let blocked = SigpipeBlocked::new();
        let rt = rt::<B>();
        let err = rt.block_on(async {
            let listener = TcpListener::bind(local()).unwrap();
            let addr = listener.local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (conn, _) = listener.accept().await.unwrap();
            // Closed through the loop, which runs at the yields below.
            drop(conn);
            // The first failing write reports the peer's reset; the
            // writes after it find the connection shut: `EPIPE`, with
            // `SIGPIPE` unless the send asked for none.
            loop {
                let (r, _) = client.write(b"ping" as &'static [u8]).await;
                match r {
                    Ok(n) => assert_eq!(n, 4),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    Err(e) => break e,
                }
                yield_now().await;
            }
        });
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err:?}");
        assert!(
            !blocked.pending(),
            "a write to a closed peer raised SIGPIPE"
        );
        assert_eq!(rt.ops_in_flight(), 0);
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    /// Dropping a future cancels its operation (accept, read): nothing is
    /// left in flight afterwards, and the socket still works. The buffer
    /// stays with the loop until the kernel lets go (ASan and Miri check
    /// that nothing is freed early or leaked).
    fn dropped_futures_cancel_tcp_operations<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let listener = TcpListener::bind(local()).unwrap();
            let addr = listener.local_addr().unwrap();
            assert!(timeout(Duration::from_millis(1), listener.accept())
                .await
                .is_err());
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            // Nothing to read yet: the read is canceled.
            assert!(timeout(
                Duration::from_millis(1),
                server.read(Vec::with_capacity(64))
            )
            .await
            .is_err());
            // The stream still works afterwards.
            let (r, _) = client.write_all(b"after".to_vec()).await;
            r.unwrap();
            let (r, got) = server.read_exact(vec![0; 5].into_boxed_slice()).await;
            r.unwrap();
            assert_eq!(&*got, b"after");
            // A future dropped before its first poll never starts.
            drop(server.read(Vec::with_capacity(8)));
            for _ in 0..3 {
                yield_now().await;
            }
        });
        assert_eq!(rt.ops_in_flight(), 0, "every canceled operation ended");
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    /// The same for a UDP receive, a timer and a file read on the pool.
    fn dropped_futures_cancel_udp_timer_and_file_operations<B: Backend>() {
        let rt = rt_with_pool::<B>();
        let path = scratch_path("cancel", rt.backend_name());
        std::fs::write(&path, b"data").unwrap();
        rt.block_on(async {
            let u = UdpSocket::bind(local()).unwrap();
            assert!(timeout(
                Duration::from_millis(1),
                u.recv_from(Vec::with_capacity(64))
            )
            .await
            .is_err());
            assert!(
                timeout(Duration::from_millis(1), sleep(Duration::from_secs(60)))
                    .await
                    .is_err()
            );
            // A file read dropped before the loop ran it.
            let f = File::open_read(&path).await.unwrap();
            let mut read = Box::pin(f.read_at(Vec::with_capacity(4), 0));
            let waker = std::task::Waker::from(Arc::new(Noop));
            let _ = read
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker));
            drop(read);
            let (r, buf) = f.read_at(Vec::with_capacity(4), 0).await;
            assert_eq!((r.unwrap(), &buf[..]), (4, &b"data"[..]));
            for _ in 0..3 {
                yield_now().await;
            }
        });
        assert_eq!(rt.ops_in_flight(), 0, "every canceled operation ended");
        std::fs::remove_file(&path).unwrap();
    }

    fn work_from_another_thread<B: Backend>() {
        let rt = rt::<B>();
        let remote = rt.remote();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let t = std::thread::spawn(move || {
            for _ in 0..10 {
                let h = h.clone();
                remote.spawn(async move {
                    h.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        let h = hits.clone();
        rt.block_on(async move {
            while h.load(Ordering::SeqCst) < 10 {
                sleep(Duration::from_millis(1)).await;
            }
        });
        t.join().unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 10);
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    /// A runtime dropped with tasks waiting on operations drops their
    /// futures (once each) and cancels the operations.
    fn dropping_the_runtime_drops_its_tasks<B: Backend>() {
        let drops = Rc::new(Cell::new(0));
        {
            let rt = rt::<B>();
            let listener = TcpListener::bind(local()).unwrap();
            for _ in 0..3 {
                let d = Dropped(drops.clone());
                rt.spawn(async move {
                    let _d = d;
                    sleep(Duration::from_secs(3600)).await;
                });
            }
            let d = Dropped(drops.clone());
            rt.spawn(async move {
                let _d = d;
                let _ = listener.accept().await;
            });
            rt.block_on(yield_now());
            assert_eq!(rt.ops_in_flight(), 4);
        }
        assert_eq!(drops.get(), 4);
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    /// Every kind of buffer over TCP: writes from a static slice, a vector,
    /// a boxed slice and a sub-range; reads into a vector's spare capacity
    /// (appending to what it holds), a boxed slice (from its start) and a
    /// sub-range of a vector (over bytes it already had).
    fn every_buffer_kind_over_tcp<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let listener = TcpListener::bind(local()).unwrap();
            let addr = listener.local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();

            let (r, back) = client.write_all(b"static|".as_slice()).await;
            r.unwrap();
            assert_eq!(back, b"static|");
            let (r, _) = client.write_all(b"vec|".to_vec()).await;
            r.unwrap();
            let (r, _) = client
                .write_all(b"boxed|".to_vec().into_boxed_slice())
                .await;
            r.unwrap();
            let (r, part) = client.write_all(b"xxsliceyy".to_vec().slice(2..7)).await;
            r.unwrap();
            assert_eq!(
                part.into_inner(),
                b"xxsliceyy",
                "the whole vector comes back"
            );
            let total = b"static|vec|boxed|slice".len();

            // A vector with a prefix: the read appends after it.
            let mut v = Vec::with_capacity(7 + 64);
            v.extend_from_slice(b"prefix:");
            let (r, v) = server.read_exact(v.slice(7..7 + 7)).await;
            r.unwrap();
            let v = v.into_inner();
            assert_eq!(v, b"prefix:static|");
            // A boxed slice is filled from its start.
            let (r, boxed) = server.read_exact(vec![b'-'; 4].into_boxed_slice()).await;
            r.unwrap();
            assert_eq!(&*boxed, b"vec|");
            // A sub-range over initialized bytes is overwritten in place.
            let (r, part) = server.read_exact(b"AAAAAAAAAAA".to_vec().slice(0..6)).await;
            r.unwrap();
            assert_eq!(part.into_inner(), b"boxed|AAAAA");
            // Spare capacity: the length grows by the count.
            let mut rest = Vec::with_capacity(64);
            while rest.len() < total - 17 {
                let before = rest.len();
                let (r, b) = server.read(rest).await;
                assert_eq!(b.len(), before + r.unwrap(), "the length grew by the count");
                rest = b;
            }
            assert_eq!(rest, b"slice");
            // A full vector has no room: the read returns 0 at once.
            let (r, full) = server.read(vec![1u8; 4]).await;
            assert_eq!((r.unwrap(), full), (0, vec![1u8; 4]));
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    /// Vectored I/O: a gather write of several buffers (resumed where a
    /// short write stopped) and scatter reads that fill buffers in order,
    /// each vector's length growing by its share.
    fn vectored_reads_and_writes<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let (client, server) = connected().await;
            let parts = vec![
                b"gather".to_vec(),
                Vec::new(),
                b"|write|".to_vec(),
                vec![b'z'; 9000],
            ];
            let all = parts.concat();
            let (r, back) = client.write_all_vectored(parts).await;
            r.unwrap();
            assert_eq!(back.concat(), all, "the buffers come back whole");
            let mut got = Vec::new();
            while got.len() < all.len() {
                let bufs = vec![Vec::with_capacity(3), Vec::new(), Vec::with_capacity(4096)];
                let (r, bufs) = server.read_vectored(bufs).await;
                let n = r.unwrap();
                assert!(n > 0);
                assert_eq!(bufs.iter().map(Vec::len).sum::<usize>(), n);
                if !bufs[2].is_empty() {
                    assert_eq!(bufs[0].len(), 3, "the first buffer fills first");
                }
                got.extend(bufs.concat());
            }
            assert_eq!(got, all);
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    /// A stream the loop has waited on leaves the runtime as a `std`
    /// stream (`into_std`), works as one, and is closed behind the loop's
    /// back; a socket that then gets the same descriptor number works with
    /// the loop, which waits for it afresh; a stream comes in from an owned
    /// descriptor (`from_fd`).
    fn sockets_leave_the_runtime_as_std<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let listener = TcpListener::bind(local()).unwrap();
            let addr = listener.local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            // The loop waits on the client once (a read before the data).
            let rd = spawn(async move {
                let (r, _) = client.read(Vec::with_capacity(8)).await;
                (r.unwrap(), client)
            });
            yield_now().await;
            let (r, _) = server.write_all(b"x".as_slice()).await;
            r.unwrap();
            let (n, client) = rd.await.unwrap();
            assert_eq!(n, 1);
            let mut std_client = client.into_std().unwrap();
            std_client.write_all(b"std").unwrap();
            let (r, got) = server.read_exact(vec![0; 3].into_boxed_slice()).await;
            r.unwrap();
            assert_eq!(&*got, b"std");
            drop(std_client);
            // A new connection, probably on the number just freed, reads
            // before anything is sent: the loop must wait for it.
            let again = TcpStream::connect(addr).await.unwrap();
            let (peer, _) = listener.accept().await.unwrap();
            let reader =
                spawn(async move { again.read_exact(vec![0; 5].into_boxed_slice()).await });
            yield_now().await;
            let (r, _) = peer.write_all(b"again".as_slice()).await;
            r.unwrap();
            let (r, got) = reader.await.unwrap();
            r.unwrap();
            assert_eq!(&*got, b"again");
            // And in from an owned descriptor.
            #[cfg(unix)]
            {
                let fd = std::os::fd::OwnedFd::from(std::net::TcpStream::connect(addr).unwrap());
                let from_fd = TcpStream::from_fd(fd).unwrap();
                let (peer, _) = listener.accept().await.unwrap();
                let (r, _) = from_fd.write_all(b"fd".as_slice()).await;
                r.unwrap();
                let (r, got) = peer.read_exact(vec![0; 2].into_boxed_slice()).await;
                r.unwrap();
                assert_eq!(&*got, b"fd");
            }
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    /// `write_all` and `read_exact` across many short transfers: 4 MiB
    /// through loopback, written from one vector (each write sends the
    /// rest of it from an offset) and read into one vector's spare
    /// capacity, byte for byte.
    fn large_transfers_resume_from_offsets<B: Backend>() {
        const LEN: usize = 4 << 20;
        let rt = rt::<B>();
        rt.block_on(async {
            let listener = TcpListener::bind(local()).unwrap();
            let addr = listener.local_addr().unwrap();
            let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
            let expect = data.clone();
            let writer = spawn(async move {
                let (conn, _) = listener.accept().await.unwrap();
                let (r, data) = conn.write_all(data).await;
                r.unwrap();
                data.len()
            });
            let client = TcpStream::connect(addr).await.unwrap();
            let (r, got) = client
                .read_exact(Vec::with_capacity(LEN).slice(..LEN))
                .await;
            r.unwrap();
            assert_eq!(writer.await.unwrap(), LEN);
            assert!(got.into_inner() == expect, "the bytes arrived in order");
        });
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    /// A read that finished in the loop but whose future is dropped before
    /// it is polled again (its count is kept for it, its buffer held by
    /// the future) drops its buffer exactly once, at the drop, and leaves
    /// nothing in flight; the socket works on.
    fn a_finished_read_dropped_unpolled_drops_its_buffer_once<B: Backend>() {
        /// Counts its wakes.
        struct Flag(AtomicUsize);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Rc::new(Cell::new(0));
        let rt = rt::<B>();
        let (d, rtr) = (drops.clone(), &rt);
        rt.block_on(async move {
            let (client, server) = connected().await;
            let flag = Arc::new(Flag(AtomicUsize::new(0)));
            let waker = std::task::Waker::from(flag.clone());
            let mut read = Box::pin(server.read(Counted(Vec::with_capacity(64), d.clone())));
            let first = read
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker));
            assert!(first.is_pending(), "nothing to read yet");
            let (r, _) = client.write_all(b"lost".as_slice()).await;
            r.unwrap();
            // The loop completes the read and wakes its waker.
            while flag.0.load(Ordering::SeqCst) == 0 {
                yield_now().await;
            }
            assert_eq!(d.get(), 0, "held by the future until it goes");
            assert_eq!(rtr.ops_in_flight(), 1, "the count waits for the future");
            drop(read);
            assert_eq!(d.get(), 1, "dropped with the future, once");
            assert_eq!(rtr.ops_in_flight(), 0);
            still_reads(&client, &server, &d).await;
        });
        assert_eq!(rt.ops_in_flight(), 0);
        assert_eq!(drops.get(), 2, "each buffer dropped once");
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    /// A read whose future is dropped keeps its buffer until the loop
    /// reports the operation over, then drops it exactly once; the socket
    /// then works with a new buffer. (The buffer type counts its drops.)
    fn a_canceled_read_drops_its_buffer_once<B: Backend>() {
        let drops = Rc::new(Cell::new(0));
        let rt = rt::<B>();
        let (d, rtr) = (drops.clone(), &rt);
        rt.block_on(async move {
            let (client, server) = connected().await;
            let buf = Counted(Vec::with_capacity(64), d.clone());
            assert!(timeout(Duration::from_millis(1), server.read(buf))
                .await
                .is_err());
            // The loop still holds the buffer until the cancel is over.
            while rtr.ops_in_flight() > 0 {
                assert_eq!(d.get(), 0, "dropped while the kernel may hold it");
                sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(d.get(), 1, "dropped once the operation was over");
            still_reads(&client, &server, &d).await;
        });
        assert_eq!(rt.ops_in_flight(), 0);
        assert_eq!(drops.get(), 2, "each buffer dropped once");
    }

    #[cfg(feature = "bytes")]
    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    /// `bytes`: a `Bytes` is written, a `BytesMut` read into (its spare
    /// capacity, like a vector).
    fn bytes_buffers<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let (client, server) = connected().await;
            let (r, _) = client
                .write_all(bytes::Bytes::from_static(b"shared bytes"))
                .await;
            r.unwrap();
            let mut got = bytes::BytesMut::with_capacity(64);
            got.extend_from_slice(b">");
            let (r, got) = server.read_exact(got.slice(1..13)).await;
            r.unwrap();
            assert_eq!(&got.into_inner()[..], b">shared bytes");
        });
    }

    /// Files: a read at an offset lands in a vector's spare capacity; a
    /// write from a sub-range writes only that range.
    fn file_buffers<B: Backend>() {
        let rt = rt_with_pool::<B>();
        let path = scratch_path("bufs", rt.backend_name());
        rt.block_on(async {
            let f = File::create(&path).await.unwrap();
            let (r, _) = f
                .write_all_at(b"--0123456789--".to_vec().slice(2..12), 0)
                .await;
            r.unwrap();
            let mut v = Vec::with_capacity(16);
            v.extend_from_slice(b"at 4:");
            let g = File::open_read(&path).await.unwrap();
            let (r, v) = g.read_at(v, 4).await;
            assert_eq!(r.unwrap(), 6);
            assert_eq!(v, b"at 4:456789");
        });
        std::fs::remove_file(&path).unwrap();
    }

    /// A `Notify` set before the wait completes it at once, any number of
    /// times in one poll (past the per-poll budget of immediate
    /// completions too); a wait when it is not set waits for the next
    /// notification.
    fn notify_set_before_the_wait<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let n = Notify::new().unwrap();
            for _ in 0..300 {
                n.notify().unwrap();
                n.notified().await.unwrap();
            }
            a_waiter_waits_for_the_next_notification(&n).await;
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }

    /// A wait on a `Notify` that is given up (its future dropped, here by
    /// a timeout) leaves nothing behind: a notification sent afterwards is
    /// kept for the next wait, which completes at once, and a new waiter
    /// is woken by the next notification.
    fn notify_wait_given_up_keeps_later_notifications<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let n = Notify::new().unwrap();
            assert!(timeout(Duration::from_millis(1), n.notified())
                .await
                .is_err());
            n.notify().unwrap();
            n.notified().await.unwrap();
            a_waiter_waits_for_the_next_notification(&n).await;
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }

    /// Two tasks wait on one `Notify`: a notification is taken by one of
    /// them while the other keeps waiting, and the next one wakes it.
    fn notify_wakes_one_waiter_per_notification<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let n = Notify::new().unwrap();
            let waiter = || {
                let n = n.clone();
                spawn(async move { n.notified().await })
            };
            let (a, b) = (waiter(), waiter());
            yield_now().await;
            assert!(!a.is_finished() && !b.is_finished(), "nothing was sent");
            n.notify().unwrap();
            while !a.is_finished() && !b.is_finished() {
                yield_now().await;
            }
            // Turns of the loop in which the other waiter runs again.
            for _ in 0..3 {
                yield_now().await;
            }
            assert!(
                a.is_finished() != b.is_finished(),
                "one notification finishes one wait"
            );
            n.notify().unwrap();
            a.await.unwrap().unwrap();
            b.await.unwrap().unwrap();
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }

    /// A wait on a second runtime, while the first runtime (which waited
    /// first, and is not running now) holds the `Notify`'s parked wait, is
    /// woken by the next notification; so is a later wait on the first.
    fn notify_waits_from_a_second_runtime<B: Backend>() {
        let (first, second) = (rt::<B>(), rt::<B>());
        let n = Notify::new().unwrap();
        first.block_on(async {
            assert!(timeout(Duration::from_millis(1), n.notified())
                .await
                .is_err());
        });
        second.block_on(a_waiter_waits_for_the_next_notification(&n));
        first.block_on(a_waiter_waits_for_the_next_notification(&n));
        assert_eq!(first.ops_in_flight() + second.ops_in_flight(), 0);
    }

    /// The first wait on a `Notify` parks one completion in the loop, which
    /// later waits reuse; dropping the last handle of the `Notify` ends it
    /// at the loop's next turn.
    fn dropping_a_notify_ends_its_parked_wait<B: Backend>() {
        let rt = rt::<B>();
        let before = rt.with_loop(|lp| lp.active());
        rt.block_on(async {
            let n = Notify::new().unwrap();
            let n2 = n.clone();
            for _ in 0..3 {
                a_waiter_waits_for_the_next_notification(&n).await;
                assert_eq!(rt.with_loop(|lp| lp.active()), before + 1);
            }
            drop(n);
            yield_now().await;
            assert_eq!(
                rt.with_loop(|lp| lp.active()),
                before + 1,
                "a handle is left"
            );
            drop(n2);
            yield_now().await;
        });
        assert_eq!(rt.with_loop(|lp| lp.active()), before);
    }

    #[cfg(not(target_os = "wasi"))]
    /// `Notify` ping-pong with another thread: 1,000 round trips, each
    /// side waking the other; a notification sent before the wait is kept.
    fn notify_ping_pong_with_another_thread<B: Backend>() {
        let rt = rt::<B>();
        let (ping, pong) = (Notify::new().unwrap(), Notify::new().unwrap());
        let (p2, q2) = (ping.clone(), pong.clone());
        let other = std::thread::spawn(move || {
            let rt = Runtime::<B>::with_options(Options::default()).unwrap();
            rt.block_on(async move {
                for _ in 0..1000 {
                    p2.notified().await.unwrap();
                    q2.notify().unwrap();
                }
            })
        });
        rt.block_on(async move {
            for _ in 0..1000 {
                ping.notify().unwrap();
                pong.notified().await.unwrap();
            }
            // Kept until someone waits: set, then awaited, with no other
            // thread involved.
            pong.notify().unwrap();
            pong.notified().await.unwrap();
        });
        other.join().unwrap();
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    /// Backpressure: an echo server written the obvious way (read, then
    /// write all of it, then read again) holds at most one buffer of data
    /// however much a client sends without reading: it stops reading
    /// while its write waits for the client. The client here sends 8 MiB
    /// and starts reading only after the first 4 MiB are out; a server
    /// that queued replies would hold megabytes by then.
    fn echo_server_holds_one_buffer_against_a_client_that_does_not_read<B: Backend>() {
        const BUF: usize = 64 * 1024;
        const TOTAL: usize = 8 << 20;
        let rt = rt::<B>();
        let listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let held_max = Rc::new(Cell::new(0usize));
        let hm = held_max.clone();
        let server = rt.spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            let mut buf = Vec::with_capacity(BUF);
            let (mut read, mut written) = (0usize, 0usize);
            loop {
                buf.clear();
                let (r, b) = conn.read(buf).await;
                let n = r.unwrap();
                if n == 0 {
                    break;
                }
                read += n;
                hm.set(hm.get().max(read - written));
                let (r, b) = conn.write_all(b).await;
                r.unwrap();
                written += n;
                buf = b;
            }
            written
        });
        let writer_done_4mib = Arc::new(std::sync::Barrier::new(2));
        let client = std::net::TcpStream::connect(addr).unwrap();
        let mut w = client.try_clone().unwrap();
        let gate = writer_done_4mib.clone();
        let writer = std::thread::spawn(move || {
            let chunk = vec![0x5au8; 256 * 1024];
            let mut sent = 0;
            while sent < TOTAL {
                w.write_all(&chunk).unwrap();
                sent += chunk.len();
                if sent == TOTAL / 2 {
                    gate.wait();
                }
            }
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut r = client;
        let reader = std::thread::spawn(move || {
            writer_done_4mib.wait();
            let mut got = 0;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                assert!(buf[..n].iter().all(|&x| x == 0x5a));
                got += n;
            }
            got
        });
        let written = rt.block_on(server).unwrap();
        writer.join().unwrap();
        assert_eq!(reader.join().unwrap(), TOTAL);
        assert_eq!(written, TOTAL);
        assert!(
            held_max.get() <= BUF,
            "the server held {} bytes at once",
            held_max.get()
        );
    }
);
