//! The io_uring backend's multishot receives: pooled receives
//! ([`Op::recv_pool`](crate::Op::recv_pool)) on one descriptor and one
//! pool share a *stream*, one multishot `RECV` that picks buffers from the
//! pool's provided-buffer ring and posts a result per chunk of data, so a
//! connection that keeps receiving costs no new entry per receive.
//!
//! A stream's results go to the pooled receive waiting on it; those that
//! come while none waits (its callback has not run yet, or it stopped
//! receiving) queue in the stream, linked through the buffer ids they
//! hold, and the next pooled receive on that descriptor and pool takes
//! them first, so no data is lost or reordered. A stream that nobody
//! waits on at the start of the backend's next poll (or flush) is
//! canceled: data it got before the cancel took effect stays queued. A
//! close through the loop empties the streams of its descriptor (their
//! late results, from the old socket, are dropped by their epoch) and
//! ends a receive waiting there with `-ECANCELED`, before the close's own
//! result. Pooled receives that start while one already waits on the
//! stream wait behind it, in order (linked through their cores'
//! `slot.uring_ordered`, which a stream receive does not otherwise use).
//!
//! Read-ahead: while a stream is live the kernel fills the pool's
//! buffers with whatever the socket gets, so data that comes after the
//! last pooled receive (and before its stream is canceled) sits in pool
//! buffers, queued for the next pooled receive on that socket, instead of
//! in the socket. Such buffers are not free for other sockets until that
//! receive takes them or the socket is closed through the loop or
//! forgotten (which drop that data).

use std::os::fd::RawFd;
use std::ptr::NonNull;

use io_uring::cqueue;

use crate::buf_pool::NO_BUFFERS;
use crate::op::Op;
use crate::record::Core;

/// The low byte of a stream's user data: never the address of a
/// completion (8-aligned) nor one of the backend's special values.
const TAG: u64 = 5;
/// No buffer (end of a queue).
const NIL: u16 = u16::MAX;
/// Epochs are kept in 13 bits of the user data.
const EPOCH_MASK: u16 = 0x1fff;
/// Streams exist for descriptors below this (others receive one shot at
/// a time, as a plain receive does). A pool's streams are a table indexed
/// by descriptor, grown to the highest one used: at most 2 MiB.
pub(crate) const MAX_STREAM_FD: usize = 1 << 16;

/// The user data of stream (`bgid`, `fd`)'s multishot of `epoch`.
fn encode(fd: RawFd, bgid: u16, epoch: u16) -> u64 {
    (u64::from(fd as u32) << 32) | (u64::from(bgid) << 16) | (u64::from(epoch & EPOCH_MASK) << 3) | TAG
}

/// Whether `ud` names a stream.
pub(crate) fn is_stream(ud: u64) -> bool {
    ud & 7 == TAG
}

/// The descriptor and buffer group of stream user data `ud`.
pub(crate) fn fd_and_group(ud: u64) -> (RawFd, u16) {
    let (fd, bgid, _) = decode(ud);
    (fd, bgid)
}

fn decode(ud: u64) -> (RawFd, u16, u16) {
    ((ud >> 32) as u32 as RawFd, (ud >> 16) as u16, ((ud >> 3) as u16) & EPOCH_MASK)
}

#[derive(Clone, Copy)]
struct Stream {
    /// Results that came while no receive waited: buffer ids, linked
    /// through [`PoolState::links`].
    head: u16,
    tail: u16,
    /// The multishot's final result (error, end of file, no buffers), to
    /// deliver after the queue.
    end: Option<i32>,
    /// The epoch of the current multishot; results of another are stale.
    epoch: u16,
    /// A multishot of this epoch is in the kernel.
    live: bool,
    /// The backend asked the kernel to cancel it: its final `-ECANCELED`
    /// is no result for anyone.
    canceling: bool,
    /// The pooled receive waiting for the next result (null: none), first
    /// of the receives waiting on the stream, and the last. They are lent
    /// to the backend, which hands them back through the sink.
    waiting: *mut Core,
    last: *mut Core,
    /// [`Streams::polls`] when it last lost its waiting receive.
    idle_since: u32,
}

