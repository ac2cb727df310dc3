//! An intrusive, lock-free, multi-producer single-consumer queue of [`Task`]s.
//!
//! This is the hand-off point between threads that finish work (thread pool
//! workers, or any other thread) and the one thread that consumes the results
//! (typically an event loop). Producers push nodes they own with a single
//! compare-and-swap and never allocate; the consumer takes everything pushed
//! so far with one atomic swap and walks it in push (FIFO) order.
//!
//! # Design
//!
//! The queue is a Treiber stack threaded through [`Task::next`]: `push` links
//! the new node in front of the current head and publishes it with a
//! `Release` compare-and-swap. [`Mpsc::pop_all`] swaps the head with null
//! (`Acquire`), which detaches the whole chain at once, then reverses that
//! private chain (with the thread pool's [`reverse`], as its global run queue
//! does) so the returned [`TaskList`] yields nodes oldest first.
//! Because nodes are only ever removed as a whole chain, there is no ABA
//! problem and no node is read after another thread could have reused it.

use std::iter::FusedIterator;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::thread_pool::{reverse, Task};

/// Intrusive lock-free multi-producer single-consumer queue of [`Task`] nodes.
///
/// Nodes are linked through their [`Task::next`] field, so the queue never
/// allocates. Any number of threads may [`push`](Mpsc::push); one consumer
/// calls [`pop_all`](Mpsc::pop_all) to take everything pushed so far, in push
/// order.
pub(crate) struct Mpsc {
    /// Most recently pushed node, or null when empty. Each node's `next`
    /// points at the node pushed before it.
    head: AtomicPtr<Task>,
}

