//! The signal watcher on every backend (`tests/support/harness.rs`):
//! signals raised at the test process are delivered, to several watchers
//! on several loops and threads; occurrences that arrive while nobody
//! waits are kept and coalesce; invalid signals are typed errors; dropping
//! the last watcher restores the previous action; a `SIGCHLD` watcher and
//! the process watcher both see a child's exit.
//!
//! Signals are process-wide, so the tests of this binary take turns (one
//! lock), and each uses a signal whose default action is harmless or that
//! it handles itself.

#![cfg(unix)]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;
#[path = "support/children.rs"]
mod children;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Barrier, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use xev::backend::Backend;
use xev::generic::{Loop, OwnedLoop};
use xev::watcher::{Process, Signal};
use xev::{Action, Options, RunMode, SignalError};

/// Signal tests take turns.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_loop<B: Backend>() -> OwnedLoop<B> {
    Loop::<B>::new(Options::default()).expect("creating the loop")
}

fn raise(sig: i32) {
    // SAFETY: raise takes a signal number; xev's handler is installed.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

/// Runs `lp` until `done()` (a hang guard fails the test after a minute).
fn run_until<B: Backend>(lp: &mut Loop<B>, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        lp.run(RunMode::Once).unwrap();
        assert!(start.elapsed() < Duration::from_secs(60), "no delivery");
    }
}

