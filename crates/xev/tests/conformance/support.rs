//! What the conformance tests share: loops, the guarded [`run_until`],
//! [`submit`] and [`Pending`] (an operation whose callback records its
//! result), [`expect!`], errno helpers, and the descriptors the tests work
//! on (pipes, sockets, files, closed and high descriptor numbers). Every
//! topic module glob-imports it, together with the `std`, `socket2` and
//! `xev` names re-exported here.

pub use std::cell::{Cell, RefCell};
pub use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
#[cfg(any(unix, target_os = "wasi"))]
pub use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
pub use std::rc::Rc;
pub use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub use socket2::{Domain, SockRef, Socket, Type};
pub use xev::backend::Backend;
pub use xev::generic::{Loop, OwnedLoop};
pub use xev::{
    AcceptError, Action, Async, AsyncError, CancelError, ConnectError, Id, IdError, Interest, Msg,
    NoopError, Op, OpResult, Options, PollError, ReadError, RunMode, ThreadPool, TimerError,
    WriteError,
};

// ---------------------------------------------------------------------------
// Loops and operations
// ---------------------------------------------------------------------------

/// How long one wait may take before the test fails (loop milliseconds):
/// a guard against hangs, never a speed check. Under Miri, which runs some
/// tests on the real clock and is ~100 times slower, a minute; on Windows
/// too (the tests run under wine, where an operation on a 2 GiB buffer
/// alone takes over a second).
pub const GUARD_MS: u64 = if cfg!(any(miri, windows)) {
    60_000
} else {
    5_000
};

pub fn new_loop<B: Backend>() -> OwnedLoop<B> {
    Loop::<B>::new(Options::default()).expect("creating the loop")
}

pub fn new_loop_with_pool<B: Backend>() -> OwnedLoop<B> {
    // WASI has no threads, so no pool: its backend runs file operations
    // inline, which is what the pool does for the tests that ask for one.
    if cfg!(target_os = "wasi") {
        return new_loop::<B>();
    }
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
pub fn run_until<B: Backend>(lp: &mut Loop<B>, what: &str, mut done: impl FnMut() -> bool) {
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
pub fn settle<B: Backend>(lp: &mut Loop<B>) {
    for _ in 0..3 {
        lp.run(RunMode::NoWait).expect("Loop::run");
    }
}

/// One submitted operation whose callback records every result it gets
/// (together with the operation, buffer included) and disarms.
pub struct Pending {
    pub id: Id,
    out: Rc<RefCell<Vec<(OpResult, Op)>>>,
    pub calls: Rc<Cell<usize>>,
}

impl Pending {
    pub fn calls(&self) -> usize {
        self.calls.get()
    }

    pub fn done(&self) -> bool {
        self.calls.get() > 0
    }

    pub fn take(&self) -> (OpResult, Op) {
        assert_eq!(self.calls.get(), 1, "callback must fire exactly once");
        self.out.borrow_mut().pop().expect("a recorded result")
    }
}

pub fn submit<B: Backend>(lp: &mut Loop<B>, op: Op) -> Pending {
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
pub fn wait<B: Backend>(lp: &mut Loop<B>, p: &Pending, what: &str) -> (OpResult, Op) {
    run_until(lp, what, || p.done());
    settle(lp);
    p.take()
}

pub fn run_op<B: Backend>(lp: &mut Loop<B>, op: Op, what: &str) -> (OpResult, Op) {
    let p = submit(lp, op);
    wait(lp, &p, what)
}

/// Counts how many times it was dropped: proves a callback's closure was
/// dropped exactly once.
pub struct DropCount(pub Rc<Cell<usize>>);

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
#[cfg_attr(any(windows, target_os = "wasi"), allow(dead_code))] // used by Unix-only topics
pub fn errno(res: &OpResult) -> Option<i32> {
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

pub use crate::harness::is_bad_handle;

/// Whether `code` is the platform's "broken pipe" error (a write with no
/// reader left): `EPIPE` on Unix; on Windows `ERROR_NO_DATA` (the pipe is
/// being closed) or `ERROR_BROKEN_PIPE`, which the standard library reads
/// as `ErrorKind::BrokenPipe` too.
pub fn is_broken_pipe(code: Option<i32>) -> bool {
    #[cfg(any(unix, target_os = "wasi"))]
    return code == Some(libc::EPIPE);
    #[cfg(windows)]
    return matches!(code, Some(232) | Some(109));
}

/// The platform's "not a socket" error: `ENOTSOCK`, `WSAENOTSOCK`.
pub const NOT_A_SOCKET: i32 = if cfg!(windows) { 10038 } else { libc::ENOTSOCK };

/// The platform's "invalid argument" error: `EINVAL`, `WSAEINVAL` (a
/// socket call's).
pub const INVALID_ARGUMENT: i32 = if cfg!(windows) { 10022 } else { libc::EINVAL };

/// The `io::ErrorKind` of the OS error inside a result, if any.
pub fn error_kind(res: &OpResult) -> Option<std::io::ErrorKind> {
    errno(res).map(|e| std::io::Error::from_raw_os_error(e).kind())
}

#[cfg_attr(any(windows, target_os = "wasi"), allow(dead_code))]
pub fn errno_name(e: i32) -> String {
    format!("{} ({e})", std::io::Error::from_raw_os_error(e))
}

// ---------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------

#[cfg(any(unix, target_os = "wasi"))]
pub use crate::test_pipes::pipe;

#[cfg(any(unix, target_os = "wasi"))]
/// Blocking-free `write(2)` from the test side; returns bytes written.
pub fn raw_write(fd: RawFd, data: &[u8]) -> isize {
    // wasi-libc's write(2) on a preview 2 socket blocks whatever the
    // socket's mode; its send(2) does not.
    #[cfg(target_os = "wasi")]
    {
        // SAFETY: sends from a live slice of the given length.
        let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), 0) };
        if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOTSOCK) {
            return n;
        }
    }
    // SAFETY: writes from a live slice of the given length.
    unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) }
}

