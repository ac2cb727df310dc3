//! Backends: which kernel interface a loop runs on. Pick one as the `B` of
//! the generic types (`xev::generic::Loop<B>`, `xev::watcher::Tcp<B>`...),
//! or use [`DefaultBackend`](crate::DefaultBackend) through the plain
//! `xev::Loop`, `xev::Tcp`...; [`Backend`] is the bound for code generic
//! over them. What a backend must do, for people who write or review one,
//! is in [`contract`].
//!
//! Every backend implements [`Backend`], the one contract the loop (and so
//! every watcher) is written against. The loop itself handles what is the
//! same everywhere: noops, timers (its own timing wheel), async waits, the
//! submission and completion queues, cancellation bookkeeping and the
//! thread pool. A backend
//! only starts I/O operations, cancels them, and reports raw results
//! (non-negative values or negated errnos, as io_uring does) when they
//! finish.
//!
//! - `io_uring` (Linux): completion-based; the kernel performs the
//!   operations.
//! - `epoll` (Linux): readiness-based, built on the shared readiness
//!   machinery (see [`contract`]) that performs non-blocking
//!   syscalls when descriptors become ready.
//! - `dynamic` (Linux): io_uring or epoll, chosen at run time.
//! - `kqueue` (macOS, FreeBSD; on Linux with `--cfg xev_libkqueue`):
//!   readiness-based on the same shared machinery as epoll.
//! - `iocp` (Windows): completion-based; the kernel performs the
//!   operations and posts packets to the loop's completion port.
//! - `wasi` (WASI preview 1 and 2): readiness-based on the same shared
//!   machinery, over `poll(2)`; file I/O runs inline (no threads).

pub mod contract;

pub use contract::Backend;
pub(crate) use contract::Start;

#[cfg(target_os = "linux")]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub mod dynamic;
#[cfg(target_os = "linux")]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub mod epoll;
#[cfg(target_os = "linux")]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub mod io_uring;
#[cfg(target_os = "linux")]
mod uring_streams;
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    all(target_os = "linux", xev_libkqueue)
))]
#[cfg_attr(docsrs, doc(cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))))]
pub mod kqueue;
#[cfg(windows)]
#[cfg_attr(docsrs, doc(cfg(windows)))]
pub mod iocp;
#[cfg(any(unix, target_os = "wasi"))]
mod readiness;
#[cfg(target_os = "wasi")]
#[cfg_attr(docsrs, doc(cfg(target_os = "wasi")))]
pub mod wasi;

