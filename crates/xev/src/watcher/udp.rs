//! The UDP watcher: receive datagrams together with their sender
//! (`recvmsg`) and send datagrams to any address (`sendmsg`), on every
//! backend.
//!
//! # Per-operation state
//!
//! libxev's UDP watcher needs a caller-provided `State` per operation in
//! flight, because `sendmsg`/`recvmsg` read a message header (buffer
//! pointers and the peer address) that must stay put until the kernel is
//! done with it. Here that state is the boxed [`Msg`] inside each
//! operation: every [`Udp::read`] and [`Udp::write`] call is its own
//! completion with its own `Msg`, so any number of sends and receives may
//! be in flight at once on one socket, and the loop keeps each header alive
//! and in place until its operation finishes. A call allocates that one
//! `Msg` (its completion's memory is recycled by the loop); returning
//! [`Action::Rearm`] from the callback repeats the operation with the same
//! `Msg` and allocates nothing, and so does [`Action::Park`] followed by
//! [`Loop::restart`] with the operation's id.
//!
//! # The socket's life
//!
//! The socket is shared by the watcher, its clones, and the callbacks of its
//! operations in flight, so it stays open while any operation may still use
//! its descriptor number (closing it behind an in-flight operation would let
//! the number be reused under it). [`Udp::close`] cancels the watcher's
//! operations in flight (and frees its parked ones) and closes the socket
//! through the loop once the last of them has ended. Dropping every handle without `close` closes the
//! socket directly when the last operation has finished; nothing waits on
//! it then, so that is safe on every backend (the epoll backend re-checks a
//! descriptor that had no waiter before it waits on that number again).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use socket2::{Domain, Protocol, SockRef, Type};

use crate::backend::Backend;
use crate::completion::Action;
use crate::error::{CloseError, ReadError, WriteError};
use crate::event_loop::Loop;
use crate::op::{Id, Msg, Op, OpResult};

