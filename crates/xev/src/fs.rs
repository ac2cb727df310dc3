//! Filesystem operations: [`Fs`], the operation behind
//! [`Op::Fs`](crate::Op::Fs): open (relative to a directory or not), stat,
//! fstat, fsync, fdatasync, ftruncate, fallocate, rename, unlink, mkdir,
//! rmdir, symlink, link, readlink and reading a directory.
//!
//! Where they run: io_uring performs open, stat, fstat, fsync, fdatasync,
//! fallocate, rename, unlink, mkdir, rmdir, symlink and link in the kernel
//! when the kernel has the opcode (the backend probes once per loop) and
//! hands everything else to the thread pool; epoll, kqueue and IOCP run
//! them all on the thread pool (a loop without one answers
//! [`FsError::NoThreadPool`]). The pool performs them with the standard
//! library's `std::fs` where it has the call, so behaviour and errors are
//! the platform's own. Paths are converted once, when the operation is
//! built, so repeating an operation (rearming it) allocates nothing except
//! what its result needs (a link target, directory entries).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{FsError, NO_THREAD_POOL};
use crate::op::RawHandle;

/// How [`Fs::open`] opens a file: the same choices as
/// `std::fs::OpenOptions`. At least one of `read`, `write` or `append`
/// must be set. The descriptor is always close-on-exec (on Windows, opened
/// for overlapped I/O, as the [`File`](crate::watcher::File) watcher needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFlags {
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// Every write goes to the end of the file (implies `write`).
    pub append: bool,
    /// Truncate the file to 0 bytes (needs `write`).
    pub truncate: bool,
    /// Create the file if it does not exist.
    pub create: bool,
    /// Create the file, failing with [`FsError::AlreadyExists`] if it
    /// exists (overrides `create` and `truncate`).
    pub create_new: bool,
    /// Permission bits of a created file, before the umask (Unix; ignored
    /// on Windows).
    pub mode: u32,
}

impl OpenFlags {
    /// Read only.
    pub const READ: OpenFlags = OpenFlags {
        read: true,
        write: false,
        append: false,
        truncate: false,
        create: false,
        create_new: false,
        mode: 0o666,
    };
    /// Write, creating the file if needed and truncating it.
    pub const CREATE: OpenFlags = OpenFlags {
        write: true,
        truncate: true,
        create: true,
        ..OpenFlags::READ_NONE
    };
    /// Append, creating the file if needed.
    pub const APPEND: OpenFlags = OpenFlags {
        append: true,
        create: true,
        ..OpenFlags::READ_NONE
    };
    const READ_NONE: OpenFlags = OpenFlags {
        read: false,
        ..OpenFlags::READ
    };
}

/// What kind of file a [`FileStat`] or [`DirEntry`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only from [`Fs::lstat`] or a directory listing).
    Symlink,
    /// Anything else (a device, a FIFO, a socket...).
    Other,
}

/// A file's metadata, from [`Fs::stat`], [`Fs::lstat`] or [`Fs::fstat`].
/// Fields the platform does not report are 0 (Windows reports no inode,
/// device, link count, user or group here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileStat {
    /// The kind of file.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`0o7777` mask; on Windows `0o444` or `0o666`).
    pub mode: u32,
    /// Whether the file is read-only for everyone (no write bit set).
    pub readonly: bool,
    /// Last modification.
    pub modified: Option<SystemTime>,
    /// Last access.
    pub accessed: Option<SystemTime>,
    /// Creation, where the file system records it.
    pub created: Option<SystemTime>,
    /// Number of hard links.
    pub nlink: u64,
    /// Inode number.
    pub ino: u64,
    /// Device the file lives on.
    pub dev: u64,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
}

/// One entry of a directory read with [`Fs::read_dir`] (`.` and `..` are
/// left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's file name.
    pub name: OsString,
    /// Its kind, when the file system says without a further `stat`.
    pub kind: Option<FileKind>,
}

/// What a finished filesystem operation produced.
#[derive(Debug)]
#[non_exhaustive]
pub enum FsOutput {
    /// The operation has no value (fsync, rename, mkdir...).
    Done,
    /// [`Fs::open`]: the open file (close-on-exec; on Windows opened for
    /// overlapped I/O). [`File::from_std`](crate::watcher::File) and the
    /// loop's operations take it from here.
    Opened(std::fs::File),
    /// [`Fs::stat`], [`Fs::lstat`], [`Fs::fstat`].
    Stat(FileStat),
    /// [`Fs::readlink`]: the link's target.
    Target(PathBuf),
    /// [`Fs::read_dir`]: the entries, in the order the file system gave.
    Entries(Vec<DirEntry>),
}

