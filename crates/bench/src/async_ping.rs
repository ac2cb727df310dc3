//! async1/2/4/8 (libxev `src/bench/async1.zig`): `threads` worker threads,
//! each with its own loop and two async handles (one the main loop waits
//! on, one the worker waits on). Each worker kicks off by notifying the main
//! loop; from then on each side answers every wakeup with a notification of
//! the other, `n` times each way per worker. Figure: n / elapsed seconds.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::thread;

use xev::backend::Backend;
use xev::generic::Loop;
use xev::{Action, Async, Op, OpResult};

use crate::common::{ctx, tokio_rt, xev_options, Meter, Outcome, Res};

fn join_all(handles: Vec<thread::JoinHandle<Res<u64>>>, n: u64) -> Res<()> {
    for h in handles {
        let sent = h.join().map_err(|_| "worker panicked".to_string())??;
        if sent != n {
            return Err(format!("a worker sent {sent} notifications, expected {n}"));
        }
    }
    Ok(())
}

fn finish(meter: Meter, main_sent: &[u64], n: u64) -> Res<Outcome> {
    let out = meter.rate(n);
    if let Some(s) = main_sent.iter().find(|&&s| s != n) {
        return Err(format!(
            "the main loop sent {s} notifications, expected {n}"
        ));
    }
    Ok(out.with("round_trips_total", n * main_sent.len() as u64))
}

/// xev on backend `B`: `Op::AsyncWait` completions rearmed, `Async::notify`.
pub fn xev<B: Backend>(threads: usize, n: u64) -> Res<Outcome> {
    let mut lp = Loop::<B>::new(xev_options()).map_err(ctx("loop"))?;
    let mut handles = Vec::new();
    let mut counters = Vec::new();
    let failed = Rc::new(Cell::new(false));
    for _ in 0..threads {
        let main_async = Async::new().map_err(ctx("async"))?;
        let worker_async = Async::new().map_err(ctx("async"))?;
        let sent = Rc::new(Cell::new(0u64));
        counters.push(sent.clone());
        let (wa, f) = (worker_async.clone(), failed.clone());
        lp.add(Op::AsyncWait(main_async.clone()), move |_, _, res| {
            if !matches!(res, OpResult::Async(Ok(()))) || wa.notify().is_err() {
                f.set(true);
                return Action::Disarm;
            }
            sent.set(sent.get() + 1);
            if sent.get() >= n {
                Action::Disarm
            } else {
                Action::Rearm
            }
        });
        handles.push(thread::spawn(move || -> Res<u64> {
            let mut wl = Loop::<B>::new(xev_options()).map_err(ctx("worker loop"))?;
            main_async.notify().map_err(ctx("notify"))?;
            let sent = Rc::new(Cell::new(0u64));
            let failed = Rc::new(Cell::new(false));
            let (s, f) = (sent.clone(), failed.clone());
            wl.add(Op::AsyncWait(worker_async), move |_, _, res| {
                if !matches!(res, OpResult::Async(Ok(()))) || main_async.notify().is_err() {
                    f.set(true);
                    return Action::Disarm;
                }
                s.set(s.get() + 1);
                if s.get() >= n {
                    Action::Disarm
                } else {
                    Action::Rearm
                }
            });
            wl.run(xev::RunMode::UntilDone).map_err(ctx("worker run"))?;
            if failed.get() {
                return Err("worker: wait or notify failed".into());
            }
            Ok(sent.get())
        }));
    }
    let meter = Meter::start();
    lp.run(xev::RunMode::UntilDone).map_err(ctx("run"))?;
    join_all(handles, n)?;
    if failed.get() {
        return Err("main: wait or notify failed".into());
    }
    let sent: Vec<u64> = counters.iter().map(|c| c.get()).collect();
    finish(meter, &sent, n)
}

