//! The WASI [`Poller`]: wasi-libc's `poll(2)`, which is `poll_oneoff` on
//! preview 1 (one `fd_read`/`fd_write` subscription per direction, plus the
//! clock subscription of the timeout) and `wasi:io/poll` on preview 2. One
//! poller serves both targets.
//!
//! `poll` is level-triggered and stateless: the poller keeps a table of the
//! directions each descriptor's waiters wait for (which the readiness
//! engine refreshes before every wait, [`Poller::interest`]), builds the
//! `pollfd` array from it for each wait, and reports only the descriptors
//! that have waiters, so a writable socket nobody writes to never makes the
//! wait return. The wait is bounded by the loop's timeout (its next timer).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::super::unix::poller::{timeout_ms, Event, Poller};

/// The poll backend's kernel-facing part.
pub struct PollPoller {
    /// Per descriptor number: the `poll` events its waiters want (0: none).
    interest: Vec<i16>,
    /// The array handed to `poll`, rebuilt for each wait (its capacity is
    /// kept, so a steady loop does not allocate).
    pollfds: Vec<libc::pollfd>,
}

impl Poller for PollPoller {
    const NAME: &'static str = "wasi-poll";
    const LEVEL_TRIGGERED: bool = true;

    fn new(_wake_fd: RawFd) -> io::Result<Self> {
        // No wake descriptor on WASI (see `wake`).
        Ok(PollPoller {
            interest: Vec::new(),
            pollfds: Vec::with_capacity(64),
        })
    }

    fn register(
        &mut self,
        fd: RawFd,
        _believed_registered: bool,
        _interest: crate::Interest,
    ) -> io::Result<()> {
        // Nothing to tell the system: `poll` takes the descriptors each
        // time. A bad descriptor is found by the operation's own call.
        let i = usize::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        if i >= self.interest.len() {
            self.interest.resize(i + 1, 0);
        }
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) {
        if let Some(e) = usize::try_from(fd).ok().and_then(|i| self.interest.get_mut(i)) {
            *e = 0;
        }
    }

    fn interest(&mut self, fd: RawFd, readable: bool, writable: bool) {
        let Ok(i) = usize::try_from(fd) else { return };
        if i >= self.interest.len() {
            if !readable && !writable {
                return;
            }
            self.interest.resize(i + 1, 0);
        }
        let mut events = 0;
        if readable {
            events |= libc::POLLIN;
        }
        if writable {
            events |= libc::POLLOUT;
        }
        self.interest[i] = events;
    }

    fn wait(&mut self, timeout: Option<Duration>, f: &mut dyn FnMut(Event)) -> io::Result<bool> {
        self.pollfds.clear();
        for (fd, &events) in self.interest.iter().enumerate() {
            if events != 0 {
                self.pollfds.push(libc::pollfd {
                    fd: fd as RawFd,
                    events,
                    revents: 0,
                });
            }
        }
        if self.pollfds.is_empty() && timeout.is_none() {
            // Nothing to wait for and no deadline: on WASI nothing (no
            // other thread) could ever end this wait.
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the loop would wait forever: nothing can wake it on WASI (no threads)",
            ));
        }
        if self.pollfds.is_empty() && timeout == Some(Duration::ZERO) {
            return Ok(false);
        }
        // SAFETY: `pollfds` is a live array of `len` pollfds.
        let n = unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
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
        for p in &self.pollfds {
            if p.revents == 0 {
                continue;
            }
            let bad = p.revents & libc::POLLNVAL != 0;
            f(Event {
                fd: p.fd,
                readable: p.revents & libc::POLLIN != 0,
                writable: p.revents & libc::POLLOUT != 0,
                hangup: p.revents & libc::POLLHUP != 0,
                error: bad || p.revents & libc::POLLERR != 0,
                errno: if bad { libc::EBADF } else { 0 },
                proc_exit: false,
            });
        }
        Ok(false)
    }
}
