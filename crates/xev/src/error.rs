//! Typed errors, one enum per operation family.
//!
//! Every operation reports its outcome as a `Result` whose error type names
//! the cases a caller can act on (`Canceled`, `Eof` for reads, a missing
//! thread pool, ...) and keeps every other operating-system error as an
//! [`std::io::Error`]. Each enum implements [`std::error::Error`] and
//! converts into [`std::io::Error`], so `?` works in functions that return
//! `io::Result`.

use std::fmt;
use std::io;

use crate::sys::types as sys;

/// Raw result code used by backends for "this operation needs a thread pool
/// and the loop has none". Never a valid errno.
pub(crate) const NO_THREAD_POOL: i32 = i32::MIN;

/// Raw result code used by backends for "this backend cannot perform this
/// operation" (see the README's table of operations and backends). Never a
/// valid error code.
pub(crate) const UNSUPPORTED: i32 = i32::MIN + 1;

/// `io::ErrorKind::ResourceBusy`, which cannot be named before Rust 1.83
/// (the crate's MSRV is older); the kind `EBUSY` decodes to is that variant.
fn resource_busy() -> io::ErrorKind {
    io::Error::from_raw_os_error(sys::BUSY_CODE).kind()
}

/// Builds the `io::Error` for a negative raw result (a negated errno).
pub(crate) fn errno_error(res: i32) -> io::Error {
    io::Error::from_raw_os_error(-res)
}

macro_rules! error_family {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $msg:literal, $kind:ident; )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug)]
        #[non_exhaustive]
        pub enum $name {
            /// The operation was canceled by a cancel completion or by a
            /// timer reset/removal before it finished.
            Canceled,
            /// The backend cannot perform this operation on this platform
            /// (the README's table of operations and backends says which).
            Unsupported,
            $( $(#[$vmeta])* $variant, )*
            /// Any other operating-system error.
            Io(io::Error),
        }

        impl $name {
            /// Converts a negative raw result (a negated errno) into this error.
            #[allow(dead_code)]
            pub(crate) fn from_raw(res: i32) -> Self {
                if res == sys::CANCELED {
                    $name::Canceled
                } else if res == UNSUPPORTED {
                    $name::Unsupported
                } else {
                    $name::Io(errno_error(res))
                }
            }

            /// The operating-system error number, when there is one.
            pub fn raw_os_error(&self) -> Option<i32> {
                match self {
                    $name::Io(e) => e.raw_os_error(),
                    _ => None,
                }
            }

            /// The `io::ErrorKind` that best describes this error.
            pub fn kind(&self) -> io::ErrorKind {
                match self {
                    $name::Canceled => io::ErrorKind::Interrupted,
                    $name::Unsupported => io::ErrorKind::Unsupported,
                    $( $name::$variant => io::ErrorKind::$kind, )*
                    $name::Io(e) => e.kind(),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $name::Canceled => f.write_str("operation canceled"),
                    $name::Unsupported => {
                        f.write_str("operation not supported by this backend on this platform")
                    }
                    $( $name::$variant => f.write_str($msg), )*
                    $name::Io(e) => fmt::Display::fmt(e, f),
                }
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $name::Io(e) => Some(e),
                    _ => None,
                }
            }
        }

        impl From<$name> for io::Error {
            fn from(e: $name) -> io::Error {
                match e {
                    $name::Io(e) => e,
                    other => io::Error::new(other.kind(), other.to_string()),
                }
            }
        }

        impl From<io::Error> for $name {
            fn from(e: io::Error) -> Self {
                $name::Io(e)
            }
        }
    };
}

error_family! {
    /// Error of `accept`.
    AcceptError {}
}

error_family! {
    /// Error of `connect`.
    ConnectError {}
}

error_family! {
    /// Error of the read family: read, pread, recv, recvmsg.
    ReadError {
        /// End of file: the peer closed its side, or the file ended.
        Eof => "end of file", UnexpectedEof;
        /// The operation must run on a thread pool (epoll and kqueue have no
        /// asynchronous file I/O) and the loop was created without one.
        NoThreadPool => "this operation needs a thread pool and the loop has none", Unsupported;
        /// A pooled receive found its [`BufPool`](crate::BufPool) without a
        /// free buffer (see [`Op::recv_pool`](crate::Op::recv_pool)).
        NoBuffers => "the receive's buffer pool has no free buffer", OutOfMemory;
    }
}

error_family! {
    /// Error of the write family: write, pwrite, send, sendmsg.
    WriteError {
        /// The operation must run on a thread pool (epoll and kqueue have no
        /// asynchronous file I/O) and the loop was created without one.
        NoThreadPool => "this operation needs a thread pool and the loop has none", Unsupported;
    }
}

error_family! {
    /// Error of `poll`.
    PollError {}
}

error_family! {
    /// Error of `shutdown`.
    ShutdownError {}
}