/// A UDP socket driven by a loop. Cheap to clone: clones share the socket
/// (so a callback can send on the socket it received from).
///
/// All operations of a watcher and its clones must go to one loop, the one
/// [`Udp::close`] is called with: the watcher remembers its operations in
/// flight by [`Id`] to cancel them when it is closed.
///
/// ```
/// use std::net::SocketAddr;
/// use xev::watcher::udp::Udp;
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
pub struct Udp<B: Backend> {
    fd: Rc<SharedFd>,
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend> Clone for Udp<B> {
    fn clone(&self) -> Self {
        Udp {
            fd: Rc::clone(&self.fd),
            _backend: PhantomData,
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
        Ok(Self::from_owned(OwnedFd::from(sock)))
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
            sock.set_nonblocking(true)?;
            sock.set_cloexec(true)?;
        }
        Ok(Self::from_owned(fd))
    }

    fn from_owned(fd: OwnedFd) -> Udp<B> {
        Udp {
            fd: Rc::new(SharedFd::new(fd)),
            _backend: PhantomData,
        }
    }

    /// Binds the socket to `addr`; port 0 picks a free port (see
    /// [`Udp::local_addr`]). Sets `SO_REUSEADDR` first, as libxev does (it
    /// also sets `SO_REUSEPORT`, which xev does not): on Linux that lets
    /// another UDP socket that also sets it bind the same address.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.fd.with_fd(|fd| {
            let sock = SockRef::from(fd);
            sock.set_reuse_address(true)?;
            sock.bind(&addr.into())
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.with_fd(|fd| {
            SockRef::from(fd).local_addr()?.as_socket().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "not an IP socket address")
            })
        })
    }

    /// The socket's descriptor, or `None` once [`Udp::close`] was called
    /// (by this handle or a clone).
    pub fn raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.raw()).filter(|&fd| fd >= 0)
    }

    /// How many operations of this watcher (and its clones) the watcher
    /// tracks: in flight, or parked by their callback (not yet ended).
    pub fn in_flight(&self) -> usize {
        self.fd.in_flight()
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
        let op = Op::Recvmsg(Msg::recv_from(self.fd.raw(), buf));
        SharedFd::track(&self.fd, lp, op, move |mut t| {
            move |lp: &mut Loop<B>, op: &mut Op, res: OpResult| {
                let Op::Recvmsg(m) = op else {
                    return t.settle(lp, Action::Disarm);
                };
                let r = match res {
                    OpResult::RecvFrom(Ok((n, Some(from)))) => Ok((n, from)),
                    OpResult::RecvFrom(Ok((_, None))) => Err(ReadError::Io(not_ip())),
                    OpResult::RecvFrom(Err(e)) => Err(e),
                    other => Err(ReadError::Io(unexpected(&other))),
                };
                let action = cb(lp, &mut m.buf, r);
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
        let op = Op::Sendmsg(Msg::send_to(self.fd.raw(), buf, addr));
        SharedFd::track(&self.fd, lp, op, move |mut t| {
            move |lp: &mut Loop<B>, op: &mut Op, res: OpResult| {
                let Op::Sendmsg(m) = op else {
                    return t.settle(lp, Action::Disarm);
                };
                let r = match res {
                    OpResult::Write(r) => r,
                    other => Err(WriteError::Io(unexpected(&other))),
                };
                let action = cb(lp, &mut m.buf, r);
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
        self.fd.close(lp, cb)
    }
}

fn not_ip() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the sender's address is not an IP socket address",
    )
}

/// The error for a result of the wrong kind (never happens: a watcher's
/// completion only ever holds its own kind of operation).
pub(crate) fn unexpected(res: &OpResult) -> io::Error {
    io::Error::other(format!("xev watcher: unexpected result {res:?}"))
}

/// The descriptor of a watcher, shared by the watcher's handles and the
/// callbacks of its operations in flight, and the bookkeeping that lets the
/// watcher close it soundly: the descriptor stays open while any operation
/// may use its number, and `close` cancels those operations first, then
/// closes it through the loop.
///
/// Operations are tracked in a slot table (a vector of ids with a free
/// list) that only grows to the most operations ever in flight at once, so
/// steady-state use allocates nothing.
pub(crate) struct SharedFd {
    fd: RefCell<Option<OwnedFd>>,
    ops: RefCell<OpTable>,
    /// The parked close completion, once `close` was called.
    closer: Cell<Option<Id>>,
}

#[derive(Default)]
struct OpTable {
    /// The id of each tracked operation (`Id::DETACHED` while it is being
    /// added); `None` for free slots.
    slots: Vec<Option<Id>>,
    free: Vec<usize>,
    live: usize,
}

impl OpTable {
    fn reserve(&mut self) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(i) if i < self.slots.len() => {
                self.slots[i] = Some(Id::DETACHED);
                i
            }
            _ => {
                self.slots.push(Some(Id::DETACHED));
                self.slots.len() - 1
            }
        }
    }

    fn release(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            if s.take().is_some() {
                self.free.push(slot);
                self.live -= 1;
            }
        }
    }
}

impl SharedFd {
    pub(crate) fn new(fd: OwnedFd) -> SharedFd {
        SharedFd {
            fd: RefCell::new(Some(fd)),
            ops: RefCell::new(OpTable::default()),
            closer: Cell::new(None),
        }
    }

    /// Whether `close` was called.
    pub(crate) fn is_closing(&self) -> bool {
        self.closer.get().is_some()
    }

    /// The descriptor for a new operation: -1 (so the operation fails with
    /// `EBADF`) once `close` was called.
    pub(crate) fn raw(&self) -> RawFd {
        if self.is_closing() {
            return -1;
        }
        self.fd.borrow().as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// Runs `f` on the open descriptor; `EBADF` once `close` was called.
    pub(crate) fn with_fd<R>(&self, f: impl FnOnce(&OwnedFd) -> io::Result<R>) -> io::Result<R> {
        match &*self.fd.borrow() {
            Some(fd) if !self.is_closing() => f(fd),
            _ => Err(io::Error::from_raw_os_error(libc::EBADF)),
        }
    }

    /// Operations in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.ops.borrow().live
    }

