//! Sockets: [`TcpListener`], [`TcpStream`] and [`UdpSocket`], each owning a
//! non-blocking, close-on-exec socket and doing its I/O through the
//! runtime's loop with owned buffers. Dropping one closes the socket
//! through the loop (so a readiness backend forgets it first), or directly
//! outside a runtime.

use std::cell::RefCell;
use std::io;
use std::net::{Shutdown, SocketAddr};

use socket2::{Domain, Socket, Type};
use xev::{Msg, Op, OpResult, RawHandle};

use crate::buf::{init_bytes, read_exact_with, room, write_all_with, IoBuf, IoBufMut};
use crate::handle::{Handle, Owned};
use crate::op::{
    lend_read, lend_read_vectored, lend_write, lend_write_vectored, read_result, unexpected,
    write_result, OpFuture, Reading, SocketHints, Transfer, Writing,
};

/// Flags of the sends made at once, outside the loop: the loop's own
/// (`MSG_NOSIGNAL` where it exists, so that a send to a closed peer fails
/// with `EPIPE` instead of raising `SIGPIPE`, as it does through the loop).
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
const SEND_FLAGS: i32 = libc::MSG_NOSIGNAL;
/// Flags of the sends made at once (see the Linux variant).
#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
const SEND_FLAGS: i32 = 0;

/// The raw handle of a socket, as xev's operations name it.
fn raw(s: &Socket) -> RawHandle {
    s.raw()
}

/// A new non-blocking socket of `addr`'s family.
fn socket(addr: SocketAddr, ty: Type) -> io::Result<Socket> {
    // socket2 makes sockets close-on-exec (and, on Apple systems, free of
    // SIGPIPE).
    let s = Socket::new(Domain::for_address(addr), ty, None)?;
    nonblocking(&s)?;
    Ok(s)
}

/// Makes `s` non-blocking: `ioctl(FIONBIO)` on WASI, whose libc cannot
/// change a preview 2 socket's mode with `fcntl` (what socket2 and std
/// use), the usual call elsewhere.
fn nonblocking(s: &Socket) -> io::Result<()> {
    #[cfg(target_os = "wasi")]
    {
        let mut on: libc::c_int = 1;
        // SAFETY: ioctl reads the live int `on`; the descriptor is owned
        // by `s` for the call.
        let r = unsafe { libc::ioctl(raw(s), libc::FIONBIO, &mut on) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "wasi"))]
    s.set_nonblocking(true)
}

/// Wraps an accepted socket (already non-blocking and close-on-exec).
fn from_accepted(h: xev::OwnedHandle) -> Socket {
    Socket::from(h)
}

/// A TCP socket listening for connections.
pub struct TcpListener {
    sock: Owned<Socket>,
    hints: SocketHints,
}

impl TcpListener {
    /// Binds to `addr` (with `SO_REUSEADDR`) and listens (backlog 1024).
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        let s = socket(addr, Type::STREAM)?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(1024)?;
        Ok(TcpListener {
            sock: Owned::new(s),
            hints: SocketHints::default(),
        })
    }

    /// Wraps a listening `std` socket, making it non-blocking.
    pub fn from_std(l: std::net::TcpListener) -> io::Result<TcpListener> {
        let s = Socket::from(l);
        nonblocking(&s)?;
        Ok(TcpListener {
            sock: Owned::new(s),
            hints: SocketHints::default(),
        })
    }

    /// The `std` listener back (still non-blocking), out of the runtime's
    /// hands: the loop forgets the socket first. Fails (closing the
    /// socket) if called from inside a loop callback.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        Ok(self.sock.into_inner()?.into())
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        as_inet(self.sock.get().local_addr()?)
    }

    /// Accepts a connection (the new socket is non-blocking and
    /// close-on-exec) and the peer's address.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut op = OpFuture::new(Op::Accept {
            fd: raw(self.sock.get()),
        });
        let seen = Some(self.hints.seen());
        let (res, _) = std::future::poll_fn(|cx| op.poll_via(cx, seen)).await;
        match res {
            OpResult::Accept(Ok(h)) => {
                let s = from_accepted(h);
                let peer = as_inet(s.peer_addr()?)?;
                Ok((TcpStream::new(s), peer))
            }
            OpResult::Accept(Err(e)) => Err(e.into()),
            other => Err(unexpected(&other)),
        }
    }
}

