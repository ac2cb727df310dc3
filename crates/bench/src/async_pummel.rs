//! async_pummel_1/2/4/8 (libxev `src/bench/async_pummel_1.zig`): `threads`
//! threads notify one async handle of the main loop in a tight loop until
//! told to stop; the main loop's wait callback rearms until it ran `n`
//! times, then stops the threads. Notifications coalesce (an eventfd
//! counter), so the figure is callbacks/s, not notifications/s; the report
//! also carries how many notifications the threads made.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use xev::backend::Backend;
use xev::generic::Loop;
use xev::{Action, Async, Op, OpResult};

use crate::common::{ctx, tokio_rt, xev_options, Meter, Outcome, Res};

type Notifiers = Vec<thread::JoinHandle<Res<u64>>>;

/// Starts `threads` threads running `notify` until `stop`; each returns how
/// many times it notified.
fn spawn_notifiers(
    threads: usize,
    stop: &Arc<AtomicBool>,
    notify: impl Fn() -> Res<()> + Send + Clone + 'static,
) -> Notifiers {
    (0..threads)
        .map(|_| {
            let (stop, notify) = (stop.clone(), notify.clone());
            thread::spawn(move || {
                let mut count = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    notify()?;
                    count += 1;
                }
                Ok(count)
            })
        })
        .collect()
}

fn finish(meter: Meter, handles: Notifiers, callbacks: u64, n: u64) -> Res<Outcome> {
    let mut notifies = 0u64;
    for h in handles {
        notifies += h.join().map_err(|_| "notifier panicked".to_string())??;
    }
    let out = meter.rate(callbacks);
    if callbacks != n {
        return Err(format!("{callbacks} callbacks, expected {n}"));
    }
    Ok(out.with("notifies", notifies))
}

/// xev on backend `B`: one `Op::AsyncWait` completion rearmed; the threads
/// call `Async::notify`.
pub fn xev<B: Backend>(threads: usize, n: u64) -> Res<Outcome> {
    let mut lp = Loop::<B>::new(xev_options()).map_err(ctx("loop"))?;
    let notifier = Async::new().map_err(ctx("async"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let callbacks = Rc::new(Cell::new(0u64));
    let failed = Rc::new(Cell::new(false));
    let (c, f, s) = (callbacks.clone(), failed.clone(), stop.clone());
    lp.add(Op::AsyncWait(notifier.clone()), move |_, _, res| {
        if !matches!(res, OpResult::Async(Ok(()))) {
            f.set(true);
            s.store(true, Ordering::Relaxed);
            return Action::Disarm;
        }
        c.set(c.get() + 1);
        if c.get() < n {
            return Action::Rearm;
        }
        s.store(true, Ordering::Relaxed);
        Action::Disarm
    });
    let handles = spawn_notifiers(threads, &stop, move || {
        notifier.notify().map_err(ctx("notify"))
    });
    let meter = Meter::start();
    let r = lp.run(xev::RunMode::UntilDone).map_err(ctx("run"));
    stop.store(true, Ordering::Relaxed);
    r?;
    if failed.get() {
        return Err("async wait failed".into());
    }
    finish(meter, handles, callbacks.get(), n)
}

/// tokio: the threads call `Notify::notify_one`; a loop of
/// `notified().await` in the main runtime counts.
pub fn tokio(threads: usize, n: u64) -> Res<Outcome> {
    let rt = tokio_rt()?;
    let notify = Arc::new(tokio::sync::Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let nt = notify.clone();
    let handles = spawn_notifiers(threads, &stop, move || {
        nt.notify_one();
        Ok(())
    });
    let meter = Meter::start();
    let callbacks = rt.block_on(async {
        let mut callbacks = 0u64;
        while callbacks < n {
            notify.notified().await;
            callbacks += 1;
        }
        callbacks
    });
    stop.store(true, Ordering::Relaxed);
    finish(meter, handles, callbacks, n)
}

/// xev-async on backend `B`: as tokio's, the threads call
/// `xev_async::Notify::notify` and the main future awaits `notified`.
pub fn xev_async<B: Backend>(threads: usize, n: u64) -> Res<Outcome> {
    let rt = xev_async::Runtime::<B>::with_options(xev_options()).map_err(ctx("runtime"))?;
    let notify = xev_async::Notify::new().map_err(ctx("notify"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let nt = notify.clone();
    let handles = spawn_notifiers(threads, &stop, move || nt.notify().map_err(ctx("notify")));
    let meter = Meter::start();
    let callbacks = rt.block_on(async {
        let mut callbacks = 0u64;
        while callbacks < n {
            notify.notified().await.map_err(ctx("wait"))?;
            callbacks += 1;
        }
        Ok::<u64, String>(callbacks)
    });
    stop.store(true, Ordering::Relaxed);
    finish(meter, handles, callbacks?, n)
}

/// The raw floors: the thinnest correct code on io_uring and on epoll
/// (Linux only).
#[cfg(target_os = "linux")]
pub(crate) mod floor {
    use super::*;
    use crate::floor_sys::*;
    use io_uring::{opcode, types, IoUring};

    /// Floor on io_uring: one 8-byte read of a blocking eventfd in flight,
    /// resubmitted after each completion; the threads `write(2)` to it.
    pub fn floor_uring(threads: usize, n: u64) -> Res<Outcome> {
        let efd = eventfd(false)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut ring = IoUring::new(8).map_err(ctx("io_uring"))?;
        let mut val = 0u64;
        let read = opcode::Read::new(types::Fd(efd), (&mut val as *mut u64).cast(), 8)
            .build()
            .user_data(0);
        let handles = spawn_notifiers(threads, &stop, move || eventfd_write(efd));
        let meter = Meter::start();
        let mut callbacks = 0u64;
        let mut res = Ok(());
        while callbacks < n {
            // SAFETY: `val` outlives the read: each one is reaped before the next.
            if let Err(e) = unsafe { ring.submission().push(&read) } {
                res = Err(format!("sq full: {e}"));
                break;
            }
            if let Err(e) = ring.submit_and_wait(1) {
                res = Err(format!("enter: {e}"));
                break;
            }
            match ring.completion().next() {
                Some(c) if c.result() == 8 => callbacks += 1,
                Some(c) => {
                    res = Err(format!("read: result {}", c.result()));
                    break;
                }
                None => {
                    res = Err("no completion".into());
                    break;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let out = res.and_then(|()| finish(meter, handles, callbacks, n));
        drop(ring);
        close(efd);
        out
    }

    /// Floor on epoll: `epoll_wait` then `read(2)` of the eventfd.
    pub fn floor_epoll(threads: usize, n: u64) -> Res<Outcome> {
        let efd = eventfd(false)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut ep = Epoll::new()?;
        ep.add_in(efd, 0)?;
        let handles = spawn_notifiers(threads, &stop, move || eventfd_write(efd));
        let meter = Meter::start();
        let mut callbacks = 0u64;
        let mut res = Ok(());
        while callbacks < n {
            match ep.wait(-1) {
                Ok([]) => continue,
                Ok(_) => {}
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
            if let Err(e) = eventfd_read(efd) {
                res = Err(e);
                break;
            }
            callbacks += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let out = res.and_then(|()| finish(meter, handles, callbacks, n));
        close(efd);
        out
    }
}
