//! epoll, the Linux [`Poller`]: descriptors are registered edge-triggered
//! for both directions, with the descriptor number as the event's data.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::poller::{timeout_ms, Event, Poller};

/// Data of the wake fd's registration.
const WAKE: u64 = u64::MAX;

/// The epoll instance and its event buffer.
pub struct EpollPoller {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl EpollPoller {
    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // `ev` is a live epoll_event; epoll_ctl does not keep it.
        syscall!(epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev)).map(drop)
    }
}

impl Poller for EpollPoller {
    const NAME: &'static str = "epoll";
    // EPOLL_CTL_ADD and EPOLL_CTL_MOD poll the file and queue an event if
    // it is ready (edge-triggered included).
    const REGISTER_REPORTS_READY: bool = true;
    // The waker is an eventfd on Linux, watched with EPOLLET (below).
    const WAKE_EDGE: bool = true;

    fn new(wake_fd: RawFd) -> io::Result<Self> {
        // epoll_create1 takes no pointers.
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: `fd` is new and owned by nothing else.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let p = EpollPoller {
            epfd,
            events: Vec::with_capacity(256),
        };
        // Edge-triggered: every eventfd write wakes the watch again, whatever
        // the counter holds, so the loop need not reset it (WAKE_EDGE).
        p.ctl(
            libc::EPOLL_CTL_ADD,
            wake_fd,
            (libc::EPOLLIN | libc::EPOLLET) as u32,
            WAKE,
        )?;
        Ok(p)
    }

    const REGISTERS_INTEREST: bool = true;

    fn register(
        &mut self,
        fd: RawFd,
        believed_registered: bool,
        interest: crate::Interest,
    ) -> io::Result<()> {
        // Only what the waiters want: a MOD re-polls the file and queues an
        // event for every watched direction that is ready, and a socket is
        // nearly always writable, so watching writes for a read would wake
        // the next wait for nothing. Hangups and errors come regardless.
        let mut events = (libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        if interest.is_readable() {
            events |= libc::EPOLLIN as u32;
        }
        if interest.is_writable() {
            events |= libc::EPOLLOUT as u32;
        }
        let (first, second, retry_on) = if believed_registered {
            (libc::EPOLL_CTL_MOD, libc::EPOLL_CTL_ADD, libc::ENOENT)
        } else {
            (libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD, libc::EEXIST)
        };
        match self.ctl(first, fd, events, fd as u64) {
            Err(e) if e.raw_os_error() == Some(retry_on) => self.ctl(second, fd, events, fd as u64),
            r => r,
        }
    }

    fn deregister(&mut self, fd: RawFd) {
        // Failure means it is not registered anymore, which is the goal.
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
    }

    fn wait(&mut self, timeout: Option<Duration>, f: &mut dyn FnMut(Event)) -> io::Result<bool> {
        let cap = self.events.capacity();
        // SAFETY: the kernel writes at most `cap` events into the buffer.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                cap as libc::c_int,
                timeout_ms(timeout),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) {
                Ok(false)
            } else {
                Err(e)
            };
        }
        // SAFETY: the kernel initialised the first `n` entries.
        unsafe { self.events.set_len(n as usize) };
        let mut woken = false;
        for ev in self.events.drain(..) {
            let (bits, data) = (ev.events, ev.u64);
            if data == WAKE {
                woken = true;
                continue;
            }
            f(Event {
                fd: data as RawFd,
                readable: bits & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0,
                writable: bits & libc::EPOLLOUT as u32 != 0,
                hangup: bits & (libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0,
                error: bits & libc::EPOLLERR as u32 != 0,
                errno: 0,
                proc_exit: false,
            });
        }
        Ok(woken)
    }
}
