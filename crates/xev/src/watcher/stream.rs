//! The stream watcher: reads, writes, ordered write queues, readiness polls,
//! shutdown and close on any non-blocking file descriptor (pipes, ttys,
//! sockets, character devices).
//! (The whole story is on [`Stream`](super::Stream).)

use std::fmt;
use std::io;
#[cfg(any(unix, target_os = "wasi"))]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

#[cfg(any(unix, target_os = "wasi"))]
use super::descriptor::{is_socket, set_nonblocking};
use crate::op::{OwnedHandle as OwnedFd, RawHandle as RawFd};
use crate::sys::types::Owned;
use super::request::{add_read, add_write};
use crate::op::unexpected;
use super::shared_fd::FdOwner;
use super::write_queue::{write_op, Sink, WriteQueue};
use crate::backend::Backend;
use crate::error::{CloseError, PollError, ReadError, ShutdownError, WriteError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Interest, Op, OpResult, Readiness};
use crate::record::Action;
use crate::DefaultBackend;

/// The stream watcher: reads, writes, ordered write queues, readiness polls,
/// shutdown and close on any non-blocking file descriptor (pipes, ttys,
/// sockets, character devices).
///
/// Every request is one completion added with [`Loop::add`] (or, for queued
/// writes, [`Loop::add_parked_callback`]); the loop recycles the memory of
/// finished completions, so steady-state requests allocate nothing. Each
/// method returns the [`Id`] of its completion, which [`Loop::cancel`]
/// accepts.
///
/// # Callbacks and actions
///
/// A callback gets the loop, the request's buffer back (by `&mut`, so it can
/// be inspected, refilled, resized or taken with [`std::mem::take`]) and a
/// typed result. What it returns decides what happens next:
///
/// - [`Action::Rearm`] repeats the request with the buffer as the callback
///   left it (a read reads again into it, a write writes it again);
/// - [`Action::Disarm`] ends the request; its completion is released;
/// - [`Action::Park`] keeps the completion parked in the loop: restart it
///   with [`Loop::restart`] or release it with [`Loop::free`] (queued writes
///   treat `Park` as `Disarm`, see [`Stream::queue_write`]).
///
/// # Descriptor ownership
///
/// A watcher owns its descriptor, and shares it with the callbacks of its
/// requests: it stays open while any request may still use its number, so
/// the number is never reused under a request in flight. Every request of a
/// watcher goes to one loop at a time.
///
/// - [`Stream::close`] closes it through the loop: the requests in flight
///   are canceled first (each callback runs once, with `Canceled`, or with
///   its result if that was already in), parked ones are freed, queued
///   writes that have not started fail with `Canceled`, and the descriptor
///   is closed once the last of them has ended; the callback gets the
///   close's result.
/// - **Dropping** the watcher does the same, the same way on every
///   backend, at the next tick of the loop of its latest request (right
///   after the callback that dropped it, if one did), ignoring the close's
///   result. Closing through the loop is what lets readiness backends
///   (epoll, kqueue) forget the descriptor before its number is reused, and
///   a socket's peer sees end of file once the close ran. A watcher never
///   used with a loop, or whose loop was dropped first (which ended its
///   requests), closes its descriptor directly when dropped.
/// - [`Stream::into_fd`] takes the descriptor back, open, when no request
///   is in flight or parked (else it hands the watcher back).
///
/// A stream of bytes on a non-blocking file descriptor, bound to loops of
/// backend `B`.
///
/// Sockets are read and written with `recv`/`send` (`MSG_NOSIGNAL`: a write
/// to a closed peer fails with `EPIPE` instead of raising `SIGPIPE`), other
/// descriptors with `read`/`write`.
///
/// ```
/// use std::cell::RefCell;
/// use std::os::unix::net::UnixStream;
/// use std::rc::Rc;
/// use xev::watcher::Stream;
/// use xev::{Action, Loop, RunMode};
///
/// let mut lp = Loop::new(Default::default()).unwrap();
/// let (a, b) = UnixStream::pair().unwrap();
/// let a: Stream = Stream::from_fd(a.into()).unwrap();
/// let b: Stream = Stream::from_fd(b.into()).unwrap();
///
/// // Two queued writes: they arrive in order, each written completely.
/// a.queue_write(&mut lp, b"hello, ".to_vec(), |_, _, res| {
///     assert_eq!(res.unwrap(), 7);
///     Action::Disarm
/// });
/// a.queue_write(&mut lp, b"world".to_vec(), |_, _, res| {
///     assert_eq!(res.unwrap(), 5);
///     Action::Disarm
/// });
///
/// // Read until all 12 bytes arrived, rearming into the same buffer.
/// let got = Rc::new(RefCell::new(Vec::new()));
/// let g = got.clone();
/// b.read(&mut lp, vec![0; 64], move |_, buf, res| {
///     let n = res.unwrap();
///     g.borrow_mut().extend_from_slice(&buf[..n]);
///     if g.borrow().len() < 12 { Action::Rearm } else { Action::Disarm }
/// });
/// lp.run(RunMode::UntilDone).unwrap();
/// assert_eq!(&got.borrow()[..], b"hello, world");
///
/// a.close(&mut lp, |_, res| res.unwrap());
/// b.close(&mut lp, |_, res| res.unwrap());
/// lp.run(RunMode::UntilDone).unwrap();
/// ```
#[must_use = "dropping a stream closes its descriptor"]
pub struct Stream<B: Backend = DefaultBackend> {
    owner: FdOwner<B>,
    socket: bool,
    queue: WriteQueue,
}

