//! The loop: owns completions while they are in flight, runs timers, hands
//! I/O to its backend and file work to the thread pool, and calls callbacks.
//!
//! One tick: start every queued submission (noops complete, timers enter the
//! wheel, cancels are resolved, I/O goes to the backend or the pool), expire
//! timers, let the backend wait (no longer than the next timer) and collect
//! results, collect thread-pool results, expire timers again, then call the
//! callbacks of everything that finished, in the order it finished. The
//! clock is read (and timers expired) only while the wheel holds a timer;
//! otherwise [`Loop::now`] reads it when first asked in the tick.

use std::alloc::Layout;
use std::cell::Cell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) mod completion;
mod handoff;
pub(crate) mod orphans;
mod timer_sets;

use crate::backend::{Backend, Start};
use crate::error::{CancelError, IdError, NO_THREAD_POOL};
use crate::id::Id;
use crate::mpsc::Mpsc;
use crate::op::{Op, OpResult, Plan};
use crate::options::Options;
use crate::queue::Queue;
use crate::record::{
    Action, Core, State, FLAG_CANCELING, FLAG_DISCARDABLE, FLAG_FREE, FLAG_RESET, FLAG_TIMER,
    FLAG_TRIED, FLAG_VOUCHED,
};
use crate::recycle::Recycler;
use crate::shared::Shared;
use crate::sys;
use crate::thread_pool::{Batch, ThreadPool};
use crate::timer_set::TimerSets;
use crate::timer_wheel::TimerWheel;
use completion::{Callback, Completion};
use handoff::{POOL_CANCELED, POOL_DISCARDED, POOL_QUEUED, POOL_RUNNING};
use orphans::{Orphan, Orphans};
use timer_sets::SetCallback;

/// How long [`Loop::run`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// One pass that never blocks: start what was added, call the callbacks
    /// of whatever is already finished.
    NoWait,
    /// Block until at least one callback ran (returns at once when nothing
    /// is in flight or pending).
    Once,
    /// Run until no completion is in flight and no set timer is pending
    /// (or [`Loop::stop`] is called).
    UntilDone,
}

/// At most this many ticks in a row skip the backend's poll while callbacks
/// are ready (tokio's scheduler polls its driver every 61 ticks likewise).
const MAX_SKIPPED_POLLS: u32 = 32;

/// Gives each loop a distinct tag, so that an [`Id`] from another loop is
/// recognised (and never followed).
static NEXT_TAG: AtomicU32 = AtomicU32::new(1);

/// The loop's state. It lives in an [`OwnedLoop`] and is reached through
/// the unsized [`Loop`] view, which is all that callbacks ever get.
pub(crate) struct Inner<B: Backend> {
    backend: B,
    /// This loop's tag (see [`Id`]).
    tag: u32,
    submissions: Queue,
    completions: Queue,
    /// Cancel completions whose answer is known and whose target's result
    /// has not arrived yet (a cancel completes after its target).
    cancels_waiting: Queue,
    /// Async waits not yet notified (checked every tick, in user space).
    async_waits: Queue,
    timers: TimerWheel,
    /// Timer sets and their compact timers.
    sets: TimerSets<SetCallback<B>>,
    /// Whether a timer set's callback is running (it may not run the loop).
    in_set_callback: bool,
    base: Instant,
    now: Cell<u64>,
    /// `now` is older than the last poll: a tick with no timer does not read
    /// the clock, and [`Loop::now`] reads it when first asked.
    now_stale: Cell<bool>,
    /// Whether [`Loop::run`] is running (then [`Loop::now`] is the
    /// tick's cached clock; otherwise it reads the clock).
    running: bool,
    /// The completion whose callback is running, so that a panic escaping
    /// it can free it (see [`Loop::run`]).
    current: *mut Core,
    /// Completions in flight (queued, in the backend, the timer wheel or
    /// the pool, or finished and waiting for their callback) plus pending
    /// set timers.
    active: usize,
    stopped: bool,
    /// Consecutive ticks that skipped the backend's poll (see `tick`).
    skipped_polls: u32,
    /// What dropped watchers left for the loop.
    orphans: Rc<Orphans<B>>,
    pool: Option<ThreadPool>,
    pool_batch: Batch,
    pool_in_flight: usize,
    recycler: Recycler,
    shared: Arc<Shared>,
    _not_send: PhantomData<*mut ()>,
}

/// The event loop, generic over its backend: what callbacks receive and
/// what every watcher method takes. Most code uses the alias
/// [`crate::Loop`] for the target's default backend.
///
/// `Loop` is an unsized view of a loop owned by an [`OwnedLoop`] (which
/// [`Loop::new`] returns, and which dereferences to it). Being unsized, a
/// `Loop` can never be assigned, swapped, replaced, taken or dropped
/// through a `&mut Loop`, so a callback cannot destroy the loop that is
/// running it; only the [`OwnedLoop`] drops it.
///
/// ```compile_fail
/// use xev::{Action, Loop, Op};
/// let mut lp = Loop::new(Default::default()).unwrap();
/// lp.add(Op::Noop, |lp, _, _| {
///     *lp = *Loop::new(Default::default()).unwrap(); // error: `Loop` is unsized
///     Action::Disarm
/// });
/// ```
///
/// ```compile_fail
/// use xev::{Action, Loop, Op};
/// let mut other = Loop::new(Default::default()).unwrap();
/// let mut lp = Loop::new(Default::default()).unwrap();
/// lp.add(Op::Noop, move |lp, _, _| {
///     std::mem::swap(lp, &mut *other); // error: `Loop` is unsized
///     Action::Disarm
/// });
/// ```
///
/// ```compile_fail
/// use xev::{Action, Loop, Op};
/// let mut lp = Loop::new(Default::default()).unwrap();
/// lp.add(Op::Noop, |lp, _, _| {
///     let _old = std::mem::replace(lp, *Loop::new(Default::default()).unwrap()); // error
///     Action::Disarm
/// });
/// ```
///
/// ```compile_fail
/// use xev::{Action, Loop, Op};
/// let mut lp = Loop::new(Default::default()).unwrap();
/// lp.add(Op::Noop, |lp, _, _| {
///     let _old = std::mem::take(lp); // error: `Loop` is unsized (and has no Default)
///     Action::Disarm
/// });
/// ```
///
#[repr(C)]
pub struct Loop<B: Backend> {
    s: Inner<B>,
    /// Makes `Loop` unsized: always empty.
    _unsized: [()],
}

