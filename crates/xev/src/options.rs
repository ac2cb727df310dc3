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
}

impl Default for Options {
    fn default() -> Options {
        Options {
            entries: 256,
            thread_pool: None,
        }
    }
}
