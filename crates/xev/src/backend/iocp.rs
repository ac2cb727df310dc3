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
//! A handle this backend associates is also put in
//! `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` mode: an overlapped call that
//! succeeds at once posts no packet, and its result is read from its
//! `OVERLAPPED`. With no earlier operation of its lane (handle and
//! direction) on its way, the operation completes at once, the kernel's
//! packet and its dequeue saved (typical for a send with buffer space or a
//! receive with data waiting); otherwise the backend posts the packet
//! itself, behind those already queued, so that the operations of one
//! lane complete in the order the kernel finished them. The association is
//! attempted at each start (the kernel refuses a second one, cheaply):
//! remembering handles instead would trust a number that a handle closed
//! outside the loop can hand on to a new, unassociated one. A handle that
//! refuses the mode (recorded in `no_skip`) completes through the port as
//! every handle would without it.

use std::io;
use std::collections::HashMap;
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
    /// Handles this backend associated that refused skip mode (rare:
    /// empty unless a layered provider is installed).
    no_skip: Vec<RawHandle>,
    /// Operations whose packet is still to come, per handle and
    /// direction (see [`lane`]); a handle with none is not in the map.
    lanes: HashMap<(RawHandle, bool), u32>,
    paths: Paths,
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

/// How an overlapped call ended when it returned.
enum Began {
    /// Started: its packet follows.
    Pending,
    /// Finished successfully at once: its result is in the `OVERLAPPED`,
    /// and a packet follows only if the handle is not in skip mode.
    Succeeded,
    /// Finished at once with this raw result; no packet follows.
    Done(i32),
}

/// How an overlapped WinSock call on `s` that returned `r` (0 or
/// `SOCKET_ERROR`) began.
fn wsa_began(r: i32, s: RawHandle) -> Began {
    if r == 0 {
        return Began::Succeeded;
    }
    let e = sys::neg_wsa_error();
    if pending(e) {
        Began::Pending
    } else {
        Began::Done(sys::not_a_socket(s, -sys::socket_code(-e)))
    }
}

/// The same for a file call (`ReadFile` when `read`, else `WriteFile`)
/// that returned `ok`.
fn file_began(ok: i32, read: bool) -> Began {
    if ok != 0 {
        return Began::Succeeded;
    }
    let e = sys::neg_last_error();
    if pending(e) {
        return Began::Pending;
    }
    // A read at end of file (or of a pipe whose writer is gone) at once:
    // 0 bytes.
    Began::Done(sys::eof_as_zero(-sys::socket_code(-e), read))
}

/// The lane of an operation: its handle and direction (`true`: out).
/// The kernel finishes the operations of one lane in the order they
/// started, and their callbacks run in that order; the two directions of
/// a handle are independent. Only a close has no lane.
fn lane(op: &Op) -> Option<(RawHandle, bool)> {
    match op {
        Op::Accept { fd }
        | Op::Read { fd, .. }
        | Op::Pread { fd, .. }
        | Op::Recv { fd, .. }
        | Op::Poll { fd, .. } => Some((*fd, false)),
        Op::RecvPool(r) => Some((r.fd, false)),
        Op::Recvmsg(m) => Some((m.fd, false)),
        Op::Connect { fd, .. }
        | Op::Write { fd, .. }
        | Op::Pwrite { fd, .. }
        | Op::Send { fd, .. }
        | Op::Shutdown { fd, .. } => Some((*fd, true)),
        Op::Sendmsg(m) => Some((m.fd, true)),
        Op::ProcWait { .. }
        | Op::Close { .. }
        | Op::Resolve(_)
        | Op::Fs(_)
        | Op::Noop
        | Op::Timer { .. }
        | Op::Cancel { .. }
        | Op::AsyncWait(_) => None,
    }
}

