//! The io_uring backend's multishot operations. Pooled receives
//! ([`Op::recv_pool`](crate::Op::recv_pool)) on one descriptor and one
//! pool share a *stream*, one multishot `RECV` that picks buffers from the
//! pool's provided-buffer ring and posts a result per chunk of data, so a
//! connection that keeps receiving costs no new entry per receive. The
//! accepts ([`Op::Accept`]) of one listening socket share a *listener*,
//! one multishot `ACCEPT` that posts a result per connection, in the same
//! way (on kernels with `COOP_TASKRUN`, 5.19+, where multishot accept
//! exists too; older ones accept one shot at a time).
//!
//! A multishot's results go to the operation waiting on it; those that
//! come while none waits (its callback has not run yet, or it stopped)
//! queue (a stream's linked through the buffer ids they hold, a
//! listener's as accepted descriptors), and the next operation on that
//! descriptor (and pool) takes them first, so no data or connection is
//! lost or reordered. Operations that start while one already waits wait
//! behind it, in order (linked through their cores' `slot.uring_ordered`,
//! which they do not otherwise use). A multishot that nobody has waited
//! on since before the backend's previous poll is canceled: what it got
//! before the cancel took effect stays queued. A close through the loop
//! (or a forget) empties the streams and the listener of its descriptor
//! (buffers go back to their pool, queued connections are closed) and
//! lets go of their multishots: the operations waiting on one get what it
//! still posts, then the end the close's cancel gives it (`-ECANCELED`,
//! before the close's own result) or the kernel's error; what it posts
//! after they are gone is dropped. The loop's drop closes the connections
//! still queued.
//!
//! Read-ahead: while a stream is live the kernel fills the pool's
//! buffers with whatever the socket gets, so data that comes after the
//! last pooled receive (and before its stream is canceled) sits in pool
//! buffers, queued for the next pooled receive on that socket, instead of
//! in the socket. Such buffers are not free for other sockets until that
//! receive takes them or the socket is closed through the loop or
//! forgotten (which drop that data). A listener likewise accepts
//! connections ahead, which wait for its next accept instead of in the
//! kernel's backlog.

use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;
use std::ptr::NonNull;

use io_uring::cqueue;

use crate::buf_pool::NO_BUFFERS;
use crate::op::Op;
use crate::record::Core;

/// The low byte of a multishot's user data: never the address of a
/// completion (8-aligned) nor one of the backend's special values.
const TAG: u64 = 5;
/// No buffer (end of a queue).
const NIL: u16 = u16::MAX;
/// Epochs are kept in 13 bits of the user data.
const EPOCH_MASK: u16 = 0x1fff;
/// The group of listeners in user data (pools get the ids below it).
pub(crate) const ACCEPTS: u16 = u16::MAX;
/// Streams exist for descriptors below this (others receive one shot at
/// a time, as a plain receive does). A pool's streams are a table indexed
/// by descriptor, grown to the highest one used: at most 2 MiB.
pub(crate) const MAX_STREAM_FD: usize = 1 << 16;

/// The user data of the multishot of `epoch` on descriptor `fd` for
/// group `group` (a buffer group, or [`ACCEPTS`]).
fn encode(fd: RawFd, group: u16, epoch: u16) -> u64 {
    (u64::from(fd as u32) << 32) | (u64::from(group) << 16) | (u64::from(epoch & EPOCH_MASK) << 3) | TAG
}

/// Whether `ud` names a multishot of this module.
pub(crate) fn is_stream(ud: u64) -> bool {
    ud & 7 == TAG
}

/// The descriptor and group of multishot user data `ud`.
pub(crate) fn fd_and_group(ud: u64) -> (RawFd, u16) {
    let (fd, group, _) = decode(ud);
    (fd, group)
}

fn decode(ud: u64) -> (RawFd, u16, u16) {
    ((ud >> 32) as u32 as RawFd, (ud >> 16) as u16, ((ud >> 3) as u16) & EPOCH_MASK)
}

/// The operations waiting on a multishot, first to last, linked through
/// their cores' `slot.uring_ordered`. They are lent to the backend, which
/// hands each back through the sink.
#[derive(Clone, Copy)]
struct Waiters {
    first: *mut Core,
    last: *mut Core,
}

