//! The waker of a loop on Unix: an eventfd on Linux, a non-blocking pipe
//! elsewhere. The backend creates it and watches its read side; thread-pool
//! workers and `Async` notifiers signal it; the loop resets it, unless its
//! backend is woken by every signal anyway (`Backend::WAKE_EDGE`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

#[cfg(not(target_os = "linux"))]
use super::fd::pipe;

/// A wakeup descriptor: readable after `signal`, until `drain`. Any number
/// of signals before a drain count as one. On Linux it is one eventfd; on
/// other systems a non-blocking pipe (read end watched, write end signaled).
#[derive(Debug)]
pub struct Waker {
    read: OwnedFd,
    #[cfg(not(target_os = "linux"))]
    write: OwnedFd,
}

impl Waker {
    /// Creates a non-blocking, close-on-exec wakeup descriptor.
    #[cfg(target_os = "linux")]
    pub(crate) fn new() -> io::Result<Waker> {
        // eventfd takes no pointers.
        let fd = syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let read = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
        Ok(Waker { read })
    }

    /// Creates a non-blocking, close-on-exec wakeup descriptor.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn new() -> io::Result<Waker> {
        let (read, write) = pipe()?;
        Ok(Waker { read, write })
    }

    /// The descriptor to wait on (readable when signaled).
    pub(crate) fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Signals. A full pipe (EAGAIN) already means "signaled", so that is
    /// success too. A full eventfd counter is reset and written again: a
    /// loop whose backend does not reset the waker (`WAKE_EDGE`) lets the
    /// counter grow and is woken by each write, which a full counter would
    /// refuse.
    pub(crate) fn signal(&self) -> io::Result<()> {
        match self.write_one() {
            #[cfg(target_os = "linux")]
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                self.drain();
                self.write_one().or_else(again_is_signaled)
            }
            r => r.or_else(again_is_signaled),
        }
    }

    fn write_one(&self) -> io::Result<()> {
        let one: u64 = 1;
        #[cfg(target_os = "linux")]
        let (fd, len) = (self.read.as_raw_fd(), 8);
        #[cfg(not(target_os = "linux"))]
        let (fd, len) = (self.write.as_raw_fd(), 1);
        // SAFETY: writes `len` (<= 8) bytes from a live local.
        let r = unsafe { libc::write(fd, (&one as *const u64).cast(), len) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Blocks until signaled, then resets (used only when a loop is dropped
    /// while thread-pool tasks are still running).
    pub(crate) fn wait(&self) {
        super::fd::wait_readable(self.read_fd());
        self.drain();
    }

    /// Resets to "not signaled" (non-blocking): one read resets an
    /// eventfd; a pipe is read until it is empty.
    pub(crate) fn drain(&self) {
        let mut buf = [0u64; 8];
        loop {
            // SAFETY: reads at most 64 bytes into a live local array.
            let r = unsafe {
                libc::read(
                    self.read.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    std::mem::size_of_val(&buf),
                )
            };
            if r <= 0 || cfg!(target_os = "linux") {
                return;
            }
        }
    }
}

/// EAGAIN from a signal: the descriptor is full, so already signaled.
fn again_is_signaled(e: io::Error) -> io::Result<()> {
    if e.raw_os_error() == Some(libc::EAGAIN) {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A signal of an eventfd whose counter is full resets it and writes
    /// again, so a loop that never resets it (`WAKE_EDGE`) still gets an
    /// edge.
    #[test]
    fn signal_of_a_full_eventfd_writes_anew() {
        let w = Waker::new().unwrap();
        let full: u64 = u64::MAX - 1;
        // SAFETY: writes 8 bytes from a live local.
        let r = unsafe { libc::write(w.read_fd(), (&full as *const u64).cast(), 8) };
        assert_eq!(r, 8);
        w.signal().unwrap();
        let mut got = 0u64;
        // SAFETY: reads 8 bytes into a live local.
        let r = unsafe { libc::read(w.read_fd(), (&mut got as *mut u64).cast(), 8) };
        assert_eq!(r, 8);
        assert_eq!(got, 1, "the counter was reset, then written once");
    }
}
