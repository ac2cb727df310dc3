//! Backend conformance suite.
//!
//! Every test is written once, generic over `B: xev::backend::Backend`, and
//! instantiated for each backend by `backend_tests!` at the bottom of this
//! file (`io_uring::<test>` and `epoll::<test>`). io_uring tests first probe
//! that io_uring works here and, if it does not, say so on stderr and return.
//!
//! Safety nets: waits go through [`run_until`], which arms a 5 s timer that
//! stops the loop and fails the test instead of hanging; every test also runs
//! under a watchdog thread that aborts the process if a test hangs outside
//! the loop's own waiting (in a drop, say).

use std::cell::{Cell, RefCell};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};
use xev::backend::Backend;
use xev::generic::{Loop, OwnedLoop};
use xev::{
    AcceptError, Action, Async, AsyncError, CancelError, ConnectError, Id, IdError, Interest, Msg,
    NoopError, Op, OpResult, Options, PollError, ReadError, RunMode, ThreadPool, TimerError,
    WriteError,
};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// How long one wait may take before the test fails (loop milliseconds).
/// Under Miri, which runs some tests on the real clock and is ~100 times
/// slower, a minute.
const GUARD_MS: u64 = if cfg!(miri) { 60_000 } else { 5_000 };

/// Aborts the process if the test it guards runs for more than a minute
/// (ten under Miri): a hang the in-loop guard timer cannot catch, e.g.
/// inside `Drop`.
struct Watchdog(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

impl Watchdog {
    fn start(name: &'static str) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let limit = Duration::from_secs(if cfg!(miri) { 600 } else { 60 });
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("conformance test {name} hung for {limit:?}: aborting the test binary");
                std::process::abort();
            }
        });
        Watchdog(tx)
    }
}

fn new_loop<B: Backend>() -> OwnedLoop<B> {
    Loop::<B>::new(Options::default()).expect("creating the loop")
}

fn new_loop_with_pool<B: Backend>() -> OwnedLoop<B> {
    let pool = ThreadPool::new(Default::default()).expect("creating the thread pool");
    Loop::<B>::new(Options {
        thread_pool: Some(pool),
        ..Options::default()
    })
    .expect("creating the loop")
}

/// Runs the loop (`RunMode::Once` at a time) until `done()` holds. A guard
/// timer fails the test after [`GUARD_MS`]; it is canceled (and its cancel
/// delivered) before returning, so the loop holds nothing extra afterwards.
fn run_until<B: Backend>(lp: &mut Loop<B>, what: &str, mut done: impl FnMut() -> bool) {
    lp.update_now();
    let tripped = Rc::new(Cell::new(false));
    let gone = Rc::new(Cell::new(false));
    let (t, g) = (tripped.clone(), gone.clone());
    let guard = lp.add(Op::timer(lp.now() + GUARD_MS), move |lp, _, res| {
        if matches!(res, OpResult::Timer(Ok(()))) {
            t.set(true);
            lp.stop();
        }
        g.set(true);
        Action::Disarm
    });
    while !done() {
        assert!(
            !tripped.get(),
            "[{}] timed out after {GUARD_MS} ms waiting for {what}",
            lp.backend_name()
        );
        lp.run(RunMode::Once).expect("Loop::run");
    }
    // Done only because the guard's wakeup let it through is a failure too
    // (a lost wakeup, say).
    assert!(
        !tripped.get(),
        "[{}] {what} happened only when the {GUARD_MS} ms guard fired",
        lp.backend_name()
    );
    if !gone.get() {
        lp.add(Op::Cancel { target: guard }, |_, _, _| Action::Disarm);
        for _ in 0..100 {
            if gone.get() {
                break;
            }
            lp.run(RunMode::NoWait).expect("Loop::run");
        }
        assert!(gone.get(), "the guard timer could not be canceled");
    }
}

/// Runs a few non-blocking passes (to let a duplicate callback show up).
fn settle<B: Backend>(lp: &mut Loop<B>) {
    for _ in 0..3 {
        lp.run(RunMode::NoWait).expect("Loop::run");
    }
}

/// One submitted operation whose callback records every result it gets
/// (together with the operation, buffer included) and disarms.
struct Pending {
    id: Id,
    out: Rc<RefCell<Vec<(OpResult, Op)>>>,
    calls: Rc<Cell<usize>>,
}

impl Pending {
    fn calls(&self) -> usize {
        self.calls.get()
    }

    fn done(&self) -> bool {
        self.calls.get() > 0
    }

    fn take(&self) -> (OpResult, Op) {
        assert_eq!(self.calls.get(), 1, "callback must fire exactly once");
        self.out.borrow_mut().pop().expect("a recorded result")
    }
}

fn submit<B: Backend>(lp: &mut Loop<B>, op: Op) -> Pending {
    let out: Rc<RefCell<Vec<(OpResult, Op)>>> = Rc::default();
    let calls = Rc::new(Cell::new(0));
    let (o, c) = (out.clone(), calls.clone());
    let id = lp.add(op, move |_, op, res| {
        c.set(c.get() + 1);
        o.borrow_mut().push((res, std::mem::replace(op, Op::Noop)));
        Action::Disarm
    });
    Pending { id, out, calls }
}

/// Waits for `p`, checks that its callback fired exactly once, returns its
/// result and operation.
fn wait<B: Backend>(lp: &mut Loop<B>, p: &Pending, what: &str) -> (OpResult, Op) {
    run_until(lp, what, || p.done());
    settle(lp);
    p.take()
}

fn run_op<B: Backend>(lp: &mut Loop<B>, op: Op, what: &str) -> (OpResult, Op) {
    let p = submit(lp, op);
    wait(lp, &p, what)
}

/// Counts how many times it was dropped: proves a callback's closure was
/// dropped exactly once.
struct DropCount(Rc<Cell<usize>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// `match` with a readable failure: `expect!(res, Pattern => value)`.
macro_rules! expect {
    ($e:expr, $p:pat => $v:expr) => {
        match $e {
            $p => $v,
            #[allow(unreachable_patterns)]
            other => panic!("expected {}, got {:?}", stringify!($p), other),
        }
    };
    ($e:expr, $p:pat) => {
        expect!($e, $p => ())
    };
}

/// The errno inside an operation's error, if any.
fn errno(res: &OpResult) -> Option<i32> {
    match res {
        OpResult::Accept(Err(e)) => e.raw_os_error(),
        OpResult::Connect(Err(e)) => e.raw_os_error(),
        OpResult::Read(Err(e)) | OpResult::RecvFrom(Err(e)) => e.raw_os_error(),
        OpResult::Write(Err(e)) => e.raw_os_error(),
        OpResult::Poll(Err(e)) => e.raw_os_error(),
        OpResult::Shutdown(Err(e)) => e.raw_os_error(),
        OpResult::Close(Err(e)) => e.raw_os_error(),
        OpResult::Timer(Err(e)) => e.raw_os_error(),
        OpResult::Async(Err(e)) => e.raw_os_error(),
        _ => None,
    }
}

fn errno_name(e: i32) -> String {
    format!("{} ({e})", std::io::Error::from_raw_os_error(e))
}

// ---------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------

/// A non-blocking, close-on-exec pipe: (read end, write end). `pipe2`
/// where it exists (one syscall, and one Miri supports), else `pipe` and
/// `fcntl`.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as libc::c_int; 2];
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        // SAFETY: `fds` is a live array of two ints for the kernel to fill.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        // SAFETY: `fds` is a live array of two ints for the kernel to fill.
        let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
        assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
        for fd in fds {
            // SAFETY: fcntl on descriptors this function just created.
            unsafe {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                assert!(fl >= 0 && libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) == 0);
                assert_eq!(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC), 0);
            }
        }
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Blocking-free `write(2)` from the test side; returns bytes written.
fn raw_write(fd: RawFd, data: &[u8]) -> isize {
    // SAFETY: writes from a live slice of the given length.
    unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) }
}

/// `read(2)` from the test side; returns bytes read (or -1).
fn raw_read(fd: RawFd, buf: &mut [u8]) -> isize {
    // SAFETY: reads into a live mutable slice of the given length.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

/// Fills a non-blocking pipe (or socket) until it would block.
fn fill(fd: RawFd) {
    let chunk = [0x55u8; 4096];
    loop {
        if raw_write(fd, &chunk) < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "filling: {e}");
            return;
        }
    }
}

/// A connected loopback TCP pair, both non-blocking: (client, server).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.set_nonblocking(true).unwrap();
    server.set_nonblocking(true).unwrap();
    (client, server)
}

/// A non-blocking TCP socket, not connected.
fn tcp_socket() -> OwnedFd {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.set_nonblocking(true).unwrap();
    s.into()
}

/// A non-blocking UDP socket bound to an ephemeral loopback port.
fn udp_socket() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    s.set_nonblocking(true).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// A high descriptor number that nothing holds and no other test thread
/// will be handed (descriptors are allocated lowest first), distinct for
/// every call so that tests running in parallel never share one.
fn high_fd_number() -> RawFd {
    static NEXT: AtomicUsize = AtomicUsize::new(8);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit for the kernel to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let top = lim.rlim_cur.min(65_536) as usize;
    let fd = top - NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(fd > 512, "descriptor limit too low for this test");
    fd as RawFd
}

/// A descriptor number that is certainly closed: a pipe end is duplicated
/// to a fresh high number and closed again.
fn closed_fd() -> RawFd {
    let hi = high_fd_number();
    let (r, _w) = pipe();
    // SAFETY: plain descriptor syscalls; `hi` is unused by anyone else.
    unsafe {
        assert_eq!(libc::dup2(r.as_raw_fd(), hi), hi, "dup2");
        assert_eq!(libc::close(hi), 0, "close");
    }
    hi
}

/// A temporary read-write file, already unlinked.
fn temp_file(tag: &str) -> std::fs::File {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "xev-conformance-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("creating a temp file");
    std::fs::remove_file(&path).expect("unlinking the temp file");
    f
}

fn fd_flags(fd: RawFd) -> (libc::c_int, libc::c_int) {
    // SAFETY: fcntl queries take no pointers.
    unsafe {
        (
            libc::fcntl(fd, libc::F_GETFL),
            libc::fcntl(fd, libc::F_GETFD),
        )
    }
}

// ---------------------------------------------------------------------------
// Run modes
// ---------------------------------------------------------------------------

fn backend_name_is_reported<B: Backend>() {
    let lp = new_loop::<B>();
    assert!(
        ["io_uring", "epoll", "kqueue"].contains(&lp.backend_name()),
        "unexpected backend name {:?}",
        lp.backend_name()
    );
}

fn run_nowait_never_blocks<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let id = lp.add(Op::timer(lp.now() + 10_000), move |_, _, _| {
        f.set(true);
        Action::Disarm
    });
    let start = Instant::now();
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "NoWait blocked for {:?}",
        start.elapsed()
    );
    assert!(!fired.get(), "a 10 s timer fired within NoWait runs");
    assert!(lp.is_active(id));
    assert_eq!(lp.active(), 1);
    assert!(!lp.stopped());
}

fn run_once_returns_after_a_callback<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let now = lp.now();
    let far = submit(&mut lp, Op::timer(now + 10_000));
    let noop = submit(&mut lp, Op::Noop);
    lp.run(RunMode::Once).unwrap();
    assert_eq!(noop.calls(), 1, "Once must run the ready noop");
    assert_eq!(far.calls(), 0, "Once must not wait for the 10 s timer");
    assert!(lp.is_active(far.id));

    // Once with only a short timer pending blocks until it fires.
    lp.update_now();
    let now = lp.now();
    let short = submit(&mut lp, Op::timer(now + 3));
    while short.calls() == 0 {
        lp.run(RunMode::Once).unwrap();
    }
    assert_eq!(short.calls(), 1);
    expect!(short.take().0, OpResult::Timer(Ok(())));
    assert_eq!(far.calls(), 0);
}

fn run_until_done_runs_everything<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let now = lp.now();
    let mut ops: Vec<Pending> = (0..4)
        .map(|i| submit(&mut lp, Op::timer(now + i)))
        .collect();
    ops.extend((0..3).map(|_| submit(&mut lp, Op::Noop)));
    // A completion that adds more work from its callback: UntilDone runs
    // that too.
    let late = Rc::new(Cell::new(0));
    let l = late.clone();
    lp.add(Op::Noop, move |lp, _, _| {
        let l = l.clone();
        let d = lp.now() + 2;
        lp.add(Op::timer(d), move |_, _, _| {
            l.set(l.get() + 1);
            Action::Disarm
        });
        Action::Disarm
    });
    assert_eq!(lp.active(), 8);
    lp.run(RunMode::UntilDone).unwrap();
    for p in &ops {
        assert_eq!(p.calls(), 1);
        assert!(!lp.is_active(p.id));
    }
    assert_eq!(late.get(), 1);
    assert_eq!(lp.active(), 0);
    assert!(!lp.stopped());
}

fn run_with_nothing_active_returns_at_once<B: Backend>() {
    let mut lp = new_loop::<B>();
    let start = Instant::now();
    lp.run(RunMode::Once).unwrap();
    lp.run(RunMode::UntilDone).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    // After work has come and gone, too.
    run_op(&mut lp, Op::Noop, "a noop");
    lp.run(RunMode::Once).unwrap();
    lp.run(RunMode::UntilDone).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "an idle run blocked for {:?}",
        start.elapsed()
    );
    assert_eq!(lp.active(), 0);
}

fn stop_ends_until_done_with_work_active<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let now = lp.now();
    let far = submit(&mut lp, Op::timer(now + 10_000));
    let stopper_calls = Rc::new(Cell::new(0));
    let s = stopper_calls.clone();
    lp.add(Op::timer(lp.now() + 2), move |lp, _, _| {
        s.set(s.get() + 1);
        lp.stop();
        Action::Disarm
    });
    let start = Instant::now();
    lp.run(RunMode::UntilDone).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "stop() did not end UntilDone"
    );
    assert_eq!(stopper_calls.get(), 1);
    assert!(lp.stopped(), "stopped() must report the stop");
    assert!(lp.is_active(far.id), "stop must leave work in flight");
    assert_eq!(lp.active(), 1);
    assert_eq!(far.calls(), 0);
    // The next run starts afresh.
    lp.run(RunMode::NoWait).unwrap();
    assert!(!lp.stopped(), "a new run resets stopped()");
}

fn stop_defers_the_remaining_callbacks<B: Backend>() {
    let mut lp = new_loop::<B>();
    let order = Rc::new(RefCell::new(Vec::new()));
    for i in 0..3 {
        let o = order.clone();
        lp.add(Op::Noop, move |lp, _, _| {
            o.borrow_mut().push(i);
            if i == 0 {
                lp.stop();
            }
            Action::Disarm
        });
    }
    lp.run(RunMode::UntilDone).unwrap();
    assert!(lp.stopped());
    assert_eq!(
        *order.borrow(),
        vec![0],
        "stop ends the run after its callback"
    );
    assert_eq!(lp.active(), 2, "the other results wait for the next run");
    lp.run(RunMode::UntilDone).unwrap();
    assert!(!lp.stopped());
    assert_eq!(*order.borrow(), vec![0, 1, 2]);
    assert_eq!(lp.active(), 0);
}

fn now_advances_and_update_now<B: Backend>() {
    let mut lp = new_loop::<B>();
    let t0 = lp.now();
    std::thread::sleep(Duration::from_millis(15));
    let t1 = lp.now();
    assert!(
        t1 >= t0 + 15,
        "outside a run now() reads the clock: {t0} -> {t1}"
    );
    // Inside a run it is the tick's cached time, until update_now.
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    std::thread::sleep(Duration::from_millis(5));
    lp.add(Op::Noop, move |lp, _, _| {
        let a = lp.now();
        std::thread::sleep(Duration::from_millis(15));
        let b = lp.now();
        lp.update_now();
        s.borrow_mut().extend([a, b, lp.now()]);
        Action::Disarm
    });
    lp.run(RunMode::UntilDone).unwrap();
    let v = seen.borrow().clone();
    assert!(
        v[0] >= t1 + 5,
        "a callback sees the tick's time: {t1} -> {}",
        v[0]
    );
    assert_eq!(v[1], v[0], "inside a callback now() is cached");
    assert!(v[2] >= v[0] + 15, "update_now refreshes it: {v:?}");
}

/// A deadline computed outside the loop after a long setup counts from
/// when it was computed, not from the loop's last tick (the cached clock
/// is not stale outside a run).
fn timer_set_after_setup_counts_from_when_it_was_set<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.run(RunMode::NoWait).unwrap();
    let setup = Instant::now();
    std::thread::sleep(Duration::from_millis(40)); // "setup" after the last tick
    let armed_at = Instant::now();
    let fired = Rc::new(Cell::new(None));
    let f = fired.clone();
    lp.add(Op::timer(lp.now() + 30), move |_, _, res| {
        expect!(res, OpResult::Timer(Ok(())));
        f.set(Some(Instant::now()));
        Action::Disarm
    });
    run_until(&mut lp, "the timer", || fired.get().is_some());
    let waited = fired.get().unwrap() - armed_at;
    // Lower bound only (a loaded machine may fire late, never early); the
    // clock counts whole milliseconds, so up to 1 ms is lost to rounding.
    assert!(
        waited >= Duration::from_millis(29),
        "fired {waited:?} after being set (setup took {:?})",
        armed_at - setup
    );
}

