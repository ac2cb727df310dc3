//! The stream watcher: reads, writes, ordered write queues, readiness polls,
//! shutdown and close on any non-blocking file descriptor (pipes, ttys,
//! sockets, character devices).
//!
//! Every request is one completion added with [`Loop::add`] (or, for queued
//! writes, [`Loop::add_parked_callback`]); the loop recycles the memory of
//! finished completions, so steady-state requests allocate nothing. Each
//! method returns the [`Id`] of its completion, which [`Loop::cancel`]
//! accepts.
//!
//! # Callbacks and actions
//!
//! A callback gets the loop, the request's buffer back (by `&mut`, so it can
//! be inspected, refilled, resized or taken with [`std::mem::take`]) and a
//! typed result. What it returns decides what happens next:
//!
//! - [`Action::Rearm`] repeats the request with the buffer as the callback
//!   left it (a read reads again into it, a write writes it again);
//! - [`Action::Disarm`] ends the request; its completion is released;
//! - [`Action::Park`] keeps the completion parked in the loop: restart it
//!   with [`Loop::restart`] or release it with [`Loop::free`] (queued writes
//!   treat `Park` as `Disarm`, see [`Stream::queue_write`]).
//!
//! # Descriptor ownership
//!
//! A watcher owns its descriptor, and shares it with the callbacks of its
//! requests: it stays open while any request may still use its number, so
//! the number is never reused under a request in flight. Every request of a
//! watcher goes to one loop at a time.
//!
//! - [`Stream::close`] closes it through the loop: the requests in flight
//!   are canceled first (each callback runs once, with `Canceled`, or with
//!   its result if that was already in), parked ones are freed, queued
//!   writes that have not started fail with `Canceled`, and the descriptor
//!   is closed once the last of them has ended; the callback gets the
//!   close's result.
//! - **Dropping** the watcher does the same, the same way on every
//!   backend, at the next tick of the loop of its latest request (right
//!   after the callback that dropped it, if one did), ignoring the close's
//!   result. Closing through the loop is what lets readiness backends
//!   (epoll, kqueue) forget the descriptor before its number is reused, and
//!   a socket's peer sees end of file once the close ran. A watcher never
//!   used with a loop, or whose loop was dropped first (which ended its
//!   requests), closes its descriptor directly when dropped.
//! - [`Stream::into_fd`] takes the descriptor back, open, when no request
//!   is in flight or parked (else it hands the watcher back).

use std::cell::{OnceCell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::rc::Rc;

use super::shared_fd::{FdOwner, Tracked};
use crate::backend::Backend;
use crate::error::{CloseError, IdError, PollError, ReadError, ShutdownError, WriteError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Interest, Op, OpResult, Readiness};
use crate::record::Action;
use crate::DefaultBackend;

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
/// use xev::watcher::stream::Stream;
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
    pub fn from_fd(fd: OwnedFd) -> io::Result<Stream<B>> {
        set_nonblocking(fd.as_fd())?;
        let socket = is_socket(fd)?;
        Ok(Stream::from_nonblocking(socket.0, socket.1))
    }

    /// Wraps a descriptor that is already non-blocking, without a syscall.
    pub(super) fn from_nonblocking(fd: OwnedFd, socket: bool) -> Stream<B> {
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

    /// The watcher's ownership of its descriptor (for [`Tcp`](super::tcp::Tcp)).
    pub(super) fn owner(&self) -> &FdOwner<B> {
        &self.owner
    }

    /// Requests of this watcher that are in flight or parked (queued writes
    /// included).
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
            Op::Recv { fd, buf }
        } else {
            Op::Read { fd, buf }
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
        match self.owner.take_fd() {
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

impl<B: Backend> AsFd for Stream<B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor stays open as long as the watcher exists:
        // it leaves the watcher's share only through `close` or `into_fd`,
        // which consume the watcher, or when the loop adopts it after the
        // watcher was dropped; the borrow of `self` bounds the result.
        unsafe { BorrowedFd::borrow_raw(self.fd()) }
    }
}

impl<B: Backend> AsRawFd for Stream<B> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl<B: Backend> fmt::Debug for Stream<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("fd", &self.fd())
            .field("socket", &self.socket)
            .field("in_flight", &self.in_flight())
            .field("queued_writes", &self.queue.len())
            .finish()
    }
}

