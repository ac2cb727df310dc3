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
//! result.

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
/// a time, as a plain receive does).
pub(crate) const MAX_STREAM_FD: usize = 1 << 20;

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
    /// The pooled receive waiting for the next result (null: none). It is
    /// lent to the backend, which hands it back through the sink.
    waiting: *mut Core,
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
    /// Multishots to submit after a reap (see [`Reaped::resubmit`]).
    pub(crate) resubmits: Vec<u64>,
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
        if let Some(e) = st.end.take() {
            return Some(Begin::Done(e));
        }
        st.waiting = c;
        if st.live {
            // Still receiving (or ending at our cancel, after which the
            // reap submits a new one for this receive).
            return Some(Begin::Wait);
        }
        st.epoch = st.epoch.wrapping_add(1) & EPOCH_MASK;
        st.live = true;
        st.canceling = false;
        Some(Begin::Submit(encode(fd, bgid, st.epoch)))
    }

    /// The multishot with user data `ud` could not be pushed: its stream
    /// is idle again, and the receive waiting on it is handed back.
    pub(crate) fn submit_failed(&mut self, ud: u64) -> Option<NonNull<Core>> {
        let st = self.lookup(ud)?;
        st.live = false;
        NonNull::new(std::mem::replace(&mut st.waiting, std::ptr::null_mut()))
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
            return out;
        }
        let ours = !more && st.canceling;
        if !more {
            st.live = false;
            st.canceling = false;
        }
        match bid {
            Some(b) if res > 0 => {
                if st.waiting.is_null() {
                    push(links, st, b, res as u32);
                } else {
                    let c = std::mem::replace(&mut st.waiting, std::ptr::null_mut());
                    // SAFETY: a waiting receive is a live core lent to the
                    // backend, a pooled receive (see `start`); it is handed
                    // back right below.
                    if let Op::RecvPool(r) = unsafe { &mut (*c).op } {
                        r.got = Some(b);
                    }
                    if st.live {
                        st.idle_since = self.polls;
                        self.idle.push((bgid, fd));
                    }
                    // SAFETY: `c` is non-null (checked above).
                    sink(unsafe { NonNull::new_unchecked(c) }, res);
                }
            }
            _ => {
                if let Some(b) = bid {
                    pool.give_back(b);
                }
                if more {
                    // No data and not the end: nothing to report.
                } else if ours && res == -libc::ECANCELED {
                    // Our own cancel. A receive that came meanwhile needs
                    // a new multishot.
                    if !st.waiting.is_null() {
                        st.epoch = st.epoch.wrapping_add(1) & EPOCH_MASK;
                        st.live = true;
                        self.resubmits.push(encode(fd, bgid, st.epoch));
                    }
                } else {
                    let res = match res {
                        r if r == -libc::ENOBUFS => NO_BUFFERS,
                        r if r > 0 => -libc::EIO,
                        r => r,
                    };
                    match NonNull::new(std::mem::replace(&mut st.waiting, std::ptr::null_mut())) {
                        Some(c) => sink(c, res),
                        None => st.end = Some(res),
                    }
                }
            }
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
        if st.waiting != c {
            return false;
        }
        st.waiting = std::ptr::null_mut();
        st.idle_since = self.polls;
        self.idle.push((bgid, fd));
        true
    }

    /// At each poll: calls `cancel` with the user data of each stream that
    /// nobody has waited on since before the previous poll (marked
    /// canceling). A connection whose completion sends between two
    /// receives (one poll for the send) keeps its stream.
    pub(crate) fn cancel_idle(&mut self, cancel: &mut dyn FnMut(u64)) {
        self.polls = self.polls.wrapping_add(1);
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
                        st.canceling = true;
                        cancel(encode(fd, bgid, st.epoch));
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

    /// Calls `cancel` for every live stream (the loop is being dropped).
    pub(crate) fn cancel_all(&mut self, cancel: &mut dyn FnMut(u64)) {
        for (bgid, ps) in self.pools.iter_mut().enumerate() {
            for (fd, st) in ps.streams.iter_mut().enumerate() {
                st.waiting = std::ptr::null_mut();
                if st.live && !st.canceling {
                    st.canceling = true;
                    cancel(encode(fd as RawFd, bgid as u16, st.epoch));
                }
            }
        }
        self.handback.clear();
    }

    /// Descriptor `fd` is being closed through the loop (or forgotten):
    /// its streams are emptied, their multishots' late results will be
    /// dropped, and a receive waiting there ends with `-ECANCELED`, handed
    /// back at the next reap. `cancel` gets the user data of each live
    /// multishot (a close's linked cancel ends them anyway).
    pub(crate) fn close(&mut self, fd: RawFd, cancel: &mut dyn FnMut(u64)) {
        for (bgid, ps) in self.pools.iter_mut().enumerate() {
            let Some(st) = usize::try_from(fd).ok().and_then(|i| ps.streams.get_mut(i)) else {
                continue;
            };
            while let Some((b, _)) = pop(&ps.links, st) {
                ps.pool.0.give_back(b);
            }
            st.end = None;
            if st.live && !st.canceling {
                cancel(encode(fd, bgid as u16, st.epoch));
            }
            st.live = false;
            st.canceling = false;
            st.epoch = st.epoch.wrapping_add(1) & EPOCH_MASK;
            if let Some(c) = NonNull::new(std::mem::replace(&mut st.waiting, std::ptr::null_mut())) {
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
