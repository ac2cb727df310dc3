//! Tasks: a spawned future, allocated once (one `Arc` holding the future,
//! its output and its wake state), the run queue that wakers push onto,
//! and the [`JoinHandle`] that awaits or aborts it.
//!
//! Threads: a task's future and output are only ever touched on the
//! runtime's thread (they may be `!Send`); a waker may be cloned to and
//! woken from any thread, and then touches nothing but the atomic
//! `scheduled` flag and the run queue. The runtime drops every future and
//! output on its own thread (when a task finishes, when its handle is
//! dropped, or when the runtime is dropped), so that whatever thread drops
//! the last reference to a task frees only memory.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

thread_local! {
    /// The run queue of the runtime running on this thread (inside
    /// `block_on`), so that a wake on the runtime's own thread takes the
    /// lock-free local path and needs no wakeup of the loop.
    static RUNNING: Cell<*const RunQueue> = const { Cell::new(std::ptr::null()) };
}

/// Tasks woken and waiting to be polled, in wake order. Shared with every
/// waker. A wake on the runtime's thread while it runs goes to the local
/// queue (no lock, no wakeup: the runtime polls it before it lets the loop
/// block); a wake from anywhere else goes to the remote queue and notifies
/// the loop's [`xev::Async`], so that a runtime blocked in the loop wakes.
pub(crate) struct RunQueue {
    /// Runtime thread only (see `on_runtime_thread`).
    local: UnsafeCell<VecDeque<Arc<dyn Runnable>>>,
    remote_tasks: Mutex<VecDeque<Arc<dyn Runnable>>>,
    /// Set when `remote_tasks` or `remote` may hold something.
    remote_flag: AtomicBool,
    /// Work handed over from other threads ([`crate::RemoteHandle`]).
    pub(crate) remote: Mutex<Vec<Pin<Box<dyn Future<Output = ()> + Send>>>>,
    pub(crate) notify: xev::Async,
}

// SAFETY: `local` is only touched on the thread whose `RUNNING` names this
// queue (the runtime's, while it runs or drops); everything else is a
// Mutex, an atomic or an `Async` (Sync).
unsafe impl Sync for RunQueue {}

/// Marks `q` as the queue of the runtime running on this thread until the
/// returned guard is dropped (restoring what was there).
pub(crate) fn enter(q: &RunQueue) -> impl Drop {
    struct Leave(*const RunQueue);
    impl Drop for Leave {
        fn drop(&mut self) {
            RUNNING.with(|r| r.set(self.0));
        }
    }
    Leave(RUNNING.with(|r| r.replace(q)))
}

impl RunQueue {
    pub(crate) fn new(notify: xev::Async) -> RunQueue {
        RunQueue {
            local: UnsafeCell::new(VecDeque::with_capacity(64)),
            remote_tasks: Mutex::new(VecDeque::new()),
            remote_flag: AtomicBool::new(false),
            remote: Mutex::new(Vec::new()),
            notify,
        }
    }

    /// Whether this thread is the runtime's, running it now.
    pub(crate) fn on_runtime_thread(&self) -> bool {
        RUNNING.with(|r| std::ptr::eq(r.get(), self))
    }

    /// Wakes the loop for work that arrived from elsewhere.
    pub(crate) fn notify_remote(&self) {
        self.remote_flag.store(true, Ordering::Release);
        // Cannot fail for a live loop; a runtime that is gone needs no wake.
        let _ = self.notify.notify();
    }

    pub(crate) fn push(&self, t: Arc<dyn Runnable>) {
        if self.on_runtime_thread() {
            // SAFETY: the runtime's thread (checked); no other borrow of
            // `local` is live (pop and is_empty hold none across calls).
            unsafe { (*self.local.get()).push_back(t) };
        } else {
            self.remote_tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(t);
            self.notify_remote();
        }
    }

