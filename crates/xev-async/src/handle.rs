//! Owned sockets, pipes and files whose drop closes them through the
//! runtime's loop (so that a readiness backend forgets the descriptor
//! first), or directly outside a runtime.

use xev::RawHandle;

use crate::runtime::try_current;

/// A socket or file as xev's operations name it.
pub(crate) trait Handle: Sized {
    /// The raw handle (still owned).
    fn raw(&self) -> RawHandle;
    /// Gives up ownership of the raw handle.
    fn into_raw(self) -> RawHandle;
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
impl Handle for socket2::Socket {
    fn raw(&self) -> RawHandle {
        #[cfg(any(unix, target_os = "wasi"))]
        return std::os::fd::AsRawFd::as_raw_fd(self);
        #[cfg(windows)]
        return std::os::windows::io::AsRawSocket::as_raw_socket(self) as RawHandle;
    }

    fn into_raw(self) -> RawHandle {
        #[cfg(any(unix, target_os = "wasi"))]
        return std::os::fd::IntoRawFd::into_raw_fd(self);
        #[cfg(windows)]
        return std::os::windows::io::IntoRawSocket::into_raw_socket(self) as RawHandle;
    }
}

impl Handle for std::fs::File {
    fn raw(&self) -> RawHandle {
        #[cfg(any(unix, target_os = "wasi"))]
        return std::os::fd::AsRawFd::as_raw_fd(self);
        #[cfg(windows)]
        return std::os::windows::io::AsRawHandle::as_raw_handle(self) as RawHandle;
    }

    fn into_raw(self) -> RawHandle {
        #[cfg(any(unix, target_os = "wasi"))]
        return std::os::fd::IntoRawFd::into_raw_fd(self);
        #[cfg(windows)]
        return std::os::windows::io::IntoRawHandle::into_raw_handle(self) as RawHandle;
    }
}

/// A handle that closes through the loop when dropped.
pub(crate) struct Owned<T: Handle>(Option<T>);

impl<T: Handle> Owned<T> {
    pub(crate) fn new(h: T) -> Owned<T> {
        Owned(Some(h))
    }

    pub(crate) fn get(&self) -> &T {
        // Only `Drop` and `into_inner` take it, consuming `self`.
        self.0.as_ref().expect("xev-async: handle used after drop")
    }

    /// The handle, out of the runtime's hands: the loop forgets it first
    /// (a readiness backend drops its registration). Fails (and closes
    /// the handle through the loop) from inside a loop callback.
    pub(crate) fn into_inner(mut self) -> std::io::Result<T> {
        if let Some(driver) = try_current() {
            driver.forget(self.get().raw())?;
        }
        Ok(self.0.take().expect("xev-async: handle used after drop"))
    }
}

impl<T: Handle> Drop for Owned<T> {
    fn drop(&mut self) {
        let Some(h) = self.0.take() else { return };
        if let Some(driver) = try_current() {
            // The close owns the handle from here on.
            driver.close(h.into_raw());
        }
    }
}
