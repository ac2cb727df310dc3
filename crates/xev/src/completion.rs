//! Completions: a request (an [`Op`]) together with the callback that
//! receives its result.
//!
//! [`Loop::add`]: crate::generic::Loop::add
//! [`Loop::add_completion`]: crate::generic::Loop::add_completion
//! [`Loop::restart`]: crate::generic::Loop::restart
//!
//! # Ownership model (and why it differs from libxev's)
//!
//! libxev lets the caller own each completion's memory and trusts the caller
//! not to move or free it while the kernel may still write into it. In safe
//! Rust that trust must be enforced, and with io_uring the kernel can write
//! into a buffer long after any call returned. DESIGN.md names two sound
//! models: caller-owned completions pinned once added (whose `Drop` must then
//! cancel and *wait* for the kernel, from wherever the caller happens to drop
//! them, with the loop reachable from every completion), or completions held
//! in storage the loop owns. xev takes the second:
//!
//! - A completion is handed to the loop ([`Loop::add`] builds it in place;
//!   [`Loop::add_completion`] moves a caller-built `Box` in) and lives in
//!   the loop's completion memory until it is freed. Nothing outside the
//!   loop can reach it, so it cannot be dropped, moved or leaked early; the
//!   callback gets the operation back by `&mut`, buffer included.
//! - A finished completion is reused without allocating by returning
//!   [`Action::Rearm`] (optionally after changing its operation) or
//!   [`Action::Park`] (kept, dead, for [`Loop::restart`]). A disarmed one is
//!   dropped and its memory recycled for the next completion of the same
//!   type, so adding new completions allocates nothing in steady state
//!   either.
//! - Callers name completions by [`crate::Id`]: address, generation and the
//!   loop's tag. The loop never returns completion memory to the allocator
//!   before it is dropped, so it can check any id of its own in O(1) without
//!   any table of its own; a stale id is an error, never a dangling access.
//! - Dropping the loop first makes the kernel let go of every completion
//!   (cancel, then wait for each), then drops them without calling them;
//!   `mem::forget` of the loop leaks them, which is safe.
//!
//! Compared with pinned caller-owned completions this costs nothing at run
//! time (one thin pointer per completion, no per-operation allocation, no
//! cancel-and-wait in arbitrary `Drop`s), and it is simpler to keep sound:
//! all unsafe pointer handling sits in the loop and its backends, and the
//! loop's unit tests run under Miri.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU8;

use crate::backend::Backend;
use crate::event_loop::Loop;
use crate::op::{Op, OpResult};
use crate::thread_pool::Task;

/// What the loop should do with a completion after its callback returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The completion is finished: the loop drops it (its callback and its
    /// operation, with any buffer still inside) and its [`Id`](crate::Id) goes stale.
    Disarm,
    /// Submit the completion's operation again, exactly as it now stands
    /// (the callback may have changed it). Allocates nothing.
    Rearm,
    /// Keep the completion, dead, in the loop: its [`Id`](crate::Id) stays valid for
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
#[repr(u8)]
pub(crate) enum State {
    /// Not in flight: freshly created, or parked.
    Dead,
    /// Waiting in the loop's submission queue for the next tick.
    Queued,
    /// Handed to the backend (kernel or readiness waiter list).
    Backend,
    /// In the loop's timer wheel.
    Timer,
    /// Handed to the thread pool.
    Pool,
    /// Its result is ready; waiting in the completion queue.
    Done,
    /// Its callback is running.
    Running,
    /// An async wait, waiting in the loop's list of async waits.
    Async,
    /// A cancel whose answer (in `res`) is known and whose target's result
    /// has not arrived yet: it completes right after the target does.
    CancelWait,
    /// Freed: its memory waits in the loop's recycler for reuse. Ids that
    /// still name it are stale.
    Free,
}