/// A loop and the right to drop it: what [`Loop::new`] returns. It
/// dereferences to [`Loop`] for everything else (running it, adding work,
/// cancels, timers, the clock). Not `Send`: a loop stays on the thread that made it.
pub struct OwnedLoop<B: Backend> {
    s: Inner<B>,
}

impl<B: Backend> std::ops::Deref for OwnedLoop<B> {
    type Target = Loop<B>;

    fn deref(&self) -> &Loop<B> {
        let p = Inner::as_loop(ptr::addr_of!(self.s).cast_mut());
        // SAFETY: `Loop<B>` is #[repr(C)] with `Inner<B>` at offset 0 and an
        // empty tail, so a zero-length view of our `Inner` is a valid
        // `Loop` covering exactly its bytes; only a shared reference is made
        // from it, and the borrow of `self` bounds it.
        unsafe { &*p }
    }
}

impl<B: Backend> std::ops::DerefMut for OwnedLoop<B> {
    fn deref_mut(&mut self) -> &mut Loop<B> {
        // SAFETY: as in `deref`, through a unique borrow.
        unsafe { &mut *Inner::as_loop(ptr::addr_of_mut!(self.s)) }
    }
}

impl<B: Backend> fmt::Debug for OwnedLoop<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<B: Backend> fmt::Debug for Loop<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loop")
            .field("backend", &self.backend_name())
            .field("active", &self.s.active)
            .field("now", &self.s.now.get())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Inner<B> {
    fn refresh_now(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.now.set(ms);
        self.now_stale.set(false);
    }

    /// The unsized [`Loop`] view of the state at `p` (same address and
    /// provenance).
    fn as_loop(p: *mut Inner<B>) -> *mut Loop<B> {
        ptr::slice_from_raw_parts_mut(p.cast::<()>(), 0) as *mut Loop<B>
    }
}

/// The `Loop<B>` whose state is at `p`, for the completion vtables, which
/// erase the backend type.
pub(crate) fn loop_from_erased<B: Backend>(p: *mut ()) -> *mut Loop<B> {
    Inner::<B>::as_loop(p.cast())
}

/// The methods whose arguments often read the loop itself
/// (`lp.add(Op::timer(lp.now() + 5), ..)`), repeated here so that such
/// calls compile on an `OwnedLoop` as they do on a `Loop` (a call through
/// `DerefMut` borrows the loop before its arguments are evaluated).
impl<B: Backend> OwnedLoop<B> {
    /// See [`Loop::add`].
    pub fn add<F>(&mut self, op: Op, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Op, OpResult) -> Action + 'static,
    {
        (**self).add(op, cb)
    }

    /// See [`Loop::add_completion`].
    pub fn add_completion<F: Callback<B>>(&mut self, c: Box<Completion<B, F>>) -> Id {
        (**self).add_completion(c)
    }

    /// See [`Loop::add_parked`].
    pub fn add_parked<F: Callback<B>>(&mut self, c: Box<Completion<B, F>>) -> Id {
        (**self).add_parked(c)
    }

    /// See [`Loop::add_parked_callback`].
    pub fn add_parked_callback<F: Callback<B>>(&mut self, op: Op, cb: F) -> Id {
        (**self).add_parked_callback(op, cb)
    }

    /// See [`Loop::timer_reset`].
    pub fn timer_reset(&mut self, id: Id, deadline: u64) -> Result<(), IdError> {
        (**self).timer_reset(id, deadline)
    }

    /// See [`Loop::start_timer`].
    pub fn start_timer(
        &mut self,
        set: crate::TimerSet,
        deadline: u64,
        key: u64,
    ) -> Result<crate::TimerId, IdError> {
        (**self).start_timer(set, deadline, key)
    }

    /// See [`Loop::reset_timer`].
    pub fn reset_timer(&mut self, id: crate::TimerId, deadline: u64) -> Result<(), IdError> {
        (**self).reset_timer(id, deadline)
    }
}

impl<B: Backend> OwnedLoop<B> {
    /// Creates a loop (the same as [`Loop::new`]).
    pub fn new(opts: Options) -> io::Result<OwnedLoop<B>> {
        let (backend, wake) = B::new(&opts)?;
        Ok(OwnedLoop {
            s: Inner {
                backend,
                tag: NEXT_TAG.fetch_add(1, Ordering::Relaxed),
                submissions: Queue::new(),
                completions: Queue::new(),
                cancels_waiting: Queue::new(),
                async_waits: Queue::new(),
                timers: TimerWheel::new(),
                sets: TimerSets::new(),
                in_set_callback: false,
                base: Instant::now(),
                now: Cell::new(0),
                now_stale: Cell::new(false),
                running: false,
                current: ptr::null_mut(),
                active: 0,
                stopped: false,
                skipped_polls: 0,
                orphans: Rc::new(Orphans::new()),
                pool: opts.thread_pool,
                pool_batch: Batch::new(),
                pool_in_flight: 0,
                recycler: Recycler::new(),
                shared: Arc::new(Shared {
                    done: Mpsc::new(),
                    wake,
                    parked: AtomicBool::new(false),
                }),
                _not_send: PhantomData,
            },
        })
    }
}

