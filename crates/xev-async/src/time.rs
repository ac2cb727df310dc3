//! Time: [`sleep`], [`sleep_until`], [`timeout`] and [`interval`], on the
//! loop's timer operation (the loop's timing wheel: no kernel object per
//! timer, nothing allocated per sleep in steady state).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use xev::Op;

use crate::op::{OpFuture, TimerDone};
use crate::runtime::current;

enum When {
    After(Duration),
    At(Instant),
}

/// A future that completes at a deadline (see [`sleep`]). Dropping it
/// cancels its timer.
pub struct Sleep {
    when: When,
    op: Option<OpFuture>,
}

/// Completes after `d` (rounded up to whole milliseconds, the loop's clock
/// resolution), counted from the first poll.
pub fn sleep(d: Duration) -> Sleep {
    Sleep {
        when: When::After(d),
        op: None,
    }
}

/// Completes at `deadline` (at once if it has passed).
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        when: When::At(deadline),
        op: None,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.op.is_none() {
            // One clock reading: a deadline still ahead becomes its loop
            // time rounded up (the timer never fires early), one already
            // reached a time no later than the loop's next tick (it fires
            // then: at once).
            let now = Instant::now();
            let at = match self.when {
                When::After(d) => now.checked_add(d),
                When::At(t) => Some(t),
            };
            let driver = current();
            let deadline = match at {
                None => u64::MAX,
                // `ms_at` rounds up: one less is at most `now`'s loop time.
                Some(t) if t <= now => driver.ms_at(now).saturating_sub(1),
                Some(t) => driver.ms_at(t),
            };
            self.op = Some(OpFuture::new(Op::timer(deadline)));
        }
        let Some(op) = self.op.as_mut() else {
            return Poll::Ready(());
        };
        match op.poll_op::<TimerDone>(cx, &mut None, None) {
            Poll::Ready(res) => {
                debug_assert!(res.is_ok(), "{res:?}");
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
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
