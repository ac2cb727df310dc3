//! The loop's timers: a hierarchical timing wheel with millisecond ticks.
//!
//! Every backend keeps its timers here rather than in the kernel (io_uring
//! included: one kernel timeout per timer costs a kernel object and a wakeup
//! each, and libxev's million-timers run spends almost all its time there);
//! a backend's wait is only bounded by [`TimerWheel::next_expiration`].
//!
//! Six levels of 64 slots cover 2^36 ms (about two years) ahead of the
//! wheel's clock; later deadlines wait in an overflow list that is re-sorted
//! into the wheel every 2^36 ms. A timer sits in the slot of the highest
//! level where its deadline differs from the wheel's clock, linked through
//! its completion's `next`/`prev` fields: adding, removing and moving a timer
//! are O(1) and take no memory beyond the completion itself, and each timer
//! is moved down a level at most five times before it fires. Occupancy
//! bitmaps find the next non-empty slot without scanning.
//!
//! Order: timers fire by deadline, and timers with equal deadlines in the
//! order they were added (or last reset). Each timer carries a sequence
//! number; every slot list is kept sorted by it (appending keeps it sorted,
//! and moving a slot's timers down a level merges two sorted lists).

use crate::op::Op;
use crate::queue::Queue;
use crate::record::Core;

const BITS: u32 = 6;
const SLOTS: usize = 1 << BITS;
const LEVELS: usize = 6;
/// Deadlines at least this far from the wheel's clock go to the overflow list.
const HORIZON_BITS: u32 = BITS * LEVELS as u32;
/// `Core::timer_slot` of a timer in the expired (ready) list.
const READY: u16 = u16::MAX;
/// `Core::timer_slot` of a timer in the overflow list.
const OVERFLOW: u16 = u16::MAX - 1;

/// The timing wheel.
pub(crate) struct TimerWheel {
    /// The time (loop milliseconds) up to which the wheel has been advanced.
    now: u64,
    slots: Vec<Queue>,
    occupied: [u64; LEVELS],
    overflow: Queue,
    /// When the overflow list must be sorted into the wheel: the start of
    /// the 2^36 ms block holding its earliest deadline (never later).
    overflow_due: u64,
    /// Expired timers, in firing order, not yet handed out.
    ready: Queue,
    seq: u64,
    len: usize,
}

/// The deadline of a timer core.
///
/// # Safety
/// `c` is a live core whose op is a timer.
#[inline]
unsafe fn deadline(c: *mut Core) -> u64 {
    // SAFETY: per the contract.
    match unsafe { &(*c).op } {
        Op::Timer { deadline } => *deadline,
        _ => u64::MAX,
    }
}

/// The sequence number of a timer core (kept in its slot while it is in
/// the wheel).
#[inline]
unsafe fn seq(c: *mut Core) -> u64 {
    // SAFETY: the caller passes a live core in the wheel, whose slot holds
    // the sequence number `push` wrote.
    unsafe { (*c).slot.timer_seq }
}

impl TimerWheel {
    /// An empty wheel whose clock starts at 0.
    pub(crate) fn new() -> TimerWheel {
        TimerWheel {
            now: 0,
            slots: (0..SLOTS * LEVELS).map(|_| Queue::new()).collect(),
            occupied: [0; LEVELS],
            overflow: Queue::new(),
            overflow_due: u64::MAX,
            ready: Queue::new(),
            seq: 0,
            len: 0,
        }
    }

    /// The earliest time at which something is due: a timer's deadline, or
    /// the time a higher slot must be moved down (waking then is harmless).
    pub(crate) fn next_expiration(&self) -> Option<u64> {
        if self.ready.is_empty() {
            self.next_slot_time()
        } else {
            Some(self.now)
        }
    }

