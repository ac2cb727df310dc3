//! Unix: descriptors are `int`s, socket addresses are libc's, errors are
//! negated errno values.

use std::ffi::c_int;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ptr::{self, addr_of, addr_of_mut};

use super::SockType;

/// A C socket address (`struct sockaddr`).
pub type sockaddr = libc::sockaddr;

/// What `xev_fd` is in C: a file descriptor.
pub type xev_fd = c_int;

/// The descriptor of a watcher that has none (closed).
pub(crate) const NO_FD: xev_fd = -1;

/// Whether `fd` can name an open descriptor.
pub(crate) fn is_valid(fd: xev_fd) -> bool {
    fd >= 0
}

/// The errno of the last failed system call, negated.
pub(crate) fn last_error() -> c_int {
    -std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The code of a raw OS error (an errno value): the value negated.
pub(crate) fn os_code(n: i32) -> c_int {
    -n
}

/// The system's description of errno value `n`.
pub(crate) fn describe_errno(n: c_int) -> String {
    let text = std::io::Error::from_raw_os_error(n).to_string();
    // std appends " (os error N)": the code is the caller's.
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// An accepted connection as the `int` its callback gets.
pub(crate) fn accepted(fd: xev::OwnedHandle) -> c_int {
    std::os::fd::IntoRawFd::into_raw_fd(fd)
}

fn sock_type(ty: SockType) -> c_int {
    match ty {
        SockType::Stream => libc::SOCK_STREAM,
        SockType::Datagram => libc::SOCK_DGRAM,
    }
}

/// A C socket address as Rust's, or `-EINVAL` (not IPv4 or IPv6, or
/// `len` too short for its family).
///
/// # Safety
///
/// `addr` is null or points to `len` readable bytes.
pub(crate) unsafe fn read_sockaddr(addr: *const sockaddr, len: usize) -> Result<SocketAddr, c_int> {
    if addr.is_null() || len < size_of::<libc::sa_family_t>() + 2 {
        return Err(-libc::EINVAL);
    }
    // SAFETY: at least the family is readable (checked above); each
    // family's structure is read (unaligned) only when `len` covers it.
    unsafe {
        let family = ptr::read_unaligned(addr_of!((*addr).sa_family));
        match c_int::from(family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                let a = ptr::read_unaligned(addr.cast::<libc::sockaddr_in>());
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                let a = ptr::read_unaligned(addr.cast::<libc::sockaddr_in6>());
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => Err(-libc::EINVAL),
        }
    }
}

/// Writes `addr` as a C socket address into `out` (room for `*len`
/// bytes) and its length into `*len`; `-EINVAL` when it does not fit.
///
/// # Safety
///
/// `out` is null or valid for `*len` bytes of writes; `len` is valid.
pub(crate) unsafe fn write_sockaddr(
    addr: SocketAddr,
    out: *mut sockaddr,
    len: *mut usize,
) -> Result<(), c_int> {
    // SAFETY: `len` is valid (the contract).
    let room = unsafe { *len };
    // SAFETY: all-zero bytes are valid for both C structures.
    let (v4, v6) = unsafe {
        (
            std::mem::zeroed::<libc::sockaddr_in>(),
            std::mem::zeroed::<libc::sockaddr_in6>(),
        )
    };
    let (mut v4, mut v6) = (v4, v6);
    let (src, n) = match addr {
        SocketAddr::V4(a) => {
            v4.sin_family = libc::AF_INET as libc::sa_family_t;
            v4.sin_port = a.port().to_be();
            v4.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            (addr_of!(v4).cast::<u8>(), size_of::<libc::sockaddr_in>())
        }
        SocketAddr::V6(a) => {
            v6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            v6.sin6_port = a.port().to_be();
            v6.sin6_flowinfo = a.flowinfo();
            v6.sin6_scope_id = a.scope_id();
            v6.sin6_addr.s6_addr = a.ip().octets();
            (addr_of!(v6).cast::<u8>(), size_of::<libc::sockaddr_in6>())
        }
    };
    if out.is_null() || room < n {
        return Err(-libc::EINVAL);
    }
    // SAFETY: `out` has room for `n` bytes (checked), `src` is `n` bytes.
    unsafe {
        ptr::copy_nonoverlapping(src, out.cast::<u8>(), n);
        *len = n;
    }
    Ok(())
}

/// A new non-blocking, close-on-exec socket.
pub(crate) fn socket(family: c_int, ty: SockType) -> Result<xev_fd, c_int> {
    if family != libc::AF_INET && family != libc::AF_INET6 {
        return Err(-libc::EAFNOSUPPORT);
    }
    let ty = sock_type(ty);
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        // SAFETY: plain system call.
        let fd = unsafe { libc::socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(last_error());
        }
        Ok(fd)
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        // SAFETY: plain system call.
        let fd = unsafe { libc::socket(family, ty, 0) };
        if fd < 0 {
            return Err(last_error());
        }
        // SAFETY: `fd` is ours.
        unsafe {
            if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) < 0 || set_nonblocking(fd).is_err()
            {
                let e = last_error();
                libc::close(fd);
                return Err(e);
            }
        }
        Ok(fd)
    }
}

/// Closes a socket that nothing uses yet.
pub(crate) fn close_unused(fd: xev_fd) {
    // SAFETY: the socket is the caller's and unused.
    unsafe { libc::close(fd) };
}

/// Makes `fd` non-blocking.
fn set_nonblocking(fd: c_int) -> Result<(), c_int> {
    // SAFETY: plain system calls on a descriptor number.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(last_error());
        }
    }
    Ok(())
}

/// Adopts `fd` for a socket watcher if it is a socket of type `ty`
/// (making it non-blocking).
pub(crate) fn adopt(fd: xev_fd, ty: SockType) -> Result<(), c_int> {
    let mut got: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `got` and `len` are valid for the call.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            addr_of_mut!(got).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(last_error());
    }
    if got != sock_type(ty) {
        return Err(-libc::EINVAL);
    }
    set_nonblocking(fd)
}

/// Binds `fd` to `addr` (`len` bytes, already checked by
/// [`read_sockaddr`]) with `SO_REUSEADDR` set first, as libxev does.
///
/// # Safety
///
/// `addr` points to `len` readable bytes.
pub(crate) unsafe fn bind(
    fd: xev_fd,
    addr: *const sockaddr,
    len: usize,
    _parsed: SocketAddr,
) -> Result<(), c_int> {
    let one: c_int = 1;
    let len = libc::socklen_t::try_from(len).map_err(|_| -libc::EINVAL)?;
    // SAFETY: `one` is valid; `addr` holds `len` readable bytes.
    unsafe {
        if libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            addr_of!(one).cast(),
            size_of::<c_int>() as libc::socklen_t,
        ) < 0
            || libc::bind(fd, addr, len) < 0
        {
            return Err(last_error());
        }
    }
    Ok(())
}

/// Starts listening on `fd`.
pub(crate) fn listen(fd: xev_fd, backlog: c_int) -> Result<(), c_int> {
    // SAFETY: plain system call.
    if unsafe { libc::listen(fd, backlog) } < 0 {
        return Err(last_error());
    }
    Ok(())
}
