//! The runtime: one xev loop, the tasks spawned on it, and the thread-local
//! "current runtime" that operation futures submit to.
//!
//! [`Runtime::block_on`] alternates two phases: it polls the main future
//! and every woken task (the loop is idle meanwhile, so futures may add
//! operations), then runs the loop once, which delivers results to their
//! slots and wakes the tasks that wait for them (and runs any plain loop
//! callbacks the program added itself). The loop blocks only when no task
//! is ready; a permanent async wait on the runtime's [`xev::Async`] wakes
//! it when a task is woken from another thread or work arrives through a
//! [`RemoteHandle`].

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use xev::backend::Backend;
use xev::generic::{Loop, OwnedLoop};
use xev::{Action, Async, Id, Op, Options, RunMode, TimerId, TimerSet};

use crate::notify::ParkedWait;
use crate::op::{complete, set_eager_budget, Slots};
use crate::task::{JoinHandle, RunQueue, Runnable, Task};
use crate::time::Sleepers;

/// What operation futures need of the runtime, whatever its backend.
pub(crate) trait Driver {
    /// The slot table results are delivered to.
    fn slots(&self) -> &RefCell<Slots>;
    /// Adds `op` to the loop; its result goes to slot `slot`. `seen`:
    /// the runtime its socket last submitted to (see [`crate::op::Via`]):
    /// if it is this one, the runtime vouches that the socket stayed open
    /// since ([`xev::Loop::vouch`]: the socket object lives as long as
    /// the operation's future borrows it); either way it becomes this one.
    fn submit(&self, op: Op, slot: usize, seen: Option<&Cell<u64>>) -> Id;
    /// Cancels the completion `id` (now, or before the loop runs next).
    fn cancel(&self, id: Id);
    /// Closes `fd` through the loop (now, or before the loop runs next).
    fn close(&self, fd: xev::RawHandle);
    /// Makes the loop forget `fd` now (it leaves the runtime's hands);
    /// fails from inside a loop callback, where the loop is busy.
    fn forget(&self, fd: xev::RawHandle) -> io::Result<()>;
    /// The loop time of `t` ([`xev::Loop::ms_at`]), reading no clock.
    fn ms_at(&self, t: std::time::Instant) -> u64;
    /// The run queue the runtime's tasks are woken onto.
    fn queue(&self) -> Arc<RunQueue>;
    /// Waits (through xev's process watcher on this loop) for `child` to
    /// exit, reaps it, and leaves its status in `exit`, waking its waker.
    #[cfg(not(target_os = "wasi"))]
    fn watch_child(
        &self,
        child: &std::process::Child,
        exit: Rc<RefCell<ExitSlot>>,
    ) -> io::Result<Id>;
    /// Keeps `task` until it ends (or the runtime drops it); returns its
    /// registry slot.
    fn register(&self, task: Arc<dyn Runnable>) -> usize;
    /// This runtime's number, unique in the process (never 0).
    fn id(&self) -> u64;
    /// The waker slots of the runtime's sleeps.
    fn sleepers(&self) -> &RefCell<Sleepers>;
    /// Starts a timer of the runtime's timer set at loop time `deadline`
    /// with a fresh waker slot; returns both.
    ///
    /// # Panics
    /// From inside a loop callback, where the loop is busy (as for
    /// operations).
    fn start_sleep(&self, deadline: u64) -> (TimerId, usize);
    /// Stops timer `id` (if it has not fired) and frees its slot `slot`:
    /// now, or before the loop runs next.
    fn stop_sleep(&self, id: TimerId, slot: usize);
    /// Parks `wait` in the loop: an `AsyncWait` on `a`, rearmed after each
    /// notification, until its callback disarms it (see [`crate::notify`]).
    /// Fails from inside a loop callback, where the loop is busy.
    fn park(&self, a: Async, wait: ParkedWait) -> io::Result<Id>;
}