// ---------------------------------------------------------------------------
// Completions: noop, rearm, park, restart, free
// ---------------------------------------------------------------------------

fn noop_completes_once<B: Backend>() {
    let mut lp = new_loop::<B>();
    let p = submit(&mut lp, Op::Noop);
    assert!(lp.is_active(p.id), "an added completion is active");
    assert_eq!(p.calls(), 0, "nothing runs before the loop does");
    let (res, _) = wait(&mut lp, &p, "a noop");
    expect!(res, OpResult::Noop(Ok(())));
    assert!(!lp.is_active(p.id));
    assert_eq!(lp.active(), 0);
}

fn noop_rearm_fires_n_times<B: Backend>() {
    const N: usize = 7;
    let mut lp = new_loop::<B>();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let id = lp.add(Op::Noop, move |_, _, res| {
        assert!(matches!(res, OpResult::Noop(Ok(()))));
        c.set(c.get() + 1);
        if c.get() == N {
            Action::Disarm
        } else {
            Action::Rearm
        }
    });
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(count.get(), N);
    assert!(!lp.is_active(id));
    assert_eq!(
        lp.restart(id),
        Err(IdError::Stale),
        "disarmed ids are stale"
    );
}

fn timer_rearm_fires_n_times<B: Backend>() {
    const N: usize = 5;
    let mut lp = new_loop::<B>();
    lp.update_now();
    let fires = Rc::new(RefCell::new(Vec::new()));
    let f = fires.clone();
    let first = lp.now() + 1;
    lp.add(Op::timer(first), move |lp, op, res| {
        assert!(matches!(res, OpResult::Timer(Ok(()))));
        let Op::Timer { deadline } = *op else {
            panic!("op changed under us: {op:?}")
        };
        f.borrow_mut().push((deadline, lp.now()));
        if f.borrow().len() == N {
            return Action::Disarm;
        }
        *op = Op::timer(lp.now() + 2);
        Action::Rearm
    });
    lp.run(RunMode::UntilDone).unwrap();
    let fires = fires.borrow();
    assert_eq!(fires.len(), N);
    for &(deadline, at) in fires.iter() {
        assert!(
            at >= deadline,
            "timer fired at {at} before its deadline {deadline}"
        );
    }
}

/// One completion reused for different operations: read a pipe, then write
/// what it read to another pipe, then close that pipe's write end.
fn rearm_with_changed_op<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    assert_eq!(raw_write(w1.as_raw_fd(), b"ping"), 4);
    let out = w2.into_raw_fd();
    let rfd = r1.as_raw_fd();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    lp.add(
        Op::Read {
            fd: rfd,
            buf: vec![0; 16],
        },
        move |_, op, res| {
            l.borrow_mut().push(format!("{:?}", op.kind()));
            match res {
                OpResult::Read(Ok(n)) => {
                    let mut buf = op.take_buf().unwrap();
                    buf.truncate(n);
                    *op = Op::Write { fd: out, buf };
                    Action::Rearm
                }
                OpResult::Write(Ok(n)) => {
                    assert_eq!(n, 4);
                    *op = Op::Close { fd: out };
                    Action::Rearm
                }
                OpResult::Close(Ok(())) => Action::Disarm,
                other => panic!("unexpected {other:?}"),
            }
        },
    );
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(*log.borrow(), vec!["Read", "Write", "Close"]);
    let mut buf = [0u8; 16];
    assert_eq!(raw_read(r2.as_raw_fd(), &mut buf), 4);
    assert_eq!(&buf[..4], b"ping");
    assert_eq!(
        raw_read(r2.as_raw_fd(), &mut buf),
        0,
        "write end was closed"
    );
}

fn park_then_op_mut_and_restart<B: Backend>() {
    let mut lp = new_loop::<B>();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let id = lp.add(Op::Noop, move |_, op, res| {
        s.borrow_mut().push(format!("{:?}", op.kind()));
        match res {
            OpResult::Noop(Ok(())) => Action::Park,
            OpResult::Timer(Ok(())) => Action::Disarm,
            other => panic!("unexpected {other:?}"),
        }
    });
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(*seen.borrow(), vec!["Noop"]);
    assert!(!lp.is_active(id), "a parked completion is not active");
    assert_eq!(lp.active(), 0, "UntilDone ends with only parked work");
    // Change the parked op and start it again.
    assert!(matches!(lp.op_mut(id), Ok(Op::Noop)));
    lp.update_now();
    *lp.op_mut(id).unwrap() = Op::timer(lp.now() + 1);
    lp.restart(id).unwrap();
    assert!(lp.is_active(id));
    assert_eq!(
        lp.restart(id),
        Err(IdError::Busy),
        "restart of an active id"
    );
    assert!(matches!(lp.op_mut(id), Err(IdError::Busy)));
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(*seen.borrow(), vec!["Noop", "Timer"]);
    assert_eq!(lp.restart(id), Err(IdError::Stale));
    assert!(matches!(lp.op_mut(id), Err(IdError::Stale)));
    assert_eq!(lp.free(id), Err(IdError::Stale));
}

fn id_errors_busy_stale_wrong_kind<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    // Queued (added, not run yet).
    let now = lp.now();
    let t = submit(&mut lp, Op::timer(now + 10_000));
    assert_eq!(lp.restart(t.id), Err(IdError::Busy));
    assert_eq!(lp.free(t.id), Err(IdError::Busy));
    assert!(matches!(lp.op_mut(t.id), Err(IdError::Busy)));
    // In the timer heap.
    lp.run(RunMode::NoWait).unwrap();
    assert!(lp.is_active(t.id));
    assert_eq!(lp.restart(t.id), Err(IdError::Busy));
    assert_eq!(lp.free(t.id), Err(IdError::Busy));
    assert!(matches!(lp.op_mut(t.id), Err(IdError::Busy)));
    // In the backend.
    let (r, _w) = pipe();
    let rd = submit(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 8],
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(rd.calls(), 0);
    assert_eq!(lp.restart(rd.id), Err(IdError::Busy));
    assert_eq!(lp.free(rd.id), Err(IdError::Busy));
    assert_eq!(lp.timer_reset(rd.id, 0), Err(IdError::WrongKind));
    // Parked non-timer: timer_reset is the wrong kind.
    let parked = lp.add(Op::Noop, |_, _, _| Action::Park);
    lp.run(RunMode::NoWait).unwrap();
    assert!(!lp.is_active(parked));
    assert_eq!(lp.timer_reset(parked, 0), Err(IdError::WrongKind));
    lp.free(parked).unwrap();
    // Stale ids.
    assert_eq!(lp.free(parked), Err(IdError::Stale));
    assert_eq!(lp.restart(parked), Err(IdError::Stale));
    assert_eq!(lp.timer_reset(parked, 0), Err(IdError::Stale));
    assert!(!lp.is_active(parked));
    // A new completion may reuse the slot, but the old id stays stale.
    let fresh = lp.add(Op::Noop, |_, _, _| Action::Park);
    assert_ne!(fresh, parked);
    assert_eq!(lp.free(parked), Err(IdError::Stale));
    assert_eq!(lp.restart(parked), Err(IdError::Stale));
}

fn free_parked_drops_callback_once<B: Backend>() {
    let mut lp = new_loop::<B>();
    let drops = Rc::new(Cell::new(0));
    let calls = Rc::new(Cell::new(0));
    let (g, c) = (DropCount(drops.clone()), calls.clone());
    let id = lp.add(Op::Noop, move |_, _, _| {
        let _keep = &g;
        c.set(c.get() + 1);
        Action::Park
    });
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(calls.get(), 1);
    assert_eq!(drops.get(), 0, "a parked completion keeps its callback");
    lp.free(id).unwrap();
    assert_eq!(drops.get(), 1, "free drops the callback");
    assert_eq!(lp.free(id), Err(IdError::Stale));
    drop(lp);
    assert_eq!(drops.get(), 1, "dropped exactly once");
    assert_eq!(calls.get(), 1);
}

fn free_from_own_callback<B: Backend>() {
    let mut lp = new_loop::<B>();
    let drops = Rc::new(Cell::new(0));
    let calls = Rc::new(Cell::new(0));
    let me: Rc<Cell<Option<Id>>> = Rc::new(Cell::new(None));
    let (g, c, m) = (DropCount(drops.clone()), calls.clone(), me.clone());
    let id = lp.add(Op::Noop, move |lp, _, _| {
        let _keep = &g;
        c.set(c.get() + 1);
        lp.free(m.get().unwrap()).unwrap();
        Action::Rearm // ignored: the completion was freed
    });
    me.set(Some(id));
    lp.run(RunMode::UntilDone).unwrap();
    settle(&mut lp);
    assert_eq!(calls.get(), 1, "a freed completion is not rearmed");
    assert_eq!(drops.get(), 1);
    assert_eq!(lp.free(id), Err(IdError::Stale));
    assert_eq!(lp.active(), 0);
}

fn disarm_drops_callback_once<B: Backend>() {
    let mut lp = new_loop::<B>();
    let drops = Rc::new(Cell::new(0));
    let g = DropCount(drops.clone());
    lp.add(Op::Noop, move |_, _, _| {
        let _keep = &g;
        Action::Disarm
    });
    assert_eq!(drops.get(), 0);
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(drops.get(), 1, "Disarm drops the completion at once");
    drop(lp);
    assert_eq!(drops.get(), 1);
}

// ---------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------

/// Adds a timer that logs `(label, loop clock)` when it fires.
fn logged_timer<B: Backend>(
    lp: &mut Loop<B>,
    deadline: u64,
    label: u32,
    log: &Rc<RefCell<Vec<(u32, u64)>>>,
) -> Id {
    let l = log.clone();
    lp.add(Op::timer(deadline), move |lp, _, res| {
        assert!(matches!(res, OpResult::Timer(Ok(()))), "{res:?}");
        l.borrow_mut().push((label, lp.now()));
        Action::Disarm
    })
}

fn labels(log: &Rc<RefCell<Vec<(u32, u64)>>>) -> Vec<u32> {
    log.borrow().iter().map(|&(l, _)| l).collect()
}

fn timers_fire_in_deadline_order<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let now = lp.now();
    let log = Rc::default();
    let deadlines = [30u64, 10, 20, 5, 25, 1, 15];
    for (i, d) in deadlines.iter().enumerate() {
        logged_timer(&mut lp, now + d, i as u32, &log);
    }
    lp.run(RunMode::UntilDone).unwrap();
    let mut expected: Vec<(u64, u32)> = deadlines
        .iter()
        .enumerate()
        .map(|(i, &d)| (d, i as u32))
        .collect();
    expected.sort();
    assert_eq!(
        labels(&log),
        expected.iter().map(|&(_, l)| l).collect::<Vec<_>>()
    );
    for &(label, at) in log.borrow().iter() {
        let d = now + deadlines[label as usize];
        assert!(
            at >= d,
            "timer {label} fired at {at}, before its deadline {d}"
        );
    }
}

fn equal_deadlines_fire_in_insertion_order<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let d = lp.now() + 3;
    let log = Rc::default();
    for i in 0..8 {
        logged_timer(&mut lp, d, i, &log);
    }
    // Equal deadlines already in the past, too.
    let past = Rc::default();
    for i in 0..5 {
        logged_timer(&mut lp, 0, i, &past);
    }
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(labels(&log), (0..8).collect::<Vec<_>>());
    assert_eq!(labels(&past), (0..5).collect::<Vec<_>>());
}

fn timer_in_the_past_fires_on_next_tick<B: Backend>() {
    let mut lp = new_loop::<B>();
    std::thread::sleep(Duration::from_millis(3));
    let p = submit(&mut lp, Op::timer(0));
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(p.calls(), 1, "an expired deadline fires on the next tick");
    expect!(p.take().0, OpResult::Timer(Ok(())));
}

fn timer_reset_moves_a_pending_timer_later<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let now = lp.now();
    let log = Rc::default();
    let a = logged_timer(&mut lp, now + 5, 0, &log);
    logged_timer(&mut lp, now + 20, 1, &log);
    lp.run(RunMode::NoWait).unwrap();
    assert!(log.borrow().is_empty());
    lp.timer_reset(a, now + 40).unwrap();
    assert!(lp.is_active(a));
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(labels(&log), vec![1, 0]);
    let at = log.borrow()[1].1;
    assert!(
        at >= now + 40,
        "moved timer fired at {at}, before {}",
        now + 40
    );
}

fn timer_reset_moves_a_pending_timer_earlier<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let now = lp.now();
    let log = Rc::default();
    let a = logged_timer(&mut lp, now + 10_000, 0, &log);
    logged_timer(&mut lp, now + 30, 1, &log);
    lp.run(RunMode::NoWait).unwrap();
    lp.update_now();
    lp.timer_reset(a, lp.now() + 3).unwrap();
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(labels(&log), vec![0, 1]);
    assert!(log.borrow()[0].1 < now + 10_000);
}

fn timer_reset_before_first_run<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let log = Rc::default();
    let now = lp.now();
    let a = logged_timer(&mut lp, now + 10_000, 0, &log);
    lp.timer_reset(a, lp.now() + 2).unwrap(); // still queued
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(labels(&log), vec![0]);
}

fn timer_reset_starts_a_parked_timer<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let id = lp.add(Op::timer(lp.now() + 1), move |_, _, res| {
        assert!(matches!(res, OpResult::Timer(Ok(()))));
        c.set(c.get() + 1);
        Action::Park
    });
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(count.get(), 1);
    assert!(!lp.is_active(id));
    lp.update_now();
    let d = lp.now() + 3;
    lp.timer_reset(id, d).unwrap();
    assert!(lp.is_active(id), "timer_reset starts a parked timer");
    assert!(matches!(lp.op_mut(id), Err(IdError::Busy)));
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(count.get(), 2);
    assert!(lp.now() >= d);
    lp.free(id).unwrap();
}

fn timer_reset_from_own_callback_rearms<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let fires = Rc::new(RefCell::new(Vec::new()));
    let me: Rc<Cell<Option<Id>>> = Rc::new(Cell::new(None));
    let (f, m) = (fires.clone(), me.clone());
    let id = lp.add(Op::timer(lp.now() + 1), move |lp, op, res| {
        assert!(matches!(res, OpResult::Timer(Ok(()))));
        let Op::Timer { deadline } = *op else {
            panic!("{op:?}")
        };
        f.borrow_mut().push((deadline, lp.now()));
        if f.borrow().len() == 1 {
            let d = lp.now() + 4;
            lp.timer_reset(m.get().unwrap(), d).unwrap();
            // A second reset before returning wins.
            lp.timer_reset(m.get().unwrap(), d + 1).unwrap();
        }
        Action::Disarm // the reset re-arms it anyway (libxev semantics)
    });
    me.set(Some(id));
    lp.run(RunMode::UntilDone).unwrap();
    let fires = fires.borrow();
    assert_eq!(
        fires.len(),
        2,
        "reset from the callback must rearm: {fires:?}"
    );
    let (d2, at2) = fires[1];
    assert_eq!(
        d2,
        fires[0].1 + 5,
        "the op carries the last reset's deadline"
    );
    assert!(at2 >= d2, "fired at {at2} before {d2}");
    assert_eq!(lp.timer_reset(id, 0), Err(IdError::Stale));
}

/// A timer whose result is waiting (the run was stopped before its
/// callback) is taken back by `timer_reset` and fires once, later.
fn timer_reset_of_an_undelivered_timer<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    lp.add(Op::Noop, |lp, _, _| {
        lp.stop();
        Action::Disarm
    });
    let t = submit(&mut lp, Op::timer(0));
    lp.run(RunMode::UntilDone).unwrap();
    assert!(lp.stopped());
    assert_eq!(t.calls(), 0, "timer result must still be waiting");
    lp.update_now();
    let d = lp.now() + 5;
    lp.timer_reset(t.id, d).unwrap();
    let (res, _) = wait(&mut lp, &t, "the reset timer");
    expect!(res, OpResult::Timer(Ok(())));
    assert!(lp.now() >= d);
}

fn cancel_timer<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let now = lp.now();
    let t = submit(&mut lp, Op::timer(now + 10_000));
    lp.run(RunMode::NoWait).unwrap();
    let c = submit(&mut lp, Op::Cancel { target: t.id });
    run_until(&mut lp, "cancel and timer", || c.done() && t.done());
    settle(&mut lp);
    expect!(t.take().0, OpResult::Timer(Err(TimerError::Canceled)));
    expect!(c.take().0, OpResult::Cancel(Ok(())));
    assert_eq!(lp.active(), 0);
}

fn far_future_timers_do_not_overflow<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let max = submit(&mut lp, Op::timer(u64::MAX));
    let now = lp.now();
    let half = submit(&mut lp, Op::timer(now.saturating_add(u64::MAX / 2)));
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(max.calls() + half.calls(), 0);
    assert!(lp.is_active(max.id) && lp.is_active(half.id));
    // Moving one far away and back works too.
    lp.timer_reset(half.id, u64::MAX).unwrap();
    lp.timer_reset(half.id, u64::MAX - 1).unwrap();
    let c1 = submit(&mut lp, Op::Cancel { target: max.id });
    let c2 = submit(&mut lp, Op::Cancel { target: half.id });
    run_until(&mut lp, "cancels", || {
        c1.done() && c2.done() && max.done() && half.done()
    });
    settle(&mut lp);
    expect!(max.take().0, OpResult::Timer(Err(TimerError::Canceled)));
    expect!(half.take().0, OpResult::Timer(Err(TimerError::Canceled)));
    expect!(c1.take().0, OpResult::Cancel(Ok(())));
    expect!(c2.take().0, OpResult::Cancel(Ok(())));
}

