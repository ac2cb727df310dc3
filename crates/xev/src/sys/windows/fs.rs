//! Filesystem operations on a pool thread ([`perform`]), with `std::fs`:
//! files are opened for overlapped I/O (as the File watcher needs);
//! `openat` and `fallocate` have no Windows counterpart here and answer
//! `Unsupported`.

use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::FromRawHandle;
use std::path::Path;

use windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OVERLAPPED;

use crate::error::UNSUPPORTED;
use crate::fs::{FileStat, FsOutput, FsPath, Req};
use crate::op::RawHandle;

/// `ERROR_INVALID_PARAMETER`.
const INVALID_PARAMETER: i32 = 87;

/// The negated error code of `e` (`Unsupported` for the operations
/// Windows lacks; invalid input for errors without a code).
pub(crate) fn error_code(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(c) => -c,
        None if e.kind() == io::ErrorKind::Unsupported => UNSUPPORTED,
        None => -INVALID_PARAMETER,
    }
}

fn path(p: &FsPath) -> io::Result<&Path> {
    p.path()
        .ok_or_else(|| io::Error::from_raw_os_error(INVALID_PARAMETER))
}

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "not supported on Windows")
}

/// A `File` of its own for the caller's handle `h`: a duplicate, so that
/// whatever `h` is (closed, not a file) nothing is assumed about it: a bad
/// one gives `ERROR_INVALID_HANDLE` here.
fn dup_file(h: RawHandle) -> io::Result<std::fs::File> {
    use windows_sys::Win32::Foundation::{DuplicateHandle, DUPLICATE_SAME_ACCESS, HANDLE};
    use windows_sys::Win32::System::Threading::GetCurrentProcess;
    // Negative values are pseudo-handles (the current process or thread)
    // or INVALID_HANDLE_VALUE, never a file.
    if (h as isize) < 0 {
        return Err(io::Error::from_raw_os_error(crate::sys::BAD_HANDLE_CODE));
    }
    let mut dup: HANDLE = std::ptr::null_mut();
    // SAFETY: plain handle values; `dup` is valid for the write.
    let ok = unsafe {
        DuplicateHandle(
            GetCurrentProcess(),
            h as HANDLE,
            GetCurrentProcess(),
            &mut dup,
            0,
            0,
            DUPLICATE_SAME_ACCESS,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a new handle that only this File owns.
    Ok(unsafe { std::fs::File::from_raw_handle(dup as _) })
}

/// Performs `req` (blocking).
pub(crate) fn perform(req: &Req) -> io::Result<FsOutput> {
    Ok(match req {
        Req::Open { dir: Some(_), .. } => return Err(unsupported()),
        Req::Open {
            dir: None,
            path: p,
            flags,
        } => {
            let f = std::fs::OpenOptions::new()
                .read(flags.read)
                .write(flags.write)
                .append(flags.append)
                .truncate(flags.truncate)
                .create(flags.create)
                .create_new(flags.create_new)
                .custom_flags(FILE_FLAG_OVERLAPPED)
                .open(path(p)?)?;
            FsOutput::Opened(f)
        }
        Req::Stat { path: p, follow } => {
            let m = if *follow {
                std::fs::metadata(path(p)?)?
            } else {
                std::fs::symlink_metadata(path(p)?)?
            };
            FsOutput::Stat(from_metadata(&m))
        }
        Req::Fstat { fd } => FsOutput::Stat(from_metadata(&dup_file(*fd)?.metadata()?)),
        Req::Sync { fd, data_only } => {
            let f = dup_file(*fd)?;
            if *data_only {
                f.sync_data()?
            } else {
                f.sync_all()?
            }
            FsOutput::Done
        }
        Req::Truncate { fd, len } => {
            dup_file(*fd)?.set_len(*len)?;
            FsOutput::Done
        }
        Req::Allocate { .. } => return Err(unsupported()),
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
        Req::Symlink { target, link } => {
            std::os::windows::fs::symlink_file(path(target)?, path(link)?)?;
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

/// The [`FileStat`] of a `std::fs::Metadata` (Windows reports no inode,
/// device, link count or owner through it: those are 0).
pub(crate) fn from_metadata(m: &std::fs::Metadata) -> FileStat {
    crate::fs::portable_stat(m)
}
