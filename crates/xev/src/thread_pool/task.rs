//! The intrusive units of work: [`Task`] nodes, [`Batch`]es of them, and
//! [`reverse`], which turns a detached newest-first chain into FIFO order.
//!
//! A task lives in memory owned by whoever schedules it and is linked into
//! queues through its own [`Task::next`] field, so nothing here allocates.
//! These are the types the rest of the crate builds work from (the pool's run
//! queues and the loop's `Mpsc` queue both link them); [`reverse`] is shared
//! by every queue that is a Treiber stack drained with one swap.
//!
//! [`Task`] and [`Batch`] are public (as `xev::ThreadPoolTask` and
//! `xev::ThreadPoolBatch`) for code that runs its own work on a
//! [`ThreadPool`](super::ThreadPool) without allocating, such as the C
//! API's `xev_threadpool_schedule`: an `unsafe` intrusive interface whose
//! contract is written on [`Batch::push`] and
//! [`ThreadPool::schedule`](super::ThreadPool::schedule).

use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};

/// Intrusive task node, embedded in memory owned by the caller: one unit of
/// work for a [`ThreadPool`](super::ThreadPool).
///
/// Put it as the **first field** of a `#[repr(C)]` struct; the `run` function
/// then casts the `NonNull<Task>` it receives back to that struct. Build the
/// `NonNull<Task>` from a pointer to the *whole* struct (e.g.
/// `NonNull::from(&outer).cast::<Task>()`), not from a reference to the
/// `task` field, so the pointer is allowed to reach the other fields.
#[repr(C)]
pub struct Task {
    /// Intrusive link, owned by whichever queue currently holds the task.
    pub(crate) next: AtomicPtr<Task>,
    /// Called exactly once, on a pool thread, when the task runs. The pool
    /// does not touch the task after calling it, so `run` may free or reuse
    /// (even reschedule) the task's memory.
    pub(crate) run: unsafe fn(NonNull<Task>),
}

impl Task {
    /// Creates an unlinked task that will call `run` when it is executed.
    ///
    /// `run` receives the pointer the task was pushed with (see
    /// [`Batch::push`]); it is called exactly once per scheduling, on a
    /// pool thread, and the pool does not touch the task afterwards.
    pub const fn new(run: unsafe fn(NonNull<Task>)) -> Self {
        Self {
            next: AtomicPtr::new(ptr::null_mut()),
            run,
        }
    }
}

/// A batch of tasks linked through their `next` field, not yet shared with any
/// other thread.
///
/// Scheduling a batch costs one compare-and-swap however many tasks it holds.
/// Tasks of a batch are started in the order they were pushed.
///
/// A batch holds raw pointers to its tasks and owns nothing: dropping or
/// forgetting one leaves its tasks unscheduled and untouched.
pub struct Batch {
    /// Most recently pushed task (null when empty); links run newest-first.
    pub(super) head: *mut Task,
    /// First pushed task (null when empty); its `next` is set when the batch
    /// is scheduled.
    pub(super) tail: *mut Task,
    /// Number of tasks in the batch.
    len: usize,
}

impl Batch {
    /// Creates an empty batch.
    pub fn new() -> Self {
        Self {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            len: 0,
        }
    }

    /// Appends `task` to the batch.
    ///
    /// # Safety
    ///
    /// `task` must point to a valid [`Task`] that is not in this or any other
    /// batch or queue, and it must stay valid and unmoved (with no `&mut`
    /// reference to it) until the batch is scheduled and the task's `run`
    /// function has been called. The batch takes over the task's `next` link.
    pub unsafe fn push(&mut self, task: NonNull<Task>) {
        // SAFETY: the caller guarantees `task` is valid and not linked into
        // any other list, so the batch may use its atomic `next` link.
        unsafe { task.as_ref() }
            .next
            .store(self.head, Ordering::Relaxed);
        self.head = task.as_ptr();
        if self.tail.is_null() {
            self.tail = task.as_ptr();
        }
        self.len += 1;
    }

    /// Appends every task of `other` after the tasks of this batch (they
    /// start after them), with no traversal of either batch.
    pub fn append(&mut self, other: Batch) {
        let (Some(other_head), Some(other_tail)) = (NonNull::new(other.head), NonNull::new(other.tail))
        else {
            return;
        };
        // SAFETY: `other` holds valid tasks linked from its head (newest)
        // to its tail (oldest) that are in no other batch or queue (the
        // contract of `push`, by which they entered it); taking `other` by
        // value, this batch takes them over, links included.
        unsafe { other_tail.as_ref() }
            .next
            .store(self.head, Ordering::Relaxed);
        self.head = other_head.as_ptr();
        if self.tail.is_null() {
            self.tail = other_tail.as_ptr();
        }
        self.len += other.len;
    }

    /// Number of tasks in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds no task.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("len", &self.len).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task").finish_non_exhaustive()
    }
}

/// Reverses a chain linked through [`Task::next`] (null-terminated) and
/// returns its new head: a newest-first chain, as detached from a Treiber
/// stack, comes back in FIFO (push) order.
///
/// # Safety
///
/// Every node of the chain must be a valid [`Task`], and the caller must own
/// the chain exclusively (typically it was just detached with an atomic swap):
/// no other thread may read or write the nodes' links while this runs.
#[inline]
pub(crate) unsafe fn reverse(mut node: *mut Task) -> *mut Task {
    let mut reversed: *mut Task = ptr::null_mut();
    while let Some(current) = NonNull::new(node) {
        // SAFETY: the caller guarantees every node of the chain is a valid
        // task and that it owns the chain, so nobody else touches its links.
        let task = unsafe { current.as_ref() };
        node = task.next.load(Ordering::Relaxed);
        task.next.store(reversed, Ordering::Relaxed);
        // Keep the original pointer (not one derived from `task`): it carries
        // the provenance of the caller's whole enclosing struct.
        reversed = current.as_ptr();
    }
    reversed
}
