//! Signals as futures: [`Signals`], a subscription to one signal (a
//! console event on Windows) whose [`Signals::recv`] completes at the next
//! occurrence (see [`xev::signal`] for how signals reach loops).

use std::io;

use xev::{Op, OpResult, SignalSubscription};

use crate::op::OpFuture;

/// Occurrences of one signal, for a task to await. Every `Signals` sees
/// every occurrence (several tasks, runtimes or loops may each hold one);
/// occurrences while nobody awaits are kept and coalesce. Dropping the
/// last subscription of a signal restores its previous action.
#[derive(Debug)]
pub struct Signals {
    sub: SignalSubscription,
}

impl Signals {
    /// Subscribes to `signo` (e.g. `libc::SIGTERM`; on Windows one of
    /// `xev::signal::CTRL_*`). Errors for signals that cannot be watched.
    pub fn new(signo: i32) -> io::Result<Signals> {
        Ok(Signals {
            sub: SignalSubscription::new(signo)?,
        })
    }

    /// Waits for the next occurrence (or returns at once with those that
    /// came since the last call): how many it stands for, at least 1.
    pub async fn recv(&mut self) -> io::Result<u64> {
        loop {
            let n = self.sub.take();
            if n > 0 {
                return Ok(n);
            }
            let op = Op::AsyncWait(self.sub.async_handle().clone());
            match OpFuture::new(op).await.0 {
                OpResult::Async(Ok(())) => {}
                OpResult::Async(Err(e)) => return Err(e.into()),
                other => {
                    return Err(io::Error::other(format!("unexpected {other:?}")));
                }
            }
        }
    }
}