#[cfg(any(unix, target_os = "wasi"))]
/// `read(2)` from the test side; returns bytes read (or -1).
pub fn raw_read(fd: RawFd, buf: &mut [u8]) -> isize {
    // As in raw_write: recv(2), which honours the mode, on a WASI socket.
    #[cfg(target_os = "wasi")]
    {
        // SAFETY: receives into a live mutable slice of the given length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOTSOCK) {
            return n;
        }
    }
    // SAFETY: reads into a live mutable slice of the given length.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

#[cfg(any(unix, target_os = "wasi"))]
/// Blocks until `fd` is readable (data, end of file or an error), then reads
/// as [`raw_read`] does. For data the loop sent over a socket: a completed
/// send means the data left us, not that it reached the peer (wasmtime's
/// preview 2 sockets flush on a host task, for one).
pub fn read_when_ready(fd: RawFd, buf: &mut [u8]) -> isize {
    wait_for(fd, libc::POLLIN);
    raw_read(fd, buf)
}

#[cfg(any(unix, target_os = "wasi"))]
/// Blocks until `fd` reports one of `events` (or an error or hangup).
fn wait_for(fd: RawFd, events: libc::c_short) {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: polls one live pollfd; -1 waits without a time limit.
    let n = unsafe { libc::poll(&mut p, 1, -1) };
    assert_eq!(n, 1, "poll: {}", std::io::Error::last_os_error());
}

#[cfg(any(unix, target_os = "wasi"))]
/// Blocks until `fd` is writable, then writes as [`raw_write`] does. For
/// a few bytes on an idle non-blocking socket, which may still refuse
/// them for a moment: a preview 2 socket under wasmtime answers `EAGAIN`
/// to a send that follows another before the host flushed it.
pub fn write_when_ready(fd: RawFd, data: &[u8]) -> isize {
    wait_for(fd, libc::POLLOUT);
    raw_write(fd, data)
}

#[cfg(any(unix, target_os = "wasi"))]
/// Fills a non-blocking pipe (or socket) until it would block.
pub fn fill(fd: RawFd) {
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
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    for s in [&client, &server] {
        // std does it with `fcntl`, which wasi-libc cannot do to a preview 2
        // socket (and says nothing): `ioctl(FIONBIO)` there.
        #[cfg(target_os = "wasi")]
        fionbio(s.as_raw_fd());
        #[cfg(not(target_os = "wasi"))]
        s.set_nonblocking(true).unwrap();
    }
    (client, server)
}

/// A non-blocking TCP socket, not connected.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub fn tcp_socket() -> OwnedFd {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    make_nonblocking(&s);
    s.into()
}

/// Makes a `socket2` socket non-blocking. socket2 does it with `fcntl`,
/// which wasi-libc cannot do to a preview 2 socket; `ioctl(FIONBIO)` can.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub fn make_nonblocking(s: &Socket) {
    #[cfg(target_os = "wasi")]
    fionbio(s.as_raw_fd());
    #[cfg(not(target_os = "wasi"))]
    s.set_nonblocking(true).unwrap();
}

