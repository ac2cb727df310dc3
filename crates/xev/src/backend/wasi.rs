//! The WASI backend (`wasm32-wasip1`, `wasm32-wasip2`): the shared
//! readiness machinery over WASI's `poll(2)` poller, plus what a program
//! with one thread and WASI's system interface needs.
//!
//! - **Readiness** through wasi-libc's `poll`: `poll_oneoff` with
//!   `fd_read`/`fd_write` subscriptions and the clock subscription that
//!   bounds the wait by the loop's timing wheel on preview 1, and
//!   `wasi:io/poll` on preview 2. Everything else (optimistic attempts,
//!   waiter lists, retries, cancellation) is the engine epoll and kqueue
//!   share.
//! - **File operations run inline**: WASI has no threads, so there is no
//!   thread pool; files are always ready, so `pread`, `pwrite` and the
//!   filesystem operations are made at once, on the loop's thread.
//! - **What WASI cannot do is `Unsupported` at once**: process waits
//!   everywhere; on preview 1 also connects and datagram (message)
//!   operations, which need sockets that preview 1 cannot create (it only
//!   accepts, receives, sends and shuts down on sockets handed to the
//!   program). Name lookups (which need the pool) are `Unsupported` in the
//!   loop.
//! - **No wakeups from elsewhere**: the waker is a flag (see `sys/wasi`);
//!   an [`Async`](crate::Async) notified from a callback is seen before the
//!   loop blocks. A loop that would block with nothing that could ever end
//!   the wait (no descriptor, no timer) gets an `Unsupported` error from
//!   `run` instead of hanging.

use std::io;
use std::ptr::NonNull;
use std::time::Duration;

use super::contract::{Backend, CancelStart, Core, Start, Waker};
use super::readiness::Readiness;
use crate::error::UNSUPPORTED;
use crate::op::{Op, Plan};
use crate::options::Options;
use crate::sys;

pub use crate::sys::wasi::poll::PollPoller;

/// The WASI backend.
pub struct Wasi {
    inner: Readiness<PollPoller>,
}

/// Whether WASI cannot perform `op` at all (answered `Unsupported`).
fn unsupported(op: &Op) -> bool {
    match op {
        Op::ProcWait { .. } => true,
        Op::Connect { .. } | Op::Recvmsg(_) | Op::Sendmsg(_) => cfg!(target_env = "p1"),
        Op::Noop
        | Op::Accept { .. }
        | Op::Read { .. }
        | Op::Write { .. }
        | Op::Pread { .. }
        | Op::Pwrite { .. }
        | Op::Recv { .. }
        | Op::RecvPool(_)
        | Op::Send { .. }
        | Op::Poll { .. }
        | Op::Shutdown { .. }
        | Op::Close { .. }
        | Op::Timer { .. }
        | Op::Cancel { .. }
        | Op::AsyncWait(_)
        | Op::Resolve(_)
        | Op::Fs(_) => false,
    }
}

impl Backend for Wasi {
    fn new(opts: &Options) -> io::Result<(Self, Waker)> {
        let (inner, waker) = Readiness::new(opts)?;
        Ok((Wasi { inner }, waker))
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    unsafe fn start(&mut self, core: NonNull<Core>) -> Start {
        let c = core.as_ptr();
        // SAFETY: the loop lends us exclusive access to a live core.
        unsafe {
            if unsupported(&(*c).op) {
                return Start::Done(UNSUPPORTED);
            }
            if let Plan::File = (*c).op.plan() {
                // No threads: the file operation runs here and now.
                return Start::Done(sys::perform(c));
            }
            self.inner.start(core)
        }
    }

    unsafe fn cancel(&mut self, target: NonNull<Core>) -> CancelStart {
        // SAFETY: forwarded from the caller.
        unsafe { self.inner.cancel(target) }
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut dyn FnMut(NonNull<Core>, i32),
    ) -> io::Result<bool> {
        self.inner.poll(timeout, sink)
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    fn has_pending(&mut self) -> bool {
        self.inner.has_pending()
    }

    unsafe fn abandon(&mut self, target: NonNull<Core>) {
        // SAFETY: forwarded from the caller.
        unsafe { self.inner.abandon(target) }
    }

    fn forget(&mut self, fd: crate::RawHandle) {
        self.inner.forget(fd)
    }

    fn drain(&mut self, sink: &mut dyn FnMut(NonNull<Core>, i32)) {
        self.inner.drain(sink)
    }
}
