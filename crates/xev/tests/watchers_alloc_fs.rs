//! Proves that filesystem operations allocate nothing in steady state on
//! the loop's thread: 10,000 `stat` calls by path and 10,000 `fstat`s of an
//! open file (one [`Op::Fs`] completion each, rearmed from its callback)
//! are measured after warm-up with a counting global allocator, on every
//! backend this host can run (`tests/support/harness.rs`: `BACKEND::NAME`).
//! io_uring performs them in the kernel; the other backends hand them to
//! the thread pool, whose threads the per-thread counter does not see (a
//! worker's part is one `statx`/`fstat` call through `std::fs`, with the
//! path converted once when the operation was built).

// Linux-hosted (io_uring, epoll, dynamic, and kqueue through libkqueue) and
// Windows (IOCP, under wine in CI).
#![cfg(any(target_os = "linux", windows, target_os = "wasi"))]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use xev::backend::Backend;
use xev::generic::Loop;
use xev::{Action, Fs, Op, OpResult, Options, RunMode, ThreadPool};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

const SAFETY_NET: Duration = Duration::from_secs(60);

/// Runs `op` `warmup + calls` times (rearming it from its callback, which
/// checks the size it reports) and returns the allocations made during the
/// last `calls`.
fn repeated<B: Backend>(lp: &mut Loop<B>, op: Box<Fs>, size: u64, warmup: u64, calls: u64) -> u64 {
    let n = Rc::new(Cell::new(0u64));
    let (mark, end) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
    let (c, mk, e) = (n.clone(), mark.clone(), end.clone());
    lp.add(Op::Fs(op), move |_, _, res| {
        match res {
            OpResult::Fs(Ok(xev::FsOutput::Stat(s))) => assert_eq!(s.size, size),
            other => panic!("stat failed: {other:?}"),
        }
        c.set(c.get() + 1);
        if c.get() == warmup {
            mk.set(allocs());
        }
        if c.get() == warmup + calls {
            e.set(allocs());
            return Action::Disarm;
        }
        Action::Rearm
    });
    let start = Instant::now();
    while n.get() < warmup + calls {
        lp.run(RunMode::Once).unwrap();
        assert!(start.elapsed() < SAFETY_NET, "stat calls stalled");
    }
    end.get() - mark.get()
}

fn check<B: Backend>() {
    let before = allocs();
    std::hint::black_box(Box::new(7u64));
    assert!(allocs() > before, "the counting allocator is not installed");

    // No threads on WASI: its backend runs filesystem operations inline.
    // One worker: the pool spawns threads on demand, and a spawn allocates
    // on the thread that scheduled the work (the loop's). With more, a
    // loaded machine could make the pool grow after warm-up (a worker not
    // back to idle yet when the next stat is handed over: CI saw 7
    // allocations in 10,000 stats under libkqueue), which is pool growth,
    // not a per-operation allocation.
    let pool = ThreadPool::new(xev::ThreadPoolConfig::default().max_threads(1)).ok();
    let mut lp = Loop::<B>::new(Options {
        thread_pool: pool,
        ..Options::default()
    })
    .unwrap();
    // On WASI: the directory the runner preopens (`--dir .`); no pids.
    let dir = if cfg!(target_os = "wasi") {
        std::path::PathBuf::from(".")
    } else {
        std::env::temp_dir()
    };
    // A file per instance: `dynamic` reports the backend it picked, so its
    // name alone would clash with that backend's instance running beside
    // it (one would rewrite or remove the other's file mid-test).
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = dir.join(format!(
        "xev-alloc-fs-{}-{}-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        if cfg!(target_os = "wasi") {
            0
        } else {
            std::process::id()
        },
        lp.backend_name()
    ));
    std::fs::write(&path, [7u8; 1234]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    #[cfg(any(unix, target_os = "wasi"))]
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    #[cfg(windows)]
    let fd = std::os::windows::io::AsRawHandle::as_raw_handle(&file) as xev::RawHandle;

    let a = repeated(&mut lp, Fs::stat(&path), 1234, 1_000, 10_000);
    assert_eq!(a, 0, "10,000 stat calls allocated {a} times");
    let a = repeated(&mut lp, Fs::fstat(fd), 1234, 1_000, 10_000);
    assert_eq!(a, 0, "10,000 fstat calls allocated {a} times");
    drop(file);
    std::fs::remove_file(&path).unwrap();
}

for_each_backend!(
    fn stat_calls_allocate_nothing<B: Backend>() {
        check::<B>();
    }
);
