//! The completion port of a loop on Windows and its waker: the port the
//! IOCP backend waits on, and the packets other threads post to wake it.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle as OwnedPort};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_INVALID_PARAMETER, HANDLE, INVALID_HANDLE_VALUE, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::IO::{
    CreateIoCompletionPort, GetQueuedCompletionStatus, GetQueuedCompletionStatusEx,
    PostQueuedCompletionStatus, OVERLAPPED, OVERLAPPED_ENTRY,
};

use super::types::RawHandle;

/// The completion key of the waker's packets (I/O packets carry key 0).
pub(crate) const WAKE_KEY: usize = 1;

/// A completion port, shared by the backend that waits on it and the
/// waker that posts to it (closed when both are gone).
#[derive(Debug)]
pub(crate) struct Port(OwnedPort);

impl Port {
    /// A new completion port for one waiting thread.
    pub(crate) fn new() -> io::Result<Arc<Port>> {
        // SAFETY: creates a new port; no handle or pointer is passed.
        let h = unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 1) };
        if h.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `h` is a new handle that nothing else owns.
        Ok(Arc::new(Port(unsafe { OwnedPort::from_raw_handle(h) })))
    }

    pub(crate) fn handle(&self) -> HANDLE {
        self.0.as_raw_handle()
    }

    /// Associates `h` with the port (key 0), so that its overlapped
    /// operations post their packets here. Answers whether this call made
    /// the association (`true`), or the handle was associated already
    /// (`false`: the kernel refuses a second association with
    /// `ERROR_INVALID_PARAMETER`; a handle belongs to one port for its
    /// whole life).
    pub(crate) fn associate(&self, h: RawHandle) -> Result<bool, i32> {
        // SAFETY: `h` is an integer the kernel checks; the port is live.
        let r = unsafe { CreateIoCompletionPort(h as HANDLE, self.handle(), 0, 0) };
        if r.is_null() {
            // SAFETY: reads the calling thread's last-error value.
            let e = -(unsafe { GetLastError() } as i32);
            if e != -(ERROR_INVALID_PARAMETER as i32) {
                return Err(e);
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// Waits up to `timeout` (`None`: forever) for packets, filling
    /// `entries`; returns how many arrived (0 on timeout).
    pub(crate) fn wait(
        &self,
        entries: &mut [OVERLAPPED_ENTRY],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let ms = match timeout {
            None => u32::MAX, // INFINITE
            // Round up, so that a timer is never woken for early.
            Some(t) => u32::try_from(t.as_nanos().div_ceil(1_000_000))
                .unwrap_or(u32::MAX - 1),
        };
        let mut n = 0u32;
        // SAFETY: `entries` is live writable memory for `entries.len()`
        // entries; `n` is a live local.
        let ok = unsafe {
            GetQueuedCompletionStatusEx(
                self.handle(),
                entries.as_mut_ptr(),
                entries.len() as u32,
                &mut n,
                ms,
                0,
            )
        };
        if ok == 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(WAIT_TIMEOUT as i32) {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    /// Posts a packet with `key` and no `OVERLAPPED`, or with `ov` (then
    /// it completes that operation with `bytes`).
    pub(crate) fn post(&self, key: usize, bytes: u32, ov: *mut OVERLAPPED) -> io::Result<()> {
        // SAFETY: the port is live; `ov` is null or an OVERLAPPED that
        // stays live until its packet is dequeued (the caller's part).
        if unsafe { PostQueuedCompletionStatus(self.handle(), bytes, key, ov) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The waker of a loop on Windows: a packet with `WAKE_KEY` posted to the
/// loop's completion port. Signals before a drain count as one (one packet
/// in the port at a time).
#[derive(Debug)]
pub struct Waker {
    port: Arc<Port>,
    posted: AtomicBool,
}

impl Waker {
    /// A waker posting to `port`.
    pub(crate) fn for_port(port: Arc<Port>) -> Waker {
        Waker {
            port,
            posted: AtomicBool::new(false),
        }
    }

    /// Signals: posts a wake packet unless one is already pending.
    pub(crate) fn signal(&self) -> io::Result<()> {
        if !self.posted.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.port.post(WAKE_KEY, 0, std::ptr::null_mut()) {
                self.posted.store(false, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Resets to "not signaled" (the backend took the packet).
    pub(crate) fn drain(&self) {
        self.posted.store(false, Ordering::Release);
    }

    /// Blocks until a wake packet arrives, then resets (used only when a
    /// loop is dropped while thread-pool tasks are still running; the
    /// backend holds no operation then, so only wake packets arrive).
    pub(crate) fn wait(&self) {
        let (mut bytes, mut key, mut ov) = (0u32, 0usize, std::ptr::null_mut());
        loop {
            // SAFETY: the out-pointers are live locals; the port is live.
            let ok = unsafe {
                GetQueuedCompletionStatus(self.port.handle(), &mut bytes, &mut key, &mut ov, u32::MAX)
            };
            if (ok != 0 && key == WAKE_KEY) || (ok == 0 && ov.is_null()) {
                break;
            }
        }
        self.drain();
    }
}