/// The current action of `sig` (its handler address).
fn action(sig: i32) -> libc::sighandler_t {
    // SAFETY: queries only; `old` is a live sigaction to fill.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Counts deliveries, occurrences, and the end of the wait.
#[derive(Default)]
struct Seen {
    calls: Cell<u64>,
    total: Cell<u64>,
    canceled: Cell<u64>,
}

fn watch<B: Backend>(lp: &mut Loop<B>, sig: i32, seen: &Rc<Seen>) -> Signal<B> {
    let s = seen.clone();
    Signal::new(lp, sig, move |_, r| {
        let n = match r {
            Ok(n) => n,
            Err(SignalError::Canceled) => {
                s.canceled.set(s.canceled.get() + 1);
                return Action::Disarm;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(n >= 1);
        s.calls.set(s.calls.get() + 1);
        s.total.set(s.total.get() + n);
        Action::Rearm
    })
    .expect("watching the signal")
}

for_each_backend!(
    fn raised_signal_is_delivered<B: Backend>() {
        let _t = turn();
        let mut lp = new_loop::<B>();
        let seen = Rc::new(Seen::default());
        let w = watch(&mut lp, libc::SIGUSR1, &seen);
        assert_eq!(w.signal(), libc::SIGUSR1);
        for i in 1..=3 {
            raise(libc::SIGUSR1);
            run_until(&mut lp, || seen.total.get() == i);
        }
        assert_eq!(seen.calls.get(), 3);
        drop(w);
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(lp.active(), 0, "the dropped watcher's wait ended");
        assert_eq!(seen.canceled.get(), 1, "its last call says so, once");
    }

    /// Occurrences while nobody waits are kept: raised before the loop
    /// runs, or while the watcher is stopped, they are delivered to the
    /// next wait (coalesced: one callback may stand for several).
    fn signals_while_nobody_waits_are_not_lost<B: Backend>() {
        let _t = turn();
        let mut lp = new_loop::<B>();
        let calls = Rc::new(RefCell::new(Vec::new()));
        let c = calls.clone();
        // The first delivery stops the watcher; after the restart it waits
        // until all five occurrences are in (the dispatcher may hand them
        // over in several deliveries).
        let w = Signal::<B>::new(&mut lp, libc::SIGUSR2, move |_, r| {
            let mut c = c.borrow_mut();
            c.push(r.expect("a delivery"));
            if c.len() == 1 || c.iter().sum::<u64>() == 5 {
                Action::Disarm
            } else {
                Action::Rearm
            }
        })
        .unwrap();
        for _ in 0..3 {
            raise(libc::SIGUSR2);
        }
        run_until(&mut lp, || calls.borrow().iter().sum::<u64>() >= 1);
        // The watcher stopped (Disarm) after its first delivery; whatever
        // else arrives is counted for its next wait.
        raise(libc::SIGUSR2);
        raise(libc::SIGUSR2);
        lp.run(RunMode::NoWait).unwrap();
        w.start(&mut lp).unwrap();
        run_until(&mut lp, || calls.borrow().iter().sum::<u64>() == 5);
        assert!(calls.borrow().len() <= 5, "{:?}", calls.borrow());
    }

    /// Two loops on two threads, each with its own watcher, both see one
    /// signal.
    fn two_loops_on_two_threads_both_see_it<B: Backend>() {
        let _t = turn();
        let ready = std::sync::Arc::new(Barrier::new(3));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let ready = ready.clone();
                std::thread::spawn(move || {
                    let mut lp = new_loop::<B>();
                    let seen = Rc::new(Seen::default());
                    let _w = watch(&mut lp, libc::SIGWINCH, &seen);
                    ready.wait();
                    run_until(&mut lp, || seen.total.get() >= 1);
                    seen.total.get()
                })
            })
            .collect();
        ready.wait();
        raise(libc::SIGWINCH);
        for t in threads {
            assert_eq!(t.join().unwrap(), 1);
        }
    }

    /// The first watcher installs xev's handler; dropping the last puts
    /// back what was there (here a handler of the test's own: SIG_IGN).
    fn dropping_the_last_watcher_restores_the_action<B: Backend>() {
        let _t = turn();
        let sig = libc::SIGURG;
        // SAFETY: installs SIG_IGN, a valid action, for a signal nothing
        // else in this binary uses.
        let before = unsafe { libc::signal(sig, libc::SIG_IGN) };
        assert_ne!(before, libc::SIG_ERR);
        let mut lp = new_loop::<B>();
        let seen = Rc::new(Seen::default());
        let a = watch(&mut lp, sig, &seen);
        let b = watch(&mut lp, sig, &seen);
        assert_ne!(action(sig), libc::SIG_IGN, "xev's handler is in place");
        raise(sig);
        run_until(&mut lp, || seen.calls.get() == 2);
        drop(a);
        lp.run(RunMode::NoWait).unwrap();
        assert_ne!(action(sig), libc::SIG_IGN, "one watcher is left");
        drop(b);
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(action(sig), libc::SIG_IGN, "the previous action is back");
        // SAFETY: puts back what the test found.
        unsafe { libc::signal(sig, before) };
    }

    fn invalid_signals_are_typed_errors<B: Backend>() {
        let mut lp = new_loop::<B>();
        for sig in [0, -1, 1000, libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV] {
            match Signal::<B>::new(&mut lp, sig, |_, _| Action::Disarm) {
                Err(SignalError::Invalid) => {}
                other => panic!("signal {sig}: {other:?}"),
            }
        }
        assert_eq!(lp.active(), 0);
    }

    /// A SIGCHLD watcher and the process watcher both see a child's exit,
    /// and the exit code is the child's.
    fn sigchld_and_the_process_watcher_coexist<B: Backend>() {
        let _t = turn();
        let mut lp = new_loop::<B>();
        let seen = Rc::new(Seen::default());
        let _w = watch(&mut lp, libc::SIGCHLD, &seen);
        let p = match children::retry(
            || Process::<B>::spawn(&mut children::exiting(42)),
            children::process_io,
        ) {
            Ok(s) => s.process,
            Err(xev::ProcessError::Unsupported) => return,
            Err(e) => panic!("spawn: {e}"),
        };
        let status = Rc::new(RefCell::new(None));
        let st = status.clone();
        p.wait(&mut lp, move |_, r| {
            *st.borrow_mut() = Some(r.expect("the wait"));
            Action::Disarm
        });
        run_until(&mut lp, || {
            status.borrow().is_some() && seen.total.get() >= 1
        });
        assert_eq!(status.borrow().as_ref().unwrap().code(), Some(42));
        p.close(&mut lp, |_, r| r.expect("close"));
        lp.run(RunMode::NoWait).unwrap();
    }
);
