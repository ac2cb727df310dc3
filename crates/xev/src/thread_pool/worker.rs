//! Worker threads: when they are spawned, how they sleep and are woken, and
//! the loop each one runs.
//!
//! A single atomic word (`Core::state`) holds the number of
//! spawned threads, the number of idle (sleeping) threads, a [`NOTIFIED`]
//! flag (a wake-up or spawn is already on its way) and a [`SHUTDOWN`] flag.
//! After queueing work, a producer calls [`Core::notify`], which wakes one
//! idle worker, or else spawns a thread if fewer than `max_threads` exist,
//! unless a wake-up is already pending. A worker that obtains more work than
//! the one task it runs notifies in turn, so parallelism ramps up with the
//! amount of work. Idle workers sleep on a [`Semaphore`] (a `Mutex` +
//! `Condvar`), which the queueing path only touches when a sleeper must be
//! woken. Where a worker looks for work is the queue module's
//! [`Core::find_task`]; how the pool stops is the shutdown module's.

use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;

use super::queue::Worker;
use super::task::Task;
use super::{lock, Core};

// ---------------------------------------------------------------------------
// Pool state word
// ---------------------------------------------------------------------------

/// Set once the last handle is dropped.
pub(super) const SHUTDOWN: usize = 1;
/// A wake-up or spawn was issued and its target has not started searching.
const NOTIFIED: usize = 1 << 1;
/// Width of the idle and spawned counters (fits a 32-bit `usize`).
const COUNT_BITS: u32 = 15;
const COUNT_MASK: usize = (1 << COUNT_BITS) - 1;
const IDLE_SHIFT: u32 = 2;
const SPAWNED_SHIFT: u32 = IDLE_SHIFT + COUNT_BITS;
/// One idle worker.
const IDLE_ONE: usize = 1 << IDLE_SHIFT;
/// One spawned worker.
const SPAWNED_ONE: usize = 1 << SPAWNED_SHIFT;
/// Largest supported `max_threads`.
pub(super) const MAX_THREADS: usize = COUNT_MASK;

fn idle(state: usize) -> usize {
    (state >> IDLE_SHIFT) & COUNT_MASK
}

pub(super) fn spawned(state: usize) -> usize {
    (state >> SPAWNED_SHIFT) & COUNT_MASK
}

// ---------------------------------------------------------------------------
// Waking and spawning
// ---------------------------------------------------------------------------

/// Outcome of [`Core::wait_for_work`].
enum Wake {
    /// Found a task; the flag says whether a notifier had claimed this
    /// worker (its notification is taken over).
    Task(NonNull<Task>, bool),
    /// Woken up (or shutting down): search again.
    Woken,
    /// Shutting down and no work is left: exit the thread.
    Exit,
}

impl Core {
    /// Makes sure someone will pick up newly queued work: wakes an idle
    /// worker, or spawns one if none is idle and the limit allows, unless a
    /// wake-up is already on its way (whose target will search afterwards).
    pub(super) fn notify(self: &Arc<Self>) {
        self.notify_with(true);
    }

    fn notify_with(self: &Arc<Self>, allow_spawn: bool) {
        // Dekker-style pairing with `wait_for_work`: our queue write (before
        // this fence) and a worker's idle registration (before its fence)
        // cannot both be missed, so either we see the idle worker or it sees
        // the work when it re-checks.
        fence(Ordering::SeqCst);
        let mut state = self.state.load(Ordering::SeqCst);
        let spawn = loop {
            if state & (SHUTDOWN | NOTIFIED) != 0 {
                return;
            }
            let (new, spawn) = if idle(state) > 0 {
                ((state - IDLE_ONE) | NOTIFIED, false)
            } else if allow_spawn && spawned(state) < self.max_threads {
                ((state + SPAWNED_ONE) | NOTIFIED, true)
            } else {
                // Every worker is busy and will look for work again.
                return;
            };
            match self
                .state
                .compare_exchange_weak(state, new, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break spawn,
                Err(current) => state = current,
            }
        };
        if spawn {
            self.spawn_worker();
        } else {
            self.sleep.post();
        }
    }

