//! A thread pool for running blocking work off the event loop.
//!
//! Event loops hand the pool work that cannot be done asynchronously by the
//! backend (blocking file I/O, `stat`, DNS and the like). Work is described by
//! intrusive [`Task`] nodes embedded in memory the caller owns, so scheduling
//! never allocates. A [`ThreadPool`] handle is cheap to clone and can be shared
//! by several loops on different threads; worker threads are started on
//! demand, up to [`Config::max_threads`], each with [`Config::stack_size`]
//! bytes of stack.
//!
//! # Design
//!
//! - **Global run queue.** [`ThreadPool::schedule`] links a whole [`Batch`]
//!   onto an intrusive lock-free stack with a single compare-and-swap. The
//!   stack is kept newest-first; a worker takes the *entire* chain with one
//!   atomic swap (no ABA, no hazard pointers) and reverses it privately, which
//!   yields the tasks in scheduling (FIFO) order.
//! - **Per-worker queues.** The worker keeps the first task to run, moves up
//!   to 256 of the rest into its own bounded ring buffer, and parks any
//!   remainder as one FIFO chain in its *overflow* slot. Other workers steal
//!   half of a ring buffer with a compare-and-swap on its head, or take a
//!   whole overflow chain with one swap. A worker drains its ring buffer,
//!   then its overflow, then the global queue, then steals, so older work is
//!   always preferred and nothing already taken can be overtaken forever.
//! - **Sleeping and spawning.** A single atomic word holds the number of
//!   spawned threads, the number of idle (sleeping) threads, a `NOTIFIED`
//!   flag (a wake-up or spawn is already on its way) and a `SHUTDOWN` flag.
//!   After queueing work, a producer wakes one idle worker, or else spawns a
//!   thread if fewer than `max_threads` exist, unless a wake-up is already
//!   pending. A worker that obtains more work than the one task it runs
//!   notifies in turn, so parallelism ramps up with the amount of work.
//!   Sleeping uses a `Mutex` + `Condvar` semaphore; it is never touched on
//!   the queueing path unless a sleeper must be woken.
//! - **Shutdown.** Dropping the last [`ThreadPool`] handle sets `SHUTDOWN`
//!   and wakes every sleeper. Workers keep running tasks until a search that
//!   started after they saw `SHUTDOWN` finds nothing, then exit; the drop
//!   joins them. Every task scheduled before the drop is therefore run.
//!
//! # Failure to spawn a thread
//!
//! If the OS refuses to create a worker thread, the tasks stay queued: the
//! existing workers (if any) run them, and the next [`ThreadPool::schedule`]
//! tries to spawn again. Tasks are never run inline on the scheduling thread.
//! If no worker could ever be started, dropping the pool makes one last spawn
//! attempt; should that fail too, the queued tasks are never run.
//!
//! # Panics in tasks
//!
//! A panic escaping a task's `run` function is caught on the worker (after the
//! panic hook has reported it); the worker then carries on with other tasks,
//! so the pool keeps its capacity.

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

/// Intrusive task node, embedded in memory owned by the caller.
///
/// Put it as the **first field** of a `#[repr(C)]` struct; the `run` function
/// then casts the `NonNull<Task>` it receives back to that struct. Build the
/// `NonNull<Task>` from a pointer to the *whole* struct (e.g.
/// `NonNull::from(&outer).cast::<Task>()`), not from a reference to the
/// `task` field, so the pointer is allowed to reach the other fields.
#[repr(C)]
pub(crate) struct Task {
    /// Intrusive link, owned by whichever queue currently holds the task.
    pub(crate) next: AtomicPtr<Task>,
    /// Called exactly once, on a pool thread, when the task runs. The pool
    /// does not touch the task after calling it, so `run` may free or reuse
    /// (even reschedule) the task's memory.
    pub(crate) run: unsafe fn(NonNull<Task>),
}

impl Task {
    /// Creates an unlinked task that will call `run` when it is executed.
    pub(crate) const fn new(run: unsafe fn(NonNull<Task>)) -> Self {
        Self {
            next: AtomicPtr::new(ptr::null_mut()),
            run,
        }
    }
}

/// A batch of tasks linked through [`Task::next`], not yet shared with any
/// other thread.
///
/// Scheduling a batch costs one compare-and-swap however many tasks it holds.
/// Tasks of a batch are started in the order they were pushed.
pub(crate) struct Batch {
    /// Most recently pushed task (null when empty); links run newest-first.
    head: *mut Task,
    /// First pushed task (null when empty); its `next` is set when the batch
    /// is scheduled.
    tail: *mut Task,
    /// Number of tasks in the batch.
    len: usize,
}

impl Batch {
    /// Creates an empty batch.
    pub(crate) fn new() -> Self {
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
    pub(crate) unsafe fn push(&mut self, task: NonNull<Task>) {
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

    /// Number of tasks in the batch.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds no task.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Thread pool configuration, for [`ThreadPool::new`].
///
/// Start from [`Config::default()`] and adjust the fields, or chain the
/// builder methods of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Most worker threads the pool will ever run at once; threads are
    /// spawned on demand up to this number. Must be at least 1. Defaults to
    /// [`std::thread::available_parallelism`] (1 if unknown). Values above
    /// 32,767 are clamped to 32,767.
    pub max_threads: usize,
    /// Stack size in bytes of each worker thread. Defaults to 1 MiB. Values
    /// below the platform minimum are rounded up by the OS/std.
    pub stack_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_threads: thread::available_parallelism().map_or(1, NonZeroUsize::get),
            stack_size: 1024 * 1024,
        }
    }
}

