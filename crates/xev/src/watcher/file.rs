//! The file watcher: reads and writes on regular files (and block devices),
//! at the file position or at explicit offsets, plus an ordered queue of
//! positional writes.
//!
//! On io_uring the kernel performs every request. On epoll, which cannot
//! wait on regular files, `read`/`write` at the file position run right
//! away on the loop's thread (a regular file is always "ready"), and
//! `pread`/`pwrite` (and queued writes) run on the loop's thread pool
//! ([`Options::thread_pool`](crate::Options::thread_pool)); without one they
//! fail with [`ReadError::NoThreadPool`] / [`WriteError::NoThreadPool`],
//! which the callback receives like any other error.
//!
//! For pipes, ttys and sockets use [`Stream`](super::stream::Stream): this
//! watcher does not make its descriptor non-blocking.
//!
//! Callbacks, actions and descriptor ownership work as for streams (see
//! [`stream`](super::stream)); positional requests rearm at the next
//! offset, see [`File::pread`].

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use super::stream::{add_close, add_read, add_write, Sink, WriteQueue};
use crate::backend::Backend;
use crate::completion::Action;
use crate::error::{CloseError, ReadError, WriteError};
use crate::event_loop::Loop;
use crate::op::{Id, Op};
use crate::DefaultBackend;

/// A file bound to loops of backend `B`.
///
/// ```
/// use std::cell::Cell;
/// use std::fs::OpenOptions;
/// use std::rc::Rc;
/// use xev::watcher::file::File;
/// use xev::{Action, Loop, Options, RunMode, ThreadPool, ThreadPoolConfig};
///
/// // A thread pool lets epoll (the fallback backend) do positional I/O.
/// let pool = ThreadPool::new(ThreadPoolConfig::default()).unwrap();
/// let mut lp = Loop::new(Options { thread_pool: Some(pool), ..Default::default() }).unwrap();
///
/// let path = std::env::temp_dir().join(format!("xev-file-doc-{}", std::process::id()));
/// let f: File = File::open(
///     &path,
///     OpenOptions::new().read(true).write(true).create(true).truncate(true),
/// )
/// .unwrap();
///
/// // Two queued writes land back to back at offsets 0 and 6.
/// f.queue_write(&mut lp, b"hello ".to_vec(), |_, _, r| { r.unwrap(); Action::Disarm });
/// f.queue_write(&mut lp, b"file".to_vec(), |_, _, r| { r.unwrap(); Action::Disarm });
/// lp.run(RunMode::UntilDone).unwrap();
///
/// // Read them back from offset 0.
/// let ok = Rc::new(Cell::new(false));
/// let o = ok.clone();
/// f.pread(&mut lp, vec![0; 32], 0, move |_, buf, r| {
///     let n = r.unwrap();
///     o.set(&buf[..n] == b"hello file");
///     Action::Disarm
/// });
/// lp.run(RunMode::UntilDone).unwrap();
/// assert!(ok.get());
///
/// f.close(&mut lp, |_, r| r.unwrap());
/// lp.run(RunMode::UntilDone).unwrap();
/// std::fs::remove_file(&path).unwrap();
/// ```
pub struct File<B: Backend = DefaultBackend> {
    fd: OwnedFd,
    queue: WriteQueue,
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend> File<B> {
    /// Opens `path` with `opts` (see [`std::fs::OpenOptions`]).
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> io::Result<File<B>> {
        Ok(File::from_std(opts.open(path)?))
    }

    /// Wraps an open file. Its position is left where it is; the queue
    /// offset ([`File::queue_offset`]) starts at 0.
    pub fn from_std(file: std::fs::File) -> File<B> {
        File {
            fd: OwnedFd::from(file),
            queue: WriteQueue::default(),
            _backend: PhantomData,
        }
    }

    /// The raw descriptor (still owned by the watcher).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads into the whole of `buf` at the file position, which advances.
    /// The callback gets the buffer back and `Ok(n)`, or
    /// `Err(ReadError::Eof)` at the end of the file. [`Action::Rearm`] reads
    /// the next bytes into the buffer as the callback left it. Several
    /// position reads in flight at once read in no defined order.
    pub fn read<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, ReadError>) -> Action + 'static,
    {
        add_read(lp, Op::Read { fd: self.fd(), buf }, cb)
    }

