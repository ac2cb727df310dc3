//! The Unix spelling of the few platform facts that the portable layer
//! (operations, results, errors) names: what a handle is, the raw error
//! codes the loop and the typed errors distinguish, the readiness bits of a
//! poll, and the message header of `sendmsg`/`recvmsg`. It depends on
//! nothing of xev's, so `op.rs` and `error.rs` can use it while the rest of
//! `sys` depends on them. A Windows or WASI build brings its own file with
//! the same names.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The socket address type operations carry (`socket2`'s; on WASI
/// preview 1, which socket2 does not support, xev's own).
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub use socket2::SockAddr;
#[cfg(all(target_os = "wasi", target_env = "p1"))]
pub use crate::sys::wasi::SockAddr;

/// What operations name the file, socket or pipe they act on: a file
/// descriptor on Unix.
pub type RawHandle = RawFd;

/// An owned handle (closed when dropped), as an accept returns it: an
/// [`OwnedFd`] on Unix.
pub type OwnedHandle = OwnedFd;

/// What a watcher owns: a descriptor.
pub(crate) type Owned = OwnedFd;

/// A public owned handle as what a watcher owns (the same on Unix).
#[cfg_attr(all(target_os = "wasi", target_env = "p1"), allow(dead_code))]
pub(crate) fn owned(h: OwnedHandle) -> Owned {
    h
}

/// A watcher's handle as the public owned type (the same on Unix).
pub(crate) fn to_public(h: Owned) -> Result<OwnedHandle, Owned> {
    Ok(h)
}

/// A watcher's handle as a file.
pub(crate) fn to_file(h: Owned) -> Result<std::fs::File, Owned> {
    Ok(h.into())
}

/// A watcher's handle as a socket, for socket options and addresses.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub(crate) fn sock(h: &Owned) -> std::io::Result<socket2::SockRef<'_>> {
    Ok(socket2::SockRef::from(h))
}

/// The value that names no handle (-1).
pub(crate) const INVALID_RAW: RawHandle = -1;

/// The raw handle of an owned one.
pub(crate) fn raw_of(h: &OwnedHandle) -> RawHandle {
    std::os::fd::AsRawFd::as_raw_fd(h)
}

/// Gives up ownership of `h`, returning its raw handle.
pub(crate) fn into_raw(h: OwnedHandle) -> RawHandle {
    std::os::fd::IntoRawFd::into_raw_fd(h)
}