/// A blocking wait bounded only by a far-future timer still works (the
/// timeout handed to the kernel must not overflow into an error) and is
/// interrupted by other work.
fn far_future_wait_is_woken_by_other_work<B: Backend>() {
    for deadline in [u64::MAX, u64::MAX / 2] {
        let mut lp = new_loop::<B>();
        lp.update_now();
        let far = submit(&mut lp, Op::timer(deadline));
        let a = Async::new().unwrap();
        let w = submit(&mut lp, Op::AsyncWait(a.clone()));
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            a.notify().unwrap();
        });
        lp.run(RunMode::Once)
            .expect("a far-future wait must not fail");
        th.join().unwrap();
        assert_eq!(w.calls(), 1, "the async wait fired");
        assert_eq!(far.calls(), 0);
        // The far timer's wait must not be an error when nothing else comes
        // either: bounded by the NoWait pass here.
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(far.calls(), 0);
    }
}

// ---------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------

/// Starts `op`, checks it is pending, cancels it, and checks that the target
/// fired exactly once with its `Canceled` error and the cancel with `Ok`.
fn cancel_pending<B: Backend>(lp: &mut Loop<B>, op: Op, what: &str) -> OpResult {
    let t = submit(lp, op);
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(t.calls(), 0, "{what} should be pending");
    assert!(lp.is_active(t.id));
    let c = submit(lp, Op::Cancel { target: t.id });
    run_until(lp, what, || t.done() && c.done());
    settle(lp);
    let (res, _) = t.take();
    assert!(res.is_canceled(), "{what}: expected Canceled, got {res:?}");
    expect!(c.take().0, OpResult::Cancel(Ok(())));
    assert!(!lp.is_active(t.id));
    res
}

fn cancel_pending_accept<B: Backend>() {
    let mut lp = new_loop::<B>();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let res = cancel_pending(&mut lp, Op::Accept { fd: l.as_raw_fd() }, "accept");
    expect!(res, OpResult::Accept(Err(AcceptError::Canceled)));
}

fn cancel_pending_pipe_read<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, _w) = pipe();
    let op = Op::Read {
        fd: r.as_raw_fd(),
        buf: vec![0; 32],
    };
    let res = cancel_pending(&mut lp, op, "pipe read");
    expect!(res, OpResult::Read(Err(ReadError::Canceled)));
}

fn cancel_pending_socket_read<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (c, _s) = tcp_pair();
    let op = Op::Read {
        fd: c.as_raw_fd(),
        buf: vec![0; 32],
    };
    let res = cancel_pending(&mut lp, op, "socket read");
    expect!(res, OpResult::Read(Err(ReadError::Canceled)));
}

fn cancel_pending_recv<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (c, _s) = tcp_pair();
    let op = Op::Recv {
        fd: c.as_raw_fd(),
        buf: vec![0; 32],
    };
    let res = cancel_pending(&mut lp, op, "recv");
    expect!(res, OpResult::Read(Err(ReadError::Canceled)));
}

fn cancel_pending_recvmsg<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (u, _) = udp_socket();
    let op = Op::Recvmsg(Msg::recv_from(u.as_raw_fd(), vec![0; 32]));
    let res = cancel_pending(&mut lp, op, "recvmsg");
    expect!(res, OpResult::RecvFrom(Err(ReadError::Canceled)));
}

fn cancel_pending_write<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (_r, w) = pipe();
    fill(w.as_raw_fd());
    let op = Op::Write {
        fd: w.as_raw_fd(),
        buf: vec![1; 4096],
    };
    let res = cancel_pending(&mut lp, op, "write to a full pipe");
    expect!(res, OpResult::Write(Err(WriteError::Canceled)));
}

fn cancel_pending_poll<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, _w) = pipe();
    let op = Op::Poll {
        fd: r.as_raw_fd(),
        interest: Interest::READABLE,
    };
    let res = cancel_pending(&mut lp, op, "poll");
    expect!(res, OpResult::Poll(Err(PollError::Canceled)));
}

fn cancel_pending_async_wait<B: Backend>() {
    let mut lp = new_loop::<B>();
    let a = Async::new().unwrap();
    let res = cancel_pending(&mut lp, Op::AsyncWait(a.clone()), "async wait");
    expect!(res, OpResult::Async(Err(AsyncError::Canceled)));
    // The handle still works afterwards.
    a.notify().unwrap();
    let (res, _) = run_op(&mut lp, Op::AsyncWait(a), "async wait after cancel");
    expect!(res, OpResult::Async(Ok(())));
}

fn cancel_pending_connect<B: Backend>() {
    // A listener with a full accept queue drops SYNs, so a connect pends.
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    let mut full = false;
    for _ in 0..16 {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        match s.connect_timeout(&addr.into(), Duration::from_millis(150)) {
            Ok(()) => fillers.push(s),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    if !full {
        eprintln!("cancel_pending_connect: could not make a connect pend here: skipping");
        return;
    }
    let mut lp = new_loop::<B>();
    let fd = tcp_socket();
    let res = cancel_pending(&mut lp, Op::connect(fd.as_raw_fd(), addr), "connect");
    expect!(res, OpResult::Connect(Err(ConnectError::Canceled)));
}

fn cancel_stale_id_is_not_found<B: Backend>() {
    let mut lp = new_loop::<B>();
    let p = submit(&mut lp, Op::Noop);
    wait(&mut lp, &p, "noop");
    let (res, _) = run_op(
        &mut lp,
        Op::Cancel { target: p.id },
        "cancel of a finished op",
    );
    expect!(res, OpResult::Cancel(Err(CancelError::NotFound)));
    assert_eq!(p.calls(), 1, "the target is not called again");
}

fn cancel_parked_is_not_found<B: Backend>() {
    let mut lp = new_loop::<B>();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let id = lp.add(Op::Noop, move |_, _, _| {
        c.set(c.get() + 1);
        Action::Park
    });
    lp.run(RunMode::UntilDone).unwrap();
    let (res, _) = run_op(&mut lp, Op::Cancel { target: id }, "cancel of a parked op");
    expect!(res, OpResult::Cancel(Err(CancelError::NotFound)));
    assert_eq!(calls.get(), 1, "a parked target is not called");
    assert!(lp.restart(id).is_ok(), "still parked and restartable");
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(calls.get(), 2);
}

/// A target whose result is ready but not delivered yet cannot be canceled
/// anymore: the cancel answers AlreadyFinished and the target gets its
/// real result.
fn cancel_of_undelivered_result_is_already_finished<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.add(Op::Noop, |lp, _, _| {
        lp.stop();
        Action::Disarm
    });
    let t = submit(&mut lp, Op::Noop);
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(t.calls(), 0);
    let c = submit(&mut lp, Op::Cancel { target: t.id });
    run_until(&mut lp, "cancel", || c.done() && t.done());
    settle(&mut lp);
    expect!(
        c.take().0,
        OpResult::Cancel(Err(CancelError::AlreadyFinished))
    );
    expect!(t.take().0, OpResult::Noop(Ok(())));
}

/// A cancel added before its (parked) target is restarted finds the target
/// still queued: the target never runs and gets Canceled.
fn cancel_of_queued_target<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    assert_eq!(raw_write(w.as_raw_fd(), b"x"), 1);
    let results = Rc::new(RefCell::new(Vec::new()));
    let rs = results.clone();
    let id = lp.add(Op::Noop, move |_, _, res| {
        rs.borrow_mut().push(format!("{res:?}"));
        Action::Park
    });
    lp.run(RunMode::UntilDone).unwrap();
    *lp.op_mut(id).unwrap() = Op::Read {
        fd: r.as_raw_fd(),
        buf: vec![0; 8],
    };
    let c = submit(&mut lp, Op::Cancel { target: id });
    lp.restart(id).unwrap();
    run_until(&mut lp, "cancel", || {
        c.done() && results.borrow().len() == 2
    });
    settle(&mut lp);
    expect!(c.take().0, OpResult::Cancel(Ok(())));
    assert_eq!(results.borrow().len(), 2);
    assert!(
        results.borrow()[1].contains("Canceled"),
        "queued target must be canceled: {:?}",
        results.borrow()
    );
    let mut b = [0u8; 4];
    assert_eq!(raw_read(r.as_raw_fd(), &mut b), 1, "the read never ran");
}

// ---------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------

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
    let (fl, fdfl) = fd_flags(sfd);
    assert!(
        fl & libc::O_NONBLOCK != 0,
        "accepted socket must be non-blocking"
    );
    assert!(
        fdfl & libc::FD_CLOEXEC != 0,
        "accepted socket must be close-on-exec"
    );
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
            buf: vec![0; 64],
        },
    );
    let tx = submit(
        &mut lp,
        Op::Send {
            fd: cfd,
            buf: b"hello".to_vec(),
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
            buf: vec![0; 64],
        },
    );
    let wr = submit(
        &mut lp,
        Op::Write {
            fd: sfd,
            buf: b"world!".to_vec(),
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
            buf: vec![0; 8],
        },
        "read at eof",
    );
    expect!(res, OpResult::Read(Err(ReadError::Eof)));
    let (res, _) = run_op(
        &mut lp,
        Op::Send {
            fd: sfd,
            buf: b"bye".to_vec(),
        },
        "send",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 3);
    let (res, op) = run_op(
        &mut lp,
        Op::Recv {
            fd: cfd,
            buf: vec![0; 8],
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
            buf: vec![0; 8],
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

fn tcp_pending_read_sees_eof_when_peer_closes<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (c, s) = tcp_pair();
    let rd = submit(
        &mut lp,
        Op::Read {
            fd: c.as_raw_fd(),
            buf: vec![0; 16],
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
            buf: vec![0; 16],
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
            buf: vec![0; 16],
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
            buf: b"ok".to_vec(),
        },
        "send",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 2);
    let mut b = [0u8; 4];
    assert_eq!(raw_read(s.as_raw_fd(), &mut b), 2);
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
    assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "{e}");
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
                buf: vec![7; 1024],
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
        matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET)),
        "expected EPIPE or ECONNRESET, got {e}"
    );
    // Write (not send) behaves the same (SIGPIPE is ignored by the harness
    // or suppressed by the backend).
    let (res, _) = run_op(
        &mut lp,
        Op::Write {
            fd: c.as_raw_fd(),
            buf: vec![7; 16],
        },
        "write",
    );
    let e = errno(&res).unwrap_or_else(|| panic!("expected an error, got {res:?}"));
    assert!(
        e == libc::EPIPE || e == libc::ECONNRESET,
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
            buf: vec![0; 16],
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(rd.calls(), 0);
    SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    drop(s); // RST
    let (res, _) = wait(&mut lp, &rd, "read after reset");
    let e = expect!(res, OpResult::Read(Err(ReadError::Io(e))) => e);
    assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET), "{e}");
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
            buf: vec![0; 16],
        },
    );
    let rd2 = submit(
        &mut lp,
        Op::Recv {
            fd,
            buf: vec![0; 16],
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(rd.calls() + rd2.calls(), 0);
    let wr = submit(
        &mut lp,
        Op::Send {
            fd,
            buf: b"abc".to_vec(),
        },
    );
    let (res, _) = wait(&mut lp, &wr, "send while a recv waits");
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 3);
    assert_eq!(rd.calls() + rd2.calls(), 0, "the reads still wait");
    let mut b = [0u8; 8];
    assert_eq!(raw_read(s.as_raw_fd(), &mut b), 3);
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

// ---------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------

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
    assert_eq!(&m.buf[..n], b"datagram");
    assert_eq!(m.addr(), Some(a_addr));

    // Reply, reusing the received message as a send to its sender.
    let mut m = m;
    m.fd = b.as_raw_fd();
    m.buf.truncate(n);
    m.buf.reverse();
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
            buf: vec![0; 32],
        },
    );
    let tx = submit(
        &mut lp,
        Op::Send {
            fd: a.as_raw_fd(),
            buf: b"one".to_vec(),
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
            buf: vec![0; 32],
        },
    );
    let wr = submit(
        &mut lp,
        Op::Write {
            fd: b.as_raw_fd(),
            buf: b"two".to_vec(),
        },
    );
    run_until(&mut lp, "udp write/read", || rd.done() && wr.done());
    settle(&mut lp);
    assert_eq!(expect!(wr.take().0, OpResult::Write(Ok(n)) => n), 3);
    let (res, op) = rd.take();
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"two");
}

// ---------------------------------------------------------------------------
// Pipes
// ---------------------------------------------------------------------------

fn pipe_write_then_read<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    let rd = submit(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 32],
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(rd.calls(), 0, "no data yet");
    let (res, _) = run_op(
        &mut lp,
        Op::Write {
            fd: w.as_raw_fd(),
            buf: b"through".to_vec(),
        },
        "write",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 7);
    let (res, op) = wait(&mut lp, &rd, "read");
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"through");
}

fn pipe_eof_when_writer_closed<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    assert_eq!(raw_write(w.as_raw_fd(), b"last"), 4);
    let rd = submit(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 32],
        },
    );
    let (res, _) = wait(&mut lp, &rd, "data");
    assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 4);
    let rd = submit(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 32],
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(rd.calls(), 0);
    let (res, _) = run_op(
        &mut lp,
        Op::Close {
            fd: w.into_raw_fd(),
        },
        "close writer",
    );
    expect!(res, OpResult::Close(Ok(())));
    let (res, _) = wait(&mut lp, &rd, "eof");
    expect!(res, OpResult::Read(Err(ReadError::Eof)));
}

fn pipe_write_to_closed_reader_is_epipe<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    drop(r);
    let (res, _) = run_op(
        &mut lp,
        Op::Write {
            fd: w.as_raw_fd(),
            buf: b"x".to_vec(),
        },
        "write",
    );
    let e = expect!(res, OpResult::Write(Err(WriteError::Io(e))) => e);
    assert_eq!(e.raw_os_error(), Some(libc::EPIPE), "{e}");
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
}

fn read_into_empty_buffer_is_not_eof<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    assert_eq!(raw_write(w.as_raw_fd(), b"z"), 1);
    let (res, _) = run_op(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: Vec::new(),
        },
        "empty read",
    );
    assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 0);
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

fn file_pread_pwrite_round_trip(lp: &mut Loop<impl Backend>) {
    let f = temp_file("p");
    let fd = f.as_raw_fd();
    let (res, _) = run_op(
        lp,
        Op::Pwrite {
            fd,
            buf: b"0123456789".to_vec(),
            offset: 0,
        },
        "pwrite",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 10);
    let (res, _) = run_op(
        lp,
        Op::Pwrite {
            fd,
            buf: b"abc".to_vec(),
            offset: 20,
        },
        "pwrite",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 3);
    let (res, op) = run_op(
        lp,
        Op::Pread {
            fd,
            buf: vec![0; 4],
            offset: 3,
        },
        "pread",
    );
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"3456");
    let (res, op) = run_op(
        lp,
        Op::Pread {
            fd,
            buf: vec![9; 32],
            offset: 8,
        },
        "pread",
    );
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(n, 15, "short read to the end of the file");
    assert_eq!(&op.buf().unwrap()[..n], b"89\0\0\0\0\0\0\0\0\0\0abc");
    let (res, _) = run_op(
        lp,
        Op::Pread {
            fd,
            buf: vec![0; 8],
            offset: 23,
        },
        "pread at end",
    );
    expect!(res, OpResult::Read(Err(ReadError::Eof)));
    let (res, _) = run_op(
        lp,
        Op::Pread {
            fd,
            buf: vec![0; 8],
            offset: 1 << 40,
        },
        "pread past end",
    );
    expect!(res, OpResult::Read(Err(ReadError::Eof)));
    // The file really holds what the loop wrote.
    let mut data = vec![0u8; 64];
    // SAFETY: `fd` is open for the whole call; the File is never dropped
    // (ManuallyDrop), so it does not close a descriptor it does not own.
    let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    let n = std::os::unix::fs::FileExt::read_at(&*file, &mut data, 0).unwrap();
    assert_eq!(&data[..n], b"0123456789\0\0\0\0\0\0\0\0\0\0abc");
}

fn file_pread_pwrite<B: Backend>() {
    // io_uring does file I/O natively; readiness backends need a pool.
    let mut lp = new_loop_with_pool::<B>();
    file_pread_pwrite_round_trip(&mut lp);
}

fn file_pread_pwrite_without_pool<B: Backend>() {
    let mut lp = new_loop::<B>();
    if lp.backend_name() == "io_uring" {
        file_pread_pwrite_round_trip(&mut lp);
        return;
    }
    let f = temp_file("np");
    let fd = f.as_raw_fd();
    let (res, op) = run_op(
        &mut lp,
        Op::Pwrite {
            fd,
            buf: b"x".to_vec(),
            offset: 0,
        },
        "pwrite",
    );
    expect!(res, OpResult::Write(Err(WriteError::NoThreadPool)));
    assert_eq!(op.buf().unwrap(), b"x", "the buffer comes back");
    let (res, _) = run_op(
        &mut lp,
        Op::Pread {
            fd,
            buf: vec![0; 8],
            offset: 0,
        },
        "pread",
    );
    expect!(res, OpResult::Read(Err(ReadError::NoThreadPool)));
    assert_eq!(f.metadata().unwrap().len(), 0, "nothing was written");
}