fn as_inet(a: socket2::SockAddr) -> io::Result<SocketAddr> {
    a.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket address"))
}

/// A TCP connection. Its methods take `&self`, so one task can read while
/// another writes (share it with `Rc`, or use [`TcpStream::into_split`]).
pub struct TcpStream {
    sock: Owned<Socket>,
    hints: SocketHints,
}

impl TcpStream {
    fn new(s: Socket) -> TcpStream {
        TcpStream {
            sock: Owned::new(s),
            hints: SocketHints::default(),
        }
    }

    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let s = socket(addr, Type::STREAM)?;
        let stream = TcpStream::new(s);
        let (res, _) = OpFuture::new(Op::connect(raw(stream.sock.get()), addr)).await;
        match res {
            OpResult::Connect(Ok(())) => Ok(stream),
            OpResult::Connect(Err(e)) => Err(e.into()),
            other => Err(unexpected(&other)),
        }
    }

    /// Resolves `host_port` (`"name:port"`, `"[v6::addr]:port"`) on the
    /// loop's thread pool (the runtime needs one: [`xev::Options`]), then
    /// connects to each address found, in order, until one accepts.
    pub async fn connect_to(host_port: &str) -> io::Result<TcpStream> {
        let lookup = xev::Resolve::parse(host_port).map_err(io::Error::from)?;
        let addrs = match OpFuture::new(Op::Resolve(lookup)).await.0 {
            OpResult::Resolve(r) => r.map_err(io::Error::from)?,
            other => return Err(unexpected(&other)),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::NotFound.into()))
    }

    /// Wraps a connected `std` stream, making it non-blocking.
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        let s = Socket::from(s);
        nonblocking(&s)?;
        Ok(TcpStream::new(s))
    }

    /// The `std` stream back (still non-blocking), out of the runtime's
    /// hands: the loop forgets the socket first. Fails (closing the
    /// socket) if called from inside a loop callback.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        Ok(self.sock.into_inner()?.into())
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        as_inet(self.sock.get().local_addr()?)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        as_inet(self.sock.get().peer_addr()?)
    }

    /// The socket's raw handle, as xev's operations name it.
    #[cfg_attr(not(any(feature = "futures-io", feature = "hyper")), allow(dead_code))]
    pub(crate) fn raw(&self) -> RawHandle {
        raw(self.sock.get())
    }

    /// What the stream's operations learned about it (see
    /// [`SocketHints`]).
    #[cfg_attr(not(any(feature = "futures-io", feature = "hyper")), allow(dead_code))]
    pub(crate) fn hints(&self) -> &SocketHints {
        &self.hints
    }

    /// Shuts down one or both directions now, without the loop
    /// (`shutdown(2)` never waits).
    #[cfg_attr(not(any(feature = "futures-io", feature = "hyper")), allow(dead_code))]
    pub(crate) fn shutdown_now(&self, how: Shutdown) -> io::Result<()> {
        self.sock.get().shutdown(how)
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.sock.get().set_tcp_nodelay(on)
    }

    /// Receives into `buf`'s read region (a vector's spare capacity: the
    /// bytes land after its length, which grows by the count; see
    /// [`IoBufMut`]): the count (0 at end of stream, or when the region is
    /// empty) and the buffer back.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        self.recv_from_offset(buf, None).await
    }

    fn recv_from_offset<B: IoBufMut>(
        &self,
        buf: B,
        from: Option<usize>,
    ) -> Transfer<'_, B, Reading, impl FnOnce(&mut B, usize) -> io::Result<usize> + '_> {
        let sock = self.sock.get();
        let op = Op::Recv {
            fd: raw(sock),
            buf: xev::Buf::default(),
        };
        let attempt = move |buf: &mut B, start: usize| {
            let n = sock.recv(room(buf, start))?;
            // SAFETY: the kernel wrote the `n` bytes after `start` (`recv`
            // reads into `room(buf, start)`, `n` at most its length); the
            // bytes before `start` were initialized ([`read_from`]).
            unsafe { buf.set_init(start + n) };
            Ok(n)
        };
        Transfer::new(op, buf, from, Some(self.hints.reading()), Some(attempt))
    }

    /// Fills the whole of `buf`'s read region (a vector's spare capacity;
    /// for an exact count, a slice: `Vec::with_capacity(n).slice(..n)`),
    /// in as many reads as it takes, or fails with `UnexpectedEof` if the
    /// stream ends first (the bytes read so far are in the buffer).
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> (io::Result<()>, B) {
        read_exact_with(buf, |b, at| self.recv_from_offset(b, Some(at))).await
    }

    /// Sends `buf`'s initialized bytes (all or a prefix): the count sent
    /// and the buffer back.
    pub async fn write<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        self.send_from_offset(buf, 0).await
    }

    fn send_from_offset<B: IoBuf>(
        &self,
        buf: B,
        from: usize,
    ) -> Transfer<'_, B, Writing, impl FnOnce(&mut B, usize) -> io::Result<usize> + '_> {
        let sock = self.sock.get();
        let op = Op::Send {
            fd: raw(sock),
            buf: xev::Buf::default(),
        };
        let attempt =
            move |buf: &mut B, from: usize| sock.send_with_flags(init_bytes(buf, from), SEND_FLAGS);
        Transfer::new(
            op,
            buf,
            Some(from),
            Some(self.hints.writing()),
            Some(attempt),
        )
    }

    /// Sends all of `buf`'s initialized bytes, in as many writes as it
    /// takes (each sends the rest from the same buffer: no copy).
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        let len = buf.bytes_init();
        write_all_with(buf, len, |b, sent| self.send_from_offset(b, sent)).await
    }

    /// Receives into the read regions of `bufs`, in order (a scatter
    /// read: one `recvmsg` with a table of buffers): the count, spread over
    /// the buffers in order (0 at end of stream, or with no room), and the
    /// buffers back. The buffer table is allocated per call.
    pub async fn read_vectored<B: IoBufMut>(&self, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
        let fd = raw(self.sock.get());
        let places = (0..bufs.len()).map(|_| xev::Buf::default()).collect();
        let op = Op::Recvmsg(Msg::recv_vectored(fd, places));
        let (res, _, bufs) = lend_read_vectored(op, bufs, Some(self.hints.reading())).await;
        (read_result(res), bufs)
    }

    /// Sends the initialized bytes of `bufs`, in order (a gather write:
    /// one `sendmsg` with a table of buffers; all or a prefix): the count
    /// and the buffers back. The buffer table is allocated per call.
    pub async fn write_vectored<B: IoBuf>(&self, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
        self.send_vectored_from(bufs, 0).await
    }

    async fn send_vectored_from<B: IoBuf>(
        &self,
        bufs: Vec<B>,
        from: usize,
    ) -> (io::Result<usize>, Vec<B>) {
        let fd = raw(self.sock.get());
        let places = (0..bufs.len()).map(|_| xev::Buf::default()).collect();
        let op = Op::Sendmsg(Msg::send_vectored(fd, places));
        let (res, _, bufs) = lend_write_vectored(op, bufs, from, Some(self.hints.writing())).await;
        (write_result(res), bufs)
    }

    /// Sends all the initialized bytes of `bufs`, in order, in as many
    /// gather writes as it takes (each resumes where the last stopped).
    pub async fn write_all_vectored<B: IoBuf>(&self, bufs: Vec<B>) -> (io::Result<()>, Vec<B>) {
        let len = bufs.iter().map(IoBuf::bytes_init).sum();
        write_all_with(bufs, len, |b, sent| self.send_vectored_from(b, sent)).await
    }

    /// Shuts down one or both directions.
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let fd = raw(self.sock.get());
        match OpFuture::new(Op::Shutdown { fd, how }).await.0 {
            OpResult::Shutdown(r) => r.map_err(Into::into),
            other => Err(unexpected(&other)),
        }
    }

    /// Splits the stream into a read half and a write half that can be
    /// moved into two tasks (both share the socket, closed when both are
    /// dropped).
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        let s = std::rc::Rc::new(self);
        (ReadHalf(s.clone()), WriteHalf(s))
    }
}