impl Default for Stream {
    fn default() -> Stream {
        Stream {
            head: NIL,
            tail: NIL,
            end: None,
            epoch: 0,
            live: false,
            canceling: false,
            waiting: std::ptr::null_mut(),
            last: std::ptr::null_mut(),
            idle_since: 0,
        }
    }
}

/// One registered pool (its buffer group id is its index).
struct PoolState {
    pool: crate::BufPool,
    /// Per buffer id: the next buffer of its stream's queue, and the
    /// length of the data it holds.
    links: Vec<(u16, u32)>,
    /// Per descriptor: its stream.
    streams: Vec<Stream>,
}

/// The stream of `fd` (made on first use), or `None` for a descriptor
/// out of range.
fn stream(streams: &mut Vec<Stream>, fd: RawFd) -> Option<&mut Stream> {
    let i = usize::try_from(fd).ok().filter(|&i| i < MAX_STREAM_FD)?;
    if streams.len() <= i {
        streams.resize(i + 1, Stream::default());
    }
    Some(&mut streams[i])
}

/// Appends buffer `b` holding `len` bytes to `st`'s queue.
fn push(links: &mut [(u16, u32)], st: &mut Stream, b: u16, len: u32) {
    links[usize::from(b)] = (NIL, len);
    if st.tail == NIL {
        st.head = b;
    } else {
        links[usize::from(st.tail)].0 = b;
    }
    st.tail = b;
}

/// Takes the first queued buffer of `st` and its length.
fn pop(links: &[(u16, u32)], st: &mut Stream) -> Option<(u16, u32)> {
    if st.head == NIL {
        return None;
    }
    let b = st.head;
    let (next, len) = links[usize::from(b)];
    st.head = next;
    if next == NIL {
        st.tail = NIL;
    }
    Some((b, len))
}

/// The receive waiting after `c` on its stream (null: none).
///
/// # Safety
/// `c` is a live core waiting on a stream.
unsafe fn next_waiting(c: *mut Core) -> *mut Core {
    // SAFETY: the caller's core is live; while it waits on a stream its
    // `uring_ordered` slot holds the next waiting receive's address
    // (written by `enqueue`).
    unsafe { (*c).slot.uring_ordered as usize as *mut Core }
}

/// Adds `c` to the receives waiting on `st`.
///
/// # Safety
/// `c` is a live core lent to the backend, waiting nowhere else.
unsafe fn enqueue(st: &mut Stream, c: *mut Core) {
    // SAFETY: the caller lends us the core; a stream receive has no entry
    // of its own in the ring, so its slot is free for the link.
    unsafe { (*c).slot.uring_ordered = 0 };
    if st.waiting.is_null() {
        st.waiting = c;
    } else {
        // SAFETY: `last` is a live waiting core (every core in the list is
        // lent to the backend until it is dequeued).
        unsafe { (*st.last).slot.uring_ordered = c as usize as u64 };
    }
    st.last = c;
}

/// Takes the first receive waiting on `st`.
fn dequeue(st: &mut Stream) -> Option<NonNull<Core>> {
    let c = NonNull::new(st.waiting)?;
    // SAFETY: a waiting core is live (lent to the backend).
    st.waiting = unsafe { next_waiting(c.as_ptr()) };
    if st.waiting.is_null() {
        st.last = std::ptr::null_mut();
    }
    Some(c)
}

/// Takes `c` out of the receives waiting on `st`; returns whether it was
/// there.
fn unlink(st: &mut Stream, c: *mut Core) -> bool {
    let mut prev: *mut Core = std::ptr::null_mut();
    let mut at = st.waiting;
    while !at.is_null() {
        // SAFETY: every core in the list is live (lent to the backend).
        let next = unsafe { next_waiting(at) };
        if at == c {
            if prev.is_null() {
                st.waiting = next;
            } else {
                // SAFETY: as above.
                unsafe { (*prev).slot.uring_ordered = next as usize as u64 };
            }
            if st.last == c {
                st.last = prev;
            }
            return true;
        }
        prev = at;
        at = next;
    }
    false
}

