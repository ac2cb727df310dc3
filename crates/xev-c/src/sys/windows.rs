//! Windows: an `xev_fd` is a `SOCKET` or a `HANDLE` as `uintptr_t`
//! (xev's [`xev::RawHandle`]), socket addresses are WinSock's, and a Win32
//! or WinSock error code becomes the C runtime's errno value (MSVC's and
//! mingw-w64's `<errno.h>` agree on them), negated, so that C code
//! compares results with `-ECONNREFUSED` and the like on every platform.
//! A code with no errno equivalent is `XEV_EUNKNOWN`.

use std::ffi::c_int;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::windows::io::{BorrowedSocket, IntoRawSocket, RawSocket};
use std::ptr;

use socket2::{Domain, SockAddr, SockRef, Socket, Type};
use windows_sys::Win32::Foundation as f;
use windows_sys::Win32::Networking::WinSock as ws;

use super::SockType;
use crate::errors::XEV_EUNKNOWN;

/// A C socket address (`struct sockaddr`).
pub type sockaddr = ws::SOCKADDR;

/// What `xev_fd` is in C: a `SOCKET` or a `HANDLE` as `uintptr_t`.
pub type xev_fd = usize;

/// The handle of a watcher that has none (`INVALID_SOCKET`, which is
/// also `(uintptr_t)INVALID_HANDLE_VALUE`).
pub(crate) const NO_FD: xev_fd = usize::MAX;

/// Whether `fd` can name an open handle: not `INVALID_HANDLE_VALUE` nor
/// another negative pseudo-handle (the current process or thread).
pub(crate) fn is_valid(fd: xev_fd) -> bool {
    (fd as isize) >= 0
}

/// The code of an `io::Error` from socket2 or std.
fn io_error(e: &std::io::Error) -> c_int {
    crate::errors::io_code(e)
}

/// The code of a raw Win32 or WinSock error: the C runtime's errno value
/// for it, negated, or `XEV_EUNKNOWN`.
pub(crate) fn os_code(n: i32) -> c_int {
    let errno = match n {
        ws::WSAEINTR => libc::EINTR,
        ws::WSAEBADF => libc::EBADF,
        ws::WSAEACCES => libc::EACCES,
        ws::WSAEFAULT => libc::EFAULT,
        ws::WSAEINVAL => libc::EINVAL,
        ws::WSAEMFILE => libc::EMFILE,
        ws::WSAEWOULDBLOCK => libc::EWOULDBLOCK,
        ws::WSAEINPROGRESS => libc::EINPROGRESS,
        ws::WSAEALREADY => libc::EALREADY,
        ws::WSAENOTSOCK => libc::ENOTSOCK,
        ws::WSAEDESTADDRREQ => libc::EDESTADDRREQ,
        ws::WSAEMSGSIZE => libc::EMSGSIZE,
        ws::WSAEPROTOTYPE => libc::EPROTOTYPE,
        ws::WSAENOPROTOOPT => libc::ENOPROTOOPT,
        ws::WSAEPROTONOSUPPORT | ws::WSAESOCKTNOSUPPORT => libc::EPROTONOSUPPORT,
        ws::WSAEOPNOTSUPP => libc::EOPNOTSUPP,
        ws::WSAEAFNOSUPPORT | ws::WSAEPFNOSUPPORT => libc::EAFNOSUPPORT,
        ws::WSAEADDRINUSE => libc::EADDRINUSE,
        ws::WSAEADDRNOTAVAIL => libc::EADDRNOTAVAIL,
        ws::WSAENETDOWN => libc::ENETDOWN,
        ws::WSAENETUNREACH => libc::ENETUNREACH,
        ws::WSAENETRESET => libc::ENETRESET,
        ws::WSAECONNABORTED => libc::ECONNABORTED,
        ws::WSAECONNRESET => libc::ECONNRESET,
        ws::WSAENOBUFS => libc::ENOBUFS,
        ws::WSAEISCONN => libc::EISCONN,
        ws::WSAENOTCONN => libc::ENOTCONN,
        ws::WSAESHUTDOWN => libc::EPIPE,
        ws::WSAETIMEDOUT => libc::ETIMEDOUT,
        ws::WSAECONNREFUSED => libc::ECONNREFUSED,
        ws::WSAEHOSTDOWN | ws::WSAEHOSTUNREACH => libc::EHOSTUNREACH,
        _ => match n as u32 {
            f::ERROR_INVALID_FUNCTION | f::ERROR_INVALID_PARAMETER | f::ERROR_NEGATIVE_SEEK => {
                libc::EINVAL
            }
            f::ERROR_FILE_NOT_FOUND
            | f::ERROR_PATH_NOT_FOUND
            | f::ERROR_INVALID_NAME
            | f::ERROR_NOT_FOUND => libc::ENOENT,
            f::ERROR_TOO_MANY_OPEN_FILES => libc::EMFILE,
            f::ERROR_ACCESS_DENIED | f::ERROR_SHARING_VIOLATION | f::ERROR_LOCK_VIOLATION => {
                libc::EACCES
            }
            f::ERROR_PRIVILEGE_NOT_HELD => libc::EPERM,
            f::ERROR_INVALID_HANDLE => libc::EBADF,
            f::ERROR_NOT_ENOUGH_MEMORY | f::ERROR_OUTOFMEMORY => libc::ENOMEM,
            f::ERROR_FILE_EXISTS | f::ERROR_ALREADY_EXISTS => libc::EEXIST,
            f::ERROR_DISK_FULL | f::ERROR_HANDLE_DISK_FULL => libc::ENOSPC,
            f::ERROR_NOT_SUPPORTED => libc::ENOTSUP,
            f::ERROR_BROKEN_PIPE | f::ERROR_NO_DATA | f::ERROR_PIPE_NOT_CONNECTED => libc::EPIPE,
            f::ERROR_BUSY | f::ERROR_PIPE_BUSY => libc::EBUSY,
            f::ERROR_OPERATION_ABORTED => libc::ECANCELED,
            f::ERROR_SEM_TIMEOUT | f::WAIT_TIMEOUT => libc::ETIMEDOUT,
            f::ERROR_MORE_DATA => libc::EMSGSIZE,
            f::ERROR_NETNAME_DELETED | f::ERROR_PORT_UNREACHABLE => libc::ECONNRESET,
            f::ERROR_CONNECTION_REFUSED => libc::ECONNREFUSED,
            f::ERROR_CONNECTION_ABORTED | f::ERROR_REQUEST_ABORTED => libc::ECONNABORTED,
            f::ERROR_NETWORK_UNREACHABLE => libc::ENETUNREACH,
            f::ERROR_HOST_UNREACHABLE => libc::EHOSTUNREACH,
            f::ERROR_IO_INCOMPLETE | f::ERROR_IO_PENDING => libc::EINPROGRESS,
            _ => return XEV_EUNKNOWN,
        },
    };
    -errno
}

