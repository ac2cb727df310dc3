//! [`Notify`]: a wakeup that any thread may send and a task on the runtime
//! awaits, built on xev's [`xev::Async`] (no syscall when the loop is
//! busy, one eventfd or pipe write when it sleeps; notifying allocates
//! nothing).

use std::io;

use xev::Op;

use crate::op::{AsyncDone, OpFuture};

/// A cross-thread wakeup: [`Notify::notify`] from any thread sets it,
/// [`Notify::notified`] on a runtime waits until it is set and clears it.
/// Notifications before anyone waits are kept, and any number of them
/// make one wakeup. One runtime waits on a `Notify` at a time (give each
/// runtime its own). Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Notify {
    a: xev::Async,
}

impl Notify {
    /// A new, unset wakeup.
    pub fn new() -> io::Result<Notify> {
        Ok(Notify {
            a: xev::Async::new()?,
        })
    }

    /// Sets it, waking the task that waits (from any thread).
    pub fn notify(&self) -> io::Result<()> {
        self.a.notify()
    }

    /// Waits until it is set, and clears it. Dropping the future cancels
    /// the wait. When it is set already, it completes at once, without a
    /// turn of the loop (as a socket operation may: at most 128 times per
    /// poll of a task, so that the loop and the other tasks still run).
    pub async fn notified(&self) -> io::Result<()> {
        if crate::op::spend_eager_budget() && self.a.try_wait() {
            return Ok(());
        }
        let mut wait = OpFuture::new(Op::AsyncWait(self.a.clone()));
        std::future::poll_fn(|cx| wait.poll_op::<AsyncDone>(cx, &mut None, None))
            .await
            .map(drop)
    }
}