    /// The start of the earliest occupied slot (or of the next overflow
    /// pass), ignoring the ready list.
    fn next_slot_time(&self) -> Option<u64> {
        if self.is_empty() {
            // No timer anywhere (the common case of a loop without
            // timers, asked on every tick): nothing to scan.
            return None;
        }
        let mut best: Option<u64> = None;
        for level in 0..LEVELS {
            let shift = BITS * level as u32;
            let digit = (self.now >> shift) & (SLOTS as u64 - 1);
            // Occupied slots always lie after the clock's digit (earlier
            // ones were processed when the clock passed them).
            let later = if digit == SLOTS as u64 - 1 {
                0
            } else {
                self.occupied[level] & (!0u64 << (digit + 1))
            };
            if later != 0 {
                let slot = u64::from(later.trailing_zeros());
                let block = self.now & !((1u64 << (shift + BITS)) - 1);
                let t = block + (slot << shift);
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        }
        if !self.overflow.is_empty() {
            let t = self.overflow_due;
            best = Some(best.map_or(t, |b| b.min(t)));
        }
        best
    }

    /// Adds the timer `c` (its op holds the deadline).
    ///
    /// # Safety
    /// `c` is live, its op is a timer, it is in no queue, and it stays valid
    /// until popped or removed.
    pub(crate) unsafe fn push(&mut self, c: *mut Core) {
        self.seq += 1;
        // SAFETY: per the contract.
        unsafe {
            (*c).slot.timer_seq = self.seq;
            self.place(c);
        }
        self.len += 1;
    }

    /// Puts `c` (with its sequence number set) where its deadline belongs.
    unsafe fn place(&mut self, c: *mut Core) {
        // SAFETY: the caller passes a live timer core in no queue.
        unsafe {
            let d = deadline(c);
            if d <= self.now {
                (*c).timer_slot = READY;
                insert_sorted(&mut self.ready, c, |a, b| {
                    (deadline(a), seq(a)) <= (deadline(b), seq(b))
                });
                return;
            }
            let diff = d ^ self.now;
            if diff >> HORIZON_BITS != 0 {
                (*c).timer_slot = OVERFLOW;
                self.overflow.push_back(c);
                // The block start is after the clock: the deadline's top
                // bits differ from (so exceed) the clock's.
                let due = d & !((1u64 << HORIZON_BITS) - 1);
                self.overflow_due = self.overflow_due.min(due);
                return;
            }
            let level = ((63 - diff.leading_zeros()) / BITS) as usize;
            let slot = ((d >> (BITS * level as u32)) & (SLOTS as u64 - 1)) as usize;
            let index = level * SLOTS + slot;
            (*c).timer_slot = index as u16;
            // New timers have the highest sequence number: appending keeps
            // the list sorted. Timers moved down a level are merged in.
            insert_sorted(&mut self.slots[index], c, |a, b| seq(a) <= seq(b));
            self.occupied[level] |= 1 << slot;
        }
    }

    /// Removes `c`, which is in the wheel.
    ///
    /// # Safety
    /// `c` was pushed and not yet popped or removed.
    pub(crate) unsafe fn remove(&mut self, c: *mut Core) {
        // SAFETY: `c` is in exactly the list its timer_slot names.
        unsafe {
            match (*c).timer_slot {
                READY => self.ready.remove(c),
                OVERFLOW => self.overflow.remove(c),
                index => {
                    let index = usize::from(index);
                    self.slots[index].remove(c);
                    if self.slots[index].is_empty() {
                        self.occupied[index / SLOTS] &= !(1 << (index % SLOTS));
                    }
                }
            }
        }
        self.len -= 1;
    }

    /// Moves `c`, which is in the wheel, to its op's (new) deadline, behind
    /// timers that already have that deadline.
    ///
    /// # Safety
    /// As for [`TimerWheel::remove`]; the op already holds the new deadline.
    pub(crate) unsafe fn update(&mut self, c: *mut Core) {
        // SAFETY: forwarded.
        unsafe {
            self.remove(c);
            self.push(c);
        }
    }

    /// Removes and returns the next expired timer, advancing the wheel to
    /// `now` first.
    pub(crate) fn pop_expired(&mut self, now: u64) -> Option<*mut Core> {
        if self.ready.is_empty() {
            self.advance(now);
        }
        let c = self.ready.pop_front();
        if c.is_null() {
            None
        } else {
            self.len -= 1;
            Some(c)
        }
    }

    /// Advances the clock to `now`, moving every timer due by then to the
    /// ready list. Slots are processed in time order, so the ready list
    /// comes out sorted by deadline (and sequence number).
    fn advance(&mut self, now: u64) {
        while let Some(t) = self.next_slot_time() {
            if t > now {
                break;
            }
            self.now = t;
            self.process_due();
        }
        if now > self.now {
            self.now = now;
        }
    }

    /// Processes every slot (and the overflow list) that starts exactly at
    /// the clock: their timers fire or move down a level.
    fn process_due(&mut self) {
        for level in 0..LEVELS {
            let shift = BITS * level as u32;
            if level > 0 && self.now & ((1u64 << shift) - 1) != 0 {
                break; // not at a boundary of this level (or any higher)
            }
            let slot = ((self.now >> shift) & (SLOTS as u64 - 1)) as usize;
            if self.occupied[level] & (1 << slot) == 0 {
                continue;
            }
            self.occupied[level] &= !(1 << slot);
            let mut list = std::mem::take(&mut self.slots[level * SLOTS + slot]);
            loop {
                let c = list.pop_front();
                if c.is_null() {
                    break;
                }
                // SAFETY: wheel lists hold live timer cores.
                unsafe { self.place(c) };
            }
        }
        if !self.overflow.is_empty() && self.now >= self.overflow_due {
            let mut list = std::mem::take(&mut self.overflow);
            self.overflow_due = u64::MAX;
            loop {
                let c = list.pop_front();
                if c.is_null() {
                    break;
                }
                // SAFETY: as above.
                unsafe { self.place(c) };
            }
        }
    }

    /// Number of timers in the wheel.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the wheel holds no timer (expired ones included).
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Inserts `c` into `q` before the first element `e` with `!le(e, c)`,
/// searching from the back (new elements usually belong at the end).
///
/// # Safety
/// `q` holds live cores; `c` is live and in no queue.
unsafe fn insert_sorted(q: &mut Queue, c: *mut Core, le: impl Fn(*mut Core, *mut Core) -> bool) {
    // SAFETY: per the contract; every pointer walked is a queue member.
    unsafe {
        let mut after = q.back();
        while !after.is_null() && !le(after, c) {
            after = (*after).prev;
        }
        q.insert_after(after, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Op;
    use std::ptr;

    fn timer(d: u64) -> Box<Core> {
        Box::new(Core::new_for_tests(Op::Timer { deadline: d }))
    }

    fn drain(w: &mut TimerWheel, now: u64) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(c) = w.pop_expired(now) {
            // SAFETY: the test's boxes outlive the wheel's use of them.
            out.push(unsafe { deadline(c) });
        }
        out
    }

    #[test]
    fn fires_in_deadline_then_insertion_order_across_levels() {
        let mut w = TimerWheel::new();
        let ds = [
            5u64,
            1,
            70,
            4096,
            1,
            70,
            262_145,
            3,
            5,
            0,
            1 << 40,
            u64::MAX,
        ];
        let mut cores: Vec<Box<Core>> = ds.iter().map(|&d| timer(d)).collect();
        for c in cores.iter_mut() {
            // SAFETY: the box outlives the wheel's use of it.
            unsafe { w.push(&mut **c) };
        }
        assert_eq!(w.len(), ds.len());
        assert_eq!(drain(&mut w, 0), vec![0]);
        assert_eq!(w.next_expiration(), Some(1));
        assert_eq!(drain(&mut w, 4), vec![1, 1, 3]);
        assert_eq!(drain(&mut w, 69), vec![5, 5]);
        assert_eq!(drain(&mut w, 100_000), vec![70, 70, 4096]);
        assert_eq!(drain(&mut w, 300_000), vec![262_145]);
        assert_eq!(drain(&mut w, 1 << 40), vec![1 << 40]);
        assert_eq!(w.len(), 1);
        assert_eq!(drain(&mut w, u64::MAX - 1), Vec::<u64>::new());
        assert_eq!(drain(&mut w, u64::MAX), vec![u64::MAX]);
        assert_eq!(w.len(), 0);
        // Equal deadlines: insertion order, including after moving levels.
        let mut w = TimerWheel::new();
        let mut cs: Vec<Box<Core>> = (0..5).map(|_| timer(5000)).collect();
        for c in cs.iter_mut().take(3) {
            // SAFETY: as above.
            unsafe { w.push(&mut **c) };
        }
        assert_eq!(drain(&mut w, 4990), Vec::<u64>::new());
        for c in cs.iter_mut().skip(3) {
            // SAFETY: as above.
            unsafe { w.push(&mut **c) };
        }
        let mut order = Vec::new();
        while let Some(c) = w.pop_expired(6000) {
            order.push(cs.iter().position(|b| ptr::eq(&**b, c)).unwrap());
        }
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn remove_and_update() {
        let mut w = TimerWheel::new();
        let mut a = timer(100);
        let mut b = timer(200);
        let mut c = timer(50);
        // SAFETY: the boxes outlive the wheel's use of them.
        unsafe {
            w.push(&mut *a);
            w.push(&mut *b);
            w.push(&mut *c);
            w.remove(&mut *c);
            a.op = Op::Timer { deadline: 300 };
            w.update(&mut *a);
        }
        assert_eq!(drain(&mut w, 250), vec![200]);
        assert_eq!(drain(&mut w, 1000), vec![300]);
        assert_eq!(w.next_expiration(), None);
    }

    #[test]
    fn matches_a_sorted_reference_on_random_input() {
        // A small deterministic generator (no dependency needed).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut w = TimerWheel::new();
        let mut cores: Vec<Box<Core>> = Vec::new();
        let mut now = 0u64;
        let mut fired: Vec<(u64, usize)> = Vec::new();
        let mut expected: Vec<(u64, u64, usize)> = Vec::new();
        let mut seqs = 0u64;
        let rounds = if cfg!(miri) { 15 } else { 200 };
        for round in 0..rounds {
            for _ in 0..(rnd() % 20) {
                let span = [10u64, 100, 5_000, 1 << 20][(rnd() % 4) as usize];
                let d = now + rnd() % span;
                let i = cores.len();
                cores.push(timer(d));
                // SAFETY: boxes are never moved out of the vector's heap
                // allocations (Box contents stay put) and outlive the wheel.
                unsafe { w.push(&mut *cores[i]) };
                seqs += 1;
                expected.push((d, seqs, i));
            }
            now += rnd() % [3u64, 70, 5_000][round % 3];
            while let Some(c) = w.pop_expired(now) {
                let i = cores.iter().position(|b| ptr::eq(&**b, c)).unwrap();
                // SAFETY: `c` is one of our live boxes.
                fired.push((unsafe { deadline(c) }, i));
            }
        }
        now = u64::MAX;
        while let Some(c) = w.pop_expired(now) {
            let i = cores.iter().position(|b| ptr::eq(&**b, c)).unwrap();
            // SAFETY: as above.
            fired.push((unsafe { deadline(c) }, i));
        }
        // Every timer fired once, never before its deadline relative to the
        // pops, and each pop batch came out in (deadline, insertion) order.
        assert_eq!(fired.len(), expected.len());
        let mut seen: Vec<usize> = fired.iter().map(|f| f.1).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), expected.len());
        for pair in fired.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (sa, sb) = (expected[a.1].1, expected[b.1].1);
            assert!(
                a.0 < b.0 || (a.0 == b.0 && sa < sb) || a.0 > b.0,
                "{pair:?}"
            );
        }
    }
}
