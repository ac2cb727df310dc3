//! The IOCP backend (Windows): the kernel performs every operation and
//! posts a packet to the loop's completion port when it finishes.
//!
//! Each started operation is one overlapped call (`WSARecv`, `AcceptEx`,
//! `ReadFile`...) whose `OVERLAPPED` lives in the completion record
//! (`record::Slot`), so the packet's `OVERLAPPED` pointer leads back to the
//! completion. A handle is associated with the port on first use. Packets
//! are taken in batches with `GetQueuedCompletionStatusEx`; the wait is
//! bounded by the loop's timing wheel (no kernel timer objects). The
//! waker, thread-pool hand-backs and `Async` notifies post a packet with
//! their own key. A cancel is `CancelIoEx` on the operation's
//! `OVERLAPPED`: when it finds the operation, the operation's packet
//! follows (cancelled, or, if it finished first, with its result, and the
//! loop then reports the cancel as too late); when it does not, the packet
//! is already on its way. A close cancels what is pending on the handle by
//! closing it, and completes through a packet posted after that.
//!
//! Every completion packet is always waited for (no
//! `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`), so an operation that succeeds
//! at once still completes through the port.

use std::io;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use windows_sys::core::GUID;
use windows_sys::Win32::Foundation::{
    ERROR_IO_PENDING, ERROR_NOT_FOUND, HANDLE,
};
use windows_sys::Win32::Networking::WinSock as ws;
use windows_sys::Win32::Storage::FileSystem::{ReadFile, WriteFile};
use windows_sys::Win32::System::IO::{CancelIoEx, OVERLAPPED, OVERLAPPED_ENTRY};

use crate::backend::contract::{Backend, CancelStart, Start, Waker};
use crate::error::UNSUPPORTED;
use crate::op::{io_len, Op};
use crate::options::Options;
use crate::record::{Core, Slot, State};
use crate::sys::{self, IocpSlot, Port, RawHandle, ACCEPT_ADDRS, WAKE_KEY};
use windows_sys::Win32::System::SystemServices::JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO;

/// Packets taken from the port per wait.
const BATCH: usize = 128;

/// The offset of a completion's `OVERLAPPED` from its start.
const OV_OFFSET: usize = std::mem::offset_of!(Core, slot) + std::mem::offset_of!(IocpSlot, ov);

/// The completion whose `OVERLAPPED` is at `ov`.
fn core_of(ov: *mut OVERLAPPED) -> *mut Core {
    ov.cast::<u8>().wrapping_sub(OV_OFFSET).cast()
}

/// The IOCP backend.
pub struct Iocp {
    port: Arc<Port>,
    /// Operations the kernel (or a posted packet) holds for us.
    in_flight: usize,
    /// `ConnectEx`, looked up on first use.
    connect_ex: ws::LPFN_CONNECTEX,
    entries: Box<[OVERLAPPED_ENTRY; BATCH]>,
}

/// A slot for a new operation, with its `OVERLAPPED` zeroed (and so an
/// offset of 0).
fn fresh_slot() -> IocpSlot {
    IocpSlot {
        // SAFETY: OVERLAPPED is a plain C struct; all zero is its initial
        // value.
        ov: unsafe { std::mem::zeroed() },
        accept: ws::INVALID_SOCKET,
        job: 0,
        flags: 0,
        canceled: false,
        owner: 0,
        addrs: [0; ACCEPT_ADDRS],
    }
}

/// Whether a failed overlapped call's error means "started" (the packet
/// follows).
fn pending(err: i32) -> bool {
    err == -(ERROR_IO_PENDING as i32) || err == -ws::WSA_IO_PENDING
}

/// The raw result of starting an overlapped WinSock call that returned
/// `r` (0 or `SOCKET_ERROR`): the packet follows unless it failed at once.
fn wsa_start(r: i32) -> Start {
    if r == 0 {
        return Start::Pending;
    }
    let e = sys::neg_wsa_error();
    if pending(e) {
        Start::Pending
    } else {
        Start::Done(-sys::socket_code(-e))
    }
}

/// The same for a file call (`ReadFile`/`WriteFile`) that returned `ok`.
fn file_start(ok: i32) -> Start {
    if ok != 0 {
        return Start::Pending;
    }
    let e = sys::neg_last_error();
    if pending(e) {
        return Start::Pending;
    }
    // End of file (or a pipe whose writer is gone) at once: 0 bytes.
    match sys::eof_as_zero(-sys::socket_code(-e)) {
        0 => Start::Done(0),
        e => Start::Done(e),
    }
}