/// Spawns `future` as a task of the runtime behind `driver`.
fn spawn_on<F: Future + 'static>(driver: &dyn Driver, future: F) -> JoinHandle<F::Output> {
    let task = Task::new(future, driver.queue());
    let slot = driver.register(task.clone());
    task.slot.set(slot);
    task.schedule();
    JoinHandle::new(task)
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<dyn Driver>>> = const { RefCell::new(None) };
}

/// The runtime this thread is running (inside [`Runtime::block_on`]).
///
/// # Panics
/// Outside a runtime: operation futures and [`spawn`] need one.
pub(crate) fn current() -> Rc<dyn Driver> {
    CURRENT
        .with(|c| c.borrow().clone())
        .expect("xev-async: no runtime is running on this thread (use Runtime::block_on)")
}

/// The number of the runtime running on this thread (0: none).
pub(crate) fn current_id() -> u64 {
    CURRENT.with(|c| c.borrow().as_ref().map_or(0, |d| d.id()))
}

/// The runtime running on this thread, if any.
pub(crate) fn try_current() -> Option<Rc<dyn Driver>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Spawns a task on the runtime running on this thread: `future` runs
/// side by side with the others and the main future, on this thread (it
/// need not be `Send`). Spawning allocates once.
///
/// # Panics
/// Outside [`Runtime::block_on`].
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
{
    spawn_on(&*current(), future)
}

/// Where a child's exit status waits for the future that awaits it.
#[derive(Default)]
#[cfg(not(target_os = "wasi"))]
pub(crate) struct ExitSlot {
    pub(crate) status: Option<Result<std::process::ExitStatus, xev::ProcessError>>,
    pub(crate) waker: Option<std::task::Waker>,
}

/// Loop work asked for while the loop was busy.
enum Deferred {
    Cancel(Id),
    Close(xev::RawHandle),
    /// A sleep's timer to stop, and its slot to free.
    StopSleep(TimerId, usize),
}

/// The state shared by a runtime and its operation futures.
struct Core<B: Backend> {
    lp: RefCell<OwnedLoop<B>>,
    /// This runtime's number, unique in the process (never 0).
    id: u64,
    slots: Rc<RefCell<Slots>>,
    queue: Arc<RunQueue>,
    /// Every live task, so that dropping the runtime drops their futures
    /// here, on the runtime's thread.
    tasks: RefCell<Vec<Option<Arc<dyn Runnable>>>>,
    free_tasks: RefCell<Vec<usize>>,
    /// Cancels and closes asked for while the loop was running (from a
    /// loop callback that dropped an operation future or a socket): made
    /// before it runs again.
    deferred: RefCell<Vec<Deferred>>,
    /// The backend submits a turn's operations in one batch (io_uring):
    /// in a round that runs several tasks their sends join it instead of
    /// being tried at once (see [`set_eager_budget`]).
    batches: bool,
    /// The timer set of the runtime's sleeps; a timer's key is its slot
    /// in `sleepers`.
    timers: TimerSet,
    sleepers: Rc<RefCell<Sleepers>>,
}

impl<B: Backend> Core<B> {
    fn forget(&self, slot: usize) {
        if let Some(t) = self.tasks.borrow_mut().get_mut(slot) {
            *t = None;
            self.free_tasks.borrow_mut().push(slot);
        }
    }

    fn flush_deferred(&self, lp: &mut Loop<B>) {
        let mut d = self.deferred.borrow_mut();
        if d.is_empty() {
            return;
        }
        for w in d.drain(..) {
            match w {
                // Too late or already gone: its callback runs (or ran) anyway.
                Deferred::Cancel(id) => drop(lp.cancel(id)),
                Deferred::Close(fd) => drop(lp.add(Op::Close { fd }, |_, _, _| Action::Disarm)),
                Deferred::StopSleep(id, slot) => {
                    // Stale when it fired meanwhile: the slot is free to go
                    // either way.
                    let _ = lp.stop_timer(id);
                    let w = self.sleepers.borrow_mut().release(slot);
                    drop(w);
                }
            }
        }
    }
}

impl<B: Backend> Driver for Core<B> {
    fn slots(&self) -> &RefCell<Slots> {
        &self.slots
    }

