//! Shutting the pool down when the last [`ThreadPool`](super::ThreadPool)
//! handle goes, and joining its threads.
//!
//! The handles share an [`Inner`], the workers only the [`Core`] inside it,
//! so dropping the last handle is a distinct event: it sets `SHUTDOWN` and
//! wakes every sleeper. Workers keep running tasks until a search that
//! started after they saw `SHUTDOWN` finds nothing, then exit; the drop joins
//! them (except the calling thread, if it is one of them). Every task
//! scheduled before the drop is therefore run. The [`Core`] itself is freed
//! when the last worker lets go of it (its `Drop`, which frees the registry
//! of worker queues, is in the queue module, next to the allocation).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::thread;

use super::worker::{spawned, SHUTDOWN};
use super::{lock, Core};

/// Shared by all [`ThreadPool`](super::ThreadPool) handles (not by the
/// workers); dropping it shuts the pool down.
pub(super) struct Inner {
    pub(super) core: Arc<Core>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let core = &self.core;
        // If tasks are still queued, make sure some worker exists to run them
        // (spawns may have failed earlier); this is the last chance.
        if !core.injector.is_empty() {
            core.notify();
        }
        // From now on no thread is spawned and no worker goes to sleep.
        core.state.fetch_or(SHUTDOWN, Ordering::SeqCst);
        core.sleep.shutdown();
        core.join_workers();
    }
}

impl Core {
    /// Called by `Inner::drop` after `SHUTDOWN` is set: joins every worker
    /// (except the calling thread, if it is one).
    fn join_workers(&self) {
        let me = thread::current().id();
        let mut joined = 0;
        let mut threads = lock(&self.threads);
        loop {
            if let Some(handle) = threads.pop() {
                drop(threads);
                if handle.thread().id() != me {
                    // Workers catch task panics, so this cannot fail in
                    // practice; nothing useful to do if it did.
                    let _ = handle.join();
                }
                joined += 1;
                threads = lock(&self.threads);
                continue;
            }
            // No spawn can start after SHUTDOWN; wait for those in flight to
            // either hand us their handle or give their slot back.
            if joined >= spawned(self.state.load(Ordering::SeqCst)) {
                return;
            }
            threads = self
                .threads_changed
                .wait(threads)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}
