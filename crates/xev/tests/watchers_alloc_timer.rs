//! Proves that the Timer watcher allocates nothing in steady state: a
//! counting global allocator (per thread, so tests running in parallel do
//! not count each other) measures 100,000 `Timer::reset` calls after
//! warm-up, and 10,000 fire-and-reset-from-the-callback cycles, on every
//! backend this host can run (`tests/support/harness.rs`: `BACKEND::NAME`).
//! The same binary checks the UDP watcher's documented zero-allocation
//! paths: a rearmed read and a parked-and-restarted write, in lock step.

// Linux-hosted (io_uring, epoll, dynamic, and kqueue through libkqueue) and
// Windows (IOCP, under wine in CI); kqueue on macOS and FreeBSD is covered
// by the portable conformance suite.
#![cfg(any(
    target_os = "linux",
    windows,
    all(target_os = "wasi", not(target_env = "p1"))
))]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use xev::backend::Backend;
use xev::generic::Loop;
use xev::watcher::Timer;
use xev::watcher::Udp;
use xev::{Action, Options, RunMode};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

const SAFETY_NET: Duration = Duration::from_secs(10);

/// 100,000 resets of an active timer (with other timers in the heap and a
/// loop tick every 1,000 resets), after warm-up. Returns the allocations
/// made during them.
fn resets<B: Backend>() -> u64 {
    const RESETS: u64 = 100_000;
    let mut lp = Loop::<B>::new(Options::default()).unwrap();
    let fired = Rc::new(Cell::new(0u64));
    let f = fired.clone();
    let t = Timer::new(&mut lp, move |_, res| {
        res.unwrap();
        f.set(f.get() + 1);
        Action::Disarm
    });
    let others: Vec<Timer<B>> = (0..32)
        .map(|i| {
            let o = Timer::new(&mut lp, |_, _| Action::Disarm);
            o.run(&mut lp, 50_000 + i).unwrap();
            o
        })
        .collect();
    // Warm-up: everything the loop and heap will ever need is allocated.
    t.run(&mut lp, 60_000).unwrap();
    for i in 0..1_000u64 {
        t.reset(&mut lp, 40_000 + i % 977).unwrap();
    }
    lp.run(RunMode::NoWait).unwrap();

    let before = allocs();
    for i in 0..RESETS {
        t.reset(&mut lp, 40_000 + (i * 7919) % 20_000).unwrap();
        if i % 1_000 == 0 {
            lp.run(RunMode::NoWait).unwrap();
        }
    }
    let during = allocs() - before;

    assert_eq!(fired.get(), 0);
    t.reset(&mut lp, 0).unwrap();
    let start = Instant::now();
    while fired.get() == 0 {
        lp.run(RunMode::Once).unwrap();
        assert!(start.elapsed() < SAFETY_NET, "the timer never fired");
    }
    for o in &others {
        o.cancel(&mut lp).unwrap();
    }
    lp.run(RunMode::UntilDone).unwrap();
    during
}

/// A timer that resets itself from its own callback, `cycles` times;
/// returns the allocations made after the first `warmup` cycles.
fn self_resets<B: Backend>(warmup: u64, cycles: u64) -> u64 {
    let mut lp = Loop::<B>::new(Options::default()).unwrap();
    let me: Rc<RefCell<Option<Timer<B>>>> = Rc::new(RefCell::new(None));
    let fired = Rc::new(Cell::new(0u64));
    let (mark, end) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
    let (m, f, mk, e) = (me.clone(), fired.clone(), mark.clone(), end.clone());
    let t = Timer::new(&mut lp, move |lp, res| {
        res.unwrap();
        f.set(f.get() + 1);
        if f.get() == warmup {
            mk.set(allocs());
        }
        if f.get() == cycles {
            e.set(allocs());
            return Action::Disarm;
        }
        if let Some(t) = m.borrow().as_ref() {
            t.reset(lp, 0).unwrap();
        }
        Action::Disarm // the reset re-arms it anyway
    });
    t.run(&mut lp, 0).unwrap();
    *me.borrow_mut() = Some(t);
    let start = Instant::now();
    while fired.get() < cycles {
        lp.run(RunMode::Once).unwrap();
        assert!(start.elapsed() < SAFETY_NET, "self-resetting timer stalled");
    }
    let t = me.borrow_mut().take().unwrap();
    t.free(&mut lp).unwrap();
    end.get() - mark.get()
}

fn check<B: Backend>() {
    // The counter really counts this thread's allocations.
    let before = allocs();
    std::hint::black_box(Box::new(7u64));
    assert!(allocs() > before, "the counting allocator is not installed");
    let a = resets::<B>();
    assert_eq!(a, 0, "100,000 Timer::reset calls allocated {a} times");
    let a = self_resets::<B>(1_000, 11_000);
    assert_eq!(a, 0, "10,000 self-reset cycles allocated {a} times");
}

/// Lock-step UDP ping: one write completion, parked after each send and
/// restarted by the receiver's rearmed read when the datagram arrived.
/// Returns the allocations made after `warmup` of `rounds` rounds.
fn udp_lock_step<B: Backend>(warmup: u64, rounds: u64) -> u64 {
    let mut lp = Loop::<B>::new(Options::default()).unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let (a, b) = (Udp::<B>::new(any).unwrap(), Udp::<B>::new(any).unwrap());
    a.bind(any).unwrap();
    b.bind(any).unwrap();
    let b_addr = b.local_addr().unwrap();
    let write_id = Rc::new(Cell::new(None));
    let n = Rc::new(Cell::new(0u64));
    let (mark, end) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
    let (w, k, mk, e) = (write_id.clone(), n.clone(), mark.clone(), end.clone());
    b.read(&mut lp, vec![0; 8], move |lp, buf, res| {
        let (len, _) = res.unwrap();
        assert_eq!(buf[..len], k.get().to_le_bytes());
        k.set(k.get() + 1);
        if k.get() == warmup {
            mk.set(allocs());
        }
        if k.get() == rounds {
            e.set(allocs());
            return Action::Disarm;
        }
        lp.restart(w.get().unwrap()).unwrap();
        Action::Rearm
    });
    let id = a.write(
        &mut lp,
        b_addr,
        0u64.to_le_bytes().to_vec(),
        |_, buf, res| {
            res.unwrap();
            let next = u64::from_le_bytes(buf[..8].try_into().unwrap()) + 1;
            buf.copy_from_slice(&next.to_le_bytes());
            Action::Park
        },
    );
    write_id.set(Some(id));
    let start = Instant::now();
    while n.get() < rounds {
        lp.run(RunMode::Once).unwrap();
        assert!(
            start.elapsed() < SAFETY_NET,
            "UDP lock step stalled at {}",
            n.get()
        );
    }
    a.close(&mut lp, |_, res| res.unwrap());
    b.close(&mut lp, |_, res| res.unwrap());
    lp.run(RunMode::UntilDone).unwrap();
    end.get() - mark.get()
}

fn check_udp<B: Backend>() {
    let a = udp_lock_step::<B>(100, 10_100);
    assert_eq!(a, 0, "10,000 UDP rearm/restart rounds allocated {a} times");
}

for_each_backend!(
    fn udp_rearm_and_restart_allocate_nothing<B: Backend>() {
        check_udp::<B>();
    }

    fn timer_resets_allocate_nothing<B: Backend>() {
        check::<B>();
    }
);
