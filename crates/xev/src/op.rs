//! Operations: what a completion asks the loop to do, and what comes back.
//!
//! An [`Op`] owns everything the kernel may touch while the operation is in
//! flight (buffers, socket addresses, message headers), so that safe code can
//! never free or move that memory early: the loop holds the completion, and
//! the callback gets the op (with its buffer) back together with a typed
//! [`OpResult`].
//!
//! How operations treat blocking descriptors and huge buffers, the same on
//! every backend, is documented on [`Op`].

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::sys::types::SockAddr;

use crate::error::{
    AcceptError, AsyncError, CancelError, CloseError, ConnectError, FsError, NoopError, PollError,
    ProcessError, ReadError, ResolveError, ShutdownError, TimerError, WriteError, NO_THREAD_POOL,
};
use crate::fs::{Fs, FsOutput};
use crate::buf::Buf;
use crate::id::Id;
use crate::resolve::Resolve;
use crate::sys::types::{self as sys, MsgHeader};
use crate::Async;

pub use crate::sys::types::{OwnedHandle, RawHandle};

/// The most bytes one read or write asks the kernel for: Linux's
/// `MAX_RW_COUNT` (`INT_MAX` rounded down to a 4 KiB page), which Linux
/// applies to every read and write anyway. A larger buffer gets a short
/// count on every backend, instead of `EINVAL` from io_uring's 32-bit
/// lengths or from systems that reject counts above `INT_MAX` (macOS).
pub(crate) const MAX_IO_LEN: usize = 0x7fff_f000;

/// `len` limited to [`MAX_IO_LEN`].
pub(crate) fn io_len(len: usize) -> usize {
    len.min(MAX_IO_LEN)
}

/// Readiness a `poll` operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest(pub(crate) u8);

impl Interest {
    /// Wait until the file descriptor is readable (or hung up).
    pub const READABLE: Interest = Interest(1);
    /// Wait until the file descriptor is writable.
    pub const WRITABLE: Interest = Interest(2);
    /// Wait for either.
    pub const BOTH: Interest = Interest(3);

    /// Whether this includes readability.
    pub fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether this includes writability.
    pub fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }

    /// The platform's poll event mask for this interest.
    #[cfg(any(unix, target_os = "wasi"))]
    pub(crate) fn poll_mask(self) -> u32 {
        sys::poll_mask(self.is_readable(), self.is_writable())
    }
}

/// What a finished `poll` saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Data can be read (or the peer hung up, so a read will not block).
    pub readable: bool,
    /// Data can be written.
    pub writable: bool,
    /// The peer hung up.
    pub hangup: bool,
    /// An error is pending on the file descriptor.
    pub error: bool,
}

impl Readiness {
    /// Decodes a poll operation's raw result (the platform's event mask).
    pub(crate) fn from_poll_mask(m: i32) -> Readiness {
        let (readable, writable, hangup, error) = sys::poll_bits(m);
        Readiness {
            readable,
            writable,
            hangup,
            error,
        }
    }
}

/// The address a message holds before a receive writes the sender's (and
/// when it carries none).
const UNSPECIFIED: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// A message operation (`sendmsg`/`recvmsg`): a buffer plus a peer
/// address (`sendto`/`recvfrom`), or several buffers on a connected socket
/// (a vectored, scatter/gather, send or receive: [`Msg::send_vectored`],
/// [`Msg::recv_vectored`]). Boxed inside [`Op`] so that the message header
/// the kernel reads has a stable address and the common operations stay
/// small.
///
/// A vectored message fills (or sends) its buffers in order, `buf` first,
/// and may stop short like any read or write. On WASI, whose sockets have
/// no vectored calls, it moves only the first non-empty buffer (a short
/// count, as the contract allows).
pub struct Msg {
    /// The socket.
    pub fd: RawHandle,
    /// Data to send, or the buffer to receive into (its whole length).
    pub buf: Buf,
    /// The buffers after `buf` of a vectored message (empty otherwise).
    pub more: Vec<Buf>,
    /// Destination (send) or, after a receive, the sender.
    addr: SockAddr,
    /// Whether the message carries an address: a send's destination, a
    /// receive's sender (`false` for vectored messages, which are for
    /// connected sockets: some systems refuse an address there).
    with_addr: bool,
    /// The platform's message header, pointing at the buffers and `addr`.
    hdr: MsgHeader,
}

