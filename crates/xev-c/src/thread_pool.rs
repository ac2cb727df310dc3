//! The thread pool (`xev_threadpool_*`): the caller's storage holds an
//! [`xev::ThreadPool`] handle, tasks are xev's intrusive
//! [`xev::ThreadPoolTask`] followed by the C callback, and a batch is an
//! [`xev::ThreadPoolBatch`] itself, so scheduling allocates nothing.
//!
//! Differences from libxev, all on the safe side: `xev_threadpool_shutdown`
//! makes the pool refuse new batches, and `xev_threadpool_deinit` runs
//! every task scheduled before it and then joins the threads (libxev may
//! drop queued tasks). Pushing a batch into another (`push_batch`) or
//! scheduling it empties it, so one batch cannot be scheduled twice.

use std::ffi::c_int;
use std::mem::MaybeUninit;
use std::ptr::{self, addr_of, addr_of_mut, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};

use xev::{ThreadPool, ThreadPoolBatch, ThreadPoolConfig, ThreadPoolTask};

use crate::boundary::{checked, guard_code, guard_void};
use crate::errors::io_code;
use crate::types::{
    fits, magic, xev_task_cb, xev_threadpool, xev_threadpool_batch, xev_threadpool_config,
    xev_threadpool_task,
};

/// What the caller's `xev_threadpool_config` holds.
#[repr(C)]
struct ConfigRepr {
    magic: u64,
    max_threads: u32,
    stack_size: u32,
}

/// What the caller's `xev_threadpool` holds.
#[repr(C)]
struct PoolRepr {
    magic: u64,
    /// Set by `xev_threadpool_shutdown`: new batches are refused.
    shut_down: AtomicBool,
    pool: MaybeUninit<ThreadPool>,
}

/// What the caller's `xev_threadpool_task` holds: xev's task first, so the
/// task pointer the pool hands back is the C task's.
#[repr(C)]
struct TaskRepr {
    task: ThreadPoolTask,
    cb: Option<xev_task_cb>,
}

const _: () = assert!(fits::<ConfigRepr>(xev_threadpool_config::SIZE));
const _: () = assert!(fits::<PoolRepr>(xev_threadpool::SIZE));
const _: () = assert!(fits::<TaskRepr>(xev_threadpool_task::SIZE));
const _: () = assert!(fits::<ThreadPoolBatch>(xev_threadpool_batch::SIZE));

/// Sets a configuration to the defaults: as many threads as the machine
/// has CPUs, 1 MiB stacks.
///
/// # Safety
///
/// `config` is null (ignored) or points to writable
/// `xev_threadpool_config` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_threadpool_config_init(config: *mut xev_threadpool_config) {
    guard_void("xev_threadpool_config_init", || {
        let r = checked::<_, ConfigRepr>(config)?;
        let d = ThreadPoolConfig::default();
        // SAFETY: non-null, aligned and writable.
        unsafe {
            r.write(ConfigRepr {
                magic: magic::CONFIG,
                max_threads: u32::try_from(d.max_threads).unwrap_or(u32::MAX),
                stack_size: u32::try_from(d.stack_size).unwrap_or(u32::MAX),
            })
        };
        Ok(())
    })
}

/// The initialised configuration at `config`.
///
/// # Safety
///
/// `config` is null or points to readable `xev_threadpool_config` storage.
unsafe fn config_at(config: *const xev_threadpool_config) -> Result<*mut ConfigRepr, c_int> {
    let r = checked::<_, ConfigRepr>(config)?;
    // SAFETY: non-null, aligned and readable.
    if unsafe { ptr::read(addr_of!((*r).magic)) } != magic::CONFIG {
        return Err(-libc::EINVAL);
    }
    Ok(r)
}

/// Sets each worker thread's stack size in bytes (the system rounds small
/// values up to its minimum).
///
/// # Safety
///
/// `config` is null or points to `xev_threadpool_config` storage that
/// `xev_threadpool_config_init` initialised (anything else is ignored).
#[no_mangle]
pub unsafe extern "C" fn xev_threadpool_config_set_stack_size(
    config: *mut xev_threadpool_config,
    v: u32,
) {
    guard_void("xev_threadpool_config_set_stack_size", || {
        // SAFETY: forwarded contract.
        unsafe { ptr::write(addr_of_mut!((*config_at(config)?).stack_size), v) };
        Ok(())
    })
}

/// Sets the most threads the pool runs (at least 1: `xev_threadpool_init`
/// refuses 0 with `-EINVAL`).
///
/// # Safety
///
/// As `xev_threadpool_config_set_stack_size`.
#[no_mangle]
pub unsafe extern "C" fn xev_threadpool_config_set_max_threads(
    config: *mut xev_threadpool_config,
    v: u32,
) {
    guard_void("xev_threadpool_config_set_max_threads", || {
        // SAFETY: forwarded contract.
        unsafe { ptr::write(addr_of_mut!((*config_at(config)?).max_threads), v) };
        Ok(())
    })
}

