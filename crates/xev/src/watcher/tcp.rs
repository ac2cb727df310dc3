//! The TCP watcher: a non-blocking TCP socket that can listen and accept,
//! connect, and do everything a [`Stream`] does (it dereferences to one:
//! `read`, `write`, `queue_write`, `poll`, `shutdown`).
//! (The whole story is on [`Tcp`](super::Tcp).)

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
#[cfg(any(unix, target_os = "wasi"))]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
#[cfg(windows)]
use std::os::windows::io::OwnedSocket as OwnedFd;

use socket2::{Domain, SockRef, Type};

#[cfg(any(unix, target_os = "wasi"))]
use super::descriptor::{is_socket, set_nonblocking};
use crate::op::unexpected;
use super::stream::Stream;
use crate::backend::Backend;
use crate::error::{AcceptError, CloseError, ConnectError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Op, OpResult};
use crate::record::Action;
use crate::DefaultBackend;

/// The TCP watcher: a non-blocking TCP socket that can listen and accept,
/// connect, and do everything a [`Stream`] does (it dereferences to one:
/// `read`, `write`, `queue_write` with its backpressure figures
/// `queued_bytes` and `on_drain`, `poll`, `shutdown`).
///
/// Sockets are created non-blocking and close-on-exec; accepted sockets
/// come from the backend already non-blocking and close-on-exec, so
/// accepting costs no extra syscall.
///
/// Closing or dropping a `Tcp` (a listener's pending accepts included)
/// works as for a [`Stream`]: requests in flight end with `Canceled`, then
/// the socket is closed through the loop, so the peer sees end of file and
/// the descriptor number is safe to reuse (see
/// [descriptor ownership](super::Stream#descriptor-ownership)).
///
/// A TCP socket (listening or connected) bound to loops of backend `B`.
///
/// ```
/// use std::cell::RefCell;
/// use std::net::Shutdown;
/// use std::rc::Rc;
/// use xev::watcher::Tcp;
/// use xev::{Action, Loop, ReadError, RunMode};
///
/// let mut lp = Loop::new(Default::default()).unwrap();
/// let server: Tcp = Tcp::new("127.0.0.1:0".parse().unwrap()).unwrap();
/// server.bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// server.listen(16).unwrap();
/// let addr = server.local_addr().unwrap();
///
/// // The server accepts one connection and reads until the client is done.
/// let got = Rc::new(RefCell::new(Vec::new()));
/// let conns = Rc::new(RefCell::new(Vec::new()));
/// let (g, k) = (got.clone(), conns.clone());
/// server.accept(&mut lp, move |lp, res| {
///     let conn = res.unwrap();
///     let g = g.clone();
///     conn.read(lp, vec![0; 16], move |_, buf, res| match res {
///         Ok(n) => {
///             g.borrow_mut().extend_from_slice(&buf[..n]);
///             Action::Rearm
///         }
///         Err(e) => {
///             assert!(matches!(e, ReadError::Eof));
///             Action::Disarm
///         }
///     });
///     k.borrow_mut().push(conn);
///     Action::Disarm
/// });
///
/// // The client connects, sends a greeting, then shuts its side down.
/// let client = Rc::new(Tcp::new(addr).unwrap());
/// let c = client.clone();
/// client.connect(&mut lp, addr, move |lp, res| {
///     res.unwrap();
///     let c2 = c.clone();
///     c.queue_write(lp, b"hi there".to_vec(), move |lp, _, res| {
///         assert_eq!(res.unwrap(), 8);
///         c2.shutdown(lp, Shutdown::Write, |_, r| {
///             r.unwrap();
///             Action::Disarm
///         });
///         Action::Disarm
///     });
///     Action::Disarm
/// });
/// lp.run(RunMode::UntilDone).unwrap();
/// assert_eq!(&got.borrow()[..], b"hi there");
///
/// // Close everything through the loop.
/// for conn in conns.borrow_mut().drain(..) {
///     conn.close(&mut lp, |_, r| r.unwrap());
/// }
/// Rc::try_unwrap(client).unwrap().close(&mut lp, |_, r| r.unwrap());
/// server.close(&mut lp, |_, r| r.unwrap());
/// lp.run(RunMode::UntilDone).unwrap();
/// ```
pub struct Tcp<B: Backend = DefaultBackend> {
    stream: Stream<B>,
}

