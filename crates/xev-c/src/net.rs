//! Sockets beyond libxev's C API: TCP (`xev_tcp_*`: init, bind, listen,
//! accept, connect, read, write, shutdown, close) and UDP (`xev_udp_*`:
//! read with the sender's address, write to an address, close), plus the
//! conversions between C socket addresses and Rust's.
//!
//! A socket watcher holds a descriptor, as libxev's watchers do. The
//! operations are loop operations on it (`recv`/`send` for TCP, so a write
//! to a closed peer is `-EPIPE`, never `SIGPIPE`; `recvmsg`/`sendmsg` for
//! UDP). Closing goes through the loop (`xev_tcp_close`), which first
//! stops what waits on the descriptor; `xev_tcp_deinit` does not close it.

use std::ffi::{c_int, c_void};
use std::ptr::{self, addr_of, addr_of_mut};

use xev::{Msg, Op};

use crate::boundary::{guard_code, guard_void};
use crate::completion::{start_op, Request};
use crate::sys::{self, is_valid, read_sockaddr, sockaddr, SockType, NO_FD};
use crate::types::{xev_cb, xev_completion, xev_fd, xev_loop, xev_watcher};
use crate::watchers::{forget, init_watcher, watcher, WatcherKind, WatcherRepr};

/// The open descriptor of the watcher at `w` of `kind`.
///
/// # Safety
///
/// `w` is null or points to readable `xev_watcher` storage.
pub(crate) unsafe fn fd_of(
    w: *const xev_watcher,
    kind: WatcherKind,
) -> Result<(xev_fd, *mut WatcherRepr), c_int> {
    // SAFETY: forwarded contract.
    let r = unsafe { watcher(w, kind)? };
    // SAFETY: initialised, per `watcher`.
    let fd = unsafe { ptr::read(addr_of!((*r).fd)) };
    if !is_valid(fd) {
        return Err(-libc::EBADF);
    }
    Ok((fd, r))
}

/// Binds the watcher's socket (with `SO_REUSEADDR` set first on Unix, as
/// libxev does).
///
/// # Safety
///
/// As the exported bind functions.
unsafe fn bind(
    w: *mut xev_watcher,
    kind: WatcherKind,
    addr: *const sockaddr,
    len: usize,
) -> Result<c_int, c_int> {
    // SAFETY: forwarded contract.
    let (fd, _) = unsafe { fd_of(w, kind)? };
    // SAFETY: forwarded contract (checks the family and length).
    let parsed = unsafe { read_sockaddr(addr, len)? };
    // SAFETY: forwarded contract.
    unsafe { sys::bind(fd, addr, len, parsed)? };
    Ok(0)
}

/// Starts closing the watcher's descriptor through the loop; the watcher
/// then has none (-1).
///
/// # Safety
///
/// As the exported close functions.
pub(crate) unsafe fn close(
    w: *mut xev_watcher,
    kind: WatcherKind,
    l: *mut xev_loop,
    c: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> Result<c_int, c_int> {
    // SAFETY: forwarded contract.
    let (fd, r) = unsafe { fd_of(w, kind)? };
    // SAFETY: forwarded contract.
    let started = unsafe {
        start_op(l, c, Request::new(cb, userdata), |_, _| {
            Ok(Op::Close { fd })
        })?
    };
    // SAFETY: `r` is the initialised watcher; the descriptor is the
    // operation's now.
    unsafe { ptr::write(addr_of_mut!((*r).fd), NO_FD) };
    Ok(started)
}

/// A read request into the C buffer `buf` of `len` bytes.
pub(crate) fn read_request(
    buf: *mut c_void,
    len: usize,
    cb: Option<xev_cb>,
    userdata: *mut c_void,
) -> Result<Request, c_int> {
    if buf.is_null() && len > 0 {
        return Err(-libc::EINVAL);
    }
    let mut req = Request::new(cb, userdata);
    req.buf = buf.cast();
    req.len = len;
    Ok(req)
}

/// A write request of the C buffer `buf` of `len` bytes, and its bytes.
///
/// # Safety
///
/// `buf` is null or holds `len` readable bytes.
pub(crate) unsafe fn write_request<'a>(
    buf: *const c_void,
    len: usize,
    cb: Option<xev_cb>,
    userdata: *mut c_void,
) -> Result<(Request, &'a [u8]), c_int> {
    let req = read_request(buf.cast_mut(), len, cb, userdata)?;
    let data = if len == 0 {
        &[][..]
    } else {
        // SAFETY: non-null (checked) and readable for `len` bytes.
        unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }
    };
    Ok((req, data))
}

