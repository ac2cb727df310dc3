//! Completions: a request (an [`Op`]) together with the callback that
//! receives its result.
//!
//! # Ownership model (and why it differs from libxev's)
//!
//! libxev lets the caller own each completion's memory and trusts the caller
//! not to move or free it while the kernel may still write into it. In safe
//! Rust that trust must be enforced, and with io_uring the kernel can write
//! into a buffer long after any call returned. xev therefore hands each
//! completion to the loop as a `Box`: the caller allocates it once, the loop
//! holds it while it is in flight (nothing else can reach it, so it cannot
//! be dropped, moved or leaked early), and the callback gets the operation
//! back by `&mut`. A completion is reused without allocating by returning
//! [`Action::Rearm`] (optionally after changing its operation) or
//! [`Action::Park`] (keep it, dead, for [`crate::Loop::restart`] later).
//! The loop stores completions in a slot table sized up front, so adding,
//! completing and rearming allocate nothing in steady state. Dropping the
//! loop first makes the kernel let go of every completion (cancel and wait),
//! and only then frees them; `mem::forget` of the loop leaks them, which is
//! safe.

use std::marker::PhantomData;
use std::sync::atomic::AtomicU8;

use crate::backend::Backend;
use crate::event_loop::{Loop, Shared};
use crate::op::{Id, Op, OpResult};
use crate::thread_pool::Task;

/// What the loop should do with a completion after its callback returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The completion is finished: the loop drops it (its callback and its
    /// operation, with any buffer still inside) and its [`Id`] goes stale.
    Disarm,
    /// Submit the completion's operation again, exactly as it now stands
    /// (the callback may have changed it). Allocates nothing.
    Rearm,
    /// Keep the completion, dead, in the loop: its [`Id`] stays valid for
    /// [`crate::Loop::restart`], [`crate::Loop::op_mut`],
    /// [`crate::Loop::timer_reset`] and [`crate::Loop::free`]. It is dropped
    /// with the loop at the latest.
    Park,
}

/// A callback: receives the loop, the completion's operation (mutable, with
/// its buffer) and the typed result. Implemented for every matching
/// `FnMut` closure.
pub trait Callback<B: Backend>: 'static {
    /// Handles one result.
    fn call(&mut self, lp: &mut Loop<B>, op: &mut Op, res: OpResult) -> Action;
}

impl<B, F> Callback<B> for F
where
    B: Backend,
    F: FnMut(&mut Loop<B>, &mut Op, OpResult) -> Action + 'static,
{
    #[inline]
    fn call(&mut self, lp: &mut Loop<B>, op: &mut Op, res: OpResult) -> Action {
        self(lp, op, res)
    }
}

/// Where a completion is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Not in flight: freshly created, or parked.
    Dead,
    /// Waiting in the loop's submission queue for the next tick.
    Queued,
    /// Handed to the backend (kernel or readiness waiter list).
    Backend,
    /// In the loop's timer heap.
    Timer,
    /// Handed to the thread pool.
    Pool,
    /// Its result is ready; waiting in the completion queue.
    Done,
    /// Its callback is running.
    Running,
}

/// Set by [`crate::Loop::free`] on a running completion: free it after the
/// callback returns.
pub(crate) const FLAG_FREE: u8 = 1;
/// Set by [`crate::Loop::timer_reset`] on a running timer: rearm it with
/// `reset_deadline` after the callback returns.
pub(crate) const FLAG_RESET: u8 = 2;
/// Set while a timer's callback runs (its op is borrowed by the callback,
/// so the loop records the kind here instead of reading the op).
pub(crate) const FLAG_TIMER: u8 = 4;