fn file_read_write_at_cursor<B: Backend>() {
    let mut lp = new_loop::<B>();
    let f = temp_file("c");
    let fd = f.as_raw_fd();
    let (res, _) = run_op(
        &mut lp,
        Op::Write {
            fd,
            buf: b"hello ".to_vec(),
        },
        "write",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 6);
    let (res, _) = run_op(
        &mut lp,
        Op::Write {
            fd,
            buf: b"world".to_vec(),
        },
        "write",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 5);
    // SAFETY: lseek takes no pointers.
    let pos = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    assert_eq!(pos, 11, "cursor advanced");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::lseek(fd, 0, libc::SEEK_SET) }, 0);
    let (res, op) = run_op(
        &mut lp,
        Op::Read {
            fd,
            buf: vec![0; 7],
        },
        "read",
    );
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"hello w");
    let (res, op) = run_op(
        &mut lp,
        Op::Read {
            fd,
            buf: vec![0; 7],
        },
        "read",
    );
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"orld");
    let (res, _) = run_op(
        &mut lp,
        Op::Read {
            fd,
            buf: vec![0; 7],
        },
        "read at eof",
    );
    expect!(res, OpResult::Read(Err(ReadError::Eof)));
}

// ---------------------------------------------------------------------------
// Poll
// ---------------------------------------------------------------------------

fn poll_readable_after_peer_writes<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (c, s) = tcp_pair();
    let p = submit(
        &mut lp,
        Op::Poll {
            fd: c.as_raw_fd(),
            interest: Interest::READABLE,
        },
    );
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(p.calls(), 0, "nothing to read yet");
    assert_eq!(raw_write(s.as_raw_fd(), b"!"), 1);
    let (res, _) = wait(&mut lp, &p, "readable");
    let r = expect!(res, OpResult::Poll(Ok(r)) => r);
    assert!(r.readable && !r.hangup && !r.error, "{r:?}");
    // A poll does not consume the data.
    let mut b = [0u8; 4];
    assert_eq!(raw_read(c.as_raw_fd(), &mut b), 1);
    // Pipes, and a poll started when data is already there.
    let (pr, pw) = pipe();
    assert_eq!(raw_write(pw.as_raw_fd(), b"?"), 1);
    let (res, _) = run_op(
        &mut lp,
        Op::Poll {
            fd: pr.as_raw_fd(),
            interest: Interest::READABLE,
        },
        "poll",
    );
    assert!(expect!(res, OpResult::Poll(Ok(r)) => r).readable);
}

fn poll_writable_right_away<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (c, _s) = tcp_pair();
    let p = submit(
        &mut lp,
        Op::Poll {
            fd: c.as_raw_fd(),
            interest: Interest::WRITABLE,
        },
    );
    run_until(&mut lp, "writable", || p.done());
    settle(&mut lp);
    let r = expect!(p.take().0, OpResult::Poll(Ok(r)) => r);
    assert!(r.writable && !r.readable, "{r:?}");
    let (_pr, pw) = pipe();
    let (res, _) = run_op(
        &mut lp,
        Op::Poll {
            fd: pw.as_raw_fd(),
            interest: Interest::BOTH,
        },
        "poll",
    );
    assert!(expect!(res, OpResult::Poll(Ok(r)) => r).writable);
}

fn poll_reports_hangup<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    let p = submit(
        &mut lp,
        Op::Poll {
            fd: r.as_raw_fd(),
            interest: Interest::READABLE,
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(p.calls(), 0);
    drop(w);
    let (res, _) = wait(&mut lp, &p, "hangup");
    let rd = expect!(res, OpResult::Poll(Ok(r)) => r);
    assert!(rd.hangup && rd.readable, "{rd:?}");
}

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
            buf: vec![0; 8],
        },
    );
    let pl = submit(
        &mut lp,
        Op::Poll {
            fd: rfd,
            interest: Interest::READABLE,
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(rd.calls() + pl.calls(), 0);
    let cl = submit(&mut lp, Op::Close { fd: rfd });
    run_until(&mut lp, "close and its victims", || {
        cl.done() && rd.done() && pl.done()
    });
    settle(&mut lp);
    expect!(cl.take().0, OpResult::Close(Ok(())));
    expect!(rd.take().0, OpResult::Read(Err(ReadError::Canceled)));
    expect!(pl.take().0, OpResult::Poll(Err(PollError::Canceled)));
    // The read end is really gone: writing now breaks the pipe.
    assert_eq!(
        raw_write(w.as_raw_fd(), b"x"),
        -1,
        "a reader is still alive"
    );
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EPIPE)
    );

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
    assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "{e}");
    assert_eq!(lp.active(), 0);
}

// ---------------------------------------------------------------------------
// Bad descriptors
// ---------------------------------------------------------------------------

fn bad_fd_ops(fd: RawFd) -> Vec<(&'static str, Op)> {
    let any: SocketAddr = ([127, 0, 0, 1], 9).into();
    vec![
        (
            "read",
            Op::Read {
                fd,
                buf: vec![0; 8],
            },
        ),
        (
            "write",
            Op::Write {
                fd,
                buf: vec![0; 8],
            },
        ),
        ("accept", Op::Accept { fd }),
        ("connect", Op::connect(fd, any)),
        (
            "recv",
            Op::Recv {
                fd,
                buf: vec![0; 8],
            },
        ),
        (
            "send",
            Op::Send {
                fd,
                buf: vec![0; 8],
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
            buf: vec![0; 8],
            offset: 0,
        },
    ));
    ops.push((
        "pwrite",
        Op::Pwrite {
            fd,
            buf: vec![0; 8],
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
        if errno(&res) != Some(libc::EBADF) {
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

fn bad_fd_minus_one<B: Backend>() {
    check_bad_fd::<B>(-1);
}

fn bad_fd_closed_number<B: Backend>() {
    check_bad_fd::<B>(closed_fd());
}

fn wrong_kind_of_fd_gives_honest_errno<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    let (res, _) = run_op(
        &mut lp,
        Op::Accept { fd: r.as_raw_fd() },
        "accept on a pipe",
    );
    assert_eq!(errno(&res), Some(libc::ENOTSOCK), "{res:?}");
    let (res, _) = run_op(
        &mut lp,
        Op::Recv {
            fd: r.as_raw_fd(),
            buf: vec![0; 4],
        },
        "recv on a pipe",
    );
    assert_eq!(errno(&res), Some(libc::ENOTSOCK), "{res:?}");
    let (res, _) = run_op(
        &mut lp,
        Op::Send {
            fd: w.as_raw_fd(),
            buf: vec![0; 4],
        },
        "send on a pipe",
    );
    assert_eq!(errno(&res), Some(libc::ENOTSOCK), "{res:?}");
    let (res, _) = run_op(
        &mut lp,
        Op::Read {
            fd: w.as_raw_fd(),
            buf: vec![0; 4],
        },
        "read a write end",
    );
    assert_eq!(errno(&res), Some(libc::EBADF), "{res:?}");
    // Accept on a socket that is not listening.
    let s = tcp_socket();
    let (res, _) = run_op(
        &mut lp,
        Op::Accept { fd: s.as_raw_fd() },
        "accept, not listening",
    );
    assert_eq!(errno(&res), Some(libc::EINVAL), "{res:?}");
}

// ---------------------------------------------------------------------------
// Async
// ---------------------------------------------------------------------------

fn async_notified_many_times_from_a_thread<B: Backend>() {
    const N: usize = 2_000;
    let mut lp = new_loop::<B>();
    let a = Async::new().unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let wakes = Rc::new(Cell::new(0usize));
    let disarmed = Rc::new(Cell::new(false));
    let (w, f, d) = (wakes.clone(), finished.clone(), disarmed.clone());
    lp.add(Op::AsyncWait(a.clone()), move |_, _, res| {
        assert!(matches!(res, OpResult::Async(Ok(()))), "{res:?}");
        w.set(w.get() + 1);
        // The thread notifies once more after setting `finished`, so some
        // wake sees it.
        if f.load(Ordering::Acquire) {
            d.set(true);
            Action::Disarm
        } else {
            Action::Rearm
        }
    });
    let th = std::thread::spawn(move || {
        for _ in 0..N {
            a.notify().unwrap();
        }
        finished.store(true, Ordering::Release);
        a.notify().unwrap();
    });
    run_until(&mut lp, "async wakeups", || disarmed.get());
    th.join().unwrap();
    assert!(wakes.get() >= 1, "no wakeup at all");
    assert!(
        wakes.get() <= N + 1,
        "{} wakeups for {} notifies",
        wakes.get(),
        N + 1
    );
    assert_eq!(lp.active(), 0);
}

fn async_notify_before_wait_is_not_lost<B: Backend>() {
    let mut lp = new_loop::<B>();
    let a = Async::new().unwrap();
    a.notify().unwrap();
    a.notify().unwrap();
    let (res, _) = run_op(&mut lp, Op::AsyncWait(a.clone()), "early notify");
    expect!(res, OpResult::Async(Ok(())));
    // From another thread, before the wait is added.
    let remote = a.clone();
    std::thread::spawn(move || remote.notify().unwrap())
        .join()
        .unwrap();
    let (res, _) = run_op(&mut lp, Op::AsyncWait(a), "early remote notify");
    expect!(res, OpResult::Async(Ok(())));
}

fn async_notifications_coalesce<B: Backend>() {
    let mut lp = new_loop::<B>();
    let a = Async::new().unwrap();
    for _ in 0..5 {
        a.notify().unwrap();
    }
    let (res, _) = run_op(&mut lp, Op::AsyncWait(a.clone()), "first wait");
    expect!(res, OpResult::Async(Ok(())));
    let second = submit(&mut lp, Op::AsyncWait(a.clone()));
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(second.calls(), 0, "five notifies wake one wait only");
    a.notify().unwrap();
    let (res, _) = wait(&mut lp, &second, "second wait");
    expect!(res, OpResult::Async(Ok(())));
}

fn async_several_handles<B: Backend>() {
    let mut lp = new_loop::<B>();
    let handles: Vec<Async> = (0..3).map(|_| Async::new().unwrap()).collect();
    let waits: Vec<Pending> = handles
        .iter()
        .map(|h| submit(&mut lp, Op::AsyncWait(h.clone())))
        .collect();
    lp.run(RunMode::NoWait).unwrap();
    assert!(waits.iter().all(|w| w.calls() == 0));
    let h1 = handles[1].clone();
    std::thread::spawn(move || h1.notify().unwrap())
        .join()
        .unwrap();
    run_until(&mut lp, "wait 1", || waits[1].done());
    settle(&mut lp);
    assert_eq!(waits[0].calls(), 0, "only the notified handle wakes");
    assert_eq!(waits[2].calls(), 0, "only the notified handle wakes");
    let hs = handles.clone();
    std::thread::spawn(move || {
        hs[2].notify().unwrap();
        hs[0].notify().unwrap();
    })
    .join()
    .unwrap();
    run_until(&mut lp, "waits 0 and 2", || {
        waits[0].done() && waits[2].done()
    });
    settle(&mut lp);
    for w in &waits {
        expect!(w.take().0, OpResult::Async(Ok(())));
    }
}

// ---------------------------------------------------------------------------
// Drop safety
// ---------------------------------------------------------------------------

/// Adds `op` with a callback that flags if it ever fires and holds a
/// drop-counting guard.
fn add_tracked<B: Backend>(
    lp: &mut Loop<B>,
    op: Op,
    fired: &Rc<Cell<usize>>,
    drops: &Rc<Cell<usize>>,
) -> Id {
    let (f, g) = (fired.clone(), DropCount(drops.clone()));
    lp.add(op, move |_, _, _| {
        let _keep = &g;
        f.set(f.get() + 1);
        Action::Disarm
    })
}

fn drop_loop_with_read_in_flight<B: Backend>() {
    let (r, w) = pipe();
    let (c, s) = tcp_pair();
    let fired = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    {
        let mut lp = new_loop::<B>();
        let a = add_tracked(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 64],
            },
            &fired,
            &drops,
        );
        let b = add_tracked(
            &mut lp,
            Op::Recv {
                fd: c.as_raw_fd(),
                buf: vec![0; 64],
            },
            &fired,
            &drops,
        );
        for _ in 0..3 {
            lp.run(RunMode::NoWait).unwrap();
        }
        assert!(lp.is_active(a) && lp.is_active(b));
        assert_eq!(drops.get(), 0);
        drop(lp);
    }
    assert_eq!(
        fired.get(),
        0,
        "callbacks must never fire after the loop is gone"
    );
    assert_eq!(drops.get(), 2, "each closure dropped exactly once");
    // The kernel let go of the reads: data written now stays for us.
    assert_eq!(raw_write(w.as_raw_fd(), b"after"), 5);
    assert_eq!(raw_write(s.as_raw_fd(), b"later"), 5);
    let mut b = [0u8; 16];
    assert_eq!(raw_read(r.as_raw_fd(), &mut b), 5);
    assert_eq!(&b[..5], b"after");
    let mut tries = 0;
    let n = loop {
        let n = raw_read(c.as_raw_fd(), &mut b);
        if n >= 0 || tries > 500 {
            break n;
        }
        tries += 1;
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(n, 5);
    assert_eq!(&b[..5], b"later");
}

fn drop_loop_with_timer_pending<B: Backend>() {
    // A timer that expired but was not delivered when the loop is dropped.
    // It is set 100 ms ahead so that the NoWait run below does not fire
    // it; a machine so slow that it did is no failure: try again.
    for attempt in 0.. {
        assert!(attempt < 50, "the 100 ms timer always fired too early");
        let fired = Rc::new(Cell::new(0));
        let drops = Rc::new(Cell::new(0));
        {
            let mut lp = new_loop::<B>();
            lp.update_now();
            let d = lp.now() + 100;
            let t = add_tracked(&mut lp, Op::timer(d), &fired, &drops);
            add_tracked(&mut lp, Op::timer(u64::MAX), &fired, &drops);
            lp.run(RunMode::NoWait).unwrap();
            if !lp.is_active(t) {
                continue;
            }
            // Wait until it has expired (by the loop's own clock).
            while lp.now() <= d {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(lp);
        }
        assert_eq!(fired.get(), 0);
        assert_eq!(drops.get(), 2);
        break;
    }
}

fn drop_loop_with_undelivered_results<B: Backend>() {
    let fired = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    {
        let mut lp = new_loop::<B>();
        lp.add(Op::Noop, |lp, _, _| {
            lp.stop();
            Action::Disarm
        });
        add_tracked(&mut lp, Op::Noop, &fired, &drops);
        add_tracked(&mut lp, Op::timer(0), &fired, &drops);
        lp.run(RunMode::UntilDone).unwrap();
        assert!(lp.stopped());
        assert_eq!(lp.active(), 2);
        drop(lp);
    }
    assert_eq!(fired.get(), 0);
    assert_eq!(drops.get(), 2);
}

fn drop_loop_with_parked_and_unstarted<B: Backend>() {
    let fired = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    {
        let mut lp = new_loop::<B>();
        let g = DropCount(drops.clone());
        lp.add(Op::Noop, move |_, _, _| {
            let _keep = &g;
            Action::Park
        });
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(drops.get(), 0);
        // Never run at all.
        let (r, _w) = pipe();
        add_tracked(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 8],
            },
            &fired,
            &drops,
        );
        add_tracked(&mut lp, Op::Noop, &fired, &drops);
        drop(lp);
    }
    assert_eq!(fired.get(), 0);
    assert_eq!(drops.get(), 3);
}

fn drop_loop_with_many_kinds_in_flight<B: Backend>() {
    let fired = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let (u, _) = udp_socket();
    let (r, w) = pipe();
    let (_r2, w2) = pipe();
    fill(w2.as_raw_fd());
    let a = Async::new().unwrap();
    let (n, before);
    {
        let mut lp = new_loop_with_pool::<B>();
        let f = temp_file("d");
        let ops = vec![
            Op::Accept { fd: l.as_raw_fd() },
            Op::Recvmsg(Msg::recv_from(u.as_raw_fd(), vec![0; 16])),
            Op::Poll {
                fd: r.as_raw_fd(),
                interest: Interest::READABLE,
            },
            Op::Write {
                fd: w2.as_raw_fd(),
                buf: vec![1; 4096],
            },
            Op::AsyncWait(a.clone()),
            Op::Pread {
                fd: f.as_raw_fd(),
                buf: vec![0; 16],
                offset: 0,
            },
            Op::timer(u64::MAX),
        ];
        n = ops.len();
        for op in ops {
            add_tracked(&mut lp, op, &fired, &drops);
        }
        lp.run(RunMode::NoWait).unwrap();
        // The pread may legitimately finish (and fire) before the drop;
        // nothing may fire from the drop on.
        before = fired.get();
        assert!(before <= 1, "only the pread may have finished");
        drop(lp);
    }
    assert_eq!(fired.get(), before);
    assert_eq!(drops.get(), n, "every closure dropped exactly once");
    a.notify().unwrap();
    assert_eq!(raw_write(w.as_raw_fd(), b"x"), 1);
}

// ---------------------------------------------------------------------------
// More edge cases
// ---------------------------------------------------------------------------

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
    for (i, (s_addr, (data, from))) in senders.iter().map(|(_, a)| a).zip(got.iter()).enumerate() {
        assert_eq!(data, &vec![b'a' + i as u8; 5]);
        assert_eq!(from, s_addr);
    }
}

/// More operations in one tick than the io_uring ring has entries, all
/// finishing at once (completion-queue overflow).
fn more_ops_than_ring_entries<B: Backend>() {
    const N: usize = 40;
    let mut lp = Loop::<B>::new(Options {
        entries: 2,
        ..Options::default()
    })
    .expect("a loop with a tiny ring");
    let pipes: Vec<(OwnedFd, OwnedFd)> = (0..N).map(|_| pipe()).collect();
    for (i, (_, w)) in pipes.iter().enumerate() {
        assert_eq!(raw_write(w.as_raw_fd(), &[i as u8]), 1);
    }
    let reads: Vec<Pending> = pipes
        .iter()
        .map(|(r, _)| {
            submit(
                &mut lp,
                Op::Read {
                    fd: r.as_raw_fd(),
                    buf: vec![0; 4],
                },
            )
        })
        .collect();
    let polls: Vec<Pending> = pipes
        .iter()
        .map(|(_, w)| {
            submit(
                &mut lp,
                Op::Poll {
                    fd: w.as_raw_fd(),
                    interest: Interest::WRITABLE,
                },
            )
        })
        .collect();
    assert_eq!(lp.active(), 2 * N);
    run_until(&mut lp, "all reads and polls", || {
        reads.iter().chain(&polls).all(|p| p.done())
    });
    settle(&mut lp);
    for (i, p) in reads.iter().enumerate() {
        let (res, op) = p.take();
        assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 1);
        assert_eq!(
            op.buf().unwrap()[0],
            i as u8,
            "read {i} got another pipe's data"
        );
    }
    for p in &polls {
        assert!(expect!(p.take().0, OpResult::Poll(Ok(r)) => r).writable);
    }
    // Closes through the tiny ring too.
    let closes: Vec<Pending> = pipes
        .into_iter()
        .flat_map(|(r, w)| [r.into_raw_fd(), w.into_raw_fd()])
        .map(|fd| submit(&mut lp, Op::Close { fd }))
        .collect();
    run_until(&mut lp, "all closes", || closes.iter().all(|p| p.done()));
    settle(&mut lp);
    for p in &closes {
        expect!(p.take().0, OpResult::Close(Ok(())));
    }
    assert_eq!(lp.active(), 0);
}

