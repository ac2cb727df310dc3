//! Preparing a descriptor before the stream or TCP watcher wraps it:
//! making it non-blocking and telling sockets from other descriptors.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
#[cfg(unix)]
use std::os::unix::fs::FileTypeExt;

/// Sets `O_NONBLOCK` on `fd`'s open file description.
pub(super) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    crate::sys::set_nonblocking(fd.as_raw_fd())
}

/// Whether `fd` is a socket (`fstat`), handing the descriptor back.
#[cfg(target_os = "wasi")]
pub(super) fn is_socket(fd: OwnedFd) -> io::Result<(OwnedFd, bool)> {
    let socket = crate::sys::wasi::is_socket(fd.as_raw_fd())?;
    Ok((fd, socket))
}

/// Whether `fd` is a socket (`fstat`), handing the descriptor back.
#[cfg(unix)]
pub(super) fn is_socket(fd: OwnedFd) -> io::Result<(OwnedFd, bool)> {
    let file = std::fs::File::from(fd);
    let socket = file.metadata().map(|m| m.file_type().is_socket());
    let fd = OwnedFd::from(file);
    Ok((fd, socket?))
}