/// A description of the C runtime's errno value `n` (the runtime's own
/// `strerror` knows few of the network ones).
pub(crate) fn describe_errno(n: c_int) -> String {
    let text = match n {
        libc::EPERM => "operation not permitted",
        libc::ENOENT => "no such file or directory",
        libc::EINTR => "interrupted",
        libc::EIO => "input/output error",
        libc::EBADF => "bad file descriptor or handle",
        libc::ECHILD => "no such child process",
        libc::ENOMEM => "out of memory",
        libc::EACCES => "permission denied",
        libc::EFAULT => "bad address",
        libc::EBUSY => "device or resource busy",
        libc::EEXIST => "file exists",
        libc::EINVAL => "invalid argument",
        libc::EMFILE => "too many open files",
        libc::ENOSPC => "no space left on device",
        libc::EPIPE => "broken pipe",
        libc::ENOSYS => "function not implemented",
        libc::EADDRINUSE => "address already in use",
        libc::EADDRNOTAVAIL => "address not available",
        libc::EAFNOSUPPORT => "address family not supported",
        libc::EALREADY => "operation already in progress",
        libc::ECANCELED => "operation canceled",
        libc::ECONNABORTED => "connection aborted",
        libc::ECONNREFUSED => "connection refused",
        libc::ECONNRESET => "connection reset by peer",
        libc::EDESTADDRREQ => "destination address required",
        libc::EHOSTUNREACH => "host unreachable",
        libc::EINPROGRESS => "operation in progress",
        libc::EISCONN => "socket is connected",
        libc::EMSGSIZE => "message too long",
        libc::ENETDOWN => "network is down",
        libc::ENETRESET => "connection reset by network",
        libc::ENETUNREACH => "network unreachable",
        libc::ENOBUFS => "no buffer space available",
        libc::ENOPROTOOPT => "protocol not available",
        libc::ENOTCONN => "socket is not connected",
        libc::ENOTSOCK => "not a socket",
        libc::ENOTSUP => "not supported",
        libc::EOPNOTSUPP => "operation not supported on socket",
        libc::EPROTONOSUPPORT => "protocol not supported",
        libc::EPROTOTYPE => "wrong protocol type for socket",
        libc::ETIMEDOUT => "timed out",
        libc::EWOULDBLOCK => "operation would block",
        _ => return format!("error {n}"),
    };
    text.to_string()
}

/// An accepted connection as the `int` its callback gets: handle values
/// use their low 32 bits only (as xev's IOCP backend relies on), so one
/// above `INT_MAX` cannot happen; it would be closed and reported as
/// `-EMFILE`.
pub(crate) fn accepted(s: xev::OwnedHandle) -> c_int {
    let raw = s.into_raw_socket();
    match c_int::try_from(raw) {
        Ok(n) => n,
        Err(_) => {
            close_unused(raw as xev_fd);
            -libc::EMFILE
        }
    }
}

