//! Watchers: platform-agnostic, high-level sugar over completions, written
//! once against the [`Backend`](crate::backend::Backend) contract so they
//! work on every backend.
//!
//! - [`Timer`]: run, reset, cancel, repeat by rearm.
//! - [`Async::wait`](crate::Async::wait): cross-thread wakeups.
//! - [`Tcp`], [`Udp`], [`Stream`] (pipes, ttys, any fd),
//!   [`File`]: reads, writes, write queues (with backpressure: their
//!   queued bytes and a callback when they drain), close.
//! - [`Process`]: wait for a child's exit and read its status.
//! - [`fs_op`] and the [`File`] methods `stat`, `sync`, `set_len`...:
//!   filesystem operations ([`Fs`](crate::Fs)).
//! - [`Signal`]: each delivery of a signal (a console event on Windows).
//! - [`resolve`], [`Tcp::connect_by_name`], [`Udp::for_peer`]: names to
//!   addresses on the thread pool.
//!
//! Every request takes a closure that receives the loop and a typed result
//! (and, for reads and writes, the buffer it lent to the kernel) and returns
//! an [`Action`](crate::Action): `Rearm` repeats the request, `Disarm` ends
//! it, `Park` keeps its completion for [`Loop::restart`](crate::generic::Loop::restart).
//! Nothing allocates in steady state: the [`Timer`] owns one parked
//! completion for its whole life, and the other watchers add one completion
//! per request in memory the loop recycles from finished completions of the
//! same type. Each method returns the request's [`Id`](crate::Id), for
//! [`Loop::cancel`](crate::generic::Loop::cancel).
//!
//! Dropping a watcher releases it the same way on every backend, at the
//! loop's next tick (right after the callback that dropped it, if one
//! did): its requests in flight end with `Canceled` (each callback runs
//! once) and a descriptor watcher's descriptor is then closed through the
//! loop; a watcher never used with a loop, or whose loop is gone, closes
//! its descriptor directly.

mod async_wait;
#[cfg(any(unix, target_os = "wasi"))]
mod descriptor;
mod file;
mod fs;
// WASI has no processes; preview 1 cannot create sockets.
#[cfg(not(target_os = "wasi"))]
mod process;
mod request;
mod resolve;
mod shared_fd;
mod signal;
mod stream;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
mod tcp;
mod timer;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
mod udp;
mod write_queue;

pub use file::File;
pub use fs::fs_op;
#[cfg(not(target_os = "wasi"))]
pub use process::{Process, Spawned};
pub use resolve::resolve;
pub use signal::Signal;
pub use stream::Stream;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub use tcp::Tcp;
pub use timer::Timer;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub use udp::Udp;