/// How a pooled receive starts on its stream.
pub(crate) enum Begin {
    /// A result was queued: this one (the buffer is in the op).
    Done(i32),
    /// It waits for the stream's next result.
    Wait,
    /// It waits, and the stream needs a new multishot with this user data
    /// (then [`Streams::submit_failed`] if it could not be pushed).
    Submit(u64),
}

/// Every stream of the backend.
#[derive(Default)]
pub(crate) struct Streams {
    pools: Vec<PoolState>,
    /// Streams that lost their waiting receive (see
    /// [`Streams::cancel_idle`]); a stream may be listed twice.
    idle: Vec<(u16, RawFd)>,
    /// Polls so far (wrapping), to date when a stream went idle.
    polls: u32,
    /// Receives let go without a completion-queue entry (a close ended
    /// them), with their result: handed back first at the next reap.
    handback: Vec<(NonNull<Core>, i32)>,
    /// Multishots to submit after a reap (see [`Streams::reap`]).
    pub(crate) resubmits: Vec<u64>,
    /// Multishots that no stream tracks any more (a close or forget let go
    /// of them) but that may still be in the kernel, until their final
    /// entry: the loop's drop cancels them too, so that it never waits on
    /// one whose cancel could not be pushed.
    dying: Vec<u64>,
}

impl Streams {
    /// The number the next pool gets (its buffer group id).
    pub(crate) fn next_bgid(&self) -> Option<u16> {
        u16::try_from(self.pools.len()).ok()
    }

    /// Takes in a pool registered under [`Streams::next_bgid`].
    pub(crate) fn add_pool(&mut self, pool: &crate::BufPool) {
        self.pools.push(PoolState {
            pool: pool.clone(),
            links: vec![(NIL, 0); usize::from(pool.0.count())],
            streams: Vec::new(),
        });
    }

    /// Whether results wait to be handed back without a completion-queue
    /// entry.
    pub(crate) fn has_handback(&self) -> bool {
        !self.handback.is_empty()
    }

    /// Starts pooled receive `c` (whose op is `Op::RecvPool` on buffer
    /// group `bgid`) on its stream, or `None` when its descriptor gets no
    /// stream (out of range): it then goes as a single receive.
    ///
    /// # Safety
    /// `c` is a live core lent to the backend.
    pub(crate) unsafe fn start(&mut self, c: *mut Core, bgid: u16) -> Option<Begin> {
        // SAFETY: the caller lends us the core.
        let Op::RecvPool(r) = (unsafe { &mut (*c).op }) else {
            return None;
        };
        let fd = r.fd;
        let ps = self.pools.get_mut(usize::from(bgid))?;
        let links = &ps.links;
        let st = stream(&mut ps.streams, fd)?;
        if let Some((b, len)) = pop(links, st) {
            r.got = Some(b);
            return Some(Begin::Done(len as i32));
        }
        match st.end.take() {
            // The pool was empty when the stream ended; it may not be any
            // more, and no receive was told: this one tries afresh.
            Some(NO_BUFFERS) | None => {}
            Some(e) => return Some(Begin::Done(e)),
        }
        let first = st.waiting.is_null();
        // SAFETY: the caller lends us the core; it waits nowhere yet.
        unsafe { enqueue(st, c) };
        if !first || st.live {
            // Behind another receive, whose stream is live (or about to be
            // resubmitted);
            // or still receiving (or ending at our cancel, after which
            // the reap submits a new one for this receive).
            return Some(Begin::Wait);
        }
        st.epoch = st.epoch.wrapping_add(1) & EPOCH_MASK;
        st.live = true;
        st.canceling = false;
        Some(Begin::Submit(encode(fd, bgid, st.epoch)))
    }

    /// The multishot with user data `ud` could not be pushed: its stream
    /// is idle again, and the receives waiting on it are handed to `fail`.
    pub(crate) fn submit_failed(&mut self, ud: u64, fail: &mut dyn FnMut(NonNull<Core>)) {
        let Some(st) = self.lookup(ud) else {
            return;
        };
        st.live = false;
        while let Some(c) = dequeue(st) {
            fail(c);
        }
    }

    fn lookup(&mut self, ud: u64) -> Option<&mut Stream> {
        let (fd, bgid, _) = decode(ud);
        stream(&mut self.pools.get_mut(usize::from(bgid))?.streams, fd)
    }