/// tokio: a current-thread runtime per worker thread, `tokio::sync::Notify`
/// pairs, one spawned task per worker on the main runtime.
pub fn tokio(threads: usize, n: u64) -> Res<Outcome> {
    use tokio::sync::Notify;
    let rt = tokio_rt()?;
    let mut handles = Vec::new();
    let mut pairs = Vec::new();
    for _ in 0..threads {
        let main_n = Arc::new(Notify::new());
        let worker_n = Arc::new(Notify::new());
        pairs.push((main_n.clone(), worker_n.clone()));
        handles.push(thread::spawn(move || -> Res<u64> {
            let rt = tokio_rt()?;
            Ok(rt.block_on(async move {
                main_n.notify_one();
                let mut sent = 0u64;
                while sent < n {
                    worker_n.notified().await;
                    main_n.notify_one();
                    sent += 1;
                }
                sent
            }))
        }));
    }
    let meter = Meter::start();
    let sent = rt.block_on(async move {
        let tasks: Vec<_> = pairs
            .into_iter()
            .map(|(main_n, worker_n)| {
                tokio::spawn(async move {
                    let mut sent = 0u64;
                    while sent < n {
                        main_n.notified().await;
                        worker_n.notify_one();
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        let mut sent = Vec::new();
        for t in tasks {
            sent.push(t.await.map_err(ctx("task"))?);
        }
        Ok::<_, String>(sent)
    })?;
    join_all(handles, n)?;
    finish(meter, &sent, n)
}

/// xev-async on backend `B`: as tokio's, a runtime per worker thread,
/// `xev_async::Notify` pairs, one spawned task per worker on the main
/// runtime.
pub fn xev_async<B: Backend>(threads: usize, n: u64) -> Res<Outcome> {
    let rt = xev_async::Runtime::<B>::with_options(xev_options()).map_err(ctx("runtime"))?;
    let mut handles = Vec::new();
    let mut pairs = Vec::new();
    for _ in 0..threads {
        let main_n = xev_async::Notify::new().map_err(ctx("notify"))?;
        let worker_n = xev_async::Notify::new().map_err(ctx("notify"))?;
        pairs.push((main_n.clone(), worker_n.clone()));
        handles.push(thread::spawn(move || -> Res<u64> {
            let rt = xev_async::Runtime::<B>::with_options(xev_options())
                .map_err(ctx("worker runtime"))?;
            rt.block_on(async move {
                main_n.notify().map_err(ctx("notify"))?;
                let mut sent = 0u64;
                while sent < n {
                    worker_n.notified().await.map_err(ctx("wait"))?;
                    main_n.notify().map_err(ctx("notify"))?;
                    sent += 1;
                }
                Ok(sent)
            })
        }));
    }
    let meter = Meter::start();
    let sent = rt.block_on(async move {
        let tasks: Vec<_> = pairs
            .into_iter()
            .map(|(main_n, worker_n)| {
                xev_async::spawn(async move {
                    let mut sent = 0u64;
                    while sent < n {
                        main_n.notified().await.map_err(ctx("wait"))?;
                        worker_n.notify().map_err(ctx("notify"))?;
                        sent += 1;
                    }
                    Ok::<u64, String>(sent)
                })
            })
            .collect();
        let mut sent = Vec::new();
        for t in tasks {
            sent.push(t.await.map_err(|e| format!("task: {e:?}"))??);
        }
        Ok::<_, String>(sent)
    })?;
    join_all(handles, n)?;
    finish(meter, &sent, n)
}

/// The raw floors: the thinnest correct code on io_uring and on epoll
/// (Linux only).
#[cfg(target_os = "linux")]
pub(crate) mod floor {
    use super::*;
    use crate::floor_sys::*;
    use io_uring::{opcode, types, IoUring};

    /// Floor on io_uring: blocking eventfds, one 8-byte read of each in flight,
    /// answered with a `write(2)` to the other side's eventfd.
    pub fn floor_uring(threads: usize, n: u64) -> Res<Outcome> {
        let mut main_fds = Vec::new();
        let mut handles = Vec::new();
        let mut worker_fds = Vec::new();
        for _ in 0..threads {
            let (mfd, wfd) = (eventfd(false)?, eventfd(false)?);
            main_fds.push(mfd);
            worker_fds.push(wfd);
            handles.push(thread::spawn(move || -> Res<u64> {
                let mut ring = IoUring::new(8).map_err(ctx("io_uring"))?;
                let mut val = 0u64;
                let read = opcode::Read::new(types::Fd(wfd), (&mut val as *mut u64).cast(), 8)
                    .build()
                    .user_data(0);
                eventfd_write(mfd)?;
                let mut sent = 0u64;
                while sent < n {
                    // SAFETY: `val` outlives the read: we reap it before moving on.
                    unsafe { ring.submission().push(&read).map_err(ctx("sq full"))? };
                    ring.submit_and_wait(1).map_err(ctx("enter"))?;
                    let cqe = ring.completion().next().ok_or("no completion")?;
                    if cqe.result() != 8 {
                        return Err(format!("worker read: result {}", cqe.result()));
                    }
                    eventfd_write(mfd)?;
                    sent += 1;
                }
                Ok(sent)
            }));
        }
        let meter = Meter::start();
        let mut ring = IoUring::new(64).map_err(ctx("io_uring"))?;
        let mut vals = vec![0u64; threads];
        let mut sent = vec![0u64; threads];
        let read = |i: usize, v: *mut u64| {
            opcode::Read::new(types::Fd(main_fds[i]), v.cast(), 8)
                .build()
                .user_data(i as u64)
        };
        for (i, v) in vals.iter_mut().enumerate() {
            // SAFETY: `vals` lives (unmoved) until every read is reaped.
            unsafe {
                ring.submission()
                    .push(&read(i, v))
                    .map_err(ctx("sq full"))?
            };
        }
        let mut pending = threads;
        let mut done: Vec<(usize, i32)> = Vec::with_capacity(64);
        while pending > 0 {
            ring.submit_and_wait(1).map_err(ctx("enter"))?;
            done.clear();
            done.extend(
                ring.completion()
                    .map(|c| (c.user_data() as usize, c.result())),
            );
            for &(i, res) in &done {
                if res != 8 {
                    return Err(format!("main read: result {res}"));
                }
                eventfd_write(worker_fds[i])?;
                sent[i] += 1;
                if sent[i] < n {
                    // SAFETY: as above.
                    unsafe {
                        ring.submission()
                            .push(&read(i, &mut vals[i]))
                            .map_err(ctx("sq full"))?
                    };
                } else {
                    pending -= 1;
                }
            }
        }
        join_all(handles, n)?;
        let out = finish(meter, &sent, n);
        for fd in main_fds.into_iter().chain(worker_fds) {
            close(fd);
        }
        out
    }

    /// Floor on epoll: eventfds, `epoll_wait` then `read(2)`, answered with a
    /// `write(2)` to the other side's eventfd.
    pub fn floor_epoll(threads: usize, n: u64) -> Res<Outcome> {
        let mut main_fds = Vec::new();
        let mut handles = Vec::new();
        let mut worker_fds = Vec::new();
        let mut ep = Epoll::new()?;
        for i in 0..threads {
            let (mfd, wfd) = (eventfd(false)?, eventfd(false)?);
            ep.add_in(mfd, i as u64)?;
            main_fds.push(mfd);
            worker_fds.push(wfd);
            handles.push(thread::spawn(move || -> Res<u64> {
                let mut ep = Epoll::new()?;
                ep.add_in(wfd, 0)?;
                eventfd_write(mfd)?;
                let mut sent = 0u64;
                while sent < n {
                    if ep.wait(-1)?.is_empty() {
                        continue;
                    }
                    eventfd_read(wfd)?;
                    eventfd_write(mfd)?;
                    sent += 1;
                }
                Ok(sent)
            }));
        }
        let meter = Meter::start();
        let mut sent = vec![0u64; threads];
        let mut pending = threads;
        let mut ready = Vec::with_capacity(threads);
        while pending > 0 {
            ready.clear();
            ready.extend(ep.wait(-1)?.iter().map(|e| e.u64 as usize));
            for &i in &ready {
                eventfd_read(main_fds[i])?;
                eventfd_write(worker_fds[i])?;
                sent[i] += 1;
                if sent[i] == n {
                    ep.ctl(libc::EPOLL_CTL_DEL, main_fds[i], 0, 0)?;
                    pending -= 1;
                }
            }
        }
        join_all(handles, n)?;
        let out = finish(meter, &sent, n);
        drop(ep);
        for fd in main_fds.into_iter().chain(worker_fds) {
            close(fd);
        }
        out
    }
}
