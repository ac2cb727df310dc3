//! Loop-level unit tests. They use the epoll backend (and io_uring when
//! not under Miri) so that Miri can check the loop's pointer handling:
//! Miri emulates epoll, eventfd and socketpairs, but not io_uring.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use super::*;
use crate::backend::epoll::Epoll;
use crate::error::{ReadError, TimerError};

/// A non-blocking socket pair (made without ioctl, which Miri lacks).
fn pair() -> (UnixStream, UnixStream) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a live array of two ints for the new descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0, "socketpair: {}", io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe {
        (
            UnixStream::from_raw_fd(fds[0]),
            UnixStream::from_raw_fd(fds[1]),
        )
    }
}

/// Writes all of `data` with write(2) (Miri emulates write, not send).
fn put(s: &UnixStream, data: &[u8]) {
    // SAFETY: `data` is a live slice of the given length.
    let n = unsafe { libc::write(s.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize);
}

fn new_loop<B: Backend>() -> OwnedLoop<B> {
    Loop::new(Options::default()).expect("loop")
}

fn noop_rearm_and_disarm<B: Backend>() {
    let mut lp = new_loop::<B>();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    let id = lp.add(Op::Noop, move |_, _, res| {
        assert!(matches!(res, OpResult::Noop(Ok(()))));
        n2.set(n2.get() + 1);
        if n2.get() < 5 {
            Action::Rearm
        } else {
            Action::Disarm
        }
    });
    assert!(lp.is_active(id));
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(n.get(), 5);
    assert_eq!(lp.active(), 0);
    assert!(!lp.is_active(id));
    assert_eq!(lp.restart(id), Err(IdError::Stale));
}

fn park_restart_op_mut_free<B: Backend>() {
    let mut lp = new_loop::<B>();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let id = lp.add(Op::timer(0), move |_, op, _| {
        if let Op::Timer { deadline } = op {
            s.borrow_mut().push(*deadline);
        }
        Action::Park
    });
    assert_eq!(lp.op_mut(id).err(), Some(IdError::Busy));
    lp.run(RunMode::UntilDone).unwrap();
    *lp.op_mut(id).unwrap() = Op::timer(1);
    lp.restart(id).unwrap();
    assert_eq!(lp.restart(id), Err(IdError::Busy));
    assert_eq!(lp.free(id), Err(IdError::Busy));
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(*seen.borrow(), vec![0, 1]);
    lp.free(id).unwrap();
    assert_eq!(lp.free(id), Err(IdError::Stale));
}

/// A vouch, and a tried hint, hold for one start, and `op_mut` drops
/// them (the operation they were made for may change).
fn vouch_lasts_one_start_and_op_mut_drops_it<B: Backend>() {
    type Set<B> = fn(&mut Loop<B>, Id) -> Result<(), IdError>;
    type Has<B> = fn(&Loop<B>, Id) -> bool;
    let mut lp = new_loop::<B>();
    let id = lp.add_parked_callback(Op::Noop, |_: &mut Loop<B>, _: &mut Op, _: OpResult| {
        Action::Park
    });
    let hints: [(&str, Set<B>, Has<B>); 2] = [
        ("vouch", Loop::vouch, Loop::is_vouched),
        ("tried", Loop::tried, Loop::is_tried),
    ];
    for (hint, set, has) in hints {
        set(&mut lp, id).unwrap();
        assert!(has(&lp, id), "{hint}");
        lp.op_mut(id).unwrap();
        assert!(!has(&lp, id), "op_mut keeps no {hint}");
        set(&mut lp, id).unwrap();
        lp.restart(id).unwrap();
        assert!(has(&lp, id), "{hint} held until the start");
        lp.run(RunMode::UntilDone).unwrap();
        assert!(!has(&lp, id), "the start used the {hint} up");
    }
    lp.free(id).unwrap();
}

fn timers_fire_in_deadline_then_insertion_order<B: Backend>() {
    let mut lp = new_loop::<B>();
    let order = Rc::new(RefCell::new(Vec::new()));
    for (tag, deadline) in [(0, 3), (1, 1), (2, 2), (3, 1), (4, 0)] {
        let o = order.clone();
        lp.add(Op::timer(deadline), move |_, _, res| {
            assert!(matches!(res, OpResult::Timer(Ok(()))));
            o.borrow_mut().push(tag);
            Action::Disarm
        });
    }
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(*order.borrow(), vec![4, 1, 3, 2, 0]);
}

fn timer_reset_and_cancel<B: Backend>() {
    let mut lp = new_loop::<B>();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let far = lp.add(Op::timer(u64::MAX), move |_, _, res| {
        let OpResult::Timer(r) = res else {
            unreachable!()
        };
        l.borrow_mut().push(matches!(r, Err(TimerError::Canceled)));
        Action::Park
    });
    lp.run(RunMode::NoWait).unwrap();
    assert!(lp.is_active(far));
    // Move the far-future timer to now: it fires.
    lp.timer_reset(far, 0).unwrap();
    lp.run(RunMode::Once).unwrap();
    assert_eq!(*log.borrow(), vec![false]);
    // Parked: a reset starts it again; then cancel it.
    lp.timer_reset(far, u64::MAX).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.cancel(far), Ok(()));
    lp.run(RunMode::Once).unwrap();
    assert_eq!(*log.borrow(), vec![false, true]);
    assert_eq!(lp.cancel(far), Err(CancelError::NotFound));
    let read = lp.add(Op::Noop, |_, _, _| Action::Disarm);
    assert_eq!(lp.timer_reset(read, 0), Err(IdError::WrongKind));
    lp.run(RunMode::UntilDone).unwrap();
}

