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
//! the timer's own links (a completion's `next`/`prev` fields): adding,
//! removing and moving a timer are O(1) and take no memory beyond the timer
//! itself, and each timer is moved down a level at most five times before
//! it fires. Occupancy bitmaps find the next non-empty slot without
//! scanning.
//!
//! Order: timers fire by deadline, and timers with equal deadlines in the
//! order they were added (or last moved). No sequence number is needed for
//! that: a slot's list is only ever appended to, and when a slot is
//! processed (at the start of its span) the lower slots of that span are
//! still empty, since a timer whose deadline lies in the span was placed in
//! that slot or a higher one as long as the clock was before the span. So
//! every list stays in insertion order, and timers moved down a level come
//! before any added later. Timers whose deadline has passed when added go
//! into the ready list behind every ready timer with a deadline not later
//! than theirs.
//!
//! The wheel is generic over how it reaches its timers ([`TimerLinks`]):
//! [`TimerWheel`] holds completions (linked through their cores), and the
//! compact timer store (`timer_set`) holds entries of an arena, named by
//! index.

use crate::queue::{CoreLinks, Links, List};
use crate::op::Op;
use crate::record::Core;

const BITS: u32 = 6;
const SLOTS: usize = 1 << BITS;
const LEVELS: usize = 6;
/// Deadlines at least this far from the wheel's clock go to the overflow list.
const HORIZON_BITS: u32 = BITS * LEVELS as u32;
/// The slot of a timer in the expired (ready) list.
const READY: u16 = u16::MAX;
/// The slot of a timer in the overflow list.
const OVERFLOW: u16 = u16::MAX - 1;

/// What the wheel needs of its timers besides their links: the deadline
/// and a place to note which of its lists holds the timer.
pub(crate) trait TimerLinks: Links {
    /// The timer's deadline (loop milliseconds).
    ///
    /// # Safety
    /// `n` is a live node of this storage.
    unsafe fn deadline(&self, n: Self::Node) -> u64;
    /// Which wheel list holds the timer (as last set).
    ///
    /// # Safety
    /// As for [`TimerLinks::deadline`].
    unsafe fn slot(&self, n: Self::Node) -> u16;
    /// Notes which wheel list holds the timer.
    ///
    /// # Safety
    /// As for [`TimerLinks::deadline`].
    unsafe fn set_slot(&mut self, n: Self::Node, slot: u16);
}

/// The timing wheel, over timers named by `N`.
pub(crate) struct Wheel<N> {
    /// The time (loop milliseconds) up to which the wheel has been advanced.
    now: u64,
    slots: Vec<List<N>>,
    occupied: [u64; LEVELS],
    overflow: List<N>,
    /// When the overflow list must be sorted into the wheel: the start of
    /// the 2^36 ms block holding its earliest deadline (never later).
    overflow_due: u64,
    /// Expired timers, in firing order, not yet handed out.
    ready: List<N>,
    /// Timers in `ready`.
    ready_len: usize,
    len: usize,
}

impl<N: Copy + PartialEq> Wheel<N> {
    /// An empty wheel whose clock starts at 0 (`nil` is the storage's `NIL`).
    pub(crate) fn new(nil: N) -> Wheel<N> {
        Wheel {
            now: 0,
            slots: (0..SLOTS * LEVELS).map(|_| List::empty(nil)).collect(),
            occupied: [0; LEVELS],
            overflow: List::empty(nil),
            overflow_due: u64::MAX,
            ready: List::empty(nil),
            ready_len: 0,
            len: 0,
        }
    }

    /// The earliest time at which something is due: a timer's deadline, or
    /// the time a higher slot must be moved down (waking then is harmless).
    pub(crate) fn next_expiration(&self, nil: N) -> Option<u64> {
        if self.ready.front() == nil {
            self.next_slot_time(nil)
        } else {
            Some(self.now)
        }
    }

    /// The start of the earliest occupied slot (or of the next overflow
    /// pass), ignoring the ready list.
    fn next_slot_time(&self, nil: N) -> Option<u64> {
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
        if self.overflow.front() != nil {
            let t = self.overflow_due;
            best = Some(best.map_or(t, |b| b.min(t)));
        }
        best
    }

    /// Adds the timer `n` (its deadline is set).
    ///
    /// # Safety
    /// `n` is a live timer of `l` in no list, and it stays live until
    /// popped or removed; every timer in the wheel is a live timer of `l`.
    pub(crate) unsafe fn push<L: TimerLinks<Node = N>>(&mut self, l: &mut L, n: N) {
        // SAFETY: per the contract.
        unsafe { self.place(l, n) };
        self.len += 1;
    }