    /// Adds `op` to the loop as a tracked operation. `make` builds its
    /// callback from its [`Tracked`] guard; the callback must end by
    /// returning [`Tracked::settle`]'s answer.
    pub(crate) fn track<B, F>(
        this: &Rc<SharedFd>,
        lp: &mut Loop<B>,
        op: Op,
        make: impl FnOnce(Tracked) -> F,
    ) -> Id
    where
        B: Backend,
        F: FnMut(&mut Loop<B>, &mut Op, OpResult) -> Action + 'static,
    {
        let slot = this.ops.borrow_mut().reserve();
        let guard = Tracked {
            share: Rc::clone(this),
            slot,
            ended: false,
        };
        let id = lp.add(op, make(guard));
        if let Some(s) = this.ops.borrow_mut().slots.get_mut(slot) {
            *s = Some(id);
        }
        id
    }

    /// See [`Udp::close`].
    pub(crate) fn close<B, F>(&self, lp: &mut Loop<B>, cb: F) -> Id
    where
        B: Backend,
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        let mut cb = Some(cb);
        let callback = move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
            let r = match res {
                OpResult::Close(r) => r,
                other => Err(CloseError::Io(unexpected(&other))),
            };
            if let Some(cb) = cb.take() {
                cb(lp, r);
            }
            // Never Rearm or Park a close: its descriptor number is no
            // longer ours.
            Action::Disarm
        };
        if self.is_closing() || self.fd.borrow().is_none() {
            // Closed already (by a clone): closing no descriptor reports
            // EBADF like any double close.
            return lp.add(Op::Close { fd: -1 }, callback);
        }
        let id = lp.add_parked_callback(Op::Close { fd: -1 }, callback);
        self.closer.set(Some(id));
        let n = self.ops.borrow().slots.len();
        for i in 0..n {
            let target = self.ops.borrow().slots.get(i).copied().flatten();
            if let Some(target) = target {
                if lp.cancel(target).is_err() {
                    // Not in flight. Parked: dropped now (its guard stops
                    // tracking it). Finished with its callback still to
                    // run, or running it now: it ends when the callback
                    // returns (`free` answers Busy, or frees it then).
                    let _ = lp.free(target);
                }
            }
        }
        self.close_if_idle(lp);
        id
    }

    /// After `close`, once no operation is in flight: hands the descriptor
    /// to the parked close completion and starts it.
    fn close_if_idle<B: Backend>(&self, lp: &mut Loop<B>) {
        let Some(closer) = self.closer.get() else {
            return;
        };
        if self.ops.borrow().live != 0 {
            return;
        }
        let Some(fd) = self.fd.borrow_mut().take() else {
            return;
        };
        match lp.op_mut(closer) {
            Ok(op) => {
                *op = Op::Close {
                    fd: fd.into_raw_fd(),
                };
                // Cannot fail: `op_mut` just found the completion parked.
                // (Were the loop dropped before it runs, the descriptor
                // would leak, never be closed twice.)
                let _ = lp.restart(closer);
            }
            // The close completion is gone (its loop freed it): close
            // directly; nothing waits on the descriptor anymore.
            Err(_) => drop(fd),
        }
    }
}

/// One tracked operation of a [`SharedFd`], owned by the operation's
/// callback: it keeps the descriptor open while the operation may use it,
/// and frees the operation's tracking slot when the operation ends — in
/// [`Tracked::settle`], or when the callback is dropped without having
/// ended it (its loop was dropped with the operation in flight), so that no
/// stale id stays tracked.
pub(crate) struct Tracked {
    share: Rc<SharedFd>,
    slot: usize,
    ended: bool,
}

impl Tracked {
    /// The shared descriptor.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn share(&self) -> &SharedFd {
        &self.share
    }

    /// Turns the action returned by the user's callback into the loop's
    /// action: `Rearm` and `Park` keep the operation (still tracked) unless
    /// the watcher is closing; anything else ends it, and the last
    /// operation to end after `close` starts the close.
    pub(crate) fn settle<B: Backend>(&mut self, lp: &mut Loop<B>, action: Action) -> Action {
        if self.ended {
            return Action::Disarm;
        }
        if action != Action::Disarm && !self.share.is_closing() {
            return action;
        }
        self.ended = true;
        self.share.ops.borrow_mut().release(self.slot);
        self.share.close_if_idle(lp);
        Action::Disarm
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.ended {
            // Never contended (no borrow is held while completions are
            // dropped); skip rather than panic if it ever were.
            if let Ok(mut ops) = self.share.ops.try_borrow_mut() {
                ops.release(self.slot);
            }
        }
    }
}