impl Iocp {
    /// Looks up `ConnectEx` through `s` (the provider's extension).
    fn connect_ex(&mut self, s: usize) -> Result<ws::LPFN_CONNECTEX, i32> {
        if self.connect_ex.is_some() {
            return Ok(self.connect_ex);
        }
        let guid: GUID = ws::WSAID_CONNECTEX;
        let mut f: ws::LPFN_CONNECTEX = None;
        let mut n = 0u32;
        // SAFETY: in and out buffers are live locals of the sizes given;
        // no OVERLAPPED, so the call is synchronous.
        let r = unsafe {
            ws::WSAIoctl(
                s,
                ws::SIO_GET_EXTENSION_FUNCTION_POINTER,
                (&guid as *const GUID).cast(),
                std::mem::size_of::<GUID>() as u32,
                (&mut f as *mut ws::LPFN_CONNECTEX).cast(),
                std::mem::size_of::<ws::LPFN_CONNECTEX>() as u32,
                &mut n,
                std::ptr::null_mut(),
                None,
            )
        };
        if r != 0 {
            return Err(sys::neg_wsa_error());
        }
        self.connect_ex = f;
        Ok(f)
    }

    /// Starts the overlapped call of `c`'s operation.
    ///
    /// # Safety
    /// As for [`Backend::start`]; `c`'s slot holds a fresh [`IocpSlot`].
    unsafe fn start_io(&mut self, c: *mut Core) -> Start {
        // SAFETY: the loop lends us exclusive access to a live core that
        // stays in place until its packet is dequeued; every pointer handed
        // to the kernel points into it (its slot or its op's buffers).
        unsafe {
            let slot = std::ptr::addr_of_mut!((*c).slot.iocp);
            let ov = std::ptr::addr_of_mut!((*slot).ov);
            let fd = match (*c).op.handle() {
                Some(fd) => fd,
                None => return Start::Done(UNSUPPORTED),
            };
            (*slot).owner = Arc::as_ptr(&self.port) as usize;
            match &(*c).op {
                // Readiness has no honest completion-port equivalent.
                Op::Poll { .. } => return Start::Done(UNSUPPORTED),
                Op::ProcWait { fd, .. } => return self.start_proc_wait(c, *fd),
                // Windows reads the offset u64::MAX as "at the end of the
                // file"; offsets are signed 64-bit everywhere else.
                Op::Pread { offset, .. } | Op::Pwrite { offset, .. } if *offset > i64::MAX as u64 => {
                    return Start::Done(sys::INVALID_ARGUMENT);
                }
                _ => {}
            }
            // Negative values are pseudo-handles (the current process or
            // thread) or INVALID_HANDLE_VALUE, never a file or socket.
            if (fd as isize) < 0 {
                return Start::Done(-(sys::BAD_HANDLE_CODE));
            }
            // A handle opened for synchronous I/O (no FILE_FLAG_OVERLAPPED,
            // as `std::fs::File` opens files) posts no packet: as on the
            // readiness backends, a plain read or write of a disk file runs
            // on the loop thread, positional file I/O on the thread pool,
            // and anything else that could wait (a pipe, a console) on the
            // pool too.
            let file_op = matches!(
                (*c).op,
                Op::Read { .. } | Op::Write { .. } | Op::Pread { .. } | Op::Pwrite { .. }
            );
            let plain = matches!((*c).op, Op::Read { .. } | Op::Write { .. });
            if file_op && sys::is_synchronous(fd) {
                if plain && sys::is_disk_file(fd) {
                    return Start::Done(sys::perform(c));
                }
                return Start::Pool;
            }
            // A disk file opened for overlapped I/O has no file position:
            // a plain read or write would silently act at offset 0.
            // Positional I/O (pread, pwrite) is the honest way there.
            if plain && sys::is_disk_file(fd) {
                return Start::Done(UNSUPPORTED);
            }
            if let Err(e) = self.port.associate(fd) {
                return Start::Done(e);
            }
            match &mut (*c).op {
                Op::Accept { fd } => {
                    let s = match sys::socket_like(*fd) {
                        Ok(s) => s,
                        Err(e) => return Start::Done(e),
                    };
                    (*slot).accept = s;
                    let mut n = 0u32;
                    let addr_len = (ACCEPT_ADDRS / 2) as u32;
                    let ok = ws::AcceptEx(
                        *fd,
                        s,
                        (std::ptr::addr_of_mut!((*slot).addrs)).cast(),
                        0,
                        addr_len,
                        addr_len,
                        &mut n,
                        ov,
                    );
                    let st = wsa_start(if ok != 0 { 0 } else { ws::SOCKET_ERROR });
                    if let Start::Done(_) = st {
                        sys::close_quietly(s);
                    }
                    st
                }
                Op::Connect { fd, addr } => {
                    if let Err(e) = sys::bind_unspecified_if_unbound(*fd, addr) {
                        return Start::Done(e);
                    }
                    let f = match self.connect_ex(*fd) {
                        Ok(Some(f)) => f,
                        Ok(None) => return Start::Done(UNSUPPORTED),
                        Err(e) => return Start::Done(e),
                    };
                    let ok = f(
                        *fd,
                        addr.as_ptr().cast(),
                        addr.len(),
                        std::ptr::null(),
                        0,
                        std::ptr::null_mut(),
                        ov,
                    );
                    wsa_start(if ok != 0 { 0 } else { ws::SOCKET_ERROR })
                }
                Op::Read { fd, buf } | Op::Pread { fd, buf, .. } => {
                    if let Op::Pread { offset, .. } = &(*c).op {
                        set_offset(ov, *offset);
                    }
                    let n = io_len(buf.len()) as u32;
                    file_start(ReadFile(*fd as HANDLE, buf.as_mut_ptr(), n, std::ptr::null_mut(), ov))
                }
                Op::Write { fd, buf } | Op::Pwrite { fd, buf, .. } => {
                    if let Op::Pwrite { offset, .. } = &(*c).op {
                        set_offset(ov, *offset);
                    }
                    let n = io_len(buf.len()) as u32;
                    file_start(WriteFile(*fd as HANDLE, buf.as_ptr(), n, std::ptr::null_mut(), ov))
                }
                Op::Recv { fd, buf } => {
                    let b = ws::WSABUF {
                        len: io_len(buf.len()) as u32,
                        buf: buf.as_mut_ptr(),
                    };
                    let r = ws::WSARecv(
                        *fd,
                        &b,
                        1,
                        std::ptr::null_mut(),
                        std::ptr::addr_of_mut!((*slot).flags),
                        ov,
                        None,
                    );
                    wsa_start(r)
                }
                Op::Send { fd, buf } => {
                    let b = ws::WSABUF {
                        len: io_len(buf.len()) as u32,
                        buf: buf.as_ptr().cast_mut(),
                    };
                    wsa_start(ws::WSASend(*fd, &b, 1, std::ptr::null_mut(), 0, ov, None))
                }
                Op::Recvmsg(m) => {
                    let fd = m.fd;
                    let raw = m.prepare(true);
                    let r = ws::WSARecvFrom(
                        fd,
                        &raw.buf,
                        1,
                        std::ptr::null_mut(),
                        std::ptr::addr_of_mut!((*slot).flags),
                        raw.addr.cast(),
                        raw.addr_len,
                        ov,
                        None,
                    );
                    wsa_start(r)
                }
                Op::Sendmsg(m) => {
                    let fd = m.fd;
                    let raw = m.prepare(false);
                    let r = ws::WSASendTo(
                        fd,
                        &raw.buf,
                        1,
                        std::ptr::null_mut(),
                        0,
                        raw.addr.cast_const().cast(),
                        *raw.addr_len,
                        ov,
                        None,
                    );
                    wsa_start(r)
                }
                Op::Shutdown { fd, how } => Start::Done(sys::shutdown(*fd, *how)),
                Op::Close { fd } => {
                    // Closing ends what is pending on the handle (those
                    // operations' packets are queued as it closes); the
                    // close itself completes through a packet posted after
                    // that, so it comes after them.
                    (*slot).flags = sys::close(*fd) as u32;
                    match self.port.post(0, 0, ov) {
                        Ok(()) => Start::Pending,
                        Err(_) => Start::Done((*slot).flags as i32),
                    }
                }
                // Answered above.
                Op::Poll { .. } => Start::Done(UNSUPPORTED),
                Op::ProcWait { .. } => Start::Done(UNSUPPORTED),
                // The loop handles these itself.
                Op::Noop | Op::Timer { .. } | Op::Cancel { .. } | Op::AsyncWait(_) => {
                    Start::Done(UNSUPPORTED)
                }
            }
        }
    }

