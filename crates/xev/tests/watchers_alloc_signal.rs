//! Proves that signal delivery allocates nothing in steady state on the
//! loop's thread: a signal raised and delivered 10,000 times to a
//! [`Signal`] watcher that rearms, measured after warm-up with a counting
//! global allocator (per thread), on every backend
//! (`tests/support/harness.rs`). The instances take turns (signals are
//! process-wide).

#![cfg(target_os = "linux")]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use xev::backend::Backend;
use xev::generic::Loop;
use xev::watcher::Signal;
use xev::{Action, Options, RunMode};

static TURN: Mutex<()> = Mutex::new(());

fn deliveries<B: Backend>(warmup: u64, n: u64) -> u64 {
    let mut lp = Loop::<B>::new(Options::default()).unwrap();
    let seen = Rc::new(Cell::new(0u64));
    let s = seen.clone();
    let w = Signal::<B>::new(&mut lp, libc::SIGUSR1, move |_, r| {
        if let Ok(k) = r {
            s.set(s.get() + k);
        }
        Action::Rearm
    })
    .unwrap();
    let mut mark = 0;
    let start = Instant::now();
    for i in 0..warmup + n {
        if i == warmup {
            mark = allocs();
        }
        // SAFETY: raise takes a signal number; the watcher's handler is in.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        while seen.get() <= i {
            lp.run(RunMode::Once).unwrap();
            assert!(start.elapsed() < Duration::from_secs(120), "stalled");
        }
    }
    let used = allocs() - mark;
    drop(w);
    lp.run(RunMode::UntilDone).unwrap();
    used
}

for_each_backend!(
    fn signal_deliveries_allocate_nothing<B: Backend>() {
        let _t = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let before = allocs();
        std::hint::black_box(Box::new(7u64));
        assert!(allocs() > before, "the counting allocator is not installed");
        let a = deliveries::<B>(1_000, 10_000);
        assert_eq!(a, 0, "10,000 signal deliveries allocated {a} times");
    }
);
