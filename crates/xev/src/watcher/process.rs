//! The process watcher (Linux): wait for a child process to exit without
//! blocking the loop, and get its [`ExitStatus`].
//!
//! As in libxev, the watcher holds a pidfd (`pidfd_open(2)`, Linux 5.3;
//! waiting uses `waitid(P_PIDFD)`, Linux 5.4). A wait polls the pidfd for
//! readability through the loop (so it works the same on io_uring and
//! epoll), then reaps the child with `waitid(P_PIDFD, WEXITED | WNOHANG)`:
//! reaping through the pidfd, not by pid number, can never reap an
//! unrelated process that reused the number. The status is rebuilt from
//! the kernel's `siginfo` so that [`ExitStatus::code`] and
//! [`ExitStatusExt::signal`] report exactly what happened (exit code, or
//! the signal that killed the child, and whether it dumped core).
//!
//! # The pidfd's life
//!
//! Nothing but the watcher ever waits on its pidfd, but a wait in flight
//! polls its descriptor number, so the pidfd is shared with the callbacks
//! of the waits in flight and stays open while any of them may use it.
//! [`Process::close`] cancels the waits in flight (and frees parked ones)
//! and closes the pidfd through the loop once the last has ended; dropping
//! the watcher does the same at the loop's next tick (or right after the
//! callback that dropped it), so a pending wait ends with `Canceled`, its
//! callback running once. A watcher never used with a loop, or whose loop
//! was dropped, closes the pidfd directly when dropped. Neither closing
//! nor dropping kills or reaps the process.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::rc::Rc;

use super::request::unexpected;
use super::shared_fd::FdOwner;
use crate::backend::Backend;
use crate::error::{CloseError, ProcessError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Op, OpResult};
use crate::record::Action;

/// A watcher for the exit of one child process. Its waits go to one loop
/// at a time (see [`Udp`](super::udp::Udp) for why).
///
/// ```
/// use std::os::unix::process::ExitStatusExt;
/// use std::process::Command;
/// use xev::watcher::process::Process;
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
pub struct Process<B: Backend> {
    pidfd: FdOwner<B>,
    pid: i32,
    /// The status, once reaped (a process is reaped once; later waits report
    /// it again). Shared with the callbacks of waits in flight.
    status: Rc<Cell<Option<ExitStatus>>>,
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
    /// [`ProcessError::Unsupported`] when the kernel or a sandbox refuses
    /// pidfds (`ENOSYS`/`EPERM`, or `waitid` without `P_PIDFD`); an
    /// `InvalidInput` [`ProcessError::Io`] for a pid that is not positive.
    pub fn new(pid: i32) -> Result<Process<B>, ProcessError> {
        if pid <= 0 {
            return Err(ProcessError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("xev::Process: invalid pid {pid} (must be positive)"),
            )));
        }
        let pidfd = crate::sys::pidfd_open(pid).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM) => ProcessError::Unsupported,
            Some(libc::ESRCH) => ProcessError::NotChild,
            _ => ProcessError::Io(e),
        })?;
        // The pidfd names exactly the process we will wait for: ask the
        // kernel whether it is our child without reaping it. (`waitid`
        // answers ECHILD for a process that is not our child, or that was
        // reaped already.)
        check_child(pidfd.as_raw_fd())?;
        Ok(Process {
            pidfd: FdOwner::new(pidfd),
            pid,
            status: Rc::new(Cell::new(None)),
        })
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

    /// The pidfd the watcher waits on (still owned by the watcher). `None`
    /// on kqueue systems, which watch the pid itself.
    pub fn pidfd(&self) -> Option<RawFd> {
        Some(self.pidfd.share().raw()).filter(|&fd| fd >= 0)
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
    /// by [`Process::close`]). Each call adds one completion (memory
    /// recycled by the loop).
    pub fn wait<F>(&self, lp: &mut Loop<B>, mut cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<ExitStatus, ProcessError>) -> Action + 'static,
    {
        let status = Rc::clone(&self.status);
        let fd = self.pidfd.share().raw();
        let op = Op::ProcWait { pid: self.pid, fd };
        self.pidfd.track(lp, op, move |mut t| {
            move |lp: &mut Loop<B>, _: &mut Op, res: OpResult| {
                let r = match res {
                    // The pidfd stays open while this wait is tracked, so
                    // `fd` still names it.
                    OpResult::ProcExit(Ok(())) => match status.get() {
                        Some(s) => Ok(s),
                        None => match reap(fd) {
                            Ok(Some(s)) => {
                                status.set(Some(s));
                                Ok(s)
                            }
                            // Readable but not reapable yet: poll again.
                            Ok(None) if !t.share().is_closing() => return Action::Rearm,
                            Ok(None) => Err(ProcessError::Canceled),
                            Err(e) => Err(e),
                        },
                    },
                    // Already reaped by an earlier wait: kqueue then finds
                    // no such child; the cached status is the answer.
                    OpResult::ProcExit(Err(ProcessError::NotChild)) => {
                        status.get().ok_or(ProcessError::NotChild)
                    }
                    OpResult::ProcExit(Err(e)) => Err(e),
                    other => Err(ProcessError::Io(unexpected(&other))),
                };
                let action = cb(lp, r);
                t.settle(lp, action)
            }
        })
    }

    /// Closes the pidfd through the loop: cancels the waits in flight
    /// (their callbacks run with `Canceled` unless they had finished) and
    /// frees parked ones, then closes it and calls `cb`. Does not kill or
    /// reap the process. Dropping the watcher does the same, ignoring the
    /// close's result.
    pub fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        self.pidfd.close(lp, cb)
    }
}