    /// Writes `buf` at the file position, which advances (a short count is
    /// possible, e.g. on a full disk). [`Action::Rearm`] writes the buffer
    /// again as the callback left it.
    pub fn write<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action + 'static,
    {
        add_write(lp, Op::Write { fd: self.fd(), buf }, cb)
    }

    /// Reads into the whole of `buf` at `offset`, without moving the file
    /// position. The callback gets the buffer back and `Ok(n)`, or
    /// `Err(ReadError::Eof)` when `offset` is at or past the end.
    /// [`Action::Rearm`] reads again *at `offset + n`* (the next chunk; the
    /// same offset after an error), into the buffer as the callback left it.
    /// On epoll this runs on the thread pool.
    pub fn pread<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, offset: u64, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, ReadError>) -> Action + 'static,
    {
        let op = Op::Pread {
            fd: self.fd(),
            buf,
            offset,
        };
        add_read(lp, op, cb)
    }

    /// Writes `buf` at `offset`, without moving the file position (a short
    /// count is possible). [`Action::Rearm`] writes the buffer, as the
    /// callback left it, *at `offset + n`* (drain the written prefix to
    /// finish a short write, or refill it to write the next chunk). On
    /// epoll this runs on the thread pool.
    pub fn pwrite<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, offset: u64, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action + 'static,
    {
        let op = Op::Pwrite {
            fd: self.fd(),
            buf,
            offset,
        };
        add_write(lp, op, cb)
    }

    /// Queues `buf` to be written completely at the queue offset
    /// ([`File::queue_offset`]), which then advances by `buf.len()`: queued
    /// writes land back to back, in order, whatever the file position (they
    /// are `pwrite`s; the position does not move). Only the head of the
    /// queue is in flight; short writes are finished before the next one
    /// starts, and the callback gets `Ok(buf.len())` and its buffer back.
    /// [`Action::Rearm`] queues the buffer again at the then current queue
    /// offset. Errors, cancellation and closing behave as for
    /// [`Stream::queue_write`](super::stream::Stream::queue_write): a failed
    /// write fails every write queued behind it with the same error. On
    /// epoll the writes run on the thread pool.
    ///
    /// A file opened with `append(true)` is an exception on Linux:
    /// `pwrite` then appends, ignoring the offset.
    pub fn queue_write<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action + 'static,
    {
        self.queue.push(lp, Sink::At(self.fd()), buf, cb)
    }

    /// Offset at which the next [`File::queue_write`] will write (0 for a
    /// new watcher).
    pub fn queue_offset(&self) -> u64 {
        self.queue.next_offset()
    }

    /// Sets the offset at which the next [`File::queue_write`] will write
    /// (writes already queued keep their offsets).
    pub fn set_queue_offset(&self, offset: u64) {
        self.queue.set_next_offset(offset)
    }

    /// Queued writes not finished yet (including the one in flight).
    pub fn queued_writes(&self) -> usize {
        self.queue.len()
    }

    /// Closes the file through the loop (consuming the watcher); the
    /// callback runs once with the result. Queued writes that have not
    /// started fail with [`WriteError::Canceled`] once the write in flight
    /// finishes.
    pub fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        // Dropping the queue handle marks the queue closed.
        let File { fd, .. } = self;
        add_close(lp, fd, cb)
    }

    /// Takes the file back without closing it. Queued writes that have not
    /// started fail with `Canceled` when the write in flight finishes.
    pub fn into_std(self) -> std::fs::File {
        std::fs::File::from(self.fd)
    }
}

impl<B: Backend> AsFd for File<B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl<B: Backend> AsRawFd for File<B> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl<B: Backend> fmt::Debug for File<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.fd())
            .field("queue_offset", &self.queue_offset())
            .field("queued_writes", &self.queued_writes())
            .finish()
    }
}