    /// A completion-queue entry of a stream: delivers it to the receive
    /// waiting there (through `sink`) or queues it. Returns whether it
    /// ended a multishot (one entry less in the kernel). A receive that
    /// waits on a stream whose multishot just ended at our own cancel
    /// needs a new one: its user data goes to `resubmits`.
    pub(crate) fn reap(
        &mut self,
        ud: u64,
        res: i32,
        flags: u32,
        sink: &mut dyn FnMut(NonNull<Core>, i32),
    ) -> bool {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        let out = !more;
        let (fd, bgid, epoch) = decode(ud);
        let Some(ps) = self.pools.get_mut(usize::from(bgid)) else {
            return out;
        };
        let pool = ps.pool.0.clone();
        let links = &mut ps.links;
        let Some(st) = ps.streams.get_mut(fd as usize) else {
            return out;
        };
        if epoch != st.epoch || !st.live {
            // A multishot of a descriptor closed since: its data goes.
            if let Some(b) = bid {
                pool.give_back(b);
            }
            if out {
                if let Some(i) = self.dying.iter().position(|&d| d == ud) {
                    self.dying.swap_remove(i);
                }
            }
            return out;
        }
        let ours = !more && st.canceling;
        if !more {
            st.live = false;
            st.canceling = false;
        }
        match bid {
            Some(b) if res > 0 => {
                if let Some(c) = dequeue(st) {
                    // SAFETY: a waiting receive is a live core lent to the
                    // backend, a pooled receive (see `start`); it is handed
                    // back right below.
                    if let Op::RecvPool(r) = unsafe { &mut (*c.as_ptr()).op } {
                        r.got = Some(b);
                    }
                    if st.live && st.waiting.is_null() {
                        st.idle_since = self.polls;
                        self.idle.push((bgid, fd));
                    }
                    sink(c, res);
                } else {
                    push(links, st, b, res as u32);
                }
            }
            _ => {
                if let Some(b) = bid {
                    pool.give_back(b);
                }
                if more {
                    // No data and not the end: nothing to report.
                } else {
                    // Our own cancel ends the multishot for nobody; any
                    // other end goes to the first receive waiting (or waits
                    // for the next one).
                    if !(ours && res == -libc::ECANCELED) {
                        let res = match res {
                            r if r == -libc::ENOBUFS => NO_BUFFERS,
                            r if r > 0 => -libc::EIO,
                            r => r,
                        };
                        match dequeue(st) {
                            Some(c) => sink(c, res),
                            None => st.end = Some(res),
                        }
                    }
                }
            }
        }
        // Receives still waiting on an ended multishot need a new one
        // (which sees the same end again, if it lasts).
        if out && !st.waiting.is_null() {
            st.epoch = st.epoch.wrapping_add(1) & EPOCH_MASK;
            st.live = true;
            self.resubmits.push(encode(fd, bgid, st.epoch));
        }
        out
    }

    /// Hands back the receives a close ended.
    pub(crate) fn hand_back(&mut self, sink: &mut dyn FnMut(NonNull<Core>, i32)) {
        for (c, res) in self.handback.drain(..) {
            sink(c, res);
        }
    }

    /// Lets go of pooled receive `c` if it waits on a stream (a cancel, or
    /// the loop's drop); its stream is canceled at the next poll unless
    /// another receive waits by then. Returns whether it waited.
    pub(crate) fn let_go(&mut self, c: *mut Core, bgid: u16, fd: RawFd) -> bool {
        let Some(st) = self
            .pools
            .get_mut(usize::from(bgid))
            .and_then(|p| stream(&mut p.streams, fd))
        else {
            return false;
        };
        if !unlink(st, c) {
            return false;
        }
        if st.waiting.is_null() {
            st.idle_since = self.polls;
            self.idle.push((bgid, fd));
        }
        true
    }