/// How many operations completed by each path (see the module
/// documentation), for tests.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Paths {
    /// Succeeded at once in skip mode: no packet.
    pub(crate) inline: u64,
    /// Completed through a dequeued packet.
    pub(crate) port: u64,
    /// Of those, succeeded at once in skip mode while other operations
    /// were on their way, so posted to the port by the backend.
    pub(crate) reposted: u64,
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
            // Filesystem operations run on the thread pool.
            if let Op::Fs(_) = (*c).op {
                return Start::Pool;
            }
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
            // Its lane (handle and direction); only a close has none, and
            // it completes through its own packet.
            let lane = lane(&(*c).op).unwrap_or((fd, false));
            let skip = match self.associate(fd) {
                Ok(skip) => skip,
                Err(e) => return Start::Done(e),
            };
            let began = match &mut (*c).op {
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
                    let began = wsa_began(if ok != 0 { 0 } else { ws::SOCKET_ERROR }, *fd);
                    if let Began::Done(_) = began {
                        sys::close_quietly(s);
                    }
                    began
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
                    wsa_began(if ok != 0 { 0 } else { ws::SOCKET_ERROR }, *fd)
                }
                // A read of nothing: 0 at once and no other effect, as
                // read(2) (a socket's ReadFile would drop a queued datagram
                // or wait for data).
                Op::Read { buf, .. } | Op::Pread { buf, .. } if buf.is_empty() => Began::Done(0),
                Op::Read { fd, buf } | Op::Pread { fd, buf, .. } => {
                    if let Op::Pread { offset, .. } = &(*c).op {
                        set_offset(ov, *offset);
                    }
                    let n = io_len(buf.len()) as u32;
                    file_began(ReadFile(*fd as HANDLE, buf.as_mut_ptr(), n, std::ptr::null_mut(), ov), true)
                }
                Op::Write { fd, buf } | Op::Pwrite { fd, buf, .. } => {
                    if let Op::Pwrite { offset, .. } = &(*c).op {
                        set_offset(ov, *offset);
                    }
                    let n = io_len(buf.len()) as u32;
                    file_began(WriteFile(*fd as HANDLE, buf.as_ptr(), n, std::ptr::null_mut(), ov), false)
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
                    wsa_began(r, *fd)
                }
                // A pooled receive on an empty pool answers at once, as on
                // the other backends.
                Op::RecvPool(r) if !r.pool.0.has_free() => Began::Done(crate::buf_pool::NO_BUFFERS),
                // Else it first waits for data holding no buffer: a
                // receive of zero bytes, which completes once the socket
                // has data, its end or an error. Then `recv_pooled` takes
                // a buffer and receives what is there.
                Op::RecvPool(r) => {
                    r.got = None;
                    let b = ws::WSABUF {
                        len: 0,
                        buf: NonNull::<u8>::dangling().as_ptr(),
                    };
                    let r = ws::WSARecv(
                        r.fd,
                        &b,
                        1,
                        std::ptr::null_mut(),
                        std::ptr::addr_of_mut!((*slot).flags),
                        ov,
                        None,
                    );
                    match wsa_began(r, fd) {
                        // Something is there already.
                        Began::Succeeded if skip => return self.recv_pooled(c, skip),
                        b => b,
                    }
                }
                Op::Send { fd, buf } => {
                    let b = ws::WSABUF {
                        len: io_len(buf.len()) as u32,
                        buf: buf.as_ptr().cast_mut(),
                    };
                    wsa_began(ws::WSASend(*fd, &b, 1, std::ptr::null_mut(), 0, ov, None), *fd)
                }
                Op::Recvmsg(m) => {
                    let fd = m.fd;
                    let raw = m.prepare(true);
                    let r = ws::WSARecvFrom(
                        fd,
                        raw.bufs,
                        raw.count,
                        std::ptr::null_mut(),
                        std::ptr::addr_of_mut!((*slot).flags),
                        raw.addr.cast(),
                        raw.addr_len,
                        ov,
                        None,
                    );
                    wsa_began(r, fd)
                }
                Op::Sendmsg(m) => {
                    let fd = m.fd;
                    let raw = m.prepare(false);
                    let r = ws::WSASendTo(
                        fd,
                        raw.bufs,
                        raw.count,
                        std::ptr::null_mut(),
                        0,
                        raw.addr.cast_const().cast(),
                        *raw.addr_len,
                        ov,
                        None,
                    );
                    wsa_began(r, fd)
                }
                Op::Shutdown { fd, how } => Began::Done(sys::shutdown(*fd, *how)),
                Op::Close { fd } => {
                    // Closing ends what is pending on the handle (those
                    // operations' packets are queued as it closes); the
                    // close itself completes through a packet posted after
                    // that, so it comes after them. Its number may now be
                    // reused for a new handle.
                    self.no_skip.retain(|&h| h != *fd);
                    (*slot).flags = sys::close(*fd) as u32;
                    match self.port.post(0, 0, ov) {
                        Ok(()) => Began::Pending,
                        Err(_) => Began::Done((*slot).flags as i32),
                    }
                }
                // Answered above.
                Op::Poll { .. } => Began::Done(UNSUPPORTED),
                Op::ProcWait { .. } => Began::Done(UNSUPPORTED),
                // The loop handles these itself.
                Op::Noop
                | Op::Timer { .. }
                | Op::Cancel { .. }
                | Op::AsyncWait(_)
                | Op::Resolve(_)
                | Op::Fs(_) => {
                    Began::Done(UNSUPPORTED)
                }
            };
            match began {
                Began::Pending => Start::Pending,
                // In skip mode no packet follows: the operation is over
                // and its result is in the OVERLAPPED. With no earlier
                // operation of its lane on its way it completes now;
                // otherwise it goes through the port behind the packets
                // already queued there, so that the operations of one lane
                // complete in the order the kernel finished them (a
                // receive that succeeds at once never overtakes an earlier
                // receive whose packet waits in the port).
                Began::Succeeded if skip && !self.lanes.contains_key(&lane) => {
                    self.paths.inline += 1;
                    Start::Done(Self::finish_io(c))
                }
                Began::Succeeded if skip => match self.port.post(0, 0, ov) {
                    Ok(()) => {
                        self.paths.reposted += 1;
                        Start::Pending
                    }
                    // The port refused a packet: better out of order than
                    // lost.
                    Err(_) => Start::Done(Self::finish_io(c)),
                },
                Began::Succeeded => Start::Pending,
                Began::Done(res) => Start::Done(res),
            }
        }
    }

    /// What follows the packet of `c`, whose result is `res`: the result
    /// to hand back, or `None` when the operation goes on in the kernel (a
    /// pooled receive whose zero-byte receive found data, and whose
    /// receive into a buffer must wait after all).
    ///
    /// # Safety
    /// `c` is live and ours; its packet was just dequeued.
    unsafe fn after_packet(&mut self, c: *mut Core, res: i32) -> Option<i32> {
        // SAFETY: the caller's core is live and ours.
        let (fd, canceled) = unsafe {
            match &(*c).op {
                Op::RecvPool(r) if r.got.is_none() && res >= 0 => (r.fd, (*c).slot.iocp.canceled),
                _ => return Some(res),
            }
        };
        // A cancel that found the zero-byte receive ends it (it took
        // nothing from the socket).
        if canceled {
            return Some(sys::CANCELED);
        }
        let skip = !self.no_skip.contains(&fd);
        // SAFETY: the zero-byte receive is over; forwarded from the caller.
        match unsafe { self.recv_pooled(c, skip) } {
            Start::Done(res) => Some(res),
            _ => {
                self.in_flight += 1;
                *self.lanes.entry((fd, false)).or_insert(0) += 1;
                None
            }
        }
    }

    /// The second step of pooled receive `c`, once its zero-byte receive
    /// found the socket readable: takes a buffer from the pool
    /// (`NoBuffers` when it is empty) and receives into it what is there.
    /// The data may have gone to another receive of the socket meanwhile:
    /// then this one waits in the kernel, holding its buffer
    /// (`PoolRecv::result` gives it back unless data came). `skip`: the
    /// socket is in skip mode.
    ///
    /// # Safety
    /// As for [`Iocp::start_io`]; `c` is a pooled receive whose zero-byte
    /// receive is over.
    unsafe fn recv_pooled(&mut self, c: *mut Core, skip: bool) -> Start {
        // SAFETY: as for `start_io`: the core is live, ours, and stays in
        // place until its packet is dequeued; the buffer handed to the
        // kernel is the pool's (kept alive by the op's handle on the pool)
        // and is the op's alone until its result is taken.
        unsafe {
            let slot = std::ptr::addr_of_mut!((*c).slot.iocp);
            let ov = std::ptr::addr_of_mut!((*slot).ov);
            let Op::RecvPool(r) = &mut (*c).op else {
                return Start::Done(UNSUPPORTED);
            };
            let Some(id) = r.pool.0.take() else {
                return Start::Done(crate::buf_pool::NO_BUFFERS);
            };
            r.got = Some(id);
            (*slot).ov = std::mem::zeroed();
            (*slot).flags = 0;
            let b = ws::WSABUF {
                len: r.pool.0.size() as u32,
                buf: r.pool.0.buf_ptr(id),
            };
            let fd = r.fd;
            let res = ws::WSARecv(
                fd,
                &b,
                1,
                std::ptr::null_mut(),
                std::ptr::addr_of_mut!((*slot).flags),
                ov,
                None,
            );
            match wsa_began(res, fd) {
                Began::Succeeded if skip => {
                    self.paths.inline += 1;
                    Start::Done(Self::finish_io(c))
                }
                Began::Succeeded | Began::Pending => Start::Pending,
                Began::Done(res) => Start::Done(res),
            }
        }
    }

    /// Associates `h` with the port if it is not yet, putting it in skip
    /// mode; answers whether `h` is in skip mode. A handle found
    /// associated already was associated by this backend (its operations
    /// could not complete here otherwise), so it is in skip mode unless it
    /// refused it then.
    fn associate(&mut self, h: RawHandle) -> Result<bool, i32> {
        if !self.port.associate(h)? {
            return Ok(!self.no_skip.contains(&h));
        }
        // A new handle with the number of one closed outside the loop.
        self.no_skip.retain(|&x| x != h);
        if sys::skip_completion_on_success(h) {
            return Ok(true);
        }
        self.no_skip.push(h);
        Ok(false)
    }

    /// How many operations completed by each path so far.
    #[cfg(test)]
    pub(crate) fn paths(&self) -> Paths {
        self.paths
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
            let mut res = sys::overlapped_result(fd, ov, socket, op.is_read());
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
            no_skip: Vec::new(),
            lanes: HashMap::new(),
            paths: Paths::default(),
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
            // SAFETY: as above.
            if let Some(l) = lane(unsafe { &(*c).op }) {
                *self.lanes.entry(l).or_insert(0) += 1;
            }
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
            // SAFETY: as above.
            if let Some(l) = lane(unsafe { &(*c).op }) {
                if let Some(n) = self.lanes.get_mut(&l) {
                    *n -= 1;
                    if *n == 0 {
                        self.lanes.remove(&l);
                    }
                }
            }
            self.paths.port += 1;
            // SAFETY: as above.
            let res = match unsafe { self.after_packet(c, res) } {
                Some(res) => res,
                None => continue,
            };
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


#[cfg(test)]
mod tests {
    //! The ways an operation completes on IOCP: at once in skip mode (no
    //! packet), through the kernel's packet, or through a packet the
    //! backend posts behind its lane's queued packets.

    use std::cell::RefCell;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::windows::io::AsRawSocket;
    use std::rc::Rc;

    use super::Iocp;
    use crate::event_loop::{Loop, OwnedLoop};
    use crate::{Action, Id, Op, OpResult, Options, RawHandle, RunMode};

    /// What the receives of a test got, in callback order: a tag and the
    /// bytes, or the result printed when it was not data.
    type Log = Rc<RefCell<Vec<(u8, Result<Vec<u8>, String>)>>>;

    fn new_loop() -> OwnedLoop<Iocp> {
        Loop::<Iocp>::new(Options::default()).unwrap()
    }

    /// A connected loopback pair of std (overlapped) sockets.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    fn raw(s: &impl AsRawSocket) -> RawHandle {
        s.as_raw_socket() as RawHandle
    }

    /// Adds a receive of up to 16 bytes on `fd` that logs its outcome.
    fn recv(lp: &mut Loop<Iocp>, fd: RawHandle, log: &Log, tag: u8) -> Id {
        let log = Rc::clone(log);
        let op = Op::Recv {
            fd,
            buf: vec![0; 16].into(),
        };
        lp.add(op, move |_, op, res| {
            let got = match res {
                OpResult::Read(Ok(n)) => Ok(op.buf().unwrap()[..n].to_vec()),
                other => Err(format!("{other:?}")),
            };
            log.borrow_mut().push((tag, got));
            Action::Disarm
        })
    }

    /// Blocks until `s` holds `want` (peek leaves it there).
    fn wait_for(s: &TcpStream, want: &[u8]) {
        let mut probe = vec![0u8; want.len()];
        while s.peek(&mut probe).unwrap() < want.len() {}
        assert_eq!(probe, want);
    }

    #[test]
    fn data_waiting_completes_at_once_without_a_packet() {
        let mut lp = new_loop();
        let (mut peer, ours) = pair();
        let log = Log::default();
        peer.write_all(b"ready").unwrap();
        wait_for(&ours, b"ready");
        let before = lp.backend().paths();
        recv(&mut lp, raw(&ours), &log, 1);
        lp.run(RunMode::UntilDone).unwrap();
        let after = lp.backend().paths();
        assert_eq!(*log.borrow(), [(1, Ok(b"ready".to_vec()))]);
        assert_eq!(after.inline, before.inline + 1);
        assert_eq!((after.port, after.reposted), (before.port, before.reposted));

        // End of file, once the peer is gone, whichever path it takes.
        drop(peer);
        recv(&mut lp, raw(&ours), &log, 2);
        lp.run(RunMode::UntilDone).unwrap();
        let (tag, eof) = log.borrow()[1].clone();
        assert!(tag == 2 && eof.unwrap_err().contains("Eof"));
    }

    #[test]
    fn a_receive_started_before_the_data_completes_through_the_port() {
        let mut lp = new_loop();
        let (peer, ours) = pair();
        let log = Log::default();
        recv(&mut lp, raw(&ours), &log, 1);
        // Start the receive: nothing to read yet, so it stays pending.
        lp.run(RunMode::NoWait).unwrap();
        assert!(log.borrow().is_empty());
        assert_eq!(lp.backend().in_flight, 1, "the receive waits in the kernel");
        let before = lp.backend().paths();
        (&peer).write_all(b"late").unwrap();
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(*log.borrow(), [(1, Ok(b"late".to_vec()))]);
        let after = lp.backend().paths();
        assert_eq!((after.port - before.port, after.inline - before.inline), (1, 0));
    }

    #[test]
    fn another_handles_pending_operation_does_not_hold_back_a_success_at_once() {
        let mut lp = new_loop();
        let (mut peer, ours) = pair();
        let (_idle_peer, idle) = pair();
        let log = Log::default();
        // A receive that stays pending on another socket.
        let idle_id = recv(&mut lp, raw(&idle), &log, 1);
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(lp.backend().in_flight, 1);

        peer.write_all(b"ready").unwrap();
        wait_for(&ours, b"ready");
        let before = lp.backend().paths();
        recv(&mut lp, raw(&ours), &log, 2);
        lp.run(RunMode::NoWait).unwrap();
        let after = lp.backend().paths();
        assert_eq!(*log.borrow(), [(2, Ok(b"ready".to_vec()))]);
        assert_eq!(after.inline, before.inline + 1);
        assert_eq!((after.port, after.reposted), (before.port, before.reposted));

        lp.cancel(idle_id).unwrap();
        lp.run(RunMode::UntilDone).unwrap();
        let (tag, res) = log.borrow()[1].clone();
        assert!(tag == 1 && res.unwrap_err().contains("Canceled"));
    }

    #[test]
    fn a_success_at_once_behind_its_lanes_packet_completes_after_it() {
        let mut lp = new_loop();
        let ours = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let log = Log::default();
        // The first receive waits in the kernel.
        recv(&mut lp, raw(&ours), &log, 1);
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(lp.backend().in_flight, 1);
        // Two datagrams: the first completes the waiting receive (its
        // packet is queued, not yet taken), the second waits in the socket
        // (peek returns once it is there, the first being taken).
        let to = ours.local_addr().unwrap();
        peer.send_to(b"one", to).unwrap();
        peer.send_to(b"two", to).unwrap();
        let mut probe = [0u8; 3];
        while !matches!(ours.peek(&mut probe), Ok(3) if &probe == b"two") {}
        let before = lp.backend().paths();
        // The second succeeds at once, behind the first's packet.
        recv(&mut lp, raw(&ours), &log, 2);
        lp.run(RunMode::UntilDone).unwrap();
        let after = lp.backend().paths();
        assert_eq!(
            *log.borrow(),
            [(1, Ok(b"one".to_vec())), (2, Ok(b"two".to_vec()))]
        );
        assert_eq!(after.inline, before.inline, "its lane had a packet on its way");
        assert_eq!(after.reposted, before.reposted + 1);
        assert_eq!(after.port, before.port + 2);
    }
}