/// Initialises a TCP watcher with a new non-blocking, close-on-exec
/// socket of `family` (`AF_INET` or `AF_INET6`). Returns 0 or a negative
/// error code.
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_tcp_init(w: *mut xev_watcher, family: c_int) -> c_int {
    guard_code(|| {
        let fd = sys::socket(family, SockType::Stream)?;
        // SAFETY: forwarded contract.
        if let Err(e) = unsafe { init_watcher(w, WatcherKind::Tcp, fd, None, ptr::null_mut()) } {
            sys::close_unused(fd);
            return Err(e);
        }
        Ok(0)
    })
}

/// Initialises a TCP watcher on `fd`, a stream socket (made non-blocking),
/// which then belongs to the watcher until `xev_tcp_close`. Returns 0, or
/// `-EINVAL` (not a stream socket) or another negative code.
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_tcp_init_fd(w: *mut xev_watcher, fd: xev_fd) -> c_int {
    guard_code(|| {
        sys::adopt(fd, SockType::Stream)?;
        // SAFETY: forwarded contract.
        unsafe { init_watcher(w, WatcherKind::Tcp, fd, None, ptr::null_mut())? };
        Ok(0)
    })
}

/// Forgets a TCP watcher without closing its descriptor (close it with
/// `xev_tcp_close` first, or yourself once nothing is active on it).
///
/// # Safety
///
/// `w` is null or points to readable and writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_tcp_deinit(w: *mut xev_watcher) {
    guard_void("xev_tcp_deinit", || {
        // SAFETY: forwarded contract.
        unsafe { forget(watcher(w, WatcherKind::Tcp)?) };
        Ok(())
    })
}

/// Binds the socket to `addr` (`addrlen` bytes, IPv4 or IPv6), with
/// `SO_REUSEADDR` set first. Returns 0 or a negative error code.
///
/// # Safety
///
/// `w` is null or points to `xev_watcher` storage; `addr` is null or
/// points to `addrlen` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn xev_tcp_bind(
    w: *mut xev_watcher,
    addr: *const sockaddr,
    addrlen: usize,
) -> c_int {
    // SAFETY: forwarded contract.
    guard_code(|| unsafe { bind(w, WatcherKind::Tcp, addr, addrlen) })
}

/// Starts listening with room for `backlog` pending connections. Returns
/// 0 or a negative error code.
///
/// # Safety
///
/// `w` is null or points to `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_tcp_listen(w: *mut xev_watcher, backlog: c_int) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract.
        let (fd, _) = unsafe { fd_of(w, WatcherKind::Tcp)? };
        sys::listen(fd, backlog)?;
        Ok(0)
    })
}

/// Accepts a connection: `cb` gets the new socket's descriptor
/// (non-blocking, close-on-exec; the callback owns it: wrap it with
/// `xev_tcp_init_fd`), or a negative error code. `XEV_REARM` accepts the
/// next one. Returns 0, or a negative code when nothing was started.
///
/// # Safety
///
/// `w` and `loop` point to initialised storage (or are null); `c` is null
/// or points to writable `xev_completion` storage that is not active and
/// stays valid until its callback returns `XEV_DISARM`. On the loop's
/// thread (as for every operation below).
#[no_mangle]
pub unsafe extern "C" fn xev_tcp_accept(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract.
        let (fd, _) = unsafe { fd_of(w, WatcherKind::Tcp)? };
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, Request::new(cb, userdata), |_, _| {
                Ok(Op::Accept { fd })
            })
        }
    })
}

