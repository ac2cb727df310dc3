//! Streams (`xev_stream_*`: pipes, ttys, any descriptor) and files
//! (`xev_file_*`: reads and writes at an offset) beyond libxev's C API.
//!
//! Both hold the caller's descriptor, whose mode is left as it is (xev
//! waits on blocking descriptors without blocking the loop). File reads
//! and writes run in the kernel on io_uring and on the loop's thread pool
//! on epoll and kqueue (`xev_loop_init` gives every loop one).

use std::ffi::{c_int, c_void};
use std::ptr;

use xev::Op;

use crate::boundary::{guard_code, guard_void};
use crate::completion::start_op;
use crate::net::{close, fd_of, read_request, write_request};
use crate::sys::is_valid;
use crate::types::{xev_cb, xev_completion, xev_fd, xev_loop, xev_watcher};
use crate::watchers::{forget, init_watcher, watcher, WatcherKind};

/// Initialises a watcher of `kind` on `fd`.
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage.
unsafe fn init_fd(w: *mut xev_watcher, kind: WatcherKind, fd: xev_fd) -> Result<c_int, c_int> {
    if !is_valid(fd) {
        return Err(-libc::EBADF);
    }
    // SAFETY: forwarded contract.
    unsafe { init_watcher(w, kind, fd, None, ptr::null_mut())? };
    Ok(0)
}

/// Initialises a stream watcher on `fd` (a pipe, a tty, a socket, any
/// descriptor), which stays the caller's until `xev_stream_close`.
/// Returns 0, or `-EBADF` for a negative `fd`, `-EINVAL` for bad storage.
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_stream_init(w: *mut xev_watcher, fd: xev_fd) -> c_int {
    // SAFETY: forwarded contract.
    guard_code(|| unsafe { init_fd(w, WatcherKind::Stream, fd) })
}

/// Forgets a stream watcher without closing its descriptor.
///
/// # Safety
///
/// `w` is null or points to readable and writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_stream_deinit(w: *mut xev_watcher) {
    guard_void("xev_stream_deinit", || {
        // SAFETY: forwarded contract.
        unsafe { forget(watcher(w, WatcherKind::Stream)?) };
        Ok(())
    })
}

/// Reads into `buf` (up to `len` bytes): `cb` gets the count, `XEV_EOF`
/// at end of file (a pipe whose writers are gone), or a negative error
/// code; as `xev_tcp_read`.
///
/// # Safety
///
/// As `xev_tcp_read`.
#[no_mangle]
pub unsafe extern "C" fn xev_stream_read(
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
        let (fd, _) = unsafe { fd_of(w, WatcherKind::Stream)? };
        let req = read_request(buf, len, cb, userdata)?;
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, req, |_, shared| {
                Ok(Op::Read {
                    fd,
                    buf: shared.buffer(len).into(),
                })
            })
        }
    })
}

/// Writes `buf` (`len` bytes, copied before this returns): `cb` gets the
/// count written or a negative error code (`-EPIPE` when the reader is
/// gone; ignore or block `SIGPIPE` for pipes, as with `write(2)`).
///
/// # Safety
///
/// As `xev_tcp_write`.
#[no_mangle]
pub unsafe extern "C" fn xev_stream_write(
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
        let (fd, _) = unsafe { fd_of(w, WatcherKind::Stream)? };
        // SAFETY: forwarded contract.
        let (req, data) = unsafe { write_request(buf, len, cb, userdata)? };
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, req, |_, shared| {
                Ok(Op::Write {
                    fd,
                    buf: shared.copy_of(data).into(),
                })
            })
        }
    })
}

/// Closes the descriptor through the loop; see `xev_tcp_close`.
///
/// # Safety
///
/// As `xev_tcp_accept`.
#[no_mangle]
pub unsafe extern "C" fn xev_stream_close(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    // SAFETY: forwarded contract.
    guard_code(|| unsafe { close(w, WatcherKind::Stream, loop_, c, userdata, cb) })
}

/// Initialises a file watcher on `fd` (an open file), which stays the
/// caller's until `xev_file_close`.
///
/// # Safety
///
/// `w` is null or points to writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_file_init(w: *mut xev_watcher, fd: xev_fd) -> c_int {
    // SAFETY: forwarded contract.
    guard_code(|| unsafe { init_fd(w, WatcherKind::File, fd) })
}

/// Forgets a file watcher without closing its descriptor.
///
/// # Safety
///
/// `w` is null or points to readable and writable `xev_watcher` storage.
#[no_mangle]
pub unsafe extern "C" fn xev_file_deinit(w: *mut xev_watcher) {
    guard_void("xev_file_deinit", || {
        // SAFETY: forwarded contract.
        unsafe { forget(watcher(w, WatcherKind::File)?) };
        Ok(())
    })
}

/// Reads up to `len` bytes at `offset` into `buf`: `cb` gets the count,
/// `XEV_EOF` at or past the end of the file, or a negative error code
/// (`XEV_ENOTHREADPOOL` cannot happen with a loop from `xev_loop_init`).
///
/// # Safety
///
/// As `xev_tcp_read`.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub unsafe extern "C" fn xev_file_pread(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    buf: *mut c_void,
    len: usize,
    offset: u64,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract.
        let (fd, _) = unsafe { fd_of(w, WatcherKind::File)? };
        let req = read_request(buf, len, cb, userdata)?;
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, req, |_, shared| {
                Ok(Op::Pread {
                    fd,
                    buf: shared.buffer(len).into(),
                    offset,
                })
            })
        }
    })
}

/// Writes `buf` (`len` bytes, copied before this returns) at `offset`:
/// `cb` gets the count written or a negative error code.
///
/// # Safety
///
/// As `xev_tcp_write`.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub unsafe extern "C" fn xev_file_pwrite(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    buf: *const c_void,
    len: usize,
    offset: u64,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    guard_code(|| {
        // SAFETY: forwarded contract.
        let (fd, _) = unsafe { fd_of(w, WatcherKind::File)? };
        // SAFETY: forwarded contract.
        let (req, data) = unsafe { write_request(buf, len, cb, userdata)? };
        // SAFETY: forwarded contract.
        unsafe {
            start_op(loop_, c, req, |_, shared| {
                Ok(Op::Pwrite {
                    fd,
                    buf: shared.copy_of(data).into(),
                    offset,
                })
            })
        }
    })
}

/// Closes the file through the loop; see `xev_tcp_close`.
///
/// # Safety
///
/// As `xev_tcp_accept`.
#[no_mangle]
pub unsafe extern "C" fn xev_file_close(
    w: *mut xev_watcher,
    loop_: *mut xev_loop,
    c: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    // SAFETY: forwarded contract.
    guard_code(|| unsafe { close(w, WatcherKind::File, loop_, c, userdata, cb) })
}
