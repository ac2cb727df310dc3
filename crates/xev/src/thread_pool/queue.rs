//! The lock-free run queues, and the order in which a worker searches them.
//!
//! Work enters through the global [`Injector`], an intrusive Treiber stack
//! that takes a whole [`Batch`](super::Batch) with one compare-and-swap and
//! is drained whole with one swap. A worker keeps what it drained in its own
//! [`Worker`] queues (a bounded ring buffer plus an overflow chain), which
//! other workers steal from through the registry of every [`Worker`] ever
//! started (a push-only list owned by the [`Core`], freed when it drops).
//! [`Core::find_task`] is the search order: own buffer, own overflow, global
//! queue, then stealing, so older work is always preferred. Waking or
//! spawning helpers for work left queued is the worker module's business
//! ([`Core::notify`]).

use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

use super::task::{reverse, Task};
use super::{Core, Padded};

// ---------------------------------------------------------------------------
// Global run queue
// ---------------------------------------------------------------------------

/// Global run queue: intrusive stack of tasks, newest first.
///
/// Any thread pushes whole chains; a worker takes the entire stack with one
/// atomic swap (no ABA, no hazard pointers) and reverses it privately, which
/// yields the tasks in scheduling (FIFO) order.
pub(super) struct Injector {
    /// Most recently scheduled task, or null when empty.
    top: AtomicPtr<Task>,
}