/// Takes ownership of the handle in a non-negative raw result.
///
/// # Safety
/// `raw` is a new descriptor that nothing else owns.
pub(crate) unsafe fn owned_handle(raw: i32) -> OwnedHandle {
    // SAFETY: per the contract.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// The raw result of an operation canceled before it finished.
pub(crate) const CANCELED: i32 = -libc::ECANCELED;
/// The raw result of a cancel whose target is not in flight.
pub(crate) const NOT_FOUND: i32 = -libc::ENOENT;
/// The raw result of a cancel that came too late (the target finishes on
/// its own).
pub(crate) const TOO_LATE: i32 = -libc::EALREADY;
/// The error code ("device or resource busy") whose `io::ErrorKind` is
/// `ResourceBusy`.
pub(crate) const BUSY_CODE: i32 = libc::EBUSY;
/// The error code of "not a directory" ([`FsError`](crate::FsError)).
pub(crate) const NOT_A_DIRECTORY_CODE: i32 = libc::ENOTDIR;
/// The error code of "is a directory".
pub(crate) const IS_A_DIRECTORY_CODE: i32 = libc::EISDIR;
/// The error code of "directory not empty".
pub(crate) const NOT_EMPTY_CODE: i32 = libc::ENOTEMPTY;
/// The error code of "the file system cannot do that" (`fallocate` on a
/// file system without it, or on macOS).
pub(crate) const NOT_SUPPORTED_CODE: i32 = libc::EOPNOTSUPP;

/// The error code of an operation on a handle that is closed or invalid
/// (`EBADF`).
#[cfg_attr(all(target_os = "wasi", target_env = "p1"), allow(dead_code))]
pub(crate) const BAD_HANDLE_CODE: i32 = libc::EBADF;

/// Whether a process wait's raw result says the process is not a child of
/// this one (or no longer exists as one).
pub(crate) fn is_not_child(res: i32) -> bool {
    res == -libc::ECHILD || res == -libc::ESRCH
}

/// `POLLRDHUP` where it exists (Linux); elsewhere no such bit.
#[cfg(target_os = "linux")]
const POLLRDHUP: i16 = libc::POLLRDHUP;
#[cfg(not(target_os = "linux"))]
const POLLRDHUP: i16 = 0;

/// The `poll(2)` event mask asking for readability and/or writability.
pub(crate) fn poll_mask(readable: bool, writable: bool) -> u32 {
    let mut m = 0;
    if readable {
        m |= libc::POLLIN as u32;
    }
    if writable {
        m |= libc::POLLOUT as u32;
    }
    m
}

/// Decodes a `poll(2)` result mask (as a poll operation's raw result) into
/// (readable, writable, hung up, error).
pub(crate) fn poll_bits(m: i32) -> (bool, bool, bool, bool) {
    let m = m as i16;
    (
        m & (libc::POLLIN | libc::POLLHUP | POLLRDHUP) != 0,
        m & libc::POLLOUT != 0,
        m & (libc::POLLHUP | POLLRDHUP) != 0,
        m & libc::POLLERR != 0,
    )
}

/// What `sendmsg`/`recvmsg` take: a pointer to the header.
#[cfg(unix)]
pub(crate) type RawMsg = *mut libc::msghdr;
// WASI has no `msghdr`: its own header feeds `sendto`/`recvfrom`.
#[cfg(target_os = "wasi")]
pub(crate) use crate::sys::wasi::msg::{MsgHeader, RawMsg};

/// The kernel's view of a message: the `msghdr` and its `iovec`s (one
/// inline, or a table for a vectored message, sized when the message is
/// made). It lives inside the message operation, whose box keeps it at a
/// stable address while the kernel reads it.
#[cfg(unix)]
pub(crate) struct MsgHeader {
    iov: libc::iovec,
    iovs: Vec<libc::iovec>,
    hdr: libc::msghdr,
}

#[cfg(unix)]
impl MsgHeader {
    /// An empty header (filled by [`MsgHeader::prepare`] before each use).
    pub(crate) fn new() -> MsgHeader {
        // SAFETY: msghdr and iovec are plain C structs for which all-zero
        // is a valid (empty) value.
        let (iov, hdr) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        MsgHeader {
            iov,
            iovs: Vec::new(),
            hdr,
        }
    }

    /// An empty header with room for `n` buffers.
    pub(crate) fn with_capacity(n: usize) -> MsgHeader {
        let mut h = MsgHeader::new();
        h.iovs.reserve_exact(n);
        h
    }

    /// Points the header at `buf` and `more` (at most `len` bytes of each)
    /// and `addr` (none: no destination), and returns it for
    /// `sendmsg`/`recvmsg`. Called right before the kernel sees the
    /// header, once the message reached its final address.
    pub(crate) fn prepare(
        &mut self,
        buf: &mut crate::buf::Buf,
        more: &mut [crate::buf::Buf],
        len: usize,
        addr: Option<&mut SockAddr>,
        receiving: bool,
    ) -> RawMsg {
        let iov = |b: &mut crate::buf::Buf| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: len.min(b.len()),
        };
        if more.is_empty() {
            self.iov = iov(buf);
            self.hdr.msg_iov = &mut self.iov;
            self.hdr.msg_iovlen = 1;
        } else {
            self.iovs.clear();
            self.iovs.push(iov(buf));
            self.iovs.extend(more.iter_mut().map(iov));
            self.hdr.msg_iov = self.iovs.as_mut_ptr();
            self.hdr.msg_iovlen = self.iovs.len() as _;
        }
        match addr {
            Some(addr) => {
                self.hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
                self.hdr.msg_namelen = if receiving {
                    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t
                } else {
                    addr.len()
                };
            }
            None => {
                self.hdr.msg_name = std::ptr::null_mut();
                self.hdr.msg_namelen = 0;
            }
        }
        self.hdr.msg_control = std::ptr::null_mut();
        self.hdr.msg_controllen = 0;
        self.hdr.msg_flags = 0;
        &mut self.hdr
    }

    /// After a receive: the length of the sender's address the kernel
    /// wrote (0 when it wrote none, as on a stream socket).
    pub(crate) fn name_len(&self) -> libc::socklen_t {
        self.hdr.msg_namelen
    }
}
