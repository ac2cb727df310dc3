//! The loop's timer heap: a binary min-heap of deadlines.
//!
//! Every backend keeps its timers here rather than in the kernel (io_uring
//! included: one kernel timeout per timer costs a syscall-side allocation and
//! a wakeup each, and libxev's million-timers run spends almost all its time
//! there). The heap stores `(deadline, sequence, completion)`; the sequence
//! number keeps timers with equal deadlines in the order they were added.
//! Each completion remembers its position, so cancel and reset are
//! O(log n). The vector grows only when more timers are pending than ever
//! before; it never shrinks, so steady state allocates nothing.

use crate::completion::Core;

#[derive(Clone, Copy)]
struct Entry {
    deadline: u64,
    seq: u64,
    core: *mut Core,
}

impl Entry {
    #[inline]
    fn key(&self) -> (u64, u64) {
        (self.deadline, self.seq)
    }
}

/// Min-heap of timer completions.
pub(crate) struct TimerHeap {
    entries: Vec<Entry>,
    seq: u64,
}

impl TimerHeap {
    /// An empty heap with room for `cap` timers.
    pub(crate) fn with_capacity(cap: usize) -> TimerHeap {
        TimerHeap {
            entries: Vec::with_capacity(cap),
            seq: 0,
        }
    }

    /// The earliest deadline.
    pub(crate) fn peek_deadline(&self) -> Option<u64> {
        self.entries.first().map(|e| e.deadline)
    }

    /// Adds `core` with `deadline`.
    ///
    /// # Safety
    /// `core` is valid and stays valid until it is popped or removed.
    pub(crate) unsafe fn push(&mut self, core: *mut Core, deadline: u64) {
        self.seq += 1;
        let pos = self.entries.len();
        self.entries.push(Entry {
            deadline,
            seq: self.seq,
            core,
        });
        // SAFETY: `core` is valid (caller).
        unsafe { self.sift_up(pos) };
    }

    /// Removes and returns the earliest timer if its deadline is `<= now`.
    pub(crate) fn pop_expired(&mut self, now: u64) -> Option<*mut Core> {
        match self.entries.first() {
            Some(e) if e.deadline <= now => {
                let core = e.core;
                // SAFETY: entries hold valid cores (push's contract).
                unsafe { self.remove_at(0) };
                Some(core)
            }
            _ => None,
        }
    }

    /// Removes `core`, which must be in the heap.
    ///
    /// # Safety
    /// `core` is in this heap.
    pub(crate) unsafe fn remove(&mut self, core: *mut Core) {
        // SAFETY: `core` is in the heap, so its heap_pos is current.
        unsafe { self.remove_at((*core).heap_pos as usize) };
    }

    /// Changes the deadline of `core`, which must be in the heap. The timer
    /// moves behind others with the same deadline.
    ///
    /// # Safety
    /// `core` is in this heap.
    pub(crate) unsafe fn update(&mut self, core: *mut Core, deadline: u64) {
        // SAFETY: `core` is in the heap (caller) and entries are valid.
        unsafe {
            let pos = (*core).heap_pos as usize;
            self.seq += 1;
            self.entries[pos].deadline = deadline;
            self.entries[pos].seq = self.seq;
            let pos = self.sift_up(pos);
            self.sift_down(pos);
        }
    }

    unsafe fn remove_at(&mut self, pos: usize) {
        let last = self.entries.len() - 1;
        self.entries.swap(pos, last);
        self.entries.pop();
        if pos < self.entries.len() {
            // SAFETY: entries hold valid cores.
            unsafe {
                let pos = self.sift_up(pos);
                self.sift_down(pos);
            }
        }
    }

    #[inline]
    unsafe fn set_pos(&mut self, pos: usize) {
        // SAFETY: entries hold valid cores; positions fit in u32 because the
        // slot table is indexed by u32.
        unsafe { (*self.entries[pos].core).heap_pos = pos as u32 };
    }

    unsafe fn sift_up(&mut self, mut pos: usize) -> usize {
        let e = self.entries[pos];
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.entries[parent].key() <= e.key() {
                break;
            }
            self.entries[pos] = self.entries[parent];
            // SAFETY: forwarded from the caller.
            unsafe { self.set_pos(pos) };
            pos = parent;
        }
        self.entries[pos] = e;
        // SAFETY: forwarded from the caller.
        unsafe { self.set_pos(pos) };
        pos
    }

    unsafe fn sift_down(&mut self, mut pos: usize) {
        let n = self.entries.len();
        let e = self.entries[pos];
        loop {
            let l = 2 * pos + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let c = if r < n && self.entries[r].key() < self.entries[l].key() {
                r
            } else {
                l
            };
            if self.entries[c].key() >= e.key() {
                break;
            }
            self.entries[pos] = self.entries[c];
            // SAFETY: forwarded from the caller.
            unsafe { self.set_pos(pos) };
            pos = c;
        }
        self.entries[pos] = e;
        // SAFETY: forwarded from the caller.
        unsafe { self.set_pos(pos) };
    }
}
