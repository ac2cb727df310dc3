//! Blocking descriptors and huge buffers. An operation on a descriptor
//! without `O_NONBLOCK` must work as on a non-blocking one, without
//! blocking the loop: a timer due while it waits fires first (the order of
//! callbacks is what these tests check, never a time margin). Buffers of 2
//! GiB and more give short counts, never `EINVAL`.
//!
//! On Windows a "blocking" pipe is an anonymous pipe (its handles opened
//! for synchronous I/O), which IOCP reads and writes on the thread pool,
//! so its loops have one; a blocking socket is one in blocking mode
//! (`FIONBIO` off); `O_NONBLOCK` on a pipe is `PIPE_NOWAIT`. Windows cannot
//! read a socket's mode back, so [`is_nonblocking`] asks the socket (see
//! there); a listener's mode cannot be asked, and ttys are Unix-only.

use crate::support::*;

/// A loop for operations on blocking descriptors: IOCP hands a synchronous
/// handle's reads and writes to the thread pool, so on Windows it has one.
fn blocking_loop<B: Backend>() -> OwnedLoop<B> {
    if cfg!(windows) {
        new_loop_with_pool::<B>()
    } else {
        new_loop::<B>()
    }
}

/// A pipe without `O_NONBLOCK` (close-on-exec): (read end, write end).
#[cfg(unix)]
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
#[cfg(any(unix, target_os = "wasi"))]
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

#[cfg(any(unix, target_os = "wasi"))]
fn is_nonblocking(fd: RawFd) -> bool {
    fd_flags(fd).0 & libc::O_NONBLOCK != 0
}

#[cfg(windows)]
use windows_blocking::*;

/// Windows' blocking pipes and sockets.
#[cfg(windows)]
mod windows_blocking {
    use std::os::windows::io::{FromRawHandle, FromRawSocket, OwnedHandle};

    use windows_sys::Win32::Foundation::{GetHandleInformation, HANDLE, HANDLE_FLAG_INHERIT};
    use windows_sys::Win32::Networking::WinSock as ws;
    use windows_sys::Win32::System::Pipes::{
        CreatePipe, GetNamedPipeHandleStateW, SetNamedPipeHandleState, PIPE_NOWAIT, PIPE_WAIT,
    };

    use crate::support::*;

    /// An anonymous pipe, both handles opened for synchronous I/O and not
    /// inheritable: (read end, write end).
    pub fn blocking_pipe() -> (PipeEnd, PipeEnd) {
        let (mut r, mut w): (HANDLE, HANDLE) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: `r` and `w` are live locals for the two new handles; no
        // security attributes (not inheritable), the default buffer size.
        let ok = unsafe { CreatePipe(&mut r, &mut w, std::ptr::null(), 0) };
        assert_ne!(ok, 0, "CreatePipe: {}", std::io::Error::last_os_error());
        // SAFETY: both handles are new and owned by nothing else.
        unsafe {
            (
                PipeEnd(OwnedHandle::from_raw_handle(r)),
                PipeEnd(OwnedHandle::from_raw_handle(w)),
            )
        }
    }

    /// Puts a socket in non-blocking mode or out of it (`FIONBIO`), or a
    /// pipe handle in `PIPE_NOWAIT` mode or back in `PIPE_WAIT`.
    pub fn set_nonblocking(fd: RawFd, on: bool) {
        if is_socket(fd) {
            let mut arg = on as u32;
            // SAFETY: `arg` is a live local for the argument.
            let r = unsafe { ws::ioctlsocket(fd, ws::FIONBIO, &mut arg) };
            assert_eq!(r, 0, "FIONBIO: {}", std::io::Error::last_os_error());
        } else {
            let mode = if on { PIPE_NOWAIT } else { PIPE_WAIT };
            // SAFETY: `mode` is a live local; the other settings stay.
            let ok = unsafe {
                SetNamedPipeHandleState(fd as HANDLE, &mode, std::ptr::null(), std::ptr::null())
            };
            assert_ne!(ok, 0, "PIPE_NOWAIT: {}", std::io::Error::last_os_error());
        }
    }