impl Config {
    /// Sets [`Config::max_threads`].
    #[must_use]
    pub fn max_threads(mut self, max_threads: usize) -> Self {
        self.max_threads = max_threads;
        self
    }

    /// Sets [`Config::stack_size`].
    #[must_use]
    pub fn stack_size(mut self, stack_size: usize) -> Self {
        self.stack_size = stack_size;
        self
    }
}

/// A handle to a thread pool; clone it to share the pool (it is `Send` and
/// `Sync`).
///
/// Dropping the last handle shuts the pool down: every task scheduled so far
/// still runs, then the worker threads exit and the drop joins them. (If the
/// last handle is dropped on one of the pool's own threads, e.g. by a task,
/// that thread is not joined; it exits on its own once the work is done.)
#[derive(Clone)]
pub struct ThreadPool {
    inner: Arc<Inner>,
}

impl ThreadPool {
    /// Creates a thread pool. No thread is started until work is scheduled.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if `config.max_threads` is 0.
    pub fn new(config: Config) -> io::Result<ThreadPool> {
        if config.max_threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "thread pool max_threads must be at least 1",
            ));
        }
        let core = Core {
            state: Padded(AtomicUsize::new(0)),
            injector: Padded(AtomicPtr::new(ptr::null_mut())),
            workers: AtomicPtr::new(ptr::null_mut()),
            max_threads: config.max_threads.min(MAX_THREADS),
            stack_size: config.stack_size,
            sleep: Semaphore::new(),
            threads: Mutex::new(Vec::new()),
            threads_changed: Condvar::new(),
        };
        Ok(ThreadPool {
            inner: Arc::new(Inner {
                core: Arc::new(core),
            }),
        })
    }

    /// Queues every task of `batch` to run on the pool, with one atomic
    /// compare-and-swap, and wakes or spawns a worker if needed.
    ///
    /// Lock-free and allocation-free unless a worker must be woken (a short
    /// critical section) or a new thread must be spawned.
    ///
    /// # Safety
    ///
    /// Each task in the batch must stay valid and unmoved (with no `&mut`
    /// reference to it) until its `run` function is called. `run` is called
    /// exactly once per task, on a pool thread, and may be called before this
    /// function returns. `run` must be safe to call from another thread with
    /// the task pointer (anything it touches must be `Send`/`Sync` as
    /// appropriate).
    ///
    /// Because a task may run (and its memory be freed) before this returns,
    /// `self` must not live inside the memory of a task of the batch: a task
    /// that reschedules itself through a handle it stores should clone that
    /// handle first and schedule through the clone.
    pub(crate) unsafe fn schedule(&self, batch: Batch) {
        let (Some(head), Some(tail)) = (NonNull::new(batch.head), NonNull::new(batch.tail)) else {
            return;
        };
        let injector = &self.inner.core.injector;
        let mut top = injector.load(Ordering::Relaxed);
        loop {
            // SAFETY: `tail` is a task of the batch, valid per this function's
            // contract and still private to us until the exchange succeeds.
            unsafe { tail.as_ref() }.next.store(top, Ordering::Relaxed);
            // `SeqCst` success (a superset of `Release`) publishes the batch;
            // see `Core::notify` for why the order matters for wake-ups.
            match injector.compare_exchange_weak(
                top,
                head.as_ptr(),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => top = current,
            }
        }
        self.inner.core.notify();
    }

    /// The most threads this pool will run ([`Config::max_threads`], after
    /// clamping).
    pub fn max_threads(&self) -> usize {
        self.inner.core.max_threads
    }

    /// How many worker threads have been spawned so far (never more than
    /// [`max_threads`](ThreadPool::max_threads)). Workers live until the pool
    /// shuts down, so this only grows, except when a spawn fails.
    pub fn spawned_threads(&self) -> usize {
        spawned(self.inner.core.state.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("max_threads", &self.max_threads())
            .field("spawned_threads", &self.spawned_threads())
            .field("stack_size", &self.inner.core.stack_size)
            .finish()
    }
}

/// Shared by all [`ThreadPool`] handles (not by the workers); dropping it
/// shuts the pool down.
struct Inner {
    core: Arc<Core>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let core = &self.core;
        // If tasks are still queued, make sure some worker exists to run them
        // (spawns may have failed earlier); this is the last chance.
        if !core.injector.load(Ordering::SeqCst).is_null() {
            core.notify();
        }
        // From now on no thread is spawned and no worker goes to sleep.
        core.state.fetch_or(SHUTDOWN, Ordering::SeqCst);
        core.sleep.shutdown();
        core.join_workers();
    }
}

// ---------------------------------------------------------------------------
// Pool state word
// ---------------------------------------------------------------------------