/// Sets `O_NONBLOCK` on `fd`'s open file description.
pub(super) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    crate::sys::set_nonblocking(fd.as_raw_fd())
}

/// Whether `fd` is a socket (`fstat`), handing the descriptor back.
pub(super) fn is_socket(fd: OwnedFd) -> io::Result<(OwnedFd, bool)> {
    let file = std::fs::File::from(fd);
    let socket = file.metadata().map(|m| m.file_type().is_socket());
    let fd = OwnedFd::from(file);
    Ok((fd, socket?))
}

/// The error handed to a callback whose operation produced a result of the
/// wrong kind (impossible unless the operation was replaced behind the
/// watcher's back).
fn unexpected(res: &OpResult) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("xev watcher: unexpected result {res:?}"),
    )
}

/// After a positional operation moved `n` bytes, a rearm continues right
/// after them.
fn advance(op: &mut Op, n: usize) {
    if let Op::Pread { offset, .. } | Op::Pwrite { offset, .. } = op {
        *offset = offset.saturating_add(n as u64);
    }
}

/// Adds a read-family operation of `owner`'s descriptor whose callback gets
/// the buffer and a read result. On [`Action::Rearm`] a positional read
/// continues at `offset + n`.
pub(super) fn add_read<B, F>(lp: &mut Loop<B>, owner: &FdOwner<B>, op: Op, cb: F) -> Id
where
    B: Backend,
    F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, ReadError>) -> Action + 'static,
{
    add_transfer(lp, owner, op, cb, |res| match res {
        OpResult::Read(r) => r,
        other => Err(ReadError::Io(unexpected(&other))),
    })
}

/// Adds a write-family operation of `owner`'s descriptor whose callback
/// gets the buffer and a write result. On [`Action::Rearm`] a positional
/// write continues at `offset + n`.
pub(super) fn add_write<B, F>(lp: &mut Loop<B>, owner: &FdOwner<B>, op: Op, cb: F) -> Id
where
    B: Backend,
    F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action + 'static,
{
    add_transfer(lp, owner, op, cb, |res| match res {
        OpResult::Write(r) => r,
        other => Err(WriteError::Io(unexpected(&other))),
    })
}

/// The body of [`add_read`] and [`add_write`]: `typed` picks the family's
/// result out of the loop's `OpResult`.
fn add_transfer<B, E, F>(
    lp: &mut Loop<B>,
    owner: &FdOwner<B>,
    op: Op,
    mut cb: F,
    typed: fn(OpResult) -> Result<usize, E>,
) -> Id
where
    B: Backend,
    E: 'static,
    F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, E>) -> Action + 'static,
{
    owner.track(lp, op, move |mut t| {
        move |lp: &mut Loop<B>, op: &mut Op, res: OpResult| {
            let res = typed(res);
            let n = *res.as_ref().unwrap_or(&0);
            let mut none = Vec::new();
            let action = cb(lp, op.buf_mut().unwrap_or(&mut none), res);
            let action = t.settle(lp, action);
            if action == Action::Rearm {
                advance(op, n);
            }
            action
        }
    })
}

// ---------------------------------------------------------------------------
// The write queue.
//
// Each queued write is its own completion, added parked and tracked by the
// watcher's descriptor as a *managed* operation (a close cancels it only
// while it is in flight, and never frees it: the queue ends it). The queue
// holds their ids in order; the head is the only one in flight, and it
// restarts the next one when it is done. A failed head (or one that ends
// once the descriptor is closing) *condemns* the rest: each is
// restarted and at once canceled (a queued completion is canceled without
// reaching the backend, so no I/O happens) and its callback maps that
// `Canceled` to the head's error, taken from `condemned`. The loop calls
// callbacks in the order completions finish, and a condemned write finishes
// the moment it is canceled, so condemned callbacks run in the order they
// were pushed onto `condemned`, before any later `Canceled` of this queue.
// ---------------------------------------------------------------------------

