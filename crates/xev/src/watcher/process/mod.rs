//! The process watcher: wait for a child process to exit without blocking
//! the loop, and get its [`ExitStatus`].
//! (The whole story is on [`Process`](super::Process).)

use std::cell::Cell;
use std::fmt;
use std::io;
use crate::op::RawHandle as RawFd;
use std::process::{Child, Command, ExitStatus};

use super::Stream;
use std::rc::Rc;

use crate::backend::Backend;
use crate::error::{CloseError, ProcessError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::record::Action;

#[cfg(all(unix, not(target_os = "linux")))]
mod kqueue;
#[cfg(target_os = "linux")]
mod pidfd;
mod status;
#[cfg(not(target_os = "linux"))]
mod waits;
#[cfg(windows)]
mod windows;

#[cfg(all(unix, not(target_os = "linux")))]
use kqueue::Watch;
#[cfg(target_os = "linux")]
use pidfd::Watch;
#[cfg(windows)]
use windows::Watch;

/// The process watcher: wait for a child process to exit without blocking
/// the loop, and get its [`ExitStatus`].
///
/// One [`Process`] type with one API on every platform; how it waits is
/// platform-specific, behind the private `Watch` of each platform module:
///
/// - **Linux** (`pidfd.rs`): as in libxev, the watcher holds a pidfd
///   (`pidfd_open(2)`, Linux 5.3; waiting uses `waitid(P_PIDFD)`, Linux
///   5.4). A wait polls the pidfd for readability through the loop (so it
///   works the same on io_uring and epoll), then reaps the child with
///   `waitid(P_PIDFD, WEXITED | WNOHANG)`: reaping through the pidfd, not by
///   pid number, can never reap an unrelated process that reused the
///   number. The status is rebuilt from the kernel's `siginfo` so that
///   [`ExitStatus::code`] and `ExitStatusExt::signal` (Unix) report exactly what
///   happened (exit code, or the signal that killed the child, and whether
///   it dumped core).
/// - **Windows** (`windows.rs`): the watcher opens the process (a handle,
///   so a reused process id can never redirect it); a wait is an
///   [`Op::ProcWait`](crate::Op::ProcWait) on the handle, which the IOCP
///   backend turns into a job object reporting to the loop's completion
///   port (`JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO`); the exit code is read
///   with `GetExitCodeProcess`.
/// - **kqueue systems** (macOS, FreeBSD; `kqueue.rs`): no pidfd. A wait is
///   an [`Op::ProcWait`](crate::Op::ProcWait) on the pid, which kqueue watches with `EVFILT_PROC`
///   and `NOTE_EXIT`; once it fires the child is reaped with
///   `waitpid(WNOHANG)`. The parent is the only one who can reap its child,
///   so the pid cannot be reused before that reap.
///
/// # Closing and dropping
///
/// [`Process::close`] cancels the waits in flight (their callbacks run
/// once, with `Canceled` unless they had finished) and frees parked ones;
/// dropping the watcher does the same at the loop's next tick (or right
/// after the callback that dropped it). Neither closing nor dropping kills
/// or reaps the process, unless [`Process::kill_on_drop`] asked for the
/// kill.
///
/// # Spawning and killing
///
/// [`Process::spawn`] starts a [`Command`] and hands back the watcher and
/// the parent's ends of the pipes the command asked for as [`Stream`]s
/// ([`Spawned`]). [`Process::kill`] (and `Process::signal` on Unix) can
/// never reach another process that reused the pid: Linux signals through
/// the pidfd, Windows terminates through the watcher's process handle, and
/// kqueue systems signal the pid only while the child is not reaped.
///
/// On Linux there is also the pidfd to close. Nothing but the watcher ever
/// waits on it, but a wait in flight polls its descriptor number, so the
/// pidfd is shared with the callbacks of the waits in flight and stays
/// open while any of them may use it: it is closed through the loop once
/// the last has ended. A watcher never used with a loop, or whose loop was
/// dropped, closes the pidfd directly when dropped. On kqueue systems there
/// is no descriptor: `close` calls its callback once the waits are ended.
///
/// A watcher for the exit of one child process. Its waits go to one loop
/// at a time (see [`Udp`](super::Udp) for why).
///
/// ```
/// use std::os::unix::process::ExitStatusExt;
/// use std::process::Command;
/// use xev::watcher::Process;
/// use xev::{Action, Loop, RunMode};
///
/// let mut lp = Loop::new(Default::default()).unwrap();
/// let child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
/// let p = match Process::from_child(&child) {
///     Ok(p) => p,
///     Err(xev::ProcessError::Unsupported) => return, // no pidfd in this sandbox
///     Err(e) => panic!("{e}"),
/// };
/// p.wait(&mut lp, |_lp, res| {
///     let status = res.unwrap();
///     assert_eq!(status.code(), Some(7));
///     assert_eq!(status.signal(), None);
///     Action::Disarm
/// });
/// lp.run(RunMode::UntilDone).unwrap();
/// assert_eq!(p.exit_status().and_then(|s| s.code()), Some(7));
/// p.close(&mut lp, |_, res| res.unwrap());
/// lp.run(RunMode::UntilDone).unwrap();
/// ```
#[must_use = "a process watcher does nothing until `wait`; dropping it stops watching"]
pub struct Process<B: Backend = crate::DefaultBackend> {
    pid: i32,
    /// The status, once reaped (a process is reaped once; later waits report
    /// it again). Shared with the callbacks of waits in flight.
    status: Rc<Cell<Option<ExitStatus>>>,
    /// The platform's way of waiting (and what `close` and `Drop` release);
    /// `None` only inside `close`.
    watch: Option<Watch<B>>,
    /// Whether closing or dropping the watcher kills a child not reaped yet.
    kill_on_drop: Cell<bool>,
}

/// A child started by [`Process::spawn`]: its watcher, and the parent's
/// ends of the pipes the command asked for, as streams (`None` for a
/// stream that was not piped).
#[derive(Debug)]
pub struct Spawned<B: Backend = crate::DefaultBackend> {
    /// The watcher of the child.
    pub process: Process<B>,
    /// Writes to the child's stdin (close it to send end of file).
    pub stdin: Option<Stream<B>>,
    /// Reads the child's stdout.
    pub stdout: Option<Stream<B>>,
    /// Reads the child's stderr.
    pub stderr: Option<Stream<B>>,
}

/// The parent's end of a child's pipe as a stream.
#[cfg(unix)]
fn stream_of<B: Backend>(pipe: impl Into<std::os::fd::OwnedFd>) -> io::Result<Stream<B>> {
    Stream::from_fd(pipe.into())
}

/// The parent's end of a child's pipe as a stream.
#[cfg(windows)]
fn stream_of<B: Backend>(pipe: impl Into<std::os::windows::io::OwnedHandle>) -> io::Result<Stream<B>> {
    Ok(Stream::from_handle(pipe.into()))
}

impl<B: Backend> fmt::Debug for Process<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("status", &self.status.get())
            .finish()
    }
}

