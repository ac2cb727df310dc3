//! # xev: a completion-based event loop
//!
//! xev is a proactor: you *add* operations (read this socket, fire at this
//! deadline, accept a connection...) to a [`Loop`], each with a callback, and
//! the loop calls the callback with the operation's typed result when it
//! finishes. On Linux it runs on io_uring (the kernel does the I/O) or epoll
//! (the loop does non-blocking I/O when descriptors become ready), on macOS
//! and FreeBSD on kqueue, on Windows on IOCP, on WASI (preview 1 and 2) on
//! `poll`, behind one API. It follows the design of libxev
//! (completions, an explicit run mode, rearm by return value, no allocation
//! at run time), except that the loop owns the completions' memory, so that
//! safe code can never free or move what the kernel may still write.
//!
//! ```
//! use xev::{Action, Loop, Op, OpResult, RunMode};
//!
//! let mut lp = Loop::new(Default::default()).unwrap();
//! let deadline = lp.now() + 5;
//! let mut fired = 0;
//! lp.add(Op::timer(deadline), move |lp, op, res| {
//!     assert!(matches!(res, OpResult::Timer(Ok(()))));
//!     fired += 1;
//!     if fired == 3 {
//!         return Action::Disarm;
//!     }
//!     *op = Op::timer(lp.now() + 5); // repeat in 5 ms: reuse, no allocation
//!     Action::Rearm
//! });
//! lp.run(RunMode::UntilDone).unwrap();
//! ```
//!
//! ## Where to look
//!
//! 1. **The loop**: [`Loop`] (what callbacks get; its methods are on
//!    [`generic::Loop`]), [`OwnedLoop`] (what [`Loop::new`](generic::Loop::new)
//!    returns), [`Options`], [`RunMode`], [`Action`].
//! 2. **Watchers**, what most programs use: [`Tcp`], [`Udp`], [`File`],
//!    [`Stream`], [`Process`], [`Timer`], and [`Async`] for wakeups from
//!    other threads ([`Async::wait`]); generic versions in [`watcher`].
//! 3. **Operations**, the layer underneath: [`Op`], [`OpResult`], [`Id`].
//! 4. **Errors**: one enum per operation family, in [`error`].
//! 5. **Backends**: [`backend`] (and [`backend::contract`] for people who
//!    write one); [`DefaultBackend`] is what the plain types use.
//!
//! ## Safety model
//!
//! Safe code cannot cause a use-after-free or a data race through the loop:
//! completions and the buffers inside their operations belong to the loop
//! while they are in flight (see [`completion`](crate::Completion) for why),
//! and dropping the loop first makes the kernel let go of all of them.
//! Completions cannot be touched while in flight, which the compiler
//! enforces:
//!
//! ```compile_fail
//! use xev::{Action, Completion, Loop, Op};
//! let mut lp = Loop::new(Default::default()).unwrap();
//! let c = Completion::new(Op::Read { fd: 0, buf: vec![0; 8] }, |_: &mut Loop, _: &mut Op, _| Action::Disarm);
//! lp.add_completion(c);
//! let _ = c.op(); // error: `c` was moved into the loop
//! ```
//!
//! A buffer lent to an operation cannot be used until it comes back:
//!
//! ```compile_fail
//! use xev::{Action, Loop, Op};
//! let mut lp = Loop::new(Default::default()).unwrap();
//! let buf = vec![0u8; 8];
//! lp.add(Op::Read { fd: 0, buf }, |_, _, _| Action::Disarm);
//! buf[0] = 1; // error: `buf` was moved into the operation
//! ```
//!
//! Callbacks are stored by the loop, so they cannot borrow from the stack:
//!
//! ```compile_fail
//! use xev::{Action, Loop, Op};
//! let mut lp = Loop::new(Default::default()).unwrap();
//! let mut count = 0;
//! lp.add(Op::Noop, |_, _, _| { count += 1; Action::Disarm }); // error: borrows `count`
//! ```
//!
//! A loop is bound to its thread:
//!
//! ```compile_fail
//! let lp = xev::Loop::new(Default::default()).unwrap();
//! std::thread::spawn(move || drop(lp)); // error: `Loop` is not `Send`
//! ```

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]

/// Applies the targets xev supports to every item of the crate, so that
/// any other target stops at the one `compile_error!` below instead of at
/// dozens of missing platform items.
macro_rules! supported {
    ($($item:item)*) => {
        $(
            #[cfg(any(
                target_os = "linux",
                target_os = "macos",
                target_os = "ios",
                target_os = "freebsd",
                target_os = "wasi",
                windows
            ))]
            $item
        )*
    };
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "wasi",
    windows
)))]
compile_error!(
    "xev supports Linux (io_uring, epoll), macOS and FreeBSD (kqueue), \
     Windows (IOCP) and WASI preview 1 and 2 (poll) only"
);

