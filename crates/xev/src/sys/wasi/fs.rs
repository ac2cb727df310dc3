//! The WASI parts of the filesystem operations (`crate::fs::perform` does
//! the rest with `std::fs`), run inline by the WASI backend (no threads, so
//! no pool). Paths resolve against the
//! directories the runtime preopened (`wasmtime run --dir`). What WASI or
//! its stable `std` lacks answers `Unsupported`: `openat` relative to a
//! caller's directory descriptor, `fallocate`, and symbolic links.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::path::Path;

use crate::error::UNSUPPORTED;
use crate::fs::{portable_stat, FsPath, OpenFlags};

/// The negated error code of `e` (`Unsupported` for what WASI lacks;
/// `EINVAL` for errors without a code).
pub(crate) fn error_code(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(c) => -c,
        None if e.kind() == io::ErrorKind::Unsupported => UNSUPPORTED,
        None => -libc::EINVAL,
    }
}

/// The error of a path WASI cannot take.
pub(crate) fn invalid() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

fn path(p: &FsPath) -> io::Result<&Path> {
    p.path().ok_or_else(invalid)
}

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "not supported on WASI")
}

/// The caller's descriptor `fd` as a `File` that never closes it (WASI
/// cannot duplicate descriptors). Nothing else is assumed about `fd`: a
/// closed one fails the call made on it with `EBADF`.
fn borrow_file(fd: RawFd) -> io::Result<ManuallyDrop<std::fs::File>> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the File is never dropped (ManuallyDrop), so it never closes
    // `fd`; calls on a descriptor that is not open fail with EBADF.
    Ok(ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) }))
}

/// The caller's descriptor `fd` for a call through `std` (named as on the
/// other systems, which duplicate it; WASI cannot, so it is borrowed).
pub(crate) fn dup_file(fd: RawFd) -> io::Result<ManuallyDrop<std::fs::File>> {
    borrow_file(fd)
}

/// Opens `p` (relative to the preopened directories; `openat` relative to
/// a caller's directory is `Unsupported`).
pub(crate) fn open(dir: Option<RawFd>, p: &FsPath, flags: &OpenFlags) -> io::Result<std::fs::File> {
    if dir.is_some() {
        return Err(unsupported());
    }
    std::fs::OpenOptions::new()
        .read(flags.read)
        .write(flags.write)
        .append(flags.append)
        .truncate(flags.truncate)
        .create(flags.create)
        .create_new(flags.create_new)
        .open(path(p)?)
}

/// `mkdir` (WASI has no permission bits: `mode` is ignored).
pub(crate) fn mkdir(path: &Path, _mode: u32) -> io::Result<()> {
    std::fs::create_dir(path)
}

/// Symbolic links: `Unsupported` (stable `std` has no symlink call on WASI).
pub(crate) fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(unsupported())
}

/// `fallocate`: `Unsupported` (WASI has no such call).
pub(crate) fn allocate(_fd: RawFd, _offset: u64, _len: u64) -> io::Result<()> {
    Err(unsupported())
}

/// The [`FileStat`](crate::fs::FileStat) of `m` (what WASI's metadata tells).
pub(crate) fn from_metadata(m: &std::fs::Metadata) -> crate::fs::FileStat {
    portable_stat(m)
}