    /// Moves remote wakes to the local queue; returns the remote futures
    /// to spawn, if any. Runtime thread only.
    pub(crate) fn take_remote(&self) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
        if !self.remote_flag.load(Ordering::Relaxed)
            || !self.remote_flag.swap(false, Ordering::AcqRel)
        {
            return Vec::new();
        }
        let mut r = self
            .remote_tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // SAFETY: called by the runtime on its thread, inside `enter`.
        let local = unsafe { &mut *self.local.get() };
        local.extend(r.drain(..));
        drop(r);
        std::mem::take(&mut *self.remote.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The next woken task. Runtime thread only.
    pub(crate) fn pop(&self) -> Option<Arc<dyn Runnable>> {
        debug_assert!(self.on_runtime_thread());
        // SAFETY: the runtime's thread; the borrow ends here.
        unsafe { (*self.local.get()).pop_front() }
    }

    /// How many woken tasks wait to be polled. Runtime thread only.
    pub(crate) fn len(&self) -> usize {
        debug_assert!(self.on_runtime_thread());
        // SAFETY: the runtime's thread; the borrow ends here.
        unsafe { (*self.local.get()).len() }
    }

    /// Whether no task waits to be polled. Runtime thread only.
    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: the runtime's thread; the borrow ends here.
        let local_empty = unsafe { (*self.local.get()).is_empty() };
        local_empty && !self.remote_flag.load(Ordering::Acquire)
    }
}

/// What the runtime does with a task.
pub(crate) trait Runnable: Send + Sync {
    /// Polls the task once; returns its registry slot when it ended.
    ///
    /// # Safety
    /// Called on the runtime's thread only.
    unsafe fn run(self: Arc<Self>) -> Option<usize>;

    /// Drops the future (and an output nobody will take), ending the task.
    ///
    /// # Safety
    /// Called on the runtime's thread only, never while the task runs.
    unsafe fn clear(&self);
}

/// Why a task gave no output.
#[derive(Debug)]
#[non_exhaustive]
pub enum JoinError {
    /// It was aborted ([`JoinHandle::abort`]) or its runtime was dropped
    /// before it finished.
    Cancelled,
    /// Its future panicked; the payload is the panic's.
    Panicked(Box<dyn Any + Send>),
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Cancelled => f.write_str("task cancelled"),
            JoinError::Panicked(_) => f.write_str("task panicked"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        let kind = match e {
            JoinError::Cancelled => std::io::ErrorKind::Interrupted,
            JoinError::Panicked(_) => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e.to_string())
    }
}

enum State<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    /// Output taken, or dropped (aborted, detached, runtime gone).
    Gone,
}

/// A spawned task: one allocation for the future, its output, and its
/// wake state.
pub(crate) struct Task<F: Future> {
    /// Set while the task sits in the run queue (a wake then does nothing).
    scheduled: AtomicBool,
    queue: Arc<RunQueue>,
    /// The registry slot the runtime keeps it in (runtime thread only).
    pub(crate) slot: Cell<usize>,
    /// Runtime thread only, like everything below.
    state: UnsafeCell<State<F>>,
    running: Cell<bool>,
    aborted: Cell<bool>,
    has_handle: Cell<bool>,
    join_waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: a `Task` is shared with other threads only through wakers, which
// touch `scheduled` (atomic) and `queue` (a Mutex and an `Async`, both
// Sync). Every other field, the future and the output included, is read
// and written on the runtime's thread only (the `Runnable` and
// `JoinHandle` contracts; `JoinHandle` is `!Send`), and the runtime drops
// the future and output there before it lets go of the task, so a last
// reference dropped on another thread frees memory only.
unsafe impl<F: Future> Send for Task<F> {}
// SAFETY: as for `Send`.
unsafe impl<F: Future> Sync for Task<F> {}

impl<F: Future + 'static> Task<F> {
    pub(crate) fn new(future: F, queue: Arc<RunQueue>) -> Arc<Task<F>> {
        Arc::new(Task {
            scheduled: AtomicBool::new(false),
            queue,
            slot: Cell::new(usize::MAX),
            state: UnsafeCell::new(State::Running(future)),
            running: Cell::new(false),
            aborted: Cell::new(false),
            has_handle: Cell::new(true),
            join_waker: UnsafeCell::new(None),
        })
    }

    /// Puts the task on the run queue unless it is there already.
    pub(crate) fn schedule(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.queue.push(self.clone());
        }
    }

    /// Ends the task with `r`: the output is kept for the handle (or
    /// dropped if there is none) and the handle's waker is woken.
    ///
    /// # Safety
    /// Runtime thread only, not while the future is being polled.
    unsafe fn finish(&self, r: Result<F::Output, JoinError>) {
        // SAFETY: runtime thread, no other borrow of the state is live.
        unsafe {
            let state = &mut *self.state.get();
            // Dropping the future may panic: the task ends either way.
            let _ = catch_unwind(AssertUnwindSafe(|| *state = State::Gone));
            if self.has_handle.get() {
                *state = State::Finished(r);
            } else {
                drop(r);
            }
            if let Some(w) = (*self.join_waker.get()).take() {
                w.wake();
            }
        }
    }
}