/// Many timers with pseudo-random deadlines, some canceled and some reset:
/// each fires or is canceled exactly once, in deadline order, never early.
fn many_timers_with_cancels_and_resets<B: Backend>() {
    const N: usize = 300;
    let mut lp = new_loop::<B>();
    lp.update_now();
    let now = lp.now();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    // (timer, deadline, loop clock when reported, fired rather than canceled)
    type Log = Rc<RefCell<Vec<(usize, u64, u64, bool)>>>;
    let log: Log = Rc::default();
    let mut ids = Vec::new();
    let mut deadlines = Vec::new();
    // Deadlines well clear of the setup below, so that a busy machine
    // cannot make a timer expire before it is canceled or reset.
    for i in 0..N {
        let d = now + 200 + rnd(40);
        let l = log.clone();
        ids.push(lp.add(Op::timer(d), move |lp, op, res| {
            let Op::Timer { deadline } = *op else {
                panic!()
            };
            let ok = match res {
                OpResult::Timer(Ok(())) => true,
                OpResult::Timer(Err(TimerError::Canceled)) => false,
                other => panic!("{other:?}"),
            };
            l.borrow_mut().push((i, deadline, lp.now(), ok));
            Action::Disarm
        }));
        deadlines.push(d);
    }
    lp.run(RunMode::NoWait).unwrap();
    let mut canceled = std::collections::HashSet::new();
    for i in 0..N {
        match rnd(6) {
            0 => {
                lp.cancel(ids[i]).expect("cancel of a pending timer");
                canceled.insert(i);
            }
            1 => {
                deadlines[i] = now + 200 + rnd(40);
                lp.timer_reset(ids[i], deadlines[i]).unwrap();
            }
            _ => {}
        }
    }
    lp.run(RunMode::UntilDone).unwrap();
    let log = log.borrow();
    assert_eq!(log.len(), N, "every timer reported exactly once");
    let mut seen = std::collections::HashSet::new();
    let mut last = 0;
    for &(i, deadline, at, ok) in log.iter() {
        assert!(seen.insert(i), "timer {i} reported twice");
        assert_eq!(ok, !canceled.contains(&i), "timer {i}");
        if ok {
            assert_eq!(deadline, deadlines[i]);
            assert!(at >= deadline, "timer {i} fired at {at} before {deadline}");
            assert!(
                deadline >= last,
                "timer {i} ({deadline}) fired after one at {last}"
            );
            last = deadline;
        }
    }
}

/// A freed slot is reused with a new generation: the old id names nothing,
/// and a cancel through it cannot hit the new completion.
fn stale_id_never_reaches_a_reused_slot<B: Backend>() {
    let mut lp = new_loop::<B>();
    let old = submit(&mut lp, Op::Noop);
    wait(&mut lp, &old, "noop");
    let (r, _w) = pipe();
    let new = submit(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 4],
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_ne!(old.id, new.id);
    assert!(!lp.is_active(old.id));
    assert!(lp.is_active(new.id));
    let (res, _) = run_op(&mut lp, Op::Cancel { target: old.id }, "stale cancel");
    expect!(res, OpResult::Cancel(Err(CancelError::NotFound)));
    assert_eq!(lp.cancel(old.id), Err(CancelError::NotFound));
    assert_eq!(lp.timer_reset(old.id, 0), Err(IdError::Stale));
    assert_eq!(lp.free(old.id), Err(IdError::Stale));
    settle(&mut lp);
    assert!(lp.is_active(new.id), "the new completion was not touched");
    assert_eq!(new.calls(), 0);
}

/// `Loop::cancel`: cancels without a cancel completion.
fn loop_cancel_direct<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, _w) = pipe();
    let rd = submit(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 4],
        },
    );
    let t = submit(&mut lp, Op::timer(u64::MAX));
    let q = submit(&mut lp, Op::timer(u64::MAX)); // still queued when canceled
    lp.run(RunMode::NoWait).unwrap();
    let q2 = submit(&mut lp, Op::Noop);
    assert_eq!(lp.cancel(rd.id), Ok(()));
    assert_eq!(lp.cancel(t.id), Ok(()));
    assert_eq!(lp.cancel(q.id), Ok(()));
    assert_eq!(lp.cancel(q2.id), Ok(()), "a queued noop can be canceled");
    run_until(&mut lp, "direct cancels", || {
        rd.done() && t.done() && q.done() && q2.done()
    });
    settle(&mut lp);
    expect!(rd.take().0, OpResult::Read(Err(ReadError::Canceled)));
    expect!(t.take().0, OpResult::Timer(Err(TimerError::Canceled)));
    expect!(q.take().0, OpResult::Timer(Err(TimerError::Canceled)));
    expect!(q2.take().0, OpResult::Noop(Err(NoopError::Canceled)));
    assert_eq!(lp.cancel(rd.id), Err(CancelError::NotFound), "stale");
    let parked = lp.add(Op::Noop, |_, _, _| Action::Park);
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(lp.cancel(parked), Err(CancelError::NotFound), "parked");
    assert_eq!(lp.active(), 0);
}

fn add_parked_starts_only_on_restart<B: Backend>() {
    let mut lp = new_loop::<B>();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let id = lp.add_parked_callback(Op::Noop, move |_: &mut Loop<B>, _: &mut Op, _: OpResult| {
        c.set(c.get() + 1);
        Action::Park
    });
    assert!(!lp.is_active(id));
    assert_eq!(lp.active(), 0);
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(
        calls.get(),
        0,
        "a parked completion does not start by itself"
    );
    lp.restart(id).unwrap();
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(calls.get(), 1);
    let c2 = xev::generic::Completion::<B, _>::new(Op::Noop, |_: &mut Loop<B>, _: &mut Op, _| {
        Action::Disarm
    });
    let id2 = lp.add_parked(c2);
    assert!(!lp.is_active(id2));
    lp.free(id2).unwrap();
    lp.free(id).unwrap();
}

fn pread_offset_out_of_range_is_einval<B: Backend>() {
    let mut lp = new_loop_with_pool::<B>();
    let f = temp_file("o");
    let fd = f.as_raw_fd();
    let off = i64::MAX as u64 + 1;
    let (res, _) = run_op(
        &mut lp,
        Op::Pread {
            fd,
            buf: vec![0; 4],
            offset: off,
        },
        "pread",
    );
    assert_eq!(errno(&res), Some(libc::EINVAL), "{res:?}");
    let (res, _) = run_op(
        &mut lp,
        Op::Pwrite {
            fd,
            buf: vec![0; 4],
            offset: u64::MAX,
        },
        "pwrite",
    );
    assert_eq!(errno(&res), Some(libc::EINVAL), "{res:?}");
}

fn write_of_empty_buffer_is_ok_zero<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (_r, w) = pipe();
    let (res, _) = run_op(
        &mut lp,
        Op::Write {
            fd: w.as_raw_fd(),
            buf: Vec::new(),
        },
        "empty write",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 0);
}

/// Cancel of a thread-pool (or native) file operation: either it was
/// canceled in time, or it ran; either way its callback fires exactly once.
fn cancel_file_op_exactly_once<B: Backend>() {
    let mut lp = new_loop_with_pool::<B>();
    let f = temp_file("cf");
    f.set_len(4096).unwrap();
    for _ in 0..20 {
        let t = submit(
            &mut lp,
            Op::Pread {
                fd: f.as_raw_fd(),
                buf: vec![0; 4096],
                offset: 0,
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        if t.done() {
            continue; // finished before we could try
        }
        let c = submit(&mut lp, Op::Cancel { target: t.id });
        run_until(&mut lp, "cancel and pread", || c.done() && t.done());
        settle(&mut lp);
        let (tres, _) = t.take();
        let (cres, _) = c.take();
        match cres {
            OpResult::Cancel(Ok(())) => assert!(tres.is_canceled(), "{tres:?}"),
            OpResult::Cancel(Err(CancelError::AlreadyFinished)) => {
                expect!(tres, OpResult::Read(Ok(4096)))
            }
            other => panic!("cancel result {other:?}"),
        }
    }
    assert_eq!(lp.active(), 0);
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
            buf: data.clone(),
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
            buf: vec![0; 7000],
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

/// A read smaller than the data leaves the rest for the next read, without
/// new data arriving (edge-triggered readiness must not lose it).
fn partial_reads_leave_the_rest<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (c, s) = tcp_pair();
    let rd = submit(
        &mut lp,
        Op::Recv {
            fd: c.as_raw_fd(),
            buf: vec![0; 4],
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(raw_write(s.as_raw_fd(), b"0123456789"), 10);
    let (res, op) = wait(&mut lp, &rd, "first 4 bytes");
    assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 4);
    assert_eq!(op.buf().unwrap(), b"0123");
    let (res, op) = run_op(
        &mut lp,
        Op::Read {
            fd: c.as_raw_fd(),
            buf: vec![0; 4],
        },
        "next 4",
    );
    assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 4);
    assert_eq!(op.buf().unwrap(), b"4567");
    let (res, op) = run_op(
        &mut lp,
        Op::Recv {
            fd: c.as_raw_fd(),
            buf: vec![0; 4],
        },
        "last 2",
    );
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"89");
    // Same on a pipe with a poll in between.
    let (r, w) = pipe();
    assert_eq!(raw_write(w.as_raw_fd(), b"abcdef"), 6);
    let (res, _) = run_op(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 2],
        },
        "ab",
    );
    assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 2);
    let (res, _) = run_op(
        &mut lp,
        Op::Poll {
            fd: r.as_raw_fd(),
            interest: Interest::READABLE,
        },
        "poll",
    );
    assert!(expect!(res, OpResult::Poll(Ok(r)) => r).readable);
    let (res, op) = run_op(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 8],
        },
        "rest",
    );
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"cdef");
}

/// A poll reports readiness as long as it lasts (polling does not consume
/// it): rearming it while data is unread fires again.
fn poll_rearmed_while_ready_fires_again<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    lp.add(
        Op::Poll {
            fd: r.as_raw_fd(),
            interest: Interest::READABLE,
        },
        move |_, _, res| {
            assert!(expect!(res, OpResult::Poll(Ok(r)) => r).readable);
            c.set(c.get() + 1);
            if c.get() < 4 {
                Action::Rearm
            } else {
                Action::Disarm
            }
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(count.get(), 0);
    assert_eq!(raw_write(w.as_raw_fd(), b"."), 1);
    run_until(&mut lp, "four polls", || count.get() == 4);
}

/// Two waits on one Async: one notify wakes one of them.
fn two_waits_on_one_async<B: Backend>() {
    let mut lp = new_loop::<B>();
    let a = Async::new().unwrap();
    let w1 = submit(&mut lp, Op::AsyncWait(a.clone()));
    let w2 = submit(&mut lp, Op::AsyncWait(a.clone()));
    lp.run(RunMode::NoWait).unwrap();
    a.notify().unwrap();
    run_until(&mut lp, "one wait", || w1.done() || w2.done());
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(2));
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(w1.calls() + w2.calls(), 1, "one notify, one wakeup");
    a.notify().unwrap();
    run_until(&mut lp, "the other wait", || w1.done() && w2.done());
    settle(&mut lp);
    expect!(w1.take().0, OpResult::Async(Ok(())));
    expect!(w2.take().0, OpResult::Async(Ok(())));
}

/// A callback sees itself as not active; after Rearm it is active again.
fn callback_sees_itself_inactive<B: Backend>() {
    let mut lp = new_loop::<B>();
    let me: Rc<Cell<Option<Id>>> = Rc::new(Cell::new(None));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (m, s) = (me.clone(), seen.clone());
    let id = lp.add(Op::Noop, move |lp, _, _| {
        s.borrow_mut()
            .push((lp.is_active(m.get().unwrap()), lp.active()));
        if s.borrow().len() == 1 {
            Action::Rearm
        } else {
            Action::Park
        }
    });
    me.set(Some(id));
    lp.run(RunMode::Once).unwrap();
    assert_eq!(*seen.borrow(), vec![(false, 0)]);
    assert!(lp.is_active(id), "rearmed");
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(seen.borrow().len(), 2);
    assert!(!lp.is_active(id), "parked");
}

/// Running the loop from inside a callback works and keeps every
/// completion's callback at exactly one call.
fn nested_run_from_a_callback<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.update_now();
    let now = lp.now();
    let inner = submit(&mut lp, Op::timer(now + 2));
    let outer_calls = Rc::new(Cell::new(0));
    let inner_seen = Rc::new(Cell::new(0));
    let (oc, is, ic) = (outer_calls.clone(), inner_seen.clone(), inner.calls.clone());
    lp.add(Op::Noop, move |lp, _, _| {
        oc.set(oc.get() + 1);
        lp.run(RunMode::UntilDone).unwrap();
        is.set(ic.get());
        Action::Disarm
    });
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(outer_calls.get(), 1);
    assert_eq!(inner_seen.get(), 1, "the nested run ran the timer");
    assert_eq!(inner.calls(), 1);
    assert_eq!(lp.active(), 0);
}

/// A panicking callback: the panic reaches the caller of `run`; the loop
/// stays usable and drops the completion exactly once.
fn panic_in_callback_leaves_loop_usable<B: Backend>() {
    let drops = Rc::new(Cell::new(0));
    let g = DropCount(drops.clone());
    let mut lp = new_loop::<B>();
    let id = lp.add(Op::Noop, move |_, _, _| {
        let _keep = &g;
        panic!("deliberate panic in a callback");
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run(RunMode::UntilDone)));
    assert!(r.is_err(), "the panic propagates out of run");
    assert_eq!(drops.get(), 1, "the panicked completion is freed at once");
    assert_eq!(lp.restart(id), Err(IdError::Stale), "its id is stale");
    assert_eq!(lp.free(id), Err(IdError::Stale));
    assert_eq!(lp.active(), 0);
    let (res, _) = run_op(&mut lp, Op::Noop, "noop after a panic");
    expect!(res, OpResult::Noop(Ok(())));
    drop(lp);
    assert_eq!(drops.get(), 1, "and dropped exactly once");
}