impl Default for Waiters {
    fn default() -> Waiters {
        Waiters {
            first: std::ptr::null_mut(),
            last: std::ptr::null_mut(),
        }
    }
}

/// The operation waiting after `c` (null: none).
///
/// # Safety
/// `c` is a live core in a [`Waiters`] list.
unsafe fn next_waiting(c: *mut Core) -> *mut Core {
    // SAFETY: the caller's core is live; while it waits its
    // `uring_ordered` slot holds the next one's address (written by
    // `Waiters::push` and `Waiters::unlink`).
    unsafe { (*c).slot.uring_ordered as usize as *mut Core }
}

impl Waiters {
    fn is_empty(&self) -> bool {
        self.first.is_null()
    }

    /// Adds `c` last.
    ///
    /// # Safety
    /// `c` is a live core lent to the backend, waiting nowhere else.
    unsafe fn push(&mut self, c: *mut Core) {
        // SAFETY: the caller lends us the core; an operation waiting on a
        // multishot has no entry of its own in the ring, so its slot is
        // free for the link.
        unsafe { (*c).slot.uring_ordered = 0 };
        if self.first.is_null() {
            self.first = c;
        } else {
            // SAFETY: `last` is a live waiting core (every core in the
            // list is lent to the backend until it leaves the list).
            unsafe { (*self.last).slot.uring_ordered = c as usize as u64 };
        }
        self.last = c;
    }

    /// Takes the first.
    fn pop(&mut self) -> Option<NonNull<Core>> {
        let c = NonNull::new(self.first)?;
        // SAFETY: a waiting core is live (lent to the backend).
        self.first = unsafe { next_waiting(c.as_ptr()) };
        if self.first.is_null() {
            self.last = std::ptr::null_mut();
        }
        Some(c)
    }

    /// Takes `c` out; returns whether it was there.
    fn unlink(&mut self, c: *mut Core) -> bool {
        let mut prev: *mut Core = std::ptr::null_mut();
        let mut at = self.first;
        while !at.is_null() {
            // SAFETY: every core in the list is live (lent to the backend).
            let next = unsafe { next_waiting(at) };
            if at == c {
                if prev.is_null() {
                    self.first = next;
                } else {
                    // SAFETY: as above.
                    unsafe { (*prev).slot.uring_ordered = next as usize as u64 };
                }
                if self.last == c {
                    self.last = prev;
                }
                return true;
            }
            prev = at;
            at = next;
        }
        false
    }
}

/// What the backend keeps about one multishot, a stream's or a
/// listener's.
#[derive(Clone, Copy, Default)]
struct Flow {
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
    waiters: Waiters,
    /// [`Streams::polls`] when it last lost its waiting operations.
    idle_since: u32,
}

impl Flow {
    /// Makes `c` wait, for the multishot of (`fd`, `group`).
    ///
    /// # Safety
    /// As for [`Waiters::push`].
    unsafe fn begin(&mut self, c: *mut Core, fd: RawFd, group: u16) -> Begin {
        let first = self.waiters.is_empty();
        // SAFETY: forwarded from the caller.
        unsafe { self.waiters.push(c) };
        if !first || self.live {
            // Behind another operation, whose multishot is live (or about
            // to be resubmitted); or still receiving (or ending at our
            // cancel, after which the reap submits a new one for it).
            return Begin::Wait;
        }
        self.epoch = self.epoch.wrapping_add(1) & EPOCH_MASK;
        self.live = true;
        self.canceling = false;
        Begin::Submit(encode(fd, group, self.epoch))
    }

    /// The end kept for the next operation, if it is still news: an empty
    /// pool that nobody was told of may not be empty any more, so that
    /// operation tries afresh.
    fn take_end(&mut self) -> Option<i32> {
        self.end.take().filter(|&e| e != NO_BUFFERS)
    }

    /// The multishot's final entry came: returns whether our own cancel
    /// ended it.
    fn ended(&mut self) -> bool {
        let ours = self.canceling;
        self.live = false;
        self.canceling = false;
        ours
    }

    /// An end of the multishot (not ours): to the first operation
    /// waiting, or kept for the next.
    fn end_with(&mut self, res: i32, sink: &mut dyn FnMut(NonNull<Core>, i32)) {
        match self.waiters.pop() {
            Some(c) => sink(c, res),
            None => self.end = Some(res),
        }
    }