impl<F: Future + 'static> Runnable for Task<F> {
    unsafe fn run(self: Arc<Self>) -> Option<usize> {
        self.scheduled.store(false, Ordering::Release);
        if self.aborted.get() {
            // SAFETY: runtime thread (our contract); not running.
            unsafe {
                if matches!(*self.state.get(), State::Running(_)) {
                    self.finish(Err(JoinError::Cancelled));
                    return Some(self.slot.get());
                }
            }
            return None;
        }
        // SAFETY: runtime thread; the future lives in the Arc and is never
        // moved (only dropped in place), so pinning it is sound; `running`
        // keeps the handle from reading the state while it is borrowed.
        let poll = unsafe {
            let State::Running(f) = &mut *self.state.get() else {
                return None;
            };
            let waker = Waker::from(self.clone());
            let mut cx = Context::from_waker(&waker);
            let f = Pin::new_unchecked(f);
            self.running.set(true);
            let p = catch_unwind(AssertUnwindSafe(|| f.poll(&mut cx)));
            self.running.set(false);
            p
        };
        let r = match poll {
            Ok(Poll::Pending) => return None,
            Ok(Poll::Ready(v)) => Ok(v),
            Err(payload) => Err(JoinError::Panicked(payload)),
        };
        // SAFETY: runtime thread; the poll is over.
        unsafe { self.finish(r) };
        Some(self.slot.get())
    }

    unsafe fn clear(&self) {
        // SAFETY: runtime thread, not running (our contract).
        unsafe {
            let state = &mut *self.state.get();
            if let State::Running(_) = state {
                self.finish(Err(JoinError::Cancelled));
            }
            if !self.has_handle.get() {
                let _ = catch_unwind(AssertUnwindSafe(|| *state = State::Gone));
            }
        }
    }
}

impl<F: Future + 'static> Wake for Task<F> {
    fn wake(self: Arc<Self>) {
        self.schedule();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.schedule();
    }
}

/// What a [`JoinHandle`] needs of its task, whatever its future's type.
pub(crate) trait Joinable<T> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>>;
    fn abort(self: Arc<Self>);
    fn detach(&self);
    fn is_finished(&self) -> bool;
}

impl<F: Future + 'static> Joinable<F::Output> for Task<F> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, JoinError>> {
        if self.running.get() {
            // A task awaiting its own handle: it can never finish.
            return Poll::Pending;
        }
        // SAFETY: the handle lives on the runtime's thread (`!Send`) and the
        // task is not running, so nothing else borrows the state.
        unsafe {
            let state = &mut *self.state.get();
            match std::mem::replace(state, State::Gone) {
                State::Finished(r) => Poll::Ready(r),
                State::Gone => Poll::Ready(Err(JoinError::Cancelled)),
                running @ State::Running(_) => {
                    *state = running;
                    *self.join_waker.get() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    fn abort(self: Arc<Self>) {
        self.aborted.set(true);
        self.schedule();
    }

    fn detach(&self) {
        self.has_handle.set(false);
        if self.running.get() {
            return;
        }
        // SAFETY: runtime thread (the handle is `!Send`), not running.
        unsafe {
            let state = &mut *self.state.get();
            if let State::Finished(_) = state {
                let _ = catch_unwind(AssertUnwindSafe(|| *state = State::Gone));
            }
            *self.join_waker.get() = None;
        }
    }

    fn is_finished(&self) -> bool {
        // SAFETY: runtime thread; a shared read while nothing writes.
        !self.running.get() && !matches!(unsafe { &*self.state.get() }, State::Running(_))
    }
}

/// An owned permission to await a spawned task's output or abort it.
/// Dropping it detaches the task, which runs on. `!Send`: it lives on the
/// runtime's thread, like the task.
pub struct JoinHandle<T> {
    task: Arc<dyn Joinable<T>>,
    _not_send: PhantomData<*const ()>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: Arc<dyn Joinable<T>>) -> JoinHandle<T> {
        JoinHandle {
            task,
            _not_send: PhantomData,
        }
    }

    /// Aborts the task: its future is dropped at its next turn (its
    /// operations in flight are canceled) and awaiting the handle gives
    /// [`JoinError::Cancelled`]. A task that already finished keeps its
    /// output.
    pub fn abort(&self) {
        self.task.clone().abort();
    }

    /// Whether the task has finished (with an output, a panic, or aborted).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.task.poll_join(cx)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.task.detach();
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
