//! Files: [`File`], opened through the loop (natively on io_uring, on the
//! thread pool elsewhere) and read and written at offsets with owned
//! buffers. The readiness backends need a thread pool for file I/O
//! ([`xev::Options::thread_pool`]); without one these fail with an error
//! of kind `Unsupported`.

use std::io;
use std::path::Path;

use xev::{FileStat, Fs, FsOutput, Op, OpResult, OpenFlags, RawHandle};

use crate::buf::{write_all_with, IoBuf, IoBufMut};
use crate::op::{read_count, write_count, OpFuture};

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

    /// Reads from `offset` into `buf`'s read region (a vector's spare
    /// capacity; see [`IoBufMut`]): the count (0 at or past the end of the
    /// file, or when the region is empty) and the buffer back.
    pub async fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> (io::Result<usize>, B) {
        let fd = raw(&self.file);
        let op = Op::Pread {
            fd,
            buf: xev::Buf::default(),
            offset,
        };
        read_count(op, buf, None, None).await
    }

    /// Writes `buf`'s initialized bytes at `offset` (all or a prefix): the
    /// count and the buffer back.
    pub async fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> (io::Result<usize>, B) {
        self.pwrite_from(buf, 0, offset).await
    }

    /// Writes `buf`'s initialized bytes from `from` on at `offset`.
    async fn pwrite_from<B: IoBuf>(
        &self,
        buf: B,
        from: usize,
        offset: u64,
    ) -> (io::Result<usize>, B) {
        let fd = raw(&self.file);
        let op = Op::Pwrite {
            fd,
            buf: xev::Buf::default(),
            offset,
        };
        write_count(op, buf, from, None).await
    }

    /// Writes all of `buf`'s initialized bytes at `offset`, in as many
    /// writes as it takes (each from the same buffer: no copy).
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, offset: u64) -> (io::Result<()>, B) {
        let len = buf.bytes_init();
        write_all_with(buf, len, |b, sent| {
            self.pwrite_from(b, sent, offset + sent as u64)
        })
        .await
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
