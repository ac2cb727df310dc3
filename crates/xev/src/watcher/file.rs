//! The file watcher: reads and writes on regular files (and block devices),
//! at the file position or at explicit offsets, plus an ordered queue of
//! positional writes.
//! (The whole story is on [`File`](super::File).)

use std::fmt;
use std::fs::OpenOptions;
use std::io;
#[cfg(any(unix, target_os = "wasi"))]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::op::RawHandle as RawFd;
use std::path::Path;

use super::request::{add_read, add_write};
use super::shared_fd::FdOwner;
use super::write_queue::{Sink, WriteQueue};
use crate::backend::Backend;
use crate::error::{CloseError, ReadError, WriteError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::Op;
use crate::record::Action;
use crate::DefaultBackend;

/// The file watcher: reads and writes on regular files (and block devices),
/// at the file position or at explicit offsets, plus an ordered queue of
/// positional writes.
///
/// On io_uring the kernel performs every request. On epoll, which cannot
/// wait on regular files, `read`/`write` at the file position run right
/// away on the loop's thread (a regular file is always "ready"), and
/// `pread`/`pwrite` (and queued writes) run on the loop's thread pool
/// ([`Options::thread_pool`](crate::Options::thread_pool)); without one they
/// fail with [`ReadError::NoThreadPool`] / [`WriteError::NoThreadPool`],
/// which the callback receives like any other error.
///
/// For pipes, ttys and sockets use [`Stream`](super::Stream): this
/// watcher does not make its descriptor non-blocking.
///
/// Callbacks, actions and descriptor ownership work as for streams (see
/// [`Stream`](super::Stream)): [`File::close`] and dropping the watcher
/// cancel its requests in flight (a thread-pool request already running
/// its syscall finishes first), then close the file through the loop;
/// [`File::into_std`] takes the file back when nothing is in flight.
/// Positional requests rearm at the next offset, see [`File::pread`].
///
/// A file bound to loops of backend `B`.
///
/// ```
/// use std::cell::Cell;
/// use std::fs::OpenOptions;
/// use std::rc::Rc;
/// use xev::watcher::File;
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
    owner: FdOwner<B>,
    queue: WriteQueue,
    /// Windows, a file opened for overlapped I/O: the file position, kept
    /// by the watcher (overlapped I/O has none), advanced when a read or
    /// write at the position completes.
    #[cfg(windows)]
    position: Option<std::rc::Rc<std::cell::Cell<u64>>>,
}

impl<B: Backend> File<B> {
    /// Opens `path` with `opts` (see [`std::fs::OpenOptions`]). On Windows
    /// the file is opened for overlapped I/O (`FILE_FLAG_OVERLAPPED`, which
    /// replaces any custom flags in `opts`), so that the kernel performs its
    /// reads and writes (IOCP) without a thread pool; the watcher then keeps
    /// the file position itself (see [`File::read`]).
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> io::Result<File<B>> {
        #[cfg(windows)]
        let opts = &{
            use std::os::windows::fs::OpenOptionsExt;
            let mut o = opts.clone();
            o.custom_flags(windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OVERLAPPED);
            o
        };
        Ok(File::from_std(opts.open(path)?))
    }

    /// Wraps an open file. Its position is left where it is; the queue
    /// offset ([`File::queue_offset`]) starts at 0. On Windows a file
    /// opened for overlapped I/O has its position kept by the watcher,
    /// starting where the file's position is now.
    pub fn from_std(file: std::fs::File) -> File<B> {
        #[cfg(windows)]
        let position = {
            use std::io::Seek;
            use std::os::windows::io::AsRawHandle;
            let overlapped = !crate::sys::is_synchronous(file.as_raw_handle() as RawFd);
            overlapped.then(|| {
                let start = (&file).stream_position().unwrap_or(0);
                std::rc::Rc::new(std::cell::Cell::new(start))
            })
        };
        File {
            owner: FdOwner::new(file.into()),
            queue: WriteQueue::default(),
            #[cfg(windows)]
            position,
        }
    }

    /// The raw descriptor (still owned by the watcher).
    pub fn fd(&self) -> RawFd {
        self.owner.share().raw()
    }

    /// The shared descriptor that tracks this watcher's requests (for the
    /// filesystem methods in `fs.rs`).
    pub(super) fn owner(&self) -> &FdOwner<B> {
        &self.owner
    }

    /// Requests of this watcher that are in flight or parked (queued writes
    /// and drain registrations included).
    pub fn in_flight(&self) -> usize {
        self.owner.share().in_flight()
    }

