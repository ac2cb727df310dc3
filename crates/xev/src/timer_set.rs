//! Compact timers: the store behind [`TimerSet`]s.
//!
//! A timer completion costs a whole completion (88 bytes on 64-bit
//! targets: the core the loop and backends share, the largest operation,
//! the callback). Programs that hold very many timers (a deadline per
//! connection or per request) mostly run one callback for all of them and
//! tell them apart by a key. A timer set is that: one callback, and timers
//! that each carry a deadline and a 64-bit key, kept in an arena of 32-byte
//! entries linked by 32-bit index into the same timing wheel the loop uses
//! for completions (`timer_wheel`). Ten million pending timers take 320 MB
//! here, against 880 MB as completions.
//!
//! The arena grows in chunks (no reallocation and copy of what is already
//! there) and keeps freed entries on a free list, so starting a timer
//! allocates nothing in steady state. An entry's generation is bumped when
//! it is freed, so a [`TimerId`] names one start of one timer and goes
//! stale when that timer fires or is stopped.
//!
//! This module is the data structure, independent of the backend; the
//! loop's methods (`event_loop::timer_sets`) run the callbacks.

use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};
use std::fmt;

use crate::error::IdError;
use crate::queue::Links;
use crate::timer_wheel::{TimerLinks, Wheel};

/// Entries per arena chunk.
const CHUNK_BITS: u32 = 14;
const CHUNK: usize = 1 << CHUNK_BITS;
/// No entry.
const NIL: u32 = u32::MAX;
/// The `slot` of an entry on the free list (the wheel uses the values
/// below 384 and the two above this one).
const FREE: u16 = u16::MAX - 2;

/// One timer: its links and slot in the wheel (or the free list), its
/// deadline, its key, its generation and its set.
#[derive(Clone, Copy)]
struct Entry {
    next: u32,
    prev: u32,
    deadline: u64,
    key: u64,
    gen: u32,
    slot: u16,
    set: u16,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 32);

/// The entries, addressed by index: chunk `i >> CHUNK_BITS`, entry
/// `i % CHUNK` in it. Chunks are zeroed allocations of a fixed size (512
/// KiB, which the system allocator usually takes from fresh zero pages
/// that count only once touched: a loop with 100 set timers peaked at
/// 3.6 MB in all); `carved` entries were ever used, the rest never.
struct Arena {
    chunks: Vec<Box<[Entry; CHUNK]>>,
    carved: usize,
    /// The first free entry (`NIL` for none), linked through `next`.
    free: u32,
}

impl Arena {
    #[inline]
    fn get(&self, i: u32) -> &Entry {
        &self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }

    #[inline]
    fn get_mut(&mut self, i: u32) -> &mut Entry {
        &mut self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }

    /// The entry at `i` if it is in use with generation `gen`.
    fn live(&self, i: u32, gen: u32) -> Option<&Entry> {
        if i as usize >= self.carved {
            return None;
        }
        let e = self.get(i);
        (e.gen == gen && e.slot != FREE).then_some(e)
    }

    /// Stores `e` in a free entry (or a new one) and returns its index;
    /// `e.gen` is replaced by the entry's own generation.
    fn alloc(&mut self, mut e: Entry) -> u32 {
        if self.free != NIL {
            let i = self.free;
            let slot = self.get_mut(i);
            let next = slot.next;
            e.gen = slot.gen;
            *slot = e;
            self.free = next;
            return i;
        }
        let i = u32::try_from(self.carved)
            .ok()
            .filter(|&i| i != NIL)
            .expect("a loop holds at most 2^32 - 1 pending set timers");
        if self.carved == self.chunks.len() * CHUNK {
            // Zeroed memory: the allocator can hand out fresh zero pages
            // without writing them (see the type's docs).
            let layout = Layout::new::<[Entry; CHUNK]>();
            // SAFETY: the layout has a non-zero size. A non-null result is
            // a zeroed allocation of that layout, which is a valid
            // `[Entry; CHUNK]` (`Entry` is plain integers, for which
            // all-zero bytes are a valid value) that `Box` may own and
            // free with the global allocator.
            let chunk = unsafe {
                let p = alloc_zeroed(layout).cast::<[Entry; CHUNK]>();
                if p.is_null() {
                    handle_alloc_error(layout);
                }
                Box::from_raw(p)
            };
            self.chunks.push(chunk);
        }
        self.carved += 1;
        e.gen = 0;
        *self.get_mut(i) = e;
        i
    }

