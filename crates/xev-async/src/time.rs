//! Time: [`sleep`], [`sleep_until`], [`timeout`] and [`interval`], on the
//! runtime's timer set ([`xev::Loop::add_timer_set`]): a pending sleep is
//! a 32-byte entry in the loop's timing wheel plus a waker slot here, no
//! kernel object and no completion; a sleep dropped before its deadline
//! (a timeout whose future finished first) stops its timer at once, with
//! no cancel to deliver. Nothing is allocated per sleep in steady state.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use xev::TimerId;

use crate::op::Table;
use crate::runtime::{current, Driver};

/// The waker slots of a runtime's sleeps; a timer's key is its slot.
#[derive(Default)]
pub(crate) struct Sleepers(Table<SleepSlot>);

#[derive(Default)]
struct SleepSlot {
    waker: Option<Waker>,
    fired: bool,
}

impl Sleepers {
    /// A fresh slot (not fired, no waker).
    pub(crate) fn alloc(&mut self) -> usize {
        self.0.insert(SleepSlot::default())
    }

    /// Marks slot `key`'s timer fired; returns the waker to wake (after
    /// the table is released: a wake may run its owner's code).
    pub(crate) fn fire(&mut self, key: u64) -> Option<Waker> {
        let s = &mut self.0[usize::try_from(key).ok()?];
        s.fired = true;
        s.waker.take()
    }

    /// Whether slot `i` fired; if not, keeps `w` to wake when it does.
    pub(crate) fn check(&mut self, i: usize, w: &Waker) -> bool {
        let s = &mut self.0[i];
        if !s.fired {
            match &mut s.waker {
                Some(old) => old.clone_from(w),
                None => s.waker = Some(w.clone()),
            }
        }
        s.fired
    }

    /// How many slots are in use (sleeps pending or fired and not yet
    /// polled).
    pub(crate) fn in_use(&self) -> usize {
        self.0.in_use()
    }

    /// Frees slot `i`; returns its waker, to drop after the table is
    /// released.
    pub(crate) fn release(&mut self, i: usize) -> Option<Waker> {
        self.0.remove(i, SleepSlot::default()).waker
    }
}

enum When {
    After(Duration),
    At(Instant),
}

enum State {
    Start(When),
    Waiting {
        driver: Rc<dyn Driver>,
        id: TimerId,
        slot: usize,
    },
    Done,
}

/// A future that completes at a deadline (see [`sleep`]). Dropping it
/// stops its timer.
pub struct Sleep {
    state: State,
}

/// Completes after `d` (rounded up to whole milliseconds, the loop's clock
/// resolution), counted from the first poll.
pub fn sleep(d: Duration) -> Sleep {
    Sleep {
        state: State::Start(When::After(d)),
    }
}

/// Completes at `deadline` (at once if it has passed).
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        state: State::Start(When::At(deadline)),
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let State::Start(when) = &self.state {
            // One clock reading: a deadline still ahead becomes its loop
            // time rounded up (the timer never fires early), one already
            // reached a time no later than the loop's next tick (it fires
            // then: at once).
            let now = Instant::now();
            let at = match when {
                When::After(d) => now.checked_add(*d),
                When::At(t) => Some(*t),
            };
            let driver = current();
            let deadline = match at {
                None => u64::MAX,
                // `ms_at` rounds up: one less is at most `now`'s loop time.
                Some(t) if t <= now => driver.ms_at(now).saturating_sub(1),
                Some(t) => driver.ms_at(t),
            };
            let (id, slot) = driver.start_sleep(deadline);
            self.state = State::Waiting { driver, id, slot };
        }
        let State::Waiting { driver, slot, .. } = &self.state else {
            return Poll::Ready(());
        };
        let fired = driver.sleepers().borrow_mut().check(*slot, cx.waker());
        if !fired {
            return Poll::Pending;
        }
        let State::Waiting { driver, slot, .. } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Poll::Ready(());
        };
        let w = driver.sleepers().borrow_mut().release(slot);
        drop(w);
        Poll::Ready(())
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let State::Waiting { driver, id, slot } = std::mem::replace(&mut self.state, State::Done)
        {
            driver.stop_sleep(id, slot);
        }
    }
}

/// The error of a [`timeout`] whose time ran out first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

/// Runs `future` for at most `d`: its output, or [`Elapsed`] (the future
/// is then dropped, which cancels its operations in flight).
pub async fn timeout<F: Future>(d: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = std::pin::pin!(future);
    let mut timer = std::pin::pin!(sleep(d));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        timer.as_mut().poll(cx).map(|()| Err(Elapsed))
    })
    .await
}

/// Ticks every `period` (see [`Interval::tick`]).
pub fn interval(period: Duration) -> Interval {
    Interval { period, next: None }
}

/// Periodic ticks, from [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    next: Option<Instant>,
}

impl Interval {
    /// Waits for the next tick: the first completes at once, each later one
    /// `period` after the previous tick's deadline; ticks missed while the
    /// task was busy are skipped (the next deadline is then a period from
    /// now), so a late task never fires a burst.
    pub async fn tick(&mut self) -> Instant {
        let now = Instant::now();
        let at = match self.next {
            None => now,
            Some(t) => t,
        };
        sleep_until(at).await;
        let after = at + self.period;
        let now = Instant::now();
        self.next = Some(if after < now {
            now + self.period
        } else {
            after
        });
        at
    }
}