/// Size of the copy buffer used to finish short writes.
const CHUNK: usize = 256 * 1024;

/// Where a queue's (or a write's) bytes go.
#[derive(Clone, Copy, Debug)]
pub(super) enum Sink {
    /// `write(2)` at the descriptor's position.
    Fd(RawFd),
    /// `send(2)` with `MSG_NOSIGNAL`.
    Socket(RawFd),
    /// `pwrite(2)` at an offset.
    At(RawFd),
}

/// The operation that writes `buf` to `sink` (at `offset` for [`Sink::At`]).
pub(super) fn write_op(sink: Sink, buf: Vec<u8>, offset: u64) -> Op {
    match sink {
        Sink::Fd(fd) => Op::Write { fd, buf },
        Sink::Socket(fd) => Op::Send { fd, buf },
        Sink::At(fd) => Op::Pwrite { fd, buf, offset },
    }
}

#[derive(Default)]
struct QueueState {
    /// Queued writes in order; the front one is in flight.
    ids: VecDeque<Id>,
    /// Writes failed because of an earlier failure (or a close), with the
    /// error each will report, in the order their callbacks will run.
    condemned: VecDeque<(Id, WriteError)>,
    /// Copy buffer for finishing short writes (taken by the head).
    scratch: Vec<u8>,
    /// Offset of the next positional queued write.
    next_offset: u64,
}

impl QueueState {
    /// The offset for a new write of `len` bytes to `sink`; positional
    /// queues advance past it.
    fn reserve(&mut self, sink: Sink, len: usize) -> u64 {
        match sink {
            Sink::At(_) => {
                let at = self.next_offset;
                self.next_offset = at.saturating_add(len as u64);
                at
            }
            Sink::Fd(_) | Sink::Socket(_) => 0,
        }
    }
}

type Shared = Rc<RefCell<QueueState>>;

/// The watcher's handle on its write queue, created on first use (so
/// watchers that never queue allocate nothing for it). The queue is closed
/// when the watcher's descriptor is.
#[derive(Default)]
pub(super) struct WriteQueue {
    cell: OnceCell<Shared>,
}

impl WriteQueue {
    fn shared(&self) -> &Shared {
        self.cell.get_or_init(Rc::default)
    }

    /// Queued writes not finished yet.
    pub(super) fn len(&self) -> usize {
        self.cell
            .get()
            .and_then(|q| q.try_borrow().ok().map(|q| q.ids.len()))
            .unwrap_or(0)
    }

    /// Offset of the next positional write.
    pub(super) fn next_offset(&self) -> u64 {
        self.cell
            .get()
            .and_then(|q| q.try_borrow().ok().map(|q| q.next_offset))
            .unwrap_or(0)
    }

    /// Sets the offset of the next positional write.
    pub(super) fn set_next_offset(&self, offset: u64) {
        if let Ok(mut q) = self.shared().try_borrow_mut() {
            q.next_offset = offset;
        }
    }

    /// Queues a write of `buf` to `sink` (`owner`'s descriptor); see
    /// [`Stream::queue_write`].
    pub(super) fn push<B, F>(
        &self,
        lp: &mut Loop<B>,
        owner: &FdOwner<B>,
        sink: Sink,
        buf: Vec<u8>,
        cb: F,
    ) -> Id
    where
        B: Backend,
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action + 'static,
    {
        let q = self.shared();
        let base = q.borrow_mut().reserve(sink, buf.len());
        let shared = q.clone();
        let id = owner.track_parked(lp, write_op(sink, buf, base), move |t| {
            let mut w = Queued {
                q: shared,
                t,
                sink,
                base,
                off: 0,
                held: None,
                cb,
            };
            move |lp: &mut Loop<B>, op: &mut Op, res: OpResult| {
                let action = w.complete(lp, op, res);
                w.t.settle(lp, action)
            }
        });
        let first = {
            let mut s = q.borrow_mut();
            s.ids.push_back(id);
            s.ids.len() == 1
        };
        if first {
            start_next(lp, q);
        }
        id
    }
}

