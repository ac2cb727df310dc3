//! The UDP, process, async and timer watchers, and the dynamic backend's
//! choice. Every scenario is written once, generic over the backend, in the
//! `for_each_backend!` at the bottom (`tests/support/harness.rs`), which
//! instantiates it as `BACKEND::NAME` for io_uring (skipped with a message
//! where the kernel or a sandbox forbids it), epoll, the dynamic backend,
//! kqueue through libkqueue and IOCP (under wine). Scenarios that need Unix
//! (signals, pids of processes that are not ours, reaping behind the
//! watcher's back, pidfd numbers) are `#[cfg(unix)]`; `watchers_process.rs`
//! covers an already exited and a foreign process on Windows. The
//! process scenarios' children are this test binary itself (re-run on an
//! `#[ignore]`d helper test), so no shell is needed. Every run has a 10 s
//! safety net, so a hang fails instead of hanging, and the harness's
//! watchdog besides.

// Not on WASI: no pipes, threads or child processes there (the
// conformance and allocation suites cover the WASI backend).
#![cfg(not(target_os = "wasi"))]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;
#[path = "support/children.rs"]
mod children;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(windows)]
use xev::backend::iocp::Iocp as Plain;
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
use xev::backend::kqueue::Kqueue as Plain;
use xev::backend::Backend;
#[cfg(target_os = "linux")]
use xev::backend::{dynamic::Dynamic, epoll::Epoll as Plain, io_uring::IoUring};
use xev::generic::{Loop, OwnedLoop};
use xev::watcher::Process;
use xev::watcher::Timer;
use xev::watcher::Udp;
use xev::{
    Action, Async, CloseError, IdError, Op, Options, ProcessError, ReadError, RunMode, TimerError,
};

const SAFETY_NET: Duration = Duration::from_secs(10);

#[cfg(unix)]
#[path = "support/fd_reuse.rs"]
mod fd_reuse;
#[cfg(unix)]
use fd_reuse::{identity, read_on_reused_number, take_number};

fn new_loop<B: Backend>() -> OwnedLoop<B> {
    Loop::new(Options::default()).expect("creating the loop")
}

/// Runs `lp` until `done()` holds, failing after [`SAFETY_NET`]. A safety
/// timer stops the loop even when nothing else would wake it.
fn run_until<B: Backend>(lp: &mut Loop<B>, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    let net = Timer::new(lp, |lp, res| {
        if res.is_ok() {
            lp.stop();
        }
        Action::Disarm
    });
    net.run(lp, SAFETY_NET.as_millis() as u64).unwrap();
    while !done() {
        lp.run(RunMode::Once).unwrap();
        assert!(
            start.elapsed() < SAFETY_NET,
            "{what}: timed out after {SAFETY_NET:?}"
        );
    }
    let _ = net.cancel(lp);
    lp.run(RunMode::NoWait).unwrap();
    let _ = net.free(lp);
}