/// Set once the last handle is dropped.
const SHUTDOWN: usize = 1;
/// A wake-up or spawn was issued and its target has not started searching.
const NOTIFIED: usize = 1 << 1;
/// Width of the idle and spawned counters (fits a 32-bit `usize`).
const COUNT_BITS: u32 = 15;
const COUNT_MASK: usize = (1 << COUNT_BITS) - 1;
const IDLE_SHIFT: u32 = 2;
const SPAWNED_SHIFT: u32 = IDLE_SHIFT + COUNT_BITS;
/// One idle worker.
const IDLE_ONE: usize = 1 << IDLE_SHIFT;
/// One spawned worker.
const SPAWNED_ONE: usize = 1 << SPAWNED_SHIFT;
/// Largest supported `max_threads`.
const MAX_THREADS: usize = COUNT_MASK;

fn idle(state: usize) -> usize {
    (state >> IDLE_SHIFT) & COUNT_MASK
}

fn spawned(state: usize) -> usize {
    (state >> SPAWNED_SHIFT) & COUNT_MASK
}

/// Keeps hot atomics on their own cache line.
#[repr(align(64))]
struct Padded<T>(T);

impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Locks `mutex`, ignoring poisoning (nothing panics while these are held, and
/// the protected data stays consistent anyway).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pool proper, shared by the handles' [`Inner`] and every worker.
struct Core {
    /// Spawned/idle counters and flags, see the constants above.
    state: Padded<AtomicUsize>,
    /// Global run queue: intrusive stack of tasks, newest first.
    injector: Padded<AtomicPtr<Task>>,
    /// Registry of every worker ever started (push-only list linked through
    /// `Worker::next`), used for stealing. Freed when the `Core` is dropped.
    workers: AtomicPtr<Worker>,
    max_threads: usize,
    stack_size: usize,
    /// Where idle workers sleep.
    sleep: Semaphore,
    /// Join handles of spawned workers, collected by `Inner::drop`.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Signalled when a handle is added or a spawn fails.
    threads_changed: Condvar,
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

/// Outcome of [`Core::wait_for_work`].
enum Wake {
    /// Found a task; the flag says whether a wake-up permit was consumed.
    Task(NonNull<Task>, bool),
    /// Woken up (or shutting down): search again.
    Woken,
    /// Shutting down and no work is left: exit the thread.
    Exit,
}

impl Core {
    /// Makes sure someone will pick up newly queued work: wakes an idle
    /// worker, or spawns one if none is idle and the limit allows, unless a
    /// wake-up is already on its way (whose target will search afterwards).
    fn notify(self: &Arc<Self>) {
        self.notify_with(true);
    }

    fn notify_with(self: &Arc<Self>, allow_spawn: bool) {
        // Dekker-style pairing with `wait_for_work`: our queue write (before
        // this fence) and a worker's idle registration (before its fence)
        // cannot both be missed, so either we see the idle worker or it sees
        // the work when it re-checks.
        fence(Ordering::SeqCst);
        let mut state = self.state.load(Ordering::SeqCst);
        let spawn = loop {
            if state & (SHUTDOWN | NOTIFIED) != 0 {
                return;
            }
            let (new, spawn) = if idle(state) > 0 {
                ((state - IDLE_ONE) | NOTIFIED, false)
            } else if allow_spawn && spawned(state) < self.max_threads {
                ((state + SPAWNED_ONE) | NOTIFIED, true)
            } else {
                // Every worker is busy and will look for work again.
                return;
            };
            match self
                .state
                .compare_exchange_weak(state, new, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break spawn,
                Err(current) => state = current,
            }
        };
        if spawn {
            self.spawn_worker();
        } else {
            self.sleep.post();
        }
    }

    /// Starts a worker thread; its slot in `spawned` is already reserved.
    fn spawn_worker(self: &Arc<Self>) {
        let core = Arc::clone(self);
        let result = thread::Builder::new()
            .name("xev-pool".to_owned())
            .stack_size(self.stack_size)
            .spawn(move || worker_main(core));
        let mut threads = lock(&self.threads);
        let failed = match result {
            Ok(handle) => {
                threads.push(handle);
                false
            }
            Err(_) => {
                // Give the slot back and clear our pending notification; done
                // under the lock so `join_workers` sees a consistent count.
                let _ = self
                    .state
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                        Some((s - SPAWNED_ONE) & !NOTIFIED)
                    });
                true
            }
        };
        drop(threads);
        self.threads_changed.notify_all();
        if failed {
            // The work stays queued. Hand it to an idle worker if there is
            // one; otherwise the busy workers will find it, or the next
            // `schedule` retries the spawn.
            self.notify_with(false);
        }
    }

    /// Called by `Inner::drop` after `SHUTDOWN` is set: joins every worker
    /// (except the calling thread, if it is one).
    fn join_workers(&self) {
        let me = thread::current().id();
        let mut joined = 0;
        let mut threads = lock(&self.threads);
        loop {
            if let Some(handle) = threads.pop() {
                drop(threads);
                if handle.thread().id() != me {
                    // Workers catch task panics, so this cannot fail in
                    // practice; nothing useful to do if it did.
                    let _ = handle.join();
                }
                joined += 1;
                threads = lock(&self.threads);
                continue;
            }
            // No spawn can start after SHUTDOWN; wait for those in flight to
            // either hand us their handle or give their slot back.
            if joined >= spawned(self.state.load(Ordering::SeqCst)) {
                return;
            }
            threads = self
                .threads_changed
                .wait(threads)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Allocates and publishes the calling worker's queues.
    fn register_worker(&self) -> &Worker {
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
    fn find_task(self: &Arc<Self>, me: &Worker) -> Option<NonNull<Task>> {
        if let Some(task) = me.buffer.pop() {
            return Some(task);
        }
        if let Some((task, _)) = me.adopt(me.overflow.swap(ptr::null_mut(), Ordering::Acquire)) {
            return Some(task);
        }
        // `SeqCst` so the re-check in `wait_for_work` orders against
        // `schedule`'s exchange.
        if !self.injector.load(Ordering::SeqCst).is_null() {
            // `Acquire` pairs with the `schedule` exchanges (one release
            // sequence), making every task of the chain visible.
            let chain = reverse(self.injector.swap(ptr::null_mut(), Ordering::Acquire));
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

    /// Called when `find_task` found nothing: registers as idle, re-checks,
    /// then sleeps until notified. Exits only after a search that started
    /// after `SHUTDOWN` was seen came back empty.
    fn wait_for_work(self: &Arc<Self>, me: &Worker) -> Wake {
        let mut state = self.state.load(Ordering::SeqCst);
        loop {
            if state & SHUTDOWN != 0 {
                // Everything scheduled before shutdown happens-before the
                // flag we just read, so this search sees all of it.
                return match self.find_task(me) {
                    Some(task) => Wake::Task(task, false),
                    None => Wake::Exit,
                };
            }
            match self.state.compare_exchange_weak(
                state,
                state + IDLE_ONE,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(current) => state = current,
            }
        }
        // Pairs with the fence in `notify_with`.
        fence(Ordering::SeqCst);
        if let Some(task) = self.find_task(me) {
            // Withdraw the idle registration. If a notifier already claimed
            // an idle worker (the count is anonymous), it has posted, or is
            // about to post, a permit that accounts for us: take it.
            let mut state = self.state.load(Ordering::SeqCst);
            loop {
                if idle(state) == 0 {
                    self.sleep.wait();
                    return Wake::Task(task, true);
                }
                match self.state.compare_exchange_weak(
                    state,
                    state - IDLE_ONE,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => return Wake::Task(task, false),
                    Err(current) => state = current,
                }
            }
        }
        self.sleep.wait();
        Wake::Woken
    }

    /// Clears `NOTIFIED` once the notified worker is about to search, so
    /// later work triggers new notifications.
    fn clear_notified(&self) {
        self.state.fetch_and(!NOTIFIED, Ordering::SeqCst);
        // Notifiers that saw `NOTIFIED` skipped waking anyone; their work was
        // queued before their fence, so our search after this fence sees it.
        fence(Ordering::SeqCst);
    }
}

/// Body of every worker thread.
fn worker_main(core: Arc<Core>) {
    let me = core.register_worker();
    // Spawned by a notification: take it over before searching.
    let mut notified = true;
    loop {
        if notified {
            core.clear_notified();
            notified = false;
        }
        if let Some(task) = core.find_task(me) {
            run_task(task);
            continue;
        }
        match core.wait_for_work(me) {
            Wake::Task(task, was_notified) => {
                if was_notified {
                    // We took over a wake-up without searching; pass it on so
                    // work queued while it was pending is not left waiting
                    // behind the task we are about to run. (Rare race.)
                    core.clear_notified();
                    core.notify();
                }
                run_task(task);
            }
            Wake::Woken => notified = true,
            Wake::Exit => return,
        }
    }
}

/// Runs one task, containing any panic it raises.
fn run_task(task: NonNull<Task>) {
    // SAFETY: `schedule`'s contract keeps the task valid until `run` is
    // called; this is the only call, and the pool never touches it again.
    let run = unsafe { task.as_ref() }.run;
    // SAFETY: `run` is the task's own function, called exactly once with its
    // task on a pool thread, as `schedule`'s contract allows.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| unsafe { run(task) }));
    // The panic hook already reported any panic; keep the worker alive.
    drop(outcome);
}

/// Reverses a newest-first chain (as found on the global queue) into FIFO
/// order. The caller must own the chain (it was detached with a swap).
fn reverse(mut node: *mut Task) -> *mut Task {
    let mut reversed: *mut Task = ptr::null_mut();
    while let Some(current) = NonNull::new(node) {
        // SAFETY: chains come from `schedule`, whose contract keeps their
        // tasks valid until run; the caller owns this detached chain.
        let task = unsafe { current.as_ref() };
        node = task.next.load(Ordering::Relaxed);
        task.next.store(reversed, Ordering::Relaxed);
        // Keep the original pointer (not one derived from `task`): it carries
        // the provenance of the caller's whole enclosing struct.
        reversed = current.as_ptr();
    }
    reversed
}

// ---------------------------------------------------------------------------
// Per-worker queues
// ---------------------------------------------------------------------------

/// A worker's queues, reachable by every other worker through the registry.
struct Worker {
    /// Bounded ring buffer: the owner pushes and pops, others steal.
    buffer: Buffer,
    /// FIFO chain of tasks that did not fit in `buffer`. Only the owner sets
    /// it (and only while it is null); the owner or a thief takes it whole.
    overflow: AtomicPtr<Task>,
    /// Next (older) entry of the registry.
    next: AtomicPtr<Worker>,
}

impl Worker {
    fn new() -> Self {
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
    fn adopt(&self, chain: *mut Task) -> Option<(NonNull<Task>, bool)> {
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

const BUFFER_CAP: usize = 256;
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
struct Buffer {
    head: Padded<AtomicUsize>,
    tail: Padded<AtomicUsize>,
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
    fn pop(&self) -> Option<NonNull<Task>> {
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
    fn steal_into(&self, dst: &Buffer) -> Option<(NonNull<Task>, bool)> {
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

// ---------------------------------------------------------------------------
// Sleeping
// ---------------------------------------------------------------------------

/// Counting semaphore that idle workers sleep on, with a shutdown override.
struct Semaphore {
    state: Mutex<SemaphoreState>,
    wakeup: Condvar,
}

struct SemaphoreState {
    permits: usize,
    shutdown: bool,
}

impl Semaphore {
    fn new() -> Self {
        Self {
            state: Mutex::new(SemaphoreState {
                permits: 0,
                shutdown: false,
            }),
            wakeup: Condvar::new(),
        }
    }

    /// Blocks until a permit is available (and takes it) or shutdown starts.
    fn wait(&self) {
        let mut state = lock(&self.state);
        loop {
            if state.permits > 0 {
                state.permits -= 1;
                return;
            }
            if state.shutdown {
                return;
            }
            state = self
                .wakeup
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Adds a permit, waking one sleeper.
    fn post(&self) {
        lock(&self.state).permits += 1;
        self.wakeup.notify_one();
    }

    /// Wakes every sleeper, now and in the future.
    fn shutdown(&self) {
        lock(&self.state).shutdown = true;
        self.wakeup.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    /// Task that counts its runs.
    #[repr(C)]
    struct Counted {
        task: Task,
        runs: AtomicUsize,
        done: Arc<AtomicUsize>,
    }

    unsafe fn count(task: NonNull<Task>) {
        // SAFETY: tasks using this function are the first field of a
        // `#[repr(C)] Counted` that the test keeps alive until they ran.
        let counted = unsafe { task.cast::<Counted>().as_ref() };
        counted.runs.fetch_add(1, Ordering::Relaxed);
        // Last access: the test may free the node once `done` moves.
        counted.done.fetch_add(1, Ordering::Release);
    }

    fn counted(n: usize, done: &Arc<AtomicUsize>) -> Vec<Counted> {
        (0..n)
            .map(|_| Counted {
                task: Task::new(count),
                runs: AtomicUsize::new(0),
                done: Arc::clone(done),
            })
            .collect()
    }

    fn task_of<T>(node: &T) -> NonNull<Task> {
        // Derived from the whole node, so `run` may reach its other fields.
        NonNull::from(node).cast::<Task>()
    }

    fn pool(max_threads: usize) -> ThreadPool {
        ThreadPool::new(Config::default().max_threads(max_threads)).unwrap()
    }

    fn schedule_each<T>(pool: &ThreadPool, nodes: &[T], batch_size: usize) {
        for chunk in nodes.chunks(batch_size) {
            let mut batch = Batch::new();
            for node in chunk {
                // SAFETY: the test keeps every node alive (and unborrowed
                // mutably) until all of them ran; each is scheduled once.
                unsafe { batch.push(task_of(node)) };
            }
            assert_eq!(batch.len(), chunk.len());
            // SAFETY: as above.
            unsafe { pool.schedule(batch) };
        }
    }

    fn wait_for(counter: &AtomicUsize, target: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while counter.load(Ordering::Acquire) < target {
            assert!(Instant::now() < deadline, "tasks did not run in time");
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn assert_ran_once(nodes: &[Counted]) {
        assert!(nodes.iter().all(|n| n.runs.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn handle_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<ThreadPool>();
    }

    #[test]
    fn config_defaults_and_validation() {
        let config = Config::default();
        assert!(config.max_threads >= 1);
        assert_eq!(config.stack_size, 1024 * 1024);
        let err = ThreadPool::new(Config::default().max_threads(0)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let big = ThreadPool::new(Config::default().max_threads(usize::MAX)).unwrap();
        assert_eq!(big.max_threads(), MAX_THREADS);
        let pool = pool(3);
        assert_eq!(pool.max_threads(), 3);
        assert_eq!(pool.spawned_threads(), 0);
        assert!(format!("{pool:?}").contains("max_threads: 3"));
    }

    #[test]
    fn empty_batch_is_a_no_op() {
        let pool = pool(2);
        let batch = Batch::new();
        assert!(batch.is_empty());
        // SAFETY: no task in it.
        unsafe { pool.schedule(batch) };
        assert_eq!(pool.spawned_threads(), 0);
    }

    #[test]
    fn many_producers_each_task_runs_once() {
        const PRODUCERS: usize = 4;
        const PER_PRODUCER: usize = if cfg!(miri) { 60 } else { 25_000 };
        let done = Arc::new(AtomicUsize::new(0));
        let nodes: Vec<Vec<Counted>> = (0..PRODUCERS)
            .map(|_| counted(PER_PRODUCER, &done))
            .collect();
        let pool = pool(4);
        thread::scope(|s| {
            for (i, mine) in nodes.iter().enumerate() {
                let pool = pool.clone();
                s.spawn(move || {
                    // Mix single-task schedules with batches of various sizes.
                    let sizes = [1, 7, 64, 300];
                    let mut start = 0;
                    let mut k = i;
                    while start < mine.len() {
                        let end = (start + sizes[k % sizes.len()]).min(mine.len());
                        schedule_each(&pool, &mine[start..end], end - start);
                        start = end;
                        k += 1;
                    }
                });
            }
        });
        wait_for(&done, PRODUCERS * PER_PRODUCER);
        assert!(pool.spawned_threads() <= 4);
        drop(pool);
        assert_eq!(done.load(Ordering::Relaxed), PRODUCERS * PER_PRODUCER);
        for mine in &nodes {
            assert_ran_once(mine);
        }
    }

    /// Records the order tasks run in.
    #[repr(C)]
    struct Ordered {
        task: Task,
        index: usize,
        log: Arc<Mutex<Vec<usize>>>,
    }

    unsafe fn record(task: NonNull<Task>) {
        // SAFETY: only used for `Ordered` nodes the test keeps alive.
        let node = unsafe { task.cast::<Ordered>().as_ref() };
        lock(&node.log).push(node.index);
    }

    #[test]
    fn single_worker_runs_batches_in_fifo_order() {
        let n = if cfg!(miri) { 40 } else { 2_000 };
        let log = Arc::new(Mutex::new(Vec::new()));
        let nodes: Vec<Ordered> = (0..n)
            .map(|index| Ordered {
                task: Task::new(record),
                index,
                log: Arc::clone(&log),
            })
            .collect();
        let pool = pool(1);
        // Batches larger than the ring buffer exercise the overflow chain.
        let mut start = 0;
        for size in [1, 3, 700, 1, 50].iter().cycle() {
            if start == n {
                break;
            }
            let end = (start + size).min(n);
            schedule_each(&pool, &nodes[start..end], end - start);
            start = end;
        }
        drop(pool);
        let log = lock(&log);
        assert_eq!(*log, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn spawn_limit_is_respected() {
        let n = if cfg!(miri) { 20 } else { 400 };
        let done = Arc::new(AtomicUsize::new(0));
        let nodes = counted(n, &done);
        let pool = pool(2);
        for node in nodes.chunks(1) {
            schedule_each(&pool, node, 1);
            assert!(pool.spawned_threads() <= 2);
        }
        wait_for(&done, n);
        let spawned = pool.spawned_threads();
        assert!((1..=2).contains(&spawned), "spawned {spawned}");
        drop(pool);
        assert_ran_once(&nodes);
    }

    /// Task that blocks until released, to keep workers busy.
    #[repr(C)]
    struct Blocker {
        task: Task,
        started: AtomicUsize,
        release: AtomicBool,
        threads: Mutex<Vec<thread::ThreadId>>,
    }

    unsafe fn block(task: NonNull<Task>) {
        // SAFETY: only used for `Blocker` nodes the test keeps alive.
        let node = unsafe { task.cast::<Blocker>().as_ref() };
        lock(&node.threads).push(thread::current().id());
        node.started.fetch_add(1, Ordering::SeqCst);
        while !node.release.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn threads_are_spawned_on_demand_up_to_the_limit() {
        let pool = pool(3);
        // One blocker per task node: each node is its own task.
        let blockers: Vec<Blocker> = (0..5)
            .map(|_| Blocker {
                task: Task::new(block),
                started: AtomicUsize::new(0),
                release: AtomicBool::new(false),
                threads: Mutex::new(Vec::new()),
            })
            .collect();
        // While the first blocks, a second task needs a second thread.
        schedule_each(&pool, &blockers[..1], 1);
        wait_for(&blockers[0].started, 1);
        assert_eq!(pool.spawned_threads(), 1);
        schedule_each(&pool, &blockers[1..2], 1);
        wait_for(&blockers[1].started, 1);
        assert_eq!(pool.spawned_threads(), 2);
        // Three more blocking tasks with a limit of three threads: only one
        // of them can start until the others are released.
        schedule_each(&pool, &blockers[2..], 3);
        let started = || {
            blockers
                .iter()
                .filter(|b| b.started.load(Ordering::SeqCst) > 0)
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while started() < 3 {
            assert!(Instant::now() < deadline);
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 50 }));
        assert_eq!(started(), 3);
        assert_eq!(pool.spawned_threads(), 3);
        for b in &blockers {
            b.release.store(true, Ordering::SeqCst);
        }
        drop(pool);
        assert!(blockers
            .iter()
            .all(|b| b.started.load(Ordering::SeqCst) == 1));
        // Each ran on a pool thread, and there were at most three of them.
        let ids: HashSet<_> = blockers
            .iter()
            .flat_map(|b| lock(&b.threads).clone())
            .collect();
        assert!(!ids.contains(&thread::current().id()));
        assert!(ids.len() <= 3);
    }

    /// Uses a large stack frame.
    #[repr(C)]
    struct DeepStack {
        task: Task,
        sum: AtomicUsize,
        done: AtomicUsize,
    }

    unsafe fn use_big_stack(task: NonNull<Task>) {
        // SAFETY: only used for the `DeepStack` node the test keeps alive.
        let node = unsafe { task.cast::<DeepStack>().as_ref() };
        let mut buf = [0u8; 8 << 20];
        for (i, byte) in buf.iter_mut().enumerate().step_by(4096) {
            *byte = (i / 4096) as u8;
        }
        let buf = std::hint::black_box(&buf);
        let sum = buf.iter().step_by(4096).map(|&b| b as usize).sum();
        node.sum.store(sum, Ordering::Relaxed);
        node.done.store(1, Ordering::Release);
    }

    #[test]
    #[cfg_attr(miri, ignore = "8 MiB stack frame is too slow under Miri")]
    fn stack_size_is_honoured() {
        let pool = ThreadPool::new(Config::default().max_threads(1).stack_size(32 << 20)).unwrap();
        let node = Box::new(DeepStack {
            task: Task::new(use_big_stack),
            sum: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        });
        let mut batch = Batch::new();
        // SAFETY: `node` outlives the pool, which is dropped (and joined)
        // below before `node`.
        unsafe { batch.push(task_of(&*node)) };
        // SAFETY: as above.
        unsafe { pool.schedule(batch) };
        drop(pool);
        assert_eq!(node.done.load(Ordering::Acquire), 1);
        let expected: usize = (0..(8 << 20) / 4096).map(|i| (i as u8) as usize).sum();
        assert_eq!(node.sum.load(Ordering::Relaxed), expected);
    }

    /// Sleeps a little, to keep work pending at shutdown.
    #[repr(C)]
    struct Slow {
        task: Task,
        runs: AtomicUsize,
    }

    unsafe fn slow(task: NonNull<Task>) {
        // SAFETY: only used for `Slow` nodes the test keeps alive.
        let node = unsafe { task.cast::<Slow>().as_ref() };
        thread::sleep(Duration::from_micros(200));
        node.runs.fetch_add(1, Ordering::Relaxed);
    }

    #[test]
    fn shutdown_runs_every_pending_task() {
        let n = if cfg!(miri) { 30 } else { 1_000 };
        let nodes: Vec<Slow> = (0..n)
            .map(|_| Slow {
                task: Task::new(slow),
                runs: AtomicUsize::new(0),
            })
            .collect();
        let pool = pool(2);
        let other = pool.clone();
        schedule_each(&pool, &nodes[..n / 2], 10);
        schedule_each(&other, &nodes[n / 2..], 1);
        drop(other);
        // Dropping the last handle waits for all of them.
        drop(pool);
        assert!(nodes
            .iter()
            .all(|node| node.runs.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn dropping_an_idle_or_unused_pool_returns() {
        drop(pool(4));
        let done = Arc::new(AtomicUsize::new(0));
        let nodes = counted(3, &done);
        let pool = pool(4);
        schedule_each(&pool, &nodes, 3);
        wait_for(&done, 3);
        // Let the workers go to sleep before shutting down.
        thread::sleep(Duration::from_millis(10));
        drop(pool);
        assert_ran_once(&nodes);
    }

    /// Reschedules itself `remaining` times, reusing its own memory.
    #[repr(C)]
    struct Chain {
        task: Task,
        remaining: AtomicUsize,
        pool: ThreadPool,
        done: AtomicBool,
    }

    unsafe fn chain(task: NonNull<Task>) {
        // SAFETY: only used for `Chain` nodes the test keeps alive.
        let node = unsafe { task.cast::<Chain>().as_ref() };
        if node.remaining.fetch_sub(1, Ordering::Relaxed) == 0 {
            node.done.store(true, Ordering::Release);
            return;
        }
        // Schedule through a local handle: once the task is queued it may
        // run and finish on another thread, and the test may free the node
        // (and the handle inside it) before `schedule` returns.
        let pool = node.pool.clone();
        let mut batch = Batch::new();
        // SAFETY: the pool handed the task back by calling `run`, so it may
        // be scheduled again; the test keeps it alive until `done`.
        unsafe { batch.push(task) };
        // SAFETY: as above; `pool` is not inside the task's memory.
        unsafe { pool.schedule(batch) };
    }

    #[test]
    fn tasks_can_reschedule_themselves() {
        let rounds = if cfg!(miri) { 20 } else { 2_000 };
        let pool = pool(2);
        let nodes: Vec<Chain> = (0..3)
            .map(|_| Chain {
                task: Task::new(chain),
                remaining: AtomicUsize::new(rounds),
                pool: pool.clone(),
                done: AtomicBool::new(false),
            })
            .collect();
        schedule_each(&pool, &nodes, 3);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !nodes.iter().all(|n| n.done.load(Ordering::Acquire)) {
            assert!(Instant::now() < deadline);
            thread::sleep(Duration::from_millis(1));
        }
        // Drop the nodes' handles, wait for workers to drop the local handles
        // they scheduled with, so that ours is the last one and joins them.
        drop(nodes);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Arc::strong_count(&pool.inner) > 1 {
            assert!(Instant::now() < deadline);
            thread::sleep(Duration::from_millis(1));
        }
        drop(pool);
    }

    /// Panics when run.
    #[repr(C)]
    struct Bomb {
        task: Task,
    }

    unsafe fn explode(_: NonNull<Task>) {
        panic!("task panicked on purpose (expected by the test)");
    }

    #[test]
    fn a_panicking_task_does_not_take_the_pool_down() {
        let pool = pool(1);
        let bomb = Box::new(Bomb {
            task: Task::new(explode),
        });
        let done = Arc::new(AtomicUsize::new(0));
        let nodes = counted(5, &done);
        let mut batch = Batch::new();
        // SAFETY: `bomb` outlives the pool (dropped below first).
        unsafe { batch.push(task_of(&*bomb)) };
        // SAFETY: as above.
        unsafe { pool.schedule(batch) };
        schedule_each(&pool, &nodes, 2);
        wait_for(&done, 5);
        assert_eq!(pool.spawned_threads(), 1);
        drop(pool);
        assert_ran_once(&nodes);
    }

    /// Drops the pool handle it holds when run.
    #[repr(C)]
    struct LastHandle {
        task: Task,
        pool: Mutex<Option<ThreadPool>>,
        dropped: AtomicBool,
    }

    unsafe fn drop_handle(task: NonNull<Task>) {
        // SAFETY: only used for the `LastHandle` node the test keeps alive.
        let node = unsafe { task.cast::<LastHandle>().as_ref() };
        // Wait until the test has handed over its handle, then drop it: this
        // is the last handle.
        let pool = loop {
            if let Some(pool) = lock(&node.pool).take() {
                break pool;
            }
            thread::sleep(Duration::from_millis(1));
        };
        drop(pool);
        node.dropped.store(true, Ordering::Release);
    }

    #[test]
    #[cfg_attr(miri, ignore = "leaves a detached worker thread behind")]
    fn last_handle_dropped_inside_a_task() {
        let done = Arc::new(AtomicUsize::new(0));
        let nodes = counted(200, &done);
        let node = Box::new(LastHandle {
            task: Task::new(drop_handle),
            pool: Mutex::new(None),
            dropped: AtomicBool::new(false),
        });
        let pool = pool(2);
        let core = Arc::downgrade(&pool.inner.core);
        let mut batch = Batch::new();
        // SAFETY: `node` is kept alive until the pool's threads are gone.
        unsafe { batch.push(task_of(&*node)) };
        // SAFETY: as above.
        unsafe { pool.schedule(batch) };
        schedule_each(&pool, &nodes, 50);
        *lock(&node.pool) = Some(pool);
        // The worker that drops the last handle cannot join itself; shutdown
        // must still complete and every task still run.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !node.dropped.load(Ordering::Acquire) || core.strong_count() > 0 {
            assert!(Instant::now() < deadline, "pool did not shut down");
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(done.load(Ordering::Acquire), 200);
        assert_ran_once(&nodes);
    }

    fn has_work(worker: &Worker) -> bool {
        let buffer = &worker.buffer;
        buffer.head.load(Ordering::Relaxed) != buffer.tail.load(Ordering::Relaxed)
            || !worker.overflow.load(Ordering::Relaxed).is_null()
    }

    #[test]
    fn buffer_steal_takes_half_and_keeps_order() {
        let done = Arc::new(AtomicUsize::new(0));
        let nodes = counted(10, &done);
        let victim = Worker::new();
        let thief = Worker::new();
        // Build a FIFO chain by hand.
        for pair in nodes.windows(2) {
            pair[0]
                .task
                .next
                .store(task_of(&pair[1]).as_ptr(), Ordering::Relaxed);
        }
        let first = task_of(&nodes[0]);
        let (task, more) = victim.adopt(first.as_ptr()).unwrap();
        assert_eq!(task, first);
        assert!(more);
        assert!(has_work(&victim));
        // Nine queued: the thief takes five (runs one, keeps four).
        let (stolen, more) = victim.buffer.steal_into(&thief.buffer).unwrap();
        assert!(more);
        assert_eq!(stolen, task_of(&nodes[1]));
        let mut thief_tasks = Vec::new();
        while let Some(t) = thief.buffer.pop() {
            thief_tasks.push(t);
        }
        let expect: Vec<_> = nodes[2..6].iter().map(task_of).collect();
        assert_eq!(thief_tasks, expect);
        let mut victim_tasks = Vec::new();
        while let Some(t) = victim.buffer.pop() {
            victim_tasks.push(t);
        }
        let expect: Vec<_> = nodes[6..].iter().map(task_of).collect();
        assert_eq!(victim_tasks, expect);
        assert!(victim.buffer.steal_into(&thief.buffer).is_none());
        assert!(!has_work(&victim));
    }

    #[test]
    fn overflow_holds_what_the_buffer_cannot() {
        let done = Arc::new(AtomicUsize::new(0));
        let n = BUFFER_CAP + 10;
        let nodes = counted(n, &done);
        for pair in nodes.windows(2) {
            pair[0]
                .task
                .next
                .store(task_of(&pair[1]).as_ptr(), Ordering::Relaxed);
        }
        let worker = Worker::new();
        let (first, _) = worker.adopt(task_of(&nodes[0]).as_ptr()).unwrap();
        let mut order = vec![first];
        while let Some(t) = worker.buffer.pop() {
            order.push(t);
        }
        assert_eq!(order.len(), BUFFER_CAP + 1);
        let rest = worker.overflow.swap(ptr::null_mut(), Ordering::Acquire);
        let (t, more) = worker.adopt(rest).unwrap();
        assert!(more);
        order.push(t);
        while let Some(t) = worker.buffer.pop() {
            order.push(t);
        }
        let expect: Vec<_> = nodes.iter().map(task_of).collect();
        assert_eq!(order, expect);
    }
}