impl Msg {
    /// A `sendto`: send `buf` to `addr`.
    pub fn send_to(fd: RawHandle, buf: impl Into<Buf>, addr: SocketAddr) -> Box<Msg> {
        Self::boxed(fd, buf.into(), Vec::new(), Some(addr))
    }

    /// A `recvfrom`: receive into `buf` (its whole length) and record the sender.
    pub fn recv_from(fd: RawHandle, buf: impl Into<Buf>) -> Box<Msg> {
        Self::boxed(fd, buf.into(), Vec::new(), Some(UNSPECIFIED))
    }

    /// A vectored send on a connected socket (`sendmsg` with no
    /// destination): `bufs` in order, all or a prefix of their bytes.
    pub fn send_vectored(fd: RawHandle, bufs: Vec<Buf>) -> Box<Msg> {
        Self::vectored(fd, bufs)
    }

    /// A vectored receive on a connected socket (`recvmsg` with no
    /// address): fills `bufs` in order (the count may stop short of their
    /// total, like any read).
    pub fn recv_vectored(fd: RawHandle, bufs: Vec<Buf>) -> Box<Msg> {
        Self::vectored(fd, bufs)
    }

    /// A message of `bufs` with no address (a send and a receive differ
    /// only in the operation that carries the message).
    fn vectored(fd: RawHandle, mut bufs: Vec<Buf>) -> Box<Msg> {
        let buf = if bufs.is_empty() {
            Buf::default()
        } else {
            bufs.remove(0)
        };
        Self::boxed(fd, buf, bufs, None)
    }

    /// A message of `buf` and `more`, carrying an address if `addr` is
    /// given (the destination of a send; a receive's storage for the
    /// sender).
    fn boxed(fd: RawHandle, buf: Buf, more: Vec<Buf>, addr: Option<SocketAddr>) -> Box<Msg> {
        let hdr = if more.is_empty() {
            MsgHeader::new()
        } else {
            MsgHeader::with_capacity(more.len() + 1)
        };
        Box::new(Msg {
            fd,
            buf,
            more,
            addr: SockAddr::from(addr.unwrap_or(UNSPECIFIED)),
            with_addr: addr.is_some(),
            hdr,
        })
    }

    /// The total length of the buffers.
    pub fn len(&self) -> usize {
        self.buf.len() + self.more.iter().map(Buf::len).sum::<usize>()
    }

    /// Whether every buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address: the destination of a send, or the sender after a
    /// receive (none for a vectored message).
    pub fn addr(&self) -> Option<SocketAddr> {
        if !self.with_addr {
            return None;
        }
        self.addr.as_socket()
    }

    /// Sets the destination of a send.
    pub fn set_addr(&mut self, addr: SocketAddr) {
        self.addr = SockAddr::from(addr);
    }

    /// Points the message header at this message's buffer and address. Must
    /// be called (by the backend) right before the kernel sees `hdr`, after
    /// the message reached its final address.
    pub(crate) fn prepare(&mut self, receiving: bool) -> sys::RawMsg {
        let addr = self.with_addr.then_some(&mut self.addr);
        self.hdr.prepare(
            &mut self.buf,
            &mut self.more,
            MAX_IO_LEN,
            addr,
            receiving,
        )
    }

    /// After a receive: record the address length the kernel wrote.
    pub(crate) fn finish_recv(&mut self) {
        if !self.with_addr {
            return;
        }
        let len = self.hdr.name_len();
        // SAFETY: the kernel wrote a valid socket address of `len` bytes
        // into the storage that `prepare` pointed `msg_name` at.
        unsafe { self.addr.set_length(len) };
    }
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Msg")
            .field("fd", &self.fd)
            .field("len", &self.len())
            .field("buffers", &(1 + self.more.len()))
            .field("addr", &self.addr())
            .finish()
    }
}

