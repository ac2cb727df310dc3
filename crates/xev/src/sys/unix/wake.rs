//! The waker of a loop on Unix: an eventfd on Linux, a non-blocking pipe
//! elsewhere. The backend creates it and watches its read side; thread-pool
//! workers and `Async` notifiers signal it; the loop resets it.

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

    /// Signals. A full counter or pipe (EAGAIN) already means "signaled",
    /// so that is success too.
    pub(crate) fn signal(&self) -> io::Result<()> {
        let one: u64 = 1;
        #[cfg(target_os = "linux")]
        let (fd, len) = (self.read.as_raw_fd(), 8);
        #[cfg(not(target_os = "linux"))]
        let (fd, len) = (self.write.as_raw_fd(), 1);
        // SAFETY: writes `len` (<= 8) bytes from a live local.
        let r = unsafe { libc::write(fd, (&one as *const u64).cast(), len) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EAGAIN) {
                return Err(e);
            }
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