/// A path converted for the OS once, when the operation is built: a
/// NUL-terminated string on Unix (`None` when the path holds a NUL byte,
/// which the operation reports as invalid input).
pub(crate) struct FsPath {
    #[cfg(unix)]
    pub(crate) c: Option<std::ffi::CString>,
    #[cfg(not(unix))]
    pub(crate) p: PathBuf,
}

impl FsPath {
    fn new(p: &Path) -> FsPath {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            FsPath {
                c: std::ffi::CString::new(p.as_os_str().as_bytes()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            FsPath { p: p.to_path_buf() }
        }
    }

    /// The path, or `None` when it cannot be given to the OS.
    pub(crate) fn path(&self) -> Option<&Path> {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            self.c
                .as_ref()
                .map(|c| Path::new(std::ffi::OsStr::from_bytes(c.as_bytes())))
        }
        #[cfg(not(unix))]
        {
            Some(&self.p)
        }
    }
}

impl fmt::Debug for FsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.path(), f)
    }
}

/// The request of an [`Fs`] operation.
#[derive(Debug)]
pub(crate) enum Req {
    Open {
        dir: Option<RawHandle>,
        path: FsPath,
        flags: OpenFlags,
    },
    Stat {
        path: FsPath,
        follow: bool,
    },
    Fstat {
        fd: RawHandle,
    },
    Sync {
        fd: RawHandle,
        data_only: bool,
    },
    Truncate {
        fd: RawHandle,
        len: u64,
    },
    Allocate {
        fd: RawHandle,
        #[cfg_attr(target_os = "wasi", allow(dead_code))]
        offset: u64,
        #[cfg_attr(target_os = "wasi", allow(dead_code))]
        len: u64,
    },
    Rename {
        from: FsPath,
        to: FsPath,
    },
    Unlink {
        path: FsPath,
    },
    Mkdir {
        path: FsPath,
        #[cfg_attr(target_os = "wasi", allow(dead_code))]
        mode: u32,
    },
    Rmdir {
        path: FsPath,
    },
    #[cfg_attr(target_os = "wasi", allow(dead_code))]
    Symlink {
        target: FsPath,
        link: FsPath,
    },
    Link {
        from: FsPath,
        to: FsPath,
    },
    ReadLink {
        path: FsPath,
    },
    ReadDir {
        path: FsPath,
    },
}

/// A filesystem operation. Build it with one of the constructors and add
/// it as [`Op::Fs`](crate::Op::Fs); the callback gets
/// [`OpResult::Fs`](crate::OpResult::Fs). See the module docs for where
/// each runs. The [`File`](crate::watcher::File) watcher has methods for
/// the ones that act on a descriptor.
pub struct Fs {
    pub(crate) req: Req,
    /// What the thread pool produced (the io_uring path leaves it empty
    /// and the result is read from the raw result or `statx`).
    pub(crate) out: Option<FsOutput>,
    /// `statx`'s output buffer for io_uring's native stat.
    #[cfg(target_os = "linux")]
    pub(crate) statx: libc::statx,
}

impl Fs {
    fn boxed(req: Req) -> Box<Fs> {
        Box::new(Fs {
            req,
            out: None,
            // SAFETY: `statx` is plain integers; all-zero is a valid value.
            #[cfg(target_os = "linux")]
            statx: unsafe { std::mem::zeroed() },
        })
    }

    /// Opens `path` (relative to the current directory). On Windows the
    /// file is opened for overlapped I/O: use it through the loop
    /// (pread/pwrite, the [`File`](crate::watcher::File) watcher), as
    /// `std`'s own synchronous reads and writes refuse such a handle.
    pub fn open(path: impl AsRef<Path>, flags: OpenFlags) -> Box<Fs> {
        Fs::boxed(Req::Open {
            dir: None,
            path: FsPath::new(path.as_ref()),
            flags,
        })
    }

    /// Opens `path` relative to the directory `dir` (`openat`; an absolute
    /// `path` ignores `dir`). Unix only: on Windows it completes with
    /// [`FsError::Unsupported`].
    pub fn open_at(dir: RawHandle, path: impl AsRef<Path>, flags: OpenFlags) -> Box<Fs> {
        Fs::boxed(Req::Open {
            dir: Some(dir),
            path: FsPath::new(path.as_ref()),
            flags,
        })
    }

    /// The metadata of `path`, following symbolic links.
    pub fn stat(path: impl AsRef<Path>) -> Box<Fs> {
        Fs::boxed(Req::Stat {
            path: FsPath::new(path.as_ref()),
            follow: true,
        })
    }