/// An operation. Constructed by the caller, owned by the loop while in flight,
/// handed back (mutably) to the callback, which may inspect it, take its
/// buffer, or change it before returning [`crate::Action::Rearm`].
///
/// # Blocking descriptors
///
/// Every operation that takes a descriptor (accept, connect, read, write,
/// recv, send, recvmsg, sendmsg, poll, shutdown) works on a blocking
/// descriptor (one without `O_NONBLOCK`) as on a non-blocking one: it waits
/// for the descriptor without blocking the loop, and the loop never
/// changes the descriptor's mode for longer than one syscall. io_uring does
/// this in the kernel. The readiness backends (epoll, kqueue) make sure
/// that no syscall of theirs but the wait itself can block:
///
/// - recv, send, recvmsg and sendmsg pass `MSG_DONTWAIT` on every call;
///   poll checks readiness with a zero timeout; shutdown never waits.
/// - read, write and accept check the descriptor's mode when they start
///   (one `fcntl(F_GETFL)`, and an `fstat` if it is blocking). On a
///   blocking socket a read or write is made as `recv`/`send` with
///   `MSG_DONTWAIT` (same result); on any other blocking descriptor (a
///   pipe, a tty) and for an accept on a blocking socket, the syscall is
///   made only after a zero-timeout `poll` finds the descriptor ready, and
///   a write asks for at most `PIPE_BUF` bytes (what a pipe that polls
///   writable takes without waiting), so it may return a short count where
///   io_uring would have written more. Regular files and block devices are
///   read and written directly, as always.
/// - connect switches a blocking stream socket to non-blocking for the
///   `connect(2)` call only, and back at once.
///
/// Two limits remain on the readiness backends, both for blocking
/// descriptors shared with someone else: if another thread or process
/// takes the data (or the connection, or the room) between the readiness
/// check and the syscall, the loop blocks in that syscall until there is
/// more; and a
/// character device that polls writable but takes fewer bytes than the
/// write asks for (`PIPE_BUF` at most) makes the write wait for room.
/// Non-blocking descriptors have neither limit; make descriptors that
/// others also use non-blocking.
///
/// # Buffer lengths
///
/// A read or write family operation (read, write, pread, pwrite, recv,
/// send, recvmsg, sendmsg) asks the kernel for at most 0x7fff_f000 bytes
/// (Linux's `MAX_RW_COUNT`), whatever its buffer's length: a larger buffer
/// gets a short count on every backend, never `EINVAL`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Op {
    /// Completes on the next tick with no effect.
    Noop,
    /// Accept a connection on a listening socket. The new socket is
    /// non-blocking and close-on-exec.
    ///
    /// On io_uring the accepts of one listener share one multishot
    /// accept while they keep waiting (a rearmed accept costs no new
    /// entry); connections it takes while no accept waits go to the next
    /// accept on that listener, in order. A close of the listener through
    /// the loop, [`Loop::forget`](crate::Loop::forget) or the loop's drop
    /// closes such connections (elsewhere they would still wait in the
    /// listener's backlog).
    Accept {
        /// The listening socket.
        fd: RawHandle,
    },
    /// Connect a socket (blocking or not: see [`Op`](Op#blocking-descriptors)).
    Connect {
        /// The socket.
        fd: RawHandle,
        /// The peer address.
        addr: Box<SockAddr>,
    },
    /// `read(2)` into the whole of `buf`.
    Read {
        /// The file descriptor.
        fd: RawHandle,
        /// The buffer; its length is the most that is read.
        buf: Buf,
    },
    /// `write(2)` of the whole of `buf` (the result may be a short count).
    Write {
        /// The file descriptor.
        fd: RawHandle,
        /// The data.
        buf: Buf,
    },
    /// `pread(2)` at `offset`.
    Pread {
        /// The file descriptor.
        fd: RawHandle,
        /// The buffer; its length is the most that is read.
        buf: Buf,
        /// File offset.
        offset: u64,
    },
    /// `pwrite(2)` at `offset`.
    Pwrite {
        /// The file descriptor.
        fd: RawHandle,
        /// The data.
        buf: Buf,
        /// File offset.
        offset: u64,
    },
    /// `recv(2)` into the whole of `buf`.
    Recv {
        /// The socket.
        fd: RawHandle,
        /// The buffer.
        buf: Buf,
    },
    /// `recv(2)` into a buffer of a [`BufPool`](crate::BufPool), taken when
    /// the data is there (see [`Op::recv_pool`]).
    RecvPool(crate::PoolRecv),
    /// `send(2)` of the whole of `buf` (with `MSG_NOSIGNAL` where it exists).
    Send {
        /// The socket.
        fd: RawHandle,
        /// The data.
        buf: Buf,
    },
    /// `recvmsg(2)`: a `recvfrom` that records the sender in the message.
    Recvmsg(Box<Msg>),
    /// `sendmsg(2)`: a `sendto` to the message's address.
    Sendmsg(Box<Msg>),
    /// Wait until the file descriptor is ready.
    Poll {
        /// The file descriptor.
        fd: RawHandle,
        /// What to wait for.
        interest: Interest,
    },
    /// `shutdown(2)`.
    Shutdown {
        /// The socket.
        fd: RawHandle,
        /// Which half (or both).
        how: std::net::Shutdown,
    },
    /// `close(2)`. Always close descriptors the loop has waited on through
    /// this operation (not behind the loop's back), so readiness backends
    /// can forget the descriptor first. The descriptor belongs to the
    /// operation once it is queued: a loop dropped before starting it
    /// closes it then (a parked close is left alone).
    Close {
        /// The file descriptor.
        fd: RawHandle,
    },
    /// Fire at an absolute deadline on the loop's millisecond clock
    /// ([`crate::Loop::now`]). Deadlines in the past fire on the next tick;
    /// `u64::MAX` means never (until canceled or reset).
    Timer {
        /// Absolute deadline in loop milliseconds.
        deadline: u64,
    },
    /// Cancel another completion, which then completes with `Canceled`.
    Cancel {
        /// The completion to cancel.
        target: Id,
    },
    /// Wait until the [`Async`] handle has been notified (at least once
    /// since the last wait).
    AsyncWait(Async),
    /// Wait until the child process `pid` exits, without reaping it (the
    /// caller reaps it, e.g. with `waitid`/`waitpid`; the
    /// [`Process`](crate::watcher::Process) watcher does). On
    /// Linux `fd` is the process's pidfd, which io_uring and epoll watch;
    /// kqueue watches the pid itself (`EVFILT_PROC`, `NOTE_EXIT`) and
    /// ignores `fd` (pass -1 where there are no pidfds).
    ProcWait {
        /// The child's process id.
        pid: i32,
        /// Its pidfd on Linux, else -1.
        fd: RawHandle,
    },
    /// Resolve `host:port` with the system resolver on the loop's thread
    /// pool, on every backend (see [`Resolve`]); needs a loop with a pool.
    Resolve(Box<Resolve>),
    /// A filesystem operation (see [`Fs`]): in the kernel on io_uring where
    /// the kernel has the opcode, else on the loop's thread pool.
    Fs(Box<Fs>),
}

