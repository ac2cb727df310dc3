//! The Windows system interface: the completion port and its waker
//! ([`wake`]), child processes ([`process`]), the overlapped calls the IOCP
//! backend starts (sockets through WinSock, files
//! and pipes through `ReadFile`/`WriteFile`), how a finished `OVERLAPPED`
//! turns into a raw result, and the synchronous calls (shutdown, close).

pub(crate) mod process;
pub(crate) mod fs;
pub(crate) mod resolve;
pub(crate) mod signal;
pub(crate) mod types;
pub(crate) mod wake;

pub(crate) use process::*;
pub(crate) use resolve::lookup;
pub(crate) use types::*;
pub use wake::Waker;
pub(crate) use wake::{Port, WAKE_KEY};

use std::io;
use std::os::windows::io::FromRawHandle;
use std::sync::atomic::Ordering;

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_BROKEN_PIPE, ERROR_HANDLE_EOF, ERROR_INVALID_HANDLE, HANDLE,
    INVALID_HANDLE_VALUE, STATUS_CANCELLED, STATUS_HANDLES_CLOSED,
};
use windows_sys::Win32::Networking::WinSock as ws;
use windows_sys::Win32::System::IO::{GetOverlappedResult, OVERLAPPED};

use crate::error::UNSUPPORTED;
use crate::op::{io_len, Op};
use crate::record::Core;

/// The negated last Win32 error, as a raw result.
pub(crate) fn neg_last_error() -> i32 {
    // SAFETY: reads the calling thread's last-error value.
    -(unsafe { GetLastError() } as i32)
}

/// The negated last WinSock error, as a raw result.
pub(crate) fn neg_wsa_error() -> i32 {
    // SAFETY: reads the calling thread's WinSock error value.
    -unsafe { ws::WSAGetLastError() }
}

/// The raw result of a finished overlapped operation on `h` (a socket when
/// `socket`; a read when `read`): the bytes transferred, or the negated
/// error. End of file and a pipe whose writer is gone read as 0 bytes, as
/// on Unix (see [`eof_as_zero`]). An operation
/// stopped by `CancelIoEx` or by closing its handle (whatever status the
/// kernel gave it then) is cancelled.
///
/// # Safety
/// `ov` is the operation's `OVERLAPPED`, and the operation has finished
/// (its packet was dequeued).
pub(crate) unsafe fn overlapped_result(
    h: RawHandle,
    ov: *const OVERLAPPED,
    socket: bool,
    read: bool,
) -> i32 {
    // SAFETY: per the contract the kernel is done writing `ov`.
    let (status, bytes) = unsafe { ((*ov).Internal as u32, (*ov).InternalHigh) };
    if status == 0 {
        return bytes.min(i32::MAX as usize) as i32;
    }
    if status == STATUS_CANCELLED as u32 || status == STATUS_HANDLES_CLOSED as u32 {
        return CANCELED;
    }
    // The error in the socket's or file's own terms (a WinSock code for a
    // socket), read while the handle is still open.
    let mut n = 0u32;
    let err = if socket {
        let mut flags = 0u32;
        // SAFETY: per the contract; the out-pointers are live locals. The
        // call does not wait (`fWait` false) for a finished operation.
        match unsafe { ws::WSAGetOverlappedResult(h, ov, &mut n, 0, &mut flags) } {
            0 => neg_wsa_error(),
            _ => return n.min(i32::MAX as u32) as i32,
        }
    } else {
        // SAFETY: as above.
        match unsafe { GetOverlappedResult(h as HANDLE, ov, &mut n, 0) } {
            0 => neg_last_error(),
            _ => return n.min(i32::MAX as u32) as i32,
        }
    };
    if err == -ws::WSAENOTSOCK || err == -(ERROR_INVALID_HANDLE as i32) {
        // The handle is gone: closed while the operation was pending.
        return CANCELED;
    }
    // Read and write may be on a socket too: its network failures read
    // in WinSock's terms whichever call reported them.
    eof_as_zero(-socket_code(-err), read)
}