/// Initialises a pool with `config`, or the defaults when it is NULL.
/// Threads start when work comes, up to the configured number. Returns 0,
/// or `-EINVAL` (bad storage, an uninitialised config, 0 threads).
///
/// # Safety
///
/// `pool` is null or points to writable `xev_threadpool` storage holding
/// no initialised pool; `config` is null or points to readable storage.
#[no_mangle]
pub unsafe extern "C" fn xev_threadpool_init(
    pool: *mut xev_threadpool,
    config: *mut xev_threadpool_config,
) -> c_int {
    guard_code(|| {
        let r = checked::<_, PoolRepr>(pool)?;
        let mut cfg = ThreadPoolConfig::default();
        if !config.is_null() {
            // SAFETY: forwarded contract.
            let c = unsafe { config_at(config)? };
            // SAFETY: initialised, per its magic number.
            let (max, stack) = unsafe {
                (
                    ptr::read(addr_of!((*c).max_threads)),
                    ptr::read(addr_of!((*c).stack_size)),
                )
            };
            cfg = cfg.max_threads(max as usize).stack_size(stack as usize);
        }
        let p = ThreadPool::new(cfg).map_err(|e| io_code(&e))?;
        // SAFETY: non-null, aligned and writable.
        unsafe {
            r.write(PoolRepr {
                magic: magic::POOL,
                shut_down: AtomicBool::new(false),
                pool: MaybeUninit::new(p),
            })
        };
        Ok(0)
    })
}

/// The initialised pool at `pool`.
///
/// # Safety
///
/// `pool` is null or points to readable `xev_threadpool` storage.
unsafe fn pool_at(pool: *const xev_threadpool) -> Result<*mut PoolRepr, c_int> {
    let r = checked::<_, PoolRepr>(pool)?;
    // SAFETY: non-null, aligned and readable.
    if unsafe { ptr::read(addr_of!((*r).magic)) } != magic::POOL {
        return Err(-libc::EINVAL);
    }
    Ok(r)
}

/// A handle of the pool at `pool` (for a loop that runs its work there).
///
/// # Safety
///
/// As [`pool_at`].
pub(crate) unsafe fn handle(pool: *const xev_threadpool) -> Result<ThreadPool, c_int> {
    // SAFETY: forwarded contract; the handle is initialised with the magic.
    unsafe { Ok((*addr_of!((*pool_at(pool)?).pool).cast::<ThreadPool>()).clone()) }
}

/// Makes the pool refuse new batches (they are dropped, their tasks never
/// run). Returns at once; the threads finish the tasks already scheduled
/// and exit in `xev_threadpool_deinit`. Any thread may call it.
///
/// # Safety
///
/// `pool` is null or points to readable `xev_threadpool` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_threadpool_shutdown(pool: *mut xev_threadpool) {
    guard_void("xev_threadpool_shutdown", || {
        // SAFETY: forwarded contract.
        unsafe { (*addr_of!((*pool_at(pool)?).shut_down)).store(true, Ordering::Release) };
        Ok(())
    })
}

/// Destroys the pool: runs every task scheduled so far, then joins the
/// threads (a loop created with this pool keeps it alive until the loop
/// goes). Must not be called from a task of the pool.
///
/// # Safety
///
/// `pool` is null or points to readable and writable `xev_threadpool`
/// storage that no other thread uses during or after the call.
#[no_mangle]
pub unsafe extern "C" fn xev_threadpool_deinit(pool: *mut xev_threadpool) {
    guard_void("xev_threadpool_deinit", || {
        // SAFETY: forwarded contract; the handle is initialised with the
        // magic, which is cleared first so it is dropped once.
        unsafe {
            let r = pool_at(pool)?;
            ptr::write(addr_of_mut!((*r).magic), 0);
            ptr::drop_in_place(addr_of_mut!((*r).pool).cast::<ThreadPool>());
        }
        Ok(())
    })
}

/// Schedules every task of `batch` and empties the batch (its storage may
/// then be reused or freed). Tasks start in the order they were pushed, on
/// threads started as needed. Any thread may call it; each thread uses its
/// own batches.
///
/// # Safety
///
/// `pool` is null or points to initialised `xev_threadpool` storage;
/// `batch` is null or points to an `xev_threadpool_batch` built by the
/// batch functions, whose tasks stay valid, unmoved and unmodified until
/// their callbacks are called.
#[no_mangle]
pub unsafe extern "C" fn xev_threadpool_schedule(
    pool: *mut xev_threadpool,
    batch: *mut xev_threadpool_batch,
) {
    guard_void("xev_threadpool_schedule", || {
        let b = checked::<_, ThreadPoolBatch>(batch)?;
        // SAFETY: forwarded contract.
        let r = unsafe { pool_at(pool)? };
        // SAFETY: the batch storage holds a batch (the contract), taken
        // out and replaced by an empty one.
        let tasks = unsafe { ptr::replace(b, ThreadPoolBatch::new()) };
        // SAFETY: initialised with the magic.
        if unsafe { (*addr_of!((*r).shut_down)).load(Ordering::Acquire) } {
            // Refused, as documented: the tasks never run.
            return Ok(());
        }
        // SAFETY: the pool handle is initialised; the tasks stay valid
        // until they run (the contract), and the pool handle lives in the
        // pool's storage, not in a task.
        unsafe { (*addr_of!((*r).pool).cast::<ThreadPool>()).schedule(tasks) };
        Ok(())
    })
}

