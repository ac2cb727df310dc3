//! The C types of `xev.h` as Rust sees them: the opaque storage types
//! (`xev_loop`, `xev_completion`, ...), which Rust only ever handles by
//! pointer, the callback types, and the layouts the C API keeps inside the
//! caller's storage, each checked at compile time against the size the
//! header gives it.

use std::ffi::{c_int, c_void};
use std::marker::{PhantomData, PhantomPinned};

/// Declares opaque C types: only pointers to them cross the boundary.
macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident = $size:expr;)*) => {$(
        $(#[$m])*
        ///
        /// Opaque caller-owned storage; see `xev.h` for its size.
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }

        impl $name {
            /// Its size in C (`XEV_SIZEOF_*` in `xev.h`).
            pub const SIZE: usize = $size;
        }
    )*};
}

opaque! {
    /// An event loop (`xev_loop`).
    xev_loop = 512;
    /// A completion (`xev_completion`): one operation's handle.
    xev_completion = 320;
    /// A watcher (`xev_watcher`): a timer, async, socket, stream, file or process.
    xev_watcher = 256;
    /// A thread pool (`xev_threadpool`).
    xev_threadpool = 64;
    /// A batch of thread-pool tasks (`xev_threadpool_batch`).
    xev_threadpool_batch = 24;
    /// A thread-pool task (`xev_threadpool_task`).
    xev_threadpool_task = 24;
    /// A thread-pool configuration (`xev_threadpool_config`).
    xev_threadpool_config = 64;
}

pub use crate::sys::xev_fd;

/// The callback of every loop operation (`xev_timer_cb`, `xev_async_cb`,
/// `xev_cb`): the loop, the completion, the result (a count, a descriptor
/// or 0, or a negative error code) and the user data; it returns
/// `XEV_DISARM` (0) or `XEV_REARM` (1). (A C enum is an `int` in every
/// ABI this crate targets.)
pub type xev_cb =
    unsafe extern "C" fn(*mut xev_loop, *mut xev_completion, c_int, *mut c_void) -> c_int;

/// The callback of a thread-pool task (`xev_task_cb`).
pub type xev_task_cb = unsafe extern "C" fn(*mut xev_threadpool_task);

/// `XEV_DISARM`.
pub const XEV_DISARM: c_int = 0;
/// `XEV_REARM`.
pub const XEV_REARM: c_int = 1;
/// `XEV_COMPLETION_DEAD`.
pub const XEV_COMPLETION_DEAD: c_int = 0;
/// `XEV_COMPLETION_ACTIVE`.
pub const XEV_COMPLETION_ACTIVE: c_int = 1;

/// Checks at compile time that `T` fits in `size` bytes of C storage and
/// needs no more alignment than every C type gets (8 bytes: the least
/// `max_align_t` of the supported platforms).
// Used only in `const` assertions, which Rust 1.80 does not count as uses.
#[allow(dead_code)]
pub(crate) const fn fits<T>(size: usize) -> bool {
    std::mem::size_of::<T>() <= size && std::mem::align_of::<T>() <= 8
}

/// Magic numbers that mark initialised storage (a zeroed structure has
/// none of them).
pub(crate) mod magic {
    /// An initialised `xev_loop`.
    pub const LOOP: u64 = 0x7865_765f_6c6f_6f70;
    /// An `xev_completion` that was zeroed by `xev_completion_zero` or used.
    pub const COMPLETION: u64 = 0x7865_765f_636f_6d70;
    /// An initialised `xev_watcher`.
    pub const WATCHER: u64 = 0x7865_765f_7761_7463;
    /// An initialised `xev_threadpool`.
    pub const POOL: u64 = 0x7865_765f_706f_6f6c;
    /// An initialised `xev_threadpool_config`.
    pub const CONFIG: u64 = 0x7865_765f_636f_6e66;
}