/// A socket operation's error in WinSock's terms: the kernel reports some
/// socket failures with the general Win32 code of the NTSTATUS it got
/// (wine and Windows both, depending on the call), which would read
/// differently from the same failure reported synchronously.
pub(crate) fn socket_code(code: i32) -> i32 {
    use windows_sys::Win32::Foundation as f;
    match code as u32 {
        f::ERROR_NETNAME_DELETED | f::ERROR_PORT_UNREACHABLE => ws::WSAECONNRESET,
        f::ERROR_CONNECTION_REFUSED => ws::WSAECONNREFUSED,
        f::ERROR_CONNECTION_ABORTED | f::ERROR_REQUEST_ABORTED => ws::WSAECONNABORTED,
        f::ERROR_NETWORK_UNREACHABLE => ws::WSAENETUNREACH,
        f::ERROR_HOST_UNREACHABLE => ws::WSAEHOSTUNREACH,
        f::ERROR_SEM_TIMEOUT => ws::WSAETIMEDOUT,
        f::ERROR_MORE_DATA => ws::WSAEMSGSIZE,
        _ => code,
    }
}

/// Closes `h`: a socket with `closesocket`, anything else with
/// `CloseHandle`. Returns the raw result. Negative values (pseudo-handles,
/// `INVALID_HANDLE_VALUE`) are refused, never passed to `CloseHandle`.
///
/// What is still pending on `h` is cancelled first (`CancelIoEx`), so that
/// it ends cancelled, as on Unix, whatever the kernel would answer for a
/// handle that goes away under it (a named pipe's read: "broken pipe",
/// which would read as end of file).
pub(crate) fn close(h: RawHandle) -> i32 {
    if (h as isize) < 0 {
        return -BAD_HANDLE_CODE;
    }
    // SAFETY: takes the handle's value only (a null OVERLAPPED: all of
    // its operations); answers ERROR_NOT_FOUND when none is pending.
    unsafe { windows_sys::Win32::System::IO::CancelIoEx(h as HANDLE, std::ptr::null()) };
    // SAFETY: closes an integer handle the caller owns.
    if unsafe { ws::closesocket(h) } == 0 {
        return 0;
    }
    let e = neg_wsa_error();
    if e != -ws::WSAENOTSOCK {
        return e;
    }
    // SAFETY: as above.
    if unsafe { CloseHandle(h as HANDLE) } == 0 {
        return neg_last_error();
    }
    0
}

/// Closes `h`, ignoring the result (for handles nothing else will close,
/// when the loop is dropped).
pub(crate) fn close_quietly(h: RawHandle) {
    let _ = close(h);
}

/// `shutdown` of a socket, as a raw result.
pub(crate) fn shutdown(s: RawHandle, how: std::net::Shutdown) -> i32 {
    let how = match how {
        std::net::Shutdown::Read => ws::SD_RECEIVE,
        std::net::Shutdown::Write => ws::SD_SEND,
        std::net::Shutdown::Both => ws::SD_BOTH,
    };
    // SAFETY: takes integers only.
    if unsafe { ws::shutdown(s, how) } != 0 {
        return not_a_socket(s, neg_wsa_error());
    }
    0
}

/// A failed WinSock call's raw result `res` on `h`, with "not a socket"
/// said one way: something that is not a socket answers WSAENOTSOCK on
/// Windows, WSAEOPNOTSUPP under wine.
pub(crate) fn not_a_socket(h: RawHandle, res: i32) -> i32 {
    if res != -ws::WSAENOTSOCK && !is_socket(h) {
        return -ws::WSAENOTSOCK;
    }
    res
}

/// Whether `h` is a socket (it has a socket type).
fn is_socket(h: RawHandle) -> bool {
    let mut ty = 0i32;
    let mut len = std::mem::size_of::<i32>() as i32;
    // SAFETY: `ty` and `len` are live locals of the sizes given.
    let r = unsafe {
        ws::getsockopt(
            h,
            ws::SOL_SOCKET,
            ws::SO_TYPE,
            (&mut ty as *mut i32).cast(),
            &mut len,
        )
    };
    r == 0
}

/// Whether `h` is a disk file (whose reads and writes never wait for a
/// peer).
pub(crate) fn is_disk_file(h: RawHandle) -> bool {
    use windows_sys::Win32::Storage::FileSystem::{GetFileType, FILE_TYPE_DISK};
    // SAFETY: takes an integer handle.
    unsafe { GetFileType(h as HANDLE) == FILE_TYPE_DISK }
}

