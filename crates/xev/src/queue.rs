//! Intrusive, doubly linked FIFO lists: [`List`], generic over how its
//! nodes are linked ([`Links`]), and [`Queue`], the list of completions.
//!
//! The loop's submission and completion queues and the readiness backends'
//! per-descriptor waiter lists link completions through the `next`/`prev`
//! fields of their [`Core`]. A completion is in at most one queue at a time,
//! so one pair of links suffices and no queue ever allocates. The timer
//! wheel links its timers through the same [`List`], whether they are
//! completions or entries of the compact timer store (`timer_set`), whose
//! nodes are indices into an arena rather than pointers.

use std::ptr;

use crate::record::Core;

/// How a [`List`] reaches the links of its nodes: a node is a handle
/// (a pointer, an index), `NIL` marks "none", and the links live in the
/// nodes' storage, which `self` gives access to.
pub(crate) trait Links {
    /// What names one node.
    type Node: Copy + PartialEq;
    /// No node (the end of a list).
    const NIL: Self::Node;

    /// The node after `n`.
    ///
    /// # Safety
    /// `n` is a live node of this storage (not `NIL`).
    unsafe fn next(&self, n: Self::Node) -> Self::Node;
    /// The node before `n`.
    ///
    /// # Safety
    /// As for [`Links::next`].
    unsafe fn prev(&self, n: Self::Node) -> Self::Node;
    /// Sets the node after `n`.
    ///
    /// # Safety
    /// As for [`Links::next`].
    unsafe fn set_next(&mut self, n: Self::Node, to: Self::Node);
    /// Sets the node before `n`.
    ///
    /// # Safety
    /// As for [`Links::next`].
    unsafe fn set_prev(&mut self, n: Self::Node, to: Self::Node);
}

/// A FIFO of nodes linked through their own `next`/`prev` links. Every
/// method that follows a link takes the nodes' storage (`L`); a list only
/// ever holds nodes of one storage.
pub(crate) struct List<N> {
    head: N,
    tail: N,
}

impl<N: Copy + PartialEq> List<N> {
    /// An empty list (`nil` is the storage's `NIL`).
    pub(crate) const fn empty(nil: N) -> List<N> {
        List {
            head: nil,
            tail: nil,
        }
    }

    /// The first node (`NIL` when empty).
    pub(crate) fn front(&self) -> N {
        self.head
    }

    /// The last node (`NIL` when empty).
    pub(crate) fn back(&self) -> N {
        self.tail
    }

    /// Appends `n`.
    ///
    /// # Safety
    /// `n` is a live node of `l` in no list; it stays live while listed,
    /// and every node already listed is a live node of `l`.
    pub(crate) unsafe fn push_back<L: Links<Node = N>>(&mut self, l: &mut L, n: N) {
        // SAFETY: per the contract.
        unsafe { self.insert_after(l, self.tail, n) }
    }

    /// Inserts `n` after `after` (at the front when `after` is `NIL`).
    ///
    /// # Safety
    /// As for [`List::push_back`]; `after` is `NIL` or in this list.
    pub(crate) unsafe fn insert_after<L: Links<Node = N>>(&mut self, l: &mut L, after: N, n: N) {
        // SAFETY: per the contract, every node touched is a live member.
        unsafe {
            let next = if after == L::NIL {
                self.head
            } else {
                l.next(after)
            };
            l.set_prev(n, after);
            l.set_next(n, next);
            if after == L::NIL {
                self.head = n;
            } else {
                l.set_next(after, n);
            }
            if next == L::NIL {
                self.tail = n;
            } else {
                l.set_prev(next, n);
            }
        }
    }

    /// Removes and returns the first node (`NIL` when empty).
    ///
    /// # Safety
    /// Every listed node is a live node of `l` (as `push_back` requires).
    pub(crate) unsafe fn pop_front<L: Links<Node = N>>(&mut self, l: &mut L) -> N {
        let n = self.head;
        if n != L::NIL {
            // SAFETY: `n` is listed.
            unsafe { self.remove(l, n) };
        }
        n
    }

    /// Unlinks `n`.
    ///
    /// # Safety
    /// `n` is in this list, whose nodes are live nodes of `l`.
    pub(crate) unsafe fn remove<L: Links<Node = N>>(&mut self, l: &mut L, n: N) {
        // SAFETY: `n` and its neighbours are listed, hence live.
        unsafe {
            let (prev, next) = (l.prev(n), l.next(n));
            if prev == L::NIL {
                self.head = next;
            } else {
                l.set_next(prev, next);
            }
            if next == L::NIL {
                self.tail = prev;
            } else {
                l.set_prev(next, prev);
            }
            l.set_next(n, L::NIL);
            l.set_prev(n, L::NIL);
        }
    }
}

/// The links of completions: their cores' `next`/`prev` fields.
pub(crate) struct CoreLinks;

impl Links for CoreLinks {
    type Node = *mut Core;
    const NIL: *mut Core = ptr::null_mut();

    #[inline]
    unsafe fn next(&self, n: *mut Core) -> *mut Core {
        // SAFETY: the caller passes a live core.
        unsafe { (*n).next }
    }

    #[inline]
    unsafe fn prev(&self, n: *mut Core) -> *mut Core {
        // SAFETY: as above.
        unsafe { (*n).prev }
    }

    #[inline]
    unsafe fn set_next(&mut self, n: *mut Core, to: *mut Core) {
        // SAFETY: as above.
        unsafe { (*n).next = to }
    }

    #[inline]
    unsafe fn set_prev(&mut self, n: *mut Core, to: *mut Core) {
        // SAFETY: as above.
        unsafe { (*n).prev = to }
    }
}

/// FIFO of `Core`s linked through `next`/`prev`.
pub(crate) struct Queue(List<*mut Core>);

impl Default for Queue {
    fn default() -> Queue {
        Queue::new()
    }
}

impl Queue {
    /// An empty queue.
    pub(crate) const fn new() -> Queue {
        Queue(List::empty(ptr::null_mut()))
    }

    /// Whether the queue is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.front().is_null()
    }

    /// The first completion, if any (null when empty).
    pub(crate) fn front(&self) -> *mut Core {
        self.0.front()
    }

    /// Appends `c`.
    ///
    /// # Safety
    /// `c` is valid and in no queue; it stays valid while queued.
    pub(crate) unsafe fn push_back(&mut self, c: *mut Core) {
        // SAFETY: per the contract; queued cores are valid.
        unsafe { self.0.push_back(&mut CoreLinks, c) }
    }

    /// Removes and returns the first completion (null when empty).
    pub(crate) fn pop_front(&mut self) -> *mut Core {
        // SAFETY: queued cores are valid (push_back's contract).
        unsafe { self.0.pop_front(&mut CoreLinks) }
    }

    /// Unlinks `c`.
    ///
    /// # Safety
    /// `c` is in this queue.
    pub(crate) unsafe fn remove(&mut self, c: *mut Core) {
        // SAFETY: per the contract.
        unsafe { self.0.remove(&mut CoreLinks, c) }
    }
}