/// Restarts the front of the queue (skipping writes the user freed).
fn start_next<B: Backend>(lp: &mut Loop<B>, q: &Shared) {
    loop {
        let Some(next) = q.borrow().ids.front().copied() else {
            return;
        };
        match lp.restart(next) {
            Ok(()) | Err(IdError::Busy) => return,
            Err(_) => {
                q.borrow_mut().ids.pop_front();
            }
        }
    }
}

/// Fails every queued write with `err`, in order, without I/O (see the
/// comment at the top of this section).
fn condemn<B: Backend>(lp: &mut Loop<B>, q: &Shared, err: &WriteError) {
    loop {
        let Some(id) = q.borrow_mut().ids.pop_front() else {
            return;
        };
        if lp.restart(id).is_err() {
            continue; // freed by the user
        }
        q.borrow_mut().condemned.push_back((id, clone_error(err)));
        if lp.cancel(id).is_err() {
            // Cannot happen: a queued completion is always cancelable. Let
            // the write run rather than misreport it.
            q.borrow_mut().condemned.pop_back();
        }
    }
}

/// A copy of a write error (same variant, same errno).
fn clone_error(e: &WriteError) -> WriteError {
    match e {
        WriteError::Canceled => WriteError::Canceled,
        WriteError::NoThreadPool => WriteError::NoThreadPool,
        WriteError::Io(e) => WriteError::Io(match e.raw_os_error() {
            Some(n) => io::Error::from_raw_os_error(n),
            None => io::Error::new(e.kind(), e.to_string()),
        }),
    }
}

/// How far a queued write got after a successful syscall.
enum Progress {
    /// More to write: rearm.
    More,
    /// All of it: the total.
    Done(usize),
    /// The syscall wrote nothing although bytes remain.
    Stalled,
}

/// One queued write's state (its completion's callback).
struct Queued<F> {
    q: Shared,
    /// Its tracking by the watcher's descriptor (which tells whether the
    /// watcher is closing).
    t: Tracked,
    sink: Sink,
    /// Offset of the write's first byte (positional sinks).
    base: u64,
    /// Bytes of the caller's buffer written so far.
    off: usize,
    /// The caller's buffer, while the operation writes from the scratch copy.
    held: Option<Vec<u8>>,
    cb: F,
}

impl<F> Queued<F> {
    fn complete<B>(&mut self, lp: &mut Loop<B>, op: &mut Op, res: OpResult) -> Action
    where
        B: Backend,
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action,
    {
        let res = match res {
            OpResult::Write(r) => r,
            other => Err(WriteError::Io(unexpected(&other))),
        };
        if matches!(res, Err(WriteError::Canceled)) {
            let condemned = self.q.borrow_mut().condemned.pop_front();
            if let Some((me, err)) = condemned {
                return self.deliver(lp, op, me, Err(err));
            }
        }
        let closed = self.t.share().is_closing();
        let res = match res {
            Ok(n) => match self.progress(op, n) {
                // Closing: the rest of the buffer is not written.
                Progress::More if closed => Err(WriteError::Canceled),
                Progress::More => return Action::Rearm,
                Progress::Done(total) => Ok(total),
                Progress::Stalled => Err(WriteError::Io(io::ErrorKind::WriteZero.into())),
            },
            Err(e) => Err(e),
        };
        self.restore(op);
        // This is the head: leave the queue, then start the next write or
        // fail the rest, before the callback runs (so that writes it queues
        // go behind them).
        let me = self.q.borrow_mut().ids.pop_front();
        match &res {
            Err(e) => condemn(lp, &self.q, e),
            Ok(_) if closed => condemn(lp, &self.q, &WriteError::Canceled),
            Ok(_) => start_next(lp, &self.q),
        }
        match me {
            Some(me) => self.deliver(lp, op, me, res),
            None => {
                // Unreachable while the queue's invariants hold; still give
                // the callback its result.
                let mut none = Vec::new();
                let _ = (self.cb)(lp, op.buf_mut().unwrap_or(&mut none), res);
                Action::Disarm
            }
        }
    }