error_family! {
    /// Error of `close`.
    CloseError {}
}

error_family! {
    /// Error of a timer.
    TimerError {}
}

error_family! {
    /// Error of a noop: it can only be canceled.
    NoopError {}
}

error_family! {
    /// Error of an async wait.
    AsyncError {}
}

error_family! {
    /// Error of a process wait.
    ProcessError {
        /// The process is not a child of this process (or was already reaped).
        NotChild => "the process is not a child of this process", NotFound;
    }
}

error_family! {
    /// Error of a name lookup ([`Op::Resolve`](crate::Op::Resolve)).
    ResolveError {
        /// The name does not exist (or has no address of a usable family).
        NotFound => "no such host", NotFound;
        /// The input is not `host:port`, or the host holds a NUL byte.
        Invalid => "not a valid host:port", InvalidInput;
        /// The system resolver failed for now (no answer in time, no
        /// network); trying later may succeed.
        TryAgain => "temporary failure in name resolution", WouldBlock;
        /// Lookups run on a thread pool and the loop was created without one.
        NoThreadPool => "this operation needs a thread pool and the loop has none", Unsupported;
    }
}

/// Error of a filesystem operation ([`Op::Fs`](crate::Op::Fs)). The
/// cases a caller commonly acts on are variants of their own; every other
/// operating-system error is kept as [`FsError::Io`].
#[derive(Debug)]
#[non_exhaustive]
pub enum FsError {
    /// The operation was canceled before it started.
    Canceled,
    /// The platform cannot perform this operation (the README's table of
    /// operations and backends says which).
    Unsupported,
    /// The operation must run on a thread pool and the loop has none.
    NoThreadPool,
    /// A file or directory in the path does not exist.
    NotFound,
    /// The file or directory to create already exists.
    AlreadyExists,
    /// Permission denied.
    PermissionDenied,
    /// A component of the path that must be a directory is not one.
    NotADirectory,
    /// The path is a directory where a file is needed.
    IsADirectory,
    /// The directory to remove is not empty.
    NotEmpty,
    /// Any other operating-system error.
    Io(io::Error),
}

impl FsError {
    /// Converts a negative raw result (a negated error code) into this error.
    pub(crate) fn from_raw(res: i32) -> FsError {
        if res == sys::CANCELED {
            return FsError::Canceled;
        }
        if res == UNSUPPORTED {
            return FsError::Unsupported;
        }
        let e = errno_error(res);
        match (e.kind(), -res) {
            (io::ErrorKind::NotFound, _) => FsError::NotFound,
            (io::ErrorKind::AlreadyExists, _) => FsError::AlreadyExists,
            (io::ErrorKind::PermissionDenied, _) => FsError::PermissionDenied,
            (_, sys::NOT_A_DIRECTORY_CODE) => FsError::NotADirectory,
            (_, sys::IS_A_DIRECTORY_CODE) => FsError::IsADirectory,
            (_, sys::NOT_EMPTY_CODE) => FsError::NotEmpty,
            (_, sys::NOT_SUPPORTED_CODE) => FsError::Unsupported,
            _ => FsError::Io(e),
        }
    }

    /// The operating-system error number, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FsError::Io(e) => e.raw_os_error(),
            _ => None,
        }
    }

    /// The `io::ErrorKind` that best describes this error.
    pub fn kind(&self) -> io::ErrorKind {
        let of = |code: i32| io::Error::from_raw_os_error(code).kind();
        match self {
            FsError::Canceled => io::ErrorKind::Interrupted,
            FsError::Unsupported | FsError::NoThreadPool => io::ErrorKind::Unsupported,
            FsError::NotFound => io::ErrorKind::NotFound,
            FsError::AlreadyExists => io::ErrorKind::AlreadyExists,
            FsError::PermissionDenied => io::ErrorKind::PermissionDenied,
            FsError::NotADirectory => of(sys::NOT_A_DIRECTORY_CODE),
            FsError::IsADirectory => of(sys::IS_A_DIRECTORY_CODE),
            FsError::NotEmpty => of(sys::NOT_EMPTY_CODE),
            FsError::Io(e) => e.kind(),
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsError::Canceled => "operation canceled",
            FsError::Unsupported => "operation not supported by this backend on this platform",
            FsError::NoThreadPool => "this operation needs a thread pool and the loop has none",
            FsError::NotFound => "no such file or directory",
            FsError::AlreadyExists => "file exists",
            FsError::PermissionDenied => "permission denied",
            FsError::NotADirectory => "not a directory",
            FsError::IsADirectory => "is a directory",
            FsError::NotEmpty => "directory not empty",
            FsError::Io(e) => return fmt::Display::fmt(e, f),
        })
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FsError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> Self {
        FsError::Io(e)
    }
}

