//! The signal watcher: [`Signal`], a [`SignalSubscription`] and the wait on
//! it, with a callback per delivery. (How signals reach loops is on
//! [`crate::signal`].)

use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::backend::Backend;
use crate::error::{AsyncError, IdError, SignalError};
use crate::event_loop::orphans::{Orphan, Orphans};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Op, OpResult};
use crate::record::Action;
use crate::signal::SignalSubscription;

/// Watches one signal (on Windows, one console event) on one loop: the
/// callback runs once per delivery with the number of occurrences it
/// stands for (several that arrive before the loop gets to them coalesce,
/// as the kernel's pending signals do; a signal that arrives while the
/// watcher is not waiting is kept for its next wait). Several watchers,
/// on one loop or several, each see every occurrence. Returning
/// [`Action::Rearm`] waits for the next one (no allocation); `Disarm` (or
/// `Park`) stops waiting until [`Signal::start`].
///
/// Dropping the watcher ends its wait at the loop's next tick, as for
/// every watcher (a wait in flight ends with `Err(SignalError::Canceled)`,
/// its callback's last call), and unsubscribes it then; when it was the
/// last subscription of its signal, the process's previous action for it
/// is back.
///
/// ```no_run
/// use xev::{Action, Loop, RunMode, Signal};
/// let mut lp = Loop::new(Default::default())?;
/// let _sigint = Signal::new(&mut lp, libc::SIGINT, |lp, res| {
///     println!("SIGINT x{}", res.unwrap());
///     lp.stop();
///     Action::Disarm
/// })?;
/// lp.run(RunMode::UntilDone)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a signal watcher stops watching when dropped"]
pub struct Signal<B: Backend = crate::DefaultBackend> {
    id: Id,
    signo: i32,
    /// The loop's inbox, for `Drop`.
    orphans: Rc<Orphans<B>>,
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend> Signal<B> {
    /// Subscribes to `signo` (see [`SignalSubscription::new`]) and starts
    /// waiting for it on `lp`. `cb` gets `Ok(n)` for each delivery of `n`
    /// occurrences and `Err(SignalError::Canceled)` if the wait is
    /// canceled ([`Loop::cancel`] with [`Signal::id`]).
    pub fn new<F>(lp: &mut Loop<B>, signo: i32, mut cb: F) -> Result<Signal<B>, SignalError>
    where
        F: FnMut(&mut Loop<B>, Result<u64, SignalError>) -> Action + 'static,
    {
        let sub = SignalSubscription::new(signo)?;
        let op = Op::AsyncWait(sub.async_handle().clone());
        let id = lp.add(op, move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
            let r = match res {
                OpResult::Async(Ok(())) => match sub.take() {
                    // A wake whose occurrences an earlier delivery took.
                    0 => return Action::Rearm,
                    n => Ok(n),
                },
                OpResult::Async(Err(AsyncError::Canceled)) => Err(SignalError::Canceled),
                OpResult::Async(Err(e)) => Err(SignalError::Io(e.into())),
                other => Err(SignalError::Io(crate::op::unexpected(&other))),
            };
            match cb(lp, r) {
                Action::Rearm => Action::Rearm,
                Action::Disarm | Action::Park => Action::Park,
            }
        });
        Ok(Signal {
            id,
            signo,
            orphans: lp.orphans(),
            _backend: PhantomData,
        })
    }

    /// The signal (or console event) number.
    pub fn signal(&self) -> i32 {
        self.signo
    }

    /// Waits again after the callback returned `Disarm`; occurrences in
    /// between were counted and are delivered at once.
    pub fn start(&self, lp: &mut Loop<B>) -> Result<(), IdError> {
        lp.restart(self.id)
    }

    /// The id of the watcher's wait, for [`Loop::cancel`].
    pub fn id(&self) -> Id {
        self.id
    }

    /// Ends the wait and unsubscribes: a wait in flight is canceled (its
    /// callback runs once more, with `Err(SignalError::Canceled)`) and the
    /// subscription goes with the completion, after that callback.
    pub fn free(self, lp: &mut Loop<B>) -> Result<(), IdError> {
        lp.detach(self.id)
    }
}

impl<B: Backend> Drop for Signal<B> {
    fn drop(&mut self) {
        // When the loop is gone, so is the completion (and, with it, the
        // subscription).
        let _ = self.orphans.push(Orphan::Free(self.id));
    }
}

impl<B: Backend> fmt::Debug for Signal<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("signal", &self.signo)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
