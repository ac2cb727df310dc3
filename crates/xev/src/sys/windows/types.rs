//! The Windows spelling of the platform facts that the portable layer
//! (operations, results, errors, the completion record) names: what a
//! handle is, the raw error codes the loop and the typed errors
//! distinguish, the message header of `WSASendTo`/`WSARecvFrom`, and the
//! per-operation record the IOCP backend keeps in a completion (its
//! `OVERLAPPED`). It depends on nothing of xev's, like its Unix twin.
//!
//! Raw results are as on Unix: a non-negative value, or a negated Win32
//! (or WinSock) error code, which `std::io::Error::from_raw_os_error`
//! understands.

use std::os::windows::io::{FromRawSocket, OwnedSocket, RawSocket};

/// The socket address type operations carry.
pub use socket2::SockAddr;
use windows_sys::Win32::Foundation::{
    ERROR_BUSY, ERROR_INVALID_HANDLE, ERROR_NOT_FOUND, ERROR_OPERATION_ABORTED,
};
use windows_sys::Win32::Networking::WinSock::{WSABUF, WSAEALREADY};
use windows_sys::Win32::System::IO::OVERLAPPED;

/// What operations name the file, socket or pipe they act on: a `SOCKET`,
/// or a `HANDLE` (whose value only ever uses its low 32 bits), as an
/// integer.
pub type RawHandle = usize;

/// An owned socket (closed when dropped), as an accept returns it.
pub type OwnedHandle = OwnedSocket;

/// The value that names no handle (`INVALID_SOCKET`).
pub(crate) const INVALID_RAW: RawHandle = usize::MAX;

/// What a watcher owns: a socket, or another kernel handle (a file, a
/// pipe), which close differently.
#[derive(Debug)]
pub(crate) enum Owned {
    /// A socket (`closesocket`).
    Socket(OwnedSocket),
    /// A file, pipe or other handle (`CloseHandle`).
    Handle(std::os::windows::io::OwnedHandle),
}

impl From<OwnedSocket> for Owned {
    fn from(s: OwnedSocket) -> Owned {
        Owned::Socket(s)
    }
}

impl From<socket2::Socket> for Owned {
    fn from(s: socket2::Socket) -> Owned {
        Owned::Socket(s.into())
    }
}

impl From<std::fs::File> for Owned {
    fn from(f: std::fs::File) -> Owned {
        Owned::Handle(f.into())
    }
}

/// A handle that is not a socket where a socket is needed.
fn not_a_socket() -> std::io::Error {
    std::io::Error::from_raw_os_error(windows_sys::Win32::Networking::WinSock::WSAENOTSOCK)
}

/// A public owned handle (a socket) as what a watcher owns.
pub(crate) fn owned(h: OwnedHandle) -> Owned {
    Owned::Socket(h)
}

/// A watcher's handle as the public owned type (a socket), or back when
/// it is not one.
pub(crate) fn to_public(h: Owned) -> Result<OwnedHandle, Owned> {
    match h {
        Owned::Socket(s) => Ok(s),
        other => Err(other),
    }
}

/// A watcher's handle as a file, or back when it is a socket.
pub(crate) fn to_file(h: Owned) -> Result<std::fs::File, Owned> {
    match h {
        Owned::Handle(h) => Ok(h.into()),
        other => Err(other),
    }
}

/// A watcher's handle as a socket, for socket options and addresses.
pub(crate) fn sock(h: &Owned) -> std::io::Result<socket2::SockRef<'_>> {
    match h {
        Owned::Socket(s) => Ok(socket2::SockRef::from(s)),
        Owned::Handle(_) => Err(not_a_socket()),
    }
}

/// The raw handle of an owned one.
pub(crate) fn raw_of(h: &Owned) -> RawHandle {
    use std::os::windows::io::{AsRawHandle, AsRawSocket};
    match h {
        Owned::Socket(s) => s.as_raw_socket() as RawHandle,
        Owned::Handle(h) => h.as_raw_handle() as RawHandle,
    }
}

/// Gives up ownership of `h`, returning its raw handle.
pub(crate) fn into_raw(h: Owned) -> RawHandle {
    use std::os::windows::io::{IntoRawHandle, IntoRawSocket};
    match h {
        Owned::Socket(s) => s.into_raw_socket() as RawHandle,
        Owned::Handle(h) => h.into_raw_handle() as RawHandle,
    }
}

/// Takes ownership of the socket in a non-negative raw result.
///
/// # Safety
/// `raw` is a new socket that nothing else owns.
pub(crate) unsafe fn owned_handle(raw: i32) -> OwnedHandle {
    // SAFETY: per the contract.
    unsafe { OwnedSocket::from_raw_socket(raw as u32 as RawSocket) }
}

/// The raw result of an operation canceled before it finished.
pub(crate) const CANCELED: i32 = -(ERROR_OPERATION_ABORTED as i32);
/// The raw result of a cancel whose target is not in flight.
pub(crate) const NOT_FOUND: i32 = -(ERROR_NOT_FOUND as i32);
/// The raw result of a cancel that came too late (the target finishes on
/// its own).
pub(crate) const TOO_LATE: i32 = -WSAEALREADY;
/// The error code whose `io::ErrorKind` is `ResourceBusy`.
pub(crate) const BUSY_CODE: i32 = ERROR_BUSY as i32;
/// The error code of "not a directory" (`ERROR_DIRECTORY`).
pub(crate) const NOT_A_DIRECTORY_CODE: i32 = 267;
/// The error code of "is a directory" (`ERROR_DIRECTORY_NOT_SUPPORTED`).
pub(crate) const IS_A_DIRECTORY_CODE: i32 = 336;
/// The error code of "directory not empty" (`ERROR_DIR_NOT_EMPTY`).
pub(crate) const NOT_EMPTY_CODE: i32 = 145;
/// The error code of "not supported" (`ERROR_NOT_SUPPORTED`).
pub(crate) const NOT_SUPPORTED_CODE: i32 = 50;
/// The error code of an operation on a closed or invalid handle.
pub(crate) const BAD_HANDLE_CODE: i32 = ERROR_INVALID_HANDLE as i32;
/// The raw result of an invalid argument (an offset out of range).
pub(crate) const INVALID_ARGUMENT: i32 =
    -(windows_sys::Win32::Foundation::ERROR_INVALID_PARAMETER as i32);

