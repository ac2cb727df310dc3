//! The UDP watcher: receive datagrams together with their sender
//! (`recvmsg`) and send datagrams to any address (`sendmsg`), on every
//! backend.
//! (The whole story is on [`Udp`](super::Udp).)

use std::fmt;
use std::io;
use std::net::SocketAddr;
use crate::op::{OwnedHandle as OwnedFd, RawHandle as RawFd};
use std::rc::Rc;

use socket2::{Domain, Protocol, SockRef, Type};

use crate::backend::Backend;
use crate::error::{CloseError, ReadError, WriteError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Msg, Op, OpResult};
use crate::record::Action;
use crate::op::unexpected;
use crate::watcher::shared_fd::FdOwner;

/// The UDP watcher: receive datagrams together with their sender
/// (`recvmsg`) and send datagrams to any address (`sendmsg`), on every
/// backend.
///
/// # Per-operation state
///
/// libxev's UDP watcher needs a caller-provided `State` per operation in
/// flight, because `sendmsg`/`recvmsg` read a message header (buffer
/// pointers and the peer address) that must stay put until the kernel is
/// done with it. Here that state is the boxed [`Msg`] inside each
/// operation: every [`Udp::read`] and [`Udp::write`] call is its own
/// completion with its own `Msg`, so any number of sends and receives may
/// be in flight at once on one socket, and the loop keeps each header alive
/// and in place until its operation finishes. A call allocates that one
/// `Msg` (its completion's memory is recycled by the loop); returning
/// [`Action::Rearm`] from the callback repeats the operation with the same
/// `Msg` and allocates nothing, and so does [`Action::Park`] followed by
/// [`Loop::restart`] with the operation's id.
///
/// # The socket's life
///
/// The socket is shared by the watcher, its clones, and the callbacks of its
/// operations in flight, so it stays open while any operation may still use
/// its descriptor number (closing it behind an in-flight operation would let
/// the number be reused under it). [`Udp::close`] cancels the watcher's
/// operations in flight (and frees its parked ones) and closes the socket
/// through the loop once the last of them has ended. Dropping the last
/// handle without `close` does the same at the loop's next tick (right
/// after the callback that dropped it, if one did), with a close whose
/// result is ignored: pending operations end with `Canceled`, each callback
/// running once. A watcher never used with a loop, or whose loop was
/// dropped, closes the socket directly when its last handle is dropped.
///
/// A UDP socket driven by a loop. Cheap to clone: clones share the socket
/// (so a callback can send on the socket it received from).
///
/// All operations of a watcher and its clones must go to one loop at a time,
/// the one [`Udp::close`] is called with: the watcher remembers its
/// operations in flight by [`Id`] to cancel them when it is closed, and
/// hands the socket to the loop of its latest operation when its last
/// handle is dropped.
///
/// ```
/// use std::net::SocketAddr;
/// use xev::watcher::Udp;
/// use xev::{Action, Loop, RunMode};
///
/// let mut lp = Loop::new(Default::default()).unwrap();
/// let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
/// let server = Udp::new(any).unwrap();
/// server.bind(any).unwrap();
/// let client = Udp::new(any).unwrap();
/// client.bind(any).unwrap();
/// let (server_addr, client_addr) = (server.local_addr().unwrap(), client.local_addr().unwrap());
///
/// // The server answers each datagram to its sender, upper-cased.
/// let replier = server.clone();
/// server.read(&mut lp, vec![0; 64], move |lp, buf, res| {
///     let (n, from) = res.unwrap();
///     assert_eq!(from, client_addr);
///     let reply = buf[..n].to_ascii_uppercase();
///     replier.write(lp, from, reply, |_, _, res| {
///         res.unwrap();
///         Action::Disarm
///     });
///     Action::Disarm
/// });
/// client.read(&mut lp, vec![0; 64], move |_, buf, res| {
///     let (n, from) = res.unwrap();
///     assert_eq!((&buf[..n], from), (&b"PING"[..], server_addr));
///     Action::Disarm
/// });
/// client.write(&mut lp, server_addr, b"ping".to_vec(), |_, _, res| {
///     assert_eq!(res.unwrap(), 4);
///     Action::Disarm
/// });
/// lp.run(RunMode::UntilDone).unwrap();
/// server.close(&mut lp, |_, res| res.unwrap());
/// client.close(&mut lp, |_, res| res.unwrap());
/// lp.run(RunMode::UntilDone).unwrap();
/// ```
pub struct Udp<B: Backend = crate::DefaultBackend> {
    /// Shared by the clones: the last one dropped drops the owner, which
    /// hands the socket to the loop.
    owner: Rc<FdOwner<B>>,
}

