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
//! # How the pieces fit
//!
//! The caller links [`Task`]s into a [`Batch`] (module `task`, which also
//! holds the chain reversal shared with the loop's MPSC queue).
//! [`ThreadPool::schedule`] pushes the whole batch onto the global run queue
//! with one compare-and-swap, then calls `Core::notify`. The run queues
//! (module `queue`) are that global intrusive stack plus, per worker, a
//! bounded ring buffer of 256 tasks and an overflow chain that other workers
//! steal from; `Core::find_task` searches them oldest work first: own ring
//! buffer, own overflow, global queue, then the other workers'. The worker
//! threads (module `worker`) are spawned on demand by `notify`, which wakes
//! one idle worker, spawns one below the limit, or does nothing if a wake-up
//! is already pending, all decided on one atomic state word; a worker that
//! finds nothing registers as idle and sleeps on a `Mutex` + `Condvar`
//! semaphore. Dropping the last handle (module `shutdown`) sets the state
//! word's `SHUTDOWN` flag, wakes every sleeper and joins the threads once
//! the queues are empty. The [`Core`] defined here is the state all of them
//! share: the handles (through the shutdown module's `Inner`) and every
//! worker hold an `Arc` of it.
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
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

mod queue;
mod shutdown;
mod task;
#[cfg(test)]
mod tests;
mod worker;

use queue::{Injector, Worker};
use shutdown::Inner;
pub use task::{Batch, Task};
pub(crate) use task::reverse;
use worker::{spawned, Semaphore, MAX_THREADS};

/// Thread pool configuration, for [`ThreadPool::new`].
///
/// Start from [`Config::default()`] and adjust the fields, or chain the
/// builder methods of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Most worker threads the pool will ever run at once; threads are
    /// spawned on demand up to this number (a spawn allocates, on the thread
    /// that scheduled the work: a loop's pool work reaches a steady state
    /// without allocation once the pool has grown to what the load asks
    /// for, or at once with `max_threads` threads' worth of warm-up). Must
    /// be at least 1. Defaults to
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
    /// [`io::ErrorKind::InvalidInput`] if `config.max_threads` is 0;
    /// [`io::ErrorKind::Unsupported`] on WASI, which has no threads.
    pub fn new(config: Config) -> io::Result<ThreadPool> {
        if cfg!(target_os = "wasi") {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "WASI has no threads: no thread pool (the WASI backend runs file operations inline)",
            ));
        }
        if config.max_threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "thread pool max_threads must be at least 1",
            ));
        }
        let core = Core {
            state: Padded(AtomicUsize::new(0)),
            injector: Padded(Injector::new()),
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
    pub unsafe fn schedule(&self, batch: Batch) {
        let (Some(head), Some(tail)) = (NonNull::new(batch.head), NonNull::new(batch.tail)) else {
            return;
        };
        // SAFETY: a batch links its tasks from `head` (newest) to `tail`
        // (oldest) and has not shared them with any thread; this function's
        // contract keeps them valid and unmoved until they run.
        unsafe { self.inner.core.injector.push(head, tail) };
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

/// The pool proper, shared by the handles' [`Inner`] and every worker.
struct Core {
    /// Spawned/idle counters and flags, see the constants in `worker`.
    state: Padded<AtomicUsize>,
    /// Global run queue: intrusive stack of tasks, newest first.
    injector: Padded<Injector>,
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