/// A panic in the `Drop` of a callback's captures (when the completion is
/// disarmed) never drops anything twice: not when the loop is dropped, not
/// by a second `free`.
fn panic_in_drop_of_captures_drops_once<B: Backend>() {
    struct PanicOnDrop(Rc<Cell<u32>>);
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
            panic!("deliberate panic in Drop");
        }
    }
    let drops = Rc::new(Cell::new(0));
    let mut lp = new_loop::<B>();
    // Disarmed by its callback.
    let g = PanicOnDrop(drops.clone());
    let a = lp.add(Op::Noop, move |_, _, _| {
        let _keep = &g;
        Action::Disarm
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run(RunMode::UntilDone)));
    assert!(r.is_err(), "the Drop's panic propagates out of run");
    assert_eq!(drops.get(), 1);
    assert_eq!(lp.free(a), Err(IdError::Stale));
    // Freed while parked.
    let g = PanicOnDrop(drops.clone());
    let b = lp.add(Op::Noop, move |_, _, _| {
        let _keep = &g;
        Action::Park
    });
    lp.run(RunMode::UntilDone).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.free(b)));
    assert!(r.is_err());
    assert_eq!(drops.get(), 2);
    assert_eq!(
        lp.free(b),
        Err(IdError::Stale),
        "a second free finds nothing"
    );
    // Still in flight when the loop is dropped, beside a well-behaved one.
    let g = PanicOnDrop(drops.clone());
    lp.add(Op::timer(u64::MAX), move |_, _, _| {
        let _keep = &g;
        Action::Disarm
    });
    let quiet = Rc::new(Cell::new(0));
    let q = DropCount(quiet.clone());
    lp.add(Op::timer(u64::MAX), move |_, _, _| {
        let _keep = &q;
        Action::Disarm
    });
    lp.run(RunMode::NoWait).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(lp)));
    assert!(
        r.is_err(),
        "the Drop's panic propagates out of the loop's drop"
    );
    assert_eq!(drops.get(), 3, "dropped once");
    assert_eq!(quiet.get(), 1, "the other completion is dropped too");
}

fn drop_loop_with_cancel_queued<B: Backend>() {
    let fired = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    let (r, w) = pipe();
    {
        let mut lp = new_loop::<B>();
        let t = add_tracked(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 8],
            },
            &fired,
            &drops,
        );
        lp.run(RunMode::NoWait).unwrap();
        add_tracked(&mut lp, Op::Cancel { target: t }, &fired, &drops);
        drop(lp);
    }
    assert_eq!(fired.get(), 0);
    assert_eq!(drops.get(), 2);
    assert_eq!(raw_write(w.as_raw_fd(), b"k"), 1);
    let mut b = [0u8; 2];
    assert_eq!(
        raw_read(r.as_raw_fd(), &mut b),
        1,
        "no read survived the loop"
    );
}

fn pending_write_gets_epipe_when_reader_closes<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    fill(w.as_raw_fd());
    let wr = submit(
        &mut lp,
        Op::Write {
            fd: w.as_raw_fd(),
            buf: vec![3; 4096],
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(wr.calls(), 0, "the pipe is full");
    drop(r);
    let (res, _) = wait(&mut lp, &wr, "write after the reader left");
    assert_eq!(errno(&res), Some(libc::EPIPE), "{res:?}");
}

/// A descriptor number closed through the loop and reused for a new file
/// is waited on afresh (readiness backends must forget the old one).
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
                buf: vec![0; 4],
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

/// Many file operations at once (thread pool on readiness backends).
fn many_file_ops_concurrently<B: Backend>() {
    const N: usize = 48;
    let mut lp = new_loop_with_pool::<B>();
    let f = temp_file("m");
    let fd = f.as_raw_fd();
    let writes: Vec<Pending> = (0..N)
        .map(|i| {
            let op = Op::Pwrite {
                fd,
                buf: vec![i as u8; 512],
                offset: (i * 512) as u64,
            };
            submit(&mut lp, op)
        })
        .collect();
    run_until(&mut lp, "all pwrites", || writes.iter().all(|p| p.done()));
    settle(&mut lp);
    for p in &writes {
        assert_eq!(expect!(p.take().0, OpResult::Write(Ok(n)) => n), 512);
    }
    let reads: Vec<Pending> = (0..N)
        .map(|i| {
            let op = Op::Pread {
                fd,
                buf: vec![0xff; 512],
                offset: (i * 512) as u64,
            };
            submit(&mut lp, op)
        })
        .collect();
    run_until(&mut lp, "all preads", || reads.iter().all(|p| p.done()));
    settle(&mut lp);
    for (i, p) in reads.iter().enumerate() {
        let (res, op) = p.take();
        assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 512);
        assert!(op.buf().unwrap().iter().all(|&b| b == i as u8), "block {i}");
    }
    assert_eq!(lp.active(), 0);
}

/// One completion rearmed through operations the loop handles itself
/// (noop, timer, cancel) and backend operations (poll, read).
fn rearm_across_op_kinds<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    assert_eq!(raw_write(w.as_raw_fd(), b"q"), 1);
    let rfd = r.as_raw_fd();
    let stale = submit(&mut lp, Op::Noop);
    wait(&mut lp, &stale, "noop");
    let stale_id = stale.id;
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    lp.add(Op::Noop, move |lp, op, res| {
        l.borrow_mut().push(format!("{res:?}"));
        *op = match l.borrow().len() {
            1 => Op::timer(lp.now() + 1),
            2 => Op::Poll {
                fd: rfd,
                interest: Interest::READABLE,
            },
            3 => Op::Read {
                fd: rfd,
                buf: vec![0; 4],
            },
            4 => Op::Cancel { target: stale_id },
            5 => Op::Noop,
            _ => return Action::Disarm,
        };
        Action::Rearm
    });
    lp.run(RunMode::UntilDone).unwrap();
    let log = log.borrow();
    assert_eq!(log.len(), 6, "{log:?}");
    assert!(log[0].starts_with("Noop"), "{log:?}");
    assert!(log[1].starts_with("Timer(Ok"), "{log:?}");
    assert!(log[2].starts_with("Poll(Ok"), "{log:?}");
    assert_eq!(log[3], "Read(Ok(1))");
    assert_eq!(log[4], "Cancel(Err(NotFound))");
    assert!(log[5].starts_with("Noop"), "{log:?}");
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

/// A descriptor the loop waited on, then closed behind the loop's back
/// (not through `Op::Close`), whose number is reused by a new socket: waits
/// on the new socket must still be woken.
fn fd_closed_outside_the_loop_and_reused<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r1, w1) = pipe();
    let (res, _) = {
        assert_eq!(raw_write(w1.as_raw_fd(), b"x"), 1);
        run_op(
            &mut lp,
            Op::Read {
                fd: r1.as_raw_fd(),
                buf: vec![0; 1],
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
            buf: vec![0; 1],
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
            buf: vec![0; 1],
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

// ---------------------------------------------------------------------------
// Regressions for libxev's stale-completion bugs (kqueue #122, #169, #230 and
// epoll #234). Written for every backend: the bug classes are generic.
// ---------------------------------------------------------------------------

/// libxev #122: a `no_wait` tick returned with registration changes for a
/// disarmed completion still unsubmitted, leaving the kernel pointing at
/// freed memory. Here: only NoWait runs; a read disarms, its slot is reused
/// by another completion, more data arrives: the old callback never fires
/// again and the new one fires exactly once.
fn stale_after_nowait_disarm<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    let first = Rc::new(Cell::new(0));
    let f = first.clone();
    let id = lp.add(
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 1],
        },
        move |_, _, _| {
            f.set(f.get() + 1);
            Action::Disarm
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(raw_write(w.as_raw_fd(), b"a"), 1);
    let start = Instant::now();
    while first.get() == 0 && start.elapsed() < Duration::from_millis(GUARD_MS) {
        lp.run(RunMode::NoWait).unwrap();
        if first.get() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(first.get(), 1);
    assert!(!lp.is_active(id));
    // A new completion (most likely in the freed slot) on another pipe.
    let (r2, w2) = pipe();
    let second = Rc::new(Cell::new(0));
    let s2 = second.clone();
    let id2 = lp.add(
        Op::Read {
            fd: r2.as_raw_fd(),
            buf: vec![0; 1],
        },
        move |_, _, res| {
            expect!(res, OpResult::Read(Ok(1)));
            s2.set(s2.get() + 1);
            Action::Disarm
        },
    );
    assert_ne!(id, id2, "a reused slot gets a new generation");
    lp.run(RunMode::NoWait).unwrap();
    // Data for the old, disarmed read must not reach anyone.
    assert_eq!(raw_write(w.as_raw_fd(), b"b"), 1);
    for _ in 0..5 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(first.get(), 1, "the disarmed read fired again");
    assert_eq!(
        second.get(),
        0,
        "the new read fired for the old pipe's data"
    );
    assert_eq!(raw_write(w2.as_raw_fd(), b"c"), 1);
    run_until(&mut lp, "the new read", || second.get() == 1);
    settle(&mut lp);
    assert_eq!((first.get(), second.get()), (1, 1));
}

/// libxev #169: a completion whose descriptor was ready at submission was
/// put in two queues at once. Here: data is ready before each rearmed read
/// starts, and more keeps arriving; every read fires exactly once per
/// rearm, in order, and the bytes add up.
fn ready_at_submission_rearm_fires_once_each<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    assert_eq!(raw_write(w.as_raw_fd(), b"0123456789"), 10);
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let wfd = w.as_raw_fd();
    lp.add(
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 1],
        },
        move |_, op, res| {
            let n = expect!(res, OpResult::Read(Ok(n)) => n);
            g.borrow_mut().extend_from_slice(&op.buf().unwrap()[..n]);
            // Keep the descriptor ready while the rearmed read is queued.
            // (Writes after reads 1..=15: 10 + 15 = 25 bytes in all.)
            if g.borrow().len() <= 15 {
                assert_eq!(raw_write(wfd, b"x"), 1);
            }
            if g.borrow().len() == 25 {
                Action::Disarm
            } else {
                Action::Rearm
            }
        },
    );
    let g = got.clone();
    run_until(&mut lp, "25 one-byte reads", || g.borrow().len() == 25);
    settle(&mut lp);
    let got = got.borrow();
    assert_eq!(got.len(), 25, "one callback per read, none doubled");
    assert_eq!(lp.active(), 0);
    assert_eq!(&got[..10], b"0123456789");
    assert!(got[10..].iter().all(|&b| b == b'x'));
}

/// libxev #230 (and its fix #245): a read whose descriptor was ready at
/// submission, rearmed from its callback, was left "dead" while still
/// registered, so a cancel did nothing and the callback kept firing. Here:
/// rearm once, cancel, write more: exactly one `Canceled`, no read after it.
fn cancel_after_rearm_of_ready_read<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = pipe();
    assert_eq!(raw_write(w.as_raw_fd(), b"ab"), 2);
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let l = log.clone();
    let id = lp.add(
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 1],
        },
        move |_, _, res| {
            let done = res.is_canceled();
            l.borrow_mut().push(format!("{res:?}"));
            if done || l.borrow().len() >= 2 {
                // Second read: keep it armed (it will wait for data).
                if done {
                    return Action::Disarm;
                }
            }
            Action::Rearm
        },
    );
    let l = log.clone();
    run_until(&mut lp, "two reads", || l.borrow().len() == 2);
    // The rearmed third read is waiting now (the pipe is empty).
    lp.run(RunMode::NoWait).unwrap();
    assert!(lp.is_active(id));
    let cancel = submit(&mut lp, Op::Cancel { target: id });
    let l = log.clone();
    run_until(&mut lp, "the cancel", || {
        cancel.done() && l.borrow().len() == 3
    });
    expect!(cancel.take().0, OpResult::Cancel(Ok(())));
    assert_eq!(raw_write(w.as_raw_fd(), b"c"), 1);
    settle(&mut lp);
    let log = log.borrow();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[2], "Read(Err(Canceled))", "{log:?}");
}

/// libxev #234: an epoll batch delivered an event to a completion that had
/// already been retired earlier in the same batch (a queued write's
/// callback then ran twice). Here: a read and a write wait on one socket,
/// the peer resets it so both directions report in one batch; the read's
/// callback cancels the write: each callback fires exactly once.
fn one_batch_retire_fires_once<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (a, b) = tcp_pair();
    a.set_nonblocking(true).unwrap();
    fill(a.as_raw_fd());
    let calls = Rc::new(RefCell::new(Vec::<String>::new()));
    let write_id = Rc::new(Cell::new(None));
    let c = calls.clone();
    let wid = write_id.clone();
    lp.add(
        Op::Read {
            fd: a.as_raw_fd(),
            buf: vec![0; 8],
        },
        move |lp, _, res| {
            c.borrow_mut().push(format!("read {res:?}"));
            if let Some(id) = wid.get() {
                let r = lp.cancel(id);
                c.borrow_mut().push(format!("cancel {r:?}"));
            }
            Action::Disarm
        },
    );
    let c = calls.clone();
    let id = lp.add(
        Op::Write {
            fd: a.as_raw_fd(),
            buf: vec![7; 1 << 16],
        },
        move |_, _, res| {
            c.borrow_mut().push(format!(
                "write {}",
                if res.is_canceled() {
                    "canceled"
                } else {
                    "done"
                }
            ));
            Action::Disarm
        },
    );
    write_id.set(Some(id));
    lp.run(RunMode::NoWait).unwrap();
    // Reset the connection: the read and the write both see it.
    SockRef::from(&b).set_linger(Some(Duration::ZERO)).unwrap();
    drop(b);
    let c = calls.clone();
    run_until(&mut lp, "both callbacks", || {
        let c = c.borrow();
        c.iter().filter(|s| s.starts_with("read")).count() == 1
            && c.iter().filter(|s| s.starts_with("write")).count() == 1
    });
    settle(&mut lp);
    let calls = calls.borrow();
    assert_eq!(
        calls.iter().filter(|s| s.starts_with("read")).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|s| s.starts_with("write")).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(lp.active(), 0);
}

/// A wait that consumed its Async's wakeup but whose callback never ran
/// (the loop stopped, then was dropped) must not leave the Async believing
/// a wake is still pending: the next notify must wake the next wait.
fn async_wake_consumed_by_a_dropped_loop_is_not_lost<B: Backend>() {
    let a = Async::new().unwrap();
    a.notify().unwrap();
    {
        let mut lp = new_loop::<B>();
        lp.add(Op::Noop, |lp, _, _| {
            lp.stop();
            Action::Disarm
        });
        lp.add(Op::AsyncWait(a.clone()), |_, _, _| {
            panic!("the stopped loop must not run this callback")
        });
        // Run until the wait's read has happened (its result waits behind
        // the stop), without running its callback.
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(GUARD_MS) {
            lp.run(RunMode::NoWait).unwrap();
            if lp.active() == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut lp = new_loop::<B>();
    let woke = Rc::new(Cell::new(false));
    let w = woke.clone();
    lp.add(Op::AsyncWait(a.clone()), move |_, _, res| {
        expect!(res, OpResult::Async(Ok(())));
        w.set(true);
        Action::Disarm
    });
    lp.run(RunMode::NoWait).unwrap();
    a.notify().unwrap();
    run_until(&mut lp, "the wake after the dropped loop", || woke.get());
}

// ---------------------------------------------------------------------------
// The cancellation contract (the same answers and order on every backend)
// ---------------------------------------------------------------------------

/// Adds `op` with a callback that appends `(tag, result)` to `log`.
fn logged<B: Backend>(
    lp: &mut Loop<B>,
    op: Op,
    tag: &'static str,
    log: &Rc<RefCell<Vec<(&'static str, String)>>>,
) -> Id {
    let l = log.clone();
    lp.add(op, move |_, _, res| {
        l.borrow_mut().push((tag, format!("{res:?}")));
        Action::Disarm
    })
}

/// Two cancels of one pending read: the first cancels it, the second is
/// too late; the read ends once, with Canceled, before either cancel's
/// callback.
fn two_cancels_of_one_pending_read<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, _w) = pipe();
    let log = Rc::new(RefCell::new(Vec::new()));
    let rd = logged(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 8],
        },
        "read",
        &log,
    );
    lp.run(RunMode::NoWait).unwrap();
    logged(&mut lp, Op::Cancel { target: rd }, "cancel1", &log);
    logged(&mut lp, Op::Cancel { target: rd }, "cancel2", &log);
    run_until(&mut lp, "the read and both cancels", || {
        log.borrow().len() == 3
    });
    settle(&mut lp);
    let got: Vec<_> = log.borrow().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0],
        ("read", "Read(Err(Canceled))".to_string()),
        "{got:?}"
    );
    let cancels: Vec<_> = got[1..].to_vec();
    assert!(
        cancels.contains(&("cancel1", "Cancel(Ok(()))".to_string())),
        "{got:?}"
    );
    assert!(
        cancels.contains(&("cancel2", "Cancel(Err(AlreadyFinished))".to_string())),
        "{got:?}"
    );
}

/// `Loop::cancel` gives the real answer on every backend: Ok for a
/// pending read, AlreadyFinished the second time (and for a result that is
/// in but not delivered), NotFound for a parked or freed completion.
fn loop_cancel_answers<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, _w) = pipe();
    let rd = submit(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 8],
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.cancel(rd.id), Ok(()));
    assert_eq!(lp.cancel(rd.id), Err(CancelError::AlreadyFinished));
    let (res, _) = wait(&mut lp, &rd, "the canceled read");
    expect!(res, OpResult::Read(Err(ReadError::Canceled)));
    assert_eq!(lp.cancel(rd.id), Err(CancelError::NotFound), "freed");
    // A result that is in but not delivered: a noop that stops the run
    // first leaves the second noop's result waiting.
    lp.add(Op::Noop, |lp, _, _| {
        lp.stop();
        Action::Disarm
    });
    let done = submit(&mut lp, Op::Noop);
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(done.calls(), 0);
    assert_eq!(lp.cancel(done.id), Err(CancelError::AlreadyFinished));
    let (res, _) = wait(&mut lp, &done, "the noop");
    expect!(res, OpResult::Noop(Ok(())));
    let parked = lp.add(Op::Noop, |_, _, _| Action::Park);
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(lp.cancel(parked), Err(CancelError::NotFound), "parked");
    lp.free(parked).unwrap();
}