/// Whether a process wait's raw result says the process is not ours.
pub(crate) fn is_not_child(res: i32) -> bool {
    res == -(windows_sys::Win32::Foundation::ERROR_INVALID_PARAMETER as i32)
}

/// Poll has no IOCP equivalent (it answers `Unsupported` there); these
/// bits only give the portable `Readiness` a meaning.
pub(crate) fn poll_bits(m: i32) -> (bool, bool, bool, bool) {
    (m & 1 != 0, m & 2 != 0, m & 4 != 0, m & 8 != 0)
}

/// What the backend passes to `WSASendTo`/`WSARecvFrom`.
pub(crate) struct RawMsg {
    /// The buffers (Winsock copies the table during the call).
    pub(crate) bufs: *const WSABUF,
    /// How many.
    pub(crate) count: u32,
    /// The address (null: no destination).
    pub(crate) addr: *mut SockAddr,
    /// The address length; the kernel writes the sender's length into it
    /// when the receive completes, so it lives in the boxed message.
    pub(crate) addr_len: *mut i32,
}

/// What a message's Winsock call points at, in the boxed message: the
/// address length (a receive's `lpFromlen` must stay until the receive
/// completes) and the buffers (one inline, or a vectored message's table).
pub(crate) struct MsgHeader {
    addr_len: i32,
    /// The one buffer of a one-buffer message.
    one: WSABUF,
    /// A vectored message's buffer table (sized when the message is made).
    bufs: Vec<WSABUF>,
}

impl MsgHeader {
    /// An empty header.
    pub(crate) fn new() -> MsgHeader {
        MsgHeader::with_capacity(0)
    }

    /// An empty header with room for `n` buffers of a vectored message.
    pub(crate) fn with_capacity(n: usize) -> MsgHeader {
        MsgHeader {
            addr_len: 0,
            one: WSABUF {
                len: 0,
                buf: std::ptr::null_mut(),
            },
            bufs: Vec::with_capacity(n),
        }
    }

    /// The buffers (at most `len` bytes of each) and address (none: no
    /// destination) for a send or a receive.
    pub(crate) fn prepare(
        &mut self,
        buf: &mut crate::buf::Buf,
        more: &mut [crate::buf::Buf],
        len: usize,
        addr: Option<&mut SockAddr>,
        receiving: bool,
    ) -> RawMsg {
        let wsabuf = |b: &mut crate::buf::Buf| WSABUF {
            len: len.min(b.len()) as u32,
            buf: b.as_mut_ptr(),
        };
        let (bufs, count) = if more.is_empty() {
            self.one = wsabuf(buf);
            (&self.one as *const WSABUF, 1)
        } else {
            self.bufs.clear();
            self.bufs.push(wsabuf(buf));
            self.bufs.extend(more.iter_mut().map(wsabuf));
            (self.bufs.as_ptr(), self.bufs.len() as u32)
        };
        let addr = match addr {
            Some(addr) => {
                self.addr_len = if receiving {
                    std::mem::size_of::<windows_sys::Win32::Networking::WinSock::SOCKADDR_STORAGE>()
                        as i32
                } else {
                    addr.len()
                };
                addr as *mut SockAddr
            }
            None => {
                self.addr_len = 0;
                std::ptr::null_mut()
            }
        };
        RawMsg {
            bufs,
            count,
            addr,
            addr_len: &mut self.addr_len,
        }
    }

    /// After a receive: the length of the sender's address.
    pub(crate) fn name_len(&self) -> socket2::socklen_t {
        self.addr_len.max(0)
    }
}

/// The bytes `AcceptEx` needs for the two addresses it writes (local and
/// remote, each the largest address plus 16).
pub(crate) const ACCEPT_ADDRS: usize = 2 * (28 + 16);

/// What the IOCP backend keeps in a completion while the kernel holds it:
/// the `OVERLAPPED` the kernel writes the outcome into (the completion's
/// address follows from its address), and the per-operation extras.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct IocpSlot {
    /// The kernel's record of the operation.
    pub(crate) ov: OVERLAPPED,
    /// An accept's new socket, created before `AcceptEx`.
    pub(crate) accept: usize,
    /// A process wait's job object (0 when none).
    pub(crate) job: usize,
    /// `WSARecv`/`WSARecvFrom` flags, written by the kernel.
    pub(crate) flags: u32,
    /// Set once the backend asked the kernel to cancel the operation: any
    /// failure it then reports is a cancellation.
    pub(crate) canceled: bool,
    /// The port of the loop that started the operation: a packet that
    /// reaches another loop's port (its handle was associated with that
    /// port first) is not that loop's to touch.
    pub(crate) owner: usize,
    /// `AcceptEx`'s address buffer.
    pub(crate) addrs: [u8; ACCEPT_ADDRS],
}