    /// The metadata of `path` itself, not following a symbolic link.
    pub fn lstat(path: impl AsRef<Path>) -> Box<Fs> {
        Fs::boxed(Req::Stat {
            path: FsPath::new(path.as_ref()),
            follow: false,
        })
    }

    /// The metadata of an open file.
    pub fn fstat(fd: RawHandle) -> Box<Fs> {
        Fs::boxed(Req::Fstat { fd })
    }

    /// Flushes the file's data and metadata to the device (`fsync`).
    pub fn fsync(fd: RawHandle) -> Box<Fs> {
        Fs::boxed(Req::Sync {
            fd,
            data_only: false,
        })
    }

    /// Flushes the file's data (and the metadata needed to read it back) to
    /// the device (`fdatasync`).
    pub fn fdatasync(fd: RawHandle) -> Box<Fs> {
        Fs::boxed(Req::Sync {
            fd,
            data_only: true,
        })
    }

    /// Sets the file's length to `len` (`ftruncate`): cuts it, or extends
    /// it with zeros.
    pub fn ftruncate(fd: RawHandle, len: u64) -> Box<Fs> {
        Fs::boxed(Req::Truncate { fd, len })
    }

    /// Reserves disk space for `len` bytes from `offset`, growing the file
    /// if needed (`fallocate` on Linux, `posix_fallocate` on FreeBSD). On
    /// macOS and Windows it completes with [`FsError::Unsupported`].
    pub fn fallocate(fd: RawHandle, offset: u64, len: u64) -> Box<Fs> {
        Fs::boxed(Req::Allocate { fd, offset, len })
    }

    /// Renames `from` to `to`, replacing `to` if it is a file.
    pub fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Box<Fs> {
        Fs::boxed(Req::Rename {
            from: FsPath::new(from.as_ref()),
            to: FsPath::new(to.as_ref()),
        })
    }

    /// Removes the file (or symbolic link) `path`.
    pub fn unlink(path: impl AsRef<Path>) -> Box<Fs> {
        Fs::boxed(Req::Unlink {
            path: FsPath::new(path.as_ref()),
        })
    }

    /// Creates the directory `path` with permission bits `mode` (before
    /// the umask; ignored on Windows).
    pub fn mkdir(path: impl AsRef<Path>, mode: u32) -> Box<Fs> {
        Fs::boxed(Req::Mkdir {
            path: FsPath::new(path.as_ref()),
            mode,
        })
    }

    /// Removes the empty directory `path`.
    pub fn rmdir(path: impl AsRef<Path>) -> Box<Fs> {
        Fs::boxed(Req::Rmdir {
            path: FsPath::new(path.as_ref()),
        })
    }

    /// Creates the symbolic link `link` pointing at `target` (on Windows a
    /// file symbolic link, which needs the privilege to create one).
    pub fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) -> Box<Fs> {
        Fs::boxed(Req::Symlink {
            target: FsPath::new(target.as_ref()),
            link: FsPath::new(link.as_ref()),
        })
    }

    /// Creates the hard link `to` for the existing file `from`.
    pub fn link(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Box<Fs> {
        Fs::boxed(Req::Link {
            from: FsPath::new(from.as_ref()),
            to: FsPath::new(to.as_ref()),
        })
    }

    /// The target of the symbolic link `path`.
    pub fn readlink(path: impl AsRef<Path>) -> Box<Fs> {
        Fs::boxed(Req::ReadLink {
            path: FsPath::new(path.as_ref()),
        })
    }

    /// The entries of the directory `path`.
    pub fn read_dir(path: impl AsRef<Path>) -> Box<Fs> {
        Fs::boxed(Req::ReadDir {
            path: FsPath::new(path.as_ref()),
        })
    }

    /// The descriptor this operation acts on, if it takes one.
    pub fn fd(&self) -> Option<RawHandle> {
        match self.req {
            Req::Fstat { fd }
            | Req::Sync { fd, .. }
            | Req::Truncate { fd, .. }
            | Req::Allocate { fd, .. } => Some(fd),
            Req::Open { dir, .. } => dir,
            _ => None,
        }
    }

    /// Performs the operation on a pool thread, keeping what it produced.
    /// Returns 0 or a negated error code.
    pub(crate) fn run(&mut self) -> i32 {
        match perform(&self.req) {
            Ok(out) => {
                self.out = Some(out);
                0
            }
            Err(e) => crate::sys::fs::error_code(&e),
        }
    }

    /// The typed result for the raw result `res` the loop delivered.
    pub(crate) fn result(&mut self, res: i32) -> Result<FsOutput, FsError> {
        let out = self.out.take();
        if res == NO_THREAD_POOL {
            return Err(FsError::NoThreadPool);
        }
        if res < 0 {
            return Err(FsError::from_raw(res));
        }
        if let Some(out) = out {
            return Ok(out);
        }
        // Performed natively by io_uring: the raw result is the value.
        Ok(match self.req {
            // SAFETY: a non-negative open result (io_uring, so Unix) is a
            // new descriptor that nothing else owns.
            #[cfg(unix)]
            Req::Open { .. } => FsOutput::Opened(unsafe {
                std::os::fd::FromRawFd::from_raw_fd(res)
            }),
            #[cfg(target_os = "linux")]
            Req::Stat { .. } | Req::Fstat { .. } => {
                FsOutput::Stat(crate::sys::fs::from_statx(&self.statx))
            }
            _ => FsOutput::Done,
        })
    }
}