/// The pool runs C tasks through this: it calls the task's C callback with
/// the task's own pointer, and touches the task no more.
///
/// # Safety
///
/// `task` is the first field of a [`TaskRepr`] written by
/// `xev_threadpool_task_init` (what `push_task` accepts).
unsafe fn run_c_task(task: NonNull<ThreadPoolTask>) {
    let t = task.cast::<TaskRepr>().as_ptr();
    // SAFETY: per the contract; the callback may free the task, so it is
    // read first.
    unsafe {
        if let Some(cb) = ptr::read(addr_of!((*t).cb)) {
            cb(t.cast());
        }
    }
}

/// Initialises a task that calls `cb` with the task's pointer when it
/// runs (use `container_of` to reach the structure around it).
///
/// # Safety
///
/// `t` is null or points to writable `xev_threadpool_task` storage that is
/// not scheduled.
#[no_mangle]
pub unsafe extern "C" fn xev_threadpool_task_init(
    t: *mut xev_threadpool_task,
    cb: Option<xev_task_cb>,
) {
    guard_void("xev_threadpool_task_init", || {
        let r = checked::<_, TaskRepr>(t)?;
        if cb.is_none() {
            return Err(-libc::EINVAL);
        }
        // SAFETY: non-null, aligned and writable.
        unsafe {
            r.write(TaskRepr {
                task: ThreadPoolTask::new(run_c_task),
                cb,
            })
        };
        Ok(())
    })
}

/// Initialises an empty batch (a zeroed batch is empty too).
///
/// # Safety
///
/// `b` is null or points to writable `xev_threadpool_batch` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_threadpool_batch_init(b: *mut xev_threadpool_batch) {
    guard_void("xev_threadpool_batch_init", || {
        // SAFETY: non-null, aligned and writable.
        unsafe { checked::<_, ThreadPoolBatch>(b)?.write(ThreadPoolBatch::new()) };
        Ok(())
    })
}

/// Adds task `t` to batch `b`. A task that `xev_threadpool_task_init` did
/// not initialise (a zeroed one) is refused with a message on standard
/// error.
///
/// # Safety
///
/// `b` is null or points to a batch; `t` is null or points to a task that
/// is in no batch and not scheduled, and that stays valid, unmoved and
/// unmodified until its callback is called.
#[no_mangle]
pub unsafe extern "C" fn xev_threadpool_batch_push_task(
    b: *mut xev_threadpool_batch,
    t: *mut xev_threadpool_task,
) {
    guard_void("xev_threadpool_batch_push_task", || {
        let b = checked::<_, ThreadPoolBatch>(b)?;
        let r = checked::<_, TaskRepr>(t)?;
        // SAFETY: non-null, aligned and readable: an initialised task has
        // a callback, a zeroed one has none.
        if unsafe { ptr::read(addr_of!((*r).cb)) }.is_none() {
            return Err(-libc::EINVAL);
        }
        // SAFETY: the batch storage holds a batch; the task is a
        // `TaskRepr` with xev's task first (its pointer is the whole
        // task's, as `run_c_task` needs), valid until it runs (the
        // contract).
        unsafe { (*b).push(NonNull::new_unchecked(r).cast()) };
        Ok(())
    })
}

/// Moves every task of `other` to the end of `b` (they start after `b`'s
/// own) and empties `other`.
///
/// # Safety
///
/// `b` and `other` are null or point to distinct batches.
#[no_mangle]
pub unsafe extern "C" fn xev_threadpool_batch_push_batch(
    b: *mut xev_threadpool_batch,
    other: *mut xev_threadpool_batch,
) {
    guard_void("xev_threadpool_batch_push_batch", || {
        let b = checked::<_, ThreadPoolBatch>(b)?;
        let o = checked::<_, ThreadPoolBatch>(other)?;
        if b == o {
            return Err(-libc::EINVAL);
        }
        // SAFETY: both hold batches (the contract) and are distinct.
        unsafe {
            let taken = ptr::replace(o, ThreadPoolBatch::new());
            (*b).append(taken);
        }
        Ok(())
    })
}