/// Set by [`crate::generic::Loop::free`] on a running completion: free it
/// after the callback returns.
pub(crate) const FLAG_FREE: u8 = 1;
/// Set by [`crate::generic::Loop::timer_reset`] on a running timer: rearm it
/// with the deadline kept in `scratch` after the callback returns.
pub(crate) const FLAG_RESET: u8 = 2;
/// Set on a completion held by the backend or the pool once a cancel of it
/// succeeded, until its callback runs: a second cancel is too late.
pub(crate) const FLAG_CANCELING: u8 = 8;
/// Set while a timer's callback runs (its op is borrowed by the callback,
/// so the loop records the kind here instead of reading the op).
pub(crate) const FLAG_TIMER: u8 = 4;

/// What the loop needs to know about a completion's concrete type: how to
/// call its callback and how to drop it. One static table per callback type
/// (libxev's function pointer, plus a destructor), so a completion is one
/// thin pointer and no `dyn` fat pointers need storing anywhere.
pub(crate) struct VTable {
    /// Calls the callback. Arguments: the completion, the loop
    /// (`*mut Loop<B>` erased), the typed result.
    pub(crate) call: unsafe fn(*mut Core, *mut (), OpResult) -> Action,
    /// Drops the completion's value in place (op and callback).
    pub(crate) drop: unsafe fn(*mut Core),
    /// The completion's memory layout (which recycler pool it belongs to).
    pub(crate) layout: std::alloc::Layout,
}

/// The part of a completion that the loop, the backends and the thread pool
/// work with, at offset 0 of every [`Completion`].
///
/// `next` and `prev` link the completion into whichever one loop queue holds
/// it; while the thread pool holds it, the same 16 bytes are the pool's
/// intrusive task node (see `Core::as_task`). `gen` and `state` are
/// never overwritten once the memory was first used, so an [`crate::Id`] can be
/// checked against them even after the completion was freed (its memory
/// stays with the loop until the loop is dropped).
///
/// Opaque outside the crate: it appears in the [`Backend`] contract only so
/// that the trait can be named; backends live in this crate.
#[repr(C)]
pub struct Core {
    pub(crate) next: *mut Core,
    pub(crate) prev: *mut Core,
    pub(crate) vtable: &'static VTable,
    /// Generation: bumped each time the memory is freed.
    pub(crate) gen: u32,
    /// Raw result: a non-negative value or a negated errno.
    pub(crate) res: i32,
    pub(crate) state: State,
    pub(crate) flags: u8,
    /// Thread-pool hand-off state (see `event_loop`'s pool functions).
    pub(crate) pool_state: AtomicU8,
    /// Which timer-wheel list holds the completion while `state == Timer`.
    pub(crate) timer_slot: u16,
    /// Per-state scratch word: a timer's sequence number in the wheel or
    /// the deadline of a reset requested while its callback runs; a
    /// readiness backend's per-operation state (a connect in progress); the
    /// loop's `Shared` while in the thread pool.
    pub(crate) scratch: u64,
    pub(crate) op: Op,
}

// The thread pool's task node overlays `next` and `prev`.
const _: () = {
    assert!(std::mem::size_of::<Task>() == 16);
    assert!(std::mem::align_of::<Task>() <= std::mem::align_of::<*mut Core>());
    assert!(std::mem::offset_of!(Core, next) == 0);
    assert!(std::mem::offset_of!(Core, prev) == 8);
};

impl Core {
    /// A bare core, for data-structure unit tests.
    #[cfg(test)]
    pub(crate) fn new_for_tests(op: Op) -> Core {
        static VT: VTable = VTable {
            call: |_, _, _| Action::Disarm,
            drop: |_| {},
            layout: std::alloc::Layout::new::<Core>(),
        };
        Core::new(op, &VT, 0)
    }

    pub(crate) fn new(op: Op, vtable: &'static VTable, gen: u32) -> Core {
        Core {
            next: std::ptr::null_mut(),
            prev: std::ptr::null_mut(),
            vtable,
            gen,
            res: 0,
            state: State::Dead,
            flags: 0,
            pool_state: AtomicU8::new(0),
            timer_slot: 0,
            scratch: 0,
            op,
        }
    }