/// Whether `h` was opened for synchronous I/O (no `FILE_FLAG_OVERLAPPED`,
/// as `std::fs::File` opens files, and console handles): its reads and
/// writes block the calling thread and post no packet, so the IOCP
/// backend hands them to the thread pool.
pub(crate) fn is_synchronous(h: RawHandle) -> bool {
    use windows_sys::Wdk::Storage::FileSystem::{
        NtQueryInformationFile, FileModeInformation, FILE_MODE_INFORMATION,
        FILE_SYNCHRONOUS_IO_ALERT, FILE_SYNCHRONOUS_IO_NONALERT,
    };
    let mut info = FILE_MODE_INFORMATION { Mode: 0 };
    // SAFETY: IO_STATUS_BLOCK is plain data; all zero is valid.
    let mut iosb: windows_sys::Win32::System::IO::IO_STATUS_BLOCK = unsafe { std::mem::zeroed() };
    // SAFETY: `iosb` and `info` are live locals of the sizes given.
    let status = unsafe {
        NtQueryInformationFile(
            h as HANDLE,
            &mut iosb,
            (std::ptr::addr_of_mut!(info)).cast(),
            std::mem::size_of::<FILE_MODE_INFORMATION>() as u32,
            FileModeInformation,
        )
    };
    status >= 0 && info.Mode & (FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT) != 0
}

/// Ends `h`'s association with a completion port, so that the next
/// operation on it associates it with the port of the loop it goes to
/// (`FileReplaceCompletionInformation` with no port; Windows 8.1 and
/// later; wine 8 answers `STATUS_NOT_IMPLEMENTED`). For a watcher that
/// moves to another loop. Answers whether it worked.
pub(crate) fn disassociate(h: RawHandle) -> bool {
    use windows_sys::Wdk::Storage::FileSystem::{
        FileReplaceCompletionInformation, NtSetInformationFile, FILE_COMPLETION_INFORMATION,
    };
    let info = FILE_COMPLETION_INFORMATION {
        Port: std::ptr::null_mut(),
        Key: std::ptr::null_mut(),
    };
    // SAFETY: IO_STATUS_BLOCK is plain data; all zero is valid.
    let mut iosb: windows_sys::Win32::System::IO::IO_STATUS_BLOCK = unsafe { std::mem::zeroed() };
    // SAFETY: `iosb` and `info` are live locals of the sizes given; the
    // kernel checks the handle.
    let status = unsafe {
        NtSetInformationFile(
            h as HANDLE,
            &mut iosb,
            (&info as *const FILE_COMPLETION_INFORMATION).cast(),
            std::mem::size_of::<FILE_COMPLETION_INFORMATION>() as u32,
            FileReplaceCompletionInformation,
        )
    };
    status >= 0
}

/// Puts `h` in the mode where an overlapped call that succeeds at once
/// posts no packet (`FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`; its result is
/// in the `OVERLAPPED` when the call returns) and does not signal the
/// handle (`FILE_SKIP_SET_EVENT_ON_HANDLE`). Answers whether the mode is
/// now on (a socket behind a non-IFS layered provider refuses it).
pub(crate) fn skip_completion_on_success(h: RawHandle) -> bool {
    use windows_sys::Win32::Storage::FileSystem::SetFileCompletionNotificationModes;
    use windows_sys::Win32::System::WindowsProgramming::{
        FILE_SKIP_COMPLETION_PORT_ON_SUCCESS, FILE_SKIP_SET_EVENT_ON_HANDLE,
    };
    let flags = (FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE) as u8;
    // SAFETY: takes an integer handle and flags.
    unsafe { SetFileCompletionNotificationModes(h as HANDLE, flags) != 0 }
}