fn reset_inside_own_callback_rearms<B: Backend>() {
    let mut lp = new_loop::<B>();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    let me = Rc::new(Cell::new(None));
    let me2 = me.clone();
    let id = lp.add(Op::timer(0), move |lp, _, _| {
        n2.set(n2.get() + 1);
        if n2.get() == 1 {
            let id = me2.get().unwrap();
            lp.timer_reset(id, lp.now()).unwrap();
        }
        Action::Disarm
    });
    me.set(Some(id));
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(n.get(), 2, "the reset re-armed the timer once");
}

fn cancel_op_targets<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (a, b) = pair();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let read = lp.add(
        Op::Read {
            fd: a.as_raw_fd(),
            buf: vec![0; 4].into(),
        },
        move |_, _, res| {
            g.borrow_mut()
                .push(matches!(res, OpResult::Read(Err(ReadError::Canceled))));
            Action::Disarm
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    let g = got.clone();
    lp.add(Op::Cancel { target: read }, move |_, _, res| {
        g.borrow_mut().push(matches!(res, OpResult::Cancel(Ok(()))));
        Action::Disarm
    });
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(*got.borrow(), vec![true, true]);
    // The read is gone: a second cancel finds nothing.
    let g = got.clone();
    lp.add(Op::Cancel { target: read }, move |_, _, res| {
        g.borrow_mut()
            .push(matches!(res, OpResult::Cancel(Err(CancelError::NotFound))));
        Action::Disarm
    });
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(*got.borrow(), vec![true, true, true]);
    // A cancel of a queued (not yet started) op: data is ready, yet the
    // read never runs.
    put(&b, b"late");
    let g = got.clone();
    let queued = lp.add(
        Op::Read {
            fd: a.as_raw_fd(),
            buf: vec![0; 4].into(),
        },
        move |_, _, res| {
            g.borrow_mut()
                .push(matches!(res, OpResult::Read(Err(ReadError::Canceled))));
            Action::Disarm
        },
    );
    assert_eq!(lp.cancel(queued), Ok(()));
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(*got.borrow(), vec![true, true, true, true]);
}

fn read_ready_data<B: Backend>() {
    let mut lp = new_loop::<B>();
    let (a, b) = pair();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    lp.add(
        Op::Read {
            fd: a.as_raw_fd(),
            buf: vec![0; 16].into(),
        },
        move |_, op, res| {
            let OpResult::Read(Ok(n)) = res else {
                panic!("{res:?}")
            };
            g.borrow_mut().extend_from_slice(&op.buf().unwrap()[..n]);
            Action::Disarm
        },
    );
    lp.run(RunMode::NoWait).unwrap();
    assert!(got.borrow().is_empty());
    put(&b, b"hello");
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(&got.borrow()[..], b"hello");
}

fn stop_ends_run<B: Backend>() {
    let mut lp = new_loop::<B>();
    lp.add(Op::timer(u64::MAX), |_, _, _| Action::Disarm);
    lp.add(Op::Noop, |lp, _, _| {
        lp.stop();
        Action::Disarm
    });
    lp.run(RunMode::UntilDone).unwrap();
    assert!(lp.stopped());
    assert_eq!(lp.active(), 1);
}

struct DropCount(Rc<Cell<u32>>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn drop_loop_with_work_in_flight<B: Backend>() {
    let drops = Rc::new(Cell::new(0));
    let fired = Rc::new(Cell::new(false));
    let (a, b) = pair();
    {
        let mut lp = new_loop::<B>();
        for op in [
            Op::timer(u64::MAX),
            Op::Read {
                fd: a.as_raw_fd(),
                buf: vec![0; 8].into(),
            },
        ] {
            let guard = DropCount(drops.clone());
            let f = fired.clone();
            lp.add(op, move |_, _, _| {
                let _ = &guard;
                f.set(true);
                Action::Disarm
            });
        }
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(lp.active(), 2);
    }
    assert_eq!(drops.get(), 2, "each callback dropped exactly once");
    assert!(!fired.get(), "no callback fired after the loop was dropped");
    put(&b, b"after");
}

/// Another thread notifies while the loop is busy or parked: every
/// notify is followed by a callback that sees the notifier's data.
fn async_wakes_from_another_thread<B: Backend>() {
    use std::sync::atomic::AtomicUsize;
    let n = if cfg!(miri) { 20 } else { 2000 };
    let mut lp = new_loop::<B>();
    let a = crate::Async::new().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let seen = Rc::new(Cell::new(0usize));
    let (s2, seen2) = (sent.clone(), seen.clone());
    lp.add(Op::AsyncWait(a.clone()), move |_, _, res| {
        assert!(matches!(res, OpResult::Async(Ok(()))));
        seen2.set(s2.load(Ordering::Acquire));
        if seen2.get() == n {
            Action::Disarm
        } else {
            Action::Rearm
        }
    });
    let (a2, s3) = (a.clone(), sent.clone());
    let t = std::thread::spawn(move || {
        for i in 1..=n {
            s3.store(i, Ordering::Release);
            a2.notify().unwrap();
            if i % 7 == 0 {
                std::thread::yield_now();
            }
        }
    });
    lp.run(RunMode::UntilDone).unwrap();
    t.join().unwrap();
    assert_eq!(seen.get(), n, "the last notify was followed by a wake");
}

/// A callback that panics inside a nested run: the nested run frees
/// that completion (once) and the panic reaches the outer callback,
/// whose completion is untouched.
fn panic_in_nested_run_frees_only_the_panicking_completion<B: Backend>() {
    let drops = Rc::new(Cell::new(0));
    let mut lp = new_loop::<B>();
    let caught = Rc::new(Cell::new(false));
    let (d, c) = (drops.clone(), caught.clone());
    let outer = lp.add(Op::Noop, move |lp, _, _| {
        let guard = DropCount(d.clone());
        let inner = lp.add(Op::Noop, move |_, _, _| {
            let _keep = &guard;
            panic!("deliberate panic in a nested callback");
        });
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::UntilDone)));
        c.set(r.is_err());
        assert_eq!(d.get(), 1, "the inner completion was freed");
        assert_eq!(lp.free(inner), Err(IdError::Stale));
        Action::Park
    });
    lp.run(RunMode::UntilDone).unwrap();
    assert!(caught.get());
    assert!(!lp.is_active(outer));
    lp.free(outer).unwrap(); // still there, parked
    drop(lp);
    assert_eq!(drops.get(), 1, "nothing dropped twice");
}