    /// Frees the entry `i` (which is in no list): its generation moves on.
    fn release(&mut self, i: u32) {
        let free = self.free;
        let e = self.get_mut(i);
        e.gen = e.gen.wrapping_add(1);
        e.slot = FREE;
        e.next = free;
        self.free = i;
    }
}

// The arena's accessors index its chunks: a wrong index panics, it never
// reads out of bounds, so these `unsafe fn`s have no unsafety of their own.
impl Links for Arena {
    type Node = u32;
    const NIL: u32 = NIL;

    #[inline]
    unsafe fn next(&self, n: u32) -> u32 {
        self.get(n).next
    }

    #[inline]
    unsafe fn prev(&self, n: u32) -> u32 {
        self.get(n).prev
    }

    #[inline]
    unsafe fn set_next(&mut self, n: u32, to: u32) {
        self.get_mut(n).next = to;
    }

    #[inline]
    unsafe fn set_prev(&mut self, n: u32, to: u32) {
        self.get_mut(n).prev = to;
    }
}

impl TimerLinks for Arena {
    #[inline]
    unsafe fn deadline(&self, n: u32) -> u64 {
        self.get(n).deadline
    }

    #[inline]
    unsafe fn slot(&self, n: u32) -> u16 {
        self.get(n).slot
    }

    #[inline]
    unsafe fn set_slot(&mut self, n: u32, slot: u16) {
        self.get_mut(n).slot = slot;
    }
}

/// Names a set of compact timers that share one callback, made by
/// [`Loop::add_timer_set`](crate::generic::Loop::add_timer_set). Copyable;
/// stale once the set is removed, and never valid on another loop.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerSet {
    pub(crate) index: u16,
    pub(crate) gen: u32,
    pub(crate) tag: u32,
}

impl fmt::Debug for TimerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimerSet({}v{}@{})", self.index, self.gen, self.tag)
    }
}

/// Names one start of a set timer, made by
/// [`Loop::start_timer`](crate::generic::Loop::start_timer). Copyable;
/// stale once the timer fired or was stopped, and never valid on another
/// loop. Its entry's generation is 32 bits: an id kept while its entry is
/// reused 2^32 times would name the latest timer there (as a completion's
/// [`Id`](crate::Id) would); drop ids of timers that fired.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    pub(crate) index: u32,
    pub(crate) gen: u32,
    pub(crate) tag: u32,
}

impl fmt::Debug for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimerId({}v{}@{})", self.index, self.gen, self.tag)
    }
}

/// One set: its callback (out of it while it runs), generation and count
/// of pending timers.
struct Set<C> {
    cb: Option<C>,
    gen: u32,
    live: bool,
    /// Removal was asked while the callback ran: drop it when it returns.
    remove_after: bool,
    pending: usize,
}

/// The store: the arena, the wheel over it, and the sets.
pub(crate) struct TimerSets<C> {
    arena: Arena,
    wheel: Wheel<u32>,
    sets: Vec<Set<C>>,
    /// Indices of removed sets, for reuse.
    free_sets: Vec<u16>,
}

impl<C> TimerSets<C> {
    pub(crate) fn new() -> TimerSets<C> {
        TimerSets {
            arena: Arena {
                chunks: Vec::new(),
                carved: 0,
                free: NIL,
            },
            wheel: Wheel::new(NIL),
            sets: Vec::new(),
            free_sets: Vec::new(),
        }
    }

    /// How many timers are due by `now` (advancing the wheel to it).
    pub(crate) fn due(&mut self, now: u64) -> usize {
        // SAFETY: the wheel holds only live entries of this arena.
        unsafe { self.wheel.due(&mut self.arena, now) }
    }