impl<B: Backend> Loop<B> {
    /// Creates a loop. The [`OwnedLoop`] runs it and drops it; it
    /// dereferences to `Loop` for everything else.
    // An associated function of the view, as libxev's `Loop.init`, so that
    // `Loop::new` reads as users expect.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(opts: Options) -> io::Result<OwnedLoop<B>> {
        OwnedLoop::new(opts)
    }

    /// Makes a pool of `count` receive buffers of `buf_size` bytes each for
    /// pooled receives on this loop ([`Op::recv_pool`]). Its memory is
    /// allocated here, once; on io_uring it is registered with the kernel
    /// as a provided-buffer ring (at most 32,768 buffers). Fails with
    /// `InvalidInput` for no buffers, empty buffers or buffers larger than
    /// 0x7fff_f000 bytes. A pool lives while a handle, a receive, a buffer
    /// of it or this loop does.
    pub fn add_buf_pool(&mut self, count: u16, buf_size: usize) -> io::Result<crate::BufPool> {
        let pool = crate::BufPool(Rc::new(crate::buf_pool::PoolInner::new(
            count, buf_size, self.s.tag,
        )?));
        self.s.backend.add_pool(&pool)?;
        Ok(pool)
    }

    /// The backend's name ("io_uring", "epoll", ...).
    pub fn backend_name(&self) -> &'static str {
        self.s.backend.name()
    }

    /// What the backend does on this system and why it is the one in use
    /// (a dynamic loop on epoll says why io_uring was not taken): for
    /// diagnostics and benchmark headers.
    pub fn capabilities(&self) -> crate::Capabilities {
        self.s.backend.capabilities()
    }

    /// Forgets the descriptor `fd` before its owner takes it out of the
    /// loop's hands (to hand it to another library, or to close it without
    /// [`Op::Close`](crate::Op::Close)): a readiness backend (epoll,
    /// kqueue, WASI) drops its registration and what it cached about the
    /// descriptor, so that a later descriptor with the same number starts
    /// afresh; io_uring cancels the multishots of the descriptor's pooled
    /// receives and accepts at once, dropping the data they read ahead and
    /// closing the connections they accepted ahead (see
    /// [`Op::recv_pool`](crate::Op::recv_pool) and
    /// [`Op::Accept`](crate::Op::Accept)); IOCP keeps nothing per
    /// descriptor. Call it when no operation on `fd` is in flight.
    pub fn forget(&mut self, fd: crate::RawHandle) {
        self.s.backend.forget(fd);
    }

    /// Vouches, for the next start of completion `id` (queued, parked,
    /// or rearmed from its own callback), that its operation's descriptor
    /// is the same open descriptor as when this loop last started an
    /// operation on it: neither closed nor handed out and its number
    /// reused since (the caller owns it and kept it open, as an async
    /// socket type does). That start then trusts the readiness backend's
    /// registration (epoll, kqueue, WASI) instead of re-checking it when
    /// the operation must wait: one `epoll_ctl` less per wait. io_uring
    /// and IOCP ignore it. A false vouch cannot cause undefined behaviour,
    /// but the operation may then wait forever on a reused number.
    /// [`Loop::op_mut`] drops the vouch (the operation may change).
    ///
    /// Errors: `Stale` for an id that names no live completion, `Busy`
    /// for one already started (in flight, or finished and waiting for its
    /// callback).
    pub fn vouch(&mut self, id: Id) -> Result<(), IdError> {
        self.flag_next_start(id, FLAG_VOUCHED)
    }

    /// Says, for the next start of completion `id` (queued, parked, or
    /// rearmed from its own callback), that its owner already tried its
    /// socket transfer at once and found the socket not ready, or wants
    /// it to wait in the kernel's queue with the tick's other operations:
    /// the io_uring backend then submits it without its own direct
    /// attempt (see the backend's docs). The readiness backends always
    /// make their attempt (it is what keeps their edge-triggered waits
    /// from missing data) and IOCP makes none; the result is the same
    /// either way. [`Loop::op_mut`] drops it.
    ///
    /// Errors: as [`Loop::vouch`].
    pub fn tried(&mut self, id: Id) -> Result<(), IdError> {
        self.flag_next_start(id, FLAG_TRIED)
    }

    /// Sets `flag` (a hint for one start) on the completion `id`, if it
    /// has not started yet.
    fn flag_next_start(&mut self, id: Id, flag: u8) -> Result<(), IdError> {
        let core = self.lookup(id).ok_or(IdError::Stale)?;
        // SAFETY: `core` is live; its flags belong to the loop.
        unsafe {
            match (*core).state {
                State::Queued | State::Dead | State::Running => {
                    (*core).flags |= flag;
                    Ok(())
                }
                _ => Err(IdError::Busy),
            }
        }
    }

    /// The backend itself, for the crate's unit tests.
    #[cfg(all(test, windows))]
    pub(crate) fn backend(&self) -> &B {
        &self.s.backend
    }

    /// Adds a new completion for `op`; `cb` runs when it finishes. The
    /// completion lives in memory the loop recycles from finished
    /// completions of the same type, so this allocates nothing in steady
    /// state. Nothing starts until the loop runs.
    pub fn add<F>(&mut self, op: Op, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Op, OpResult) -> Action + 'static,
    {
        let p = self.alloc_completion(op, cb);
        self.insert(p)
    }

    /// Like [`Loop::add`], with any [`Callback`] and without starting: the
    /// completion is parked (see [`Loop::add_parked`]).
    pub fn add_parked_callback<F: Callback<B>>(&mut self, op: Op, cb: F) -> Id {
        let p = self.alloc_completion(op, cb);
        self.insert_dead(p)
    }

    /// Builds a completion in recycled memory (see `recycle`).
    fn alloc_completion<F: Callback<B>>(&mut self, op: Op, cb: F) -> *mut Core {
        let (mem, gen) = self.s.recycler.alloc(Layout::new::<Completion<B, F>>());
        let mem = mem.cast::<Completion<B, F>>().as_ptr();
        // SAFETY: `mem` is an unused block of the right layout; the core
        // is its first field (#[repr(C)]).
        unsafe {
            mem.write(Completion::raw(op, cb, gen));
            ptr::addr_of_mut!((*mem).core)
        }
    }

    /// Moves a caller-allocated completion into recycled memory and frees
    /// the box (a copy of the value; nothing is dropped).
    fn adopt<F: Callback<B>>(&mut self, c: Box<Completion<B, F>>) -> *mut Core {
        let layout = Layout::new::<Completion<B, F>>();
        let (mem, gen) = self.s.recycler.alloc(layout);
        let mem = mem.cast::<Completion<B, F>>().as_ptr();
        let raw = Box::into_raw(c);
        // SAFETY: `raw` is a live, uniquely owned value of the same type;
        // after the copy its box memory is released without dropping the
        // value, which now lives (once) at `mem`.
        unsafe {
            ptr::copy_nonoverlapping(raw, mem, 1);
            std::alloc::dealloc(raw.cast(), layout);
            (*mem).core.gen = gen;
            ptr::addr_of_mut!((*mem).core)
        }
    }

    /// Adds a completion allocated by the caller. The loop owns it from now
    /// on (moved into the loop's completion memory); the returned [`Id`]
    /// names it until it is freed.
    pub fn add_completion<F: Callback<B>>(&mut self, c: Box<Completion<B, F>>) -> Id {
        let core = self.adopt(c);
        self.insert(core)
    }

    /// Names a new completion and queues it.
    fn insert(&mut self, core: *mut Core) -> Id {
        let id = self.insert_dead(core);
        // SAFETY: the core is live and dead, in no queue.
        unsafe { self.enqueue(core) };
        id
    }

    /// Names a new completion, leaving it dead.
    fn insert_dead(&mut self, core: *mut Core) -> Id {
        // SAFETY: `core` is live and ours alone.
        unsafe {
            (*core).state = State::Dead;
            Id::new(core.cast(), (*core).gen, self.s.tag)
        }
    }

    /// Adds a completion without starting it: it is parked (dead) until
    /// [`Loop::restart`] or [`Loop::timer_reset`]. Watchers use this to own
    /// one completion for their whole life and never allocate again.
    pub fn add_parked<F: Callback<B>>(&mut self, c: Box<Completion<B, F>>) -> Id {
        let core = self.adopt(c);
        self.insert_dead(core)
    }

    /// Cancels the completion `id` without a cancel completion of its own.
    /// The answer is the same on every backend:
    ///
    /// - `Ok(())`: it was in flight; its callback runs once with its
    ///   `Canceled` error.
    /// - [`CancelError::AlreadyFinished`]: too late: its result is already
    ///   in (or its callback is running, a thread-pool task is
    ///   mid-syscall, or a cancel of it is already under way); its callback
    ///   runs once with the result it got.
    /// - [`CancelError::NotFound`]: no completion by that id is in flight
    ///   (never added, parked, freed, or from another loop).
    pub fn cancel(&mut self, id: Id) -> Result<(), CancelError> {
        let t = self.lookup(id).ok_or(CancelError::NotFound)?;
        // SAFETY: `t` is live.
        match unsafe { self.cancel_target(t) } {
            0 => Ok(()),
            r => Err(CancelError::from_raw(r)),
        }
    }

    /// Runs the loop in `mode`. Errors only when the kernel interface fails
    /// (operation errors go to their callbacks). A callback may run the
    /// loop again (a nested run); every completion's callback still runs
    /// exactly once per result.
    ///
    /// A panic that escapes a callback ends the run and continues out of
    /// `run`; the completion whose callback panicked is freed first (its
    /// operation and callback dropped, exactly once; its id goes stale).
    /// Everything else stays as it was: the loop can be run again or
    /// dropped.
    pub fn run(&mut self, mode: RunMode) -> io::Result<()> {
        if self.s.in_set_callback {
            return Err(Self::run_from_set_callback());
        }
        let was_running = std::mem::replace(&mut self.s.running, true);
        // The callback that called this run, if it is nested.
        let outer = self.s.current;
        let res = panic::catch_unwind(AssertUnwindSafe(|| self.run_mode(mode)));
        self.s.running = was_running;
        // A tick that skipped its poll may leave started operations not yet
        // handed to the kernel (see `Backend::has_pending`): hand them over
        // however the run ends (its own error, if any, comes first).
        let flushed = self.s.backend.flush();
        match res {
            Ok(r) => r.and(flushed),
            Err(payload) => {
                let c = std::mem::replace(&mut self.s.current, outer);
                if c != outer && !c.is_null() {
                    // SAFETY: `current` is the live completion whose callback
                    // (called by this run's dispatch) just unwound: it is in
                    // no queue and nothing references it anymore.
                    unsafe { drop_completion(&mut self.s.recycler, c) };
                }
                panic::resume_unwind(payload)
            }
        }
    }

    /// The body of [`Loop::run`].
    fn run_mode(&mut self, mode: RunMode) -> io::Result<()> {
        self.s.stopped = false;
        self.adopt_orphans();
        match mode {
            RunMode::NoWait => {
                self.tick(false)?;
            }
            RunMode::Once => {
                while self.s.active > 0 && !self.s.stopped {
                    if self.tick(true)? > 0 {
                        break;
                    }
                }
            }
            RunMode::UntilDone => {
                while self.s.active > 0 && !self.s.stopped {
                    self.tick(true)?;
                }
            }
        }
        Ok(())
    }

    /// Ends the current [`Loop::run`] after the callback that called it (or
    /// before the next blocking wait). Completions stay in flight.
    pub fn stop(&mut self) {
        self.s.stopped = true;
    }

    /// Whether the last run ended because of [`Loop::stop`] (reset when the
    /// next run starts).
    pub fn stopped(&self) -> bool {
        self.s.stopped
    }

    /// The loop's monotonic clock, in milliseconds since the loop was
    /// created. While the loop runs (in callbacks) it is the time cached
    /// once per tick, as in libxev, so that every callback of a tick sees
    /// the same time and reading it costs nothing: read after the poll when
    /// the loop holds timers, else at the tick's first call of `now` (a
    /// loop without timers reads no clock). Outside a run it reads the
    /// clock, so a deadline computed after a long setup (`lp.now() + 700`,
    /// or [`Timer::run`](crate::watcher::Timer::run)) counts from when it
    /// was computed, not from the loop's last tick.
    pub fn now(&self) -> u64 {
        if !self.s.running || self.s.now_stale.get() {
            self.s.refresh_now();
        }
        self.s.now.get()
    }

    /// The loop time (the clock of [`Loop::now`] and of timer deadlines) of
    /// the instant `t`, rounded up to a whole millisecond, so that a timer
    /// for it never fires before `t`; 0 for an instant before the loop was
    /// created. Reads no clock: a deadline given as an [`Instant`] costs
    /// nothing to convert.
    pub fn ms_at(&self, t: Instant) -> u64 {
        let ms = t.saturating_duration_since(self.s.base).as_nanos().div_ceil(1_000_000);
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// Refreshes the cached clock that [`Loop::now`] returns in callbacks.
    pub fn update_now(&mut self) {
        self.s.refresh_now();
    }

    /// Completions in flight (including finished ones whose callback has
    /// not run yet) plus pending set timers ([`Loop::start_timer`]).
    pub fn active(&self) -> usize {
        self.s.active
    }

    /// Whether `id` names a completion that is in flight.
    pub fn is_active(&self, id: Id) -> bool {
        // SAFETY: lookup returns live completions only.
        self.lookup(id)
            .is_some_and(|c| unsafe { !matches!((*c).state, State::Dead | State::Running) })
    }

    /// Starts a parked completion again (as its operation now stands).
    pub fn restart(&mut self, id: Id) -> Result<(), IdError> {
        let core = self.dead_core(id)?;
        // SAFETY: the core is live and dead (in no queue).
        unsafe { self.enqueue(core) };
        Ok(())
    }

    /// The operation of a parked completion, to change it before
    /// [`Loop::restart`]. A [`Loop::vouch`] made for the completion no
    /// longer holds: it was made for the operation as it stood (its
    /// descriptor), which may now change.
    pub fn op_mut(&mut self, id: Id) -> Result<&mut Op, IdError> {
        let core = self.dead_core(id)?;
        // SAFETY: the core is live and dead: nothing else references it, and
        // the borrow of `self` keeps the loop from touching it meanwhile.
        unsafe {
            (*core).flags &= !(FLAG_VOUCHED | FLAG_TRIED);
            Ok(&mut (*core).op)
        }
    }

    /// Whether completion `id` carries a vouch, for the loop's unit tests.
    #[cfg(all(test, target_os = "linux"))]
    pub(crate) fn is_vouched(&self, id: Id) -> bool {
        // SAFETY: lookup returns live completions only.
        self.lookup(id)
            .is_some_and(|c| unsafe { (*c).flags & FLAG_VOUCHED != 0 })
    }

    /// Whether completion `id` carries a tried hint, for the loop's unit
    /// tests.
    #[cfg(all(test, target_os = "linux"))]
    pub(crate) fn is_tried(&self, id: Id) -> bool {
        // SAFETY: lookup returns live completions only.
        self.lookup(id)
            .is_some_and(|c| unsafe { (*c).flags & FLAG_TRIED != 0 })
    }

    /// Drops a parked completion (its id goes stale). From inside the
    /// completion's own callback, the completion is dropped when the
    /// callback returns, whatever it returns.
    pub fn free(&mut self, id: Id) -> Result<(), IdError> {
        let core = self.lookup(id).ok_or(IdError::Stale)?;
        // SAFETY: the core is live.
        unsafe {
            match (*core).state {
                State::Dead => {
                    self.release(core);
                    Ok(())
                }
                State::Running => {
                    (*core).flags |= FLAG_FREE;
                    Ok(())
                }
                _ => Err(IdError::Busy),
            }
        }
    }

    /// Moves a timer to a new absolute deadline, as libxev's `timer_reset`:
    /// a pending timer is moved, a parked (dead) timer is started, a timer
    /// whose result is waiting is taken back and moved, and a timer whose
    /// callback is running is re-armed with the new deadline when the
    /// callback returns (a second reset before then updates the deadline).
    pub fn timer_reset(&mut self, id: Id, deadline: u64) -> Result<(), IdError> {
        let core = self.lookup(id).ok_or(IdError::Stale)?;
        // SAFETY: the core is live; each arm keeps the queue invariants. A
        // running completion's op is borrowed by its callback, so it is not
        // touched here: its kind was recorded in `flags` before the call.
        unsafe {
            if (*core).state == State::Running {
                if (*core).flags & FLAG_TIMER == 0 {
                    return Err(IdError::WrongKind);
                }
                (*core).flags |= FLAG_RESET;
                // A running timer is in no wheel list: its slot is free.
                (*core).slot.reset_deadline = deadline;
                return Ok(());
            }
            let Op::Timer { deadline: d } = &mut (*core).op else {
                return Err(IdError::WrongKind);
            };
            match (*core).state {
                State::Timer => {
                    *d = deadline;
                    self.s.timers.update(core);
                }
                State::Queued => *d = deadline,
                State::Dead => {
                    *d = deadline;
                    self.enqueue(core);
                }
                // Canceled, with the `Canceled` not delivered yet: the
                // cancel stands (its callback gets it), then the timer is
                // re-armed with the new deadline, as from inside its
                // callback.
                State::Done if (*core).res == sys::CANCELED => {
                    (*core).flags |= FLAG_RESET;
                    (*core).slot.reset_deadline = deadline;
                }
                State::Done => {
                    *d = deadline;
                    self.s.completions.remove(core);
                    (*core).state = State::Timer;
                    self.s.timers.push(core);
                }
                State::Backend
                | State::Pool
                | State::Running
                | State::Async
                | State::CancelWait => return Err(IdError::Busy),
                State::Free => return Err(IdError::Stale),
            }
        }
        Ok(())
    }

    /// Frees the completion `id` whatever its state: a parked one at once;
    /// one in flight is canceled (if it still can be) and freed once its
    /// callback has run, whatever the callback returns; from inside its
    /// own callback, when the callback returns. What a watcher's `Drop`
    /// asks for (through [`Orphans`]).
    pub(crate) fn detach(&mut self, id: Id) -> Result<(), IdError> {
        let core = self.lookup(id).ok_or(IdError::Stale)?;
        // SAFETY: the core is live; `cancel_target` keeps the queue
        // invariants, and the flag is read by dispatch after the callback.
        unsafe {
            match (*core).state {
                State::Dead => self.release(core),
                State::Free => return Err(IdError::Stale),
                State::Running | State::Done | State::CancelWait => (*core).flags |= FLAG_FREE,
                State::Queued | State::Timer | State::Async | State::Backend | State::Pool => {
                    self.cancel_target(core);
                    (*core).flags |= FLAG_FREE;
                }
            }
        }
        Ok(())
    }

    /// The queue through which watchers dropped without the loop at hand
    /// hand their completions and descriptors back to it.
    pub(crate) fn orphans(&self) -> Rc<Orphans<B>> {
        Rc::clone(&self.s.orphans)
    }

    /// Handles what dropped watchers left in [`Orphans`] (when a run
    /// starts, once per tick, and after each callback, so that a watcher
    /// dropped by a callback is released as `free` would release it).
    #[inline]
    fn adopt_orphans(&mut self) {
        if self.s.orphans.is_pending() {
            self.adopt_pending_orphans();
        }
    }

    #[cold]
    fn adopt_pending_orphans(&mut self) {
        while let Some(o) = self.s.orphans.pop() {
            match o {
                // Stale already: nothing left to free.
                Orphan::Free(id) => drop(self.detach(id)),
                Orphan::Adopt(a) => a.adopt(self),
            }
        }
    }

    /// The live completion `id` names, if any.
    fn lookup(&self, id: Id) -> Option<*mut Core> {
        if id.tag != self.s.tag {
            return None; // another loop's id: never followed
        }
        let c = id.addr().cast::<Core>();
        // SAFETY: every id this loop handed out points at a block of its
        // recycler, which stays allocated (and its `gen` and `state`
        // initialised) until the loop is dropped; reading two fields through
        // the raw pointer creates no reference.
        let live = unsafe { (*c).gen == id.gen && (*c).state != State::Free };
        live.then_some(c)
    }

    fn dead_core(&self, id: Id) -> Result<*mut Core, IdError> {
        let core = self.lookup(id).ok_or(IdError::Stale)?;
        // SAFETY: the core is live.
        if unsafe { (*core).state } != State::Dead {
            return Err(IdError::Busy);
        }
        Ok(core)
    }

    /// Drops a live completion that is in no queue, backend or pool, and
    /// recycles its memory (its ids go stale).
    fn release(&mut self, core: *mut Core) {
        // SAFETY: the caller passes a live, unreferenced core from this
        // loop's recycler.
        unsafe { drop_completion(&mut self.s.recycler, core) };
    }

    /// Puts a dead completion on the submission queue.
    unsafe fn enqueue(&mut self, core: *mut Core) {
        // SAFETY: the caller passes a live, dead core.
        unsafe {
            (*core).state = State::Queued;
            self.s.submissions.push_back(core);
        }
        self.s.active += 1;
    }

    /// Marks a core finished with `res` and queues its callback.
    unsafe fn finish(completions: &mut Queue, core: *mut Core, res: i32) {
        // SAFETY: the caller passes a live core that is in no queue.
        unsafe {
            (*core).res = res;
            (*core).state = State::Done;
            completions.push_back(core);
        }
    }

    /// One pass: returns how many callbacks ran.
    fn tick(&mut self, wait: bool) -> io::Result<usize> {
        self.adopt_orphans();
        self.start_submissions();
        // The clock is read here and after polling only for the timers
        // (what expired, how long to wait); `now` reads it when asked.
        self.timers_clock();
        self.poll_asyncs();
        let mut timeout = if !wait || !self.s.completions.is_empty() || self.s.stopped {
            Some(Duration::ZERO)
        } else {
            let next = match (
                self.s.timers.next_expiration(),
                self.s.sets.next_expiration(),
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            next.map(|d| Duration::from_millis(d.saturating_sub(self.s.now.get())))
        };
        // About to block with async waits pending: from now on notifiers
        // must wake us; re-check their flags once more after saying so.
        let parked = timeout != Some(Duration::ZERO) && !self.s.async_waits.is_empty();
        if parked {
            self.s.shared.park();
            self.poll_asyncs();
            if !self.s.completions.is_empty() {
                timeout = Some(Duration::ZERO);
            }
        }
        // Callbacks are ready and the backend has nothing to submit or
        // report: skip its (zero-timeout) poll syscall, but poll at least
        // every `MAX_SKIPPED_POLLS` ticks so I/O results are never starved.
        let skip = wait
            && !parked
            && !self.s.completions.is_empty()
            && self.s.skipped_polls < MAX_SKIPPED_POLLS
            && !self.s.backend.has_pending();
        let woken = if skip {
            self.s.skipped_polls += 1;
            Ok(false)
        } else {
            self.s.skipped_polls = 0;
            let Inner {
                backend,
                completions,
                ..
            } = &mut self.s;
            backend.poll(timeout, &mut |core, res| {
                // SAFETY: the backend hands back a live core it held, once.
                unsafe { Self::finish(completions, core.as_ptr(), res) };
            })
        };
        if parked {
            self.s.shared.unpark();
        }
        let woken = woken?;
        if woken || self.s.pool_in_flight > 0 {
            self.collect_pool(woken);
        }
        self.poll_asyncs();
        if !self.timers_clock() {
            // Nothing can expire: the clock is read when asked for.
            self.s.now_stale.set(true);
        }
        if !self.s.cancels_waiting.is_empty() {
            self.finish_waiting_cancels();
        }
        let mut ran = self.dispatch();
        if self.has_set_timers() && !self.s.stopped {
            ran += self.dispatch_sets();
        }
        Ok(ran)
    }

    fn start_submissions(&mut self) {
        loop {
            let core = self.s.submissions.pop_front();
            if core.is_null() {
                break;
            }
            // SAFETY: queued cores are live and owned by the loop.
            unsafe { self.start(core) };
        }
        if !self.s.pool_batch.is_empty() {
            let batch = std::mem::take(&mut self.s.pool_batch);
            if let Some(pool) = &self.s.pool {
                // SAFETY: every task in the batch is embedded in a live core
                // that the loop leaves alone until the pool hands it back
                // (state Pool; Drop waits for pool_in_flight to reach 0).
                unsafe { pool.schedule(batch) };
            }
        }
    }

    unsafe fn start(&mut self, core: *mut Core) {
        // SAFETY: `core` is live and was just popped from the submission
        // queue, so it is in no queue.
        unsafe {
            match (*core).op.plan() {
                Plan::Noop => Self::finish(&mut self.s.completions, core, 0),
                Plan::Timer => {
                    (*core).state = State::Timer;
                    self.s.timers.push(core);
                }
                Plan::Cancel(target) => self.start_cancel(core, target),
                Plan::AsyncWait(a) => {
                    a.register(&self.s.shared);
                    if a.consume() {
                        Self::finish(&mut self.s.completions, core, 0);
                    } else {
                        (*core).state = State::Async;
                        self.s.async_waits.push_back(core);
                    }
                }
                Plan::Pool => self.hand_to_pool(core, true),
                // A pool's buffers are registered with (or taken by) the
                // backend of the loop that made it.
                Plan::Ready { .. } if matches!(&(*core).op, Op::RecvPool(r) if r.pool.0.tag != self.s.tag) => {
                    Self::finish(&mut self.s.completions, core, crate::buf_pool::FOREIGN_POOL)
                }
                Plan::Ready { .. } | Plan::Once | Plan::File | Plan::Close { .. } => match self
                    .s
                    .backend
                    .start(NonNull::new_unchecked(core))
                {
                    Start::Pending => (*core).state = State::Backend,
                    Start::Done(res) => Self::finish(&mut self.s.completions, core, res),
                    Start::Pool => self.hand_to_pool(core, false),
                },
            }
            // A vouch or a tried hint holds for one start.
            (*core).flags &= !(FLAG_VOUCHED | FLAG_TRIED);
        }
    }

    /// Queues `core` for the thread pool (scheduled at the end of the
    /// tick), or finishes it with `NO_THREAD_POOL` when the loop has none.
    /// A `discardable` operation (one with no side effects: a name lookup)
    /// can be canceled while a worker runs it: its result is then thrown
    /// away and it ends with `Canceled`.
    ///
    /// # Safety
    /// `core` is live and in no queue.
    unsafe fn hand_to_pool(&mut self, core: *mut Core, discardable: bool) {
        // SAFETY: per the contract; the worker gets the core only through
        // the batch scheduled after this.
        unsafe {
            // WASI has no threads, so no pool: pool work is unsupported.
            if cfg!(target_os = "wasi") {
                return Self::finish(&mut self.s.completions, core, crate::error::UNSUPPORTED);
            }
            if self.s.pool.is_none() {
                return Self::finish(&mut self.s.completions, core, NO_THREAD_POOL);
            }
            (*core).state = State::Pool;
            (*core).pool_state.store(POOL_QUEUED, Ordering::Relaxed);
            if discardable {
                (*core).flags |= FLAG_DISCARDABLE;
            } else {
                (*core).flags &= !FLAG_DISCARDABLE;
            }
            // The way back to this loop, for the worker.
            (*core).slot.pool = Arc::as_ptr(&self.s.shared);
            self.s.pool_in_flight += 1;
            self.s.pool_batch.push(handoff::as_task(core));
        }
    }

    unsafe fn start_cancel(&mut self, cancel: *mut Core, target: Id) {
        let res = match self.lookup(target) {
            None => sys::NOT_FOUND,
            Some(t) if t == cancel => sys::NOT_FOUND,
            // SAFETY: `t` is live (from lookup).
            Some(t) => unsafe { self.cancel_target(t) },
        };
        // SAFETY: `cancel` is live and in no queue; `lookup` finds live cores.
        unsafe {
            if self.result_pending(target) {
                // The target's result is still on its way (io_uring's CQE,
                // a pool task, or the target is itself a cancel waiting for
                // its own target): the cancel completes after it, with `res`.
                (*cancel).res = res;
                (*cancel).state = State::CancelWait;
                self.s.cancels_waiting.push_back(cancel);
            } else {
                Self::finish(&mut self.s.completions, cancel, res);
            }
        }
    }

    /// Whether `id` names a completion whose result has not arrived yet
    /// from where it is performed (the backend, the pool) or that is itself
    /// a cancel waiting for its target: a cancel of it completes after it.
    fn result_pending(&self, id: Id) -> bool {
        // SAFETY: `lookup` returns live cores only; reading the state.
        self.lookup(id).is_some_and(|t| unsafe {
            matches!((*t).state, State::Backend | State::Pool | State::CancelWait)
        })
    }

    /// Finishes the cancels whose targets have delivered their results
    /// (called after results are collected, before callbacks run, so that
    /// a cancel's callback runs after its target's).
    fn finish_waiting_cancels(&mut self) {
        let mut c = self.s.cancels_waiting.front();
        while !c.is_null() {
            // SAFETY: `cancels_waiting` holds live cancel cores in state
            // CancelWait, whose ops nothing borrows; `next` is read before
            // `c` may leave the queue.
            unsafe {
                let next = (*c).next;
                let target = match &(*c).op {
                    Op::Cancel { target } => *target,
                    _ => Id::DETACHED,
                };
                if !self.result_pending(target) {
                    self.s.cancels_waiting.remove(c);
                    // A cancel the backend accepted can still lose the race
                    // on a completion port (the operation finished before
                    // the kernel stopped it): when the target's result is
                    // not a cancellation, the cancel came too late.
                    let mut res = (*c).res;
                    if res == 0 {
                        if let Some(t) = self.lookup(target) {
                            if (*t).state == State::Done && (*t).res != sys::CANCELED {
                                res = sys::TOO_LATE;
                            }
                        }
                    }
                    Self::finish(&mut self.s.completions, c, res);
                }
                c = next;
            }
        }
    }

    /// Cancels the live completion `t` and returns the cancel's raw result:
    /// 0 (its callback will get `Canceled`), `-EALREADY` (too late: its
    /// result is in, its callback is running, a pool task is mid-syscall,
    /// or a cancel of it is already under way) or `-ENOENT` (not in
    /// flight), or another negated errno when the kernel interface failed.
    unsafe fn cancel_target(&mut self, t: *mut Core) -> i32 {
        // SAFETY: `t` is live (caller); each arm moves it out of exactly the
        // structure that holds it before finishing it.
        unsafe {
            if (*t).flags & FLAG_CANCELING != 0 {
                return sys::TOO_LATE;
            }
            match (*t).state {
                State::Dead | State::Free => sys::NOT_FOUND,
                State::Done | State::Running | State::CancelWait => sys::TOO_LATE,
                State::Queued => {
                    self.s.submissions.remove(t);
                    Self::finish(&mut self.s.completions, t, sys::CANCELED);
                    0
                }
                State::Timer => {
                    self.s.timers.remove(t);
                    Self::finish(&mut self.s.completions, t, sys::CANCELED);
                    0
                }
                State::Async => {
                    self.s.async_waits.remove(t);
                    Self::finish(&mut self.s.completions, t, sys::CANCELED);
                    0
                }
                State::Pool => {
                    let state = &(*t).pool_state;
                    let queued = state.compare_exchange(
                        POOL_QUEUED,
                        POOL_CANCELED,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    // A discardable operation a worker is running is
                    // canceled too: the worker throws its result away.
                    let discarded = queued.is_err()
                        && (*t).flags & FLAG_DISCARDABLE != 0
                        && state
                            .compare_exchange(
                                POOL_RUNNING,
                                POOL_DISCARDED,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            )
                            .is_ok();
                    if queued.is_ok() || discarded {
                        (*t).flags |= FLAG_CANCELING;
                        0
                    } else {
                        sys::TOO_LATE
                    }
                }
                State::Backend => {
                    let r = self.s.backend.cancel(NonNull::new_unchecked(t));
                    match r.target {
                        Some(tr) => Self::finish(&mut self.s.completions, t, tr),
                        None if r.cancel == 0 => (*t).flags |= FLAG_CANCELING,
                        None => {}
                    }
                    // The loop lent it to the backend, which no longer
                    // has it pending: its result is in.
                    if r.cancel == sys::NOT_FOUND {
                        sys::TOO_LATE
                    } else {
                        r.cancel
                    }
                }
            }
        }
    }

    /// Completes every async wait whose handle was notified.
    fn poll_asyncs(&mut self) {
        let mut c = self.s.async_waits.front();
        while !c.is_null() {
            // SAFETY: `async_waits` holds live cores in state Async, whose
            // ops nothing borrows; `next` is read before `c` may leave.
            unsafe {
                let next = (*c).next;
                if let Op::AsyncWait(a) = &(*c).op {
                    if a.consume() {
                        self.s.async_waits.remove(c);
                        Self::finish(&mut self.s.completions, c, 0);
                    }
                }
                c = next;
            }
        }
    }

    /// When the loop holds timers (completions or set timers): reads the
    /// clock and moves the timer completions due to the completion queue
    /// (set timers fire in `dispatch_sets`). Returns whether it holds any.
    fn timers_clock(&mut self) -> bool {
        let completions = !self.s.timers.is_empty();
        if !completions && !self.has_set_timers() {
            return false;
        }
        self.update_now();
        if completions {
            self.expire_timers();
        }
        true
    }

    fn expire_timers(&mut self) {
        while let Some(core) = self.s.timers.pop_expired(self.s.now.get()) {
            // SAFETY: the wheel holds live cores; this one just left it.
            unsafe { Self::finish(&mut self.s.completions, core, 0) };
        }
    }

    fn collect_pool(&mut self, woken: bool) {
        if woken && !B::WAKE_EDGE {
            self.s.shared.wake.drain();
        }
        for task in self.s.shared.done.pop_all() {
            let core = task.cast::<Core>().as_ptr();
            self.s.pool_in_flight -= 1;
            // SAFETY: the pool handed the task back, so the core is ours
            // again; it is in no queue.
            unsafe {
                let res = (*core).res;
                Self::finish(&mut self.s.completions, core, res);
            }
        }
    }

    /// Calls the callbacks of every finished completion; returns how many.
    fn dispatch(&mut self) -> usize {
        let mut n = 0;
        loop {
            let core = self.s.completions.pop_front();
            if core.is_null() {
                break;
            }
            n += 1;
            self.s.active -= 1;
            // SAFETY: completed cores are live and owned by the loop. During
            // the callback the loop reaches this completion only through raw
            // pointers to fields other than `op` and the callback (state,
            // flags, slot, gen), so the two `&mut` borrows the vtable's
            // `call` hands to the callback are never aliased; `self` is not
            // used while the callback holds the loop.
            unsafe {
                (*core).state = State::Running;
                let raw = (*core).res;
                let op = &mut *ptr::addr_of_mut!((*core).op);
                if matches!(op, Op::Timer { .. }) {
                    (*core).flags |= FLAG_TIMER;
                }
                let res = op.result(raw);
                let call = (*core).vtable.call;
                // Should the callback panic, `run` frees it.
                let outer = std::mem::replace(&mut self.s.current, core);
                let action = call(core, (self as *mut Self).cast(), res);
                self.s.current = outer;
                self.adopt_orphans();
                let flags = std::mem::take(&mut (*core).flags);
                if flags & FLAG_FREE != 0 {
                    self.release(core);
                } else if flags & FLAG_RESET != 0 {
                    let deadline = (*core).slot.reset_deadline;
                    if let Op::Timer { deadline: d } = &mut (*core).op {
                        *d = deadline;
                    }
                    (*core).state = State::Dead;
                    self.enqueue(core);
                } else {
                    // A vouch or a tried hint given from the callback
                    // holds for the next start.
                    (*core).flags |= flags & (FLAG_VOUCHED | FLAG_TRIED);
                    match action {
                        Action::Rearm => self.enqueue(core),
                        Action::Park => (*core).state = State::Dead,
                        Action::Disarm => self.release(core),
                    }
                }
            }
            if self.s.stopped {
                break;
            }
        }
        n
    }
}

/// Drops a completion's value and recycles its memory: its generation is
/// bumped and its state set to `Free`, so every id naming it goes stale.
///
/// # Safety
/// `c` is live, referenced by nothing, and came from `recycler`.
unsafe fn drop_completion(recycler: &mut Recycler, c: *mut Core) {
    // SAFETY: per the contract. The completion is marked free *before* its
    // value is dropped, so that a panic in a user `Drop` (of the callback's
    // captures or of the op's contents) can never lead to a second drop:
    // every id is already stale and the loop's teardown skips free blocks.
    // Dropping in place ends the op and callback (drop glue still drops the
    // remaining fields if one panics); `gen`, `state` and `vtable` are
    // plain data outside the value that stay readable afterwards. If the
    // drop panics the block is simply not reused (the loop frees its chunk
    // when it is dropped).
    unsafe {
        let vt = (*c).vtable;
        Core::mark_free(c);
        (vt.drop)(c);
        recycler.free(NonNull::new_unchecked(c), vt.layout);
    }
}

impl<B: Backend> Drop for Inner<B> {
    fn drop(&mut self) {
        // 1. The kernel lets go of everything it holds.
        let Inner {
            backend, recycler, ..
        } = self;
        recycler.for_each_live(|core| {
            // SAFETY: live cores; state Backend means the backend holds it.
            unsafe {
                if (*core).state == State::Backend {
                    backend.abandon(NonNull::new_unchecked(core));
                }
            }
        });
        self.backend.drain(&mut |_, _| {});
        if self.backend.in_flight() > 0 {
            // The kernel interface failed while operations were in flight:
            // their memory may still be written, so it must never be freed.
            // Pool workers may still reach `Shared` through them: leak it too.
            std::mem::forget(std::mem::replace(&mut self.recycler, Recycler::new()));
            std::mem::forget(Arc::clone(&self.shared));
            return;
        }
        // 2. Tasks not yet given to the pool are simply dropped below; tasks
        //    in the pool come back before we free their memory.
        self.pool_batch = Batch::new();
        while self.pool_in_flight > 0 {
            // Reset the waker before looking, so that a task handed back
            // after the look signals it anew (the backend's drain may have
            // consumed an earlier signal).
            self.shared.wake.drain();
            let n = self.shared.done.pop_all().count();
            self.pool_in_flight -= n;
            if self.pool_in_flight > 0 {
                self.shared.wake.wait();
            }
        }
        // 3. Every completion is ours alone now: drop them all (their
        //    callbacks never fire); the recycler then frees the memory. Each
        //    is marked free before its value is dropped, and a panic in one
        //    user `Drop` does not stop the others from being dropped: the
        //    first panic continues once all of them are.
        let mut live = Vec::new();
        self.recycler.for_each_live(|c| live.push(c));
        let mut panicked = None;
        for c in live {
            // SAFETY: nothing references it anymore; it is dropped once,
            // after being marked free. A queued close's descriptor was
            // handed to the loop to close and the close never ran, so
            // closing it here closes it once (as running it would have).
            let dropped = unsafe {
                // An async wait that took a notification whose callback will
                // never run gives it back, so the next wait sees it.
                if let (State::Done, true, Op::AsyncWait(a)) = ((*c).state, (*c).res >= 0, &(*c).op)
                {
                    a.restore();
                }
                // A close that was queued but never started still owns its
                // descriptor, which nothing else will close: close it now
                // (nothing of this loop waits on it anymore).
                if let (State::Queued, Op::Close { fd }) = ((*c).state, &(*c).op) {
                    sys::close_quietly(*fd);
                }
                Core::mark_free(c);
                let drop = (*c).vtable.drop;
                panic::catch_unwind(AssertUnwindSafe(|| drop(c)))
            };
            if let Err(payload) = dropped {
                panicked.get_or_insert(payload);
            }
        }
        // 4. The timer sets' callbacks, likewise.
        for cb in self.sets.take_callbacks() {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(cb))) {
                panicked.get_or_insert(payload);
            }
        }
        // 5. Watchers dropped from now on release directly; what they left
        //    here is released now (descriptors close as their last owner
        //    goes: nothing of this loop uses them anymore).
        self.orphans.alive.set(false);
        let orphans = std::mem::take(&mut *self.orphans.list.borrow_mut());
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(orphans))) {
            panicked.get_or_insert(payload);
        }
        if let Some(payload) = panicked {
            panic::resume_unwind(payload);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests;