    /// Whether `fd` is in non-blocking mode: a pipe handle's `PIPE_NOWAIT`;
    /// a socket's `FIONBIO`, which Windows cannot read back, so the socket
    /// is asked: a peek with a 1 ms receive timeout answers `WSAEWOULDBLOCK`
    /// at once in non-blocking mode, `WSAETIMEDOUT` after the timeout in
    /// blocking mode (the error says which, not the time). The socket must
    /// be connected (or a bound UDP socket) with nothing to read.
    pub fn is_nonblocking(fd: RawFd) -> bool {
        if !is_socket(fd) {
            let mut state = 0u32;
            // SAFETY: `state` is a live local; the other outputs are
            // not asked for.
            let ok = unsafe {
                GetNamedPipeHandleStateW(
                    fd as HANDLE,
                    &mut state,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    0,
                )
            };
            assert_ne!(ok, 0, "pipe state: {}", std::io::Error::last_os_error());
            return state & PIPE_NOWAIT != 0;
        }
        // SAFETY: `fd` is a live socket; the Socket is never dropped, so
        // it never closes what it does not own.
        let s = std::mem::ManuallyDrop::new(unsafe { Socket::from_raw_socket(fd as _) });
        let old = s.read_timeout().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut b = [std::mem::MaybeUninit::uninit(); 1];
        let r = s.peek(&mut b);
        s.set_read_timeout(old).unwrap();
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => false,
            other => panic!("asking the socket's mode: {other:?} (it must have nothing to read)"),
        }
    }

    /// Whether the handle is inheritable (Windows' "not close-on-exec").
    pub fn is_inheritable(fd: RawFd) -> bool {
        let mut flags = 0u32;
        // SAFETY: `flags` is a live local.
        let ok = unsafe { GetHandleInformation(fd as HANDLE, &mut flags) };
        assert_ne!(ok, 0, "handle flags: {}", std::io::Error::last_os_error());
        flags & HANDLE_FLAG_INHERIT != 0
    }

    /// Waits until the listener `fd` has a connection to accept.
    pub fn wait_for_a_connection(fd: RawFd) {
        let mut pfd = ws::WSAPOLLFD {
            fd,
            events: ws::POLLRDNORM,
            revents: 0,
        };
        // SAFETY: `pfd` is a live array of one WSAPOLLFD.
        assert_eq!(unsafe { ws::WSAPoll(&mut pfd, 1, 5_000) }, 1);
    }
}

/// Waits until the listener `fd` has a connection to accept.
#[cfg(any(unix, target_os = "wasi"))]
fn wait_for_a_connection(fd: RawFd) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a live array of one pollfd.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 5_000) }, 1);
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
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "filling: {e}");
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
                    assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "draining: {e}");
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