impl<B: Backend> Tcp<B> {
    /// Creates a TCP socket of `addr`'s family (IPv4 or IPv6), non-blocking
    /// and close-on-exec. `addr` only selects the family: [`Tcp::bind`] or
    /// [`Tcp::connect`] next.
    pub fn new(addr: SocketAddr) -> io::Result<Tcp<B>> {
        let sock = crate::sys::nonblocking_socket(
            Domain::for_address(addr),
            Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        Ok(Tcp {
            stream: Stream::from_nonblocking(sock.into(), true),
        })
    }

    /// Wraps a stream socket (a `std::net::TcpListener` or `TcpStream`
    /// converted with `.into()`, say), making it non-blocking. Errors with
    /// `InvalidInput` when `fd` is not a stream socket.
    #[cfg(any(unix, target_os = "wasi"))]
    #[cfg_attr(docsrs, doc(cfg(any(unix, target_os = "wasi"))))]
    pub fn from_fd(fd: OwnedFd) -> io::Result<Tcp<B>> {
        let (fd, socket) = is_socket(fd)?;
        if !socket || SockRef::from(&fd).r#type()? != Type::STREAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Tcp::from_fd: not a stream socket",
            ));
        }
        set_nonblocking(fd.as_fd())?;
        Ok(Tcp {
            stream: Stream::from_nonblocking(fd, true),
        })
    }

    /// Wraps a stream socket (a `std::net::TcpListener` or `TcpStream`
    /// converted with `.into()`, say), making it non-blocking. Errors with
    /// `InvalidInput` when `fd` is not a stream socket.
    #[cfg(windows)]
    #[cfg_attr(docsrs, doc(cfg(windows)))]
    pub fn from_fd(fd: crate::op::OwnedHandle) -> io::Result<Tcp<B>> {
        let s = SockRef::from(&fd);
        if s.r#type()? != Type::STREAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Tcp::from_fd: not a stream socket",
            ));
        }
        s.set_nonblocking(true)?;
        Ok(Tcp {
            stream: Stream::from_nonblocking(crate::sys::types::owned(fd), true),
        })
    }

    /// Binds the socket to `addr`, with `SO_REUSEADDR` set first (as
    /// libxev does) so that a restarted server can bind its port at once.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        let s = SockRef::from(&self.stream);
        s.set_reuse_address(true)?;
        s.bind(&addr.into())
    }

    /// Starts listening, with room for `backlog` pending connections.
    pub fn listen(&self, backlog: i32) -> io::Result<()> {
        SockRef::from(&self.stream).listen(backlog)
    }

    /// The local address (after `bind`, or the one a `connect` chose).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        as_inet(SockRef::from(&self.stream).local_addr()?)
    }

    /// The peer's address of a connected socket.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        as_inet(SockRef::from(&self.stream).peer_addr()?)
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        SockRef::from(&self.stream).set_tcp_nodelay(nodelay)
    }

    /// Accepts a connection on a listening socket. The callback gets the
    /// new connection as a `Tcp` (non-blocking, close-on-exec).
    /// [`Action::Rearm`] accepts the next connection.
    pub fn accept<F>(&self, lp: &mut Loop<B>, mut cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<Tcp<B>, AcceptError>) -> Action + 'static,
    {
        let op = Op::Accept { fd: self.fd() };
        self.owner().track(lp, op, move |mut t| {
            move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
                let res = match res {
                    OpResult::Accept(r) => r.map(|fd| Tcp {
                        stream: Stream::from_nonblocking(crate::sys::types::owned(fd), true),
                    }),
                    other => Err(AcceptError::Io(unexpected(&other))),
                };
                let action = cb(lp, res);
                t.settle(lp, action)
            }
        })
    }

    /// Connects to `addr`. [`Action::Rearm`] connects again (useful only
    /// after a failure, and only where the socket allows it).
    pub fn connect<F>(&self, lp: &mut Loop<B>, addr: SocketAddr, mut cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<(), ConnectError>) -> Action + 'static,
    {
        let op = Op::connect(self.fd(), addr);
        self.owner().track(lp, op, move |mut t| {
            move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
                let res = match res {
                    OpResult::Connect(r) => r,
                    other => Err(ConnectError::Io(unexpected(&other))),
                };
                let action = cb(lp, res);
                t.settle(lp, action)
            }
        })
    }

    /// Closes the socket through the loop; see [`Stream::close`].
    pub fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        self.stream.close(lp, cb)
    }

    /// The socket as a plain [`Stream`].
    pub fn into_stream(self) -> Stream<B> {
        self.stream
    }

    /// Takes the descriptor back without closing it, when nothing is in
    /// flight or parked on it; see [`Stream::into_fd`]. Otherwise hands the
    /// watcher back unchanged.
    pub fn into_fd(self) -> Result<OwnedFd, Tcp<B>> {
        self.stream.into_fd().map_err(|stream| Tcp { stream })
    }
}

/// An IPv4/IPv6 address out of a socket address.
fn as_inet(addr: socket2::SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "socket address is not IPv4 or IPv6",
        )
    })
}

/// A `Tcp` is a [`Stream`] on a socket: all stream requests work on it.
/// (Closing and dropping a `Tcp` work as for a [`Stream`]: see
/// [descriptor ownership](super::Stream#descriptor-ownership).)
impl<B: Backend> Deref for Tcp<B> {
    type Target = Stream<B>;

    fn deref(&self) -> &Stream<B> {
        &self.stream
    }
}

#[cfg(any(unix, target_os = "wasi"))]
#[cfg_attr(docsrs, doc(cfg(any(unix, target_os = "wasi"))))]
impl<B: Backend> AsFd for Tcp<B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

#[cfg(any(unix, target_os = "wasi"))]
#[cfg_attr(docsrs, doc(cfg(any(unix, target_os = "wasi"))))]
impl<B: Backend> AsRawFd for Tcp<B> {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.fd()
    }
}

impl<B: Backend> fmt::Debug for Tcp<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tcp")
            .field("fd", &self.stream.fd())
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
