//! async/await on [xev](https://docs.rs/xev): a single-threaded,
//! completion-based runtime bound to one xev loop, with owned buffers and
//! operations that are canceled when their future is dropped.
//!
//! ```
//! use xev_async::{Runtime, sleep, spawn};
//! use std::time::Duration;
//!
//! let rt = Runtime::new().unwrap();
//! let out = rt.block_on(async {
//!     let a = spawn(async {
//!         sleep(Duration::from_millis(5)).await;
//!         1
//!     });
//!     let b = spawn(async { 2 });
//!     a.await.unwrap() + b.await.unwrap()
//! });
//! assert_eq!(out, 3);
//! ```
//!
//! # The model
//!
//! - [`Runtime::block_on`] runs a main future; [`spawn`] adds tasks (which
//!   need not be `Send`: everything runs on the runtime's thread). Spawning
//!   allocates once; awaiting an operation allocates nothing in steady
//!   state (the loop recycles the completion's memory; the runtime reuses
//!   the slot the result waits in).
//! - Operations own their buffers: `read(buf).await` gives back
//!   `(result, buf)`. That is the only sound shape for a completion API:
//!   the kernel may write into the buffer until the operation is over, so
//!   the buffer must not be borrowed from a future that can be dropped.
//!   Any [`IoBuf`] (written from) or [`IoBufMut`] (read into) works:
//!   `Vec<u8>`, `Box<[u8]>`, `&'static [u8]`, a [`Slice`] of any of them,
//!   and `bytes::Bytes`/`BytesMut` with the `bytes` feature. The kernel
//!   reads and writes the buffer's own memory: a read lands in a vector's
//!   spare capacity and sets its length (no zeroing, no copy), a write
//!   sends its initialized bytes, and `write_all` sends the rest of a
//!   short write from a slice of the same buffer.
//! - **Cancellation**: dropping a future with an operation in flight
//!   cancels the operation; its buffer stays with the loop until the
//!   kernel lets go of it and is then dropped. Nothing is freed early,
//!   nothing leaks, no result is delivered twice, on every backend. So
//!   races such as [`timeout`]`(d, stream.read(buf))` are safe: when the
//!   timer wins, the read is canceled and its buffer dropped (a read that
//!   had already completed loses its data with it; use a buffer you keep,
//!   via [`OpFuture`] directly, if that matters).
//! - One runtime runs at a time on a thread; several threads each run
//!   their own, and may share one [`xev::ThreadPool`] through
//!   [`xev::Options::thread_pool`]. [`RemoteHandle`] hands a runtime work
//!   from other threads; [`Notify`] is a wakeup any thread sends and a
//!   task awaits.
//! - **Socket operations skip the loop when they can** (Unix): a send or
//!   receive is first tried at once with one non-blocking syscall
//!   ([`xev::Op::try_now`]) when its socket's recent history says it is
//!   likely ready (the last attempt in that direction found it so; after
//!   one that did not, the next 1, 2, 4, .. up to 64 go straight to the
//!   loop), so a datagram sent to a waiting peer, a send into a socket
//!   buffer with room or a read of data already there completes without a
//!   turn of the loop. A poll of a task completes at most 128 operations
//!   that way; the next one waits for the loop, so the loop's timers and
//!   the other tasks still run. The results are those the loop would have
//!   given. On Windows and WASI every operation goes through the loop.
//!   When a socket's operation must wait, the runtime tells a readiness
//!   backend that the socket stayed open since its last wait
//!   ([`xev::Loop::vouch`]), sparing epoll a registration check per wait.
//! - Sockets come from and go back to `std` (`from_std`, `into_std`: the
//!   loop forgets the socket first) and from owned descriptors
//!   (`from_fd`); `TcpStream` also reads and writes vectored
//!   (`read_vectored`, `write_vectored`, `write_all_vectored`: one
//!   `recvmsg`/`sendmsg` over several buffers).
//!
//! # WASI
//!
//! On `wasm32-wasip2` the runtime, tasks, time, files and sockets work as
//! elsewhere; `wasm32-wasip1` has no sockets, so the socket types are
//! absent there. WASI has no threads: files run inline, a name given to
//! `TcpStream::connect_to` answers `Unsupported`, `Child` and its pipes
//! are absent, and [`Signals`] answers `Unsupported`.

#![warn(missing_docs)]
// WASI preview 1 has no sockets, the main users of the close-through-the-loop
// machinery: parts of it are unused there.
#![cfg_attr(all(target_os = "wasi", target_env = "p1"), allow(dead_code))]

mod buf;
#[cfg(all(
    any(feature = "futures-io", feature = "hyper"),
    not(all(target_os = "wasi", target_env = "p1"))
))]
mod compat;
mod fs;
mod handle;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
mod net;
mod notify;
mod op;
#[cfg(not(target_os = "wasi"))]
mod process;
mod runtime;
mod signal;
mod task;
mod time;

pub use buf::{IoBuf, IoBufMut, Slice};
#[cfg(all(
    any(feature = "futures-io", feature = "hyper"),
    not(all(target_os = "wasi", target_env = "p1"))
))]
pub use compat::Compat;
pub use fs::File;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub use net::{ReadHalf, TcpListener, TcpStream, UdpSocket, WriteHalf};
pub use notify::Notify;
pub use op::OpFuture;
#[cfg(not(target_os = "wasi"))]
pub use process::{Child, ChildStderr, ChildStdin, ChildStdout, Pipe};
pub use runtime::{spawn, yield_now, RemoteHandle, Runtime};
pub use signal::Signals;
pub use task::{JoinError, JoinHandle};
pub use time::{interval, sleep, sleep_until, timeout, Elapsed, Interval, Sleep};