/// Each of `kinds` (send, write, sendmsg) of 1 MiB to a full blocking
/// socket waits until the peer reads; a short count is fine.
fn socket_writes_wait_for_room<B: Backend>(kinds: &[&str]) {
    let mut lp = new_loop::<B>();
    let data: Vec<u8> = (0..1024 * 1024).map(|i| (i % 253) as u8).collect();
    for &kind in kinds {
        let (c, s) = tcp_pair();
        set_nonblocking(c.as_raw_fd(), false);
        let filled = fill_blocking(c.as_raw_fd());
        let (fd, sfd) = (c.as_raw_fd(), s.as_raw_fd());
        let buf = data.clone();
        let op = match kind {
            "send" => Op::Send {
                fd,
                buf: buf.into(),
            },
            "write" => Op::Write {
                fd,
                buf: buf.into(),
            },
            // A connected stream socket ignores the address (Linux, Windows).
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

/// 2 GiB: more than a 32-bit signed length, and than Linux's `MAX_RW_COUNT`.
const HUGE: usize = 1 << 31;

/// The platform's "message too long" error: `EMSGSIZE`, `WSAEMSGSIZE`.
const MESSAGE_TOO_LONG: i32 = if cfg!(windows) { 10040 } else { libc::EMSGSIZE };

for_each_backend!(
    #[cfg(not(target_os = "wasi"))]
    fn blocking_pipe_read_waits_for_data<B: Backend>() {
        let mut lp = blocking_loop::<B>();
        let (r, w) = blocking_pipe();
        let wfd = w.as_raw_fd();
        let (res, op) = op_waits_past_a_timer(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 64].into(),
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
                buf: vec![0; 64].into(),
            },
        );
        let b = submit(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 64].into(),
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
    #[cfg(not(target_os = "wasi"))]
    fn blocking_pipe_write_waits_for_room<B: Backend>() {
        let mut lp = blocking_loop::<B>();
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
                buf: data.clone().into(),
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

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
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
        #[cfg(any(unix, target_os = "wasi"))]
        {
            let (fl, fdfl) = fd_flags(fd.as_raw_fd());
            assert!(
                fl & libc::O_NONBLOCK != 0,
                "the accepted socket is blocking"
            );
            assert!(
                fdfl & libc::FD_CLOEXEC != 0,
                "the accepted socket is not close-on-exec"
            );
        }
        #[cfg(windows)]
        {
            assert!(
                is_nonblocking(fd.as_raw_fd()),
                "the accepted socket is blocking"
            );
            assert!(
                !is_inheritable(fd.as_raw_fd()),
                "the accepted socket is inheritable"
            );
        }
        let peer = SockRef::from(&fd).peer_addr().unwrap().as_socket().unwrap();
        assert_eq!(peer, clients.lock().unwrap()[0].local_addr().unwrap());
        // (Windows cannot ask a listener its mode.)
        #[cfg(any(unix, target_os = "wasi"))]
        assert!(
            !is_nonblocking(l.as_raw_fd()),
            "the loop changed the listener's mode"
        );
    }

    /// A read on a blocking terminal (a pty's side) waits for a line; a write
    /// to it goes through. (Unix: ptys.)
    #[cfg(unix)]
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
                buf: vec![0; 64].into(),
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
                buf: b"out".to_vec().into(),
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
                "read" => Op::Read {
                    fd,
                    buf: buf.into(),
                },
                _ => Op::Recv {
                    fd,
                    buf: buf.into(),
                },
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
        let sender = a.try_clone().unwrap();
        let (res, op) = op_waits_past_a_timer(
            &mut lp,
            Op::Recvmsg(Msg::recv_from(b.as_raw_fd(), vec![0; 64])),
            "a recvmsg on a blocking UDP socket",
            move || assert_eq!(sender.send_to(b"dgram", b_addr).unwrap(), 5),
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
                buf: Vec::new().into(),
            },
            "an empty read on a blocking UDP socket",
        );
        assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 0);
        let (res, op) = run_op(
            &mut lp,
            Op::Read {
                fd: b.as_raw_fd(),
                buf: vec![0; 64].into(),
            },
            "the datagram after an empty read",
        );
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"kept");
    }

    /// Send, write and sendmsg to a full blocking socket wait until the peer
    /// reads; a short count is fine.
    fn blocking_socket_writes_wait_for_room<B: Backend>() {
        // sendmsg with an address on a connected stream socket: Linux (and
        // Windows) ignore the address, the BSDs refuse it (EISCONN). On
        // Windows `write` has a scenario of its own (see
        // `blocking_socket_write_file_waits_for_room`).
        let kinds: &[&str] = if cfg!(target_os = "linux") {
            &["send", "write", "sendmsg"]
        } else if cfg!(windows) {
            &["send", "sendmsg"]
        } else {
            &["send", "write"]
        };
        socket_writes_wait_for_room::<B>(kinds);
    }

    /// Windows: a write (`WriteFile`) to a full blocking socket waits until
    /// the peer reads, as a send does. A scenario of its own so that wine,
    /// which never completes a socket's `WriteFile` that had to wait, skips
    /// it alone (see `harness::NOT_UNDER_WINE`).
    #[cfg(windows)]
    fn blocking_socket_write_file_waits_for_room<B: Backend>() {
        socket_writes_wait_for_room::<B>(&["write"]);
    }

    /// A connect of a blocking socket to a listener whose accept queue is full
    /// (its SYN is dropped) waits until the listener accepts and the SYN is
    /// sent again (about a second), without blocking the loop; the socket is
    /// still blocking afterwards.
    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
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
        wait_for_a_connection(l.as_raw_fd());
        let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        // (Windows can ask a socket its mode only once it is connected.)
        #[cfg(any(unix, target_os = "wasi"))]
        assert!(!is_nonblocking(client.as_raw_fd()));
        let l = Arc::new(l);
        let acceptor = l.clone();
        let (res, _) = op_waits_past_a_timer(
            &mut lp,
            Op::connect(client.as_raw_fd(), addr),
            "a connect of a blocking socket to a full listener",
            // The accepted connection is closed at once.
            move || drop(acceptor.accept().expect("accept")),
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

    /// Send, write, pwrite and sendmsg of a 2 GiB buffer give a short count
    /// (sendmsg of a datagram that large: `EMSGSIZE`), on every backend.
    ///
    /// On IOCP an overlapped send or pipe write completes whole or waits (a
    /// 2 GiB one to a peer that never reads waits for ever): there the
    /// pwrite (to `NUL`, through the thread pool: clamped too) and the
    /// datagram apply.
    fn huge_buffer_writes_give_short_counts<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        // Allocated once, zeroed lazily: the kernel reads only what it sends.
        let mut buf = vec![0u8; HUGE];
        if cfg!(unix) {
            let (c, _s) = tcp_pair();
            let (res, mut op) = run_op(
                &mut lp,
                Op::Send {
                    fd: c.as_raw_fd(),
                    buf: buf.into(),
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
                    buf: buf.into(),
                },
                "a 2 GiB write",
            );
            let n = expect!(res, OpResult::Write(Ok(n)) => n);
            assert!(n > 0 && n < HUGE, "write of 2 GiB: {n}");
            buf = op.take_buf().unwrap();
        }

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
            .open(if cfg!(windows) { "NUL" } else { "/dev/null" })
            .unwrap();
        let (res, mut op) = run_op(
            &mut lp,
            Op::Pwrite {
                fd: null.as_raw_fd(),
                buf: buf.into(),
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
        assert_eq!(errno(&res), Some(MESSAGE_TOO_LONG), "{res:?}");
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
                buf: buf.into(),
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
                buf: buf.into(),
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
                buf: buf.into(),
                offset: 0,
            },
            "a 2 GiB pread",
        );
        assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 4);
        assert_eq!(&op.buf().unwrap()[..4], b"file");
    }
);