    /// Puts `n` where its deadline belongs.
    ///
    /// # Safety
    /// As for [`Wheel::push`].
    unsafe fn place<L: TimerLinks<Node = N>>(&mut self, l: &mut L, n: N) {
        // SAFETY: the caller passes a live timer in no list.
        unsafe {
            let d = l.deadline(n);
            if d <= self.now {
                l.set_slot(n, READY);
                // Behind every ready timer due no later (search from the
                // back: new timers usually belong at the end).
                let mut after = self.ready.back();
                while after != L::NIL && l.deadline(after) > d {
                    after = l.prev(after);
                }
                self.ready.insert_after(l, after, n);
                self.ready_len += 1;
                return;
            }
            let diff = d ^ self.now;
            if diff >> HORIZON_BITS != 0 {
                l.set_slot(n, OVERFLOW);
                self.overflow.push_back(l, n);
                // The block start is after the clock: the deadline's top
                // bits differ from (so exceed) the clock's.
                let due = d & !((1u64 << HORIZON_BITS) - 1);
                self.overflow_due = self.overflow_due.min(due);
                return;
            }
            let level = ((63 - diff.leading_zeros()) / BITS) as usize;
            let slot = ((d >> (BITS * level as u32)) & (SLOTS as u64 - 1)) as usize;
            let index = level * SLOTS + slot;
            l.set_slot(n, index as u16);
            // Appending keeps the list in insertion order (module docs).
            self.slots[index].push_back(l, n);
            self.occupied[level] |= 1 << slot;
        }
    }

    /// Removes `n`, which is in the wheel.
    ///
    /// # Safety
    /// `n` was pushed and not yet popped or removed; as for [`Wheel::push`].
    pub(crate) unsafe fn remove<L: TimerLinks<Node = N>>(&mut self, l: &mut L, n: N) {
        // SAFETY: `n` is in exactly the list its slot names.
        unsafe {
            match l.slot(n) {
                READY => {
                    self.ready.remove(l, n);
                    self.ready_len -= 1;
                }
                OVERFLOW => self.overflow.remove(l, n),
                index => {
                    let index = usize::from(index);
                    self.slots[index].remove(l, n);
                    if self.slots[index].front() == L::NIL {
                        self.occupied[index / SLOTS] &= !(1 << (index % SLOTS));
                    }
                }
            }
        }
        self.len -= 1;
    }

    /// Removes and returns the next expired timer, advancing the wheel to
    /// `now` first.
    ///
    /// # Safety
    /// Every timer in the wheel is a live timer of `l`.
    pub(crate) unsafe fn pop_expired<L: TimerLinks<Node = N>>(
        &mut self,
        l: &mut L,
        now: u64,
    ) -> Option<N> {
        // SAFETY: per the contract.
        unsafe {
            if self.ready.front() == L::NIL {
                self.advance(l, now);
            }
            let n = self.ready.pop_front(l);
            if n == L::NIL {
                None
            } else {
                self.ready_len -= 1;
                self.len -= 1;
                Some(n)
            }
        }
    }

    /// Advances the wheel to `now` and returns how many timers are due by
    /// then (what [`Wheel::pop_expired`] hands out at `now`, unless timers
    /// are added or removed meanwhile).
    ///
    /// # Safety
    /// As for [`Wheel::pop_expired`].
    pub(crate) unsafe fn due<L: TimerLinks<Node = N>>(&mut self, l: &mut L, now: u64) -> usize {
        // SAFETY: forwarded.
        unsafe { self.advance(l, now) };
        self.ready_len
    }

    /// Advances the clock to `now`, moving every timer due by then to the
    /// ready list. Slots are processed in time order, so the ready list
    /// comes out sorted by deadline (and insertion).
    unsafe fn advance<L: TimerLinks<Node = N>>(&mut self, l: &mut L, now: u64) {
        while let Some(t) = self.next_slot_time(L::NIL) {
            if t > now {
                break;
            }
            self.now = t;
            // SAFETY: forwarded.
            unsafe { self.process_due(l) };
        }
        if now > self.now {
            self.now = now;
        }
    }

