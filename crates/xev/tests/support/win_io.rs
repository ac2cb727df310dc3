//! The test side's reads and writes of a Windows handle that is not a
//! socket (a pipe end), as non-blocking calls, for the test binaries that
//! need them (each includes this file with `#[path]`). A call that would
//! wait (an overlapped handle's call left pending, a `PIPE_NOWAIT` pipe's
//! call that moves nothing) is taken back (cancelled) and fails with
//! `WSAEWOULDBLOCK` (`ErrorKind::WouldBlock`); a synchronous handle's call
//! blocks, as on Unix. The calls' completions never reach the completion
//! port of a loop that uses the handle too.

use std::io;

use windows_sys::Win32::Foundation::{self as f, CloseHandle, GetLastError, HANDLE};
use windows_sys::Win32::Networking::WinSock::WSAEWOULDBLOCK;
use windows_sys::Win32::Storage::FileSystem::{ReadFile, WriteFile};
use windows_sys::Win32::System::Threading::CreateEventW;
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};

/// Writes `data` to `h`; returns the bytes written.
pub fn write(h: usize, data: &[u8]) -> io::Result<usize> {
    transfer(h, data.as_ptr().cast_mut(), data.len(), true)
}

/// Reads into `buf` from `h`; returns the bytes read, 0 at end of file or
/// once the pipe's writer is gone.
#[allow(dead_code)] // not every test binary reads
pub fn read(h: usize, buf: &mut [u8]) -> io::Result<usize> {
    transfer(h, buf.as_mut_ptr(), buf.len(), false)
}

/// Writes 4 KiB chunks to `h` until one would block; returns the bytes
/// written.
#[allow(dead_code)] // not every test binary fills a pipe
pub fn fill(h: usize) -> usize {
    let mut filled = 0;
    loop {
        match write(h, &[0x55; 4096]) {
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return filled,
            Err(e) => panic!("filling the pipe: {e}"),
        }
    }
}

/// One `ReadFile` or `WriteFile` of `len` bytes at `ptr` on `h` (see the
/// module documentation). The event handle's low bit keeps its completion
/// from the completion port `h` may be associated with.
fn transfer(h: usize, ptr: *mut u8, len: usize, write: bool) -> io::Result<usize> {
    let len = len.min(u32::MAX as usize) as u32;
    // SAFETY: all-null arguments ask for a new unnamed manual-reset event.
    let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
    if event.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: OVERLAPPED is plain data; all zero is its initial value.
    let mut ov: OVERLAPPED = unsafe { std::mem::zeroed() };
    ov.hEvent = (event as usize | 1) as HANDLE;
    let mut n = 0u32;
    // SAFETY: `ptr` is live for `len` bytes (the caller's slice) and `ov`
    // is a live local; both outlive the call, which is over (finished, or
    // cancelled and waited for) before they go.
    let err = unsafe {
        let ok = if write {
            WriteFile(h as HANDLE, ptr, len, std::ptr::null_mut(), &mut ov)
        } else {
            ReadFile(h as HANDLE, ptr, len, std::ptr::null_mut(), &mut ov)
        };
        let mut err = if ok != 0 { 0 } else { GetLastError() };
        if err == f::ERROR_IO_PENDING {
            // It would wait: take it back.
            CancelIoEx(h as HANDLE, &ov);
        }
        if ok != 0 || err == f::ERROR_IO_PENDING {
            err = if GetOverlappedResult(h as HANDLE, &ov, &mut n, 1) != 0 {
                0
            } else {
                GetLastError()
            };
        }
        CloseHandle(event);
        err
    };
    let would_block = || Err(io::Error::from_raw_os_error(WSAEWOULDBLOCK));
    match err {
        _ if n > 0 => Ok(n as usize),
        // A PIPE_NOWAIT pipe that is full takes nothing.
        0 if write && len > 0 => would_block(),
        0 => Ok(0),
        f::ERROR_OPERATION_ABORTED => would_block(),
        // A PIPE_NOWAIT pipe that is empty.
        f::ERROR_NO_DATA if !write => would_block(),
        f::ERROR_BROKEN_PIPE if !write => Ok(0),
        e => Err(io::Error::from_raw_os_error(e as i32)),
    }
}
