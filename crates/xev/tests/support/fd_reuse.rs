//! Descriptor-number reuse, for the watcher drop tests. The kernel hands a
//! number out again only once it is closed, so getting it back proves the
//! close; a read on the new descriptor through the same loop proves that
//! the loop does not mistake it for the old one (a readiness backend that
//! was not told of the close keeps the old registration and waiters).

use std::cell::RefCell;
use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use xev::backend::Backend;
use xev::generic::Loop;
use xev::watcher::Stream;
use xev::watcher::Timer;
use xev::{Action, RunMode};

/// How long a descriptor number may stay taken by another test thread (or
/// a read may stay pending) before the test fails.
const SAFETY_NET: Duration = Duration::from_secs(10);

/// The (device, inode) of the file open as `fd`, or `None` when `fd` is
/// not open: a closed descriptor no longer names its file, even when its
/// number was reused meanwhile.
pub fn identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live, writable stat for fstat to fill; any fd
    // number is fine to ask about.
    let r = unsafe { libc::fstat(fd, &mut st) };
    (r == 0).then_some((st.st_dev as u64, st.st_ino as u64))
}

/// A socket pair with one end at descriptor number `fd`; returns (that
/// end, its peer). The end is placed with `fcntl(F_DUPFD_CLOEXEC, fd)`,
/// which takes the lowest free number at or above `fd`: `fd` itself when
/// it is free, without holding any lower number (an earlier version opened
/// descriptors until the kernel handed `fd` out, holding every lower one
/// meanwhile; two tests searching at once could then keep each other's
/// numbers, and one failed after its safety net). While `fd` is taken
/// (other tests of this binary open descriptors too) it tries again; it
/// fails when `fd` does not come free within the safety net: it is still
/// open.
pub fn take_number(fd: RawFd) -> (UnixStream, UnixStream) {
    let start = Instant::now();
    loop {
        let (a, b) = UnixStream::pair().expect("socketpair");
        if a.as_raw_fd() == fd {
            return (a, b);
        }
        if b.as_raw_fd() == fd {
            return (b, a);
        }
        // SAFETY: fcntl on a descriptor `a` owns; no pointers.
        let d = unsafe { libc::fcntl(a.as_raw_fd(), libc::F_DUPFD_CLOEXEC, fd) };
        assert!(d >= 0, "F_DUPFD: {}", std::io::Error::last_os_error());
        // SAFETY: `d` is a new descriptor that nothing else owns.
        let dup = unsafe { UnixStream::from_raw_fd(d) };
        if d == fd {
            return (dup, b);
        }
        drop(dup);
        assert!(
            start.elapsed() < SAFETY_NET,
            "descriptor {fd} was never handed out again: it is still open"
        );
        std::thread::yield_now();
    }
}

/// Takes descriptor number `fd` again (see [`take_number`]) as a [`Stream`]
/// on `lp`, and checks that a read on it waits and then completes when its
/// peer writes. Runs `lp` until nothing is in flight: call it when nothing
/// else is.
pub fn read_on_reused_number<B: Backend>(lp: &mut Loop<B>, fd: RawFd) {
    let (mine, mut peer) = take_number(fd);
    let s: Stream<B> = Stream::from_fd(mine.into()).expect("stream");
    assert_eq!(s.fd(), fd);
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    s.read(lp, vec![0; 16], move |_, buf, res| {
        *g.borrow_mut() = Some(res.map(|n| buf[..n].to_vec()).map_err(|e| e.to_string()));
        Action::Disarm
    });
    // Let the read find nothing and wait on the descriptor first.
    lp.run(RunMode::NoWait).unwrap();
    assert!(got.borrow().is_none(), "nothing was written yet");
    peer.write_all(b"reused").unwrap();
    let start = Instant::now();
    let net = Timer::new(lp, |lp, res| {
        if res.is_ok() {
            lp.stop();
        }
        Action::Disarm
    });
    net.run(lp, SAFETY_NET.as_millis() as u64).unwrap();
    while got.borrow().is_none() {
        lp.run(RunMode::Once).unwrap();
        assert!(
            start.elapsed() < SAFETY_NET,
            "a read on reused descriptor {fd} never completed"
        );
    }
    drop(net);
    assert_eq!(
        got.borrow_mut().take().unwrap(),
        Ok(b"reused".to_vec()),
        "the read on reused descriptor {fd}"
    );
    // The loop releases the dropped timer and closes the dropped stream
    // (nothing else is pending: these end at once).
    drop(s);
    while lp.active() > 0 {
        lp.run(RunMode::Once).unwrap();
    }
}
