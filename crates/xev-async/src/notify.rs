//! [`Notify`]: a wakeup that any thread may send and a task on the runtime
//! awaits, built on xev's [`xev::Async`] (no syscall when the loop is
//! busy, one eventfd or pipe write when it sleeps; notifying allocates
//! nothing).
//!
//! The first wait on a runtime parks one `AsyncWait` completion in that
//! runtime's loop, which stays there, rearmed after each notification,
//! until the last handle of the `Notify` is dropped: a notification is
//! taken by the loop's callback, which marks it ready and wakes the tasks
//! that wait. A later wait adds nothing to the loop; it only leaves its
//! task's waker. (A wait on a runtime other than the one holding the
//! parked completion adds a completion of its own for that wait, as well,
//! so that it is woken even when the other runtime's loop is not
//! running.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use xev::{Action, Op, OpResult};

use crate::op::{AsyncDone, OpFuture};

/// A cross-thread wakeup: [`Notify::notify`] from any thread sets it,
/// [`Notify::notified`] on a runtime waits until it is set and clears it.
/// Notifications before anyone waits are kept, and any number of them
/// make one wakeup, which one waiting task takes. Waits are meant for one
/// runtime at a time (give each runtime its own `Notify`): the first
/// runtime to wait keeps a completion parked in its loop until every
/// handle is dropped, and waits from another runtime cost a loop
/// operation each. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Notify {
    inner: Arc<Handle>,
}

/// What every clone of one `Notify` shares; its drop releases the
/// parked completion.
struct Handle {
    a: xev::Async,
    st: Arc<Parked>,
}

/// The state a parked wait shares with its `Notify` and its waiters.
#[derive(Default)]
pub(crate) struct Parked {
    /// The runtime whose loop holds the parked wait (0: none).
    armed: AtomicU64,
    /// A notification the parked wait took that no waiter has taken yet.
    ready: AtomicBool,
    /// Every handle is gone: the parked wait ends at its next callback.
    closed: AtomicBool,
    /// How many times the parked wait has woken the waiters (written
    /// under the `waiters` lock): a waiter that left its waker at an
    /// earlier count has been woken and its index freed.
    rounds: AtomicU64,
    /// The waiting futures' wakers, each at its own index.
    waiters: Mutex<Waiters>,
}

/// The waiter table (its vectors only grow, to the most waits at once).
#[derive(Default)]
struct Waiters {
    /// A waiter's waker at its index (`None`: a free index).
    at: Vec<Option<Waker>>,
    /// Room for the wakers of a round past the first, woken unlocked.
    spare: Vec<Waker>,
}

impl Parked {
    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a notification the parked wait left.
    fn take_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.ready.swap(false, Ordering::AcqRel)
    }

    /// The parked wait's callback: `res` is its `AsyncWait` result. A
    /// notification is marked ready and every waiter is woken (one of
    /// them takes it; the others wait again); on an error the waiters are
    /// woken to wait again, and park a new wait.
    fn fire(&self, res: &OpResult) -> Action {
        let ok = matches!(res, OpResult::Async(Ok(())));
        let (first, mut rest) = {
            let mut w = self.waiters();
            if ok {
                self.ready.store(true, Ordering::Release);
            }
            self.rounds.fetch_add(1, Ordering::AcqRel);
            let Waiters { at, spare } = &mut *w;
            let mut first = None;
            for k in at.iter_mut().filter_map(Option::take) {
                match first {
                    None => first = Some(k),
                    Some(_) => spare.push(k),
                }
            }
            at.clear();
            let rest = if spare.is_empty() {
                Vec::new()
            } else {
                std::mem::take(spare)
            };
            (first, rest)
        };
        // Wakers run with the table unlocked (one may poll a wait).
        if let Some(f) = first {
            f.wake();
        }
        if !rest.is_empty() {
            rest.drain(..).for_each(Waker::wake);
            let mut w = self.waiters();
            if w.spare.capacity() < rest.capacity() {
                w.spare = rest;
            }
        }
        if ok && !self.closed.load(Ordering::Acquire) {
            Action::Rearm
        } else {
            Action::Disarm
        }
    }
}

/// Owned by the parked completion's callback: when the completion ends
/// (disarmed, or dropped with its loop) the `Notify` is no longer parked.
pub(crate) struct ParkedWait {
    st: Arc<Parked>,
    runtime: u64,
}

impl ParkedWait {
    /// The callback of the parked completion.
    pub(crate) fn fire(&self, res: &OpResult) -> Action {
        self.st.fire(res)
    }
}

