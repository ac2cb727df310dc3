//! The options a loop is created with ([`Options`]), shared by the loop and
//! the backends that read them.

use crate::thread_pool::ThreadPool;

/// Options for [`Loop::new`](crate::generic::Loop::new).
#[derive(Clone, Debug)]
pub struct Options {
    /// Submission-queue entries (io_uring). Rounded up to a power of two by
    /// the kernel. Default 256.
    pub entries: u32,
    /// The thread pool for operations a backend cannot do asynchronously
    /// (file pread/pwrite on epoll). Without one those operations fail with
    /// `NoThreadPool`.
    pub thread_pool: Option<ThreadPool>,
    /// io_uring: set the ring up for one thread (`SINGLE_ISSUER` and
    /// `DEFER_TASKRUN`, Linux 6.1), which saves the kernel work on every
    /// completion. Default `true`: a Rust loop is not `Send`, so it never
    /// leaves the thread that made it. Set it to `false` where a loop's
    /// calls may come from different threads over its life (the C API
    /// does, for C programs that create a loop on one thread and run it on
    /// another); the ring then uses `COOP_TASKRUN`. Ignored by the other
    /// backends.
    pub io_uring_single_issuer: bool,
    /// io_uring: sends ([`Op::Send`](crate::Op::Send)) of at least this
    /// many bytes go as zero-copy sends (`SEND_ZC`, Linux 6.0): the kernel
    /// sends from the operation's buffer instead of copying it first, and
    /// the send completes (its callback gets the buffer back) once the
    /// kernel has let go of the buffer, not when the data is queued. That
    /// pays for large sends through a network interface; over loopback
    /// the kernel copies anyway, and it costs more. Default `None` (every
    /// send copies). Ignored by the other backends, and where the kernel
    /// lacks `SEND_ZC` ([`Capabilities::send_zc`](crate::Capabilities::send_zc)
    /// says whether a loop uses it).
    pub io_uring_send_zc_min: Option<usize>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            entries: 256,
            thread_pool: None,
            io_uring_single_issuer: true,
            io_uring_send_zc_min: None,
        }
    }
}
