//! The write queue of the stream and file watchers
//! ([`Stream::queue_write`](super::Stream::queue_write),
//! [`File::queue_write`](super::File::queue_write)): whole buffers
//! written in order, one in flight at a time, short writes finished before
//! the next starts, and a failure failing everything queued behind it.
//!
//! Each queued write is its own completion, added parked and tracked by the
//! watcher's descriptor as a *managed* operation (a close cancels it only
//! while it is in flight, and never frees it: the queue ends it). The queue
//! holds their ids in order; the head is the only one in flight, and it
//! restarts the next one when it is done. A failed head (or one that ends
//! once the descriptor is closing) *condemns* the rest: each is
//! restarted and at once canceled (a queued completion is canceled without
//! reaching the backend, so no I/O happens) and its callback maps that
//! `Canceled` to the head's error, taken from `condemned`. The loop calls
//! callbacks in the order completions finish, and a condemned write finishes
//! the moment it is canceled, so condemned callbacks run in the order they
//! were pushed onto `condemned`, before any later `Canceled` of this queue.
//!
//! **Backpressure.** The queue counts its bytes not written yet
//! ([`Stream::queued_bytes`](super::Stream::queued_bytes)): each entry of
//! `ids` carries what is left of its write; the head's entry shrinks as
//! the kernel takes its bytes (short writes included), and an entry leaves
//! the count when it leaves `ids` (finished, failed, condemned, or freed by
//! the user), so the count is 0 whenever `ids` is empty. A drain
//! registration ([`Stream::on_drain`](super::Stream::on_drain)) is a
//! parked noop completion, tracked by the watcher's descriptor like any
//! request (so closing the watcher frees it, and its callback, which the
//! queue never holds: no `Rc` cycle through the watcher); the queue keeps
//! its id and low-water mark and restarts it, once, the first time the
//! count falls to the mark, and the loop then runs its callback like any
//! other completion's.
//!
//! [`Sink`] and [`write_op`] (where a write's bytes go, and the operation
//! that writes them there) are shared with the plain writes of the stream
//! watcher.

use std::cell::{OnceCell, RefCell};
use std::collections::VecDeque;
use std::io;
use crate::op::RawHandle as RawFd;
use std::rc::Rc;

use crate::op::unexpected;
use super::shared_fd::{FdOwner, Tracked};
use crate::backend::Backend;
use crate::error::{IdError, WriteError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Op, OpResult};
use crate::record::Action;

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
        Sink::Fd(fd) => Op::Write { fd, buf: buf.into() },
        Sink::Socket(fd) => Op::Send { fd, buf: buf.into() },
        Sink::At(fd) => Op::Pwrite { fd, buf: buf.into(), offset },
    }
}

/// One queued write, as the queue counts it.
#[derive(Clone, Copy)]
struct Entry {
    id: Id,
    /// Bytes of it not written yet.
    left: usize,
}

#[derive(Default)]
struct QueueState {
    /// Queued writes in order; the front one is in flight.
    ids: VecDeque<Entry>,
    /// Bytes not written yet: the sum of the entries' `left`.
    bytes: usize,
    /// Drain registrations waiting for the queue to drain: each one's
    /// parked completion and low-water mark, in registration order.
    drains: Vec<(Id, usize)>,
    /// Writes failed because of an earlier failure (or a close), with the
    /// error each will report, in the order their callbacks will run.
    condemned: VecDeque<(Id, WriteError)>,
    /// Copy buffer for finishing short writes (taken by the head).
    scratch: Vec<u8>,
    /// Offset of the next positional queued write.
    next_offset: u64,
}

impl QueueState {
    /// Appends write `id` of `len` bytes; returns the queue's length.
    fn push_back(&mut self, id: Id, len: usize) -> usize {
        self.ids.push_back(Entry { id, left: len });
        self.bytes = self.bytes.saturating_add(len);
        self.ids.len()
    }

    /// The write in flight (or about to be).
    fn front(&self) -> Option<Id> {
        self.ids.front().map(|e| e.id)
    }

    /// Removes the head, and what was left of it from the count.
    fn pop_front(&mut self) -> Option<Id> {
        let e = self.ids.pop_front()?;
        self.bytes = self.bytes.saturating_sub(e.left);
        Some(e.id)
    }

    /// Counts `n` more bytes of the head as written.
    fn wrote(&mut self, n: usize) {
        if let Some(e) = self.ids.front_mut() {
            let n = n.min(e.left);
            e.left -= n;
            self.bytes = self.bytes.saturating_sub(n);
        }
    }