impl From<FsError> for io::Error {
    fn from(e: FsError) -> io::Error {
        match e {
            FsError::Io(e) => e,
            other => io::Error::new(other.kind(), other.to_string()),
        }
    }
}

/// Error of connecting by name ([`Tcp::connect_by_name`](crate::watcher::Tcp::connect_by_name),
/// [`Udp::for_peer`](crate::watcher::Udp::for_peer)).
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectByNameError {
    /// The lookup failed (no such host, malformed input, no thread pool...).
    Resolve(ResolveError),
    /// A socket for the address's family could not be made.
    Socket(io::Error),
    /// Connecting failed (the last address's error when several were tried).
    Connect(ConnectError),
}

impl fmt::Display for ConnectByNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectByNameError::Resolve(e) => write!(f, "resolving failed: {e}"),
            ConnectByNameError::Socket(e) => write!(f, "creating the socket failed: {e}"),
            ConnectByNameError::Connect(e) => write!(f, "connecting failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectByNameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectByNameError::Resolve(e) => Some(e),
            ConnectByNameError::Socket(e) => Some(e),
            ConnectByNameError::Connect(e) => Some(e),
        }
    }
}

impl From<ConnectByNameError> for io::Error {
    fn from(e: ConnectByNameError) -> io::Error {
        match e {
            ConnectByNameError::Resolve(e) => e.into(),
            ConnectByNameError::Socket(e) => e,
            ConnectByNameError::Connect(e) => e.into(),
        }
    }
}

error_family! {
    /// Error of a signal subscription or wait
    /// ([`SignalSubscription`](crate::SignalSubscription),
    /// [`Signal`](crate::watcher::Signal)).
    SignalError {
        /// The number is not a signal (or console event) that can be
        /// watched.
        Invalid => "this signal cannot be watched", InvalidInput;
    }
}

/// Error of a cancel completion (the cancel's own result, not the target's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelError {
    /// No completion by that id is in flight: it was never added, it is
    /// parked, it was freed (its id is stale), it belongs to another loop,
    /// or it is the cancel itself.
    NotFound,
    /// Too late: the target's result is already in (its callback is
    /// pending or running), a thread-pool task is mid-syscall, or a cancel
    /// of it is already under way. Its callback runs once, with the result
    /// it got.
    AlreadyFinished,
    /// The backend refused the cancellation with this errno.
    Os(i32),
}

impl CancelError {
    pub(crate) fn from_raw(res: i32) -> Self {
        match res {
            sys::NOT_FOUND => CancelError::NotFound,
            sys::TOO_LATE => CancelError::AlreadyFinished,
            e => CancelError::Os(-e),
        }
    }
}

impl fmt::Display for CancelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelError::NotFound => f.write_str("cancel target is not in flight"),
            CancelError::AlreadyFinished => f.write_str("cancel target already finished"),
            CancelError::Os(e) => write!(f, "cancel failed: {}", io::Error::from_raw_os_error(*e)),
        }
    }
}

impl std::error::Error for CancelError {}

impl From<CancelError> for io::Error {
    fn from(e: CancelError) -> io::Error {
        match e {
            CancelError::NotFound => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
            CancelError::AlreadyFinished => io::Error::new(resource_busy(), e.to_string()),
            CancelError::Os(n) => io::Error::from_raw_os_error(n),
        }
    }
}

/// Error of a loop-level request made by id (`timer_reset`, `restart`,
/// `free`, `op_mut`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// The id does not name a live completion of this loop: it was freed
    /// (disarmed), or it belongs to another loop (ids carry their loop's
    /// tag, so another loop's id is recognised and never followed).
    Stale,
    /// The completion is in flight; the request needs it dead (parked).
    Busy,
    /// The completion's operation is of the wrong kind for this request
    /// (for example `timer_reset` on a read).
    WrongKind,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdError::Stale => "the id does not name a live completion of this loop",
            IdError::Busy => "the completion is in flight",
            IdError::WrongKind => "the completion's operation is of the wrong kind",
        })
    }
}

impl std::error::Error for IdError {}

impl From<IdError> for io::Error {
    fn from(e: IdError) -> io::Error {
        let kind = match e {
            IdError::Stale => io::ErrorKind::NotFound,
            IdError::Busy => resource_busy(),
            IdError::WrongKind => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_results_map_to_typed_errors() {
        assert!(matches!(
            ReadError::from_raw(sys::CANCELED),
            ReadError::Canceled
        ));
        #[cfg(unix)]
        {
            let e = WriteError::from_raw(-libc::EPIPE);
            assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        }
        let io: io::Error = ReadError::Eof.into();
        assert_eq!(io.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(CancelError::from_raw(sys::NOT_FOUND), CancelError::NotFound);
        assert_eq!(
            CancelError::from_raw(sys::TOO_LATE),
            CancelError::AlreadyFinished
        );
    }
}