impl Op {
    /// A receive on socket `fd` into a buffer of `pool`, which must belong
    /// to the loop the receive goes to (else it fails with
    /// `ReadError::Io` of kind `InvalidInput`). Its result is
    /// [`OpResult::RecvPool`]: the filled [`PoolBuf`](crate::PoolBuf),
    /// `ReadError::Eof` when the peer closed its side, or
    /// `ReadError::NoBuffers` when every buffer of the pool was out (held
    /// by the program or by other receives) as the receive started or as
    /// its data came. A callback that returns
    /// [`Action::Rearm`](crate::Action::Rearm) receives again.
    ///
    /// The receive takes a buffer only once its data is there, so many
    /// idle receives share a small pool. On io_uring the kernel picks the
    /// buffer from a provided-buffer ring, and the pooled receives of one
    /// socket and pool share one multishot receive, which goes on while
    /// they keep receiving (no new entry per receive); on IOCP a receive
    /// of zero bytes waits for the data, then a receive into a buffer
    /// takes it.
    ///
    /// After a pooled receive, the loop may already hold more of the
    /// socket's data in the pool (io_uring's multishot took it before the
    /// callback ran): the next pooled receive on that socket and pool gets
    /// it first, in order. So read a socket that gets pooled receives only
    /// through pooled receives of one pool, and close it through the loop
    /// ([`Op::Close`] ends a pooled receive waiting on it, with
    /// `Canceled`, and frees what its data held);
    /// [`Loop::forget`](crate::Loop::forget) drops such data. Buffers
    /// holding data read ahead for a socket that no pooled receive waits on
    /// are not free for other sockets until that socket's next pooled
    /// receive takes them or it is closed: on io_uring a pool can run out
    /// (`NoBuffers`) where the readiness backends still have buffers. Two
    /// pooled receives at once on one socket both get data, in no set
    /// order.
    pub fn recv_pool(fd: RawHandle, pool: &crate::BufPool) -> Op {
        Op::RecvPool(crate::PoolRecv {
            fd,
            pool: pool.clone(),
            got: None,
        })
    }

