//! million-timers (libxev `src/bench/million-timers.zig`): `n` one-shot
//! timers, all added before the loop runs, with deadlines from 2 ms rising by
//! 1 ms every 1,000 timers (10,000,000 timers: the last fires after ~10 s),
//! measured from the loop's clock when adding starts. Runs until every timer
//! fired. Figures: total seconds (init + dispatch), init, dispatch, CPU
//! seconds; the parent adds the child's peak RSS.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use xev::backend::Backend;
use xev::generic::Loop;

use crate::common::{ctx, tokio_rt, xev_options, Meter, Outcome, Res};

/// The deadline offsets (ms) in the order the timers are added.
fn offsets(n: u64) -> impl Iterator<Item = u64> {
    let mut timeout = 1u64;
    (0..n).map(move |i| {
        if i % 1000 == 0 {
            timeout += 1;
        }
        timeout
    })
}

/// Seconds and CPU seconds the adding took.
type Init = (f64, f64);

fn init_done(meter: &Meter) -> Init {
    (meter.elapsed(), meter.cpu())
}

fn finish(meter: Meter, (init, init_cpu): Init, fired: u64, n: u64) -> Res<Outcome> {
    let out = meter.seconds(fired);
    if fired != n {
        return Err(format!("{fired} of {n} timers fired"));
    }
    let dispatch = out.elapsed - init;
    let dispatch_cpu = out.cpu - init_cpu;
    Ok(out
        .with("init_s", format!("{init:.4}"))
        .with("dispatch_s", format!("{dispatch:.4}"))
        .with("init_cpu_s", format!("{init_cpu:.4}"))
        .with("dispatch_cpu_s", format!("{dispatch_cpu:.4}")))
}

thread_local! {
    static FIRED: Cell<u64> = const { Cell::new(0) };
    static FAILED: Cell<u64> = const { Cell::new(0) };
}

/// xev on backend `B`: one timer set (`Loop::add_timer_set`) whose
/// callback counts (in a thread-local, like libxev's global), and
/// `Loop::start_timer` per timer: 32 bytes each, where a timer completion
/// (`Loop::add(Op::timer(..))`) takes 88.
pub fn xev<B: Backend>(n: u64) -> Res<Outcome> {
    FIRED.with(|c| c.set(0));
    FAILED.with(|c| c.set(0));
    let mut lp = Loop::<B>::new(xev_options()).map_err(ctx("loop"))?;
    let meter = Meter::start();
    let base = lp.now();
    let set = lp
        .add_timer_set(|_, _| FIRED.with(|c| c.set(c.get() + 1)))
        .map_err(ctx("timer set"))?;
    for off in offsets(n) {
        if lp.start_timer(set, base + off, 0).is_err() {
            FAILED.with(|c| c.set(c.get() + 1));
        }
    }
    let init = init_done(&meter);
    lp.run(xev::RunMode::UntilDone).map_err(ctx("run"))?;
    let fired = FIRED.with(|c| c.get());
    let failed = FAILED.with(|c| c.get());
    let out = finish(meter, init, fired, n);
    let t = Instant::now();
    drop(lp);
    let cleanup = t.elapsed().as_secs_f64();
    if failed > 0 {
        return Err(format!("{failed} timers failed"));
    }
    out.map(|o| o.with("cleanup_s", format!("{cleanup:.4}")))
}

