//! The kqueue backend (macOS, FreeBSD; on Linux against libkqueue with
//! `--cfg xev_libkqueue`): the thin, kqueue-specific part of a readiness
//! backend.
//!
//! Everything else (optimistic attempts, per-descriptor waiter lists,
//! retries, timers, the thread pool for file I/O) is the shared
//! [`readiness`](super::contract) machinery, exactly as for epoll. What is
//! kqueue's own:
//!
//! - **One `kevent` call per tick.** Registrations are queued in a change
//!   list and submitted together with the wait, so a tick that starts ten
//!   waits makes one syscall. The list is flushed on every wait, including a
//!   no-wait tick.
//! - **Edge-triggered filters** (`EV_CLEAR`) for `EVFILT_READ` and
//!   `EVFILT_WRITE`, added once per descriptor. Re-adding is idempotent, so a
//!   descriptor that may have been closed and reused is simply added again.
//!   Closing a descriptor removes its filters in the kernel; pending changes
//!   for it are dropped from the change list first, so a stale change can
//!   never reach a reused descriptor number.
//! - **Process exits** through `EVFILT_PROC` with `NOTE_EXIT` (one-shot,
//!   keyed by pid), for [`Op::ProcWait`](crate::Op::ProcWait).
//! - **Stale events**: an event is matched to waiters by descriptor (or pid)
//!   when it is processed, never by a pointer stored in the kernel, so an
//!   event for a completion that was already canceled or finished finds no
//!   waiter and is dropped (libxev issues #122, #169, #230, #234 were stale
//!   pointers of this kind).

pub use crate::sys::kqueue::KqueuePoller;

use super::readiness::Readiness;

/// The kqueue backend.
pub type Kqueue = Readiness<KqueuePoller>;