    /// A `connect` to `addr`.
    pub fn connect(fd: RawHandle, addr: SocketAddr) -> Op {
        Op::Connect {
            fd,
            addr: Box::new(SockAddr::from(addr)),
        }
    }

    /// A timer that fires at `deadline` (loop milliseconds).
    pub fn timer(deadline: u64) -> Op {
        Op::Timer { deadline }
    }

    /// How this operation is carried out (see [`Plan`]): the one table that
    /// every backend and the loop dispatch on, so that a new operation is a
    /// compile error here first and then at each site that must perform it.
    pub(crate) fn plan(&self) -> Plan<'_> {
        match self {
            Op::Noop => Plan::Noop,
            Op::Timer { .. } => Plan::Timer,
            Op::Cancel { target } => Plan::Cancel(*target),
            Op::AsyncWait(a) => Plan::AsyncWait(a),
            Op::Accept { fd } | Op::Read { fd, .. } | Op::Recv { fd, .. } => Plan::Ready {
                fd: *fd,
                interest: Interest::READABLE,
            },
            Op::Recvmsg(m) => Plan::Ready {
                fd: m.fd,
                interest: Interest::READABLE,
            },
            Op::RecvPool(r) => Plan::Ready {
                fd: r.fd,
                interest: Interest::READABLE,
            },
            Op::Write { fd, .. } | Op::Send { fd, .. } | Op::Connect { fd, .. } => Plan::Ready {
                fd: *fd,
                interest: Interest::WRITABLE,
            },
            Op::Sendmsg(m) => Plan::Ready {
                fd: m.fd,
                interest: Interest::WRITABLE,
            },
            Op::Poll { fd, interest } => Plan::Ready {
                fd: *fd,
                interest: *interest,
            },
            // A process wait waits for its pidfd to become readable (or,
            // on kqueue, for `EVFILT_PROC` on the pid).
            Op::ProcWait { fd, .. } => Plan::Ready {
                fd: *fd,
                interest: Interest::READABLE,
            },
            Op::Shutdown { .. } => Plan::Once,
            Op::Pread { .. } | Op::Pwrite { .. } => Plan::File,
            Op::Close { fd } => Plan::Close { fd: *fd },
            Op::Resolve(_) => Plan::Pool,
            Op::Fs(_) => Plan::File,
        }
    }

    /// Whether this operation reads (so a result of 0 bytes is an end of
    /// file, and a pipe whose writer is gone reads as one).
    pub(crate) fn is_read(&self) -> bool {
        matches!(
            self,
            Op::Read { .. } | Op::Recv { .. } | Op::RecvPool(_) | Op::Recvmsg(_) | Op::Pread { .. }
        )
    }

    /// The descriptor (Windows: socket or file handle) this operation acts
    /// on, if any.
    pub fn handle(&self) -> Option<RawHandle> {
        match self {
            Op::Accept { fd }
            | Op::Connect { fd, .. }
            | Op::Read { fd, .. }
            | Op::Write { fd, .. }
            | Op::Pread { fd, .. }
            | Op::Pwrite { fd, .. }
            | Op::Recv { fd, .. }
            | Op::Send { fd, .. }
            | Op::Poll { fd, .. }
            | Op::Shutdown { fd, .. }
            | Op::Close { fd }
            | Op::ProcWait { fd, .. } => Some(*fd),
            Op::Recvmsg(m) | Op::Sendmsg(m) => Some(m.fd),
            Op::RecvPool(r) => Some(r.fd),
            Op::Noop
            | Op::Timer { .. }
            | Op::Cancel { .. }
            | Op::AsyncWait(_)
            | Op::Resolve(_)
            | Op::Fs(_) => None,
        }
    }

    /// Tries a socket transfer once, now, outside any loop: the result, as
    /// the loop would have delivered it, or `None` when the socket is not
    /// ready (the operation is unchanged and can go to a loop as usual).
    ///
    /// Only `Recv`, `Send`, `Recvmsg` and `Sendmsg` are tried, as a
    /// non-blocking call (`MSG_DONTWAIT`, whatever the socket's mode) on
    /// Unix systems; every other operation, and every operation on Windows
    /// and WASI, gives `None`. A program that learns from experience that
    /// a socket is usually ready (a datagram just sent to itself, a send
    /// into a socket buffer with room) saves a turn of the loop; one that
    /// tries a socket that is not ready pays one failed syscall.
    pub fn try_now(&mut self) -> Option<OpResult> {
        #[cfg(unix)]
        return self.try_raw().map(|r| self.result(r));
        #[cfg(not(unix))]
        None
    }

    /// [`Op::try_now`]'s attempt, for the loop's backends as well: the raw
    /// result (a count or a negated errno), or `None` when the operation
    /// is not one of the four socket transfers or the socket was not
    /// ready.
    #[cfg(unix)]
    pub(crate) fn try_raw(&mut self) -> Option<i32> {
        if !matches!(
            self,
            Op::Recv { .. } | Op::Send { .. } | Op::Recvmsg(_) | Op::Sendmsg(_)
        ) {
            return None;
        }
        // SAFETY: the op's buffers are valid while it exists unfinished:
        // an owned vector always, a raw region by the contract of
        // `Buf::from_raw_parts` (its callback has not run; a backend that
        // holds the op is before its callback too). These four calls pass
        // MSG_DONTWAIT and never block.
        let r = unsafe { crate::sys::perform_op(self, crate::sys::FdMode::Direct) };
        (r != -libc::EAGAIN && r != -libc::EWOULDBLOCK).then_some(r)
    }

    /// The kind of this operation, for diagnostics.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Noop => OpKind::Noop,
            Op::Accept { .. } => OpKind::Accept,
            Op::Connect { .. } => OpKind::Connect,
            Op::Read { .. } => OpKind::Read,
            Op::Write { .. } => OpKind::Write,
            Op::Pread { .. } => OpKind::Pread,
            Op::Pwrite { .. } => OpKind::Pwrite,
            Op::Recv { .. } => OpKind::Recv,
            Op::RecvPool(_) => OpKind::RecvPool,
            Op::Send { .. } => OpKind::Send,
            Op::Recvmsg(_) => OpKind::Recvmsg,
            Op::Sendmsg(_) => OpKind::Sendmsg,
            Op::Poll { .. } => OpKind::Poll,
            Op::Shutdown { .. } => OpKind::Shutdown,
            Op::Close { .. } => OpKind::Close,
            Op::Timer { .. } => OpKind::Timer,
            Op::Cancel { .. } => OpKind::Cancel,
            Op::AsyncWait(_) => OpKind::AsyncWait,
            Op::ProcWait { .. } => OpKind::ProcWait,
            Op::Resolve(_) => OpKind::Resolve,
            Op::Fs(_) => OpKind::Fs,
        }
    }

    /// The buffer of a read or write family operation, if any.
    pub fn io_buf(&self) -> Option<&Buf> {
        match self {
            Op::Read { buf, .. }
            | Op::Write { buf, .. }
            | Op::Pread { buf, .. }
            | Op::Pwrite { buf, .. }
            | Op::Recv { buf, .. }
            | Op::Send { buf, .. } => Some(buf),
            Op::Recvmsg(m) | Op::Sendmsg(m) => Some(&m.buf),
            _ => None,
        }
    }

    /// The buffer of a read or write family operation, mutably.
    pub fn io_buf_mut(&mut self) -> Option<&mut Buf> {
        match self {
            Op::Read { buf, .. }
            | Op::Write { buf, .. }
            | Op::Pread { buf, .. }
            | Op::Pwrite { buf, .. }
            | Op::Recv { buf, .. }
            | Op::Send { buf, .. } => Some(buf),
            Op::Recvmsg(m) | Op::Sendmsg(m) => Some(&mut m.buf),
            _ => None,
        }
    }

    /// Takes the buffer out (leaving an empty owned one), if the op has one.
    pub fn take_io_buf(&mut self) -> Option<Buf> {
        self.io_buf_mut().map(std::mem::take)
    }

    /// The owned vector of a read or write family operation (`None` for
    /// other operations and for a raw [`Buf`], whose bytes belong to its
    /// lender).
    pub fn buf(&self) -> Option<&Vec<u8>> {
        self.io_buf().and_then(Buf::as_vec)
    }

    /// The owned vector, mutably (see [`Op::buf`]).
    pub fn buf_mut(&mut self) -> Option<&mut Vec<u8>> {
        self.io_buf_mut().and_then(Buf::as_vec_mut)
    }

    /// Takes the owned vector out (leaving an empty one), if the op has
    /// one (see [`Op::buf`]).
    pub fn take_buf(&mut self) -> Option<Vec<u8>> {
        self.buf_mut().map(std::mem::take)
    }

    /// Turns a raw result (non-negative value or negated errno) into the
    /// typed result of this operation.
    pub(crate) fn result(&mut self, res: i32) -> OpResult {
        fn read(res: i32, empty: bool) -> Result<usize, ReadError> {
            match res {
                0 if !empty => Err(ReadError::Eof),
                NO_THREAD_POOL => Err(ReadError::NoThreadPool),
                r if r >= 0 => Ok(r as usize),
                r => Err(ReadError::from_raw(r)),
            }
        }
        fn write(res: i32) -> Result<usize, WriteError> {
            match res {
                NO_THREAD_POOL => Err(WriteError::NoThreadPool),
                r if r >= 0 => Ok(r as usize),
                r => Err(WriteError::from_raw(r)),
            }
        }
        fn unit<E>(res: i32, f: fn(i32) -> E) -> Result<(), E> {
            if res >= 0 {
                Ok(())
            } else {
                Err(f(res))
            }
        }
        match self {
            Op::Noop => OpResult::Noop(unit(res, NoopError::from_raw)),
            Op::Accept { .. } => OpResult::Accept(if res >= 0 {
                // SAFETY: a non-negative accept result is a new handle that
                // nothing else owns.
                Ok(unsafe { sys::owned_handle(res) })
            } else {
                Err(AcceptError::from_raw(res))
            }),
            Op::Connect { .. } => OpResult::Connect(unit(res, ConnectError::from_raw)),
            Op::Read { buf, .. } | Op::Pread { buf, .. } | Op::Recv { buf, .. } => {
                OpResult::Read(read(res, buf.is_empty()))
            }
            Op::Write { .. } | Op::Pwrite { .. } | Op::Send { .. } => OpResult::Write(write(res)),
            Op::Recvmsg(m) => {
                // A zero-length datagram carries its sender's address and is
                // not an end of file; zero bytes with no address (a stream
                // socket) is.
                let datagram = res == 0 && m.hdr.name_len() > 0;
                let r = read(res, m.is_empty() || datagram);
                if r.is_ok() {
                    m.finish_recv();
                }
                OpResult::RecvFrom(r.map(|n| (n, m.addr())))
            }
            Op::Sendmsg(_) => OpResult::Write(write(res)),
            Op::RecvPool(r) => OpResult::RecvPool(r.result(res)),
            Op::Poll { .. } => OpResult::Poll(if res >= 0 {
                Ok(Readiness::from_poll_mask(res))
            } else {
                Err(PollError::from_raw(res))
            }),
            Op::Shutdown { .. } => OpResult::Shutdown(unit(res, ShutdownError::from_raw)),
            Op::Close { .. } => OpResult::Close(unit(res, CloseError::from_raw)),
            Op::Timer { .. } => OpResult::Timer(unit(res, TimerError::from_raw)),
            Op::Cancel { .. } => OpResult::Cancel(unit(res, CancelError::from_raw)),
            Op::AsyncWait(_) => OpResult::Async(unit(res, AsyncError::from_raw)),
            Op::ProcWait { .. } => OpResult::ProcExit(match res {
                r if r >= 0 => Ok(()),
                r if sys::is_not_child(r) => Err(ProcessError::NotChild),
                r => Err(ProcessError::from_raw(r)),
            }),
            Op::Resolve(r) => OpResult::Resolve(r.result(res)),
            Op::Fs(f) => OpResult::Fs(f.result(res)),
        }
    }
}