impl<B: Backend> Stream<B> {
    /// Wraps `fd`, making it non-blocking (`O_NONBLOCK` is set on the open
    /// file description, so other descriptors sharing it see the change).
    /// Errors when `fd` cannot be inspected or changed (the descriptor is
    /// then closed).
    #[cfg(any(unix, target_os = "wasi"))]
    #[cfg_attr(docsrs, doc(cfg(any(unix, target_os = "wasi"))))]
    pub fn from_fd(fd: OwnedFd) -> io::Result<Stream<B>> {
        set_nonblocking(fd.as_fd())?;
        let socket = is_socket(fd)?;
        Ok(Stream::from_nonblocking(socket.0, socket.1))
    }

    /// Wraps a pipe, console or other non-socket handle (an anonymous pipe
    /// from `std::io::pipe`, a named pipe, a child's stdio...). Handles
    /// opened for overlapped I/O are read and written by the kernel
    /// through the loop's completion port; synchronous ones (anonymous
    /// pipes, consoles) on the loop's thread pool, so the loop needs one
    /// (`Options::thread_pool`; without it requests fail with
    /// `NoThreadPool`). A read of a synchronous handle that already runs
    /// on the pool cannot be interrupted: closing the stream ends it only
    /// when data or end of file arrives (and dropping the loop waits for
    /// it). [`Stream::pipe`] makes pipes without that limit.
    #[cfg(windows)]
    #[cfg_attr(docsrs, doc(cfg(windows)))]
    pub fn from_handle(handle: std::os::windows::io::OwnedHandle) -> Stream<B> {
        Stream::from_nonblocking(Owned::Handle(handle), false)
    }

    /// A new pipe, as two streams: (read end, write end). Both ends are
    /// non-blocking and close-on-exec on Unix; on Windows they are the two
    /// ends of a local named pipe opened for overlapped I/O, so that reads
    /// and writes go through the completion port and can be cancelled.
    pub fn pipe() -> io::Result<(Stream<B>, Stream<B>)> {
        #[cfg(any(unix, target_os = "wasi"))]
        let (r, w) = crate::sys::pipe()?;
        #[cfg(windows)]
        let (r, w) = {
            let (r, w) = crate::sys::overlapped_pipe()?;
            (Owned::Handle(r), Owned::Handle(w))
        };
        Ok((Stream::from_nonblocking(r, false), Stream::from_nonblocking(w, false)))
    }

    /// Wraps a descriptor that is already non-blocking, without a syscall.
    pub(super) fn from_nonblocking(fd: Owned, socket: bool) -> Stream<B> {
        Stream {
            owner: FdOwner::new(fd),
            socket,
            queue: WriteQueue::default(),
        }
    }