impl Mpsc {
    /// Creates an empty queue.
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Pushes one node. May be called from any thread; lock-free, no allocation.
    ///
    /// Pushes made by one thread are returned by [`pop_all`](Mpsc::pop_all) in
    /// the order that thread made them.
    ///
    /// # Safety
    ///
    /// - `task` must point to a valid [`Task`] that stays valid (not moved, not
    ///   freed) until the consumer has received it from the [`TaskList`]
    ///   returned by [`pop_all`](Mpsc::pop_all).
    /// - Until then the node must not be pushed again nor be part of any other
    ///   intrusive list (this queue owns its `next` field), and no `&mut`
    ///   reference to it may exist.
    pub(crate) unsafe fn push(&self, task: NonNull<Task>) {
        // SAFETY: the caller guarantees `task` points to a valid `Task` for as
        // long as it is queued, and nobody holds a `&mut` to it, so a shared
        // reference is fine (`next` is an atomic).
        let node = unsafe { task.as_ref() };
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // The node is not published yet, so this store is private; the
            // `Release` exchange below publishes it (and the caller's writes to
            // the surrounding memory) to the consumer's `Acquire` swap.
            node.next.store(head, Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                head,
                task.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Takes every node pushed so far and returns them in FIFO (push) order.
    ///
    /// Meant for the single consumer. Calling it from several threads at once
    /// is still memory-safe (each node is handed to exactly one caller, since
    /// the chain is detached with one atomic swap) but then no caller sees a
    /// global order. Nodes pushed after the swap are left for the next call.
    /// Dropping the returned list without iterating it to the end loses the
    /// remaining nodes (they are not freed, just never handed out).
    #[must_use = "nodes taken from the queue are lost if the list is dropped"]
    pub(crate) fn pop_all(&self) -> TaskList {
        // Cheap check first so an idle consumer polling an empty queue does not
        // write to the shared cache line.
        if self.head.load(Ordering::Relaxed).is_null() {
            return TaskList {
                head: ptr::null_mut(),
            };
        }
        // `Acquire` pairs with the `Release` exchange of every push whose node
        // is in the chain (the exchanges form one release sequence on `head`),
        // so all their `next` links and task contents are visible here.
        let chain = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        // Reverse the detached (newest-first) chain into push order.
        // SAFETY: every node of the chain was pushed under `push`'s contract,
        // so it is valid until handed out; the swap above made this thread the
        // sole owner of the chain, so nobody else touches its links.
        let head = unsafe { reverse(chain) };
        TaskList { head }
    }
}

/// Nodes taken from an [`Mpsc`] by [`Mpsc::pop_all`], yielded in FIFO order.
///
/// The iterator reads a node's `next` link before yielding it, so the caller
/// may run, reuse, re-push or free each node as soon as it is yielded.
pub(crate) struct TaskList {
    /// Next node to yield (oldest first), or null when exhausted.
    head: *mut Task,
}

impl Iterator for TaskList {
    type Item = NonNull<Task>;

    fn next(&mut self) -> Option<NonNull<Task>> {
        let task = NonNull::new(self.head)?;
        // SAFETY: a `TaskList` only holds nodes detached by `pop_all`, which
        // `push`'s contract keeps valid until they are yielded here; we read
        // the link before yielding, and never touch the node afterwards.
        self.head = unsafe { task.as_ref() }.next.load(Ordering::Relaxed);
        Some(task)
    }
}

impl FusedIterator for TaskList {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    /// Test node: `Task` first so a `NonNull<Task>` can be cast back.
    #[repr(C)]
    struct Node {
        task: Task,
        producer: usize,
        seq: usize,
    }

    unsafe fn never_run(_: NonNull<Task>) {}

    fn nodes(producer: usize, count: usize) -> Vec<Node> {
        (0..count)
            .map(|seq| Node {
                task: Task::new(never_run),
                producer,
                seq,
            })
            .collect()
    }

    fn task_ptr(node: &Node) -> NonNull<Task> {
        // Derived from the whole `Node` so it may be cast back to `Node`.
        NonNull::from(node).cast::<Task>()
    }

    fn node_of<'a>(task: NonNull<Task>) -> &'a Node {
        // SAFETY: every task pushed in these tests is the first field of a
        // `#[repr(C)] Node` kept alive by the test until it ends.
        unsafe { task.cast::<Node>().as_ref() }
    }

    #[test]
    fn empty_queue_pops_nothing() {
        let q = Mpsc::new();
        assert_eq!(q.pop_all().count(), 0);
        assert_eq!(q.pop_all().next(), None);
    }

    #[test]
    fn pop_all_is_fifo() {
        let q = Mpsc::new();
        let all = nodes(0, 10);
        for node in &all {
            // SAFETY: nodes outlive the queue use and are pushed once each.
            unsafe { q.push(task_ptr(node)) };
        }
        let seqs: Vec<usize> = q.pop_all().map(|t| node_of(t).seq).collect();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>());
        assert_eq!(q.pop_all().count(), 0);
    }

    #[test]
    fn interleaved_push_and_pop_keep_order_and_allow_reuse() {
        let q = Mpsc::new();
        let all = nodes(0, 6);
        // Every push below: `all` outlives the queue's use and each node is in
        // the queue at most once at a time.
        let push = |i: usize| {
            // SAFETY: see above.
            unsafe { q.push(task_ptr(&all[i])) }
        };
        push(0);
        push(1);
        let mut list = q.pop_all();
        assert_eq!(list.next().map(|t| node_of(t).seq), Some(0));
        push(2);
        push(3);
        // The list already detached from the queue is unaffected by new pushes.
        assert_eq!(list.next().map(|t| node_of(t).seq), Some(1));
        assert_eq!(list.next(), None);
        assert_eq!(list.next(), None);
        // Node 0 was handed out, so it may be pushed again.
        push(4);
        push(0);
        let seqs: Vec<usize> = q.pop_all().map(|t| node_of(t).seq).collect();
        assert_eq!(seqs, vec![2, 3, 4, 0]);
    }

    #[test]
    fn yielded_node_can_be_repushed_during_iteration() {
        let q = Mpsc::new();
        let all = nodes(0, 3);
        for node in &all {
            // SAFETY: nodes outlive the test; each is queued once.
            unsafe { q.push(task_ptr(node)) };
        }
        let mut seen = Vec::new();
        for task in q.pop_all() {
            seen.push(node_of(task).seq);
            // Reusing the node (overwriting `next`) must not disturb the walk.
            // SAFETY: the node was just handed out, so it is free to re-push.
            unsafe { q.push(task) };
        }
        assert_eq!(seen, vec![0, 1, 2]);
        let again: Vec<usize> = q.pop_all().map(|t| node_of(t).seq).collect();
        assert_eq!(again, vec![0, 1, 2]);
    }

    #[test]
    fn multi_producer_stress() {
        const PRODUCERS: usize = 4;
        const PER_PRODUCER: usize = if cfg!(miri) { 40 } else { 20_000 };

        let q = Mpsc::new();
        let all: Vec<Vec<Node>> = (0..PRODUCERS).map(|p| nodes(p, PER_PRODUCER)).collect();
        let started = AtomicUsize::new(0);

        let mut received: Vec<Vec<usize>> = (0..PRODUCERS).map(|_| Vec::new()).collect();
        thread::scope(|s| {
            for mine in &all {
                let (q, started) = (&q, &started);
                s.spawn(move || {
                    started.fetch_add(1, Ordering::Relaxed);
                    for node in mine {
                        // SAFETY: `all` keeps every node alive for the whole
                        // scope; each node is pushed exactly once.
                        unsafe { q.push(task_ptr(node)) };
                    }
                });
            }
            // Consume concurrently with the producers.
            let mut total = 0;
            while total < PRODUCERS * PER_PRODUCER {
                for task in q.pop_all() {
                    let node = node_of(task);
                    received[node.producer].push(node.seq);
                    total += 1;
                }
                thread::yield_now();
            }
        });

        assert_eq!(started.load(Ordering::Relaxed), PRODUCERS);
        assert_eq!(q.pop_all().count(), 0);
        for seqs in &received {
            // Every node exactly once, in each producer's push order.
            assert_eq!(seqs.len(), PER_PRODUCER);
            assert!(seqs.iter().enumerate().all(|(i, &s)| i == s));
        }
        drop(all);
    }
}