/// Connects to `addr` (`addrlen` bytes, IPv4 or IPv6): `cb` gets 0 or a
/// negative error code (`-ECONNREFUSED`...).
///
/// # Safety
///
/// As `xev_tcp_accept`; `addr` is null or points to `addrlen` readable
/// bytes (read before this returns).
#[no_mangle]
pub unsafe extern "C" fn xev_tcp_connect(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    addr: *const sockaddr,
    addrlen: usize,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract.
        let (fd, _) = unsafe { fd_of(w, WatcherKind::Tcp)? };
        // SAFETY: forwarded contract.
        let to = unsafe { read_sockaddr(addr, addrlen)? };
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, Request::new(cb, userdata), |_, _| {
                Ok(Op::connect(fd, to))
            })
        }
    })
}

/// Reads into `buf` (up to `len` bytes): `cb` gets the count, `XEV_EOF`
/// when the peer closed, or a negative error code. The data is received
/// into a loop-owned buffer and copied into `buf` just before `cb` runs.
/// `XEV_REARM` reads again into the same buffer.
///
/// # Safety
///
/// As `xev_tcp_accept`; `buf` is null (only with `len` 0) or holds `len`
/// writable bytes until the callback.
#[no_mangle]
pub unsafe extern "C" fn xev_tcp_read(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    buf: *mut c_void,
    len: usize,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract.
        let (fd, _) = unsafe { fd_of(w, WatcherKind::Tcp)? };
        let req = read_request(buf, len, cb, userdata)?;
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, req, |_, shared| {
                Ok(Op::Recv {
                    fd,
                    buf: shared.buffer(len).into(),
                })
            })
        }
    })
}

/// Writes `buf` (`len` bytes, copied before this returns): `cb` gets the
/// count written (possibly short), or a negative error code (`-EPIPE`
/// when the peer is gone; never a `SIGPIPE`). `XEV_REARM` writes `buf`
/// again (it is copied again then, so it must still be valid).
///
/// # Safety
///
/// As `xev_tcp_accept`; `buf` is null (only with `len` 0) or holds `len`
/// readable bytes.
#[no_mangle]
pub unsafe extern "C" fn xev_tcp_write(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    buf: *const c_void,
    len: usize,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract.
        let (fd, _) = unsafe { fd_of(w, WatcherKind::Tcp)? };
        // SAFETY: forwarded contract.
        let (req, data) = unsafe { write_request(buf, len, cb, userdata)? };
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, req, |_, shared| {
                Ok(Op::Send {
                    fd,
                    buf: shared.copy_of(data).into(),
                })
            })
        }
    })
}

/// Shuts down one or both directions (`XEV_SHUTDOWN_READ`, `_WRITE`,
/// `_BOTH`): `cb` gets 0 or a negative error code.
///
/// # Safety
///
/// As `xev_tcp_accept`.
#[no_mangle]
pub unsafe extern "C" fn xev_tcp_shutdown(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    how: c_int,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    guard_code(|| {
        let how = match how {
            0 => std::net::Shutdown::Read,
            1 => std::net::Shutdown::Write,
            2 => std::net::Shutdown::Both,
            _ => return Err(-libc::EINVAL),
        };
        // SAFETY: forwarded contract.
        let (fd, _) = unsafe { fd_of(w, WatcherKind::Tcp)? };
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, Request::new(cb, userdata), |_, _| {
                Ok(Op::Shutdown { fd, how })
            })
        }
    })
}

/// Closes the socket through the loop (operations still waiting on it end
/// first): `cb` gets 0 or a negative error code. The watcher has no
/// descriptor afterwards; deinitialise it when you like.
///
/// # Safety
///
/// As `xev_tcp_accept`.
#[no_mangle]
pub unsafe extern "C" fn xev_tcp_close(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    // SAFETY: forwarded contract.
    guard_code(|| unsafe { close(w, WatcherKind::Tcp, loop_, c, userdata, cb) })
}