/// A cancel's callback runs after its target's, whatever held the target
/// (the loop's queue, the timer wheel, an async wait, the backend).
fn cancel_completes_after_its_target<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, _w) = pipe();
    let a = Async::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let read = Op::Read {
        fd: r.as_raw_fd(),
        buf: vec![0; 8],
    };
    let targets = [
        logged(&mut lp, read, "read", &log),
        logged(&mut lp, Op::timer(u64::MAX), "timer", &log),
        logged(&mut lp, Op::AsyncWait(a), "async", &log),
    ];
    lp.run(RunMode::NoWait).unwrap();
    let queued = logged(&mut lp, Op::timer(u64::MAX), "queued", &log);
    for (t, tag) in targets
        .iter()
        .copied()
        .zip(["c-read", "c-timer", "c-async"])
        .chain([(queued, "c-queued")])
    {
        logged(&mut lp, Op::Cancel { target: t }, tag, &log);
    }
    run_until(&mut lp, "all targets and cancels", || {
        log.borrow().len() == 8
    });
    settle(&mut lp);
    let got = log.borrow().clone();
    for (target, cancel) in [
        ("read", "c-read"),
        ("timer", "c-timer"),
        ("async", "c-async"),
        ("queued", "c-queued"),
    ] {
        let ti = got.iter().position(|(t, _)| *t == target).expect(target);
        let ci = got.iter().position(|(t, _)| *t == cancel).expect(cancel);
        assert!(ti < ci, "{target} must end before its cancel: {got:?}");
        assert_eq!(got[ci].1, "Cancel(Ok(()))", "{got:?}");
        assert!(got[ti].1.contains("Canceled"), "{got:?}");
    }
}

/// A timer reset after a cancel whose `Canceled` was not delivered yet:
/// the cancel stands (the callback gets Canceled), then the timer runs
/// again with the new deadline.
fn timer_reset_after_undelivered_cancel<B: Backend>() {
    let mut lp = new_loop::<B>();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let t = lp.add(Op::timer(u64::MAX), move |_, _, res| {
        l.borrow_mut().push(format!("{res:?}"));
        Action::Park
    });
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.cancel(t), Ok(()));
    let now = lp.now();
    lp.timer_reset(t, now + 1).unwrap();
    run_until(&mut lp, "the canceled then reset timer", || {
        log.borrow().len() == 2
    });
    assert_eq!(
        *log.borrow(),
        vec![
            "Timer(Err(Canceled))".to_string(),
            "Timer(Ok(()))".to_string()
        ]
    );
    lp.free(t).unwrap();
}

// ---------------------------------------------------------------------------
// Blocking descriptors and huge buffers
// ---------------------------------------------------------------------------
//
// An operation on a descriptor without O_NONBLOCK must work as on a
// non-blocking one, without blocking the loop: a timer due while it waits
// fires first (the order of callbacks is what these tests check, never a
// time margin). Buffers of 2 GiB and more give short counts, never EINVAL.

/// A pipe without `O_NONBLOCK` (close-on-exec): (read end, write end).
fn blocking_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a live array of two ints for the kernel to fill.
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
    for fd in fds {
        // SAFETY: fcntl on a descriptor this function just created.
        let r = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        assert_eq!(r, 0);
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Sets or clears `O_NONBLOCK`.
fn set_nonblocking(fd: RawFd, on: bool) {
    // SAFETY: fcntl on a descriptor number takes no pointers.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        assert!(fl >= 0, "F_GETFL: {}", std::io::Error::last_os_error());
        let fl = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, fl), 0);
    }
}

fn is_nonblocking(fd: RawFd) -> bool {
    fd_flags(fd).0 & libc::O_NONBLOCK != 0
}

/// Fills a blocking pipe or socket (non-blocking for the while) until it
/// would block; returns how many bytes it took.
fn fill_blocking(fd: RawFd) -> usize {
    set_nonblocking(fd, true);
    let chunk = [0x55u8; 4096];
    let mut total = 0;
    loop {
        let n = raw_write(fd, &chunk);
        if n < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "filling: {e}");
            break;
        }
        total += n as usize;
    }
    set_nonblocking(fd, false);
    total
}

/// Reads `fd` (made blocking) until end of file on a thread: what a peer
/// draining a pipe or socket does.
fn drain_on_a_thread(fd: RawFd) -> std::thread::JoinHandle<Vec<u8>> {
    set_nonblocking(fd, false);
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match raw_read(fd, &mut buf) {
                0 => return all,
                n if n > 0 => all.extend_from_slice(&buf[..n as usize]),
                _ => {
                    let e = std::io::Error::last_os_error();
                    assert_eq!(e.raw_os_error(), Some(libc::EINTR), "draining: {e}");
                }
            }
        }
    })
}

/// Runs `act` on a thread after 10 s unless dropped first (the drop waits
/// for a running `act`). A loop that wrongly blocks in an operation's
/// syscall is unblocked by it, so that the test fails with an assertion
/// (the guard timer has expired by then) instead of the watchdog's abort.
/// A test that passes drops it long before.
struct Backstop {
    tx: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backstop {
    fn new(act: Arc<dyn Fn() + Send + Sync>) -> Backstop {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_secs(10))
            {
                eprintln!("backstop: the loop seems blocked in a syscall; unblocking it");
                act();
            }
        });
        Backstop {
            tx: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Backstop {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Checks the order of events around an operation that has to wait: a
/// timer due at once must fire while the operation is still pending, and
/// only then does its callback run `act`, which lets the operation finish.
/// Create it before the operation's first tick (its backstop runs `act`
/// if that tick blocks), `arm` it after that tick, `check` it after the
/// operation finished.
struct OrderProbe {
    act: Arc<dyn Fn() + Send + Sync>,
    /// `Some(op_was_pending)` once the timer fired.
    fired: Rc<Cell<Option<bool>>>,
    _backstop: Backstop,
}

impl OrderProbe {
    fn new(act: impl Fn() + Send + Sync + 'static) -> OrderProbe {
        let act: Arc<dyn Fn() + Send + Sync> = Arc::new(act);
        OrderProbe {
            _backstop: Backstop::new(act.clone()),
            act,
            fired: Rc::default(),
        }
    }

    /// Adds the timer (due now). Only adds: the caller runs the loop.
    fn arm<B: Backend>(&self, lp: &mut Loop<B>, p: &Pending) {
        let (act, fired, calls) = (self.act.clone(), self.fired.clone(), p.calls.clone());
        lp.add(Op::timer(lp.now()), move |_, _, res| {
            expect!(res, OpResult::Timer(Ok(())));
            fired.set(Some(calls.get() == 0));
            act();
            Action::Disarm
        });
    }

    fn check(&self, what: &str) {
        match self.fired.get() {
            Some(true) => {}
            Some(false) => panic!("{what} finished before the timer due at once fired"),
            None => panic!("the timer due at once never fired around {what}"),
        }
    }
}

/// Starts `op` (one non-blocking tick, which must not block), checks that
/// it waits past a timer whose callback runs `act`, and returns its
/// result.
fn op_waits_past_a_timer<B: Backend>(
    lp: &mut Loop<B>,
    op: Op,
    what: &str,
    act: impl Fn() + Send + Sync + 'static,
) -> (OpResult, Op) {
    let probe = OrderProbe::new(act);
    let p = submit(lp, op);
    settle(lp);
    assert_eq!(p.calls(), 0, "{what} finished before anything let it");
    probe.arm(lp, &p);
    let out = wait(lp, &p, what);
    probe.check(what);
    out
}

fn blocking_pipe_read_waits_for_data<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = blocking_pipe();
    let wfd = w.as_raw_fd();
    let (res, op) = op_waits_past_a_timer(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 64],
        },
        "a read on an empty blocking pipe",
        move || assert_eq!(raw_write(wfd, b"hello"), 5),
    );
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"hello");
    assert!(
        !is_nonblocking(r.as_raw_fd()),
        "the loop changed the pipe's mode"
    );

    // Two reads wait on the pipe; one write satisfies one of them. The
    // other must go on waiting without blocking the loop (its retry on the
    // same readiness event finds the pipe empty again).
    let a = submit(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 64],
        },
    );
    let b = submit(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: vec![0; 64],
        },
    );
    let probe = OrderProbe::new(move || assert_eq!(raw_write(wfd, b"two"), 3));
    settle(&mut lp);
    assert_eq!(a.calls() + b.calls(), 0);
    assert_eq!(raw_write(wfd, b"one"), 3);
    run_until(&mut lp, "one of two reads", || a.done() || b.done());
    settle(&mut lp);
    let (first, second) = if a.done() { (&a, &b) } else { (&b, &a) };
    assert_eq!(second.calls(), 0, "both reads finished on one write");
    probe.arm(&mut lp, second);
    let (res, op) = wait(&mut lp, second, "the second read");
    probe.check("the second read on a blocking pipe");
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"two");
    let (res, op) = first.take();
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"one");
}

/// A write to a full blocking pipe waits until a reader makes room, then
/// writes (a short count is fine) what the reader then gets.
fn blocking_pipe_write_waits_for_room<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (r, w) = blocking_pipe();
    let filled = fill_blocking(w.as_raw_fd());
    let data: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let rfd = r.as_raw_fd();
    let drainer: Arc<std::sync::Mutex<Vec<_>>> = Arc::default();
    let d = drainer.clone();
    let (res, _) = op_waits_past_a_timer(
        &mut lp,
        Op::Write {
            fd: w.as_raw_fd(),
            buf: data.clone(),
        },
        "a write to a full blocking pipe",
        move || d.lock().unwrap().push(drain_on_a_thread(rfd)),
    );
    let n = expect!(res, OpResult::Write(Ok(n)) => n);
    assert!(n > 0 && n <= data.len(), "wrote {n}");
    assert!(
        !is_nonblocking(w.as_raw_fd()),
        "the loop changed the pipe's mode"
    );
    drop(w);
    let got = drainer.lock().unwrap().pop().unwrap().join().unwrap();
    assert_eq!(got.len(), filled + n);
    assert!(got[filled..] == data[..n], "the written bytes differ");
}

fn blocking_listener_accept_waits_for_a_client<B: Backend>() {
    let mut lp = new_loop::<B>();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let clients: Arc<std::sync::Mutex<Vec<TcpStream>>> = Arc::default();
    let c = clients.clone();
    let (res, _) = op_waits_past_a_timer(
        &mut lp,
        Op::Accept { fd: l.as_raw_fd() },
        "an accept on a blocking listener",
        move || c.lock().unwrap().push(TcpStream::connect(addr).unwrap()),
    );
    let fd = expect!(res, OpResult::Accept(Ok(fd)) => fd);
    let (fl, fdfl) = fd_flags(fd.as_raw_fd());
    assert!(
        fl & libc::O_NONBLOCK != 0,
        "the accepted socket is blocking"
    );
    assert!(
        fdfl & libc::FD_CLOEXEC != 0,
        "the accepted socket is not close-on-exec"
    );
    let peer = SockRef::from(&fd).peer_addr().unwrap().as_socket().unwrap();
    assert_eq!(peer, clients.lock().unwrap()[0].local_addr().unwrap());
    assert!(
        !is_nonblocking(l.as_raw_fd()),
        "the loop changed the listener's mode"
    );
}

/// A read on a blocking terminal (a pty's side) waits for a line; a write
/// to it goes through.
fn blocking_tty_read_waits_for_a_line<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (mut m, mut t) = (-1, -1);
    // SAFETY: `m` and `t` are live ints for the two new descriptors; the
    // name, termios and window size may be null.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut t,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    let (master, tty) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(t)) };
    assert!(!is_nonblocking(tty.as_raw_fd()));
    let mfd = master.as_raw_fd();
    let (res, op) = op_waits_past_a_timer(
        &mut lp,
        Op::Read {
            fd: tty.as_raw_fd(),
            buf: vec![0; 64],
        },
        "a read on a blocking tty",
        move || assert_eq!(raw_write(mfd, b"line\n"), 5),
    );
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"line\n");
    let (res, _) = run_op(
        &mut lp,
        Op::Write {
            fd: tty.as_raw_fd(),
            buf: b"out".to_vec(),
        },
        "a write to a blocking tty",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 3);
    assert!(
        !is_nonblocking(tty.as_raw_fd()),
        "the loop changed the tty's mode"
    );
}

/// Read, recv and recvmsg on blocking sockets wait for data.
fn blocking_socket_reads_wait_for_data<B: Backend>() {
    let mut lp = new_loop::<B>();
    for kind in ["read", "recv"] {
        let (c, s) = tcp_pair();
        set_nonblocking(s.as_raw_fd(), false);
        let (fd, cfd) = (s.as_raw_fd(), c.as_raw_fd());
        let buf = vec![0; 64];
        let op = match kind {
            "read" => Op::Read { fd, buf },
            _ => Op::Recv { fd, buf },
        };
        let (res, op) = op_waits_past_a_timer(
            &mut lp,
            op,
            &format!("a {kind} on a blocking socket"),
            move || assert_eq!(raw_write(cfd, b"ping"), 4),
        );
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"ping", "{kind}");
        assert!(
            !is_nonblocking(fd),
            "{kind}: the loop changed the socket's mode"
        );
    }

    let (a, _) = udp_socket();
    let (b, b_addr) = udp_socket();
    set_nonblocking(b.as_raw_fd(), false);
    let afd = a.as_raw_fd();
    let (res, op) = op_waits_past_a_timer(
        &mut lp,
        Op::Recvmsg(Msg::recv_from(b.as_raw_fd(), vec![0; 64])),
        "a recvmsg on a blocking UDP socket",
        move || {
            // SAFETY: `afd` is a live UDP socket for the whole test.
            let a = std::mem::ManuallyDrop::new(unsafe { UdpSocket::from_raw_fd(afd) });
            assert_eq!(a.send_to(b"dgram", b_addr).unwrap(), 5);
        },
    );
    let (n, from) = expect!(res, OpResult::RecvFrom(Ok(v)) => v);
    assert_eq!(&op.buf().unwrap()[..n], b"dgram");
    assert_eq!(from, Some(a.local_addr().unwrap()));
    assert!(!is_nonblocking(b.as_raw_fd()));

    // A read of nothing returns at once and leaves a queued datagram
    // alone, as read(2) does.
    a.send_to(b"kept", b_addr).unwrap();
    let (res, _) = run_op(
        &mut lp,
        Op::Read {
            fd: b.as_raw_fd(),
            buf: Vec::new(),
        },
        "an empty read on a blocking UDP socket",
    );
    assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 0);
    let (res, op) = run_op(
        &mut lp,
        Op::Read {
            fd: b.as_raw_fd(),
            buf: vec![0; 64],
        },
        "the datagram after an empty read",
    );
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"kept");
}

/// Send, write and sendmsg to a full blocking socket wait until the peer
/// reads; a short count is fine.
fn blocking_socket_writes_wait_for_room<B: Backend>() {
    let mut lp = new_loop::<B>();
    let data: Vec<u8> = (0..1024 * 1024).map(|i| (i % 253) as u8).collect();
    // sendmsg with an address on a connected stream socket: Linux ignores
    // the address, the BSDs refuse it (EISCONN).
    let kinds: &[&str] = if cfg!(target_os = "linux") {
        &["send", "write", "sendmsg"]
    } else {
        &["send", "write"]
    };
    for &kind in kinds {
        let (c, s) = tcp_pair();
        set_nonblocking(c.as_raw_fd(), false);
        let filled = fill_blocking(c.as_raw_fd());
        let (fd, sfd) = (c.as_raw_fd(), s.as_raw_fd());
        let buf = data.clone();
        let op = match kind {
            "send" => Op::Send { fd, buf },
            "write" => Op::Write { fd, buf },
            // A connected stream socket ignores the address (Linux).
            _ => Op::Sendmsg(Msg::send_to(fd, buf, s.local_addr().unwrap())),
        };
        let drainer: Arc<std::sync::Mutex<Vec<_>>> = Arc::default();
        let d = drainer.clone();
        let (res, _) = op_waits_past_a_timer(
            &mut lp,
            op,
            &format!("a {kind} to a full blocking socket"),
            move || d.lock().unwrap().push(drain_on_a_thread(sfd)),
        );
        let n = expect!(res, OpResult::Write(Ok(n)) => n);
        assert!(n > 0 && n <= data.len(), "{kind} wrote {n}");
        assert!(
            !is_nonblocking(fd),
            "{kind}: the loop changed the socket's mode"
        );
        c.shutdown(Shutdown::Write).unwrap();
        let got = drainer.lock().unwrap().pop().unwrap().join().unwrap();
        assert_eq!(got.len(), filled + n, "{kind}");
        assert!(got[filled..] == data[..n], "{kind}: the sent bytes differ");
    }
}