impl<B: Backend> Process<B> {
    /// Watches the child process `pid`.
    ///
    /// Errors: [`ProcessError::NotChild`] when no such process exists or it
    /// is not a child of this process (or was reaped already);
    /// [`ProcessError::Unsupported`] (Linux only) when the kernel or a
    /// sandbox refuses pidfds (`ENOSYS`/`EPERM`, or `waitid` without
    /// `P_PIDFD`); an `InvalidInput` [`ProcessError::Io`] for a pid that is
    /// not positive.
    pub fn new(pid: i32) -> Result<Process<B>, ProcessError> {
        if pid <= 0 {
            return Err(ProcessError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("xev::Process: invalid pid {pid} (must be positive)"),
            )));
        }
        Ok(Process {
            pid,
            status: Rc::new(Cell::new(None)),
            watch: Some(Watch::new(pid)?),
            kill_on_drop: Cell::new(false),
        })
    }

    /// Spawns `cmd` and watches the child. The pipes the command asks for
    /// (`Stdio::piped()` for stdin, stdout or stderr) come back as
    /// [`Stream`]s, the parent's ends of them (non-blocking and
    /// close-on-exec on Unix; on Windows as std creates them). The child's
    /// [`std::process::Child`] is not returned: the watcher waits for and
    /// reaps the child, and [`Process::kill`] ends it.
    ///
    /// Errors: a failed spawn is a [`ProcessError::Io`]; where the child
    /// cannot be watched ([`ProcessError::Unsupported`], Linux without
    /// pidfds) it is killed and reaped before the error is returned.
    pub fn spawn(cmd: &mut Command) -> Result<Spawned<B>, ProcessError> {
        let mut child = cmd.spawn().map_err(ProcessError::Io)?;
        let process = match Process::from_child(&child) {
            Ok(p) => p,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let stdin = child.stdin.take().map(stream_of).transpose();
        let stdout = child.stdout.take().map(stream_of).transpose();
        let stderr = child.stderr.take().map(stream_of).transpose();
        match (stdin, stdout, stderr) {
            (Ok(stdin), Ok(stdout), Ok(stderr)) => Ok(Spawned {
                process,
                stdin,
                stdout,
                stderr,
            }),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                let _ = process.kill();
                Err(ProcessError::Io(e))
            }
        }
    }

    /// Watches a child spawned with [`std::process::Command`]. Once the
    /// watcher has reaped it, do not call `Child::wait`/`try_wait`/`kill`
    /// (the pid is free for reuse then); `Child::kill` before that is fine.
    pub fn from_child(child: &Child) -> Result<Process<B>, ProcessError> {
        let pid = i32::try_from(child.id()).map_err(|_| ProcessError::NotChild)?;
        Self::new(pid)
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The exit status, once a wait has reaped the process.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.status.get()
    }

    /// The pidfd the watcher waits on, on Linux (still owned by the
    /// watcher). `None` on kqueue systems, which watch the pid itself.
    pub fn pidfd(&self) -> Option<RawFd> {
        self.watch().pidfd()
    }

    /// Kills the process: `SIGKILL` on Unix, `TerminateProcess` (exit
    /// code 1) on Windows, as [`std::process::Child::kill`] does. It can
    /// never hit another process: on Linux the signal goes through the
    /// pidfd; on kqueue systems by pid, but only while the watcher has not
    /// reaped the child (the number cannot be reused before that); on
    /// Windows through the watcher's process handle. A process that has
    /// exited already is left alone and the answer is `Ok(())`, as for
    /// `Child::kill`. A wait then reports the status (on Unix, killed by
    /// `SIGKILL`; on Windows, exit code 1).
    pub fn kill(&self) -> Result<(), ProcessError> {
        if self.status.get().is_some() {
            return Ok(());
        }
        #[cfg(unix)]
        return match self.signal(libc::SIGKILL) {
            // Exited, not reaped yet: already gone.
            Err(ProcessError::Io(e)) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        };
        #[cfg(windows)]
        return self.watch().kill().map_err(ProcessError::Io);
    }

    /// Sends signal `sig` to the process (Unix), with the same guarantee
    /// as [`Process::kill`]: never to another process. Once the watcher has
    /// reaped the child the answer is [`ProcessError::NotChild`] (it is no
    /// longer ours to signal); for one that exited but is not reaped yet,
    /// an `ESRCH` [`ProcessError::Io`] on Linux (the signal is lost).
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn signal(&self, sig: i32) -> Result<(), ProcessError> {
        if self.status.get().is_some() {
            return Err(ProcessError::NotChild);
        }
        #[cfg(target_os = "linux")]
        let r = self.watch().signal(sig);
        #[cfg(not(target_os = "linux"))]
        let r = self.watch().signal(self.pid, sig);
        r.map_err(ProcessError::Io)
    }

    /// Waits for the process to exit (it may have exited already: the wait
    /// then completes on the next tick) and reaps it. `cb` gets its status;
    /// `Err(ProcessError::NotChild)` when something else reaped it first
    /// (`Child::wait`, a `waitpid(-1)` or `SIGCHLD` set to `SIG_IGN`);
    /// `Err(ProcessError::Canceled)` when canceled or closed.
    ///
    /// Once the status is known every wait (a second one, or a rearmed
    /// one: [`Action::Rearm`] waits again) reports it again at once.
    /// [`Action::Disarm`] ends the wait; [`Action::Park`] keeps its
    /// completion parked for [`Loop::restart`] with the returned id (freed
    /// by [`Process::close`]). After [`Process::close`] (or a drop)
    /// `Rearm` and `Park` end the wait. Each call adds one completion
    /// (memory recycled by the loop).
    pub fn wait<F>(&self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<ExitStatus, ProcessError>) -> Action + 'static,
    {
        self.watch().wait(lp, self.pid, Rc::clone(&self.status), cb)
    }

    /// Stops watching: cancels the waits in flight (their callbacks run
    /// with `Canceled` unless they had finished) and frees parked ones,
    /// then closes the pidfd through the loop (Linux; kqueue systems have
    /// no descriptor) and calls `cb` with the result. Does not kill or reap
    /// the process. Dropping the watcher does the same, ignoring the
    /// result.
    pub fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        let mut this = self;
        this.kill_if_asked();
        match this.watch.take() {
            Some(watch) => watch.close(lp, cb),
            // Unreachable: only `close` takes it, and it consumes the watcher.
            None => Id::DETACHED,
        }
    }

    /// Whether closing or dropping this watcher kills the child if it has
    /// not been reaped yet (default: no, as for `std::process::Child`).
    /// For a supervisor that must not leave children behind.
    pub fn kill_on_drop(&self, kill: bool) {
        self.kill_on_drop.set(kill);
    }

    fn watch(&self) -> &Watch<B> {
        self.watch.as_ref().expect("a process watcher has its watch until closed")
    }

    /// Kills the child if [`Process::kill_on_drop`] asked for it and it has
    /// not been reaped (errors ignored: the watcher is going away).
    fn kill_if_asked(&self) {
        if self.kill_on_drop.get() && self.watch.is_some() {
            let _ = self.kill();
        }
    }
}

impl<B: Backend> Drop for Process<B> {
    fn drop(&mut self) {
        self.kill_if_asked();
    }
}