    /// Turns the queue links of `c` into a thread-pool task node and
    /// returns it.
    ///
    /// # Safety
    /// `c` is live and in no loop queue (its links are free).
    pub(crate) unsafe fn as_task(c: *mut Core) -> NonNull<Task> {
        let t = c.cast::<Task>();
        // SAFETY: `Task` is #[repr(C)], 16 bytes, pointer-aligned, and `next`
        // and `prev` are the first 16 bytes of the #[repr(C)] `Core` (checked
        // above); nobody reads them as links until the pool hands the task
        // back and the loop relinks it. The pointer is derived from the whole
        // core, so the pool's `run` may reach the other fields.
        unsafe {
            t.write(Task::new(crate::event_loop::run_pool_task));
            NonNull::new_unchecked(t)
        }
    }
}

/// A completion: an operation and its callback, allocated once by the
/// caller and given to a loop with [`Loop::add_completion`] (or built and
/// added in one step, in memory the loop recycles, with [`Loop::add`]).
///
/// ```
/// use xev::{Action, Completion, Loop, Op, OpResult, RunMode};
/// let mut lp = Loop::new(Default::default()).unwrap();
/// let c = Completion::new(Op::Noop, |_lp: &mut Loop, _op: &mut Op, res: OpResult| {
///     assert!(matches!(res, OpResult::Noop(Ok(()))));
///     Action::Disarm
/// });
/// lp.add_completion(c);
/// lp.run(RunMode::UntilDone).unwrap();
/// ```
#[repr(C)]
pub struct Completion<B: Backend, F> {
    pub(crate) core: Core,
    _backend: PhantomData<fn() -> B>,
    pub(crate) cb: F,
}

/// The vtable of `Completion<B, F>`.
struct VT<B, F>(PhantomData<(B, F)>);

impl<B: Backend, F: Callback<B>> VT<B, F> {
    const TABLE: VTable = VTable {
        call: call::<B, F>,
        drop: drop_in_place::<B, F>,
        layout: std::alloc::Layout::new::<Completion<B, F>>(),
    };
}

/// # Safety
/// `c` is the core of a live `Completion<B, F>` not borrowed elsewhere, and
/// `lp` is the state of the `Loop<B>` that owns it (see
/// `event_loop::loop_from_erased`), not otherwise in use during the call.
unsafe fn call<B: Backend, F: Callback<B>>(c: *mut Core, lp: *mut (), res: OpResult) -> Action {
    let c = c.cast::<Completion<B, F>>();
    // SAFETY: per the contract; `op` and `cb` are disjoint fields, and the
    // loop touches only other fields (state, flags, scratch) meanwhile.
    unsafe {
        let op = &mut *std::ptr::addr_of_mut!((*c).core.op);
        let cb = &mut *std::ptr::addr_of_mut!((*c).cb);
        cb.call(&mut *crate::event_loop::loop_from_erased::<B>(lp), op, res)
    }
}

/// # Safety
/// `c` is the core of a live `Completion<B, F>` that nothing references.
unsafe fn drop_in_place<B: Backend, F: Callback<B>>(c: *mut Core) {
    // SAFETY: per the contract.
    unsafe { std::ptr::drop_in_place(c.cast::<Completion<B, F>>()) }
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
        Box::new(Completion::raw(op, cb, 0))
    }

    /// The completion value itself, with generation `gen` (the loop places
    /// it in recycled memory, continuing that memory's generations).
    pub(crate) fn raw(op: Op, cb: F, gen: u32) -> Self {
        Completion {
            core: Core::new(op, &VT::<B, F>::TABLE, gen),
            _backend: PhantomData,
            cb,
        }
    }
}

impl<B: Backend, F> Completion<B, F> {
    /// The operation.
    pub fn op(&self) -> &Op {
        &self.core.op
    }

    /// The operation, mutably (before the completion is added).
    pub fn op_mut(&mut self) -> &mut Op {
        &mut self.core.op
    }
}