/// The reading half of a [`TcpStream`] ([`TcpStream::into_split`]).
pub struct ReadHalf(std::rc::Rc<TcpStream>);

impl ReadHalf {
    /// See [`TcpStream::read`].
    pub async fn read<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        self.0.read(buf).await
    }

    /// See [`TcpStream::read_exact`].
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> (io::Result<()>, B) {
        self.0.read_exact(buf).await
    }
}

/// The writing half of a [`TcpStream`] ([`TcpStream::into_split`]).
pub struct WriteHalf(std::rc::Rc<TcpStream>);

impl WriteHalf {
    /// See [`TcpStream::write`].
    pub async fn write<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        self.0.write(buf).await
    }

    /// See [`TcpStream::write_all`].
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        self.0.write_all(buf).await
    }

    /// See [`TcpStream::shutdown`].
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.shutdown(how).await
    }
}

/// A UDP socket.
pub struct UdpSocket {
    sock: Owned<Socket>,
    /// The message (header and address) of the last finished send and
    /// receive, reused by the next one so that a datagram allocates
    /// nothing in steady state. A message whose future was dropped stays
    /// with the loop and is not reused.
    send_msg: RefCell<Option<Box<Msg>>>,
    recv_msg: RefCell<Option<Box<Msg>>>,
    hints: SocketHints,
}