/// How an operation is carried out, per family of backend: what the loop
/// does itself, and what goes to a backend and how (see [`Op::plan`]).
#[derive(Debug)]
// The readiness backends read the descriptors; IOCP reads the op itself.
#[cfg_attr(windows, allow(dead_code))]
pub(crate) enum Plan<'a> {
    /// Completes on the loop's next tick.
    Noop,
    /// Enters the loop's timing wheel.
    Timer,
    /// Resolved by the loop against its target.
    Cancel(Id),
    /// Waits in the loop's list of async waits.
    AsyncWait(&'a Async),
    /// I/O on a descriptor: a completion backend submits it to the kernel;
    /// a readiness backend attempts it, and waits until `fd` is ready for
    /// `interest` when it would block.
    Ready {
        /// The descriptor.
        fd: RawHandle,
        /// What it waits for.
        interest: Interest,
    },
    /// I/O that never waits for readiness (shutdown): in the kernel on a
    /// completion backend, attempted once on a readiness backend.
    Once,
    /// Blocking work that runs on the loop's thread pool on every backend
    /// (name lookups): the loop hands it over without asking the backend.
    Pool,
    /// Positional file I/O and filesystem operations: in the kernel on a
    /// completion backend (or its pool when the kernel lacks the opcode), on the
    /// thread pool on a readiness backend (regular files are never "not
    /// ready").
    File,
    /// A close: the backend ends what waits on `fd` first.
    Close {
        /// The descriptor.
        fd: RawHandle,
    },
}