    /// Reads into the whole of `buf` at the file position, which advances.
    /// The callback gets the buffer back and `Ok(n)`, or
    /// `Err(ReadError::Eof)` at the end of the file. [`Action::Rearm`] reads
    /// the next bytes into the buffer as the callback left it. Several
    /// position reads in flight at once read in no defined order.
    ///
    /// On Windows, for a file opened for overlapped I/O (as [`File::open`]
    /// opens them), the position is the watcher's own: a read is a
    /// positional read at it, and it advances when the read completes (so
    /// several position reads in flight at once read the same bytes; one
    /// at a time, or rearming, reads the file in order).
    pub fn read<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, ReadError>) -> Action + 'static,
    {
        #[cfg(windows)]
        if let Some(pos) = &self.position {
            let op = Op::Pread {
                fd: self.fd(),
                buf: buf.into(),
                offset: pos.get(),
            };
            return add_read(lp, &self.owner, op, advancing(pos.clone(), cb));
        }
        add_read(lp, &self.owner, Op::Read { fd: self.fd(), buf: buf.into() }, cb)
    }

    /// Writes `buf` at the file position, which advances (a short count is
    /// possible, e.g. on a full disk). [`Action::Rearm`] writes the buffer
    /// again as the callback left it. On Windows, for a file opened for
    /// overlapped I/O, the position is the watcher's own, as for
    /// [`File::read`].
    pub fn write<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action + 'static,
    {
        #[cfg(windows)]
        if let Some(pos) = &self.position {
            let op = Op::Pwrite {
                fd: self.fd(),
                buf: buf.into(),
                offset: pos.get(),
            };
            return add_write(lp, &self.owner, op, advancing(pos.clone(), cb));
        }
        add_write(lp, &self.owner, Op::Write { fd: self.fd(), buf: buf.into() }, cb)
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
            buf: buf.into(),
            offset,
        };
        add_read(lp, &self.owner, op, cb)
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
            buf: buf.into(),
            offset,
        };
        add_write(lp, &self.owner, op, cb)
    }

    /// Queues `buf` to be written completely at the queue offset
    /// ([`File::queue_offset`]), which then advances by `buf.len()`: queued
    /// writes land back to back, in order, whatever the file position (they
    /// are `pwrite`s; the position does not move). Only the head of the
    /// queue is in flight; short writes are finished before the next one
    /// starts, and the callback gets `Ok(buf.len())` and its buffer back.
    /// [`Action::Rearm`] queues the buffer again at the then current queue
    /// offset. Errors, cancellation and closing behave as for
    /// [`Stream::queue_write`](super::Stream::queue_write): a failed
    /// write fails every write queued behind it with the same error. On
    /// epoll the writes run on the thread pool.
    ///
    /// A file opened with `append(true)` is an exception on Linux:
    /// `pwrite` then appends, ignoring the offset.
    pub fn queue_write<F>(&self, lp: &mut Loop<B>, buf: Vec<u8>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action + 'static,
    {
        self.queue
            .push(lp, &self.owner, Sink::At(self.fd()), buf, cb)
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

    /// Bytes queued with [`File::queue_write`] and not written yet, counted
    /// as for [`Stream::queued_bytes`](super::Stream::queued_bytes): 0
    /// whenever [`File::queued_writes`] is.
    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes()
    }

    /// Calls `cb` once, with the loop and [`File::queued_bytes`] as it then
    /// is, after the write queue has drained to `low_water` bytes or fewer
    /// (at the next tick if it is there already); see
    /// [`Stream::on_drain`](super::Stream::on_drain), which works the same
    /// way: the callback never runs once the watcher is closed or dropped.
    pub fn on_drain<F>(&self, lp: &mut Loop<B>, low_water: usize, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, usize) + 'static,
    {
        self.queue.on_drain(lp, &self.owner, low_water, cb)
    }

    /// Closes the file through the loop (consuming the watcher), as
    /// [`Stream::close`](super::Stream::close) does: requests in
    /// flight are canceled (a thread-pool request already running its
    /// syscall finishes with its result), parked ones freed, queued writes
    /// that have not started fail with [`WriteError::Canceled`], and once
    /// the last has ended the file is closed and `cb` runs once with the
    /// result. Dropping the watcher does the same, ignoring the result.
    pub fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        self.owner.close(lp, cb)
    }

    /// Takes the file back without closing it, when none of the watcher's
    /// requests is in flight or parked ([`File::in_flight`] is 0).
    /// Otherwise hands the watcher back unchanged.
    pub fn into_std(self) -> Result<std::fs::File, File<B>> {
        match self.owner.take_fd(crate::sys::types::to_file) {
            Some(file) => Ok(file),
            None => Err(self),
        }
    }
}

/// Windows: `cb`, first advancing the watcher's file position `pos` by
/// what each read or write at it transferred.
#[cfg(windows)]
fn advancing<B: Backend, E>(
    pos: std::rc::Rc<std::cell::Cell<u64>>,
    mut cb: impl FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, E>) -> Action + 'static,
) -> impl FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, E>) -> Action + 'static {
    move |lp, buf, res| {
        if let Ok(n) = &res {
            pos.set(pos.get() + *n as u64);
        }
        cb(lp, buf, res)
    }
}

#[cfg(any(unix, target_os = "wasi"))]
#[cfg_attr(docsrs, doc(cfg(any(unix, target_os = "wasi"))))]
impl<B: Backend> AsFd for File<B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the file stays open as long as the watcher exists: it
        // leaves the watcher's share only through `close` or `into_std`,
        // which consume the watcher, or when the loop adopts it after the
        // watcher was dropped; the borrow of `self` bounds the result.
        unsafe { BorrowedFd::borrow_raw(self.fd()) }
    }
}

#[cfg(any(unix, target_os = "wasi"))]
#[cfg_attr(docsrs, doc(cfg(any(unix, target_os = "wasi"))))]
impl<B: Backend> AsRawFd for File<B> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

#[cfg(windows)]
#[cfg_attr(docsrs, doc(cfg(windows)))]
impl<B: Backend> std::os::windows::io::AsRawHandle for File<B> {
    fn as_raw_handle(&self) -> std::os::windows::io::RawHandle {
        self.fd() as std::os::windows::io::RawHandle
    }
}

impl<B: Backend> fmt::Debug for File<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.fd())
            .field("in_flight", &self.in_flight())
            .field("queue_offset", &self.queue_offset())
            .field("queued_writes", &self.queued_writes())
            .finish()
    }
}
