//! Completions: a request (an [`Op`]) together with the callback that
//! receives its result, and why the loop owns them.
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
//! into a buffer long after any call returned. The design brief names two sound
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

use crate::backend::Backend;
use crate::event_loop::Loop;
use crate::op::{Op, OpResult};
use crate::record::{Action, Core, VTable};

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
    // loop touches only other fields (state, flags, slot) meanwhile.
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