    fn submit(&self, op: Op, slot: usize, seen: Option<&Cell<u64>>) -> Id {
        let slots = self.slots.clone();
        let mut lp = self
            .lp
            .try_borrow_mut()
            .expect("xev-async: an operation was started from inside a loop callback");
        let vouch = seen.is_some_and(|s| s.replace(self.id) == self.id);
        let id = lp.add(op, move |_, op, res| complete(&slots, slot, op, res));
        if vouch {
            // Cannot fail: the completion was just queued.
            let _ = lp.vouch(id);
        }
        if seen.is_some() {
            // A socket's operation: the runtime decided already whether to
            // try it at once (see `crate::op::Via`), so the backend does not
            // try it again. Cannot fail, as above.
            let _ = lp.tried(id);
        }
        id
    }

    fn cancel(&self, id: Id) {
        match self.lp.try_borrow_mut() {
            Ok(mut lp) => {
                let _ = lp.cancel(id);
            }
            Err(_) => self.deferred.borrow_mut().push(Deferred::Cancel(id)),
        }
    }

    fn close(&self, fd: xev::RawHandle) {
        match self.lp.try_borrow_mut() {
            Ok(mut lp) => drop(lp.add(Op::Close { fd }, |_, _, _| Action::Disarm)),
            Err(_) => self.deferred.borrow_mut().push(Deferred::Close(fd)),
        }
    }

    fn forget(&self, fd: xev::RawHandle) -> io::Result<()> {
        let mut lp = self.lp.try_borrow_mut().map_err(|_| {
            io::Error::other("xev-async: a handle left the runtime from inside a loop callback")
        })?;
        lp.forget(fd);
        Ok(())
    }

    fn ms_at(&self, t: std::time::Instant) -> u64 {
        match self.lp.try_borrow() {
            Ok(lp) => lp.ms_at(t),
            Err(_) => 0,
        }
    }

    fn queue(&self) -> Arc<RunQueue> {
        self.queue.clone()
    }

    #[cfg(not(target_os = "wasi"))]
    fn watch_child(
        &self,
        child: &std::process::Child,
        exit: Rc<RefCell<ExitSlot>>,
    ) -> io::Result<Id> {
        let p = Rc::new(xev::watcher::Process::<B>::from_child(child).map_err(io::Error::from)?);
        let keep = p.clone();
        let mut lp = self
            .lp
            .try_borrow_mut()
            .map_err(|_| io::Error::other("xev-async: a child waited on from a loop callback"))?;
        Ok(p.wait(&mut lp, move |_, r| {
            // The watcher lives until its wait has reported.
            let _watcher = &keep;
            let waker = {
                let mut e = exit.borrow_mut();
                e.status = Some(r);
                e.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
            Action::Disarm
        }))
    }

    fn id(&self) -> u64 {
        self.id
    }

    fn sleepers(&self) -> &RefCell<Sleepers> {
        &self.sleepers
    }

    fn start_sleep(&self, deadline: u64) -> (TimerId, usize) {
        let mut lp = self
            .lp
            .try_borrow_mut()
            .expect("xev-async: a sleep was started from inside a loop callback");
        let slot = self.sleepers.borrow_mut().alloc();
        let id = lp
            .start_timer(self.timers, deadline, slot as u64)
            .expect("xev-async: the runtime's timer set is never removed");
        (id, slot)
    }

    fn stop_sleep(&self, id: TimerId, slot: usize) {
        match self.lp.try_borrow_mut() {
            Ok(mut lp) => {
                // Stale when it has fired: the slot goes either way.
                let _ = lp.stop_timer(id);
                let w = self.sleepers.borrow_mut().release(slot);
                drop(lp);
                drop(w);
            }
            Err(_) => self
                .deferred
                .borrow_mut()
                .push(Deferred::StopSleep(id, slot)),
        }
    }

    fn park(&self, a: Async, wait: ParkedWait) -> io::Result<Id> {
        let mut lp = self
            .lp
            .try_borrow_mut()
            .map_err(|_| io::Error::other("xev-async: a wait was parked from a loop callback"))?;
        Ok(lp.add(Op::AsyncWait(a), move |_, _, res| wait.fire(&res)))
    }

    fn register(&self, task: Arc<dyn Runnable>) -> usize {
        let mut tasks = self.tasks.borrow_mut();
        match self.free_tasks.borrow_mut().pop() {
            Some(i) => {
                tasks[i] = Some(task);
                i
            }
            None => {
                tasks.push(Some(task));
                tasks.len() - 1
            }
        }
    }
}

/// A single-threaded async runtime on one xev loop of backend `B` (the
/// default backend unless chosen): runs a main future with
/// [`Runtime::block_on`] and any number of tasks ([`spawn`]) on this
/// thread, side by side with plain loop callbacks added through
/// [`Runtime::with_loop`]. One runtime runs at a time on a thread; several
/// threads each run their own (they may share one [`xev::ThreadPool`]
/// through [`Options::thread_pool`]).
pub struct Runtime<B: Backend = xev::DefaultBackend> {
    core: Rc<Core<B>>,
    /// The permanent wait on the runtime's `Async`, which keeps the loop
    /// blocked only until a task is woken from another thread.
    _wake_wait: Id,
}

impl Runtime<xev::DefaultBackend> {
    /// A runtime on the default backend, without a thread pool.
    pub fn new() -> io::Result<Runtime> {
        Runtime::with_options(Options::default())
    }