/// Runs `lp` until nothing is in flight, with the safety net.
fn run_all<B: Backend>(lp: &mut Loop<B>, what: &str) {
    let start = Instant::now();
    let stopped = Rc::new(Cell::new(false));
    let s = stopped.clone();
    let net = Timer::new(lp, move |lp, res| {
        if res.is_ok() {
            s.set(true);
            lp.stop();
        }
        Action::Disarm
    });
    net.run(lp, SAFETY_NET.as_millis() as u64).unwrap();
    // Everything but the safety net.
    while lp.active() > 1 {
        lp.run(RunMode::Once).unwrap();
        assert!(
            !stopped.get() && start.elapsed() < SAFETY_NET,
            "{what}: timed out after {SAFETY_NET:?}"
        );
    }
    let _ = net.cancel(lp);
    lp.run(RunMode::UntilDone).unwrap();
    let _ = net.free(lp);
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn bound_udp<B: Backend>() -> Udp<B> {
    let u = Udp::new(localhost()).unwrap();
    u.bind(localhost()).unwrap();
    u
}

// -------------------------------------------------------------- Timer

/// A few non-blocking passes (to let a late or duplicate callback show up).
fn settle<B: Backend>(lp: &mut Loop<B>) {
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
}

/// Counts its drops (to see a callback's captures released).
struct Dropped(Rc<Cell<u32>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

// ------------------------------------------------------------ Process

/// `Process::new`, or `None` (with a message) where pidfds are forbidden.
fn watch<B: Backend>(pid: u32, test: &str) -> Option<Process<B>> {
    match Process::new(pid as i32) {
        Ok(p) => Some(p),
        Err(ProcessError::Unsupported) => {
            eprintln!("pidfd unsupported here: skipping {test}");
            None
        }
        Err(e) => panic!("{test}: watching {pid}: {e}"),
    }
}

/// Waits for `p` through the loop; returns the status.
fn wait_status<B: Backend>(lp: &mut Loop<B>, p: &Process<B>, what: &str) -> ExitStatus {
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    p.wait(lp, move |_, res| {
        *g.borrow_mut() = Some(res.map_err(|e| e.to_string()));
        Action::Disarm
    });
    run_until(lp, what, || got.borrow().is_some());
    let r = got.borrow_mut().take().unwrap();
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A child that exits with `code`.
fn child_exiting(code: i32) -> Child {
    quiet(children::exiting(code))
}

/// A child that sleeps until killed (two minutes at most).
fn child_sleeping() -> Child {
    quiet(children::sleeping())
}

fn quiet(mut cmd: Command) -> Child {
    children::spawn(cmd.stdout(Stdio::null()).stderr(Stdio::null()))
}

/// The signal that ended a process (never one on Windows).
fn signal_of(s: &ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    return s.signal();
    #[cfg(not(unix))]
    {
        let _ = s;
        None
    }
}

/// Whether `pid` is a zombie (exited, not reaped).
#[cfg(target_os = "linux")]
fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name.
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        .unwrap_or(false)
}

// --------------------------------------------------- Dynamic backend

/// Env var that turns [`dynamic_child_report`] from a no-op into the child
/// side of [`dynamic_backend_env`].
#[cfg(target_os = "linux")]
const CHILD_ENV: &str = "XEV_WATCHERS_MISC_CHILD";

/// In a child process (see `dynamic_backend_env`): reports which backend a
/// `Dynamic` loop picked, or the error's kind.
#[cfg(target_os = "linux")]
#[test]
fn dynamic_child_report() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    match Loop::<Dynamic>::new(Options::default()) {
        Ok(lp) => println!("XEV-BACKEND={}", lp.backend_name()),
        Err(e) => println!("XEV-ERROR={:?}", e.kind()),
    }
}

#[cfg(target_os = "linux")]
fn child_report(backend: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "dynamic_child_report",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env(xev::backend::dynamic::ENV, backend)
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| {
            l.split_once("XEV-")
                .and_then(|(_, r)| r.split_whitespace().next())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no report in {stdout}"))
}

#[cfg(target_os = "linux")]
#[test]
fn dynamic_backend_env() {
    assert_eq!(child_report("epoll"), "BACKEND=epoll");
    assert_eq!(child_report("no-such-backend"), "ERROR=InvalidInput");
    let uring = child_report("io_uring");
    if IoUring::probe().is_ok() {
        assert_eq!(uring, "BACKEND=io_uring");
    } else {
        assert!(
            uring.starts_with("ERROR="),
            "forcing io_uring where it fails is an error: {uring}"
        );
    }
    // Unset (empty): io_uring where it works, else epoll.
    let auto = child_report("");
    let want = if IoUring::probe().is_ok() {
        "BACKEND=io_uring"
    } else {
        "BACKEND=epoll"
    };
    assert_eq!(auto, want);
}

// ------------------------------------------------- Not per backend

/// Raw-op check of `op.rs`: a 0-byte datagram received by `Op::Recvmsg`
/// into a non-empty buffer is an empty datagram with its sender, not
/// `ReadError::Eof` (datagram sockets have no end of file).
#[test]
fn raw_recvmsg_empty_datagram_is_not_eof() {
    let a = std::net::UdpSocket::bind(localhost()).unwrap();
    let b = std::net::UdpSocket::bind(localhost()).unwrap();
    b.set_nonblocking(true).unwrap();
    a.send_to(&[], b.local_addr().unwrap()).unwrap();
    let mut lp = new_loop::<Plain>();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    #[cfg(unix)]
    let fd = std::os::fd::AsRawFd::as_raw_fd(&b);
    #[cfg(windows)]
    let fd = std::os::windows::io::AsRawSocket::as_raw_socket(&b) as xev::RawHandle;
    lp.add(
        Op::Recvmsg(xev::Msg::recv_from(fd, vec![0; 8])),
        move |_, _, res| {
            *g.borrow_mut() = Some(format!("{res:?}"));
            Action::Disarm
        },
    );
    run_all(&mut lp, "raw recvmsg");
    let got = got.borrow().clone().unwrap();
    assert!(got.starts_with("RecvFrom(Ok((0, Some("), "{got}");
}

// ---------------------------------------------------------------------------
// Tests, on every backend
// ---------------------------------------------------------------------------

/// A timer whose callback records each result (`Err(true)`: Canceled)
/// and rearms, holding a guard that counts the callback's drops.
#[allow(clippy::type_complexity)]
fn rearming_timer<B: Backend>(
    lp: &mut Loop<B>,
) -> (Timer<B>, Rc<Cell<u32>>, Rc<RefCell<Vec<Result<(), bool>>>>) {
    let drops = Rc::new(Cell::new(0));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (g, s) = (Dropped(drops.clone()), seen.clone());
    let t = Timer::new(lp, move |_, res| {
        let _keep = &g;
        s.borrow_mut()
            .push(res.map_err(|e| matches!(e, TimerError::Canceled)));
        Action::Rearm
    });
    (t, drops, seen)
}

for_each_backend!(
    // ---------------------------------------------------------------- UDP

    fn udp_round_trip<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = bound_udp::<B>();
        let b = bound_udp::<B>();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_ne!(a_addr, b_addr);

        // b echoes what it gets to the sender, reversed.
        let b2 = b.clone();
        let b_got = Rc::new(RefCell::new(None));
        let bg = b_got.clone();
        b.read(&mut lp, vec![0; 128], move |lp, buf, res| {
            let (n, from) = res.expect("b read");
            *bg.borrow_mut() = Some((buf[..n].to_vec(), from));
            let mut reply = buf[..n].to_vec();
            reply.reverse();
            b2.write(lp, from, reply, |_, _, res| {
                assert_eq!(res.expect("b write"), 5);
                Action::Disarm
            });
            Action::Disarm
        });
        let a_got = Rc::new(RefCell::new(None));
        let ag = a_got.clone();
        a.read(&mut lp, vec![0; 128], move |_, buf, res| {
            let (n, from) = res.expect("a read");
            *ag.borrow_mut() = Some((buf[..n].to_vec(), from));
            Action::Disarm
        });
        let sent = Rc::new(Cell::new(None));
        let s = sent.clone();
        a.write(&mut lp, b_addr, b"hello".to_vec(), move |_, buf, res| {
            assert_eq!(&buf[..], b"hello", "the buffer comes back");
            s.set(Some(res.expect("a write")));
            Action::Disarm
        });
        run_all(&mut lp, "udp round trip");
        assert_eq!(sent.get(), Some(5));
        assert_eq!(
            *b_got.borrow(),
            Some((b"hello".to_vec(), a_addr)),
            "b saw a's address"
        );
        assert_eq!(
            *a_got.borrow(),
            Some((b"olleh".to_vec(), b_addr)),
            "a saw b's address"
        );
        assert_eq!((a.in_flight(), b.in_flight()), (0, 0));

        let closed = Rc::new(Cell::new(0));
        for u in [a, b] {
            let c = closed.clone();
            u.close(&mut lp, move |_, res| {
                res.expect("close");
                c.set(c.get() + 1);
            });
        }
        run_all(&mut lp, "udp close");
        assert_eq!(closed.get(), 2);
    }

    fn udp_ipv6_round_trip<B: Backend>() {
        let any6: SocketAddr = "[::1]:0".parse().unwrap();
        let (a, b) = match (Udp::<B>::new(any6), Udp::<B>::new(any6)) {
            (Ok(a), Ok(b)) if a.bind(any6).is_ok() && b.bind(any6).is_ok() => (a, b),
            _ => {
                eprintln!("no IPv6 loopback here: skipping udp_ipv6_round_trip");
                return;
            }
        };
        let mut lp = new_loop::<B>();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        b.read(&mut lp, vec![0; 16], move |_, buf, res| {
            let (n, from) = res.unwrap();
            *g.borrow_mut() = Some((buf[..n].to_vec(), from));
            Action::Disarm
        });
        a.write(&mut lp, b_addr, b"v6".to_vec(), |_, _, res| {
            res.unwrap();
            Action::Disarm
        });
        run_all(&mut lp, "udp ipv6");
        assert_eq!(*got.borrow(), Some((b"v6".to_vec(), a_addr)));
    }

    /// Many sends in flight at once, each with its own message, received by
    /// one rearmed read.
    fn udp_many_sends_in_flight<B: Backend>() {
        const N: usize = 32;
        let mut lp = new_loop::<B>();
        let a = bound_udp::<B>();
        let b = bound_udp::<B>();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let received = Rc::new(RefCell::new(Vec::new()));
        let r = received.clone();
        b.read(&mut lp, vec![0; 64], move |_, buf, res| {
            let (n, from) = res.expect("read");
            assert_eq!(from, a_addr);
            r.borrow_mut().push(buf[..n].to_vec());
            if r.borrow().len() == N {
                Action::Disarm
            } else {
                Action::Rearm
            }
        });
        let acked = Rc::new(Cell::new(0usize));
        for i in 0..N {
            let ack = acked.clone();
            let msg = format!("datagram {i:02}").into_bytes();
            let len = msg.len();
            a.write(&mut lp, b_addr, msg, move |_, buf, res| {
                assert_eq!(res.expect("write"), len);
                assert_eq!(
                    buf,
                    format!("datagram {i:02}").as_bytes(),
                    "each send has its own buffer"
                );
                ack.set(ack.get() + 1);
                Action::Disarm
            });
        }
        assert_eq!(
            a.in_flight(),
            N,
            "all sends are in flight before the loop runs"
        );
        run_all(&mut lp, "udp many sends");
        assert_eq!(acked.get(), N);
        let mut got = received.borrow().clone();
        got.sort();
        let want: Vec<Vec<u8>> = (0..N)
            .map(|i| format!("datagram {i:02}").into_bytes())
            .collect();
        assert_eq!(got, want);
        assert_eq!(a.in_flight(), 0);
    }

    /// Rearming a write sends the (changed) buffer again: the same message.
    fn udp_write_rearm<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = bound_udp::<B>();
        let b = bound_udp::<B>();
        let b_addr = b.local_addr().unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        b.read(&mut lp, vec![0; 8], move |_, buf, res| {
            let (n, _) = res.unwrap();
            g.borrow_mut().push(buf[..n].to_vec());
            if g.borrow().len() == 3 {
                Action::Disarm
            } else {
                Action::Rearm
            }
        });
        a.write(&mut lp, b_addr, vec![b'0'], |_, buf, res| {
            res.unwrap();
            if buf[0] == b'2' {
                return Action::Disarm;
            }
            buf[0] += 1;
            Action::Rearm
        });
        run_all(&mut lp, "udp write rearm");
        assert_eq!(
            *got.borrow(),
            vec![b"0".to_vec(), b"1".to_vec(), b"2".to_vec()]
        );
    }

    /// An empty datagram is data (0 bytes from a sender), not end of file.
    fn udp_empty_datagram<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = bound_udp::<B>();
        let b = bound_udp::<B>();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let got = Rc::new(Cell::new(None));
        let g = got.clone();
        b.read(&mut lp, vec![0; 8], move |_, _, res| {
            g.set(Some(res.expect("an empty datagram is not an error")));
            Action::Disarm
        });
        a.write(&mut lp, b_addr, Vec::new(), |_, _, res| {
            assert_eq!(res.unwrap(), 0);
            Action::Disarm
        });
        run_all(&mut lp, "udp empty datagram");
        assert_eq!(got.get(), Some((0, a_addr)));
    }

    /// Closing cancels a pending read (which nothing would ever complete), then
    /// closes the socket; clones see it closed.
    fn udp_close_cancels_pending<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = bound_udp::<B>();
        let clone = a.clone();
        let read_res = Rc::new(RefCell::new(None));
        let r = read_res.clone();
        a.read(&mut lp, vec![0; 8], move |_, _, res| {
            *r.borrow_mut() = Some(res.map(|(n, _)| n).map_err(|e| e.to_string()));
            Action::Rearm // ignored: the watcher is closing
        });
        // Let the read start (and block) first.
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(a.in_flight(), 1);
        let closed = Rc::new(RefCell::new(None));
        let c = closed.clone();
        a.close(&mut lp, move |_, res| {
            *c.borrow_mut() = Some(res.map_err(|e| e.to_string()))
        });
        assert_eq!(clone.raw_fd(), None, "clones see the socket closed at once");
        run_all(&mut lp, "udp close with a read pending");
        assert_eq!(
            *read_res.borrow(),
            Some(Err(ReadError::Canceled.to_string())),
            "the pending read was canceled"
        );
        assert_eq!(*closed.borrow(), Some(Ok(())));
        assert_eq!(clone.in_flight(), 0);

        // Operations on a closed watcher fail with EBADF (an invalid handle
        // on Windows); so does a second close.
        let ebadf = Rc::new(Cell::new(0));
        let e = ebadf.clone();
        clone.read(&mut lp, vec![0; 8], move |_, _, res| {
            match res {
                Err(ReadError::Io(err)) if harness::is_bad_handle(err.raw_os_error()) => {
                    e.set(e.get() + 1)
                }
                other => panic!("read on a closed socket: {other:?}"),
            }
            Action::Rearm // ignored
        });
        let e = ebadf.clone();
        clone.write(&mut lp, localhost(), vec![1], move |_, _, res| {
            assert!(harness::is_bad_handle(res.unwrap_err().raw_os_error()));
            e.set(e.get() + 1);
            Action::Disarm
        });
        let e = ebadf.clone();
        let second = clone.clone();
        clone.close(&mut lp, move |_, res| match res {
            Err(CloseError::Io(err)) if harness::is_bad_handle(err.raw_os_error()) => {
                e.set(e.get() + 1)
            }
            other => panic!("second close: {other:?}"),
        });
        assert!(second.local_addr().is_err());
        run_all(&mut lp, "udp closed ops");
        assert_eq!(ebadf.get(), 3);
    }

    /// Closing from inside one of the watcher's own callbacks while another
    /// operation is pending.
    fn udp_close_from_callback<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = bound_udp::<B>();
        let b = bound_udp::<B>();
        let b_addr = b.local_addr().unwrap();
        // A read on `a` that never gets data.
        let pending = Rc::new(Cell::new(None));
        let p = pending.clone();
        a.read(&mut lp, vec![0; 8], move |_, _, res| {
            p.set(Some(matches!(res, Err(ReadError::Canceled))));
            Action::Disarm
        });
        let closed = Rc::new(Cell::new(false));
        let (c, a2) = (closed.clone(), RefCell::new(Some(a.clone())));
        a.write(&mut lp, b_addr, b"x".to_vec(), move |lp, _, res| {
            res.unwrap();
            if let Some(a) = a2.borrow_mut().take() {
                let c = c.clone();
                a.close(lp, move |_, res| {
                    res.unwrap();
                    c.set(true);
                });
            }
            Action::Rearm // ignored: closing
        });
        run_all(&mut lp, "udp close from callback");
        assert_eq!(pending.get(), Some(true));
        assert!(closed.get());
        assert_eq!(a.in_flight(), 0);
    }

    /// A loop dropped with operations in flight lets go of them (their
    /// callbacks never run); the watcher then works on a new loop.
    fn udp_outlives_loop<B: Backend>() {
        let a = bound_udp::<B>();
        let b = bound_udp::<B>();
        let b_addr = b.local_addr().unwrap();
        {
            let mut lp = new_loop::<B>();
            a.read(&mut lp, vec![0; 8], |_, _, _| panic!("never runs"));
            b.read(&mut lp, vec![0; 8], |_, _, _| panic!("never runs"));
            lp.run(RunMode::NoWait).unwrap();
            assert_eq!((a.in_flight(), b.in_flight()), (1, 1));
        }
        assert_eq!(
            (a.in_flight(), b.in_flight()),
            (0, 0),
            "dropped operations are untracked"
        );
        let mut lp = new_loop::<B>();
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        b.read(&mut lp, vec![0; 8], move |_, _, res| {
            g.set(res.unwrap().0);
            Action::Disarm
        });
        a.write(&mut lp, b_addr, b"abc".to_vec(), |_, _, res| {
            res.unwrap();
            Action::Disarm
        });
        run_all(&mut lp, "udp on a second loop");
        assert_eq!(got.get(), 3);
        let closed = Rc::new(Cell::new(0));
        for u in [a, b] {
            let c = closed.clone();
            u.close(&mut lp, move |_, res| {
                res.unwrap();
                c.set(c.get() + 1);
            });
        }
        run_all(&mut lp, "udp close on a second loop");
        assert_eq!(closed.get(), 2);
    }

    /// Request/response without allocating: a parked write is restarted by id
    /// each time the answer arrives; `close` frees the parked write.
    fn udp_park_restart<B: Backend>() {
        const ROUNDS: u8 = 5;
        let mut lp = new_loop::<B>();
        let a = bound_udp::<B>();
        let b = bound_udp::<B>();
        let b_addr = b.local_addr().unwrap();
        let write_id: Rc<Cell<Option<xev::Id>>> = Rc::new(Cell::new(None));
        let got = Rc::new(RefCell::new(Vec::new()));
        let (g, w) = (got.clone(), write_id.clone());
        b.read(&mut lp, vec![0; 8], move |lp, buf, res| {
            let (n, _) = match res {
                Ok(r) => r,
                Err(ReadError::Canceled) => return Action::Rearm, // closed: ends anyway
                Err(e) => panic!("{e}"),
            };
            g.borrow_mut().push(buf[..n].to_vec());
            if g.borrow().len() < ROUNDS as usize {
                lp.restart(w.get().unwrap()).unwrap(); // send the next one
            }
            Action::Rearm
        });
        let id = a.write(&mut lp, b_addr, vec![0], |_, buf, res| {
            res.unwrap();
            buf[0] += 1; // the next message
            Action::Park
        });
        write_id.set(Some(id));
        run_until(&mut lp, "udp park/restart", || {
            got.borrow().len() == ROUNDS as usize
        });
        let want: Vec<Vec<u8>> = (0..ROUNDS).map(|i| vec![i]).collect();
        assert_eq!(*got.borrow(), want);
        assert!(!lp.is_active(id), "parked");
        assert_eq!((a.in_flight(), b.in_flight()), (1, 1), "parked and pending");
        let closed = Rc::new(Cell::new(0));
        for u in [a.clone(), b.clone()] {
            let c = closed.clone();
            u.close(&mut lp, move |_, res| {
                res.unwrap();
                c.set(c.get() + 1);
            });
        }
        assert_eq!(a.in_flight(), 0, "close frees the parked write at once");
        assert_eq!(lp.restart(id), Err(IdError::Stale));
        run_all(&mut lp, "udp close with a parked write");
        assert_eq!(closed.get(), 2);
        assert_eq!(b.in_flight(), 0);
    }

    /// Dropping a clone of a `Udp` leaves the socket to the other handles;
    /// dropping the last one with a read pending cancels the read (one
    /// `Canceled`, its `Rearm` ignored) and closes the socket through the loop,
    /// and its number works again on the same loop. A watcher dropped after
    /// its loop, or never used with one, closes the socket directly. (Unix:
    /// it proves the closes by descriptor identity and number reuse.)
    #[cfg(unix)]
    fn udp_dropped_with_read_pending<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = bound_udp::<B>();
        let fd = a.raw_fd().unwrap();
        let id = identity(fd);
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        a.read(&mut lp, vec![0; 8], move |_, _, res| {
            l.borrow_mut()
                .push(res.map(|(n, _)| n).map_err(|e| e.to_string()));
            Action::Rearm
        });
        lp.run(RunMode::NoWait).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        let clone = a.clone();
        drop(a);
        settle(&mut lp);
        assert!(log.borrow().is_empty(), "a clone still holds the socket");
        assert_eq!((clone.in_flight(), identity(fd)), (1, id));
        drop(clone);
        run_all(&mut lp, "the dropped udp's Canceled");
        settle(&mut lp);
        assert_eq!(*log.borrow(), vec![Err(ReadError::Canceled.to_string())]);
        assert_ne!(identity(fd), id, "the socket is closed");
        read_on_reused_number(&mut lp, fd);

        let u = bound_udp::<B>();
        let (fd, id) = (u.raw_fd().unwrap(), identity(u.raw_fd().unwrap()));
        {
            let mut lp2 = new_loop::<B>();
            u.read(&mut lp2, vec![0; 8], |_, _, _| panic!("never runs"));
            lp2.run(RunMode::NoWait).unwrap();
        }
        drop(u);
        assert_ne!(identity(fd), id, "dropped after its loop: closed");

        let u = bound_udp::<B>();
        let (fd, id) = (u.raw_fd().unwrap(), identity(u.raw_fd().unwrap()));
        drop(u);
        assert_ne!(identity(fd), id, "never used with a loop: closed");
    }

    fn udp_from_fd<B: Backend>() {
        let std_sock = std::net::UdpSocket::bind(localhost()).unwrap();
        let addr = std_sock.local_addr().unwrap();
        let u = Udp::<B>::from_fd(std_sock).unwrap();
        assert_eq!(u.local_addr().unwrap(), addr);
        let tcp = std::net::TcpListener::bind(localhost()).unwrap();
        let err = Udp::<B>::from_fd(tcp).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }

    // -------------------------------------------------------------- Timer

    fn timer_runs<B: Backend>() {
        let mut lp = new_loop::<B>();
        let fired = Rc::new(Cell::new(0));
        let f = fired.clone();
        let t = Timer::new(&mut lp, move |_, res| {
            res.unwrap();
            f.set(f.get() + 1);
            Action::Disarm
        });
        assert!(!t.is_active(&lp));
        let start = Instant::now();
        t.run(&mut lp, 5).unwrap();
        assert!(t.is_active(&lp));
        run_until(&mut lp, "timer run", || fired.get() == 1);
        assert!(start.elapsed() >= Duration::from_millis(4));
        assert!(!t.is_active(&lp));
        // Idle and reusable.
        t.run(&mut lp, 1).unwrap();
        run_until(&mut lp, "timer rerun", || fired.get() == 2);
        t.free(&mut lp).unwrap();
    }

    fn timer_reset_moves_active<B: Backend>() {
        let mut lp = new_loop::<B>();
        let fired = Rc::new(Cell::new(0));
        let f = fired.clone();
        let t = Timer::new(&mut lp, move |_, res| {
            res.unwrap();
            f.set(f.get() + 1);
            Action::Disarm
        });
        t.run(&mut lp, 60_000).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert!(t.is_active(&lp));
        let start = Instant::now();
        t.reset(&mut lp, 5).unwrap();
        run_until(&mut lp, "timer reset (active)", || fired.get() == 1);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "moved, not left at 60 s"
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(fired.get(), 1, "fired once");
        // And a reset that moves it later.
        t.run(&mut lp, 1).unwrap();
        t.reset(&mut lp, 30).unwrap();
        let start = Instant::now();
        run_until(&mut lp, "timer reset later", || fired.get() == 2);
        assert!(start.elapsed() >= Duration::from_millis(29));
        t.free(&mut lp).unwrap();
    }

    fn timer_reset_starts_dead<B: Backend>() {
        let mut lp = new_loop::<B>();
        let fired = Rc::new(Cell::new(0));
        let f = fired.clone();
        let t = Timer::new(&mut lp, move |_, res| {
            res.unwrap();
            f.set(f.get() + 1);
            Action::Disarm
        });
        t.reset(&mut lp, 2).unwrap(); // never run: reset starts it
        assert!(t.is_active(&lp));
        run_until(&mut lp, "timer reset (dead)", || fired.get() == 1);
        assert!(!t.is_active(&lp));
    }

    fn timer_reset_in_own_callback<B: Backend>() {
        let mut lp = new_loop::<B>();
        let fired = Rc::new(Cell::new(0));
        let me: Rc<RefCell<Option<Timer<B>>>> = Rc::new(RefCell::new(None));
        let (f, m) = (fired.clone(), me.clone());
        let t = Timer::new(&mut lp, move |lp, res| {
            res.unwrap();
            f.set(f.get() + 1);
            if f.get() == 1 {
                // Reset from inside: re-arms when we return, whatever we return.
                m.borrow().as_ref().unwrap().reset(lp, 3).unwrap();
            }
            Action::Disarm
        });
        t.run(&mut lp, 1).unwrap();
        *me.borrow_mut() = Some(t);
        run_until(&mut lp, "timer reset in callback", || fired.get() == 2);
        let t = me.borrow_mut().take().unwrap();
        assert!(!t.is_active(&lp));
        t.free(&mut lp).unwrap();
    }

    fn timer_cancel<B: Backend>() {
        let mut lp = new_loop::<B>();
        let res_seen = Rc::new(RefCell::new(Vec::new()));
        let r = res_seen.clone();
        let t = Timer::new(&mut lp, move |_, res| {
            r.borrow_mut()
                .push(res.map_err(|e| matches!(e, TimerError::Canceled)));
            Action::Disarm
        });
        t.run(&mut lp, 60_000).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        // Active: not parked, so it can be neither changed nor freed.
        assert_eq!(lp.op_mut(t.id()).map(|_| ()), Err(IdError::Busy));
        t.cancel(&mut lp).unwrap();
        run_until(&mut lp, "timer cancel", || !res_seen.borrow().is_empty());
        assert_eq!(*res_seen.borrow(), vec![Err(true)]);
        assert!(t.cancel(&mut lp).is_err(), "nothing left to cancel");
        t.free(&mut lp).unwrap();
    }

    /// A pending timer that is dropped: its callback runs once with
    /// `Canceled`, then its completion (and the callback's captures) is
    /// released; nothing stays in the loop.
    fn timer_dropped_while_pending_is_canceled_and_freed<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (t, drops, seen) = rearming_timer(&mut lp);
        t.run(&mut lp, 3_600_000).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(lp.active(), 1);
        drop(t);
        run_until(&mut lp, "the dropped timer's Canceled", || {
            !seen.borrow().is_empty()
        });
        settle(&mut lp);
        assert_eq!(*seen.borrow(), vec![Err(true)], "one Canceled, no rearm");
        assert_eq!(drops.get(), 1, "the completion was freed");
        assert_eq!(lp.active(), 0);
    }

    /// An idle timer that is dropped is freed at the next run, and a timer
    /// dropped from inside its own callback is freed when the callback returns.
    fn timer_dropped_idle_or_in_its_callback_is_freed<B: Backend>() {
        let mut lp = new_loop::<B>();
        let drops = Rc::new(Cell::new(0));
        let g = Dropped(drops.clone());
        let idle = Timer::new(&mut lp, move |_, _| {
            let _keep = &g;
            Action::Disarm
        });
        drop(idle);
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(drops.get(), 1, "the idle timer was freed");
        let slot: Rc<RefCell<Option<Timer<B>>>> = Rc::default();
        let (sl, g, fired) = (slot.clone(), Dropped(drops.clone()), Rc::new(Cell::new(0)));
        let f = fired.clone();
        let t = Timer::new(&mut lp, move |_, res| {
            let _keep = &g;
            res.unwrap();
            f.set(f.get() + 1);
            drop(sl.borrow_mut().take()); // drops itself
            Action::Rearm
        });
        t.run(&mut lp, 1).unwrap();
        *slot.borrow_mut() = Some(t);
        run_until(&mut lp, "the timer", || fired.get() == 1);
        settle(&mut lp);
        assert_eq!(fired.get(), 1, "not rearmed after being dropped");
        assert_eq!(drops.get(), 2, "freed");
        assert_eq!(lp.active(), 0);
    }

    /// `free` of a pending timer cancels it (one `Canceled`) and frees it.
    fn timer_free_while_pending_cancels_then_frees<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (t, drops, seen) = rearming_timer(&mut lp);
        t.run(&mut lp, 3_600_000).unwrap();
        let id = t.id();
        t.free(&mut lp).unwrap();
        run_until(&mut lp, "the freed timer's Canceled", || {
            !seen.borrow().is_empty()
        });
        settle(&mut lp);
        assert_eq!(*seen.borrow(), vec![Err(true)]);
        assert_eq!(drops.get(), 1);
        assert_eq!(lp.restart(id), Err(IdError::Stale));
    }

    fn timer_repeat_by_rearm<B: Backend>() {
        let mut lp = new_loop::<B>();
        let ticks = Rc::new(RefCell::new(Vec::new()));
        let tk = ticks.clone();
        let t = Timer::new(&mut lp, move |lp, res| {
            res.unwrap();
            tk.borrow_mut().push(lp.now());
            if tk.borrow().len() < 5 {
                Action::Rearm
            } else {
                Action::Disarm
            }
        });
        let start = lp.now();
        t.run(&mut lp, 3).unwrap();
        run_until(&mut lp, "timer repeat", || ticks.borrow().len() == 5);
        let ticks = ticks.borrow();
        assert!(ticks[0] >= start + 3);
        for w in ticks.windows(2) {
            assert!(w[1] >= w[0] + 3, "ticks {ticks:?} closer than the interval");
        }
        lp.run(RunMode::NoWait).unwrap();
        assert!(!t.is_active(&lp));
    }

    fn timer_many_resets<B: Backend>() {
        let mut lp = new_loop::<B>();
        let fired = Rc::new(Cell::new(0));
        let f = fired.clone();
        let t = Timer::new(&mut lp, move |_, res| {
            res.unwrap();
            f.set(f.get() + 1);
            Action::Disarm
        });
        // Other timers in the heap, so resets really move entries around.
        let others: Vec<Timer<B>> = (0..64)
            .map(|i| {
                let o = Timer::new(&mut lp, |_, _| Action::Disarm);
                o.run(&mut lp, 50_000 + i * 7).unwrap();
                o
            })
            .collect();
        t.run(&mut lp, 60_000).unwrap();
        for i in 0..100_000u64 {
            t.reset(&mut lp, 40_000 + (i * 7919) % 20_000).unwrap();
            if i % 10_000 == 0 {
                lp.run(RunMode::NoWait).unwrap();
            }
        }
        assert_eq!(fired.get(), 0);
        t.reset(&mut lp, 1).unwrap();
        run_until(&mut lp, "timer after 100,000 resets", || fired.get() == 1);
        for o in &others {
            assert!(o.is_active(&lp));
            o.cancel(&mut lp).unwrap();
        }
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(fired.get(), 1);
    }

    // -------------------------------------------------------------- Async

    fn async_notify_before_wait<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = Async::new().unwrap();
        let remote = a.clone();
        std::thread::spawn(move || {
            for _ in 0..10 {
                remote.notify().unwrap();
            }
        })
        .join()
        .unwrap();
        let woke = Rc::new(Cell::new(0));
        let w = woke.clone();
        a.wait(&mut lp, move |_, res| {
            res.unwrap();
            w.set(w.get() + 1);
            Action::Disarm
        });
        run_until(&mut lp, "async notified before the wait", || {
            woke.get() == 1
        });
        // The ten notifies coalesced into that one wakeup: a new wait blocks.
        let w = woke.clone();
        let id = a.wait(&mut lp, move |_, res| {
            assert!(res.is_err(), "canceled, not woken");
            w.set(w.get() + 10);
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(woke.get(), 1);
        lp.cancel(id).unwrap();
        run_until(&mut lp, "async cancel", || woke.get() == 11);
    }

    fn async_notify_after_wait_started<B: Backend>() {
        let mut lp = new_loop::<B>();
        let a = Async::new().unwrap();
        let woke = Rc::new(Cell::new(0));
        let w = woke.clone();
        a.wait(&mut lp, move |_, res| {
            res.unwrap();
            w.set(w.get() + 1);
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap(); // the wait is now in the backend
        assert_eq!(woke.get(), 0);
        let remote = a.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            remote.notify().unwrap();
        });
        run_until(&mut lp, "async notified after the wait started", || {
            woke.get() == 1
        });
        t.join().unwrap();
    }

    /// A burst of notifies wakes the loop at least once and at most once per
    /// notify; a notify made after a flag is set is always followed by a
    /// wakeup that sees the flag.
    fn async_burst<B: Backend>() {
        const N: u64 = 10_000;
        let mut lp = new_loop::<B>();
        let a = Async::new().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let woke = Rc::new(Cell::new(0u64));
        let finished = Rc::new(Cell::new(false));
        let (w, d, fin) = (woke.clone(), done.clone(), finished.clone());
        a.wait(&mut lp, move |_, res| {
            res.unwrap();
            w.set(w.get() + 1);
            if d.load(Ordering::Acquire) {
                fin.set(true);
                Action::Disarm
            } else {
                Action::Rearm
            }
        });
        let (remote, d) = (a.clone(), done.clone());
        let t = std::thread::spawn(move || {
            for _ in 0..N {
                remote.notify().unwrap();
            }
            d.store(true, Ordering::Release);
            remote.notify().unwrap();
        });
        run_until(&mut lp, "async burst", || finished.get());
        t.join().unwrap();
        assert!((1..=N + 1).contains(&woke.get()), "{} wakeups", woke.get());
    }

    /// Ping-pong with another thread: it notifies, then waits for the loop to
    /// acknowledge before notifying again. A single lost wakeup would hang
    /// (and trip the safety net).
    fn async_none_lost<B: Backend>() {
        const ROUNDS: u64 = 500;
        let mut lp = new_loop::<B>();
        let a = Async::new().unwrap();
        let acks = Arc::new(AtomicU64::new(0));
        let (ac, remote) = (acks.clone(), a.clone());
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            for i in 0..ROUNDS {
                remote.notify().unwrap();
                while ac.load(Ordering::Acquire) <= i {
                    assert!(start.elapsed() < SAFETY_NET, "wakeup {i} lost");
                    std::thread::yield_now();
                }
            }
        });
        let ac = acks.clone();
        a.wait(&mut lp, move |_, res| {
            res.unwrap();
            let n = ac.fetch_add(1, Ordering::AcqRel) + 1;
            if n == ROUNDS {
                Action::Disarm
            } else {
                Action::Rearm
            }
        });
        run_until(&mut lp, "async ping-pong", || {
            acks.load(Ordering::Acquire) == ROUNDS
        });
        t.join().unwrap();
        assert_eq!(
            acks.load(Ordering::Acquire),
            ROUNDS,
            "exactly one wakeup per acknowledged notify"
        );
    }

    /// Several loops, each on its own thread with its own handle, notified by
    /// one shared notifier thread.
    fn async_several_loops<B: Backend>() {
        const LOOPS: usize = 4;
        const ROUNDS: u64 = 100;
        let (tx, rx) = std::sync::mpsc::channel::<(Async, Arc<AtomicU64>)>();
        let notifier = std::thread::spawn(move || {
            let handles: Vec<_> = rx.iter().take(LOOPS).collect();
            let start = Instant::now();
            for i in 0..ROUNDS {
                for (a, _) in &handles {
                    a.notify().unwrap();
                }
                for (_, acks) in &handles {
                    while acks.load(Ordering::Acquire) <= i {
                        assert!(start.elapsed() < SAFETY_NET, "a loop lost wakeup {i}");
                        std::thread::yield_now();
                    }
                }
            }
        });
        let loops: Vec<_> = (0..LOOPS)
            .map(|_| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut lp = new_loop::<B>();
                    let a = Async::new().unwrap();
                    let acks = Arc::new(AtomicU64::new(0));
                    tx.send((a.clone(), acks.clone())).unwrap();
                    let ac = acks.clone();
                    a.wait(&mut lp, move |_, res| {
                        res.unwrap();
                        if ac.fetch_add(1, Ordering::AcqRel) + 1 == ROUNDS {
                            Action::Disarm
                        } else {
                            Action::Rearm
                        }
                    });
                    run_until(&mut lp, "async on several loops", || {
                        acks.load(Ordering::Acquire) == ROUNDS
                    });
                    acks.load(Ordering::Acquire)
                })
            })
            .collect();
        for l in loops {
            assert_eq!(l.join().unwrap(), ROUNDS);
        }
        notifier.join().unwrap();
    }

    // ------------------------------------------------------------ Process

    // The child is reaped by the Process watcher, not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    fn process_exit_0<B: Backend>() {
        let mut lp = new_loop::<B>();
        let child = child_exiting(0);
        let Some(p) = watch::<B>(child.id(), "process_exit_0") else {
            return;
        };
        let s = wait_status(&mut lp, &p, "exit 0");
        assert!(s.success());
        assert_eq!((s.code(), signal_of(&s)), (Some(0), None));
        assert_eq!(p.exit_status(), Some(s));
        // A second wait reports the same status (the child is reaped only once).
        let again = wait_status(&mut lp, &p, "exit 0 again");
        assert_eq!(again, s);
        let closed = Rc::new(Cell::new(false));
        let c = closed.clone();
        p.close(&mut lp, move |_, res| {
            res.unwrap();
            c.set(true);
        });
        run_until(&mut lp, "process close", || closed.get());
    }

    // The child is reaped by the Process watcher, not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    fn process_exit_42<B: Backend>() {
        let mut lp = new_loop::<B>();
        let child = child_exiting(42);
        let p = match Process::<B>::from_child(&child) {
            Ok(p) => p,
            Err(ProcessError::Unsupported) => {
                eprintln!("pidfd unsupported here: skipping process_exit_42");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(p.pid() as u32, child.id());
        let s = wait_status(&mut lp, &p, "exit 42");
        assert_eq!(
            (s.code(), signal_of(&s), s.success()),
            (Some(42), None, false)
        );
    }

    /// A child killed while its wait is pending (Windows: `TerminateProcess`,
    /// exit code 1).
    fn process_killed<B: Backend>() {
        let mut lp = new_loop::<B>();
        #[cfg(unix)]
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        #[cfg(windows)]
        let mut child = child_sleeping();
        let Some(p) = watch::<B>(child.id(), "process_killed") else {
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        p.wait(&mut lp, move |_, res| {
            *g.borrow_mut() = Some(res.map_err(|e| e.to_string()));
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap();
        assert!(got.borrow().is_none(), "sleep 10 has not exited yet");
        child.kill().unwrap(); // SIGKILL, before we reap it
        run_until(&mut lp, "killed child", || got.borrow().is_some());
        let s = got.borrow_mut().take().unwrap().unwrap();
        children::assert_killed(&s);
        #[cfg(unix)]
        assert!(!s.core_dumped());
    }

    // The child is reaped by the Process watcher, not by `Child::wait`.
    // (On Windows: `watchers_process.rs`.)
    #[allow(clippy::zombie_processes)]
    #[cfg(target_os = "linux")]
    fn process_already_exited<B: Backend>() {
        let mut lp = new_loop::<B>();
        let child = Command::new("sh").args(["-c", "exit 5"]).spawn().unwrap();
        let start = Instant::now();
        while !is_zombie(child.id()) {
            assert!(start.elapsed() < SAFETY_NET, "child never exited");
            std::thread::sleep(Duration::from_millis(2));
        }
        let Some(p) = watch::<B>(child.id(), "process_already_exited") else {
            return;
        };
        let s = wait_status(&mut lp, &p, "already exited");
        assert_eq!(s.code(), Some(5));
    }

    /// (On Windows: `watchers_process.rs`, with Windows' own pids.)
    #[cfg(unix)]
    fn process_not_child<B: Backend>() {
        // pid 1 (init, or the container's first process) and ourselves exist
        // but are not our children; i32::MAX exceeds any pid_max.
        for pid in [1, std::process::id() as i32, i32::MAX] {
            match Process::<B>::new(pid) {
                Err(ProcessError::NotChild) => {}
                Err(ProcessError::Unsupported) => {
                    eprintln!("pidfd unsupported here: skipping process_not_child");
                    return;
                }
                other => panic!("pid {pid}: expected NotChild, got {other:?}"),
            }
        }
        for pid in [0, -1] {
            match Process::<B>::new(pid) {
                Err(ProcessError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput),
                other => panic!("pid {pid}: expected InvalidInput, got {other:?}"),
            }
        }
    }

    /// Something else reaps the child first: the wait reports NotChild.
    /// (Unix: a Windows process handle keeps the exit code for every
    /// holder, so nothing can take it from the watcher.)
    #[cfg(unix)]
    fn process_reaped_elsewhere<B: Backend>() {
        let mut lp = new_loop::<B>();
        let mut child = Command::new("true").spawn().unwrap();
        let Some(p) = watch::<B>(child.id(), "process_reaped_elsewhere") else {
            let _ = child.wait();
            return;
        };
        child.wait().unwrap(); // reaps it behind the watcher's back
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        p.wait(&mut lp, move |_, res| {
            *g.borrow_mut() = Some(matches!(res, Err(ProcessError::NotChild)));
            Action::Disarm
        });
        run_until(&mut lp, "reaped elsewhere", || got.borrow().is_some());
        assert_eq!(*got.borrow(), Some(true));
    }

    /// Closing cancels a wait in flight.
    fn process_close_cancels_wait<B: Backend>() {
        let mut lp = new_loop::<B>();
        let mut child = child_sleeping();
        let Some(p) = watch::<B>(child.id(), "process_close_cancels_wait") else {
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        p.wait(&mut lp, move |_, res| {
            *g.borrow_mut() = Some(matches!(res, Err(ProcessError::Canceled)));
            Action::Rearm // ignored: closing
        });
        lp.run(RunMode::NoWait).unwrap();
        let closed = Rc::new(Cell::new(false));
        let c = closed.clone();
        p.close(&mut lp, move |_, res| {
            res.unwrap();
            c.set(true);
        });
        run_until(&mut lp, "process close with a wait", || closed.get());
        assert_eq!(*got.borrow(), Some(true));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// A parked wait is restarted by id and reports the (cached) status again.
    #[allow(clippy::zombie_processes)] // reaped by the Process watcher
    fn process_park_restart<B: Backend>() {
        let mut lp = new_loop::<B>();
        let child = child_exiting(9);
        let Some(p) = watch::<B>(child.id(), "process_park_restart") else {
            return;
        };
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let id = p.wait(&mut lp, move |_, res| {
            s.borrow_mut().push(res.unwrap().code());
            if s.borrow().len() == 1 {
                Action::Park
            } else {
                Action::Disarm
            }
        });
        run_until(&mut lp, "process wait (parked)", || {
            seen.borrow().len() == 1
        });
        lp.restart(id).unwrap();
        run_until(&mut lp, "process wait (restarted)", || {
            seen.borrow().len() == 2
        });
        assert_eq!(*seen.borrow(), vec![Some(9), Some(9)]);
        assert_eq!(lp.restart(id), Err(IdError::Stale), "disarmed");
    }

    /// A loop dropped with a wait in flight; the watcher then waits on a new
    /// loop.
    fn process_outlives_loop<B: Backend>() {
        let mut child = child_sleeping();
        let Some(p) = watch::<B>(child.id(), "process_outlives_loop") else {
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        {
            let mut lp = new_loop::<B>();
            p.wait(&mut lp, |_, _| panic!("never runs"));
            lp.run(RunMode::NoWait).unwrap();
        }
        child.kill().unwrap();
        let mut lp = new_loop::<B>();
        let s = wait_status(&mut lp, &p, "wait on a second loop");
        children::assert_killed(&s);
    }

    /// A `Process` dropped with a wait pending: the wait's callback runs once,
    /// with `Canceled` (its `Rearm` ignored), the pidfd is closed through the
    /// loop and its number works again; one dropped after its loop closes its
    /// pidfd directly. The child is left alone.
    #[cfg(unix)]
    fn process_dropped_with_wait_pending<B: Backend>() {
        let mut lp = new_loop::<B>();
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let Some(p) = watch::<B>(child.id(), "process_dropped_with_wait_pending") else {
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        let fd = p.pidfd().expect("a pidfd");
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        p.wait(&mut lp, move |_, res| {
            l.borrow_mut().push(res.map_err(|e| e.to_string()));
            Action::Rearm
        });
        lp.run(RunMode::NoWait).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert!(log.borrow().is_empty());
        drop(p);
        run_all(&mut lp, "the dropped process's Canceled");
        settle(&mut lp);
        assert_eq!(*log.borrow(), vec![Err(ProcessError::Canceled.to_string())]);
        read_on_reused_number(&mut lp, fd);

        let p = watch::<B>(child.id(), "process_dropped_with_wait_pending").unwrap();
        let fd = p.pidfd().expect("a pidfd");
        {
            let mut lp2 = new_loop::<B>();
            p.wait(&mut lp2, |_, _| panic!("never runs"));
            lp2.run(RunMode::NoWait).unwrap();
        }
        drop(p);
        drop(take_number(fd)); // handed out again: it was closed
        assert!(child.try_wait().unwrap().is_none(), "still running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
);