    /// The first drain registration whose mark the count is at or below,
    /// taken off the list.
    fn take_drained(&mut self) -> Option<Id> {
        let bytes = self.bytes;
        let i = self.drains.iter().position(|&(_, low)| bytes <= low)?;
        Some(self.drains.remove(i).0)
    }

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

    /// Bytes of the queued writes not written yet; see
    /// [`Stream::queued_bytes`](super::Stream::queued_bytes).
    pub(super) fn bytes(&self) -> usize {
        self.cell.get().map_or(0, queued_bytes)
    }

    /// Registers `cb` to run once the queue's bytes are at most
    /// `low_water`; see [`Stream::on_drain`](super::Stream::on_drain).
    pub(super) fn on_drain<B, F>(
        &self,
        lp: &mut Loop<B>,
        owner: &FdOwner<B>,
        low_water: usize,
        cb: F,
    ) -> Id
    where
        B: Backend,
        F: FnOnce(&mut Loop<B>, usize) + 'static,
    {
        let q = self.shared();
        let shared = q.clone();
        let make = move |mut t: Tracked| {
            let mut cb = Some(cb);
            move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
                // Only a drain runs it: not a cancel, and not once the
                // watcher is closing (its close freed or canceled us).
                if matches!(res, OpResult::Noop(Ok(()))) && !t.share().is_closing() {
                    if let Some(cb) = cb.take() {
                        cb(lp, queued_bytes(&shared));
                    }
                }
                t.settle(lp, Action::Disarm)
            }
        };
        if queued_bytes(q) <= low_water {
            // Drained already: the callback runs at the next tick.
            return owner.track(lp, Op::Noop, make);
        }
        let id = owner.track_idle(lp, Op::Noop, make);
        let mut s = q.borrow_mut();
        // Forget the registrations the user freed (their ids are stale).
        s.drains.retain(|&(d, _)| lp.op_mut(d).is_ok());
        s.drains.push((id, low_water));
        id
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
    /// [`Stream::queue_write`](super::Stream::queue_write).
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
        let len = buf.len();
        let base = q.borrow_mut().reserve(sink, len);
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
        let first = q.borrow_mut().push_back(id, len) == 1;
        if first {
            start_next(lp, q);
            fire_drains(lp, q);
        }
        id
    }
}

/// The queue's bytes not written yet (0 if it is borrowed, which no caller
/// of this does while the queue's own code holds it).
fn queued_bytes(q: &Shared) -> usize {
    q.try_borrow().map_or(0, |s| s.bytes)
}

/// Starts the drain registrations whose low-water mark the queue's bytes
/// are now at or below (each once: it leaves the list). A registration the
/// user freed is skipped.
fn fire_drains<B: Backend>(lp: &mut Loop<B>, q: &Shared) {
    loop {
        let Some(id) = q.borrow_mut().take_drained() else {
            return;
        };
        let _ = lp.restart(id);
    }
}

/// Restarts the front of the queue (skipping writes the user freed).
fn start_next<B: Backend>(lp: &mut Loop<B>, q: &Shared) {
    loop {
        let Some(next) = q.borrow().front() else {
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
/// module documentation).
fn condemn<B: Backend>(lp: &mut Loop<B>, q: &Shared, err: &WriteError) {
    loop {
        let Some(id) = q.borrow_mut().pop_front() else {
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
        WriteError::Unsupported => WriteError::Unsupported,
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
                Progress::More => {
                    fire_drains(lp, &self.q);
                    return Action::Rearm;
                }
                Progress::Done(total) => Ok(total),
                Progress::Stalled => Err(WriteError::Io(io::ErrorKind::WriteZero.into())),
            },
            Err(e) => Err(e),
        };
        self.restore(op);
        // This is the head: leave the queue, then start the next write or
        // fail the rest, before the callback runs (so that writes it queues
        // go behind them).
        let me = self.q.borrow_mut().pop_front();
        match &res {
            Err(e) => condemn(lp, &self.q, e),
            Ok(_) if closed => condemn(lp, &self.q, &WriteError::Canceled),
            Ok(_) => start_next(lp, &self.q),
        }
        fire_drains(lp, &self.q);
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
        self.q.borrow_mut().wrote(n);
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
        let len = buf.len();
        self.base = s.reserve(self.sink, len);
        self.off = 0;
        *op = write_op(self.sink, buf, self.base);
        if s.push_back(me, len) == 1 {
            Action::Rearm // the queue was empty: this write is the head
        } else {
            Action::Park // restarted by the write ahead of it
        }
    }
}