    /// After the multishot's final entry: operations still waiting need a
    /// new one (which sees the same end again, if it lasts); its user
    /// data.
    fn renew(&mut self, fd: RawFd, group: u16) -> Option<u64> {
        if self.waiters.is_empty() {
            return None;
        }
        self.epoch = self.epoch.wrapping_add(1) & EPOCH_MASK;
        self.live = true;
        Some(encode(fd, group, self.epoch))
    }

    /// Its descriptor is being closed or forgotten: lets go of its
    /// multishot, which goes to `dying` with the operations waiting on it
    /// (they get what it still posts: its last results, then the end the
    /// close gives it, `-ECANCELED` or the kernel's error), and to
    /// `cancel` unless a cancel is on its way.
    fn close(
        &mut self,
        fd: RawFd,
        group: u16,
        dying: &mut Vec<Dying>,
        handback: &mut Vec<(NonNull<Core>, i32)>,
        cancel: &mut dyn FnMut(u64),
    ) {
        self.end = None;
        let waiters = std::mem::take(&mut self.waiters);
        if self.live {
            let ud = encode(fd, group, self.epoch);
            dying.push(Dying { ud, waiters });
            if !self.canceling {
                cancel(ud);
            }
        } else {
            // Nothing in the kernel (operations wait only on a live
            // multishot, so there are none): nothing will post for them.
            let mut waiters = waiters;
            while let Some(c) = waiters.pop() {
                handback.push((c, -libc::ECANCELED));
            }
        }
        self.live = false;
        self.canceling = false;
        self.epoch = self.epoch.wrapping_add(1) & EPOCH_MASK;
    }
}

/// A multishot that nothing tracks any more (a close or forget let go of
/// it) but that may still be in the kernel, and the operations that
/// waited on it then.
struct Dying {
    ud: u64,
    waiters: Waiters,
}

/// A stream: the multishot receive of one descriptor on one pool.
#[derive(Clone, Copy)]
struct Stream {
    /// Results that came while no receive waited: buffer ids, linked
    /// through [`PoolState::links`].
    head: u16,
    tail: u16,
    flow: Flow,
}

impl Default for Stream {
    fn default() -> Stream {
        Stream {
            head: NIL,
            tail: NIL,
            flow: Flow::default(),
        }
    }
}

/// A listener: the multishot accept of one listening socket.
#[derive(Default)]
struct Listener {
    /// Connections accepted while no accept waited (ours to close).
    queue: VecDeque<RawFd>,
    flow: Flow,
}

