//! The Unix system interface: one attempt at an operation's syscall (which
//! the readiness backends retry when the descriptor becomes ready, and the
//! thread pool runs blocking), descriptor and socket helpers, and the few
//! calls whose spelling differs between systems. Submodules: the wakeup
//! descriptor ([`wake`]), the readiness pollers (`epoll` on Linux, `kqueue`
//! on the BSDs and macOS, or on Linux against libkqueue) and child
//! processes ([`process`]).

#[cfg(target_os = "linux")]
pub(crate) mod epoll;
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    all(target_os = "linux", xev_libkqueue)
))]
pub(crate) mod kqueue;
pub(crate) mod poller;
#[cfg(unix)]
pub(crate) mod process;
#[cfg(unix)]
pub(crate) mod fs;
#[cfg(unix)]
pub(crate) mod resolve;
#[cfg(unix)]
pub(crate) mod signal;
#[cfg(unix)]
pub(crate) mod wake;
// WASI's own versions of what it does differently (no processes, no
// resolver, no threads to wake a loop, a std-only filesystem).
#[cfg(target_os = "wasi")]
pub(crate) use super::wasi::{fs, process, resolve, signal, wake};

pub(crate) mod fd;
pub(crate) mod types;

pub(crate) use fd::*;
pub(crate) use types::*;
pub(crate) use process::*;
pub(crate) use resolve::lookup;
pub use wake::Waker;

// Preview 1 cannot create or connect sockets.
#[cfg(all(target_os = "wasi", target_env = "p1"))]
pub(crate) use super::wasi::{connect_start, socket_error};
#[cfg(target_os = "wasi")]
pub(crate) use super::wasi::pipe;

// The few calls and constants that WASI's libc lacks (or spells its own
// way) come from `sys/wasi` there.
#[cfg(unix)]
use libc::{recvmsg, sendmsg, MSG_DONTWAIT, PIPE_BUF, SHUT_RD, SHUT_RDWR, SHUT_WR};
#[cfg(all(unix, not(any(target_os = "linux", target_os = "freebsd"))))]
use libc::accept;
#[cfg(target_os = "wasi")]
use super::wasi::compat::{
    accept, recvmsg, sendmsg, MSG_DONTWAIT, PIPE_BUF, SHUT_RD, SHUT_RDWR, SHUT_WR,
};

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
use std::io;
use std::os::fd::RawFd;

use crate::op::{io_len, Op};
use crate::record::Core;

/// `send`/`sendmsg` flags: no SIGPIPE where the flag exists (elsewhere Rust
/// programs ignore SIGPIPE by default, and EPIPE comes back as an error).
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
/// `send`/`sendmsg` flags (see the Linux variant).
#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

/// How a readiness backend performs a read, write or accept on a
/// descriptor, so that the syscall never blocks (see [`fd_mode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FdMode {
    /// Non-blocking, or a kind of file that never waits for readiness (a
    /// regular file, a block device, a directory), or a read or write the
    /// descriptor's access mode refuses at once: the plain syscall.
    Direct,
    /// A blocking socket: a read or write goes through `recv`/`send` with
    /// `MSG_DONTWAIT`; an accept waits until the socket polls readable.
    Socket,
    /// Any other blocking descriptor (a pipe, a tty, ...): the syscall only
    /// once the descriptor polls ready, and a write of at most `PIPE_BUF`
    /// bytes (what a pipe that polls writable takes without waiting).
    Gated,
}

/// Classifies `fd` for a read (`write == false`) or a write (see
/// [`FdMode`]): one `fcntl(F_GETFL)`, and an `fstat` only when the
/// descriptor is blocking.
pub(crate) fn fd_mode(fd: RawFd, write: bool) -> FdMode {
    // SAFETY: fcntl on a descriptor number takes no pointers.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // A bad descriptor fails the syscall itself at once.
    if fl < 0 || fl & libc::O_NONBLOCK != 0 {
        return FdMode::Direct;
    }
    // So does a read of a write-only descriptor (and the reverse), which a
    // readiness check would never find ready.
    let refused = if write {
        libc::O_RDONLY
    } else {
        libc::O_WRONLY
    };
    if fl & libc::O_ACCMODE == refused {
        return FdMode::Direct;
    }
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is live, writable memory for one `stat`.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } < 0 {
        return FdMode::Gated;
    }
    // SAFETY: fstat succeeded, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => FdMode::Socket,
        libc::S_IFREG | libc::S_IFBLK | libc::S_IFDIR => FdMode::Direct,
        _ => FdMode::Gated,
    }
}

