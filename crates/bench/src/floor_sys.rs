//! The syscalls the raw floors share (Linux only): eventfds, a small epoll
//! wrapper, reads and writes on raw descriptors, socket addresses in libc's
//! form.

use std::io;

use crate::common::{os_err, Res};

/// Checks a libc return value (negative means error).
pub fn check(r: isize, what: &str) -> Res<isize> {
    if r < 0 {
        Err(os_err(what))
    } else {
        Ok(r)
    }
}

/// An eventfd (blocking unless `nonblocking`), for the floors.
pub fn eventfd(nonblocking: bool) -> Res<i32> {
    let flags = libc::EFD_CLOEXEC | if nonblocking { libc::EFD_NONBLOCK } else { 0 };
    // SAFETY: no pointers.
    let fd = unsafe { libc::eventfd(0, flags) };
    check(fd as isize, "eventfd").map(|_| fd)
}

/// Adds one to an eventfd.
pub fn eventfd_write(fd: i32) -> Res<()> {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a live local.
    let r = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    check(r, "eventfd write").map(|_| ())
}

/// Reads (and resets) an eventfd's counter.
pub fn eventfd_read(fd: i32) -> Res<u64> {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a live local.
    let r = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    check(r, "eventfd read").map(|_| v)
}

/// A small epoll wrapper for the floors: level-triggered registrations whose
/// data is a caller-chosen token.
pub struct Epoll {
    /// The epoll descriptor.
    pub fd: i32,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new epoll instance.
    pub fn new() -> Res<Epoll> {
        // SAFETY: no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        check(fd as isize, "epoll_create1")?;
        Ok(Epoll {
            fd,
            events: Vec::with_capacity(64),
        })
    }

    /// Registers (or, with `modify`, changes) `fd` for `events`.
    pub fn ctl(&self, op: i32, fd: i32, events: u32, token: u64) -> Res<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is live; epoll_ctl copies it.
        let r = unsafe { libc::epoll_ctl(self.fd, op, fd, &mut ev) };
        check(r as isize, "epoll_ctl").map(|_| ())
    }

    /// Adds `fd` for reading.
    pub fn add_in(&self, fd: i32, token: u64) -> Res<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, token)
    }

    /// Waits (`timeout_ms` -1: forever) and returns the ready tokens with
    /// their event bits.
    pub fn wait(&mut self, timeout_ms: i32) -> Res<&[libc::epoll_event]> {
        let cap = self.events.capacity();
        // SAFETY: the kernel writes at most `cap` events into the buffer.
        let n =
            unsafe { libc::epoll_wait(self.fd, self.events.as_mut_ptr(), cap as i32, timeout_ms) };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                return Ok(&[]);
            }
            return Err(os_err("epoll_wait"));
        }
        // SAFETY: the kernel initialised the first n entries.
        unsafe { self.events.set_len(n as usize) };
        Ok(&self.events)
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.fd) };
    }
}

/// Closes a raw descriptor we own.
pub fn close(fd: i32) {
    // SAFETY: the caller owns `fd`.
    unsafe { libc::close(fd) };
}

/// Reads into `buf`, retrying on EINTR; returns bytes read or an error.
pub fn read_fd(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, writable buffer of its length.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Writes all of `buf` to a (possibly non-blocking) descriptor, waiting
/// with poll(2) when it would block.
pub fn write_all_fd(fd: i32, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live buffer of its length.
        let r = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if r >= 0 {
            buf = &buf[r as usize..];
            continue;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one live pollfd.
                unsafe { libc::poll(&mut p, 1, -1) };
            }
            _ => return Err(e),
        }
    }
    Ok(())
}

/// A `sockaddr_storage` and its length for a socket address.
pub fn raw_addr(addr: std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let sa = socket2::SockAddr::from(addr);
    // SAFETY: storage is plain old data; we copy `len` valid bytes into it.
    unsafe {
        let mut st: libc::sockaddr_storage = std::mem::zeroed();
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (&mut st as *mut libc::sockaddr_storage).cast::<u8>(),
            sa.len() as usize,
        );
        (st, sa.len())
    }
}