/// xev-async on backend `B`: as tokio's, one spawned task per timer doing
/// `sleep_until(deadline)` and counting; the main future sleeps until the
/// last deadline, then yields until every task has counted.
pub fn xev_async<B: Backend>(n: u64) -> Res<Outcome> {
    FIRED.with(|c| c.set(0));
    let rt = xev_async::Runtime::<B>::with_options(xev_options()).map_err(ctx("runtime"))?;
    let (meter, init) = rt.block_on(async move {
        let meter = Meter::start();
        let base = Instant::now();
        let mut last = base;
        for off in offsets(n) {
            let deadline = base + Duration::from_millis(off);
            last = deadline;
            xev_async::spawn(async move {
                xev_async::sleep_until(deadline).await;
                FIRED.with(|c| c.set(c.get() + 1));
            });
        }
        let init = init_done(&meter);
        xev_async::sleep_until(last).await;
        while FIRED.with(|c| c.get()) < n {
            xev_async::yield_now().await;
        }
        (meter, init)
    });
    let out = finish(meter, init, FIRED.with(|c| c.get()), n);
    let t = Instant::now();
    drop(rt);
    let cleanup = t.elapsed().as_secs_f64();
    out.map(|o| o.with("cleanup_s", format!("{cleanup:.4}")))
}

static TOKIO_FIRED: AtomicU64 = AtomicU64::new(0);
static TOKIO_DONE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// tokio: one spawned task per timer doing `sleep_until(deadline)`; the last
/// one to fire wakes the main future.
pub fn tokio(n: u64) -> Res<Outcome> {
    TOKIO_FIRED.store(0, Ordering::Relaxed);
    let rt = tokio_rt()?;
    let (meter, init) = rt.block_on(async move {
        let meter = Meter::start();
        let base = tokio::time::Instant::now();
        for off in offsets(n) {
            let deadline = base + Duration::from_millis(off);
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline).await;
                if TOKIO_FIRED.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    TOKIO_DONE.notify_one();
                }
            });
        }
        let init = init_done(&meter);
        if n > 0 {
            TOKIO_DONE.notified().await;
        }
        (meter, init)
    });
    let out = finish(meter, init, TOKIO_FIRED.load(Ordering::Relaxed), n);
    let t = Instant::now();
    drop(rt);
    let cleanup = t.elapsed().as_secs_f64();
    out.map(|o| o.with("cleanup_s", format!("{cleanup:.4}")))
}

/// The raw floors: the thinnest correct code on io_uring and on epoll
/// (Linux only).
#[cfg(target_os = "linux")]
pub(crate) mod floor {
    use super::*;
    use crate::floor_sys::*;
    use io_uring::{types, IoUring};
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// The floors' timer store: a binary min-heap of bare deadlines.
    fn floor(n: u64, mut wait: impl FnMut(u64) -> Res<()>) -> Res<Outcome> {
        let meter = Meter::start();
        let base = Instant::now();
        let now = || base.elapsed().as_millis() as u64;
        let mut heap = BinaryHeap::new();
        for off in offsets(n) {
            heap.push(Reverse(off));
        }
        let init = init_done(&meter);
        let mut fired = 0u64;
        while let Some(&Reverse(next)) = heap.peek() {
            let t = now();
            if next > t {
                wait(next - t)?;
                continue;
            }
            while let Some(&Reverse(d)) = heap.peek() {
                if d > t {
                    break;
                }
                heap.pop();
                fired += 1;
            }
        }
        let out = finish(meter, init, fired, n);
        drop(heap);
        out
    }

    /// Floor: a `BinaryHeap` of deadlines, sleeping in `epoll_wait`.
    pub fn floor_epoll(n: u64) -> Res<Outcome> {
        let mut ep = Epoll::new()?;
        floor(n, |ms| ep.wait(ms.min(i32::MAX as u64) as i32).map(|_| ()))
    }

    /// Floor: a `BinaryHeap` of deadlines, sleeping in `io_uring_enter` with a
    /// timeout (`EXT_ARG`).
    pub fn floor_uring(n: u64) -> Res<Outcome> {
        let ring = IoUring::new(8).map_err(ctx("io_uring"))?;
        floor(n, |ms| {
            let ts = types::Timespec::from(Duration::from_millis(ms));
            let args = types::SubmitArgs::new().timespec(&ts);
            match ring.submitter().submit_with_args(1, &args) {
                Ok(_) => Ok(()),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR)) => {
                    Ok(())
                }
                Err(e) => Err(format!("io_uring_enter: {e}")),
            }
        })
    }
}