impl UdpSocket {
    fn new(s: Socket) -> UdpSocket {
        UdpSocket {
            sock: Owned::new(s),
            send_msg: RefCell::new(None),
            recv_msg: RefCell::new(None),
            hints: SocketHints::default(),
        }
    }

    /// Binds to `addr` (port 0 picks a free one).
    pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
        let s = socket(addr, Type::DGRAM)?;
        s.bind(&addr.into())?;
        Ok(UdpSocket::new(s))
    }

    /// Wraps a bound `std` socket, making it non-blocking.
    pub fn from_std(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        let s = Socket::from(s);
        nonblocking(&s)?;
        Ok(UdpSocket::new(s))
    }

    /// The `std` socket back (still non-blocking), out of the runtime's
    /// hands: the loop forgets the socket first. Fails (closing the
    /// socket) if called from inside a loop callback.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        Ok(self.sock.into_inner()?.into())
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        as_inet(self.sock.get().local_addr()?)
    }

    /// Sends `buf`'s initialized bytes as one datagram to `addr`.
    pub async fn send_to<B: IoBuf>(&self, buf: B, addr: SocketAddr) -> (io::Result<usize>, B) {
        let sock = self.sock.get();
        let via = self.hints.writing();
        if let Some(r) =
            via.attempt(|| sock.send_to_with_flags(init_bytes(&buf, 0), &addr.into(), SEND_FLAGS))
        {
            return (r, buf);
        }
        let fd = raw(sock);
        let msg = match self.send_msg.borrow_mut().take() {
            Some(mut m) => {
                m.set_addr(addr);
                m
            }
            None => Msg::send_to(fd, xev::Buf::default(), addr),
        };
        let (res, op, buf) = lend_write(Op::Sendmsg(msg), buf, 0, Some(via.tried())).await;
        keep_msg(&self.send_msg, op);
        (write_result(res), buf)
    }

    /// Receives one datagram into `buf`'s read region (a vector's spare
    /// capacity; a longer datagram is cut): its length, the sender, and
    /// the buffer back.
    pub async fn recv_from<B: IoBufMut>(&self, mut buf: B) -> (io::Result<(usize, SocketAddr)>, B) {
        let sock = self.sock.get();
        let via = self.hints.reading();
        let start = buf.read_start();
        if let Some(r) = via.attempt(|| sock.recv_from(room(&mut buf, start))) {
            let r = r.and_then(|(n, from)| {
                // SAFETY: the kernel wrote the `n` bytes after `start`
                // (the read start, within the initialized bytes).
                unsafe { buf.set_init(start + n) };
                from.as_socket().map(|a| (n, a)).ok_or_else(no_sender)
            });
            return (r, buf);
        }
        let fd = raw(sock);
        let msg = self.recv_msg.borrow_mut().take();
        let msg = msg.unwrap_or_else(|| Msg::recv_from(fd, xev::Buf::default()));
        let (res, op, buf) = lend_read(Op::Recvmsg(msg), buf, None, Some(via.tried())).await;
        keep_msg(&self.recv_msg, op);
        let r = match res {
            OpResult::RecvFrom(Ok((n, Some(a)))) => Ok((n, a)),
            OpResult::RecvFrom(Ok((_, None))) => Err(no_sender()),
            OpResult::RecvFrom(Err(e)) => Err(e.into()),
            other => Err(unexpected(&other)),
        };
        (r, buf)
    }
}

