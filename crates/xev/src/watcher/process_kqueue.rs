//! The process watcher on kqueue systems (macOS, FreeBSD): wait for a child
//! process to exit without blocking the loop, and get its [`ExitStatus`].
//!
//! The same API as the Linux watcher, without pidfds: a wait is an
//! [`Op::ProcWait`] on the pid, which kqueue watches with `EVFILT_PROC` and
//! `NOTE_EXIT`; once it fires the child is reaped with `waitpid(WNOHANG)`.
//! The parent is the only one who can reap its child, so the pid cannot be
//! reused before that reap.
//!
//! There is no descriptor to close: [`Process::close`] cancels the waits in
//! flight (their callbacks run once, with `Canceled` unless they had
//! finished) and frees parked ones, then calls its callback. Dropping the
//! watcher does the same at the loop's next tick (or right after the
//! callback that dropped it). Neither kills nor reaps the process.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::rc::Rc;

use super::request::unexpected;
use crate::backend::Backend;
use crate::error::{CloseError, ProcessError};
use crate::event_loop::orphans::{Orphan, Orphans};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Op, OpResult};
use crate::record::Action;

/// A watcher for the exit of one child process. Its waits go to one loop
/// at a time.
#[must_use = "a process watcher does nothing until `wait`; dropping it stops watching"]
pub struct Process<B: Backend> {
    pid: i32,
    /// The status, once reaped; later waits report it again.
    status: Rc<Cell<Option<ExitStatus>>>,
    /// Waits in flight or parked, for `close` and `Drop`.
    waits: Rc<Waits>,
    /// The inbox of the loop of the latest wait, for `Drop`.
    orphans: RefCell<Option<Rc<Orphans<B>>>>,
    _backend: PhantomData<fn() -> B>,
}

/// The waits of a watcher, shared with their callbacks.
#[derive(Default)]
struct Waits {
    ids: RefCell<Vec<Id>>,
    /// Set by `close` and `Drop`: callbacks then end their waits.
    closed: Cell<bool>,
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
    /// Watches the child process `pid`: [`ProcessError::NotChild`] when it
    /// is not a child of this process (or was reaped already); an
    /// `InvalidInput` error for a pid that is not positive.
    pub fn new(pid: i32) -> Result<Process<B>, ProcessError> {
        if pid <= 0 {
            return Err(ProcessError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("xev::Process: invalid pid {pid} (must be positive)"),
            )));
        }
        if let Some(r) = crate::sys::proc_exited(pid) {
            if r < 0 {
                return Err(if r == -libc::ECHILD {
                    ProcessError::NotChild
                } else {
                    ProcessError::Io(io::Error::from_raw_os_error(-r))
                });
            }
        }
        Ok(Process {
            pid,
            status: Rc::new(Cell::new(None)),
            waits: Rc::default(),
            orphans: RefCell::new(None),
            _backend: PhantomData,
        })
    }

    /// Watches a child spawned with [`std::process::Command`].
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

    /// The pidfd the watcher waits on on Linux: always `None` here (kqueue
    /// watches the pid itself).
    pub fn pidfd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// Waits for the child to exit; `cb` gets its status (every later wait
    /// reports it again), or `Err(ProcessError::Canceled)`. After
    /// [`Process::close`] (or a drop) `Rearm` and `Park` end the wait.
    pub fn wait<F>(&self, lp: &mut Loop<B>, mut cb: F) -> Id
    where
        F: FnMut(&mut Loop<B>, Result<ExitStatus, ProcessError>) -> Action + 'static,
    {
        let (pid, status, waits) = (self.pid, self.status.clone(), self.waits.clone());
        let id = Rc::new(Cell::new(None::<Id>));
        let me = id.clone();
        let new = lp.add(Op::ProcWait { pid, fd: -1 }, move |lp, _, res| {
            let r = match res {
                OpResult::ProcExit(Ok(())) => match status.get() {
                    Some(s) => Ok(s),
                    None => reap(pid).inspect(|s| status.set(Some(*s))),
                },
                OpResult::ProcExit(Err(ProcessError::NotChild)) => {
                    status.get().ok_or(ProcessError::NotChild)
                }
                OpResult::ProcExit(Err(e)) => Err(e),
                other => Err(ProcessError::Io(unexpected(&other))),
            };
            let mut action = cb(lp, r);
            if waits.closed.get() {
                action = Action::Disarm;
            }
            if action == Action::Disarm {
                if let Some(me) = me.get() {
                    waits.ids.borrow_mut().retain(|w| *w != me);
                }
            }
            action
        });
        id.set(Some(new));
        self.waits.ids.borrow_mut().push(new);
        let inbox = lp.orphans();
        let mut cur = self.orphans.borrow_mut();
        if !cur.as_ref().is_some_and(|c| Rc::ptr_eq(c, &inbox)) {
            *cur = Some(inbox);
        }
        new
    }

    /// Cancels the waits in flight (their callbacks run once, with
    /// `Canceled` unless they had finished) and frees parked ones, then
    /// calls `cb`. Does not kill or reap the process.
    pub fn close<F>(self, lp: &mut Loop<B>, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(), CloseError>) + 'static,
    {
        self.waits.closed.set(true);
        let ids = std::mem::take(&mut *self.waits.ids.borrow_mut());
        for id in ids {
            if lp.cancel(id).is_err() {
                // Parked: freed now; finished or running: freed once its
                // callback returns (or `Busy`, and it ends by itself).
                let _ = lp.free(id);
            }
        }
        let mut cb = Some(cb);
        lp.add(Op::Noop, move |lp, _, _| {
            if let Some(cb) = cb.take() {
                cb(lp, Ok(()));
            }
            Action::Disarm
        })
    }
}

impl<B: Backend> Drop for Process<B> {
    fn drop(&mut self) {
        if self.waits.closed.replace(true) {
            return; // closed already
        }
        let ids = std::mem::take(&mut *self.waits.ids.borrow_mut());
        if let Some(inbox) = self.orphans.get_mut().take() {
            // Each wait is canceled (or freed, if parked) at the loop's next
            // tick; when the loop is gone, so are the waits.
            for id in ids {
                let _ = inbox.push(Orphan::Free(id));
            }
        }
    }
}

/// Reaps `pid`, which kqueue reported as exited.
fn reap(pid: i32) -> Result<ExitStatus, ProcessError> {
    match crate::sys::waitpid_nohang(pid) {
        Ok(Some(status)) => Ok(ExitStatus::from_raw(status)),
        Ok(None) => Err(ProcessError::Io(io::Error::other(
            "the child was reported exited but cannot be reaped yet",
        ))),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Err(ProcessError::NotChild),
        Err(e) => Err(ProcessError::Io(e)),
    }
}