impl fmt::Debug for Fs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fs").field("req", &self.req).finish()
    }
}

/// Performs `req` (blocking, on a pool thread): with `std::fs` where it has
/// the call, and the platform's parts (`sys::fs`) for the rest.
fn perform(req: &Req) -> std::io::Result<FsOutput> {
    use crate::sys::fs as sys;
    fn path(p: &FsPath) -> std::io::Result<&Path> {
        p.path().ok_or_else(crate::sys::fs::invalid)
    }
    Ok(match req {
        Req::Open { dir, path, flags } => FsOutput::Opened(sys::open(*dir, path, flags)?),
        Req::Stat { path: p, follow } => {
            let m = if *follow {
                std::fs::metadata(path(p)?)?
            } else {
                std::fs::symlink_metadata(path(p)?)?
            };
            FsOutput::Stat(sys::from_metadata(&m))
        }
        Req::Fstat { fd } => FsOutput::Stat(sys::from_metadata(&sys::dup_file(*fd)?.metadata()?)),
        Req::Sync { fd, data_only } => {
            let f = sys::dup_file(*fd)?;
            if *data_only {
                f.sync_data()?
            } else {
                f.sync_all()?
            }
            FsOutput::Done
        }
        Req::Truncate { fd, len } => {
            sys::dup_file(*fd)?.set_len(*len)?;
            FsOutput::Done
        }
        Req::Allocate { fd, offset, len } => {
            sys::allocate(*fd, *offset, *len)?;
            FsOutput::Done
        }
        Req::Rename { from, to } => {
            std::fs::rename(path(from)?, path(to)?)?;
            FsOutput::Done
        }
        Req::Unlink { path: p } => {
            std::fs::remove_file(path(p)?)?;
            FsOutput::Done
        }
        Req::Mkdir { path: p, mode } => {
            sys::mkdir(path(p)?, *mode)?;
            FsOutput::Done
        }
        Req::Rmdir { path: p } => {
            std::fs::remove_dir(path(p)?)?;
            FsOutput::Done
        }
        Req::Symlink { target, link } => {
            sys::symlink(path(target)?, path(link)?)?;
            FsOutput::Done
        }
        Req::Link { from, to } => {
            std::fs::hard_link(path(from)?, path(to)?)?;
            FsOutput::Done
        }
        Req::ReadLink { path: p } => FsOutput::Target(std::fs::read_link(path(p)?)?),
        Req::ReadDir { path: p } => FsOutput::Entries(read_dir(path(p)?)?),
    })
}

/// The [`FileKind`] of a `std::fs::FileType`.
pub(crate) fn kind_of(t: std::fs::FileType) -> FileKind {
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Dir
    } else if t.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

/// The [`FileStat`] of a `std::fs::Metadata` from what it tells on every
/// platform, for systems whose metadata has nothing more (Windows, WASI):
/// no inode, device, link count or owner (those are 0), and permission
/// bits from the read-only flag alone.
#[cfg(any(windows, target_os = "wasi"))]
pub(crate) fn portable_stat(m: &std::fs::Metadata) -> FileStat {
    let readonly = m.permissions().readonly();
    FileStat {
        kind: kind_of(m.file_type()),
        size: m.len(),
        mode: if readonly { 0o444 } else { 0o666 },
        readonly,
        modified: m.modified().ok(),
        accessed: m.accessed().ok(),
        created: m.created().ok(),
        nlink: 0,
        ino: 0,
        dev: 0,
        uid: 0,
        gid: 0,
    }
}

/// Reads a directory with `std::fs::read_dir`.
pub(crate) fn read_dir(path: &Path) -> std::io::Result<Vec<DirEntry>> {
    std::fs::read_dir(path)?
        .map(|e| {
            let e = e?;
            Ok(DirEntry {
                name: e.file_name(),
                kind: e.file_type().ok().map(kind_of),
            })
        })
        .collect()
}