    /// Processes every slot (and the overflow list) that starts exactly at
    /// the clock: their timers fire or move down a level.
    unsafe fn process_due<L: TimerLinks<Node = N>>(&mut self, l: &mut L) {
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
            let list = std::mem::replace(&mut self.slots[level * SLOTS + slot], List::empty(L::NIL));
            // SAFETY: wheel lists hold live timers of `l`.
            unsafe { self.replace_all(l, list) };
        }
        if self.overflow.front() != L::NIL && self.now >= self.overflow_due {
            let list = std::mem::replace(&mut self.overflow, List::empty(L::NIL));
            self.overflow_due = u64::MAX;
            // SAFETY: as above.
            unsafe { self.replace_all(l, list) };
        }
    }

    /// Places every timer of `list` (taken out of the wheel) again, in
    /// order. The list is dropped, so its timers are not unlinked one by
    /// one: each one's successor is read before `place` relinks it.
    unsafe fn replace_all<L: TimerLinks<Node = N>>(&mut self, l: &mut L, list: List<N>) {
        let mut n = list.front();
        while n != L::NIL {
            // SAFETY: the list held live timers of `l`; `place` sets both
            // links of `n`, and nothing reads the dropped list again.
            unsafe {
                let next = l.next(n);
                self.place(l, n);
                n = next;
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

/// Completions as timers: a timer core's deadline is in its op, its slot
/// in `Core::timer_slot`.
impl TimerLinks for CoreLinks {
    #[inline]
    unsafe fn deadline(&self, c: *mut Core) -> u64 {
        // SAFETY: the caller passes a live core.
        match unsafe { &(*c).op } {
            Op::Timer { deadline } => *deadline,
            _ => u64::MAX,
        }
    }

    #[inline]
    unsafe fn slot(&self, c: *mut Core) -> u16 {
        // SAFETY: as above.
        unsafe { (*c).timer_slot }
    }

    #[inline]
    unsafe fn set_slot(&mut self, c: *mut Core, slot: u16) {
        // SAFETY: as above.
        unsafe { (*c).timer_slot = slot }
    }
}

/// The loop's wheel of timer completions.
pub(crate) struct TimerWheel(Wheel<*mut Core>);

impl TimerWheel {
    /// An empty wheel whose clock starts at 0.
    pub(crate) fn new() -> TimerWheel {
        TimerWheel(Wheel::new(CoreLinks::NIL))
    }

    /// See [`Wheel::next_expiration`].
    pub(crate) fn next_expiration(&self) -> Option<u64> {
        self.0.next_expiration(CoreLinks::NIL)
    }

    /// Adds the timer `c` (its op holds the deadline).
    ///
    /// # Safety
    /// `c` is live, its op is a timer, it is in no queue, and it stays valid
    /// until popped or removed.
    pub(crate) unsafe fn push(&mut self, c: *mut Core) {
        // SAFETY: per the contract.
        unsafe { self.0.push(&mut CoreLinks, c) }
    }

    /// Removes `c`, which is in the wheel.
    ///
    /// # Safety
    /// `c` was pushed and not yet popped or removed.
    pub(crate) unsafe fn remove(&mut self, c: *mut Core) {
        // SAFETY: per the contract.
        unsafe { self.0.remove(&mut CoreLinks, c) }
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
        // SAFETY: the wheel holds live timer cores (push's contract).
        unsafe { self.0.pop_expired(&mut CoreLinks, now) }
    }

    /// Number of timers in the wheel.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the wheel holds no timer (expired ones included).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
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
            out.push(unsafe { CoreLinks.deadline(c) });
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
        // The reference: pending timers as (deadline, sequence, index); a
        // push or a move gives the timer the next sequence number.
        let mut pending: Vec<(u64, u64, usize)> = Vec::new();
        let mut seq = 0u64;
        let mut now = 0u64;
        let mut fired = 0usize;
        let rounds = if cfg!(miri) { 15 } else { 2_000 };
        for round in 0..rounds {
            for _ in 0..(rnd() % 20) {
                let span = [10u64, 100, 5_000, 1 << 20][(rnd() % 4) as usize];
                // Some deadlines already passed, the rest ahead.
                let d = if rnd() % 8 == 0 {
                    now.saturating_sub(rnd() % 10)
                } else {
                    now + rnd() % span
                };
                let i = cores.len();
                cores.push(timer(d));
                // SAFETY: boxes are never moved out of the vector's heap
                // allocations (Box contents stay put) and outlive the wheel.
                unsafe { w.push(&mut *cores[i]) };
                seq += 1;
                pending.push((d, seq, i));
            }
            // Move a pending timer now and then (earlier, later or past).
            if !pending.is_empty() && rnd() % 3 == 0 {
                let k = (rnd() % pending.len() as u64) as usize;
                let d = now.saturating_sub(5) + rnd() % 200;
                let i = pending[k].2;
                cores[i].op = Op::Timer { deadline: d };
                // SAFETY: `cores[i]` is in the wheel (pending).
                unsafe { w.update(&mut *cores[i]) };
                seq += 1;
                pending[k] = (d, seq, i);
            }
            now += rnd() % [3u64, 70, 5_000][round % 3];
            if round == rounds - 1 {
                now = u64::MAX;
            }
            // The batch: exactly the timers due by `now`, in (deadline,
            // sequence) order.
            let mut want: Vec<(u64, u64, usize)> =
                pending.iter().copied().filter(|t| t.0 <= now).collect();
            want.sort_unstable();
            pending.retain(|t| t.0 > now);
            let mut got = Vec::new();
            while let Some(c) = w.pop_expired(now) {
                got.push(cores.iter().position(|b| ptr::eq(&**b, c)).unwrap());
            }
            let want: Vec<usize> = want.iter().map(|t| t.2).collect();
            assert_eq!(got, want, "round {round}, now {now}");
            fired += got.len();
        }
        assert!(pending.is_empty());
        assert_eq!(fired, cores.len());
        assert_eq!(w.len(), 0);
    }
}