impl<B: Backend> Clone for Udp<B> {
    fn clone(&self) -> Self {
        Udp {
            owner: Rc::clone(&self.owner),
        }
    }
}

impl<B: Backend> fmt::Debug for Udp<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Udp")
            .field("fd", &self.raw_fd())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl<B: Backend> Udp<B> {
    /// Creates an unbound, non-blocking, close-on-exec UDP socket of the
    /// address family of `addr` (only the family is used; see
    /// [`Udp::bind`]).
    pub fn new(addr: SocketAddr) -> io::Result<Udp<B>> {
        let sock = crate::sys::nonblocking_socket(
            Domain::for_address(addr),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        Ok(Self::from_owned(sock.into()))
    }

    /// Wraps an existing datagram socket (a `std::net::UdpSocket`, say),
    /// making it non-blocking and close-on-exec. A descriptor that is not a
    /// datagram socket is an `InvalidInput` error.
    pub fn from_fd(fd: impl Into<OwnedFd>) -> io::Result<Udp<B>> {
        let fd: OwnedFd = fd.into();
        {
            let sock = SockRef::from(&fd);
            if sock.r#type()? != Type::DGRAM {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "xev::Udp::from_fd: not a datagram socket",
                ));
            }
            #[cfg(not(target_os = "wasi"))]
            sock.set_nonblocking(true)?;
            // (Not socket2's there: its fcntl cannot change a WASI
            // preview 2 socket.)
            #[cfg(target_os = "wasi")]
            crate::sys::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
            #[cfg(unix)]
            sock.set_cloexec(true)?;
        }
        Ok(Self::from_owned(crate::sys::types::owned(fd)))
    }

    fn from_owned(fd: crate::sys::types::Owned) -> Udp<B> {
        Udp {
            owner: Rc::new(FdOwner::new(fd)),
        }
    }

    /// Binds the socket to `addr`; port 0 picks a free port (see
    /// [`Udp::local_addr`]). Sets `SO_REUSEADDR` first, as libxev does (it
    /// also sets `SO_REUSEPORT`, which xev does not): on Linux that lets
    /// another UDP socket that also sets it bind the same address.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.owner.share().with_fd(|fd| {
            let sock = crate::sys::types::sock(fd)?;
            // WASI has no SO_REUSEADDR (ENOPROTOOPT).
            #[cfg(not(target_os = "wasi"))]
            sock.set_reuse_address(true)?;
            sock.bind(&addr.into())
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.owner.share().with_fd(|fd| {
            crate::sys::types::sock(fd)?.local_addr()?.as_socket().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "not an IP socket address")
            })
        })
    }

    /// The socket's descriptor, or `None` once [`Udp::close`] was called
    /// (by this handle or a clone).
    pub fn raw_fd(&self) -> Option<RawFd> {
        Some(self.owner.share().raw()).filter(|&fd| fd != crate::sys::types::INVALID_RAW)
    }

    /// How many operations of this watcher (and its clones) the watcher
    /// tracks: in flight, or parked by their callback (not yet ended).
    pub fn in_flight(&self) -> usize {
        self.owner.share().in_flight()
    }

    /// Receives one datagram into `buf` (its whole length; a longer
    /// datagram is truncated to it). `cb` gets the buffer and
    /// `Ok((bytes, sender))`; an empty datagram is `Ok((0, sender))`.
    /// Returning [`Action::Rearm`] receives again into the same buffer (as
    /// the callback left it), allocating nothing; [`Action::Disarm`] ends
    /// the operation (its completion is freed); [`Action::Park`] keeps its
    /// completion (and message) parked, to receive again later with
    /// [`Loop::restart`] on the returned id, allocating nothing. After
    /// [`Udp::close`] the operation is canceled (`Err(ReadError::Canceled)`)
    /// or, if parked, freed, and `Rearm`/`Park` end it; on a closed watcher
    /// it fails with `EBADF`.
    pub fn read<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, mut cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<(usize, SocketAddr), ReadError>) -> Action
            + 'static,
    {
        let op = Op::Recvmsg(Msg::recv_from(self.owner.share().raw(), buf));
        self.owner.track(lp, op, move |mut t| {
            move |lp: &mut Loop<B>, op: &mut Op, res: OpResult| {
                // The watcher made the message from a vector, and only it
                // can change the operation.
                let Op::Recvmsg(m) = op else {
                    return t.settle(lp, Action::Disarm);
                };

                let r = match res {
                    OpResult::RecvFrom(Ok((n, Some(from)))) => Ok((n, from)),
                    OpResult::RecvFrom(Ok((_, None))) => Err(ReadError::Io(not_ip())),
                    OpResult::RecvFrom(Err(e)) => Err(e),
                    other => Err(ReadError::Io(unexpected(&other))),
                };
                let Some(buf) = m.buf.as_vec_mut() else {
                    return t.settle(lp, Action::Disarm);
                };
                let action = cb(lp, buf, r);
                t.settle(lp, action)
            }
        })
    }

    /// Sends `buf` as one datagram to `addr`. `cb` gets the buffer back and
    /// the number of bytes sent. Returning [`Action::Rearm`] sends the
    /// buffer (as the callback left it) to `addr` again, allocating
    /// nothing; [`Action::Disarm`] ends the operation; [`Action::Park`]
    /// keeps it parked for [`Loop::restart`] (a request/response loop that
    /// allocates nothing: change the buffer in the callback, park, restart
    /// when the answer came). Any number of writes may be in flight at once
    /// (each has its own message header). After [`Udp::close`] a pending
    /// write is canceled (a parked one freed) and `Rearm`/`Park` end it; on
    /// a closed watcher it fails with `EBADF`.
    pub fn write<F>(&self, lp: &mut Loop<B>, addr: SocketAddr, buf: Vec<u8>, mut cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action + 'static,
    {
        let op = Op::Sendmsg(Msg::send_to(self.owner.share().raw(), buf, addr));
        self.owner.track(lp, op, move |mut t| {
            move |lp: &mut Loop<B>, op: &mut Op, res: OpResult| {
                // The watcher made the message from a vector, and only it
                // can change the operation.
                let Op::Sendmsg(m) = op else {
                    return t.settle(lp, Action::Disarm);
                };
                let r = match res {
                    OpResult::Write(r) => r,
                    other => Err(WriteError::Io(unexpected(&other))),
                };
                let Some(buf) = m.buf.as_vec_mut() else {
                    return t.settle(lp, Action::Disarm);
                };
                let action = cb(lp, buf, r);
                t.settle(lp, action)
            }
        })
    }

    /// Closes the socket through the loop: cancels this watcher's
    /// operations in flight (their callbacks run with `Canceled`, or with
    /// their result if they had already finished), then closes the
    /// descriptor once the last of them has ended, and calls `cb` with the
    /// result. Clones of the watcher see the socket closed at once: their
    /// new operations fail with `EBADF`, and so does a second `close`.
    /// Returns the id of the close completion.
    pub fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        self.owner.close(lp, cb)
    }
}

fn not_ip() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the sender's address is not an IP socket address",
    )
}