/// The kind of an [`Op`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum OpKind {
    Noop,
    Accept,
    Connect,
    Read,
    Write,
    Pread,
    Pwrite,
    Recv,
    RecvPool,
    Send,
    Recvmsg,
    Sendmsg,
    Poll,
    Shutdown,
    Close,
    Timer,
    Cancel,
    AsyncWait,
    ProcWait,
    Resolve,
    Fs,
}

/// The typed result handed to a callback.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpResult {
    /// A noop finished (`Err(NoopError::Canceled)` when it was canceled
    /// before the loop started it).
    Noop(Result<(), NoopError>),
    /// An accept: the new connection (non-blocking, close-on-exec).
    Accept(Result<OwnedHandle, AcceptError>),
    /// A connect.
    Connect(Result<(), ConnectError>),
    /// A read, pread or recv: bytes read; end of file is [`ReadError::Eof`].
    Read(Result<usize, ReadError>),
    /// A recvmsg: bytes read and the sender. A zero-length datagram is
    /// `Ok((0, sender))`; end of file on a stream socket is
    /// [`ReadError::Eof`].
    RecvFrom(Result<(usize, Option<SocketAddr>), ReadError>),
    /// A pooled receive ([`Op::recv_pool`]): the buffer holding the data.
    RecvPool(Result<crate::PoolBuf, ReadError>),
    /// A write, pwrite, send or sendmsg: bytes written.
    Write(Result<usize, WriteError>),
    /// A poll: what the descriptor is ready for.
    Poll(Result<Readiness, PollError>),
    /// A shutdown.
    Shutdown(Result<(), ShutdownError>),
    /// A close.
    Close(Result<(), CloseError>),
    /// A timer: `Ok` when it expired, `Err(Canceled)` when canceled.
    Timer(Result<(), TimerError>),
    /// A cancel's own result: `Ok` when the target was canceled.
    Cancel(Result<(), CancelError>),
    /// An async wait: `Ok` once notified.
    Async(Result<(), AsyncError>),
    /// A process wait: `Ok` once the child exited (it is not reaped yet).
    ProcExit(Result<(), ProcessError>),
    /// A name lookup: the addresses found (never empty on success).
    Resolve(Result<Vec<SocketAddr>, ResolveError>),
    /// A filesystem operation: what it produced.
    Fs(Result<FsOutput, FsError>),
}

