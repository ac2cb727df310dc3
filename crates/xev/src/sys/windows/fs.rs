//! The Windows parts of the filesystem operations that the thread pool
//! runs (`crate::fs::perform` does the rest with `std::fs`): files are
//! opened for overlapped I/O (as the File watcher needs); `openat` and
//! `fallocate` have no Windows counterpart here and answer `Unsupported`;
//! handles are duplicated for `std`.

use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::FromRawHandle;
use std::path::Path;

use windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OVERLAPPED;

use crate::error::UNSUPPORTED;
use crate::fs::{FileStat, FsPath, OpenFlags};
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

/// The error of a path the OS cannot take.
pub(crate) fn invalid() -> io::Error {
    io::Error::from_raw_os_error(INVALID_PARAMETER)
}

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "not supported on Windows")
}

/// A `File` of its own for the caller's handle `h`: a duplicate, so that
/// whatever `h` is (closed, not a file) nothing is assumed about it: a bad
/// one gives `ERROR_INVALID_HANDLE` here.
pub(crate) fn dup_file(h: RawHandle) -> io::Result<std::fs::File> {
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

/// Opens `path` for overlapped I/O; relative to a directory handle it is
/// `Unsupported`.
pub(crate) fn open(dir: Option<RawHandle>, p: &FsPath, flags: &OpenFlags) -> io::Result<std::fs::File> {
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
        .custom_flags(FILE_FLAG_OVERLAPPED)
        .open(p.path().ok_or_else(invalid)?)
}

/// Reserving space: `Unsupported` here.
pub(crate) fn allocate(_h: RawHandle, _offset: u64, _len: u64) -> io::Result<()> {
    Err(unsupported())
}

/// Creates the directory `path` (Windows has no mode bits to give).
pub(crate) fn mkdir(path: &Path, _mode: u32) -> io::Result<()> {
    std::fs::create_dir(path)
}

/// Creates the file symbolic link `link` to `target`.
pub(crate) fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

/// The [`FileStat`] of a `std::fs::Metadata` (Windows reports no inode,
/// device, link count or owner through it: those are 0).
pub(crate) fn from_metadata(m: &std::fs::Metadata) -> FileStat {
    crate::fs::portable_stat(m)
}