/// One synchronous attempt at `core`'s operation, for the thread pool:
/// reads and writes on handles opened for synchronous I/O (see
/// [`is_synchronous`]); a positional one passes its offset in an
/// `OVERLAPPED`, a plain one uses the handle's file position, as on Unix.
/// Nothing else reaches the pool on Windows; anything that does is
/// refused.
///
/// # Safety
/// `core` is live and not accessed elsewhere during the call.
pub(crate) unsafe fn perform(core: *mut Core) -> i32 {
    use windows_sys::Win32::Storage::FileSystem::{ReadFile, WriteFile};
    // SAFETY: exclusive access to a live core (the contract); the buffers
    // live for the duration of the synchronous call.
    unsafe {
        let (h, offset, read, ptr, len) = match &mut (*core).op {
            Op::Read { fd, buf } => (*fd, None, true, buf.as_mut_ptr(), buf.len()),
            Op::Pread { fd, buf, offset } => (*fd, Some(*offset), true, buf.as_mut_ptr(), buf.len()),
            Op::Write { fd, buf } => (*fd, None, false, buf.as_mut_ptr(), buf.len()),
            Op::Pwrite { fd, buf, offset } => {
                (*fd, Some(*offset), false, buf.as_mut_ptr(), buf.len())
            }
            Op::Fs(f) => {
                return f.run();
            }
            Op::Resolve(r) => {
                r.run();
                return 0;
            }
            _ => return UNSUPPORTED,
        };
        if offset.is_some_and(|o| o > i64::MAX as u64) {
            return INVALID_ARGUMENT;
        }
        let mut ov: OVERLAPPED = std::mem::zeroed();
        let ovp: *mut OVERLAPPED = match offset {
            Some(o) => {
                ov.Anonymous.Anonymous.Offset = o as u32;
                ov.Anonymous.Anonymous.OffsetHigh = (o >> 32) as u32;
                &mut ov
            }
            None => std::ptr::null_mut(),
        };
        let n = io_len(len) as u32;
        let mut done = 0u32;
        let ok = if read {
            ReadFile(h as HANDLE, ptr, n, &mut done, ovp)
        } else {
            WriteFile(h as HANDLE, ptr, n, &mut done, ovp)
        };
        if ok == 0 {
            return eof_as_zero(neg_last_error(), read);
        }
        done as i32
    }
}

/// For a read (`read`), end of file or a pipe whose writer is gone as 0
/// bytes (as on Unix); any other raw result unchanged. A write keeps its
/// `ERROR_BROKEN_PIPE` (its reader is gone): a broken pipe, as `EPIPE` is
/// on Unix, never a write of 0 bytes.
pub(crate) fn eof_as_zero(res: i32, read: bool) -> i32 {
    if read && (res == -(ERROR_HANDLE_EOF as i32) || res == -(ERROR_BROKEN_PIPE as i32)) {
        0
    } else {
        res
    }
}

/// Starts WinSock for this process (once; `WSAStartup` counts, and the
/// standard library does the same before its first socket call).
pub(crate) fn winsock_init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // SAFETY: `data` is a live local for WSAStartup to fill.
        unsafe {
            let mut data: ws::WSADATA = std::mem::zeroed();
            ws::WSAStartup(0x202, &mut data);
        }
    });
}

/// The address `s` is bound to, as raw storage and length.
fn local_addr(s: RawHandle) -> Result<(ws::SOCKADDR_STORAGE, i32), i32> {
    // SAFETY: SOCKADDR_STORAGE is plain data; all zero is valid.
    let mut st: ws::SOCKADDR_STORAGE = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<ws::SOCKADDR_STORAGE>() as i32;
    // SAFETY: `st` and `len` are live locals of the sizes given.
    if unsafe { ws::getsockname(s, (std::ptr::addr_of_mut!(st)).cast(), &mut len) } != 0 {
        // An accept on a pipe, say: see `not_a_socket`.
        return Err(not_a_socket(s, neg_wsa_error()));
    }
    Ok((st, len))
}

/// A new overlapped, non-inheritable, non-blocking stream socket of the
/// same family as the listening socket `listener`, for `AcceptEx` (an
/// accepted socket is non-blocking and close-on-exec on every backend).
pub(crate) fn socket_like(listener: RawHandle) -> Result<RawHandle, i32> {
    let (st, _) = local_addr(listener)?;
    // SAFETY: takes integers and a null protocol-info pointer.
    let s = unsafe {
        ws::WSASocketW(
            st.ss_family as i32,
            ws::SOCK_STREAM,
            ws::IPPROTO_TCP,
            std::ptr::null(),
            0,
            ws::WSA_FLAG_OVERLAPPED | ws::WSA_FLAG_NO_HANDLE_INHERIT,
        )
    };
    if s == ws::INVALID_SOCKET {
        return Err(neg_wsa_error());
    }
    let mut on = 1u32;
    // SAFETY: `on` is a live local for the argument.
    if unsafe { ws::ioctlsocket(s, ws::FIONBIO, &mut on) } != 0 {
        let e = neg_wsa_error();
        close_quietly(s);
        return Err(e);
    }
    Ok(s)
}

