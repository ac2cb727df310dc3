//! # xev-c: xev's C API
//!
//! This crate builds `libxev.a` and `libxev.so` (`install.sh` renames the
//! `libxev_c.*` that cargo makes) and ships `include/xev.h`. The header's
//! first half is source-compatible with libxev's `xev.h`: the same opaque
//! types and `XEV_SIZEOF_*` sizes, constants, callback types and functions
//! (loop, completions, timers, async, thread pool). Its second half adds
//! what libxev's C API lacks, in the same style: TCP, UDP, streams, files,
//! processes, cancellation and `xev_strerror`. (Signals are not part of it
//! yet: the core's signal support is being built separately.)
//!
//! # Caller-owned completions on a loop that owns its completions
//!
//! libxev's completions are the caller's memory, linked into the loop while
//! active. xev's loop owns its completions (recycled, named by checked
//! [`xev::Id`]s), so that safe Rust cannot free what the kernel may still
//! write. The C API keeps the caller's `xev_completion` as a *handle*: it
//! holds the id of the loop-owned completion that runs the operation, its
//! state (what [`xev_completion_state`](completion::xev_completion_state)
//! reads), the C callback and user data, the C buffer of a read, and a
//! token. The Rust callback of the loop-owned completion refers to the C
//! storage by pointer: when the operation finishes it checks that the
//! storage still holds its token (starting another operation on the same
//! `xev_completion` replaces the token), copies what a read received into
//! the C buffer, marks the storage dead, and calls the C callback. The
//! data that operations lend to the kernel lives in buffers the loop owns
//! (recycled per loop), never in the C caller's memory, so no C mistake
//! can make the kernel write into freed memory.
//!
//! What a C caller must not do, as with libxev: free, move or overwrite an
//! `xev_completion` while it is active (from the call that starts an
//! operation until its callback returns `XEV_DISARM`); free a read's buffer
//! before its callback; move an `xev_loop`, `xev_watcher` or
//! `xev_threadpool` between their `init` and `deinit`; use a loop from
//! another thread than the one that runs it (only `xev_async_notify` and
//! the thread-pool functions may be called from any thread).
//!
//! # Safety at the boundary
//!
//! - **Panics never unwind into C.** Every exported function runs its body
//!   under [`std::panic::catch_unwind`]. A function that returns an `int`
//!   returns `XEV_EPANIC` after a panic; one that returns nothing leaves
//!   what it was asked to change as it was (the panic hook has printed
//!   the message). A panic is always a bug of xev's, never a C mistake.
//! - **Bad pointers that cost nothing to check are errors.** A null or
//!   misaligned pointer, or a structure that its `init` function did not
//!   initialise (a zeroed one, say: each initialised structure carries a
//!   magic number), gets `-EINVAL` (or, from a function that returns
//!   nothing, no effect and a one-line message on standard error).
//!   Garbage that happens to look initialised, and pointers to freed
//!   memory, cannot be detected.
//!
//! # Platforms
//!
//! Unix (Linux on io_uring or epoll, macOS and FreeBSD on kqueue, Linux on
//! kqueue through libkqueue with `--cfg xev_libkqueue`) and Windows (IOCP).
//! What differs is in [`sys`]: on Windows a descriptor (`xev_fd`) is a
//! `SOCKET` or `HANDLE` as `uintptr_t`, errors are the C runtime's errno
//! values mapped from Win32 and WinSock codes, and a process's result is
//! its exit code (31 bits). Other targets build an empty library.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
// The C types keep the C names.
#![allow(non_camel_case_types)]

#[cfg(any(unix, windows))]
mod boundary;
#[cfg(any(unix, windows))]
pub mod completion;
#[cfg(any(unix, windows))]
pub mod errors;
#[cfg(any(unix, windows))]
pub mod event_loop;
#[cfg(any(unix, windows))]
pub mod io;
#[cfg(any(unix, windows))]
pub mod net;
#[cfg(any(unix, windows))]
pub mod process;
#[cfg(any(unix, windows))]
pub mod signal;
#[cfg(any(unix, windows))]
pub mod sys;
#[cfg(any(unix, windows))]
pub mod thread_pool;
#[cfg(any(unix, windows))]
pub mod types;
#[cfg(any(unix, windows))]
pub mod watchers;
