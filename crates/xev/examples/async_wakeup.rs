//! Waking an xev loop from another thread with an `Async` handle.
//!
//! A worker thread notifies the loop N times (in bursts, so some notifies
//! coalesce into one wakeup), then raises a "done" flag and notifies once
//! more. The loop's wait rearms itself after every wakeup, counts them, and
//! ends when it sees the flag. At least one wakeup, and never more than one
//! per notify.
//!
//! ```text
//! cargo run --example async_wakeup -- [N]
//! ```

// Not built on WASI, which has no threads to wake the loop from.
#![cfg_attr(target_os = "wasi", no_main)]
#![cfg(not(target_os = "wasi"))]

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xev::{Action, Async, Loop, RunMode};

const USAGE: &str = "\
async_wakeup: wakes an xev loop from another thread N times (default 1000)
through an Async handle and counts the wakeups (notifies coalesce).

usage: async_wakeup [N]

The backend is the default one; XEV_BACKEND forces io_uring or epoll on Linux.";

/// Prints the usage and exits with status 0 when `-h` or `--help` is given.
fn help_if_asked() {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        std::process::exit(0);
    }
}

fn main() -> ExitCode {
    help_if_asked();
    let n: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1_000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: async_wakeup [N]");
            return ExitCode::FAILURE;
        }
    };
    match run(n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("async_wakeup: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(n: u64) -> std::io::Result<()> {
    let mut lp = Loop::new(Default::default())?;
    println!("backend: {}", lp.backend_name());
    let wake = Async::new()?;
    let done = Arc::new(AtomicBool::new(false));

    let wakeups = Rc::new(Cell::new(0u64));
    let (w, d) = (wakeups.clone(), done.clone());
    wake.wait(&mut lp, move |_, res| {
        if let Err(e) = res {
            eprintln!("wait: {e}");
            return Action::Disarm;
        }
        w.set(w.get() + 1);
        if d.load(Ordering::Acquire) {
            Action::Disarm
        } else {
            Action::Rearm
        }
    });

    let (remote, flag) = (wake.clone(), done.clone());
    let start = Instant::now();
    let worker = std::thread::spawn(move || -> std::io::Result<()> {
        for i in 0..n {
            remote.notify()?;
            if i % 100 == 99 {
                std::thread::sleep(Duration::from_millis(1)); // let the loop catch up now and then
            }
        }
        flag.store(true, Ordering::Release);
        remote.notify() // after the flag: the wakeup it causes sees the flag
    });

    lp.run(RunMode::UntilDone)?;
    worker
        .join()
        .map_err(|_| std::io::Error::other("worker thread panicked"))??;
    println!(
        "{} notifies -> {} wakeups in {:.1} ms",
        n + 1,
        wakeups.get(),
        start.elapsed().as_secs_f64() * 1e3
    );
    if wakeups.get() == 0 || wakeups.get() > n + 1 {
        return Err(std::io::Error::other("wrong number of wakeups"));
    }
    Ok(())
}