/// `ConnectEx` needs a bound socket: binds `s` to the unspecified address
/// of `peer`'s family unless it is bound already.
pub(crate) fn bind_unspecified_if_unbound(s: RawHandle, peer: &socket2::SockAddr) -> Result<(), i32> {
    match local_addr(s) {
        Ok(_) => return Ok(()),
        Err(e) if e == -ws::WSAEINVAL => {}
        Err(e) => return Err(e),
    }
    let any: std::net::SocketAddr = if peer.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let any = socket2::SockAddr::from(any);
    // SAFETY: `any` is a valid address of `any.len()` bytes.
    if unsafe { ws::bind(s, any.as_ptr().cast(), any.len()) } != 0 {
        return Err(neg_wsa_error());
    }
    Ok(())
}

/// After `AcceptEx` succeeded: gives the accepted socket `s` the listening
/// socket's context (so that `getpeername`, `shutdown`... work on it) and
/// returns it as a raw result.
pub(crate) fn finish_accept(listener: RawHandle, s: RawHandle) -> i32 {
    // SAFETY: the option value is a live local of the size given.
    let r = unsafe {
        ws::setsockopt(
            s,
            ws::SOL_SOCKET,
            ws::SO_UPDATE_ACCEPT_CONTEXT,
            (std::ptr::addr_of!(listener)).cast(),
            std::mem::size_of::<RawHandle>() as i32,
        )
    };
    if r != 0 {
        return neg_wsa_error();
    }
    // Raw results are 32-bit; handle values use their low 32 bits only,
    // but refuse rather than truncate one that would not fit.
    i32::try_from(s).unwrap_or(-ws::WSAEMFILE)
}

/// After `ConnectEx` succeeded: gives `s` its connected context.
pub(crate) fn finish_connect(s: RawHandle) -> i32 {
    // SAFETY: no option value.
    let r = unsafe {
        ws::setsockopt(s, ws::SOL_SOCKET, ws::SO_UPDATE_CONNECT_CONTEXT, std::ptr::null(), 0)
    };
    if r != 0 {
        return neg_wsa_error();
    }
    0
}

/// A new socket for the watchers: overlapped and not inherited by child
/// processes (socket2 creates sockets that way on Windows), and
/// non-blocking, as on Unix, so that a direct call on it never blocks.
pub(crate) fn nonblocking_socket(
    domain: socket2::Domain,
    ty: socket2::Type,
    protocol: Option<socket2::Protocol>,
) -> io::Result<socket2::Socket> {
    let s = socket2::Socket::new(domain, ty, protocol)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// A pipe whose two ends are opened for overlapped I/O, so that their
/// reads and writes go through the completion port (anonymous pipes
/// cannot be): a byte-mode named pipe with one instance and a unique
/// local name, refusing remote clients. Returns (read end, write end).
pub(crate) fn overlapped_pipe() -> io::Result<(
    std::os::windows::io::OwnedHandle,
    std::os::windows::io::OwnedHandle,
)> {
    use std::os::windows::ffi::OsStrExt;
    use std::sync::atomic::AtomicU64;
    use windows_sys::Win32::Foundation::GENERIC_WRITE;
    use windows_sys::Win32::Storage::FileSystem::{
        CreateFileW, FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, OPEN_EXISTING,
        PIPE_ACCESS_INBOUND,
    };
    use windows_sys::Win32::System::Pipes::{
        CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE,
        PIPE_WAIT,
    };
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        r"\\.\pipe\xev-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let wide: Vec<u16> = std::ffi::OsStr::new(&name)
        .encode_wide()
        .chain(Some(0))
        .collect();
    // SAFETY: `wide` is a live, NUL-terminated UTF-16 name; null security
    // attributes are allowed.
    let r = unsafe {
        CreateNamedPipeW(
            wide.as_ptr(),
            PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            1,
            64 * 1024,
            64 * 1024,
            0,
            std::ptr::null(),
        )
    };
    if r == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `r` is a new handle that nothing else owns.
    let read = unsafe { std::os::windows::io::OwnedHandle::from_raw_handle(r) };
    // SAFETY: as for CreateNamedPipeW; the pipe exists and waits for this
    // one client.
    let w = unsafe {
        CreateFileW(
            wide.as_ptr(),
            GENERIC_WRITE,
            0,
            std::ptr::null(),
            OPEN_EXISTING,
            FILE_FLAG_OVERLAPPED,
            std::ptr::null_mut(),
        )
    };
    if w == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `w` is a new handle that nothing else owns.
    let write = unsafe { std::os::windows::io::OwnedHandle::from_raw_handle(w) };
    Ok((read, write))
}