    /// Whether no timer is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.wheel.is_empty()
    }

    /// When the wheel next has something due (see `Wheel::next_expiration`).
    pub(crate) fn next_expiration(&self) -> Option<u64> {
        self.wheel.next_expiration(NIL)
    }

    /// Adds a set with callback `cb`: its index and generation, or `None`
    /// when `u16::MAX` sets exist.
    pub(crate) fn add_set(&mut self, cb: C) -> Option<(u16, u32)> {
        if let Some(i) = self.free_sets.pop() {
            let s = &mut self.sets[usize::from(i)];
            s.cb = Some(cb);
            s.live = true;
            return Some((i, s.gen));
        }
        let i = u16::try_from(self.sets.len()).ok().filter(|&i| i != u16::MAX)?;
        self.sets.push(Set {
            cb: Some(cb),
            gen: 0,
            live: true,
            remove_after: false,
            pending: 0,
        });
        Some((i, 0))
    }

    fn set(&self, index: u16, gen: u32) -> Result<&Set<C>, IdError> {
        match self.sets.get(usize::from(index)) {
            Some(s) if s.live && s.gen == gen => Ok(s),
            _ => Err(IdError::Stale),
        }
    }

    /// Pending timers of a set.
    pub(crate) fn pending(&self, index: u16, gen: u32) -> Result<usize, IdError> {
        self.set(index, gen).map(|s| s.pending)
    }

    /// Starts a timer in a set; returns its index and generation.
    pub(crate) fn start(
        &mut self,
        index: u16,
        gen: u32,
        deadline: u64,
        key: u64,
    ) -> Result<(u32, u32), IdError> {
        self.set(index, gen)?;
        let i = self.arena.alloc(Entry {
            next: NIL,
            prev: NIL,
            deadline,
            key,
            gen: 0,
            slot: FREE,
            set: index,
        });
        // SAFETY: `i` is a live entry in no list; the wheel holds only live
        // entries of this arena (freed ones leave it first).
        unsafe { self.wheel.push(&mut self.arena, i) };
        self.sets[usize::from(index)].pending += 1;
        Ok((i, self.arena.get(i).gen))
    }

    /// Stops a pending timer: returns its key.
    pub(crate) fn stop(&mut self, i: u32, gen: u32) -> Result<u64, IdError> {
        let e = *self.arena.live(i, gen).ok_or(IdError::Stale)?;
        // SAFETY: a live entry is in the wheel.
        unsafe { self.wheel.remove(&mut self.arena, i) };
        self.arena.release(i);
        self.sets[usize::from(e.set)].pending -= 1;
        Ok(e.key)
    }

    /// Moves a pending timer to `deadline`, behind the timers already due
    /// then.
    pub(crate) fn reset(&mut self, i: u32, gen: u32, deadline: u64) -> Result<(), IdError> {
        self.arena.live(i, gen).ok_or(IdError::Stale)?;
        // SAFETY: a live entry is in the wheel; it is pushed back at once.
        unsafe {
            self.wheel.remove(&mut self.arena, i);
            self.arena.get_mut(i).deadline = deadline;
            self.wheel.push(&mut self.arena, i);
        }
        Ok(())
    }

    /// Removes a set that has no pending timer. Returns its callback to
    /// drop, or `None` when the callback is running (it is dropped when it
    /// returns, see [`TimerSets::put_back`]).
    pub(crate) fn remove_set(&mut self, index: u16, gen: u32) -> Result<Option<C>, IdError> {
        if self.set(index, gen)?.pending > 0 {
            return Err(IdError::Busy);
        }
        let s = &mut self.sets[usize::from(index)];
        s.live = false;
        s.gen = s.gen.wrapping_add(1);
        let cb = s.cb.take();
        if cb.is_none() {
            s.remove_after = true;
        } else {
            self.free_sets.push(index);
        }
        Ok(cb)
    }

    /// Removes the next timer due by `now`, frees its entry and returns its
    /// set and key.
    pub(crate) fn pop_expired(&mut self, now: u64) -> Option<(u16, u64)> {
        // SAFETY: the wheel holds only live entries of this arena.
        let i = unsafe { self.wheel.pop_expired(&mut self.arena, now) }?;
        let e = *self.arena.get(i);
        self.arena.release(i);
        self.sets[usize::from(e.set)].pending -= 1;
        Some((e.set, e.key))
    }

    /// Takes a set's callback out to call it (`None` if it is already out).
    pub(crate) fn take_callback(&mut self, index: u16) -> Option<C> {
        self.sets[usize::from(index)].cb.take()
    }

    /// Puts a set's callback back after its call; returns it instead when
    /// the set was removed meanwhile (the caller drops it).
    pub(crate) fn put_back(&mut self, index: u16, cb: C) -> Option<C> {
        let s = &mut self.sets[usize::from(index)];
        if s.remove_after {
            s.remove_after = false;
            self.free_sets.push(index);
            return Some(cb);
        }
        s.cb = Some(cb);
        None
    }

    /// Takes every callback out (the loop drops them when it is dropped).
    pub(crate) fn take_callbacks(&mut self) -> Vec<C> {
        self.sets.iter_mut().filter_map(|s| s.cb.take()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_deadline_order_and_ids_go_stale() {
        let mut t = TimerSets::<&str>::new();
        let (a, ga) = t.add_set("a").unwrap();
        let (b, gb) = t.add_set("b").unwrap();
        let ids: Vec<_> = [(a, ga, 30, 1), (b, gb, 10, 2), (a, ga, 10, 3), (a, ga, 20, 4)]
            .iter()
            .map(|&(s, g, d, k)| t.start(s, g, d, k).unwrap())
            .collect();
        assert_eq!(t.due(0), 0);
        assert_eq!(t.pending(a, ga), Ok(3));
        assert_eq!(t.stop(ids[3].0, ids[3].1), Ok(4));
        assert_eq!(t.stop(ids[3].0, ids[3].1), Err(IdError::Stale));
        t.reset(ids[0].0, ids[0].1, 5).unwrap();
        let mut fired = Vec::new();
        while let Some(x) = t.pop_expired(100) {
            fired.push(x);
        }
        assert_eq!(fired, vec![(a, 1), (b, 2), (a, 3)]);
        assert!(t.is_empty());
        assert_eq!(t.reset(ids[1].0, ids[1].1, 50), Err(IdError::Stale));
        // Freed entries are reused with a new generation.
        let again = t.start(a, ga, 7, 9).unwrap();
        assert!(ids.iter().any(|id| id.0 == again.0));
        assert!(!ids.contains(&again));
    }

    #[test]
    fn sets_are_removed_only_when_idle_and_their_ids_go_stale() {
        let mut t = TimerSets::<u8>::new();
        let (s, g) = t.add_set(1).unwrap();
        let id = t.start(s, g, 10, 0).unwrap();
        assert_eq!(t.remove_set(s, g), Err(IdError::Busy));
        t.stop(id.0, id.1).unwrap();
        assert_eq!(t.remove_set(s, g), Ok(Some(1)));
        assert_eq!(t.start(s, g, 10, 0), Err(IdError::Stale));
        // The index is reused with a new generation.
        let (s2, g2) = t.add_set(2).unwrap();
        assert_eq!(s2, s);
        assert_ne!(g2, g);
        // Removal while the callback is out: handed back on return.
        let cb = t.take_callback(s2).unwrap();
        assert_eq!(t.remove_set(s2, g2), Ok(None));
        assert_eq!(t.put_back(s2, cb), Some(2));
    }

    #[test]
    fn many_timers_span_chunks() {
        let mut t = TimerSets::<()>::new();
        let (s, g) = t.add_set(()).unwrap();
        let n = if cfg!(miri) { 300 } else { 3 * CHUNK as u64 + 5 };
        for k in 0..n {
            t.start(s, g, n - k, k).unwrap();
        }
        let mut last = (0, u64::MAX);
        let mut count = 0;
        while let Some((_, k)) = t.pop_expired(u64::MAX) {
            // Deadline n - k: keys come out in falling order.
            assert!(k < last.1);
            last = (0, k);
            count += 1;
        }
        assert_eq!(count, n);
    }
}