    /// The raw descriptor (still owned by the watcher).
    pub fn fd(&self) -> RawFd {
        self.owner.share().raw()
    }

    /// The watcher's ownership of its descriptor (for [`Tcp`](super::Tcp)).
    #[cfg_attr(all(target_os = "wasi", target_env = "p1"), allow(dead_code))]
    pub(super) fn owner(&self) -> &FdOwner<B> {
        &self.owner
    }

    /// Requests of this watcher that are in flight or parked (queued writes
    /// and drain registrations included).
    pub fn in_flight(&self) -> usize {
        self.owner.share().in_flight()
    }

    /// Whether the descriptor is a socket (read and written with
    /// `recv`/`send`).
    pub fn is_socket(&self) -> bool {
        self.socket
    }

    /// Reads into the whole of `buf` (its length is the most that is read).
    /// The callback gets the buffer back and `Ok(n)`: the first `n` bytes are
    /// new; `Err(ReadError::Eof)` when the peer closed its side (a read into
    /// an empty buffer gives `Ok(0)` instead). [`Action::Rearm`] reads again
    /// into the buffer as the callback left it.
    pub fn read<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, ReadError>) -> Action + 'static,
    {
        let fd = self.fd();
        let op = if self.socket {
            Op::Recv { fd, buf: buf.into() }
        } else {
            Op::Read { fd, buf: buf.into() }
        };
        add_read(lp, &self.owner, op, cb)
    }

    /// Writes `buf` with one syscall; the callback gets the buffer back and
    /// the number of bytes written, which may be less than its length (use
    /// [`Stream::queue_write`] to have whole buffers written in order).
    /// [`Action::Rearm`] writes the buffer again as the callback left it
    /// (drain the written prefix first to finish a short write).
    ///
    /// Several plain writes in flight at once on one stream may complete in
    /// any order.
    pub fn write<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action + 'static,
    {
        add_write(lp, &self.owner, write_op(self.sink(), buf, 0), cb)
    }

    /// Queues `buf` to be written completely, after every write queued
    /// before it on this stream. Only the head of the queue is in flight;
    /// short writes are finished before the next queued write starts. The
    /// callback gets the original buffer back, intact, and `Ok(len)` once
    /// all of it was written.
    ///
    /// Returns the id of this write's completion. Only the head can be
    /// canceled ([`Loop::cancel`] reports `NotFound` for writes still
    /// waiting their turn); canceling it fails the rest of the queue too.
    ///
    /// **Errors.** When a queued write fails, its callback gets the error
    /// (part of its buffer may have been written), and every write queued
    /// behind it at that moment fails with the same error, without any I/O,
    /// in queue order. Writes queued afterwards start afresh.
    ///
    /// **Actions.** [`Action::Rearm`] queues the buffer (as the callback
    /// left it) again, at the back of the queue; [`Action::Disarm`] and
    /// [`Action::Park`] both release the request.
    ///
    /// **Closing.** When the stream is closed ([`Stream::close`]) or dropped,
    /// the write in flight is canceled (its callback gets
    /// [`WriteError::Canceled`], also when part of it was written, or its
    /// result if it had already finished), and the queued writes that have
    /// not started fail with [`WriteError::Canceled`], in order, without
    /// I/O; a `Rearm` returned after the close is ignored.
    ///
    /// Steady state allocates nothing; the first short write of a queue
    /// allocates a reusable copy buffer of 256 KiB (the remaining bytes are
    /// sent from it in chunks, so the caller's buffer stays untouched).
    pub fn queue_write<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action + 'static,
    {
        self.queue.push(lp, &self.owner, self.sink(), buf, cb)
    }

    /// Queued writes not finished yet (including the one in flight).
    pub fn queued_writes(&self) -> usize {
        self.queue.len()
    }

    /// Bytes queued with [`Stream::queue_write`] and not written yet: the
    /// lengths of the queued writes, less what the kernel already took of
    /// the one in flight (each short write counts as it completes). A
    /// write leaves the count as soon as it is finished, fails, or fails
    /// because of the write ahead of it or a close (before its callback
    /// runs); a write rearmed by its callback counts again, and one freed
    /// with [`Loop::free`] while it waits leaves the count when its turn
    /// comes (as it leaves [`Stream::queued_writes`]). It is 0 whenever
    /// [`Stream::queued_writes`] is.
    ///
    /// This is the figure to watch for backpressure: a server that stops
    /// reading from a peer while its queued bytes exceed a high-water mark,
    /// and reads again from [`Stream::on_drain`], holds at most that mark
    /// plus one read's worth of replies per peer, however slowly the peer
    /// reads (`examples/tcp_echo.rs` does this).
    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes()
    }

    /// Calls `cb` once, with the loop and [`Stream::queued_bytes`] as it
    /// then is, after the write queue has drained to `low_water` bytes or
    /// fewer: at the loop's next tick after the count first falls to
    /// `low_water` or below (the kernel took enough bytes, or the queued
    /// writes failed, e.g. because the peer went away), or at the next
    /// tick if it is already there. More bytes may have been queued in
    /// between (the figure given can then exceed `low_water`).
    ///
    /// Returns the id of the registration's completion (a noop, parked
    /// until the queue drains). It counts as one of the watcher's requests
    /// ([`Stream::in_flight`]) until it has run. Several registrations may
    /// wait at once; each runs at most once. The callback never runs, and
    /// is dropped (with whatever it captured), when the watcher is closed
    /// or dropped first, or when the registration is freed with
    /// [`Loop::free`] (while it waits) or canceled with [`Loop::cancel`]
    /// (once the drain has started it). The queue keeps only the
    /// registration's id, not the callback, so a callback that captures
    /// the watcher makes no reference cycle through the queue.
    ///
    /// Allocates nothing in steady state (the loop recycles the noop's
    /// memory).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    /// use xev::watcher::Stream;
    /// use xev::{Action, Loop, RunMode};
    ///
    /// let mut lp = Loop::new(Default::default()).unwrap();
    /// let (a, b) = UnixStream::pair().unwrap();
    /// let a: Stream = Stream::from_fd(a.into()).unwrap();
    /// let b: Stream = Stream::from_fd(b.into()).unwrap();
    ///
    /// a.queue_write(&mut lp, vec![1; 100_000], |_, _, r| {
    ///     r.unwrap();
    ///     Action::Disarm
    /// });
    /// // Nothing is written before the loop runs.
    /// assert_eq!(a.queued_bytes(), 100_000);
    /// let drained = Rc::new(Cell::new(None));
    /// let d = drained.clone();
    /// a.on_drain(&mut lp, 0, move |_, left| d.set(Some(left)));
    ///
    /// // The peer reads everything: the queue drains, the callback runs once.
    /// let got = Rc::new(Cell::new(0));
    /// let g = got.clone();
    /// b.read(&mut lp, vec![0; 64 * 1024], move |_, _, r| {
    ///     g.set(g.get() + r.unwrap());
    ///     if g.get() < 100_000 { Action::Rearm } else { Action::Disarm }
    /// });
    /// lp.run(RunMode::UntilDone).unwrap();
    /// assert_eq!(drained.get(), Some(0));
    /// assert_eq!(a.queued_bytes(), 0);
    ///
    /// a.close(&mut lp, |_, r| r.unwrap());
    /// b.close(&mut lp, |_, r| r.unwrap());
    /// lp.run(RunMode::UntilDone).unwrap();
    /// ```
    pub fn on_drain<F>(&self, lp: &mut Loop<B>, low_water: usize, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, usize) + 'static,
    {
        self.queue.on_drain(lp, &self.owner, low_water, cb)
    }

    /// Waits until the descriptor is ready for `interest` (hang-ups and
    /// errors are always reported). [`Action::Rearm`] waits again.
    pub fn poll<F>(&self, lp: &mut Loop<B>, interest: Interest, mut cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<Readiness, PollError>) -> Action + 'static,
    {
        let op = Op::Poll {
            fd: self.fd(),
            interest,
        };
        self.owner.track(lp, op, move |mut t| {
            move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
                let res = match res {
                    OpResult::Poll(r) => r,
                    other => Err(PollError::Io(unexpected(&other))),
                };
                let action = cb(lp, res);
                t.settle(lp, action)
            }
        })
    }

    /// Shuts down the read half, the write half or both of a socket (other
    /// descriptors fail with `ENOTSOCK`). [`Action::Rearm`] repeats it.
    pub fn shutdown<F>(&self, lp: &mut Loop<B>, how: std::net::Shutdown, mut cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<(), ShutdownError>) -> Action + 'static,
    {
        let op = Op::Shutdown { fd: self.fd(), how };
        self.owner.track(lp, op, move |mut t| {
            move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
                let res = match res {
                    OpResult::Shutdown(r) => r,
                    other => Err(ShutdownError::Io(unexpected(&other))),
                };
                let action = cb(lp, res);
                t.settle(lp, action)
            }
        })
    }

    /// Closes the descriptor through the loop (consuming the watcher), the
    /// same way on every backend: the watcher's requests in flight are
    /// canceled (each callback runs once, with `Canceled`, or with its
    /// result if that was already in; a `Rearm` or `Park` it returns is
    /// ignored), its parked requests are freed, queued writes that have
    /// not started fail with [`WriteError::Canceled`] (see
    /// [`Stream::queue_write`]), and once the last of them has ended the
    /// descriptor is closed and `cb` runs once with the result. Returns the
    /// id of the close completion. Dropping the watcher does the same,
    /// ignoring the result.
    pub fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        self.owner.close(lp, cb)
    }

    /// Takes the descriptor back without closing it (it stays
    /// non-blocking), when none of the watcher's requests is in flight or
    /// parked ([`Stream::in_flight`] is 0; cancel or free them and let
    /// their callbacks run first). Otherwise hands the watcher back
    /// unchanged.
    pub fn into_fd(self) -> Result<OwnedFd, Stream<B>> {
        match self.owner.take_fd(crate::sys::types::to_public) {
            Some(fd) => Ok(fd),
            None => Err(self),
        }
    }

    /// Where writes of this stream go.
    fn sink(&self) -> Sink {
        if self.socket {
            Sink::Socket(self.fd())
        } else {
            Sink::Fd(self.fd())
        }
    }
}

