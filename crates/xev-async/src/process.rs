//! Child processes: [`Child`] (spawned from a `std::process::Command`,
//! its exit awaited through xev's process watcher: a pidfd on Linux,
//! `EVFILT_PROC` on kqueue, a job object on Windows) and its pipes,
//! [`Pipe`]s ([`ChildStdin`], [`ChildStdout`] and [`ChildStderr`]), read
//! and written through the loop with owned buffers.
//!
//! On Windows the standard library makes the child's pipes for
//! synchronous I/O; xev runs their reads and writes on the thread pool,
//! so give the runtime one ([`xev::Options::thread_pool`]) to use them.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::process::{Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::task::Poll;

use xev::Op;

use crate::buf::{write_all_with, IoBuf, IoBufMut};
use crate::handle::{Handle, Owned};
use crate::op::{read_count, write_count};
use crate::runtime::{current, ExitSlot};

/// A child process.
pub struct Child {
    child: std::process::Child,
    status: Option<ExitStatus>,
    /// Its standard input, if piped.
    pub stdin: Option<ChildStdin>,
    /// Its standard output, if piped.
    pub stdout: Option<ChildStdout>,
    /// Its standard error, if piped.
    pub stderr: Option<ChildStderr>,
}

/// A child's pipe end as a handle the loop reads or writes. It stays in
/// blocking mode: xev waits for blocking descriptors without blocking the
/// loop (see `xev::Op`).
#[cfg(unix)]
fn pipe_file(f: impl Into<std::os::fd::OwnedFd>) -> Pipe {
    Pipe {
        f: Owned::new(std::fs::File::from(f.into())),
    }
}

/// A child's pipe end as a handle the loop reads or writes (synchronous
/// I/O: xev runs it on the thread pool).
#[cfg(windows)]
fn pipe_file(f: impl Into<std::os::windows::io::OwnedHandle>) -> Pipe {
    Pipe {
        f: Owned::new(std::fs::File::from(f.into())),
    }
}

impl Child {
    /// Spawns `cmd`; the pipes it asks for (`Stdio::piped()`) are handed
    /// back as the child's `stdin`, `stdout` and `stderr`.
    pub fn spawn(cmd: &mut Command) -> io::Result<Child> {
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take().map(pipe_file);
        let stdout = child.stdout.take().map(pipe_file);
        let stderr = child.stderr.take().map(pipe_file);
        Ok(Child {
            child,
            status: None,
            stdin,
            stdout,
            stderr,
        })
    }

    /// A command with all three standard streams piped, for convenience.
    pub fn piped(cmd: &mut Command) -> &mut Command {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child (`SIGKILL`; `TerminateProcess` on Windows). A child
    /// already reaped by [`Child::wait`] is left alone (`Ok`): its pid may
    /// belong to another process by then.
    pub fn kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        self.child.kill()
    }

    /// Waits for the child to exit and reaps it (the loop keeps running
    /// meanwhile). Once known, the status is returned again at once.
    /// Dropping the future stops waiting (the child is not killed).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let exit = Rc::new(RefCell::new(ExitSlot::default()));
        let driver = current();
        let id = driver.watch_child(&self.child, exit.clone())?;
        // Cancels the wait if this future is dropped first.
        struct Stop {
            driver: Rc<dyn crate::runtime::Driver>,
            id: xev::Id,
            exit: Rc<RefCell<ExitSlot>>,
        }
        impl Drop for Stop {
            fn drop(&mut self) {
                if self.exit.borrow().status.is_none() {
                    self.driver.cancel(self.id);
                }
            }
        }
        let stop = Stop { driver, id, exit };
        let r = poll_fn(|cx| {
            let mut e = stop.exit.borrow_mut();
            match e.status.take() {
                Some(r) => Poll::Ready(r),
                None => {
                    e.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        let status = r.map_err(io::Error::from)?;
        self.status = Some(status);
        Ok(status)
    }
}

/// A pipe (or any other stream a descriptor names: a tty, a FIFO, the
/// process's own stdin), read and written through the loop with owned
/// buffers. A child's piped standard streams are `Pipe`s.
pub struct Pipe {
    f: Owned<std::fs::File>,
}

/// A child's standard input.
pub type ChildStdin = Pipe;
/// A child's standard output.
pub type ChildStdout = Pipe;
/// A child's standard error.
pub type ChildStderr = Pipe;

impl Pipe {
    /// Wraps a pipe end (or any stream descriptor) that this process owns.
    #[cfg(unix)]
    pub fn from_fd(fd: std::os::fd::OwnedFd) -> Pipe {
        pipe_file(fd)
    }

    /// Wraps a pipe end (or any stream handle) that this process owns.
    #[cfg(windows)]
    pub fn from_handle(h: std::os::windows::io::OwnedHandle) -> Pipe {
        pipe_file(h)
    }

    /// Reads into `buf`'s read region (a vector's spare capacity; see
    /// [`IoBufMut`]): the count (0 at end of file, or when the region is
    /// empty) and the buffer back.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        let fd = self.f.get().raw();
        let op = Op::Read {
            fd,
            buf: xev::Buf::default(),
        };
        read_count(op, buf, None, None).await
    }

    /// Reads to the end of the stream, straight into the vector it
    /// returns (grown 8 KiB at a time).
    pub async fn read_to_end(&self) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        loop {
            buf.reserve(8192);
            let (r, b) = self.read(buf).await;
            buf = b;
            if r? == 0 {
                return Ok(buf);
            }
        }
    }

    /// Writes `buf`'s initialized bytes (all or a prefix): the count and
    /// the buffer back.
    pub async fn write<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        self.write_from_offset(buf, 0).await
    }

    async fn write_from_offset<B: IoBuf>(&self, buf: B, from: usize) -> (io::Result<usize>, B) {
        let fd = self.f.get().raw();
        let op = Op::Write {
            fd,
            buf: xev::Buf::default(),
        };
        write_count(op, buf, from, None).await
    }

    /// Writes all of `buf`'s initialized bytes, in as many writes as it
    /// takes (each from the same buffer: no copy): the outcome and the
    /// buffer back.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        let len = buf.bytes_init();
        write_all_with(buf, len, |b, sent| self.write_from_offset(b, sent)).await
    }
}