impl Listener {
    /// Closes the connections accepted for nobody.
    fn close_queued(&mut self) {
        for fd in self.queue.drain(..) {
            crate::sys::close_quietly(fd);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.close_queued();
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

/// How an operation starts on its multishot.
pub(crate) enum Begin {
    /// A result was queued: this one (a pooled receive's buffer is in its
    /// op).
    Done(i32),
    /// It waits for the multishot's next result.
    Wait,
    /// It waits, and needs a new multishot with this user data (then
    /// [`Streams::submit_failed`] if it could not be pushed).
    Submit(u64),
}

/// Every stream and listener of the backend.
#[derive(Default)]
pub(crate) struct Streams {
    pools: Vec<PoolState>,
    listeners: HashMap<RawFd, Listener>,
    /// Multishots that lost their waiting operations (see
    /// [`Streams::cancel_idle`]), by group and descriptor; one may be
    /// listed twice.
    idle: Vec<(u16, RawFd)>,
    /// Polls so far (wrapping), to date when a multishot went idle.
    polls: u32,
    /// Operations let go without a completion-queue entry (a close ended
    /// them), with their result: handed back first at the next reap.
    handback: Vec<(NonNull<Core>, i32)>,
    /// Multishots to submit after a reap (see [`Streams::reap`]).
    pub(crate) resubmits: Vec<u64>,
    /// Multishots that nothing tracks any more (a close or forget let go
    /// of them) but that may still be in the kernel, until their final
    /// entry: their results go to the operations that waited on them, and
    /// the loop's drop cancels them too, so that it never waits on one
    /// whose cancel could not be pushed.
    dying: Vec<Dying>,
}

impl Streams {
    /// The number the next pool gets (its buffer group id).
    pub(crate) fn next_bgid(&self) -> Option<u16> {
        u16::try_from(self.pools.len()).ok().filter(|&g| g != ACCEPTS)
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

    /// The bookkeeping of multishot (`group`, `fd`), if it exists.
    fn flow(&mut self, group: u16, fd: RawFd) -> Option<&mut Flow> {
        if group == ACCEPTS {
            return self.listeners.get_mut(&fd).map(|l| &mut l.flow);
        }
        let ps = self.pools.get_mut(usize::from(group))?;
        stream(&mut ps.streams, fd).map(|st| &mut st.flow)
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
        if let Some(e) = st.flow.take_end() {
            return Some(Begin::Done(e));
        }
        // SAFETY: the caller lends us the core; it waits nowhere yet.
        Some(unsafe { st.flow.begin(c, fd, bgid) })
    }

    /// Starts accept `c` (whose op is `Op::Accept`) on its listener, or
    /// `None` for a descriptor that gets none (negative): it then goes as
    /// a single accept.
    ///
    /// # Safety
    /// `c` is a live core lent to the backend.
    pub(crate) unsafe fn start_accept(&mut self, c: *mut Core) -> Option<Begin> {
        // SAFETY: the caller lends us the core.
        let Op::Accept { fd } = (unsafe { &(*c).op }) else {
            return None;
        };
        let fd = *fd;
        if fd < 0 {
            return None;
        }
        let l = self.listeners.entry(fd).or_default();
        if let Some(s) = l.queue.pop_front() {
            return Some(Begin::Done(s));
        }
        if let Some(e) = l.flow.take_end() {
            return Some(Begin::Done(e));
        }
        // SAFETY: the caller lends us the core; it waits nowhere yet.
        Some(unsafe { l.flow.begin(c, fd, ACCEPTS) })
    }

    /// The multishot with user data `ud` could not be pushed: it is idle
    /// again, and the operations waiting on it are handed to `fail`.
    pub(crate) fn submit_failed(&mut self, ud: u64, fail: &mut dyn FnMut(NonNull<Core>)) {
        let (fd, group) = fd_and_group(ud);
        let Some(f) = self.flow(group, fd) else {
            return;
        };
        f.live = false;
        while let Some(c) = f.waiters.pop() {
            fail(c);
        }
    }

    /// A completion-queue entry of a multishot: delivers it to the
    /// operation waiting there (through `sink`) or queues it. Returns
    /// whether it ended a multishot (one entry less in the kernel).
    /// Operations that wait on a multishot that just ended need a new one:
    /// its user data goes to `resubmits`.
    pub(crate) fn reap(
        &mut self,
        ud: u64,
        res: i32,
        flags: u32,
        sink: &mut dyn FnMut(NonNull<Core>, i32),
    ) -> bool {
        let more = cqueue::more(flags);
        let (fd, group, epoch) = decode(ud);
        if let Some(i) = self.dying.iter().position(|d| d.ud == ud) {
            self.reap_dying(i, group, res, flags, sink);
        } else if group == ACCEPTS {
            self.reap_accept(fd, epoch, res, more, sink);
        } else {
            self.reap_recv(fd, group, epoch, res, flags, sink);
        }
        !more
    }

    /// [`Streams::reap`] for the multishot of a descriptor closed since
    /// (`self.dying[i]`): a result goes to the first operation that waited
    /// on it (else its buffer goes back, its connection is closed), and
    /// its end to every one left.
    fn reap_dying(
        &mut self,
        i: usize,
        group: u16,
        res: i32,
        flags: u32,
        sink: &mut dyn FnMut(NonNull<Core>, i32),
    ) {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        let d = &mut self.dying[i];
        let payload = if group == ACCEPTS { res >= 0 } else { bid.is_some() && res > 0 };
        if payload {
            match d.waiters.pop() {
                Some(c) => {
                    // SAFETY: a waiting operation is a live core lent to
                    // the backend; it is handed back right below.
                    if let Op::RecvPool(r) = unsafe { &mut (*c.as_ptr()).op } {
                        r.got = bid;
                    }
                    sink(c, res);
                }
                None => self.drop_payload(group, res, bid),
            }
        } else {
            self.drop_payload(group, res, bid);
        }
        if more {
            return;
        }
        let mut d = self.dying.swap_remove(i);
        let end = match res {
            _ if payload => -libc::ECANCELED,
            r if r == -libc::ENOBUFS => NO_BUFFERS,
            r if r > 0 => -libc::EIO,
            r => r,
        };
        while let Some(c) = d.waiters.pop() {
            sink(c, end);
        }
    }

    /// Drops what a result nobody gets holds: a pool buffer goes back, an
    /// accepted connection is closed.
    fn drop_payload(&mut self, group: u16, res: i32, bid: Option<u16>) {
        if group == ACCEPTS {
            if res >= 0 {
                crate::sys::close_quietly(res);
            }
        } else if let (Some(b), Some(ps)) = (bid, self.pools.get(usize::from(group))) {
            ps.pool.0.give_back(b);
        }
    }

    /// [`Streams::reap`] for a stream.
    fn reap_recv(
        &mut self,
        fd: RawFd,
        bgid: u16,
        epoch: u16,
        res: i32,
        flags: u32,
        sink: &mut dyn FnMut(NonNull<Core>, i32),
    ) {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        let Some(PoolState { pool, links, streams }) = self.pools.get_mut(usize::from(bgid)) else {
            return;
        };
        let st = match streams.get_mut(fd as usize) {
            Some(st) if st.flow.epoch == epoch && st.flow.live => st,
            _ => {
                // Not the stream's multishot (none is in the kernel that
                // is neither the stream's nor dying): its data goes.
                if let Some(b) = bid {
                    pool.0.give_back(b);
                }
                return;
            }
        };
        let ours = !more && st.flow.ended();
        match bid {
            Some(b) if res > 0 => {
                if let Some(c) = st.flow.waiters.pop() {
                    // SAFETY: a waiting receive is a live core lent to the
                    // backend, a pooled receive (see `start`); it is handed
                    // back right below.
                    if let Op::RecvPool(r) = unsafe { &mut (*c.as_ptr()).op } {
                        r.got = Some(b);
                    }
                    if st.flow.live && st.flow.waiters.is_empty() {
                        st.flow.idle_since = self.polls;
                        self.idle.push((bgid, fd));
                    }
                    sink(c, res);
                } else {
                    push(links, st, b, res as u32);
                }
            }
            _ => {
                if let Some(b) = bid {
                    pool.0.give_back(b);
                }
                // No data and not the end: nothing to report. Our own
                // cancel ends the multishot for nobody.
                let ours_ended = ours && res == -libc::ECANCELED;
                if !more && !ours_ended {
                    let res = match res {
                        r if r == -libc::ENOBUFS => NO_BUFFERS,
                        r if r > 0 => -libc::EIO,
                        r => r,
                    };
                    st.flow.end_with(res, sink);
                }
            }
        }
        if !more {
            self.resubmits.extend(st.flow.renew(fd, bgid));
        }
    }

    /// [`Streams::reap`] for a listener.
    fn reap_accept(
        &mut self,
        fd: RawFd,
        epoch: u16,
        res: i32,
        more: bool,
        sink: &mut dyn FnMut(NonNull<Core>, i32),
    ) {
        let l = match self.listeners.get_mut(&fd) {
            Some(l) if l.flow.epoch == epoch && l.flow.live => l,
            _ => {
                // Not the listener's multishot (as for streams): nobody
                // gets its connection.
                if res >= 0 {
                    crate::sys::close_quietly(res);
                }
                return;
            }
        };
        let ours = !more && l.flow.ended();
        if res >= 0 {
            if let Some(c) = l.flow.waiters.pop() {
                if l.flow.live && l.flow.waiters.is_empty() {
                    l.flow.idle_since = self.polls;
                    self.idle.push((ACCEPTS, fd));
                }
                sink(c, res);
            } else {
                l.queue.push_back(res);
            }
        } else if !(ours && res == -libc::ECANCELED) {
            l.flow.end_with(res, sink);
        }
        if !more {
            self.resubmits.extend(l.flow.renew(fd, ACCEPTS));
        }
    }

    /// Hands back the operations a close ended.
    pub(crate) fn hand_back(&mut self, sink: &mut dyn FnMut(NonNull<Core>, i32)) {
        for (c, res) in self.handback.drain(..) {
            sink(c, res);
        }
    }

    /// Lets go of operation `c` if it waits on multishot (`group`, `fd`)
    /// (a cancel, or the loop's drop); the multishot is canceled at a
    /// later poll unless another operation waits by then. Returns whether
    /// it waited.
    pub(crate) fn let_go(&mut self, c: *mut Core, group: u16, fd: RawFd) -> bool {
        if self.dying.iter_mut().any(|d| d.waiters.unlink(c)) {
            return true;
        }
        let polls = self.polls;
        let Some(f) = self.flow(group, fd) else {
            return false;
        };
        if !f.waiters.unlink(c) {
            return false;
        }
        let idle = f.waiters.is_empty();
        if idle {
            f.idle_since = polls;
            self.idle.push((group, fd));
        }
        true
    }

    /// At each poll (`tick`) and flush: calls `cancel` with the user data
    /// of each multishot that nobody has waited on since before the
    /// previous poll; one whose cancel was pushed (`cancel` returned
    /// true) is marked canceling, the others are tried again next time. A
    /// connection whose completion sends between two receives (one poll
    /// for the send) keeps its stream.
    pub(crate) fn cancel_idle(&mut self, tick: bool, cancel: &mut dyn FnMut(u64) -> bool) {
        if tick {
            self.polls = self.polls.wrapping_add(1);
        }
        let polls = self.polls;
        let mut i = 0;
        while i < self.idle.len() {
            let (group, fd) = self.idle[i];
            let keep = match self.flow(group, fd) {
                Some(f) if f.live && !f.canceling && f.waiters.is_empty() => {
                    // Idle since the last poll only: checked again at the
                    // next; a cancel that could not be pushed is tried
                    // again too.
                    if polls.wrapping_sub(f.idle_since) < 2 || !cancel(encode(fd, group, f.epoch)) {
                        true
                    } else {
                        f.canceling = true;
                        false
                    }
                }
                _ => false,
            };
            if keep {
                i += 1;
            } else {
                self.idle.swap_remove(i);
            }
        }
    }

    /// Calls `cancel` for every multishot that may be in the kernel: each
    /// live one and each [dying](Streams::dying) one (the loop is being
    /// dropped).
    pub(crate) fn cancel_all(&mut self, cancel: &mut dyn FnMut(u64)) {
        let mut each = |f: &mut Flow, fd: RawFd, group: u16| {
            f.waiters = Waiters::default();
            if f.live && !f.canceling {
                f.canceling = true;
                cancel(encode(fd, group, f.epoch));
            }
        };
        for (bgid, ps) in self.pools.iter_mut().enumerate() {
            for (fd, st) in ps.streams.iter_mut().enumerate() {
                each(&mut st.flow, fd as RawFd, bgid as u16);
            }
        }
        for (&fd, l) in self.listeners.iter_mut() {
            each(&mut l.flow, fd, ACCEPTS);
        }
        for d in &mut self.dying {
            d.waiters = Waiters::default();
            cancel(d.ud);
        }
        self.handback.clear();
    }

    /// Descriptor `fd` is being closed through the loop (or forgotten):
    /// its streams are emptied (buffers back to their pools) and its
    /// listener's queued connections closed, their multishots' late
    /// results will be dropped, and an operation waiting there ends with
    /// `-ECANCELED`, handed back at the next reap. `cancel` gets the user
    /// data of each live multishot (a close's linked cancel ends them
    /// anyway); they stay listed as dying until their final entry.
    pub(crate) fn close(&mut self, fd: RawFd, cancel: &mut dyn FnMut(u64)) {
        let Streams {
            pools,
            listeners,
            handback,
            dying,
            ..
        } = self;
        for (bgid, ps) in pools.iter_mut().enumerate() {
            let Some(st) = usize::try_from(fd).ok().and_then(|i| ps.streams.get_mut(i)) else {
                continue;
            };
            while let Some((b, _)) = pop(&ps.links, st) {
                ps.pool.0.give_back(b);
            }
            st.flow.close(fd, bgid as u16, dying, handback, cancel);
        }
        if let Some(l) = listeners.get_mut(&fd) {
            l.close_queued();
            l.flow.close(fd, ACCEPTS, dying, handback, cancel);
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