supported! {

mod async_handle;
pub mod backend;
mod buf;
mod buf_pool;
mod capabilities;
pub mod error;
mod event_loop;
mod fs;
mod id;
mod mpsc;
mod op;
mod options;
mod queue;
mod record;
mod recycle;
mod resolve;
mod shared;
pub mod signal;
mod sys;
mod thread_pool;
mod timer_set;
mod timer_wheel;
pub mod watcher;

pub use async_handle::Async;
pub use buf::Buf;
pub use buf_pool::{BufPool, PoolBuf, PoolRecv};
pub use capabilities::{Capabilities, Via};
pub use error::{
    AcceptError, AsyncError, CancelError, CloseError, ConnectByNameError, ConnectError, FsError, IdError, NoopError, PollError,
    ProcessError, ReadError, ResolveError, ShutdownError, SignalError, TimerError, WriteError,
};
pub use event_loop::completion::Callback;
pub use event_loop::RunMode;
pub use id::Id;
pub use op::{Interest, Msg, Op, OpKind, OpResult, Readiness};
pub use options::Options;
pub use op::{OwnedHandle, RawHandle};
/// The socket address type of [`Op::Connect`] (from `socket2`; on WASI
/// preview 1, which `socket2` does not support, a small type of xev's).
pub use sys::types::SockAddr;
pub use record::Action;
pub use resolve::Resolve;
pub use signal::SignalSubscription;
pub use timer_set::{TimerId, TimerSet};
pub use fs::{DirEntry, FileKind, FileStat, Fs, FsOutput, OpenFlags};
pub use thread_pool::{
    Batch as ThreadPoolBatch, Config as ThreadPoolConfig, Task as ThreadPoolTask, ThreadPool,
};

/// A timer watcher on the default backend: [`watcher::Timer`] (whose page lists its
/// methods) with [`DefaultBackend`].
pub type Timer = watcher::Timer<DefaultBackend>;
/// A TCP watcher on the default backend: [`watcher::Tcp`] (whose page lists its
/// methods) with [`DefaultBackend`].
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub type Tcp = watcher::Tcp<DefaultBackend>;
/// A UDP watcher on the default backend: [`watcher::Udp`] (whose page lists its
/// methods) with [`DefaultBackend`].
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub type Udp = watcher::Udp<DefaultBackend>;
/// A stream (pipe, tty, any fd) watcher on the default backend:
/// [`watcher::Stream`] (whose page lists its methods) with [`DefaultBackend`].
pub type Stream = watcher::Stream<DefaultBackend>;
/// A file watcher on the default backend: [`watcher::File`] (whose page lists its
/// methods) with [`DefaultBackend`].
pub type File = watcher::File<DefaultBackend>;
/// A process watcher on the default backend: [`watcher::Process`] (whose page lists its
/// methods) with [`DefaultBackend`].
#[cfg(not(target_os = "wasi"))]
pub type Process = watcher::Process<DefaultBackend>;

/// A signal watcher on the default backend: [`watcher::Signal`] (whose page
/// lists its methods) with [`DefaultBackend`].
pub type Signal = watcher::Signal<DefaultBackend>;

/// The backend-generic types, for code that picks its backend (or works
/// with any).
pub mod generic {
    pub use crate::event_loop::completion::Completion;
    pub use crate::event_loop::{Loop, OwnedLoop};
}

/// The target's default backend. On Linux it is [`backend::dynamic::Dynamic`]:
/// io_uring where the kernel allows it, else epoll (`XEV_BACKEND` forces
/// one). A fixed io_uring default would make every program fail outright in
/// the many containers whose seccomp profile forbids io_uring; the run-time
/// choice costs one predictable branch per backend call. Use
/// `generic::Loop<backend::io_uring::IoUring>` to pin a backend.
#[cfg(target_os = "linux")]
pub type DefaultBackend = backend::dynamic::Dynamic;

/// The target's default backend: WASI poll on `wasm32-wasip1` and
/// `wasm32-wasip2`.
#[cfg(target_os = "wasi")]
#[cfg_attr(docsrs, doc(cfg(target_os = "wasi")))]
pub type DefaultBackend = backend::wasi::Wasi;

/// The target's default backend: kqueue on macOS and FreeBSD.
#[cfg(all(unix, not(target_os = "linux")))]
pub type DefaultBackend = backend::kqueue::Kqueue;

/// The target's default backend: IOCP on Windows.
#[cfg(windows)]
#[cfg_attr(docsrs, doc(cfg(windows)))]
pub type DefaultBackend = backend::iocp::Iocp;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// A loop on the default backend: what callbacks receive and watcher
/// methods take: [`generic::Loop`] (whose page lists its methods) with
/// [`DefaultBackend`]. [`Loop::new`](generic::Loop::new) returns an [`OwnedLoop`].
pub type Loop = generic::Loop<DefaultBackend>;

/// An owned loop on the default backend: runs and drops the loop, and
/// dereferences to [`Loop`].
pub type OwnedLoop = generic::OwnedLoop<DefaultBackend>;

/// A completion for a loop on the default backend.
pub type Completion<F> = generic::Completion<DefaultBackend, F>;
}