/// The part of a completion that the loop, the backends and the thread pool
/// work with. `#[repr(C)]` with the thread pool's task node first, so a
/// `*mut Task` handed back by the pool is also a `*mut Core`.
///
/// Opaque outside the crate: it appears in the [`Backend`] contract only so
/// that the trait can be named; backends live in this crate.
#[repr(C)]
pub struct Core {
    pub(crate) task: Task,
    /// Thread-pool hand-off state (see `event_loop`'s pool functions).
    pub(crate) pool_state: AtomicU8,
    pub(crate) state: State,
    pub(crate) flags: u8,
    pub(crate) id: Id,
    /// Raw result: a non-negative value or a negated errno.
    pub(crate) res: i32,
    /// Intrusive links for whichever one queue holds the completion.
    pub(crate) next: *mut Core,
    pub(crate) prev: *mut Core,
    /// Which timer-wheel list holds the completion while `state == Timer`.
    pub(crate) timer_slot: u16,
    /// Scratch space: the 8-byte eventfd counter io_uring reads into, or a
    /// readiness backend's per-operation state.
    pub(crate) scratch: u64,
    /// Deadline of a timer reset requested while its callback ran.
    pub(crate) reset_deadline: u64,
    /// The loop's shared state, for thread pool hand-back.
    pub(crate) shared: *const Shared,
    pub(crate) op: Op,
}

impl Core {
    /// A bare core, for data-structure unit tests.
    #[cfg(test)]
    pub(crate) fn new_for_tests(op: Op) -> Core {
        Core::new(op)
    }

    fn new(op: Op) -> Core {
        Core {
            task: Task::new(crate::event_loop::run_pool_task),
            pool_state: AtomicU8::new(0),
            state: State::Dead,
            flags: 0,
            id: Id { idx: 0, gen: 0 },
            res: 0,
            next: std::ptr::null_mut(),
            prev: std::ptr::null_mut(),
            timer_slot: 0,
            scratch: 0,
            reset_deadline: 0,
            shared: std::ptr::null(),
            op,
        }
    }
}

/// A completion: an operation and its callback, allocated once by the
/// caller and given to a loop with [`Loop::add_completion`] (or built and
/// added in one step with [`Loop::add`]).
///
/// ```
/// use xev::{Action, Completion, Loop, Op, OpResult, RunMode};
/// let mut lp = Loop::new(Default::default()).unwrap();
/// let c = Completion::new(Op::Noop, |_lp: &mut Loop, _op: &mut Op, res: OpResult| {
///     assert!(matches!(res, OpResult::Noop));
///     Action::Disarm
/// });
/// lp.add_completion(c);
/// lp.run(RunMode::UntilDone).unwrap();
/// ```
#[repr(C)]
pub struct Completion<B: Backend, F: ?Sized> {
    pub(crate) core: Core,
    _backend: PhantomData<fn() -> B>,
    pub(crate) cb: F,
}

impl<B: Backend, F> Completion<B, F>
where
    F: FnMut(&mut Loop<B>, &mut Op, OpResult) -> Action + 'static,
{
    /// Allocates a completion for `op` with the closure `cb`.
    pub fn new(op: Op, cb: F) -> Box<Self> {
        Self::with_callback(op, cb)
    }
}

impl<B: Backend, F: Callback<B>> Completion<B, F> {
    /// Allocates a completion for `op` with any [`Callback`] (a struct that
    /// implements it, for example).
    pub fn with_callback(op: Op, cb: F) -> Box<Self> {
        Box::new(Completion::raw(op, cb))
    }
}

impl<B: Backend, F> Completion<B, F> {
    /// The completion value itself (the loop places it in recycled memory).
    pub(crate) fn raw(op: Op, cb: F) -> Self {
        Completion {
            core: Core::new(op),
            _backend: PhantomData,
            cb,
        }
    }
}

impl<B: Backend, F: ?Sized> Completion<B, F> {
    /// The operation.
    pub fn op(&self) -> &Op {
        &self.core.op
    }

    /// The operation, mutably (before the completion is added).
    pub fn op_mut(&mut self) -> &mut Op {
        &mut self.core.op
    }
}

/// A completion with its callback type erased, as the loop stores it.
pub(crate) type Erased<B> = Completion<B, dyn Callback<B>>;