/// Initialises a UDP watcher with a new non-blocking, close-on-exec
/// socket of `family` (`AF_INET` or `AF_INET6`).
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_udp_init(w: *mut xev_watcher, family: c_int) -> c_int {
    guard_code(|| {
        let fd = sys::socket(family, SockType::Datagram)?;
        // SAFETY: forwarded contract.
        if let Err(e) = unsafe { init_watcher(w, WatcherKind::Udp, fd, None, ptr::null_mut()) } {
            sys::close_unused(fd);
            return Err(e);
        }
        Ok(0)
    })
}

/// Initialises a UDP watcher on `fd`, a datagram socket (made
/// non-blocking), which belongs to the watcher until `xev_udp_close`.
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_udp_init_fd(w: *mut xev_watcher, fd: xev_fd) -> c_int {
    guard_code(|| {
        sys::adopt(fd, SockType::Datagram)?;
        // SAFETY: forwarded contract.
        unsafe { init_watcher(w, WatcherKind::Udp, fd, None, ptr::null_mut())? };
        Ok(0)
    })
}

/// Forgets a UDP watcher without closing its descriptor.
///
/// # Safety
///
/// `w` is null or points to readable and writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_udp_deinit(w: *mut xev_watcher) {
    guard_void("xev_udp_deinit", || {
        // SAFETY: forwarded contract.
        unsafe { forget(watcher(w, WatcherKind::Udp)?) };
        Ok(())
    })
}

/// Binds the socket to `addr`, with `SO_REUSEADDR` set first.
///
/// # Safety
///
/// As `xev_tcp_bind`.
#[no_mangle]
pub unsafe extern "C" fn xev_udp_bind(
    w: *mut xev_watcher,
    addr: *const sockaddr,
    addrlen: usize,
) -> c_int {
    // SAFETY: forwarded contract.
    guard_code(|| unsafe { bind(w, WatcherKind::Udp, addr, addrlen) })
}

/// Receives one datagram into `buf` (up to `len` bytes): `cb` gets its
/// length (0 for an empty datagram) or a negative error code; in the
/// callback, `xev_completion_peer(c, ...)` gives the sender.
///
/// # Safety
///
/// As `xev_tcp_read`.
#[no_mangle]
pub unsafe extern "C" fn xev_udp_read(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    buf: *mut c_void,
    len: usize,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract.
        let (fd, _) = unsafe { fd_of(w, WatcherKind::Udp)? };
        let req = read_request(buf, len, cb, userdata)?;
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, req, |_, shared| {
                Ok(Op::Recvmsg(Msg::recv_from(fd, shared.buffer(len))))
            })
        }
    })
}

/// Sends `buf` (`len` bytes, copied before this returns) as one datagram
/// to `to` (`tolen` bytes): `cb` gets the count sent or a negative error
/// code.
///
/// # Safety
///
/// As `xev_tcp_write`; `to` is null or points to `tolen` readable bytes.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub unsafe extern "C" fn xev_udp_write(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    buf: *const c_void,
    len: usize,
    to: *const sockaddr,
    tolen: usize,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract.
        let (fd, _) = unsafe { fd_of(w, WatcherKind::Udp)? };
        // SAFETY: forwarded contract.
        let to = unsafe { read_sockaddr(to, tolen)? };
        // SAFETY: forwarded contract.
        let (req, data) = unsafe { write_request(buf, len, cb, userdata)? };
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, req, |_, shared| {
                Ok(Op::Sendmsg(Msg::send_to(fd, shared.copy_of(data), to)))
            })
        }
    })
}

/// Closes the socket through the loop; see `xev_tcp_close`.
///
/// # Safety
///
/// As `xev_tcp_accept`.
#[no_mangle]
pub unsafe extern "C" fn xev_udp_close(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    // SAFETY: forwarded contract.
    guard_code(|| unsafe { close(w, WatcherKind::Udp, loop_, c, userdata, cb) })
}