/// A connect of a blocking socket to a listener whose accept queue is full
/// (its SYN is dropped) waits until the listener accepts and the SYN is
/// sent again (about a second), without blocking the loop; the socket is
/// still blocking afterwards.
fn blocking_socket_connect_waits<B: Backend>() {
    let mut lp = new_loop::<B>();
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    // Backlog 0: one connection fills the accept queue.
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let first = TcpStream::connect(addr).unwrap();
    // Wait (for the event, no margin) until that connection is queued.
    let mut pfd = libc::pollfd {
        fd: l.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a live array of one pollfd.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 5_000) }, 1);
    let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    assert!(!is_nonblocking(client.as_raw_fd()));
    let lfd = l.as_raw_fd();
    let (res, _) = op_waits_past_a_timer(
        &mut lp,
        Op::connect(client.as_raw_fd(), addr),
        "a connect of a blocking socket to a full listener",
        move || {
            // SAFETY: `lfd` is the live listener; accept takes no addresses.
            let fd = unsafe { libc::accept(lfd, std::ptr::null_mut(), std::ptr::null_mut()) };
            assert!(fd >= 0, "accept: {}", std::io::Error::last_os_error());
            // SAFETY: a new descriptor nothing else owns (closed at once).
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        },
    );
    expect!(res, OpResult::Connect(Ok(())));
    assert!(
        !is_nonblocking(client.as_raw_fd()),
        "the loop changed the socket's mode"
    );
    assert_eq!(
        client.peer_addr().unwrap().as_socket(),
        Some(addr),
        "connected to the listener"
    );
    drop(first);
}

/// 2 GiB: more than a 32-bit signed length, and than Linux's `MAX_RW_COUNT`.
const HUGE: usize = 1 << 31;

/// Send, write, pwrite and sendmsg of a 2 GiB buffer give a short count
/// (sendmsg of a datagram that large: `EMSGSIZE`), on every backend.
fn huge_buffer_writes_give_short_counts<B: Backend>() {
    let mut lp = new_loop_with_pool::<B>();
    // Allocated once, zeroed lazily: the kernel reads only what it sends.
    let mut buf = vec![0u8; HUGE];
    let (c, _s) = tcp_pair();
    let (res, mut op) = run_op(
        &mut lp,
        Op::Send {
            fd: c.as_raw_fd(),
            buf,
        },
        "a 2 GiB send",
    );
    let n = expect!(res, OpResult::Write(Ok(n)) => n);
    assert!(n > 0 && n < HUGE, "send of 2 GiB: {n}");
    buf = op.take_buf().unwrap();

    let (_r, w) = pipe();
    let (res, mut op) = run_op(
        &mut lp,
        Op::Write {
            fd: w.as_raw_fd(),
            buf,
        },
        "a 2 GiB write",
    );
    let n = expect!(res, OpResult::Write(Ok(n)) => n);
    assert!(n > 0 && n < HUGE, "write of 2 GiB: {n}");
    buf = op.take_buf().unwrap();

    // A connected stream socket: Linux ignores the address (the BSDs
    // refuse it with EISCONN).
    if cfg!(target_os = "linux") {
        let (c, s) = tcp_pair();
        let peer = s.local_addr().unwrap();
        let (res, mut op) = run_op(
            &mut lp,
            Op::Sendmsg(Msg::send_to(c.as_raw_fd(), buf, peer)),
            "a 2 GiB sendmsg on a stream socket",
        );
        let n = expect!(res, OpResult::Write(Ok(n)) => n);
        assert!(n > 0 && n < HUGE, "sendmsg of 2 GiB: {n}");
        buf = op.take_buf().unwrap();
    }

    // pwrite to /dev/null takes everything it is given without reading it:
    // exactly the clamped length.
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let (res, mut op) = run_op(
        &mut lp,
        Op::Pwrite {
            fd: null.as_raw_fd(),
            buf,
            offset: 0,
        },
        "a 2 GiB pwrite to /dev/null",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 0x7fff_f000);
    buf = op.take_buf().unwrap();

    let (u, _) = udp_socket();
    let (_, to) = udp_socket();
    let (res, _) = run_op(
        &mut lp,
        Op::Sendmsg(Msg::send_to(u.as_raw_fd(), buf, to)),
        "a 2 GiB datagram",
    );
    assert_eq!(errno(&res), Some(libc::EMSGSIZE), "{res:?}");
}

/// Read, recv, recvmsg and pread into a 2 GiB buffer return what there is.
fn huge_buffer_reads_return_what_is_there<B: Backend>() {
    let mut lp = new_loop_with_pool::<B>();
    let mut buf = vec![0u8; HUGE];

    let (r, w) = pipe();
    assert_eq!(raw_write(w.as_raw_fd(), b"pipe"), 4);
    let (res, mut op) = run_op(
        &mut lp,
        Op::Read {
            fd: r.as_raw_fd(),
            buf,
        },
        "a 2 GiB read",
    );
    assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 4);
    buf = op.take_buf().unwrap();
    assert_eq!(&buf[..4], b"pipe");

    let (c, s) = tcp_pair();
    assert_eq!(raw_write(c.as_raw_fd(), b"socket"), 6);
    let (res, mut op) = run_op(
        &mut lp,
        Op::Recv {
            fd: s.as_raw_fd(),
            buf,
        },
        "a 2 GiB recv",
    );
    assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 6);
    buf = op.take_buf().unwrap();
    assert_eq!(&buf[..6], b"socket");

    let (a, a_addr) = udp_socket();
    let (b, b_addr) = udp_socket();
    a.send_to(b"datagram", b_addr).unwrap();
    let (res, mut op) = run_op(
        &mut lp,
        Op::Recvmsg(Msg::recv_from(b.as_raw_fd(), buf)),
        "a 2 GiB recvmsg",
    );
    assert_eq!(
        expect!(res, OpResult::RecvFrom(Ok(v)) => v),
        (8, Some(a_addr))
    );
    buf = op.take_buf().unwrap();
    assert_eq!(&buf[..8], b"datagram");

    let f = temp_file("huge-pread");
    std::io::Write::write_all(&mut &f, b"file").unwrap();
    let (res, op) = run_op(
        &mut lp,
        Op::Pread {
            fd: f.as_raw_fd(),
            buf,
            offset: 0,
        },
        "a 2 GiB pread",
    );
    assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 4);
    assert_eq!(&op.buf().unwrap()[..4], b"file");
}

// ---------------------------------------------------------------------------
// Closes and the events of other descriptors; order of a close and its victims
// ---------------------------------------------------------------------------

/// Pending operations on `fd` that the test keeps apart from others: a read
/// and a readable poll.
fn read_and_poll<B: Backend>(lp: &mut Loop<B>, fd: RawFd) -> (Pending, Pending) {
    let rd = submit(
        lp,
        Op::Read {
            fd,
            buf: vec![0; 8],
        },
    );
    let pl = submit(
        lp,
        Op::Poll {
            fd,
            interest: Interest::READABLE,
        },
    );
    (rd, pl)
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
            buf: vec![0; 8],
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(rd_a.calls() + pl_a.calls() + rd_b.calls(), 0, "no data yet");
    // B becomes readable while nobody polls; then A is closed.
    assert_eq!(raw_write(wb.as_raw_fd(), b"for b"), 5);
    let cl = submit(&mut lp, Op::Close { fd: ra });
    run_until(&mut lp, "the read on B after A's close", || {
        rd_b.done() && cl.done() && rd_a.done() && pl_a.done()
    });
    settle(&mut lp);
    expect!(cl.take().0, OpResult::Close(Ok(())));
    expect!(rd_a.take().0, OpResult::Read(Err(ReadError::Canceled)));
    expect!(pl_a.take().0, OpResult::Poll(Err(PollError::Canceled)));
    let (res, op) = rd_b.take();
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"for b");
    assert_eq!(lp.active(), 0);
}

/// A pidfd for child `pid` (Linux), or -1 where process waits ignore it
/// (kqueue watches the pid). `Err` where pidfds are forbidden.
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

/// Closing a pipe through the loop while a child's exit is being waited
/// for, after the child exited but before the loop collected the exit:
/// the exit is still delivered. kqueue under libkqueue lost it (its
/// one-shot `EVFILT_PROC` event was collected and dropped by the close's
/// deregistration).
fn close_keeps_a_pending_process_exit<B: Backend>() {
    let mut child = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .expect("spawning sleep");
    let pid = child.id() as i32;
    let pidfd = match pidfd_for(pid) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("pidfd_open unavailable here ({e}): skipping");
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
    };
    let mut lp = new_loop::<B>();
    let (ra, _wa) = pipe();
    let ra = ra.into_raw_fd();
    let (rd_a, pl_a) = read_and_poll(&mut lp, ra);
    let exit = submit(
        &mut lp,
        Op::ProcWait {
            pid,
            fd: pidfd.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(rd_a.calls() + pl_a.calls() + exit.calls(), 0);
    // The child exits while nobody polls; then the pipe is closed.
    child.kill().unwrap();
    wait_exited_unreaped(pid);
    let cl = submit(&mut lp, Op::Close { fd: ra });
    run_until(&mut lp, "the child's exit after the pipe's close", || {
        exit.done() && cl.done() && rd_a.done() && pl_a.done()
    });
    settle(&mut lp);
    expect!(exit.take().0, OpResult::ProcExit(Ok(())));
    expect!(cl.take().0, OpResult::Close(Ok(())));
    expect!(rd_a.take().0, OpResult::Read(Err(ReadError::Canceled)));
    expect!(pl_a.take().0, OpResult::Poll(Err(PollError::Canceled)));
    assert_eq!(lp.active(), 0);
    // The wait did not reap the child: its status is still there.
    use std::os::unix::process::ExitStatusExt;
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
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
    let ops = [
        (
            Op::Read {
                fd: rfd,
                buf: vec![0; 8],
            },
            "read",
        ),
        (
            Op::Poll {
                fd: rfd,
                interest: Interest::READABLE,
            },
            "poll",
        ),
        (Op::Close { fd: rfd }, "close"),
    ];
    for (i, (op, name)) in ops.into_iter().enumerate() {
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
        if i == 1 {
            // The read and the poll are waiting before the close starts.
            lp.run(RunMode::NoWait).unwrap();
            assert!(log.borrow().is_empty(), "no data yet: {:?}", log.borrow());
        }
    }
    run_until(&mut lp, "the close and its victims", || {
        log.borrow().len() == 3
    });
    settle(&mut lp);
    let log = log.borrow();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(
        log[2], "close",
        "the close completed before the operations it canceled: {log:?}"
    );
    assert_eq!(lp.active(), 0);
}

// ---------------------------------------------------------------------------
// Instantiation
// ---------------------------------------------------------------------------

macro_rules! backend_tests {
    ($module:ident, $backend:ty, $probe:expr) => {
        backend_tests!(@tests $module, $backend, $probe;
            backend_name_is_reported,
            async_wake_consumed_by_a_dropped_loop_is_not_lost,
            stale_after_nowait_disarm,
            ready_at_submission_rearm_fires_once_each,
            cancel_after_rearm_of_ready_read,
            one_batch_retire_fires_once,
            udp_zero_length_datagram_is_not_eof,
            fd_closed_outside_the_loop_and_reused,
            run_nowait_never_blocks,
            run_once_returns_after_a_callback,
            run_until_done_runs_everything,
            run_with_nothing_active_returns_at_once,
            stop_ends_until_done_with_work_active,
            stop_defers_the_remaining_callbacks,
            now_advances_and_update_now,
            timer_set_after_setup_counts_from_when_it_was_set,
            noop_completes_once,
            noop_rearm_fires_n_times,
            timer_rearm_fires_n_times,
            rearm_with_changed_op,
            park_then_op_mut_and_restart,
            id_errors_busy_stale_wrong_kind,
            free_parked_drops_callback_once,
            free_from_own_callback,
            disarm_drops_callback_once,
            timers_fire_in_deadline_order,
            equal_deadlines_fire_in_insertion_order,
            timer_in_the_past_fires_on_next_tick,
            timer_reset_moves_a_pending_timer_later,
            timer_reset_moves_a_pending_timer_earlier,
            timer_reset_before_first_run,
            timer_reset_starts_a_parked_timer,
            timer_reset_from_own_callback_rearms,
            timer_reset_of_an_undelivered_timer,
            cancel_timer,
            far_future_timers_do_not_overflow,
            far_future_wait_is_woken_by_other_work,
            cancel_pending_accept,
            cancel_pending_pipe_read,
            cancel_pending_socket_read,
            cancel_pending_recv,
            cancel_pending_recvmsg,
            cancel_pending_write,
            cancel_pending_poll,
            cancel_pending_async_wait,
            cancel_pending_connect,
            cancel_stale_id_is_not_found,
            cancel_parked_is_not_found,
            cancel_of_undelivered_result_is_already_finished,
            cancel_of_queued_target,
            tcp_full_conversation,
            tcp_pending_read_sees_eof_when_peer_closes,
            tcp_eof_after_peer_shutdown,
            tcp_connect_refused,
            tcp_send_to_closed_peer_breaks,
            tcp_reset_gives_econnreset,
            tcp_read_and_write_on_one_socket,
            tcp_several_pending_accepts,
            udp_sendmsg_recvmsg_round_trip,
            udp_connected_send_recv,
            pipe_write_then_read,
            pipe_eof_when_writer_closed,
            pipe_write_to_closed_reader_is_epipe,
            read_into_empty_buffer_is_not_eof,
            file_pread_pwrite,
            file_pread_pwrite_without_pool,
            file_read_write_at_cursor,
            poll_readable_after_peer_writes,
            poll_writable_right_away,
            poll_reports_hangup,
            close_cancels_pending_ops_on_the_fd,
            bad_fd_minus_one,
            bad_fd_closed_number,
            wrong_kind_of_fd_gives_honest_errno,
            async_notified_many_times_from_a_thread,
            async_notify_before_wait_is_not_lost,
            async_notifications_coalesce,
            async_several_handles,
            drop_loop_with_read_in_flight,
            drop_loop_with_timer_pending,
            drop_loop_with_undelivered_results,
            drop_loop_with_parked_and_unstarted,
            drop_loop_with_many_kinds_in_flight,
            drop_loop_with_cancel_queued,
            udp_ipv6_round_trip,
            recvmsg_rearmed_for_several_datagrams,
            more_ops_than_ring_entries,
            many_timers_with_cancels_and_resets,
            stale_id_never_reaches_a_reused_slot,
            loop_cancel_direct,
            add_parked_starts_only_on_restart,
            pread_offset_out_of_range_is_einval,
            write_of_empty_buffer_is_ok_zero,
            cancel_file_op_exactly_once,
            tcp_large_transfer_with_short_writes,
            partial_reads_leave_the_rest,
            poll_rearmed_while_ready_fires_again,
            two_waits_on_one_async,
            callback_sees_itself_inactive,
            nested_run_from_a_callback,
            panic_in_callback_leaves_loop_usable,
            panic_in_drop_of_captures_drops_once,
            pending_write_gets_epipe_when_reader_closes,
            fd_number_reused_after_loop_close,
            many_file_ops_concurrently,
            rearm_across_op_kinds,
            // the cancellation contract
            two_cancels_of_one_pending_read,
            loop_cancel_answers,
            cancel_completes_after_its_target,
            timer_reset_after_undelivered_cancel,
            // blocking descriptors and huge buffers
            blocking_pipe_read_waits_for_data,
            blocking_pipe_write_waits_for_room,
            blocking_listener_accept_waits_for_a_client,
            blocking_tty_read_waits_for_a_line,
            blocking_socket_reads_wait_for_data,
            blocking_socket_writes_wait_for_room,
            blocking_socket_connect_waits,
            huge_buffer_writes_give_short_counts,
            huge_buffer_reads_return_what_is_there,
            // closes
            close_keeps_other_descriptors_events,
            close_keeps_a_pending_process_exit,
            close_completes_after_the_ops_it_cancels,
        );
    };
    (@tests $module:ident, $backend:ty, $probe:expr; $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    let probe: std::io::Result<()> = $probe;
                    if let Err(e) = probe {
                        eprintln!(
                            "{} unavailable here ({e}): skipping {}",
                            stringify!($module),
                            stringify!($name)
                        );
                        return;
                    }
                    let _watchdog = crate::Watchdog::start(concat!(
                        stringify!($module),
                        "::",
                        stringify!($name)
                    ));
                    crate::$name::<$backend>();
                }
            )*
        }
    };
}

#[cfg(target_os = "linux")]
backend_tests!(
    io_uring,
    xev::backend::io_uring::IoUring,
    xev::backend::io_uring::IoUring::probe()
);
#[cfg(target_os = "linux")]
backend_tests!(epoll, xev::backend::epoll::Epoll, Ok(()));
// The dynamic backend runs whichever of the two this host allows (or what
// XEV_BACKEND forces); the whole suite must hold for it too.
#[cfg(target_os = "linux")]
backend_tests!(
    dynamic,
    xev::backend::dynamic::Dynamic,
    xev::backend::dynamic::choose().map(|_| ())
);

// kqueue through libkqueue on Linux (RUSTFLAGS="--cfg xev_libkqueue", see the
// README); on macOS and FreeBSD this runs natively.
#[cfg(any(xev_libkqueue, target_os = "macos", target_os = "freebsd"))]
backend_tests!(kqueue, xev::backend::kqueue::Kqueue, Ok(()));