#[cfg(any(unix, target_os = "wasi"))]
#[cfg_attr(docsrs, doc(cfg(any(unix, target_os = "wasi"))))]
impl<B: Backend> AsFd for Stream<B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor stays open as long as the watcher exists:
        // it leaves the watcher's share only through `close` or `into_fd`,
        // which consume the watcher, or when the loop adopts it after the
        // watcher was dropped; the borrow of `self` bounds the result.
        unsafe { BorrowedFd::borrow_raw(self.fd()) }
    }
}

#[cfg(any(unix, target_os = "wasi"))]
#[cfg_attr(docsrs, doc(cfg(any(unix, target_os = "wasi"))))]
impl<B: Backend> AsRawFd for Stream<B> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

#[cfg(windows)]
#[cfg_attr(docsrs, doc(cfg(windows)))]
impl<B: Backend> std::os::windows::io::AsSocket for Stream<B> {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        // SAFETY: as for `AsFd` on Unix: the socket stays open as long as
        // the watcher exists, and the borrow of `self` bounds the result.
        unsafe { std::os::windows::io::BorrowedSocket::borrow_raw(self.fd() as u64) }
    }
}

#[cfg(windows)]
#[cfg_attr(docsrs, doc(cfg(windows)))]
impl<B: Backend> std::os::windows::io::AsRawSocket for Stream<B> {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        self.fd() as u64
    }
}

impl<B: Backend> fmt::Debug for Stream<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("fd", &self.fd())
            .field("socket", &self.socket)
            .field("in_flight", &self.in_flight())
            .field("queued_writes", &self.queue.len())
            .field("queued_bytes", &self.queue.bytes())
            .finish()
    }
}