impl OpResult {
    /// Whether the operation was canceled.
    pub fn is_canceled(&self) -> bool {
        matches!(
            self,
            OpResult::Noop(Err(NoopError::Canceled))
                | OpResult::Accept(Err(AcceptError::Canceled))
                | OpResult::Connect(Err(ConnectError::Canceled))
                | OpResult::Read(Err(ReadError::Canceled))
                | OpResult::RecvFrom(Err(ReadError::Canceled))
                | OpResult::RecvPool(Err(ReadError::Canceled))
                | OpResult::Write(Err(WriteError::Canceled))
                | OpResult::Poll(Err(PollError::Canceled))
                | OpResult::Shutdown(Err(ShutdownError::Canceled))
                | OpResult::Close(Err(CloseError::Canceled))
                | OpResult::Timer(Err(TimerError::Canceled))
                | OpResult::Async(Err(AsyncError::Canceled))
                | OpResult::ProcExit(Err(ProcessError::Canceled))
                | OpResult::Resolve(Err(ResolveError::Canceled))
                | OpResult::Fs(Err(FsError::Canceled))
        )
    }
}

/// The error handed to a callback whose operation produced a result of the
/// wrong kind (impossible unless the operation was replaced behind the
/// watcher's back: a watcher's completion only ever holds its own kind of
/// operation).
pub(crate) fn unexpected(res: &OpResult) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("xev watcher: unexpected result {res:?}"),
    )
}
