//! The hand-off between a loop and the thread pool: a completion's queue
//! links become the pool's task node ([`as_task`]); a worker performs the
//! blocking operation and pushes the task back through the loop's
//! [`Shared`](crate::shared::Shared) queue; `pool_state` settles the race between a worker
//! starting the task and the loop canceling it.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::record::Core;
use crate::thread_pool::Task;

/// `pool_state`: waiting in the pool's queue.
pub(crate) const POOL_QUEUED: u8 = 0;
/// `pool_state`: a worker is performing it.
pub(crate) const POOL_RUNNING: u8 = 1;
/// `pool_state`: canceled before a worker took it.
pub(crate) const POOL_CANCELED: u8 = 2;
/// `pool_state`: canceled while a worker performed it (discardable
/// operations only): the worker reports `Canceled` instead of its result.
pub(crate) const POOL_DISCARDED: u8 = 3;
/// `pool_state`: the worker finished it with its own result.
const POOL_FINISHED: u8 = 4;

/// Runs on a pool thread: performs the blocking operation of the completion
/// that embeds `task`, then hands it back to its loop.
///
/// # Safety
/// `task` overlays the links of a live `Core` handed to the pool by
/// `Loop::start` (see [`as_task`]), whose `slot.pool` points at
/// the loop's live `Shared`; the loop does not touch the core until it pops
/// it from `Shared::done`.
unsafe fn run_pool_task(task: NonNull<Task>) {
    let core = task.cast::<Core>().as_ptr();
    // SAFETY: per the contract the core is live and ours until pushed back;
    // the task pointer was derived from the whole core (`Core::as_task`).
    unsafe {
        let res = if (*core)
            .pool_state
            .compare_exchange(
                POOL_QUEUED,
                POOL_RUNNING,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            let res = crate::sys::perform(core);
            // Settles the race with a cancel that discards the result.
            match (*core).pool_state.compare_exchange(
                POOL_RUNNING,
                POOL_FINISHED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => res,
                Err(_) => crate::sys::CANCELED,
            }
        } else {
            crate::sys::CANCELED
        };
        (*core).res = res;
        let shared = (*core).slot.pool;
        // Keep `Shared` alive past the push: once the loop pops the task it
        // may drop itself (and its `Arc<Shared>`) before we signal.
        Arc::increment_strong_count(shared);
        let shared = Arc::from_raw(shared);
        shared.done.push(task);
        // Cannot fail on a live descriptor (full counts as signaled).
        let _ = shared.wake.signal();
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
        t.write(Task::new(run_pool_task));
        NonNull::new_unchecked(t)
    }
}
