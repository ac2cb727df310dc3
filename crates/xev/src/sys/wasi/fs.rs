//! Filesystem operations on WASI ([`perform`]), with `std::fs`, run inline
//! by the WASI backend (no threads, so no pool). Paths resolve against the
//! directories the runtime preopened (`wasmtime run --dir`). What WASI or
//! its stable `std` lacks answers `Unsupported`: `openat` relative to a
//! caller's directory descriptor, `fallocate`, and symbolic links.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::path::Path;

use crate::error::UNSUPPORTED;
use crate::fs::{portable_stat, FsOutput, FsPath, Req};

/// The negated error code of `e` (`Unsupported` for what WASI lacks;
/// `EINVAL` for errors without a code).
pub(crate) fn error_code(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(c) => -c,
        None if e.kind() == io::ErrorKind::Unsupported => UNSUPPORTED,
        None => -libc::EINVAL,
    }
}

fn path(p: &FsPath) -> io::Result<&Path> {
    p.path()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
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

/// Performs `req` (blocking; files on WASI never wait).
pub(crate) fn perform(req: &Req) -> io::Result<FsOutput> {
    Ok(match req {
        Req::Open { dir: Some(_), .. } => return Err(unsupported()),
        Req::Open {
            dir: None,
            path: p,
            flags,
        } => FsOutput::Opened(
            std::fs::OpenOptions::new()
                .read(flags.read)
                .write(flags.write)
                .append(flags.append)
                .truncate(flags.truncate)
                .create(flags.create)
                .create_new(flags.create_new)
                .open(path(p)?)?,
        ),
        Req::Stat { path: p, follow } => {
            let m = if *follow {
                std::fs::metadata(path(p)?)?
            } else {
                std::fs::symlink_metadata(path(p)?)?
            };
            FsOutput::Stat(portable_stat(&m))
        }
        Req::Fstat { fd } => FsOutput::Stat(portable_stat(&borrow_file(*fd)?.metadata()?)),
        Req::Sync { fd, data_only } => {
            let f = borrow_file(*fd)?;
            if *data_only {
                f.sync_data()?
            } else {
                f.sync_all()?
            }
            FsOutput::Done
        }
        Req::Truncate { fd, len } => {
            borrow_file(*fd)?.set_len(*len)?;
            FsOutput::Done
        }
        Req::Allocate { .. } | Req::Symlink { .. } => return Err(unsupported()),
        Req::Rename { from, to } => {
            std::fs::rename(path(from)?, path(to)?)?;
            FsOutput::Done
        }
        Req::Unlink { path: p } => {
            std::fs::remove_file(path(p)?)?;
            FsOutput::Done
        }
        Req::Mkdir { path: p, .. } => {
            std::fs::create_dir(path(p)?)?;
            FsOutput::Done
        }
        Req::Rmdir { path: p } => {
            std::fs::remove_dir(path(p)?)?;
            FsOutput::Done
        }
        Req::Link { from, to } => {
            std::fs::hard_link(path(from)?, path(to)?)?;
            FsOutput::Done
        }
        Req::ReadLink { path: p } => FsOutput::Target(std::fs::read_link(path(p)?)?),
        Req::ReadDir { path: p } => FsOutput::Entries(crate::fs::read_dir(path(p)?)?),
    })
}
