//! The Unix parts of the filesystem operations that the thread pool runs
//! (`crate::fs::perform` does the rest with `std::fs`): `openat`,
//! `fallocate`, descriptors duplicated for `std`, `mkdir` with a mode,
//! symbolic links, and the metadata conversions from `std::fs::Metadata`
//! (pool) and from `statx` (io_uring's native stat).

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
#[cfg(target_os = "linux")]
use std::time::{Duration, UNIX_EPOCH};

#[cfg(target_os = "linux")]
use crate::fs::FileKind;
use crate::fs::{kind_of, FileStat, FsPath, OpenFlags};

/// The negated error code of `e` (`EINVAL` for errors without one, such as
/// a path holding a NUL byte).
pub(crate) fn error_code(e: &io::Error) -> i32 {
    -e.raw_os_error().unwrap_or(libc::EINVAL)
}

/// The error of a path the OS cannot take (it holds a NUL byte).
pub(crate) fn invalid() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// `open(2)` flags for `f` (always close-on-exec), or `EINVAL` when it
/// asks for neither reading nor writing.
pub(crate) fn open_flags(f: &OpenFlags) -> io::Result<libc::c_int> {
    let write = f.write || f.append;
    let mut flags = match (f.read, write) {
        (true, false) => libc::O_RDONLY,
        (false, true) => libc::O_WRONLY,
        (true, true) => libc::O_RDWR,
        (false, false) => return Err(invalid()),
    } | libc::O_CLOEXEC;
    if f.append {
        flags |= libc::O_APPEND;
    }
    if f.create_new {
        flags |= libc::O_CREAT | libc::O_EXCL;
    } else {
        if f.create {
            flags |= libc::O_CREAT;
        }
        if f.truncate {
            flags |= libc::O_TRUNC;
        }
    }
    Ok(flags)
}

/// A `File` of its own for the caller's descriptor `fd`: a duplicate, so
/// that whatever `fd` is (closed, negative, not a file) nothing is assumed
/// about it: a bad one gives `EBADF` here.
pub(crate) fn dup_file(fd: RawFd) -> io::Result<std::fs::File> {
    let dup = syscall!(fcntl(fd, libc::F_DUPFD_CLOEXEC, 0))?;
    // SAFETY: `dup` is a new descriptor that only this File owns.
    Ok(unsafe { std::fs::File::from_raw_fd(dup) })
}

/// Opens `path` (relative to `dir` when given: `openat`).
pub(crate) fn open(dir: Option<RawFd>, p: &FsPath, flags: &OpenFlags) -> io::Result<std::fs::File> {
    let c = p.c.as_ref().ok_or_else(invalid)?;
    let fd = syscall!(openat(
        dir.unwrap_or(libc::AT_FDCWD),
        c.as_ptr(),
        open_flags(flags)?,
        flags.mode as libc::c_uint
    ))?;
    // SAFETY: openat returned a new descriptor nobody else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Creates the directory `path` with permission bits `mode`.
pub(crate) fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::DirBuilder::new().mode(mode).create(path)
}

/// Creates the symbolic link `link` to `target`.
pub(crate) fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Reserves `len` bytes from `offset`.
pub(crate) fn allocate(fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(invalid());
    };
    #[cfg(target_os = "linux")]
    {
        syscall!(fallocate(fd, 0, off, len)).map(drop)
    }
    #[cfg(target_os = "freebsd")]
    {
        // posix_fallocate returns the error instead of setting errno.
        // SAFETY: plain integer arguments.
        match unsafe { libc::posix_fallocate(fd, off, len) } {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        let _ = (fd, off, len);
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }
}

#[cfg(target_os = "linux")]
fn kind_of_mode(mode: u32) -> FileKind {
    match mode & libc::S_IFMT {
        libc::S_IFREG => FileKind::File,
        libc::S_IFDIR => FileKind::Dir,
        libc::S_IFLNK => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

/// The [`FileStat`] of a `std::fs::Metadata`.
pub(crate) fn from_metadata(m: &std::fs::Metadata) -> FileStat {
    FileStat {
        kind: kind_of(m.file_type()),
        size: m.len(),
        mode: m.mode() & 0o7777,
        readonly: m.permissions().readonly(),
        modified: m.modified().ok(),
        accessed: m.accessed().ok(),
        created: m.created().ok(),
        nlink: m.nlink(),
        ino: m.ino(),
        dev: m.dev(),
        uid: m.uid(),
        gid: m.gid(),
    }
}

/// The [`FileStat`] of a `statx` result.
#[cfg(target_os = "linux")]
pub(crate) fn from_statx(s: &libc::statx) -> FileStat {
    let time = |t: &libc::statx_timestamp| {
        let d = Duration::new(t.tv_sec.unsigned_abs(), t.tv_nsec);
        Some(if t.tv_sec >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
        })
    };
    let mode = u32::from(s.stx_mode);
    FileStat {
        kind: kind_of_mode(mode),
        size: s.stx_size,
        mode: mode & 0o7777,
        readonly: mode & 0o222 == 0,
        modified: time(&s.stx_mtime),
        accessed: time(&s.stx_atime),
        created: if s.stx_mask & libc::STATX_BTIME != 0 {
            time(&s.stx_btime)
        } else {
            None
        },
        nlink: u64::from(s.stx_nlink),
        ino: s.stx_ino,
        dev: libc::makedev(s.stx_dev_major, s.stx_dev_minor),
        uid: s.stx_uid,
        gid: s.stx_gid,
    }
}
