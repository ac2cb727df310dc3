//! Files: [`File`], opened through the loop (natively on io_uring, on the
//! thread pool elsewhere) and read and written at offsets with owned
//! buffers. The readiness backends need a thread pool for file I/O
//! ([`xev::Options::thread_pool`]); without one these fail with an error
//! of kind `Unsupported`.

use std::io;
use std::path::Path;

use xev::{FileStat, Fs, FsOutput, Op, OpResult, OpenFlags, RawHandle, ReadError};

use crate::op::OpFuture;

/// An open file.
pub struct File {
    file: std::fs::File,
}

fn raw(f: &std::fs::File) -> RawHandle {
    #[cfg(any(unix, target_os = "wasi"))]
    {
        std::os::fd::AsRawFd::as_raw_fd(f)
    }
    #[cfg(windows)]
    {
        std::os::windows::io::AsRawHandle::as_raw_handle(f) as RawHandle
    }
}

async fn fs(op: Box<Fs>) -> io::Result<FsOutput> {
    match OpFuture::new(Op::Fs(op)).await.0 {
        OpResult::Fs(r) => r.map_err(Into::into),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("xev-async: unexpected result {other:?}"),
        )),
    }
}

impl File {
    /// Opens `path` with `flags` through the loop.
    pub async fn open(path: impl AsRef<Path>, flags: OpenFlags) -> io::Result<File> {
        match fs(Fs::open(path, flags)).await? {
            FsOutput::Opened(file) => Ok(File { file }),
            other => Err(io::Error::other(format!("open gave {other:?}"))),
        }
    }

    /// Opens an existing file for reading.
    pub async fn open_read(path: impl AsRef<Path>) -> io::Result<File> {
        File::open(path, OpenFlags::READ).await
    }

    /// Creates (or truncates) a file for writing.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        File::open(path, OpenFlags::CREATE).await
    }

    /// Wraps an open `std` file (on Windows, one opened for overlapped
    /// I/O, as [`File::open`] does, is read and written by the kernel; one
    /// opened by `std` goes to the thread pool).
    pub fn from_std(file: std::fs::File) -> File {
        File { file }
    }

    /// Reads into `buf[..buf.len()]` from `offset`: the count (0 at or past
    /// the end of the file) and the buffer.
    pub async fn read_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<usize>, Vec<u8>) {
        let fd = raw(&self.file);
        let (res, mut op) = OpFuture::new(Op::Pread {
            fd,
            buf: buf.into(),
            offset,
        })
        .await;
        let r = match res {
            OpResult::Read(Ok(n)) => Ok(n),
            OpResult::Read(Err(ReadError::Eof)) => Ok(0),
            OpResult::Read(Err(e)) => Err(e.into()),
            other => Err(io::Error::other(format!("unexpected {other:?}"))),
        };
        (r, op.take_buf().unwrap_or_default())
    }

    /// Writes `buf` at `offset` (all of it or a prefix): the count and the
    /// buffer.
    pub async fn write_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<usize>, Vec<u8>) {
        let fd = raw(&self.file);
        let (res, mut op) = OpFuture::new(Op::Pwrite {
            fd,
            buf: buf.into(),
            offset,
        })
        .await;
        let r = match res {
            OpResult::Write(r) => r.map_err(Into::into),
            other => Err(io::Error::other(format!("unexpected {other:?}"))),
        };
        (r, op.take_buf().unwrap_or_default())
    }

    /// Writes all of `buf` at `offset`, in as many writes as it takes.
    pub async fn write_all_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<()>, Vec<u8>) {
        let len = buf.len();
        let (r, buf) = self.write_at(buf, offset).await;
        match r {
            Ok(n) if n == len => (Ok(()), buf),
            Ok(0) => (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => {
                // A short write (a full disk, say): the rest, from a copy.
                let (r, _) =
                    Box::pin(self.write_all_at(buf[n..].to_vec(), offset + n as u64)).await;
                (r, buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// The file's metadata.
    pub async fn metadata(&self) -> io::Result<FileStat> {
        match fs(Fs::fstat(raw(&self.file))).await? {
            FsOutput::Stat(s) => Ok(s),
            other => Err(io::Error::other(format!("fstat gave {other:?}"))),
        }
    }

    /// Flushes data and metadata to the device.
    pub async fn sync_all(&self) -> io::Result<()> {
        fs(Fs::fsync(raw(&self.file))).await.map(drop)
    }

    /// The `std` file back.
    pub fn into_std(self) -> std::fs::File {
        self.file
    }
}