    /// Starts waiting for the exit of process `h` (a process handle): a job
    /// object holding the process reports to the port, with `c`'s address
    /// as the packet's key, once the process is gone. A process that has
    /// exited already completes at once.
    ///
    /// # Safety
    /// As for [`Iocp::start_io`].
    unsafe fn start_proc_wait(&mut self, c: *mut Core, h: RawHandle) -> Start {
        if (h as isize) < 0 {
            return Start::Done(-sys::BAD_HANDLE_CODE);
        }
        if sys::process_exited(h) {
            return Start::Done(0);
        }
        match sys::watch_exit(self.port.handle(), c as usize, h) {
            Ok(job) => {
                // SAFETY: the caller's exclusive access to `c`.
                unsafe { (*c).slot.iocp.job = job };
                Start::Pending
            }
            // A process that exited in between cannot join a job.
            Err(_) if sys::process_exited(h) => Start::Done(0),
            Err(e) => Start::Done(e),
        }
    }

    /// A job-object packet (`key` is the completion whose wait made the
    /// job, `msg` the job message): completes that wait once its process
    /// has really exited. Stale packets (a wait cancelled, its completion
    /// reused) are recognised and dropped: the completion's memory stays
    /// with the loop for the loop's whole life, so reading it is sound.
    fn job_packet(&mut self, key: usize, msg: u32, sink: &mut dyn FnMut(NonNull<Core>, i32)) {
        if msg != JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO {
            return;
        }
        let c = key as *mut Core;
        // SAFETY: `key` is the address of a completion of this loop (only
        // this backend creates jobs reporting to its port), whose memory
        // the loop keeps; while it is held by the backend nothing else
        // touches it.
        unsafe {
            if (*c).state != State::Backend
                || (*c).slot.iocp.owner != Arc::as_ptr(&self.port) as usize
                || (*c).slot.iocp.job == 0
            {
                return;
            }
            let Op::ProcWait { fd, .. } = (*c).op else {
                return;
            };
            if !sys::process_exited(fd) {
                return;
            }
            sys::close_job((*c).slot.iocp.job);
            (*c).slot.iocp.job = 0;
            self.in_flight -= 1;
            sink(NonNull::new_unchecked(c), 0);
        }
    }