    /// At each poll (`tick`) and flush: calls `cancel` with the user data
    /// of each stream that nobody has waited on since before the previous
    /// poll; one whose cancel was pushed (`cancel` returned true) is
    /// marked canceling, the others are tried again next time. A
    /// connection whose completion sends between two receives (one poll
    /// for the send) keeps its stream.
    pub(crate) fn cancel_idle(&mut self, tick: bool, cancel: &mut dyn FnMut(u64) -> bool) {
        if tick {
            self.polls = self.polls.wrapping_add(1);
        }
        let mut i = 0;
        while i < self.idle.len() {
            let (bgid, fd) = self.idle[i];
            let st = self
                .pools
                .get_mut(usize::from(bgid))
                .and_then(|p| stream(&mut p.streams, fd));
            match st {
                Some(st) if st.live && !st.canceling && st.waiting.is_null() => {
                    if self.polls.wrapping_sub(st.idle_since) >= 2 {
                        if !cancel(encode(fd, bgid, st.epoch)) {
                            i += 1;
                            continue;
                        }
                        st.canceling = true;
                    } else {
                        // Idle since the last poll only: checked again at
                        // the next.
                        i += 1;
                        continue;
                    }
                }
                _ => {}
            }
            self.idle.swap_remove(i);
        }
    }

    /// Calls `cancel` for every multishot that may be in the kernel: each
    /// live stream's and each [dying](Streams::dying) one (the loop is
    /// being dropped).
    pub(crate) fn cancel_all(&mut self, cancel: &mut dyn FnMut(u64)) {
        for (bgid, ps) in self.pools.iter_mut().enumerate() {
            for (fd, st) in ps.streams.iter_mut().enumerate() {
                st.waiting = std::ptr::null_mut();
                st.last = std::ptr::null_mut();
                if st.live && !st.canceling {
                    st.canceling = true;
                    cancel(encode(fd as RawFd, bgid as u16, st.epoch));
                }
            }
        }
        for &ud in &self.dying {
            cancel(ud);
        }
        self.handback.clear();
    }

    /// Descriptor `fd` is being closed through the loop (or forgotten):
    /// its streams are emptied, their multishots' late results will be
    /// dropped, and a receive waiting there ends with `-ECANCELED`, handed
    /// back at the next reap. `cancel` gets the user data of each live
    /// multishot (a close's linked cancel ends them anyway); they stay
    /// listed as dying until their final entry.
    pub(crate) fn close(&mut self, fd: RawFd, cancel: &mut dyn FnMut(u64)) {
        for (bgid, ps) in self.pools.iter_mut().enumerate() {
            let Some(st) = usize::try_from(fd).ok().and_then(|i| ps.streams.get_mut(i)) else {
                continue;
            };
            while let Some((b, _)) = pop(&ps.links, st) {
                ps.pool.0.give_back(b);
            }
            st.end = None;
            if st.live {
                let ud = encode(fd, bgid as u16, st.epoch);
                self.dying.push(ud);
                if !st.canceling {
                    cancel(ud);
                }
            }
            st.live = false;
            st.canceling = false;
            st.epoch = st.epoch.wrapping_add(1) & EPOCH_MASK;
            while let Some(c) = dequeue(st) {
                self.handback.push((c, -libc::ECANCELED));
            }
        }
    }

    /// Leaks every pool (the kernel may still write into them).
    pub(crate) fn leak_pools(&mut self) {
        for ps in self.pools.drain(..) {
            std::mem::forget(ps.pool);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_and_is_never_an_address() {
        let ud = encode(123_456, 7, 0x1fff);
        assert!(is_stream(ud));
        assert_eq!(decode(ud), (123_456, 7, 0x1fff));
        assert!(!is_stream(0x1000) && !is_stream(1) && !is_stream(2) && !is_stream(3));
    }

    #[test]
    fn queues_keep_order() {
        let mut links = vec![(NIL, 0); 4];
        let mut st = Stream::default();
        push(&mut links, &mut st, 2, 10);
        push(&mut links, &mut st, 0, 5);
        assert_eq!(pop(&links, &mut st), Some((2, 10)));
        push(&mut links, &mut st, 3, 1);
        assert_eq!(pop(&links, &mut st), Some((0, 5)));
        assert_eq!(pop(&links, &mut st), Some((3, 1)));
        assert_eq!(pop(&links, &mut st), None);
    }
}
