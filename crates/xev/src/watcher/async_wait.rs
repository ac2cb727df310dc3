//! The async watcher: [`Async::wait`](crate::Async::wait), the closure
//! sugar over [`Op::AsyncWait`] that libxev's `Async.wait` provides.
//!
//! The handle itself ([`crate::Async`], a pending flag the loop checks in
//! user space) is notified from any thread; a wait fires once after one or
//! more notifies (they coalesce: the flag is taken and cleared), and a
//! notify that arrives at any time after that — even before the next wait
//! is added — makes the next wait fire, so none is lost.

use crate::op::unexpected;
use crate::backend::Backend;
use crate::error::AsyncError;
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Op, OpResult};
use crate::record::Action;

impl crate::Async {
    /// Waits on `lp` until this handle is notified (now or later; notifies
    /// made before the wait count too). `cb` gets `Ok(())` once per wakeup,
    /// however many notifies it stands for, and `Err(AsyncError::Canceled)`
    /// when the wait is canceled. Returning [`Action::Rearm`] waits again
    /// (no allocation); [`Action::Disarm`] ends the wait; [`Action::Park`]
    /// keeps its completion, dead, for [`Loop::restart`] with the returned
    /// id.
    ///
    /// The completion holds a clone of the handle. Any number of loops may
    /// each wait on their own handle, on their own threads.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use xev::{Action, Async, Loop, RunMode};
    ///
    /// let mut lp = Loop::new(Default::default()).unwrap();
    /// let wake = Async::new().unwrap();
    /// let done = Arc::new(AtomicBool::new(false));
    /// let (remote, flag) = (wake.clone(), done.clone());
    /// let worker = std::thread::spawn(move || {
    ///     for _ in 0..100 {
    ///         remote.notify().unwrap();
    ///     }
    ///     flag.store(true, Ordering::Release);
    ///     remote.notify().unwrap(); // after the flag: the loop will see it
    /// });
    /// let mut wakeups = 0;
    /// wake.wait(&mut lp, move |_lp, res| {
    ///     res.unwrap();
    ///     wakeups += 1;
    ///     if done.load(Ordering::Acquire) { Action::Disarm } else { Action::Rearm }
    /// });
    /// lp.run(RunMode::UntilDone).unwrap();
    /// worker.join().unwrap();
    /// ```
    pub fn wait<B: Backend, F>(&self, lp: &mut Loop<B>, mut cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<(), AsyncError>) -> Action + 'static,
    {
        lp.add(
            Op::AsyncWait(self.clone()),
            move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
                let r = match res {
                    OpResult::Async(r) => r,
                    other => Err(AsyncError::Io(unexpected(&other))),
                };
                cb(lp, r)
            },
        )
    }
}