    /// Turns a dequeued packet for `c` into its raw result, finishing what
    /// the operation needs after its packet (an accept's or connect's
    /// socket context, an accept's socket on failure).
    ///
    /// # Safety
    /// `c` is a completion this backend started, whose packet was just
    /// dequeued.
    unsafe fn finish_io(c: *mut Core) -> i32 {
        // SAFETY: per the contract: the kernel is done with `c`, which is
        // live and ours.
        unsafe {
            let slot = std::ptr::addr_of_mut!((*c).slot.iocp);
            let ov = std::ptr::addr_of!((*slot).ov);
            let op = &(*c).op;
            if let Op::Close { .. } = op {
                return (*slot).flags as i32;
            }
            let socket = !matches!(
                op,
                Op::Read { .. } | Op::Write { .. } | Op::Pread { .. } | Op::Pwrite { .. }
            );
            let fd = op.handle().unwrap_or(ws::INVALID_SOCKET);
            let mut res = sys::overlapped_result(fd, ov, socket);
            if res < 0 && (*slot).canceled {
                res = sys::CANCELED;
            }
            match op {
                Op::Accept { fd } => {
                    let s = (*slot).accept;
                    if res >= 0 {
                        res = sys::finish_accept(*fd, s);
                    }
                    if res < 0 {
                        sys::close_quietly(s);
                    }
                }
                Op::Connect { fd, .. } if res >= 0 => res = sys::finish_connect(*fd),
                _ => {}
            }
            res
        }
    }
}

/// Sets the file offset of an overlapped `ReadFile`/`WriteFile`.
///
/// # Safety
/// `ov` is live and not in use by the kernel.
unsafe fn set_offset(ov: *mut OVERLAPPED, offset: u64) {
    // SAFETY: per the contract; plain integer fields.
    unsafe {
        (*ov).Anonymous.Anonymous.Offset = offset as u32;
        (*ov).Anonymous.Anonymous.OffsetHigh = (offset >> 32) as u32;
    }
}

impl Backend for Iocp {
    fn new(_opts: &Options) -> io::Result<(Iocp, Waker)> {
        sys::winsock_init();
        let port = Port::new()?;
        let waker = Waker::for_port(Arc::clone(&port));
        let backend = Iocp {
            port,
            in_flight: 0,
            connect_ex: None,
            // SAFETY: OVERLAPPED_ENTRY is a plain C struct; all zero is
            // valid.
            entries: Box::new(unsafe { std::mem::zeroed() }),
        };
        Ok((backend, waker))
    }