/// Makes `fd` non-blocking with `ioctl(FIONBIO)`, the one way wasi-libc
/// has for a preview 2 socket.
#[cfg(target_os = "wasi")]
pub fn fionbio(fd: RawFd) {
    let mut on: libc::c_int = 1;
    // SAFETY: `on` is a live int that ioctl reads.
    let r = unsafe { libc::ioctl(fd, libc::FIONBIO, &mut on) };
    assert_eq!(r, 0, "FIONBIO: {}", std::io::Error::last_os_error());
}

/// A non-blocking UDP socket bound to an ephemeral loopback port.
pub fn udp_socket() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    s.set_nonblocking(true).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

#[cfg(unix)]
/// A high descriptor number that nothing holds and no other test thread
/// will be handed (descriptors are allocated lowest first), distinct for
/// every call so that tests running in parallel never share one.
pub fn high_fd_number() -> RawFd {
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

#[cfg(unix)]
/// A descriptor number that is certainly closed: a pipe end is duplicated
/// to a fresh high number and closed again.
pub fn closed_fd() -> RawFd {
    let hi = high_fd_number();
    let (r, _w) = pipe();
    // SAFETY: plain descriptor syscalls; `hi` is unused by anyone else.
    unsafe {
        assert_eq!(libc::dup2(r.as_raw_fd(), hi), hi, "dup2");
        assert_eq!(libc::close(hi), 0, "close");
    }
    hi
}

/// Where tests make their files: the system's temporary directory; on
/// WASI the current directory, the one the runner preopens
/// (`wasmtime run --dir .`).
pub fn scratch_dir() -> std::path::PathBuf {
    if cfg!(target_os = "wasi") {
        std::path::PathBuf::from(".")
    } else {
        std::env::temp_dir()
    }
}

/// This process's id, to keep file names apart (0 on WASI, which has no
/// process ids and runs one test binary per sandbox).
pub fn process_id() -> u32 {
    if cfg!(target_os = "wasi") {
        0
    } else {
        std::process::id()
    }
}

/// A descriptor number that is certainly closed: a file is opened and
/// closed again (a WASI program has one thread, so nothing takes the
/// number before the test uses it).
#[cfg(target_os = "wasi")]
pub fn closed_fd() -> RawFd {
    temp_file("closed").as_raw_fd()
}

/// A temporary read-write file, already unlinked.
pub fn temp_file(tag: &str) -> std::fs::File {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = scratch_dir().join(format!(
        "xev-conformance-{}-{tag}-{}",
        process_id(),
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

#[cfg(any(unix, target_os = "wasi"))]
pub fn fd_flags(fd: RawFd) -> (libc::c_int, libc::c_int) {
    // SAFETY: fcntl queries take no pointers.
    unsafe {
        (
            libc::fcntl(fd, libc::F_GETFL),
            libc::fcntl(fd, libc::F_GETFD),
        )
    }
}

/// The raw handle of a socket, as operations take it: its descriptor on
/// Unix, its `SOCKET` on Windows.
pub fn raw<S: AsRawSock>(s: &S) -> xev::RawHandle {
    s.raw_sock()
}

/// A socket with a raw handle (see [`raw`]).
pub trait AsRawSock {
    fn raw_sock(&self) -> xev::RawHandle;
}

#[cfg(any(unix, target_os = "wasi"))]
impl<T: std::os::fd::AsRawFd> AsRawSock for T {
    fn raw_sock(&self) -> xev::RawHandle {
        self.as_raw_fd()
    }
}

#[cfg(windows)]
impl<T: std::os::windows::io::AsRawSocket> AsRawSock for T {
    fn raw_sock(&self) -> xev::RawHandle {
        self.as_raw_socket() as xev::RawHandle
    }
}

/// On Windows the Unix names the topics use (`RawFd`, `OwnedFd`,
/// `as_raw_fd`, `into_raw_fd`, `pipe`, `raw_write`, `raw_read`, `fill`)
/// stand for a raw handle, an owned socket, and a pipe made by xev's own
/// `Stream::pipe` (an overlapped named pipe), so that a topic written
/// against a Unix pipe runs unchanged on IOCP. The test side's reads and
/// writes of a pipe act like non-blocking ones (see `win_io`).
#[cfg(windows)]
mod windows_names {
    use std::os::windows::io::{
        AsRawHandle, AsRawSocket, FromRawHandle, IntoRawHandle, IntoRawSocket, OwnedHandle,
        OwnedSocket,
    };

    use windows_sys::Win32::Foundation::{
        DuplicateHandle, SetLastError, DUPLICATE_SAME_ACCESS, HANDLE,
    };
    use windows_sys::Win32::Networking::WinSock as ws;
    use windows_sys::Win32::System::Threading::GetCurrentProcess;

    pub type RawFd = xev::RawHandle;
    pub type OwnedFd = OwnedSocket;

    pub trait AsRawFd {
        fn as_raw_fd(&self) -> RawFd;
    }

    macro_rules! sockets {
        ($($t:ty),*) => {$(
            impl AsRawFd for $t {
                fn as_raw_fd(&self) -> RawFd {
                    self.as_raw_socket() as RawFd
                }
            }
        )*};
    }
    sockets!(
        OwnedSocket,
        std::net::TcpStream,
        std::net::TcpListener,
        std::net::UdpSocket,
        socket2::Socket
    );

    impl AsRawFd for std::fs::File {
        fn as_raw_fd(&self) -> RawFd {
            self.as_raw_handle() as RawFd
        }
    }

    pub trait IntoRawFd {
        fn into_raw_fd(self) -> RawFd;
    }

    impl<T: IntoRawSocket> IntoRawFd for T {
        fn into_raw_fd(self) -> RawFd {
            self.into_raw_socket() as RawFd
        }
    }

    /// One end of a pipe (closed when dropped).
    #[derive(Debug)]
    pub struct PipeEnd(pub OwnedHandle);

    impl AsRawFd for PipeEnd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_raw_handle() as RawFd
        }
    }

    impl IntoRawFd for PipeEnd {
        fn into_raw_fd(self) -> RawFd {
            self.0.into_raw_handle() as RawFd
        }
    }

    /// A pipe as xev makes one (`Stream::pipe`: a byte-mode named pipe,
    /// both ends overlapped): (read end, write end). The ends are
    /// duplicates of the streams' handles, which are closed again, so the
    /// test owns the only handles to the pipe.
    pub fn pipe() -> (PipeEnd, PipeEnd) {
        let (r, w) =
            xev::watcher::Stream::<xev::backend::iocp::Iocp>::pipe().expect("Stream::pipe");
        (duplicate(r.fd()), duplicate(w.fd()))
    }

    /// A new handle to what `h` is open as.
    fn duplicate(h: RawFd) -> PipeEnd {
        let mut out: HANDLE = std::ptr::null_mut();
        // SAFETY: `h` is a live handle of this process; `out` is a live
        // local for the new handle.
        let ok = unsafe {
            DuplicateHandle(
                GetCurrentProcess(),
                h as HANDLE,
                GetCurrentProcess(),
                &mut out,
                0,
                0,
                DUPLICATE_SAME_ACCESS,
            )
        };
        assert_ne!(
            ok,
            0,
            "DuplicateHandle: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a new handle that nothing else owns.
        PipeEnd(unsafe { OwnedHandle::from_raw_handle(out) })
    }

    /// Whether `h` is a socket (it has a socket type).
    pub fn is_socket(h: RawFd) -> bool {
        let mut ty = 0i32;
        let mut len = std::mem::size_of::<i32>() as i32;
        // SAFETY: `ty` and `len` are live locals of the sizes given.
        let r = unsafe {
            ws::getsockopt(
                h,
                ws::SOL_SOCKET,
                ws::SO_TYPE,
                (&mut ty as *mut i32).cast(),
                &mut len,
            )
        };
        r == 0
    }

    /// `send` (a socket) or `WriteFile` (anything else, through `win_io`)
    /// from the test side; returns bytes written, or -1 with the error in
    /// `GetLastError`.
    pub fn raw_write(fd: RawFd, data: &[u8]) -> isize {
        if is_socket(fd) {
            // SAFETY: sends from a live slice of the given length.
            return unsafe { ws::send(fd, data.as_ptr(), data.len() as i32, 0) as isize };
        }
        as_raw(crate::win_io::write(fd, data))
    }

    /// `recv` (a socket) or `ReadFile` (anything else, through `win_io`)
    /// from the test side; returns bytes read (0 at end of file, or once
    /// the pipe's writer is gone), or -1 with the error in `GetLastError`.
    pub fn raw_read(fd: RawFd, buf: &mut [u8]) -> isize {
        if is_socket(fd) {
            // SAFETY: receives into a live mutable slice of the given length.
            return unsafe { ws::recv(fd, buf.as_mut_ptr(), buf.len() as i32, 0) as isize };
        }
        as_raw(crate::win_io::read(fd, buf))
    }

    /// Blocks until the socket `fd` is readable, then reads as
    /// [`raw_read`] does (anything else is read at once).
    pub fn read_when_ready(fd: RawFd, buf: &mut [u8]) -> isize {
        if is_socket(fd) {
            wait_for(fd, ws::POLLRDNORM);
        }
        raw_read(fd, buf)
    }

    /// Blocks until the socket `fd` reports one of `events` (or an error
    /// or hangup).
    fn wait_for(fd: RawFd, events: i16) {
        let mut p = ws::WSAPOLLFD {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: polls one live WSAPOLLFD; -1 waits without a time limit.
        let n = unsafe { ws::WSAPoll(&mut p, 1, -1) };
        assert_eq!(n, 1, "WSAPoll: {}", std::io::Error::last_os_error());
    }

    /// Blocks until the socket `fd` is writable, then writes as
    /// [`raw_write`] does (anything else is written at once).
    pub fn write_when_ready(fd: RawFd, data: &[u8]) -> isize {
        if is_socket(fd) {
            wait_for(fd, ws::POLLWRNORM);
        }
        raw_write(fd, data)
    }

    /// The result of one of `win_io`'s calls, as the Unix calls give it:
    /// -1 with the error in `GetLastError` (whose value `WSAGetLastError`
    /// and `io::Error::last_os_error` read).
    fn as_raw(r: std::io::Result<usize>) -> isize {
        match r {
            Ok(n) => n as isize,
            Err(e) => {
                let code = e.raw_os_error().expect("an OS error") as u32;
                // SAFETY: sets the calling thread's last-error value.
                unsafe { SetLastError(code) };
                -1
            }
        }
    }

    /// Fills a non-blocking socket or pipe until it would block.
    pub fn fill(fd: RawFd) {
        let chunk = [0x55u8; 4096];
        while raw_write(fd, &chunk) >= 0 {}
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "filling: {e}");
    }
}
#[cfg(windows)]
pub use windows_names::*;

/// A handle number that no one holds: handle values are small multiples
/// of four, allocated lowest first, so this one is never reached by a
/// test process.
#[cfg(windows)]
pub fn closed_fd() -> RawFd {
    0x0fff_fffc
}

/// The open file `fd`, as a `File` that is never dropped (it does not own
/// the descriptor or handle).
pub fn borrow_file(fd: RawFd) -> std::mem::ManuallyDrop<std::fs::File> {
    // SAFETY: the caller keeps `fd` open while the File is used; the File
    // is never dropped, so it never closes what it does not own.
    #[cfg(any(unix, target_os = "wasi"))]
    let f = unsafe { std::fs::File::from_raw_fd(fd) };
    // SAFETY: as above.
    #[cfg(windows)]
    let f = unsafe { std::os::windows::io::FromRawHandle::from_raw_handle(fd as _) };
    std::mem::ManuallyDrop::new(f)
}

/// Reads `buf.len()` bytes at most at `offset` of `f` from the test side.
pub fn read_file_at(f: &std::fs::File, buf: &mut [u8], offset: u64) -> usize {
    #[cfg(unix)]
    let r = std::os::unix::fs::FileExt::read_at(f, buf, offset);
    // WASI's `FileExt` is unstable: `pread` directly.
    #[cfg(target_os = "wasi")]
    // SAFETY: `buf` is live, writable memory of `buf.len()` bytes.
    let r = match unsafe {
        libc::pread(
            std::os::fd::AsRawFd::as_raw_fd(f),
            buf.as_mut_ptr().cast(),
            buf.len(),
            offset as libc::off_t,
        )
    } {
        n if n < 0 => Err(std::io::Error::last_os_error()),
        n => Ok(n as usize),
    };
    #[cfg(windows)]
    let r = std::os::windows::fs::FileExt::seek_read(f, buf, offset);
    r.expect("reading the file from the test side")
}

/// A handle value that is never valid: -1 on Unix, `INVALID_SOCKET` on
/// Windows.
pub fn invalid_handle() -> RawFd {
    #[cfg(any(unix, target_os = "wasi"))]
    return -1;
    #[cfg(windows)]
    return usize::MAX;
}