/// `accept` returning a non-blocking, close-on-exec socket.
fn accept_nonblocking(fd: RawFd) -> isize {
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        // SAFETY: null address pointers are allowed.
        unsafe {
            libc::accept4(
                fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            ) as isize
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        // SAFETY: null address pointers are allowed.
        let new = unsafe { accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) };
        if new >= 0 && set_nonblocking_cloexec(new).is_err() {
            // errno still holds fcntl's error (a successful close leaves it
            // alone); the caller turns -1 into that error.
            // SAFETY: `new` is ours and unused.
            unsafe { libc::close(new) };
            return -1;
        }
        new as isize
    }
}

/// A buffer to read into: its address and its length, limited to
/// [`MAX_IO_LEN`].
fn buf_ptr(buf: &mut crate::buf::Buf) -> (*mut libc::c_void, usize) {
    (buf.as_mut_ptr().cast(), io_len(buf.len()))
}

/// One attempt at the syscall of `core`'s operation. Returns the raw result
/// (`-EAGAIN` when a non-blocking descriptor is not ready). Connect, poll,
/// timer, noop and cancel are handled by their callers.
///
/// `recv`, `send`, `recvmsg` and `sendmsg` pass `MSG_DONTWAIT`, so they
/// never block, whatever the socket's mode; read, write and accept are the
/// plain syscalls (see [`perform_as`] for blocking descriptors). Lengths are
/// limited to [`MAX_IO_LEN`].
///
/// # Safety
/// `core` is live and not accessed elsewhere during the call.
pub(crate) unsafe fn perform(core: *mut Core) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { perform_as(core, FdMode::Direct) }
}

/// [`perform`] for a read or write on a descriptor of the given mode (see
/// [`fd_mode`]): on a blocking socket a read or write is a `recv` or `send`
/// with `MSG_DONTWAIT` (and no other flag, as `read` and `write` have
/// none); after a `Gated` descriptor polled writable a write asks for at
/// most `PIPE_BUF` bytes. Waiting for readiness is the caller's part.
///
/// # Safety
/// As for [`perform`].
pub(crate) unsafe fn perform_as(core: *mut Core, mode: FdMode) -> i32 {
    // SAFETY: the caller gives us exclusive access to a live core, whose
    // op's buffers are valid.
    unsafe { perform_op(&mut (*core).op, mode) }
}

/// [`perform_as`] on an operation outside any completion.
///
/// # Safety
/// The op's buffers are valid for the call (a raw [`crate::Buf`]'s region
/// per its constructor's contract).
pub(crate) unsafe fn perform_op(op: &mut Op, mode: FdMode) -> i32 {
    // SAFETY: every pointer passed to the kernel below points into the op's
    // buffers, valid for the duration of the (synchronous) call per the
    // contract, and every length is at most the buffer's.
    unsafe {
        // WASI has no per-call non-blocking flag: a socket call on a
        // blocking socket is made only once a zero-timeout poll finds it
        // ready.
        #[cfg(target_os = "wasi")]
        if let Some(r) = super::wasi::socket_gate(op, mode) {
            return r;
        }
        let r: isize = match op {
            Op::Accept { fd } => accept_nonblocking(*fd),
            Op::Read { fd, buf } => {
                let (p, n) = buf_ptr(buf);
                // A read of nothing returns at once and, unlike a recv of
                // nothing, never consumes a datagram.
                if mode == FdMode::Socket && n > 0 {
                    libc::recv(*fd, p, n, MSG_DONTWAIT)
                } else {
                    libc::read(*fd, p, n)
                }
            }
            Op::Write { fd, buf } => {
                let n = match mode {
                    FdMode::Gated => buf.len().min(PIPE_BUF),
                    _ => io_len(buf.len()),
                };
                if mode == FdMode::Socket {
                    libc::send(*fd, buf.as_ptr().cast(), n, MSG_DONTWAIT)
                } else {
                    libc::write(*fd, buf.as_ptr().cast(), n)
                }
            }
            Op::Pread { fd, buf, offset } => {
                let (p, n) = buf_ptr(buf);
                match libc::off_t::try_from(*offset) {
                    Ok(off) => libc::pread(*fd, p, n, off),
                    Err(_) => return -libc::EINVAL,
                }
            }
            Op::Pwrite { fd, buf, offset } => match libc::off_t::try_from(*offset) {
                Ok(off) => libc::pwrite(*fd, buf.as_ptr().cast(), io_len(buf.len()), off),
                Err(_) => return -libc::EINVAL,
            },
            Op::Recv { fd, buf } => {
                let (p, n) = buf_ptr(buf);
                libc::recv(*fd, p, n, MSG_DONTWAIT)
            }
            Op::RecvPool(r) => {
                // The buffer is taken for the call only: one that got no
                // data goes straight back.
                let Some(id) = r.pool.0.take() else {
                    return crate::buf_pool::NO_BUFFERS;
                };
                let n = libc::recv(r.fd, r.pool.0.buf_ptr(id).cast(), r.pool.0.size(), MSG_DONTWAIT);
                if n > 0 {
                    r.got = Some(id);
                } else {
                    r.pool.0.give_back(id);
                }
                n
            }
            Op::Send { fd, buf } => libc::send(
                *fd,
                buf.as_ptr().cast(),
                io_len(buf.len()),
                SEND_FLAGS | MSG_DONTWAIT,
            ),
            Op::Recvmsg(m) => {
                let hdr = m.prepare(true);
                recvmsg(m.fd, hdr, MSG_DONTWAIT)
            }
            Op::Sendmsg(m) => {
                let hdr = m.prepare(false);
                sendmsg(m.fd, hdr, SEND_FLAGS | MSG_DONTWAIT)
            }
            Op::Shutdown { fd, how } => libc::shutdown(
                *fd,
                match how {
                    std::net::Shutdown::Read => SHUT_RD,
                    std::net::Shutdown::Write => SHUT_WR,
                    std::net::Shutdown::Both => SHUT_RDWR,
                },
            ) as isize,
            Op::Close { fd } => libc::close(*fd) as isize,
            Op::Fs(f) => {
                return f.run();
            }
            Op::Resolve(r) => {
                r.run();
                0
            }
            Op::Connect { .. }
            | Op::AsyncWait(_)
            | Op::ProcWait { .. }
            | Op::Poll { .. }
            | Op::Noop
            | Op::Timer { .. }
            | Op::Cancel { .. } => return -libc::EINVAL,
        };
        syscall_result(r)
    }
}

