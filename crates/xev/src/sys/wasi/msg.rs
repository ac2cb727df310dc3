//! The message header of a `sendmsg`/`recvmsg` operation on WASI, which
//! has no `msghdr`: preview 2 carries a one-buffer message with a peer
//! address through `sendto`/`recvfrom`, which is all a message operation
//! needs. Preview 1 has no datagram sockets: its message operations are
//! `Unsupported` before they reach these functions.

use super::super::unix::types::SockAddr;

/// The header: the buffer and address a message operation points it at.
/// It lives inside the message operation, whose box keeps it at a stable
/// address during the call.
pub(crate) struct MsgHeader {
    buf: *mut u8,
    len: usize,
    #[cfg(not(target_env = "p1"))]
    name: *mut libc::sockaddr,
    namelen: u32,
}

/// What [`sendmsg`] and [`recvmsg`] take: a pointer to the header.
pub(crate) type RawMsg = *mut MsgHeader;

impl MsgHeader {
    /// An empty header with room for `n` buffers (only the first
    /// non-empty one is used: WASI sockets have no vectored calls).
    pub(crate) fn with_capacity(_n: usize) -> MsgHeader {
        MsgHeader::new()
    }

    /// An empty header (filled by [`MsgHeader::prepare`] before each use).
    pub(crate) fn new() -> MsgHeader {
        MsgHeader {
            buf: std::ptr::null_mut(),
            len: 0,
            #[cfg(not(target_env = "p1"))]
            name: std::ptr::null_mut(),
            namelen: 0,
        }
    }

    /// Points the header at the first non-empty buffer of `buf` and `more`
    /// (at most `len` bytes of it: a vectored message moves one buffer per
    /// call here, a short count) and `addr` (none: no destination), and
    /// returns it for [`sendmsg`]/[`recvmsg`].
    pub(crate) fn prepare(
        &mut self,
        buf: &mut crate::buf::Buf,
        more: &mut [crate::buf::Buf],
        len: usize,
        addr: Option<&mut SockAddr>,
        receiving: bool,
    ) -> RawMsg {
        let first = std::iter::once(buf)
            .chain(more.iter_mut())
            .find(|b| !b.is_empty());
        (self.buf, self.len) = match first {
            Some(b) => (b.as_mut_ptr(), len.min(b.len())),
            None => (std::ptr::NonNull::dangling().as_ptr(), 0),
        };
        #[cfg(not(target_env = "p1"))]
        match addr {
            Some(addr) => {
                self.name = addr.as_ptr() as *mut libc::sockaddr;
                self.namelen = if receiving {
                    std::mem::size_of::<libc::sockaddr_storage>() as u32
                } else {
                    addr.len()
                };
            }
            None => {
                self.name = std::ptr::null_mut();
                self.namelen = 0;
            }
        }
        #[cfg(target_env = "p1")]
        let _ = (addr, receiving);
        self
    }

    /// After a receive: the length of the sender's address (0 when none
    /// was written, as on a stream socket).
    pub(crate) fn name_len(&self) -> u32 {
        self.namelen
    }
}

/// `recvmsg` as a `recvfrom` into the header's buffer and address.
///
/// # Safety
/// `hdr` was just prepared, and what it points at is live.
#[cfg(not(target_env = "p1"))]
pub(crate) unsafe fn recvmsg(fd: libc::c_int, hdr: RawMsg, flags: libc::c_int) -> isize {
    // SAFETY: per the contract, the header points at a live buffer of
    // `len` bytes and (unless `name` is null) a live address storage of
    // `namelen` bytes.
    unsafe {
        let h = &mut *hdr;
        if h.name.is_null() {
            // No address (a vectored message on a connected socket):
            // wasi-libc refuses any address argument on a connected TCP
            // socket, the length pointer included.
            return libc::recv(fd, h.buf.cast(), h.len, flags);
        }
        libc::recvfrom(fd, h.buf.cast(), h.len, flags, h.name, &mut h.namelen)
    }
}

/// `sendmsg` as a `sendto` of the header's buffer to its address.
///
/// # Safety
/// As for [`recvmsg`].
#[cfg(not(target_env = "p1"))]
pub(crate) unsafe fn sendmsg(fd: libc::c_int, hdr: RawMsg, flags: libc::c_int) -> isize {
    // SAFETY: as for `recvmsg`.
    unsafe {
        let h = &*hdr;
        if h.name.is_null() {
            return libc::send(fd, h.buf.cast(), h.len, flags);
        }
        libc::sendto(fd, h.buf.cast(), h.len, flags, h.name, h.namelen)
    }
}

/// Preview 1 has no datagram sockets: never reached (the backend answers
/// `Unsupported` first); fails with `EBADF` if it were.
///
/// # Safety
/// None needed; `unsafe` to match the other targets.
#[cfg(target_env = "p1")]
pub(crate) unsafe fn recvmsg(_fd: libc::c_int, _hdr: RawMsg, _flags: libc::c_int) -> isize {
    -1
}

/// See [`recvmsg`].
///
/// # Safety
/// None needed; `unsafe` to match the other targets.
#[cfg(target_env = "p1")]
pub(crate) unsafe fn sendmsg(_fd: libc::c_int, _hdr: RawMsg, _flags: libc::c_int) -> isize {
    -1
}