    /// A runtime on the default backend, on a loop made with `opts` (a
    /// thread pool, say).
    pub fn new_with(opts: Options) -> io::Result<Runtime> {
        Runtime::with_options(opts)
    }
}

impl<B: Backend> Runtime<B> {
    /// A runtime on a loop of backend `B` made with `opts` (give it a
    /// thread pool for file I/O on the readiness backends and for name
    /// resolution).
    pub fn with_options(opts: Options) -> io::Result<Runtime<B>> {
        let mut lp = Loop::<B>::new(opts)?;
        let notify = Async::new()?;
        let wake_wait = lp.add(Op::AsyncWait(notify.clone()), |_, _, _| Action::Rearm);
        let sleepers: Rc<RefCell<Sleepers>> = Rc::default();
        let fired = sleepers.clone();
        let timers = lp.add_timer_set(move |_, key| {
            let w = fired.borrow_mut().fire(key);
            if let Some(w) = w {
                w.wake();
            }
        })?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let batches = lp.backend_name() == "io_uring";
        let core = Rc::new(Core {
            lp: RefCell::new(lp),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            slots: Rc::default(),
            queue: Arc::new(RunQueue::new(notify)),
            tasks: RefCell::new(Vec::new()),
            free_tasks: RefCell::new(Vec::new()),
            deferred: RefCell::new(Vec::new()),
            batches,
            timers,
            sleepers,
        });
        Ok(Runtime {
            core,
            _wake_wait: wake_wait,
        })
    }

    /// The loop's backend name (`"io_uring"`, `"epoll"`...).
    pub fn backend_name(&self) -> &'static str {
        self.core.lp.borrow().backend_name()
    }

    /// Runs `f` with the runtime's loop, to add plain completions or
    /// watchers beside the tasks (their callbacks run while the runtime
    /// runs). Not from inside a loop callback.
    pub fn with_loop<R>(&self, f: impl FnOnce(&mut Loop<B>) -> R) -> R {
        f(&mut self.core.lp.borrow_mut())
    }