/// Starts a non-blocking connect. Returns 0, `-EINPROGRESS` or an error.
///
/// There is no per-call flag for a non-blocking connect: a blocking
/// connection-oriented socket is made non-blocking for the `connect(2)`
/// call only, and its flags are put back at once (the connection goes on in
/// the kernel; its outcome is read with [`socket_error`] once the socket
/// polls writable). Another thread starting a call on the same socket
/// during that switch would see it non-blocking; a socket that is being
/// connected has nothing to send or receive yet. Datagram sockets, whose
/// connect never waits, and descriptors that are not sockets are never
/// switched.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub(crate) fn connect_start(fd: RawFd, addr: &socket2::SockAddr) -> i32 {
    // SAFETY: fcntl on a descriptor number takes no pointers.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    let switch = fl >= 0
        && fl & libc::O_NONBLOCK == 0
        && socket_type(fd).is_some_and(is_connection_type);
    // SAFETY: as above.
    if switch && unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0 {
        return neg_errno();
    }
    // SAFETY: `addr` points at a valid socket address of `addr.len()` bytes.
    let r = unsafe { libc::connect(fd, addr.as_ptr().cast(), addr.len()) };
    let res = if r < 0 { neg_errno() } else { 0 };
    if switch {
        // SAFETY: as above. Nothing better to do if it fails (it cannot on
        // a descriptor that the first F_SETFL accepted).
        unsafe { libc::fcntl(fd, libc::F_SETFL, fl) };
    }
    res
}

/// Whether a socket type is connection-oriented (WASI has stream sockets
/// only).
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn is_connection_type(ty: libc::c_int) -> bool {
    #[cfg(unix)]
    let seqpacket = ty == libc::SOCK_SEQPACKET;
    #[cfg(target_os = "wasi")]
    let seqpacket = false;
    ty == libc::SOCK_STREAM || seqpacket
}

/// A socket's type (`SO_TYPE`), or `None` when `fd` is not a socket.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn socket_type(fd: RawFd) -> Option<libc::c_int> {
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `ty` and `len` are live locals of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(ty)
}

/// The pending error of a socket (`SO_ERROR`), as a raw result.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub(crate) fn socket_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are live locals of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        neg_errno()
    } else {
        -err
    }
}

/// A new non-blocking, close-on-exec socket (atomically where the system
/// allows it).
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub(crate) fn nonblocking_socket(
    domain: socket2::Domain,
    ty: socket2::Type,
    protocol: Option<socket2::Protocol>,
) -> io::Result<socket2::Socket> {
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        socket2::Socket::new(domain, ty.nonblocking().cloexec(), protocol)
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        let s = socket2::Socket::new(domain, ty, protocol)?;
        // (Not socket2's: its fcntl cannot change a WASI preview 2 socket.)
        set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&s))?;
        // WASI has neither exec nor signals.
        #[cfg(unix)]
        {
            s.set_cloexec(true)?;
            // No MSG_NOSIGNAL here: keep a dead peer from raising SIGPIPE.
            s.set_nosigpipe(true)?;
        }
        Ok(s)
    }
}

