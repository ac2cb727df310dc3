//! An intrusive, doubly linked FIFO of completions.
//!
//! The loop's submission and completion queues and the readiness backends'
//! per-descriptor waiter lists link completions through the `next`/`prev`
//! fields of their [`Core`]. A completion is in at most one queue at a time,
//! so one pair of links suffices and no queue ever allocates.

use std::ptr;

use crate::record::Core;

/// FIFO of `Core`s linked through `next`/`prev`.
pub(crate) struct Queue {
    head: *mut Core,
    tail: *mut Core,
}

impl Default for Queue {
    fn default() -> Queue {
        Queue::new()
    }
}

impl Queue {
    /// An empty queue.
    pub(crate) const fn new() -> Queue {
        Queue {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
        }
    }

    /// Whether the queue is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// The first completion, if any.
    pub(crate) fn front(&self) -> *mut Core {
        self.head
    }

    /// Appends `c`.
    ///
    /// # Safety
    /// `c` is valid and in no queue; it stays valid while queued.
    pub(crate) unsafe fn push_back(&mut self, c: *mut Core) {
        // SAFETY: the caller guarantees `c` and every queued node are valid.
        unsafe {
            (*c).next = ptr::null_mut();
            (*c).prev = self.tail;
            if self.tail.is_null() {
                self.head = c;
            } else {
                (*self.tail).next = c;
            }
        }
        self.tail = c;
    }

    /// The last completion, if any (null when empty).
    pub(crate) fn back(&self) -> *mut Core {
        self.tail
    }

    /// Inserts `c` after `after` (at the front when `after` is null).
    ///
    /// # Safety
    /// `c` is valid and in no queue; `after` is null or in this queue.
    pub(crate) unsafe fn insert_after(&mut self, after: *mut Core, c: *mut Core) {
        // SAFETY: per the contract, every pointer touched is a live member.
        unsafe {
            let next = if after.is_null() {
                self.head
            } else {
                (*after).next
            };
            (*c).prev = after;
            (*c).next = next;
            if after.is_null() {
                self.head = c;
            } else {
                (*after).next = c;
            }
            if next.is_null() {
                self.tail = c;
            } else {
                (*next).prev = c;
            }
        }
    }

    /// Removes and returns the first completion (null when empty).
    pub(crate) fn pop_front(&mut self) -> *mut Core {
        let c = self.head;
        if !c.is_null() {
            // SAFETY: `c` is queued, hence valid (push_back's contract).
            unsafe { self.remove(c) };
        }
        c
    }

    /// Unlinks `c`.
    ///
    /// # Safety
    /// `c` is in this queue.
    pub(crate) unsafe fn remove(&mut self, c: *mut Core) {
        // SAFETY: `c` and its neighbours are queued, hence valid.
        unsafe {
            let (prev, next) = ((*c).prev, (*c).next);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next = next;
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*next).prev = prev;
            }
            (*c).next = ptr::null_mut();
            (*c).prev = ptr::null_mut();
        }
    }
}