/// The error of a datagram that came without a sender's address.
fn no_sender() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "datagram without a sender")
}

/// Keeps a finished message operation's box for the next one (its buffer,
/// lent memory, is reset).
fn keep_msg(slot: &RefCell<Option<Box<Msg>>>, op: Op) {
    if let Op::Sendmsg(mut m) | Op::Recvmsg(mut m) = op {
        m.buf = xev::Buf::default();
        *slot.borrow_mut() = Some(m);
    }
}

/// Borrowed access to the socket and construction from an owned one, for
/// each socket type (Unix descriptors, Windows sockets; not WASI preview 1,
/// which has no sockets).
macro_rules! socket_handles {
    ($($ty:ident from $std:ty),*) => {$(
        #[cfg(any(unix, target_os = "wasi"))]
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.sock.get().as_fd()
            }
        }

        #[cfg(any(unix, target_os = "wasi"))]
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                raw(self.sock.get())
            }
        }

        #[cfg(windows)]
        impl std::os::windows::io::AsSocket for $ty {
            fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
                self.sock.get().as_socket()
            }
        }

        #[cfg(windows)]
        impl std::os::windows::io::AsRawSocket for $ty {
            fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
                std::os::windows::io::AsRawSocket::as_raw_socket(self.sock.get())
            }
        }

        impl $ty {
            /// Wraps an owned socket descriptor of this kind, making it
            /// non-blocking (as `from_std` does).
            #[cfg(any(unix, target_os = "wasi"))]
            pub fn from_fd(fd: std::os::fd::OwnedFd) -> io::Result<$ty> {
                $ty::from_std(<$std>::from(fd))
            }

            /// Wraps an owned socket of this kind, making it non-blocking
            /// (as `from_std` does).
            #[cfg(windows)]
            pub fn from_socket(s: std::os::windows::io::OwnedSocket) -> io::Result<$ty> {
                $ty::from_std(<$std>::from(s))
            }
        }
    )*};
}

socket_handles!(
    TcpListener from std::net::TcpListener,
    TcpStream from std::net::TcpStream,
    UdpSocket from std::net::UdpSocket
);