fn sock_type(ty: SockType) -> Type {
    match ty {
        SockType::Stream => Type::STREAM,
        SockType::Datagram => Type::DGRAM,
    }
}

/// A C socket address as Rust's, or `-EINVAL` (not IPv4 or IPv6, or
/// `len` too short for its family).
///
/// # Safety
///
/// `addr` is null or points to `len` readable bytes.
pub(crate) unsafe fn read_sockaddr(addr: *const sockaddr, len: usize) -> Result<SocketAddr, c_int> {
    if addr.is_null() || len < size_of::<ws::ADDRESS_FAMILY>() + 2 {
        return Err(-libc::EINVAL);
    }
    // SAFETY: the family is readable (checked above).
    let family = unsafe { ptr::read_unaligned(ptr::addr_of!((*addr).sa_family)) };
    let need = match family {
        ws::AF_INET => size_of::<ws::SOCKADDR_IN>(),
        ws::AF_INET6 => size_of::<ws::SOCKADDR_IN6>(),
        _ => return Err(-libc::EINVAL),
    };
    if len < need {
        return Err(-libc::EINVAL);
    }
    // SAFETY: `need` bytes are readable at `addr` (checked) and fit in the
    // storage, which socket2 hands over zeroed.
    let parsed = unsafe {
        SockAddr::try_init(|storage, slen| {
            ptr::copy_nonoverlapping(addr.cast::<u8>(), storage.cast::<u8>(), need);
            *slen = need as i32;
            Ok(())
        })
    };
    match parsed {
        Ok(((), a)) => a.as_socket().ok_or(-libc::EINVAL),
        Err(_) => Err(-libc::EINVAL),
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
    let a = SockAddr::from(addr);
    let n = a.len() as usize;
    // SAFETY: `len` is valid (the contract).
    let room = unsafe { *len };
    if out.is_null() || room < n {
        return Err(-libc::EINVAL);
    }
    // SAFETY: `out` has room for `n` bytes (checked); `a` holds `n` bytes.
    unsafe {
        ptr::copy_nonoverlapping(a.as_ptr().cast::<u8>(), out.cast::<u8>(), n);
        *len = n;
    }
    Ok(())
}

/// A new non-blocking, non-inheritable overlapped socket (socket2 starts
/// WinSock first).
pub(crate) fn socket(family: c_int, ty: SockType) -> Result<xev_fd, c_int> {
    let domain = if family == c_int::from(ws::AF_INET) {
        Domain::IPV4
    } else if family == c_int::from(ws::AF_INET6) {
        Domain::IPV6
    } else {
        return Err(-libc::EAFNOSUPPORT);
    };
    let s = Socket::new(domain, sock_type(ty), None).map_err(|e| io_error(&e))?;
    s.set_nonblocking(true).map_err(|e| io_error(&e))?;
    Ok(s.into_raw_socket() as xev_fd)
}

/// Closes a socket that nothing uses yet.
pub(crate) fn close_unused(fd: xev_fd) {
    // SAFETY: the socket is the caller's and unused.
    unsafe { ws::closesocket(fd) };
}

/// Runs `f` on `fd` as a socket.
fn with_socket<R>(
    fd: xev_fd,
    f: impl FnOnce(SockRef<'_>) -> std::io::Result<R>,
) -> Result<R, c_int> {
    if !is_valid(fd) {
        return Err(-libc::EBADF);
    }
    // SAFETY: the socket stays open for the call (the caller's handle;
    // a handle that is not a socket makes WinSock answer WSAENOTSOCK).
    let s = unsafe { BorrowedSocket::borrow_raw(fd as RawSocket) };
    f(SockRef::from(&s)).map_err(|e| io_error(&e))
}

/// Adopts `fd` for a socket watcher if it is a socket of type `ty`
/// (making it non-blocking).
pub(crate) fn adopt(fd: xev_fd, ty: SockType) -> Result<(), c_int> {
    if with_socket(fd, |s| s.r#type())? != sock_type(ty) {
        return Err(-libc::EINVAL);
    }
    with_socket(fd, |s| s.set_nonblocking(true))
}

/// Binds `fd` to `addr`. (Without `SO_REUSEADDR`, which on Windows lets
/// another socket take over a bound port.)
///
/// # Safety
///
/// `addr` points to `len` readable bytes (parsed as `parsed`).
pub(crate) unsafe fn bind(
    fd: xev_fd,
    _addr: *const sockaddr,
    _len: usize,
    parsed: SocketAddr,
) -> Result<(), c_int> {
    with_socket(fd, |s| s.bind(&SockAddr::from(parsed)))
}

/// Starts listening on `fd`.
pub(crate) fn listen(fd: xev_fd, backlog: c_int) -> Result<(), c_int> {
    with_socket(fd, |s| s.listen(backlog))
}