    /// Spawns a task on this runtime (see [`spawn`]); it starts running
    /// at the next [`Runtime::block_on`].
    pub fn spawn<F: Future + 'static>(&self, future: F) -> JoinHandle<F::Output> {
        spawn_on(&*self.core, future)
    }

    /// A handle other threads can use to hand this runtime work.
    pub fn remote(&self) -> RemoteHandle {
        RemoteHandle {
            queue: self.core.queue.clone(),
        }
    }

    /// Operations and sleeps in flight (or finished and not yet taken by
    /// their futures): what the runtime holds for its tasks.
    pub fn ops_in_flight(&self) -> usize {
        self.core.slots.borrow().in_use() + self.core.sleepers.borrow().in_use()
    }

    /// Runs `future` to completion on this thread, together with every
    /// spawned task, and returns its output. Tasks still running when it
    /// returns stay, and run again at the next `block_on`.
    ///
    /// # Panics
    /// When another runtime is already running on this thread (nested
    /// `block_on`), or when the loop fails (an OS error of the loop
    /// itself, not of an operation).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let driver: Rc<dyn Driver> = self.core.clone();
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            assert!(
                c.is_none(),
                "xev-async: a runtime is already running on this thread"
            );
            *c = Some(driver);
        });
        struct Exit;
        impl Drop for Exit {
            fn drop(&mut self) {
                CURRENT.with(|c| c.borrow_mut().take());
                set_eager_budget(false, false);
            }
        }
        let _exit = Exit;
        let _running = crate::task::enter(&self.core.queue);
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            queue: self.core.queue.clone(),
        });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if main.woken.swap(false, Ordering::AcqRel) {
                set_eager_budget(true, self.core.batches && !self.core.queue.is_empty());
                if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
                    return v;
                }
            }
            self.run_ready_tasks();
            let idle = !main.woken.load(Ordering::Acquire) && self.core.queue.is_empty();
            let mut lp = self.core.lp.borrow_mut();
            self.core.flush_deferred(&mut lp);
            let mode = if idle { RunMode::Once } else { RunMode::NoWait };
            lp.run(mode).expect("xev-async: the loop failed");
        }
    }

    /// Polls every task woken so far (and adopts work from other threads).
    fn run_ready_tasks(&self) {
        for f in self.core.queue.take_remote() {
            drop(spawn_on(&*self.core, f));
        }
        // Only the tasks woken so far run in this round (at most 1024):
        // tasks woken while these run (by them, or a task that yields) wait
        // for the next round, after the loop has had its turn.
        let round = self.core.queue.len().min(1024);
        let join_batch = self.core.batches && round > 1;
        for _ in 0..round {
            let Some(t) = self.core.queue.pop() else {
                break;
            };
            set_eager_budget(true, join_batch);
            // SAFETY: this is the runtime's thread.
            if let Some(slot) = unsafe { t.run() } {
                self.core.forget(slot);
            }
        }
    }
}

impl<B: Backend> Drop for Runtime<B> {
    fn drop(&mut self) {
        // Drop every task's future here, on the runtime's thread, with the
        // runtime current so that sockets close through the loop; their
        // operations in flight are canceled and end with the loop.
        let entered = CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_some() {
                return false;
            }
            *c = Some(self.core.clone() as Rc<dyn Driver>);
            true
        });
        let _running = crate::task::enter(&self.core.queue);
        let tasks = std::mem::take(&mut *self.core.tasks.borrow_mut());
        for t in tasks.into_iter().flatten() {
            // SAFETY: the runtime's thread; no task is running.
            unsafe { t.clear() };
        }
        if entered {
            CURRENT.with(|c| c.borrow_mut().take());
        }
        let mut lp = self.core.lp.borrow_mut();
        self.core.flush_deferred(&mut lp);
    }
}

/// The main future's waker: a flag, plus a nudge for a blocked loop.
struct MainWaker {
    woken: AtomicBool,
    queue: Arc<RunQueue>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if !self.queue.on_runtime_thread() {
            // Cannot fail for a live loop.
            let _ = self.queue.notify.notify();
        }
    }
}

/// Hands a runtime work from any thread: `Send + Sync`, cheap to clone.
#[derive(Clone)]
pub struct RemoteHandle {
    queue: Arc<RunQueue>,
}

impl RemoteHandle {
    /// Spawns `future` (which must be `Send`, as it crosses threads) on
    /// the runtime, waking it. The future is boxed (one allocation). Work
    /// handed to a runtime that is gone is dropped unrun.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        self.queue
            .remote
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::pin(future));
        self.queue.notify_remote();
    }
}

/// Yields to the runtime once: the task is woken again at once and runs
/// after the other ready tasks and a turn of the loop.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