    /// Accounts for `n` bytes written by the current operation and sets up
    /// the next one when bytes remain.
    fn progress(&mut self, op: &mut Op, n: usize) -> Progress {
        let cur = op.buf().map_or(0, Vec::len);
        let n = n.min(cur);
        let full = match self.held.take() {
            Some(full) => full,
            None => {
                // The operation holds the caller's whole buffer.
                if n == cur {
                    return Progress::Done(cur);
                }
                if n == 0 {
                    return Progress::Stalled;
                }
                let full = op.take_buf().unwrap_or_default();
                let scratch = std::mem::take(&mut self.q.borrow_mut().scratch);
                self.off = n;
                self.next_chunk(op, full, scratch);
                return Progress::More;
            }
        };
        self.off += n;
        if self.off >= full.len() {
            let total = full.len();
            self.held = Some(full);
            return Progress::Done(total);
        }
        if n == 0 {
            self.held = Some(full);
            return Progress::Stalled;
        }
        let scratch = op.take_buf().unwrap_or_default();
        self.next_chunk(op, full, scratch);
        Progress::More
    }

    /// Points the operation at the next chunk of `full` (from `self.off`),
    /// copied into `scratch`, and holds `full` aside.
    fn next_chunk(&mut self, op: &mut Op, full: Vec<u8>, mut scratch: Vec<u8>) {
        let rest = full.get(self.off..).unwrap_or(&[]);
        scratch.clear();
        scratch.extend_from_slice(rest.get(..CHUNK).unwrap_or(rest));
        *op = write_op(
            self.sink,
            scratch,
            self.base.saturating_add(self.off as u64),
        );
        self.held = Some(full);
    }

    /// Puts the caller's buffer back into the operation (and the copy
    /// buffer back into the queue).
    fn restore(&mut self, op: &mut Op) {
        if let Some(full) = self.held.take() {
            let mut scratch = op.take_buf().unwrap_or_default();
            scratch.clear();
            *op = write_op(self.sink, full, self.base);
            if let Ok(mut s) = self.q.try_borrow_mut() {
                if s.scratch.capacity() < scratch.capacity() {
                    s.scratch = scratch;
                }
            }
        }
        self.off = 0;
    }

    /// Runs the callback of write `me` and acts on its answer.
    fn deliver<B>(
        &mut self,
        lp: &mut Loop<B>,
        op: &mut Op,
        me: Id,
        res: Result<usize, WriteError>,
    ) -> Action
    where
        B: Backend,
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action,
    {
        let mut none = Vec::new();
        let action = (self.cb)(lp, op.buf_mut().unwrap_or(&mut none), res);
        if action != Action::Rearm {
            return Action::Disarm;
        }
        // Queue the buffer again, at the back.
        if self.t.share().is_closing() {
            return Action::Disarm;
        }
        let mut s = self.q.borrow_mut();
        let buf = op.take_buf().unwrap_or_default();
        self.base = s.reserve(self.sink, buf.len());
        self.off = 0;
        *op = write_op(self.sink, buf, self.base);
        s.ids.push_back(me);
        if s.ids.len() == 1 {
            Action::Rearm // the queue was empty: this write is the head
        } else {
            Action::Park // restarted by the write ahead of it
        }
    }
}
