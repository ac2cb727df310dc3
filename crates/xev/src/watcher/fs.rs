//! Filesystem requests for watchers: [`fs_op`] (any [`Fs`] operation with a
//! one-shot callback), [`File::open_async`], and the [`File`] methods for
//! the operations on an open file ([`File::stat`], [`File::sync`],
//! [`File::sync_data`], [`File::set_len`], [`File::allocate`]). Where they
//! run (io_uring in the kernel, or the thread pool) is on [`Fs`].

use std::path::Path;

use super::file::File;
use crate::backend::Backend;
use crate::error::FsError;
use crate::event_loop::Loop;
use crate::fs::{FileStat, Fs, FsOutput, OpenFlags};
use crate::id::Id;
use crate::op::{unexpected, Op, OpResult};
use crate::record::Action;

/// The typed result of an [`Op::Fs`] completion.
fn fs_result(res: OpResult) -> Result<FsOutput, FsError> {
    match res {
        OpResult::Fs(r) => r,
        other => Err(FsError::Io(unexpected(&other))),
    }
}

/// Runs `op` once and calls `cb` with what it produced. Cancel it with the
/// returned id (`Canceled` if it had not started; an operation already
/// running finishes with its own result).
///
/// ```
/// use xev::watcher::fs_op;
/// use xev::{Fs, FsOutput, Loop, Options, RunMode, ThreadPool};
/// let pool = ThreadPool::new(Default::default()).unwrap();
/// let mut lp = Loop::new(Options { thread_pool: Some(pool), ..Default::default() }).unwrap();
/// let dir = std::env::temp_dir().join(format!("xev-fs-doc-{}", std::process::id()));
/// fs_op(&mut lp, Fs::mkdir(&dir, 0o755), |_, r| {
///     assert!(matches!(r, Ok(FsOutput::Done)));
/// });
/// lp.run(RunMode::UntilDone).unwrap();
/// assert!(dir.is_dir());
/// fs_op(&mut lp, Fs::rmdir(&dir), |_, r| r.map(drop).unwrap());
/// lp.run(RunMode::UntilDone).unwrap();
/// ```
pub fn fs_op<B, F>(lp: &mut Loop<B>, op: Box<Fs>, cb: F) -> Id
where
    B: Backend,
    F: FnOnce(&mut Loop<B>, Result<FsOutput, FsError>) + 'static,
{
    let mut cb = Some(cb);
    lp.add(Op::Fs(op), move |lp, _, res| {
        if let Some(cb) = cb.take() {
            cb(lp, fs_result(res));
        }
        Action::Disarm
    })
}

impl<B: Backend> File<B> {
    /// Opens `path` through the loop (natively on io_uring, else on the
    /// thread pool) and calls back with the new watcher. Unlike
    /// [`File::open`], the loop's thread never waits for the file system.
    pub fn open_async<F>(lp: &mut Loop<B>, path: impl AsRef<Path>, flags: OpenFlags, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<File<B>, FsError>) + 'static,
    {
        fs_op(lp, Fs::open(path, flags), move |lp, r| {
            cb(
                lp,
                r.and_then(|out| match out {
                    FsOutput::Opened(f) => Ok(File::from_std(f)),
                    other => Err(FsError::Io(unexpected_output(&other))),
                }),
            )
        })
    }

    /// Adds `fs` as a request of this watcher (canceled when it is closed or
    /// dropped), passing what it produced through `map` to `cb`.
    fn fs_request<T: 'static, F>(
        &self,
        lp: &mut Loop<B>,
        fs: Box<Fs>,
        map: fn(FsOutput) -> Result<T, FsError>,
        mut cb: F,
    ) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<T, FsError>) -> Action + 'static,
    {
        self.owner().track(lp, Op::Fs(fs), move |mut t| {
            move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
                let action = cb(lp, fs_result(res).and_then(map));
                t.settle(lp, action)
            }
        })
    }

    /// The file's metadata (`fstat`). [`Action::Rearm`] asks again.
    pub fn stat<F>(&self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<FileStat, FsError>) -> Action + 'static,
    {
        self.fs_request(lp, Fs::fstat(self.fd()), as_stat, cb)
    }

    /// Flushes the file's data and metadata to the device (`fsync`).
    pub fn sync<F>(&self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<(), FsError>) -> Action + 'static,
    {
        self.fs_request(lp, Fs::fsync(self.fd()), as_unit, cb)
    }

    /// Flushes the file's data to the device (`fdatasync`).
    pub fn sync_data<F>(&self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<(), FsError>) -> Action + 'static,
    {
        self.fs_request(lp, Fs::fdatasync(self.fd()), as_unit, cb)
    }

    /// Sets the file's length (`ftruncate`): cuts it or extends it with
    /// zeros.
    pub fn set_len<F>(&self, lp: &mut Loop<B>, len: u64, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<(), FsError>) -> Action + 'static,
    {
        self.fs_request(lp, Fs::ftruncate(self.fd(), len), as_unit, cb)
    }

    /// Reserves disk space for `len` bytes from `offset` (see
    /// [`Fs::fallocate`]; `Unsupported` on macOS and Windows).
    pub fn allocate<F>(&self, lp: &mut Loop<B>, offset: u64, len: u64, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<(), FsError>) -> Action + 'static,
    {
        self.fs_request(lp, Fs::fallocate(self.fd(), offset, len), as_unit, cb)
    }
}

fn unexpected_output(out: &FsOutput) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("xev: unexpected filesystem output {out:?}"),
    )
}

fn as_stat(out: FsOutput) -> Result<FileStat, FsError> {
    match out {
        FsOutput::Stat(s) => Ok(s),
        other => Err(FsError::Io(unexpected_output(&other))),
    }
}

fn as_unit(out: FsOutput) -> Result<(), FsError> {
    match out {
        FsOutput::Done => Ok(()),
        other => Err(FsError::Io(unexpected_output(&other))),
    }
}
