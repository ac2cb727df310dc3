//! The completion record: the part of every completion that the loop, the
//! backends, the timer wheel, the queues and the thread pool work with
//! ([`Core`]), where it is in its life ([`State`]), how the loop calls and
//! drops the concrete completion around it ([`VTable`]), and what a callback
//! asks for next ([`Action`]). The typed completion (operation plus
//! callback) and the ownership model are in `event_loop::completion`.

use std::sync::atomic::AtomicU8;

use crate::op::{Op, OpResult};
use crate::shared::Shared;
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
/// with the deadline kept in `slot.reset_deadline` after the callback
/// returns.
pub(crate) const FLAG_RESET: u8 = 2;
/// Set on a completion held by the backend or the pool once a cancel of it
/// succeeded, until its callback runs: a second cancel is too late.
pub(crate) const FLAG_CANCELING: u8 = 8;
/// On the thread pool: the operation has no side effects, so a cancel may
/// discard the result of a worker that is running it.
pub(crate) const FLAG_DISCARDABLE: u8 = 16;
/// Set by [`crate::generic::Loop::vouch`]: the completion's owner vouched
/// that its descriptor stayed open since the loop last started an
/// operation on it; read by a readiness backend when the completion
/// starts, and cleared by that start.
pub(crate) const FLAG_VOUCHED: u8 = 32;
/// Set by [`crate::generic::Loop::tried`]: the completion's owner already
/// tried its transfer at once (or wants it to wait in the backend); read
/// by the io_uring backend when the completion starts, and cleared by
/// that start.
pub(crate) const FLAG_TRIED: u8 = 64;
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
/// work with, at offset 0 of every [`Completion`](crate::generic::Completion).
///
/// `next` and `prev` link the completion into whichever one loop queue holds
/// it; while the thread pool holds it, the same 16 bytes are the pool's
/// intrusive task node (see `Core::as_task`). `gen` and `state` are
/// never overwritten once the memory was first used, so an [`crate::Id`] can be
/// checked against them even after the completion was freed (its memory
/// stays with the loop until the loop is dropped).
///
/// Opaque outside the crate: it appears in the [`Backend`](crate::backend::Backend) contract only so
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
    /// What the completion's current holder keeps in it (see [`Slot`]).
    pub(crate) slot: Slot,
    pub(crate) op: Op,
}

/// Per-holder data of a completion. Which field is live is decided by
/// [`Core::state`] (and, for the loop's own fields, a flag), so no tag is
/// stored; each holder writes its field before it reads it.
///
/// A backend that needs a platform record per operation (an `OVERLAPPED`
/// on Windows, say) adds its field here; the union grows only on that
/// platform.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union Slot {
    /// Nothing stored (a fresh or parked completion).
    pub(crate) none: (),
    /// `FLAG_RESET`: the deadline of a `timer_reset` requested while the
    /// timer's callback runs or its result waits; applied when the callback
    /// returns.
    pub(crate) reset_deadline: u64,
    /// `State::Backend` on a readiness backend: the operation's mode (a
    /// connect in progress, how a blocking descriptor is handled).
    pub(crate) readiness: u64,
    /// `State::Backend` on the io_uring backend: the descriptor (plus one)
    /// whose counts of ordered operations in the ring this operation holds,
    /// and which counts (see `IoUring::hold`), or 0 for none.
    #[cfg(target_os = "linux")]
    pub(crate) uring_ordered: u64,
    /// `State::Pool`: the loop's [`Shared`], through which the worker hands
    /// the task back (a pointer, so its provenance travels with it).
    pub(crate) pool: *const Shared,
    /// `State::Backend` on the IOCP backend: the operation's `OVERLAPPED`
    /// and extras.
    #[cfg(windows)]
    pub(crate) iocp: crate::sys::types::IocpSlot,
}

// The thread pool's task node overlays `next` and `prev` (two pointers, on
// 32-bit targets as on 64-bit ones).
const _: () = {
    let ptr = std::mem::size_of::<*mut Core>();
    assert!(std::mem::size_of::<Task>() == 2 * ptr);
    assert!(std::mem::align_of::<Task>() <= std::mem::align_of::<*mut Core>());
    assert!(std::mem::offset_of!(Core, next) == 0);
    assert!(std::mem::offset_of!(Core, prev) == ptr);
};

impl Core {
    /// Marks `c` freed: bumps its generation and sets `Free`, so that every
    /// id naming it is stale and the loop's teardown skips it. Done before
    /// its value is dropped, so that a panicking user `Drop` can never lead
    /// to a second drop.
    ///
    /// # Safety
    /// `c` is a live core that nothing else is using.
    pub(crate) unsafe fn mark_free(c: *mut Core) {
        // SAFETY: per the contract; two plain fields outside the value.
        unsafe {
            (*c).gen = (*c).gen.wrapping_add(1);
            (*c).state = State::Free;
        }
    }

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
            slot: Slot { none: () },
            op,
        }
    }
}