macro_rules! suite {
    ($name:ident, $backend:ty, $skip:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn skip() -> bool {
                let s: Option<String> = $skip;
                if let Some(why) = s {
                    eprintln!("{why}: skipping");
                    return true;
                }
                false
            }
            #[test]
            fn noop_rearm_and_disarm() {
                if !skip() {
                    super::noop_rearm_and_disarm::<$backend>()
                }
            }
            #[test]
            fn park_restart_op_mut_free() {
                if !skip() {
                    super::park_restart_op_mut_free::<$backend>()
                }
            }
            #[test]
            fn vouch_lasts_one_start_and_op_mut_drops_it() {
                if !skip() {
                    super::vouch_lasts_one_start_and_op_mut_drops_it::<$backend>()
                }
            }
            #[test]
            fn timers_fire_in_deadline_then_insertion_order() {
                if !skip() {
                    super::timers_fire_in_deadline_then_insertion_order::<$backend>()
                }
            }
            #[test]
            fn timer_reset_and_cancel() {
                if !skip() {
                    super::timer_reset_and_cancel::<$backend>()
                }
            }
            #[test]
            fn reset_inside_own_callback_rearms() {
                if !skip() {
                    super::reset_inside_own_callback_rearms::<$backend>()
                }
            }
            #[test]
            fn cancel_op_targets() {
                if !skip() {
                    super::cancel_op_targets::<$backend>()
                }
            }
            #[test]
            fn read_ready_data() {
                if !skip() {
                    super::read_ready_data::<$backend>()
                }
            }
            #[test]
            fn stop_ends_run() {
                if !skip() {
                    super::stop_ends_run::<$backend>()
                }
            }
            #[test]
            fn async_wakes_from_another_thread() {
                if !skip() {
                    super::async_wakes_from_another_thread::<$backend>()
                }
            }
            #[test]
            fn panic_in_nested_run_frees_only_the_panicking_completion() {
                if !skip() {
                    super::panic_in_nested_run_frees_only_the_panicking_completion::<$backend>()
                }
            }
            #[test]
            fn drop_loop_with_work_in_flight() {
                if !skip() {
                    super::drop_loop_with_work_in_flight::<$backend>()
                }
            }
        }
    };
}

suite!(epoll, Epoll, None);
#[cfg(all(xev_libkqueue, not(miri)))]
suite!(kqueue, crate::backend::kqueue::Kqueue, None);
#[cfg(not(miri))]
suite!(
    io_uring,
    crate::backend::io_uring::IoUring,
    crate::backend::io_uring::IoUring::probe()
        .err()
        .map(|e| format!("io_uring unavailable here ({e})"))
);