impl Injector {
    /// Creates an empty queue.
    pub(super) const fn new() -> Self {
        Self {
            top: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Links the chain from `head` (newest) to `tail` (oldest) onto the
    /// stack with one compare-and-swap.
    ///
    /// # Safety
    ///
    /// `head` must lead to `tail` through [`Task::next`] links, and the
    /// chain's tasks must be valid and private to the caller, and stay valid
    /// and unmoved (with no `&mut` reference to them) until they are run.
    pub(super) unsafe fn push(&self, head: NonNull<Task>, tail: NonNull<Task>) {
        let mut top = self.top.load(Ordering::Relaxed);
        loop {
            // SAFETY: `tail` is a task of the chain, valid per this function's
            // contract and still private to us until the exchange succeeds.
            unsafe { tail.as_ref() }.next.store(top, Ordering::Relaxed);
            // `SeqCst` success (a superset of `Release`) publishes the chain;
            // see `Core::notify` for why the order matters for wake-ups.
            match self.top.compare_exchange_weak(
                top,
                head.as_ptr(),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => top = current,
            }
        }
    }

    /// Whether the queue is empty, as a `SeqCst` load (so that it orders
    /// against `push`'s exchange in the idle protocol).
    pub(super) fn is_empty(&self) -> bool {
        self.top.load(Ordering::SeqCst).is_null()
    }

    /// Takes every queued task, returned as a FIFO chain the caller owns
    /// (null if the queue was empty).
    pub(super) fn take_all(&self) -> *mut Task {
        // `Acquire` pairs with the `push` exchanges (one release sequence),
        // making every task of the chain visible.
        let chain = self.top.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: chains come from `push`, whose contract keeps their tasks
        // valid until run; the swap detached this one, so we own it.
        unsafe { reverse(chain) }
    }
}

// ---------------------------------------------------------------------------
// Search order
// ---------------------------------------------------------------------------

impl Core {
    /// Allocates and publishes the calling worker's queues.
    pub(super) fn register_worker(&self) -> &Worker {
        let worker = Box::into_raw(Box::new(Worker::new()));
        let mut head = self.workers.load(Ordering::Relaxed);
        loop {
            // SAFETY: `worker` is a fresh allocation, not yet shared.
            unsafe { &*worker }.next.store(head, Ordering::Relaxed);
            match self.workers.compare_exchange_weak(
                head,
                worker,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => head = current,
            }
        }
        // SAFETY: registry nodes are freed only by `Core::drop`, which cannot
        // run while `self` is borrowed.
        unsafe { &*worker }
    }

    /// Finds the next task for worker `me`: its ring buffer, then its
    /// overflow chain, then the global queue, then other workers' queues.
    /// Never blocks.
    pub(super) fn find_task(self: &Arc<Self>, me: &Worker) -> Option<NonNull<Task>> {
        if let Some(task) = me.buffer.pop() {
            return Some(task);
        }
        if let Some((task, _)) = me.adopt(me.overflow.swap(ptr::null_mut(), Ordering::Acquire)) {
            return Some(task);
        }
        // `SeqCst` (inside `is_empty`) so the re-check in `wait_for_work`
        // orders against `schedule`'s exchange.
        if !self.injector.is_empty() {
            let chain = self.injector.take_all();
            if let Some((task, more)) = me.adopt(chain) {
                if more {
                    self.notify();
                }
                return Some(task);
            }
        }
        self.steal(me)
    }

    /// Steals from the other workers: half of a ring buffer, or a whole
    /// overflow chain.
    fn steal(self: &Arc<Self>, me: &Worker) -> Option<NonNull<Task>> {
        let mut next = self.workers.load(Ordering::Acquire);
        while let Some(victim) = NonNull::new(next) {
            // SAFETY: registry nodes live as long as the `Core`, which `self`
            // keeps alive; the `Acquire` load above synchronises with every
            // registration (the exchanges form one release sequence).
            let victim = unsafe { victim.as_ref() };
            next = victim.next.load(Ordering::Relaxed);
            if ptr::eq(victim, me) {
                continue;
            }
            let found = victim.buffer.steal_into(&me.buffer).or_else(|| {
                if victim.overflow.load(Ordering::Relaxed).is_null() {
                    None
                } else {
                    me.adopt(victim.overflow.swap(ptr::null_mut(), Ordering::Acquire))
                }
            });
            if let Some((task, more)) = found {
                if more {
                    self.notify();
                }
                return Some(task);
            }
        }
        None
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Every worker holds an `Arc<Core>` while it runs, so all of them
        // have exited and nothing can reach the registry any more.
        let mut worker = *self.workers.get_mut();
        while !worker.is_null() {
            // SAFETY: registry nodes come from `Box::into_raw` in
            // `register_worker`, are never freed elsewhere, and this is the
            // only remaining access to them.
            let node = unsafe { Box::from_raw(worker) };
            worker = node.next.load(Ordering::Relaxed);
        }
    }
}

// ---------------------------------------------------------------------------
// Per-worker queues
// ---------------------------------------------------------------------------

/// A worker's queues, reachable by every other worker through the registry.
pub(super) struct Worker {
    /// Bounded ring buffer: the owner pushes and pops, others steal.
    pub(super) buffer: Buffer,
    /// FIFO chain of tasks that did not fit in `buffer`. Only the owner sets
    /// it (and only while it is null); the owner or a thief takes it whole.
    pub(super) overflow: AtomicPtr<Task>,
    /// Next (older) entry of the registry.
    next: AtomicPtr<Worker>,
}

impl Worker {
    pub(super) fn new() -> Self {
        Self {
            buffer: Buffer::new(),
            overflow: AtomicPtr::new(ptr::null_mut()),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Takes ownership of a FIFO `chain` (detached by the caller): returns its
    /// first task to run now, moves what fits into the ring buffer and parks
    /// the rest in the overflow slot. The second value tells whether any task
    /// was left queued.
    ///
    /// Owner only, and only while its buffer and overflow are empty.
    pub(super) fn adopt(&self, chain: *mut Task) -> Option<(NonNull<Task>, bool)> {
        let first = NonNull::new(chain)?;
        // SAFETY: the caller owns the detached chain, whose tasks are valid
        // until run (`schedule`'s contract); read the link before handing
        // the task out.
        let rest = unsafe { first.as_ref() }.next.load(Ordering::Relaxed);
        if rest.is_null() {
            return Some((first, false));
        }
        let leftover = self.buffer.fill(rest);
        if !leftover.is_null() {
            debug_assert!(self.overflow.load(Ordering::Relaxed).is_null());
            // Only this worker ever stores a non-null chain here and it was
            // empty, so nothing is overwritten. `Release` publishes the chain
            // to a thief's `Acquire` swap.
            self.overflow.store(leftover, Ordering::Release);
        }
        Some((first, true))
    }
}

pub(super) const BUFFER_CAP: usize = 256;
const BUFFER_MASK: usize = BUFFER_CAP - 1;

/// Bounded single-producer, multi-consumer ring buffer of task pointers.
///
/// `head` and `tail` are free-running counters (they never wrap in practice on
/// 64-bit targets; all arithmetic is wrapping anyway). Slots `head..tail` hold
/// tasks. The owner writes slots and advances `tail`; the owner and thieves
/// claim tasks by advancing `head` with a compare-and-swap, after reading the
/// slots they claim. A slot is only rewritten once `head` has moved past it,
/// so a successful compare-and-swap proves the slots read were current.
/// Slots are atomics, so a thief's speculative read of a slot that is being
/// rewritten (after which its CAS fails) is not a data race.
pub(super) struct Buffer {
    pub(super) head: Padded<AtomicUsize>,
    pub(super) tail: Padded<AtomicUsize>,
    slots: [AtomicPtr<Task>; BUFFER_CAP],
}

impl Buffer {
    fn new() -> Self {
        Self {
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
            slots: [const { AtomicPtr::new(ptr::null_mut()) }; BUFFER_CAP],
        }
    }

    fn slot(&self, index: usize) -> &AtomicPtr<Task> {
        &self.slots[index & BUFFER_MASK]
    }

    /// Owner only: takes the oldest task.
    pub(super) fn pop(&self) -> Option<NonNull<Task>> {
        // Only the owner writes `tail`.
        let tail = self.tail.load(Ordering::Relaxed);
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            if head == tail {
                return None;
            }
            // Only the owner writes slots, so this is the current value.
            let task = self.slot(head).load(Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                head,
                head.wrapping_add(1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return NonNull::new(task),
                Err(current) => head = current,
            }
        }
    }

    /// Owner only: moves tasks from the FIFO `chain` (owned by the caller)
    /// into free slots, in order, and returns the part that did not fit.
    fn fill(&self, mut chain: *mut Task) -> *mut Task {
        let tail = self.tail.load(Ordering::Relaxed);
        // `Acquire` pairs with the thieves' `head` exchange: their reads of
        // the slots we are about to reuse happen before our writes.
        let head = self.head.load(Ordering::Acquire);
        let free = BUFFER_CAP - tail.wrapping_sub(head);
        let mut added = 0;
        while added < free {
            let Some(task) = NonNull::new(chain) else {
                break;
            };
            // SAFETY: the caller owns the chain, whose tasks are valid until
            // run; read the link before the task becomes visible to thieves.
            chain = unsafe { task.as_ref() }.next.load(Ordering::Relaxed);
            self.slot(tail.wrapping_add(added))
                .store(task.as_ptr(), Ordering::Relaxed);
            added += 1;
        }
        // `Release` publishes the slot writes (and the tasks' contents).
        self.tail.store(tail.wrapping_add(added), Ordering::Release);
        chain
    }

    /// Thief: claims half (rounded up) of `self`'s tasks, returning the
    /// oldest to run now and moving the others into `dst`, the thief's own
    /// buffer, which must be empty. The `bool` tells whether any task was
    /// left queued in either buffer.
    pub(super) fn steal_into(&self, dst: &Buffer) -> Option<(NonNull<Task>, bool)> {
        // `dst` is empty and only its owner (the caller) adds to it.
        let dst_tail = dst.tail.load(Ordering::Relaxed);
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            // `Acquire` pairs with the owner's `Release` store of `tail`, so
            // the slots below it are visible.
            let tail = self.tail.load(Ordering::Acquire);
            let len = tail.wrapping_sub(head);
            if len == 0 {
                return None;
            }
            if len > BUFFER_CAP {
                // `head` was read long before `tail`: take a fresh snapshot.
                head = self.head.load(Ordering::Acquire);
                continue;
            }
            let take = len - len / 2;
            let first = self.slot(head).load(Ordering::Relaxed);
            for i in 1..take {
                let task = self.slot(head.wrapping_add(i)).load(Ordering::Relaxed);
                // Not visible to anyone until `dst.tail` moves below.
                dst.slot(dst_tail.wrapping_add(i - 1))
                    .store(task, Ordering::Relaxed);
            }
            // Success proves `head` did not move since we read it, so no slot
            // we read was consumed or rewritten.
            match self.head.compare_exchange(
                head,
                head.wrapping_add(take),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    dst.tail
                        .store(dst_tail.wrapping_add(take - 1), Ordering::Release);
                    return NonNull::new(first).map(|task| (task, len > 1));
                }
                Err(current) => head = current,
            }
        }
    }
}