    /// Starts a worker thread; its slot in `spawned` is already reserved.
    fn spawn_worker(self: &Arc<Self>) {
        let core = Arc::clone(self);
        let result = thread::Builder::new()
            .name("xev-pool".to_owned())
            .stack_size(self.stack_size)
            .spawn(move || worker_main(core));
        let mut threads = lock(&self.threads);
        let failed = match result {
            Ok(handle) => {
                threads.push(handle);
                false
            }
            Err(_) => {
                // Give the slot back and clear our pending notification; done
                // under the lock so `join_workers` sees a consistent count.
                let _ = self
                    .state
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                        Some((s - SPAWNED_ONE) & !NOTIFIED)
                    });
                true
            }
        };
        drop(threads);
        self.threads_changed.notify_all();
        if failed {
            // The work stays queued. Hand it to an idle worker if there is
            // one; otherwise the busy workers will find it, or the next
            // `schedule` retries the spawn.
            self.notify_with(false);
        }
    }

    // -----------------------------------------------------------------------
    // Going idle
    // -----------------------------------------------------------------------

    /// Called when `find_task` found nothing: registers as idle, re-checks,
    /// then sleeps until notified. Exits only after a search that started
    /// after `SHUTDOWN` was seen came back empty.
    fn wait_for_work(self: &Arc<Self>, me: &Worker) -> Wake {
        let mut state = self.state.load(Ordering::SeqCst);
        loop {
            if state & SHUTDOWN != 0 {
                // Everything scheduled before shutdown happens-before the
                // flag we just read, so this search sees all of it.
                return match self.find_task(me) {
                    Some(task) => Wake::Task(task, false),
                    None => Wake::Exit,
                };
            }
            match self.state.compare_exchange_weak(
                state,
                state + IDLE_ONE,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(current) => state = current,
            }
        }
        // Pairs with the fence in `notify_with`.
        fence(Ordering::SeqCst);
        if let Some(task) = self.find_task(me) {
            // Withdraw the idle registration. If a notifier already claimed
            // an idle worker (the count is anonymous, so possibly us), it has
            // posted, or is about to post, a permit. Do not wait for that
            // permit while holding a task: permits are anonymous too, and
            // another worker going back to sleep may take it, which would
            // leave this task stranded (a lost wake-up, seen in a stress
            // test). Take over the notification instead; the permit wakes a
            // sleeper, or the next worker to sleep, for one search that
            // finds nothing (harmless).
            let mut state = self.state.load(Ordering::SeqCst);
            loop {
                if idle(state) == 0 {
                    return Wake::Task(task, true);
                }
                match self.state.compare_exchange_weak(
                    state,
                    state - IDLE_ONE,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => return Wake::Task(task, false),
                    Err(current) => state = current,
                }
            }
        }
        self.sleep.wait();
        Wake::Woken
    }

    /// Clears `NOTIFIED` once the notified worker is about to search, so
    /// later work triggers new notifications.
    fn clear_notified(&self) {
        self.state.fetch_and(!NOTIFIED, Ordering::SeqCst);
        // Notifiers that saw `NOTIFIED` skipped waking anyone; their work was
        // queued before their fence, so our search after this fence sees it.
        fence(Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------
// The worker thread
// ---------------------------------------------------------------------------

/// Body of every worker thread.
fn worker_main(core: Arc<Core>) {
    let me = core.register_worker();
    // Spawned by a notification: take it over before searching.
    let mut notified = true;
    loop {
        if notified {
            core.clear_notified();
            notified = false;
        }
        if let Some(task) = core.find_task(me) {
            run_task(task);
            continue;
        }
        match core.wait_for_work(me) {
            Wake::Task(task, was_notified) => {
                if was_notified {
                    // We took over a wake-up without searching; pass it on so
                    // work queued while it was pending is not left waiting
                    // behind the task we are about to run. (Rare race.)
                    core.clear_notified();
                    core.notify();
                }
                run_task(task);
            }
            Wake::Woken => notified = true,
            Wake::Exit => return,
        }
    }
}

/// Runs one task, containing any panic it raises.
fn run_task(task: NonNull<Task>) {
    // SAFETY: `schedule`'s contract keeps the task valid until `run` is
    // called; this is the only call, and the pool never touches it again.
    let run = unsafe { task.as_ref() }.run;
    // SAFETY: `run` is the task's own function, called exactly once with its
    // task on a pool thread, as `schedule`'s contract allows.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| unsafe { run(task) }));
    // The panic hook already reported any panic; keep the worker alive.
    drop(outcome);
}

// ---------------------------------------------------------------------------
// Sleeping
// ---------------------------------------------------------------------------

/// Counting semaphore that idle workers sleep on, with a shutdown override.
pub(super) struct Semaphore {
    state: Mutex<SemaphoreState>,
    wakeup: Condvar,
}

struct SemaphoreState {
    permits: usize,
    shutdown: bool,
}

impl Semaphore {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new(SemaphoreState {
                permits: 0,
                shutdown: false,
            }),
            wakeup: Condvar::new(),
        }
    }

    /// Blocks until a permit is available (and takes it) or shutdown starts.
    fn wait(&self) {
        let mut state = lock(&self.state);
        loop {
            if state.permits > 0 {
                state.permits -= 1;
                return;
            }
            if state.shutdown {
                return;
            }
            state = self
                .wakeup
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Adds a permit, waking one sleeper.
    fn post(&self) {
        lock(&self.state).permits += 1;
        self.wakeup.notify_one();
    }

    /// Wakes every sleeper, now and in the future.
    pub(super) fn shutdown(&self) {
        lock(&self.state).shutdown = true;
        self.wakeup.notify_all();
    }
}