impl Drop for ParkedWait {
    fn drop(&mut self) {
        let _ =
            self.st
                .armed
                .compare_exchange(self.runtime, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.st.closed.store(true, Ordering::Release);
        if self.st.armed.load(Ordering::Acquire) != 0 {
            // Runs the parked wait's callback, which sees `closed` and ends.
            let _ = self.a.notify();
        }
    }
}

impl Notify {
    /// A new, unset wakeup.
    pub fn new() -> io::Result<Notify> {
        Ok(Notify {
            inner: Arc::new(Handle {
                a: xev::Async::new()?,
                st: Arc::default(),
            }),
        })
    }

    /// Sets it, waking the task that waits (from any thread).
    pub fn notify(&self) -> io::Result<()> {
        self.inner.a.notify()
    }

    /// Waits until it is set, and clears it. Dropping the future gives the
    /// wait up; a notification that arrives later is kept for the next
    /// wait. When it is set already, it completes at once, without a turn
    /// of the loop (as a socket operation may: at most 128 times per poll
    /// of a task, so that the loop and the other tasks still run).
    pub async fn notified(&self) -> io::Result<()> {
        let h = &*self.inner;
        if crate::op::spend_eager_budget() && (h.st.take_ready() || h.a.try_wait()) {
            return Ok(());
        }
        Waiting {
            h,
            index: None,
            own: None,
        }
        .await
    }
}

/// One wait in progress: its index in the waiter table and the round it
/// left its waker in, and its own loop operation if it waits on a runtime
/// other than the parked one's.
struct Waiting<'a> {
    h: &'a Handle,
    index: Option<(usize, u64)>,
    own: Option<OpFuture>,
}

impl Waiting<'_> {
    /// Leaves `waker` in the table (at a new index if the last one was
    /// freed by a round of wakes).
    fn leave_waker(&mut self, waker: &Waker) {
        let st = &self.h.st;
        let mut ws = st.waiters();
        let round = st.rounds.load(Ordering::Acquire);
        match self.index {
            Some((i, r)) if r == round => match &mut ws.at[i] {
                Some(w) if w.will_wake(waker) => {}
                w => *w = Some(waker.clone()),
            },
            _ => {
                let i = match ws.at.iter().position(Option::is_none) {
                    Some(i) => {
                        ws.at[i] = Some(waker.clone());
                        i
                    }
                    None => {
                        ws.at.push(Some(waker.clone()));
                        ws.at.len() - 1
                    }
                };
                self.index = Some((i, round));
            }
        }
    }

    /// Frees this wait's index, if a round of wakes has not freed it.
    fn leave(&mut self) {
        let Some((i, r)) = self.index.take() else {
            return;
        };
        let st = &self.h.st;
        if st.rounds.load(Ordering::Acquire) != r {
            return;
        }
        let mut ws = st.waiters();
        if st.rounds.load(Ordering::Acquire) == r {
            ws.at[i] = None;
        }
    }

    /// Parks a wait in the loop of runtime `me` (this thread's), unless
    /// another runtime holds one by now; whether it did.
    fn park(&self, me: u64) -> bool {
        let st = &self.h.st;
        if st
            .armed
            .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let wait = ParkedWait {
            st: st.clone(),
            runtime: me,
        };
        // On failure (from inside a loop callback) `wait` is dropped, which
        // unparks; this wait then takes its own op.
        crate::runtime::current()
            .park(self.h.a.clone(), wait)
            .is_ok()
    }

    /// Makes sure a completion of this runtime's loop waits for this
    /// wait: the parked one (parking it now if no runtime holds one), or
    /// one of its own.
    fn arm(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Outside a runtime (0), the op below says so.
        let me = crate::runtime::current_id();
        let armed = self.h.st.armed.load(Ordering::Acquire);
        let parked = me != 0 && (armed == me || (armed == 0 && self.park(me)));
        if parked && self.own.is_none() {
            return Poll::Pending;
        }
        // A wait of its own, kept to the end once started (if the runtime
        // that held the parked wait has ended since, both wait).
        let own = self
            .own
            .get_or_insert_with(|| OpFuture::new(Op::AsyncWait(self.h.a.clone())));
        own.poll_op::<AsyncDone>(cx, &mut None, None).map_ok(drop)
    }
}

impl Future for Waiting<'_> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A finished wait leaves the waiter table when it is dropped.
        let this = self.get_mut();
        if this.h.st.take_ready() {
            return Poll::Ready(Ok(()));
        }
        this.leave_waker(cx.waker());
        if let Poll::Ready(r) = this.arm(cx) {
            return Poll::Ready(r);
        }
        // A parked wait on another thread may have taken a notification
        // between the first check and the waker being left.
        if this.h.st.take_ready() {
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}