/// Whether the process behind `pidfd` is our child, without reaping it.
fn check_child(pidfd: RawFd) -> Result<(), ProcessError> {
    match crate::sys::waitid_pidfd(pidfd, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.raw_os_error() {
            Some(libc::ECHILD) => ProcessError::NotChild,
            // Linux 5.3 has pidfd_open but waitid does not know P_PIDFD.
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EPERM) => {
                ProcessError::Unsupported
            }
            _ => ProcessError::Io(e),
        }),
    }
}

/// Reaps the process behind `pidfd` if it has exited: `Ok(None)` when it
/// has not.
fn reap(pidfd: RawFd) -> Result<Option<ExitStatus>, ProcessError> {
    let info = crate::sys::waitid_pidfd(pidfd, libc::WEXITED | libc::WNOHANG).map_err(|e| {
        if e.raw_os_error() == Some(libc::ECHILD) {
            ProcessError::NotChild
        } else {
            ProcessError::Io(e)
        }
    })?;
    // SAFETY: after a successful waitid the kernel has filled in the SIGCHLD
    // member of the union (pid, uid, status), or left the zeroed struct
    // alone when no child was ready (si_pid stays 0); both are plain
    // integers, valid to read either way.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    wait_status(info.si_code, status)
        .map(|raw| Some(ExitStatus::from_raw(raw)))
        .ok_or_else(|| {
            ProcessError::Io(io::Error::other(format!(
                "waitid reported an unexpected si_code {}",
                info.si_code
            )))
        })
}

/// Rebuilds the `wait(2)` status word that `ExitStatus::from_raw` expects
/// from `waitid`'s `si_code` and `si_status`.
fn wait_status(code: libc::c_int, status: libc::c_int) -> Option<libc::c_int> {
    match code {
        // WIFEXITED: exit code in bits 8..16.
        libc::CLD_EXITED => Some((status & 0xff) << 8),
        // WIFSIGNALED: the signal in the low 7 bits.
        libc::CLD_KILLED => Some(status & 0x7f),
        // ... plus the core-dump flag.
        libc::CLD_DUMPED => Some((status & 0x7f) | 0x80),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_round_trips() {
        let s = ExitStatus::from_raw(wait_status(libc::CLD_EXITED, 42).unwrap());
        assert_eq!((s.code(), s.signal()), (Some(42), None));
        let s = ExitStatus::from_raw(wait_status(libc::CLD_KILLED, 9).unwrap());
        assert_eq!(
            (s.code(), s.signal(), s.core_dumped()),
            (None, Some(9), false)
        );
        let s = ExitStatus::from_raw(wait_status(libc::CLD_DUMPED, 11).unwrap());
        assert_eq!(
            (s.code(), s.signal(), s.core_dumped()),
            (None, Some(11), true)
        );
        assert!(wait_status(libc::CLD_STOPPED, 19).is_none());
    }
}