    fn name(&self) -> &'static str {
        "iocp"
    }

    unsafe fn start(&mut self, core: NonNull<Core>) -> Start {
        let c = core.as_ptr();
        // SAFETY: the loop lends us exclusive access to a live core; its
        // slot is ours while we hold it.
        let st = unsafe {
            (*c).slot = Slot {
                iocp: fresh_slot(),
            };
            self.start_io(c)
        };
        if st == Start::Pending {
            self.in_flight += 1;
        }
        st
    }

    unsafe fn cancel(&mut self, target: NonNull<Core>) -> CancelStart {
        let c = target.as_ptr();
        // A process wait ends when its job is closed: the job sends
        // nothing more, and a packet already queued is recognised as
        // stale (see `job_packet`).
        // SAFETY: `target` is live and held by us (trait contract).
        unsafe {
            if let Op::ProcWait { .. } = (*c).op {
                sys::close_job((*c).slot.iocp.job);
                (*c).slot.iocp.job = 0;
                self.in_flight -= 1;
                return CancelStart {
                    cancel: 0,
                    target: Some(sys::CANCELED),
                };
            }
        }
        // SAFETY: `target` is live and held by us (trait contract).
        let (fd, ov) = unsafe {
            (
                (*c).op.handle(),
                std::ptr::addr_of_mut!((*c).slot.iocp.ov),
            )
        };
        let cancel = match fd {
            // A close is not stopped: it already happened.
            Some(_) if matches!(
                // SAFETY: as above.
                unsafe { &(*c).op },
                Op::Close { .. }
            ) => sys::TOO_LATE,
            // SAFETY: the handle is an integer the kernel checks; `ov` is
            // the target's live OVERLAPPED.
            Some(fd) => match unsafe { CancelIoEx(fd as HANDLE, ov) } {
                0 => match sys::neg_last_error() {
                    e if e == -(ERROR_NOT_FOUND as i32) => sys::NOT_FOUND,
                    // The handle was closed (through the loop, or behind
                    // its back): that already ends the operation, whose
                    // packet is on its way. Too late to cancel.
                    e if e == -sys::BAD_HANDLE_CODE => sys::TOO_LATE,
                    e => e,
                },
                _ => {
                    // SAFETY: as above.
                    unsafe { (*c).slot.iocp.canceled = true };
                    0
                }
            },
            None => sys::NOT_FOUND,
        };
        CancelStart {
            cancel,
            target: None,
        }
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut dyn FnMut(NonNull<Core>, i32),
    ) -> io::Result<bool> {
        let n = self.port.wait(&mut self.entries[..], timeout)?;
        let mut woken = false;
        for i in 0..n {
            let e = self.entries[i];
            if e.lpCompletionKey == WAKE_KEY {
                woken = true;
                continue;
            }
            if e.lpCompletionKey != 0 {
                self.job_packet(e.lpCompletionKey, e.dwNumberOfBytesTransferred, sink);
                continue;
            }
            let c = core_of(e.lpOverlapped);
            // SAFETY: every packet with key 0 carries the OVERLAPPED of a
            // completion some loop started, which stays live until that
            // loop gets its packet back; `owner` was written before the
            // operation started.
            if unsafe { (*c).slot.iocp.owner } != Arc::as_ptr(&self.port) as usize {
                // Another loop's operation on a handle associated with
                // this port first: not ours to touch (that loop never
                // sees it complete; a handle serves one loop).
                continue;
            }
            // SAFETY: ours, and its packet is dequeued, so the kernel is
            // done with it.
            let res = unsafe { Self::finish_io(c) };
            self.in_flight -= 1;
            // SAFETY: `c` is a live completion (non-null: it was started).
            sink(unsafe { NonNull::new_unchecked(c) }, res);
        }
        Ok(woken)
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn has_pending(&mut self) -> bool {
        // Packets can only be learnt of by waiting (with a zero timeout).
        self.in_flight > 0
    }

    unsafe fn abandon(&mut self, target: NonNull<Core>) {
        // SAFETY: forwarded from the caller.
        let _ = unsafe { self.cancel(target) };
    }

    fn drain(&mut self, sink: &mut dyn FnMut(NonNull<Core>, i32)) {
        while self.in_flight > 0 {
            if self.poll(None, sink).is_err() {
                // The port itself failed: the loop sees in_flight > 0 and
                // leaks the completions rather than free memory the kernel
                // may still write.
                break;
            }
        }
    }
}
