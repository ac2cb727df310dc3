//! The io_uring backend (Linux 6.0 and later): the kernel performs every
//! operation and posts its result to the completion queue.
//!
//! Each started operation becomes one submission-queue entry whose user data
//! is the completion's address; entries are submitted in batches, together
//! with the wait, in one `io_uring_enter` per tick. Timers stay in the loop's
//! timing wheel and only bound the wait (an `EXT_ARG` timeout), so a million
//! timers cost no kernel objects. Cancellation is a synchronous cancel
//! (`IORING_REGISTER_SYNC_CANCEL`, Linux 6.0) naming the target's user
//! data, so its answer is known at once as on the readiness backends; the
//! target's `-ECANCELED` follows through the completion queue. The
//! backend's waker, an eventfd (thread-pool hand-back, notifies of a parked
//! loop), is watched by one multishot poll.
//!
//! Socket transfers (`Recv`, `Send`, `Recvmsg`, `Sendmsg`) start with one
//! direct non-blocking call where that is worth it, as on the readiness
//! backends, and only a socket that is not ready (`EAGAIN`) gets an entry:
//! a datagram already there, or a send into a socket buffer with room,
//! then costs one plain syscall instead of an entry, its trip through the
//! kernel's io_uring machinery and its completion. Per descriptor and
//! direction the backend counts the operations it holds in the ring that
//! a direct call must not overtake (sends behind a send, write, connect,
//! shutdown or close; receives behind a read, receive, connect, shutdown
//! or close), and after an attempt that found the socket not ready it
//! skips the next 1, 2, 4, .. up to 64 (a request / response peer, whose
//! data is never there yet, pays at most an occasional failed call).
//! Results are the same either way.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring as Ring};

use crate::backend::contract::{Backend, CancelStart, Start, Waker};
use crate::backend::uring_streams::{self, Begin, Streams};
use crate::fs::Fs;
use crate::op::{io_len, Op};
use crate::options::Options;
use crate::record::Core;

// User data is the completion's address. The special values below are
// never the address of a (pointer-aligned) completion.
/// User data of the wake-fd poll.
const WAKE: u64 = 1;
/// User data of cancels whose own result nobody waits for (`Loop::cancel`,
/// dropping the loop).
const DRAIN: u64 = 2;
/// User data of the cancel-by-descriptor linked ahead of each close.
const CLOSE_CANCEL: u64 = 3;

/// The filesystem opcodes xev can submit natively.
const FS_OPCODES: [u8; 9] = [
    opcode::OpenAt::CODE,
    opcode::Statx::CODE,
    opcode::Fsync::CODE,
    opcode::Fallocate::CODE,
    opcode::RenameAt::CODE,
    opcode::UnlinkAt::CODE,
    opcode::MkDirAt::CODE,
    opcode::SymlinkAt::CODE,
    opcode::LinkAt::CODE,
];

/// Which of [`FS_OPCODES`] and `SEND_ZC` the kernel supports (bit `n` for
/// opcode `n`); none when the probe itself fails (filesystem requests
/// then go to the pool, sends copy).
fn probe_opcodes(ring: &Ring) -> u64 {
    let mut probe = io_uring::Probe::new();
    if ring.submitter().register_probe(&mut probe).is_err() {
        return 0;
    }
    FS_OPCODES
        .iter()
        .chain(&[opcode::SendZc::CODE])
        .filter(|&&c| c < 64 && probe.is_supported(c))
        .fold(0, |m, &c| m | 1 << c)
}

/// The entry that performs `f` in the kernel, `Ok(None)` when it must run
/// on the thread pool (no opcode, or the kernel lacks it), or the raw
/// result of a request that fails before reaching the kernel.
///
/// # Safety
/// `f` stays in place (boxed in a live core) until the entry's CQE is
/// reaped: the entry points at its paths and its `statx` buffer.
unsafe fn fs_entry(f: &mut Fs, have: u64) -> Result<Option<squeue::Entry>, i32> {
    use crate::fs::Req;
    const HERE: types::Fd = types::Fd(libc::AT_FDCWD);
    fn c(p: &crate::fs::FsPath) -> Result<*const libc::c_char, i32> {
        p.c.as_ref().map(|c| c.as_ptr()).ok_or(-libc::EINVAL)
    }
    let code = match f.req {
        Req::Open { .. } => opcode::OpenAt::CODE,
        Req::Stat { .. } | Req::Fstat { .. } => opcode::Statx::CODE,
        Req::Sync { .. } => opcode::Fsync::CODE,
        Req::Allocate { .. } => opcode::Fallocate::CODE,
        Req::Rename { .. } => opcode::RenameAt::CODE,
        Req::Unlink { .. } | Req::Rmdir { .. } => opcode::UnlinkAt::CODE,
        Req::Mkdir { .. } => opcode::MkDirAt::CODE,
        Req::Symlink { .. } => opcode::SymlinkAt::CODE,
        Req::Link { .. } => opcode::LinkAt::CODE,
        Req::Truncate { .. } | Req::ReadLink { .. } | Req::ReadDir { .. } => return Ok(None),
    };
    if code >= 64 || have & (1 << code) == 0 {
        return Ok(None);
    }
    let statx = std::ptr::addr_of_mut!(f.statx).cast::<types::statx>();
    let mask = libc::STATX_BASIC_STATS | libc::STATX_BTIME;
    Ok(Some(match &f.req {
        Req::Open { dir, path, flags } => {
            let bits = crate::sys::fs::open_flags(flags).map_err(|_| -libc::EINVAL)?;
            opcode::OpenAt::new(types::Fd(dir.unwrap_or(libc::AT_FDCWD)), c(path)?)
                .flags(bits)
                .mode(flags.mode as libc::mode_t)
                .build()
        }
        Req::Stat { path, follow } => opcode::Statx::new(HERE, c(path)?, statx)
            .flags(if *follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW })
            .mask(mask)
            .build(),
        Req::Fstat { fd } => opcode::Statx::new(types::Fd(*fd), c"".as_ptr(), statx)
            .flags(libc::AT_EMPTY_PATH)
            .mask(mask)
            .build(),
        Req::Sync { fd, data_only } => opcode::Fsync::new(types::Fd(*fd))
            .flags(if *data_only {
                types::FsyncFlags::DATASYNC
            } else {
                types::FsyncFlags::empty()
            })
            .build(),
        Req::Allocate { fd, offset, len } => {
            if *offset > i64::MAX as u64 || *len > i64::MAX as u64 {
                return Err(-libc::EINVAL);
            }
            opcode::Fallocate::new(types::Fd(*fd), *len)
                .offset(*offset)
                .build()
        }
        Req::Rename { from, to } => opcode::RenameAt::new(HERE, c(from)?, HERE, c(to)?).build(),
        Req::Unlink { path } => opcode::UnlinkAt::new(HERE, c(path)?).build(),
        Req::Rmdir { path } => opcode::UnlinkAt::new(HERE, c(path)?)
            .flags(libc::AT_REMOVEDIR)
            .build(),
        Req::Mkdir { path, mode } => opcode::MkDirAt::new(HERE, c(path)?)
            .mode(*mode as libc::mode_t)
            .build(),
        Req::Symlink { target, link } => {
            opcode::SymlinkAt::new(HERE, c(target)?, c(link)?).build()
        }
        Req::Link { from, to } => opcode::LinkAt::new(HERE, c(from)?, HERE, c(to)?).build(),
        Req::Truncate { .. } | Req::ReadLink { .. } | Req::ReadDir { .. } => return Ok(None),
    }))
}

/// The largest descriptor whose ordered operations are counted: a
/// transfer on a larger one always goes through the ring.
const MAX_ORDERED_FD: usize = 1 << 20;

/// An operation in the ring holds its descriptor's send count: a later
/// direct send must not overtake it.
const HOLDS_SEND: u64 = 1 << 32;
/// An operation in the ring holds its descriptor's receive count.
const HOLDS_RECV: u64 = 1 << 33;
/// A zero-copy send whose result came (in the low 32 bits), waiting for
/// its notification; it holds no count any more.
const STASHED: u64 = 1 << 40;
/// A send that goes as a plain send although it is long enough for a
/// zero-copy one: its socket refused that (`EOPNOTSUPP`: a Unix socket).
const PLAIN_SEND: u64 = 1 << 41;

/// The entry of a plain (copying) send of `buf` on `fd`.
fn send_entry(fd: RawFd, buf: &crate::Buf) -> squeue::Entry {
    opcode::Send::new(types::Fd(fd), buf.as_ptr(), len32(buf.len()))
        .flags(libc::MSG_NOSIGNAL)
        .build()
}

/// The descriptor of an operation that a later direct send or receive on
/// it must not overtake, and which (see [`HOLDS_SEND`]).
fn ordered_fd(op: &Op) -> Option<(RawFd, u64)> {
    match op {
        Op::Write { fd, .. } | Op::Send { fd, .. } => Some((*fd, HOLDS_SEND)),
        Op::Sendmsg(m) => Some((m.fd, HOLDS_SEND)),
        Op::Read { fd, .. } | Op::Recv { fd, .. } => Some((*fd, HOLDS_RECV)),
        Op::RecvPool(r) => Some((r.fd, HOLDS_RECV)),
        Op::Recvmsg(m) => Some((m.fd, HOLDS_RECV)),
        Op::Connect { fd, .. } | Op::Shutdown { fd, .. } | Op::Close { fd } => {
            Some((*fd, HOLDS_SEND | HOLDS_RECV))
        }
        _ => None,
    }
}

/// One direction of a descriptor: how many ordered operations the ring
/// holds, and whether a direct attempt is worth making (after one found
/// the socket not ready, the next 1, 2, 4, .. up to 64 skip it).
#[derive(Default, Clone, Copy)]
struct DirState {
    held: u32,
    skip: u8,
    backoff: u8,
}

impl DirState {
    fn should_try(&mut self) -> bool {
        if self.held > 0 {
            return false;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    fn found(&mut self, ready: bool) {
        if ready {
            self.backoff = 0;
        } else {
            self.backoff = self.backoff.saturating_mul(2).clamp(1, 64);
            self.skip = self.backoff;
        }
    }
}

/// A descriptor's two directions.
#[derive(Default, Clone, Copy)]
struct FdState {
    send: DirState,
    recv: DirState,
}

/// The multishot group (a buffer group, or listeners) and descriptor of
/// `c`, if it may wait on a multishot: a pooled receive on a kernel ring,
/// or an accept.
fn multishot(c: *mut Core) -> Option<(u16, RawFd)> {
    // SAFETY: callers pass a live core lent to the backend.
    match unsafe { &(*c).op } {
        Op::RecvPool(r) => r.pool.0.kernel_ring().map(|k| (k.bgid, r.fd)),
        Op::Accept { fd } => Some((uring_streams::ACCEPTS, *fd)),
        _ => None,
    }
}

/// A completion's io_uring user data: its address.
fn user_data(c: *mut Core) -> u64 {
    c as usize as u64
}

/// Pushes `sqe` onto `ring`'s submission queue, submitting the queue
/// first when it is full.
fn push_to(ring: &mut Ring, sqe: &squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every entry we build points only into completion
        // memory that the loop keeps alive and in place until the entry's
        // CQE is reaped (Backend::start's contract), or at nothing.
        if unsafe { ring.submission().push(sqe) }.is_ok() {
            return Ok(());
        }
        // Queue full: hand the batch to the kernel and try again.
        match ring.submit() {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                // Completion queue overflow: the kernel keeps the CQEs
                // (NODROP); the next poll reaps them. Retry the push.
                std::thread::yield_now();
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Pushes a cancel of user data `ud` whose own result nobody waits for,
/// counting it in flight.
fn push_cancel(ring: &mut Ring, in_flight: &mut usize, ud: u64) -> io::Result<()> {
    let sqe = opcode::AsyncCancel::new(ud).build().user_data(DRAIN);
    push_to(ring, &sqe)?;
    *in_flight += 1;
    Ok(())
}

/// The io_uring backend.
pub struct IoUring {
    ring: Ring,
    /// Operations (including pending cancels) the kernel holds for us.
    in_flight: usize,
    wake_fd: RawFd,
    wake_armed: bool,
    /// The filesystem opcodes (and `SEND_ZC`) this kernel has (bit `n`
    /// for opcode `n`), probed once: the other filesystem requests run on
    /// the thread pool.
    opcodes: u64,
    /// Sends of at least this many bytes go as `SEND_ZC`
    /// ([`Options::io_uring_send_zc_min`]; `usize::MAX`: none).
    send_zc_min: usize,
    /// Zero-copy sends to push again as plain ones (see
    /// [`IoUring::resend_plain`]; kept for its capacity).
    plain_sends: Vec<NonNull<Core>>,
    /// The setup flags the ring got (for `capabilities`).
    setup: &'static str,
    /// Per descriptor (up to [`MAX_ORDERED_FD`]), per direction: how many
    /// operations a direct attempt must not overtake ([`ordered_fd`]) the
    /// ring holds, and the attempts' backoff.
    ordered: Vec<FdState>,
    /// The buffer pools registered with the ring (buffer group id = index
    /// in their list, kept alive while the kernel may use their memory),
    /// the multishot receives on them and the multishot accepts.
    streams: Streams,
    /// Scratch list of stream cancels (kept for its capacity).
    stream_cancels: Vec<u64>,
    /// Accepts share a multishot accept per listener (the ring was set up
    /// with `COOP_TASKRUN` or more: Linux 5.19+, which has it).
    accept_multi: bool,
}

impl Drop for IoUring {
    fn drop(&mut self) {
        // The loop drains every operation before dropping its backend. If
        // the ring failed and some are still in the kernel, they may yet
        // write into a pool's buffers: leak the pools rather than free
        // that memory.
        if self.in_flight > 0 {
            self.streams.leak_pools();
        }
    }
}

/// Sets up a ring of `entries`: with `SINGLE_ISSUER` and `DEFER_TASKRUN`
/// (Linux 6.1) where the kernel takes them and `single_issuer` asks for
/// them ([`Options::io_uring_single_issuer`]), else `COOP_TASKRUN` (5.19),
/// else no flags. A loop never leaves the thread that made it (it is not
/// `Send`), so its ring has one issuer, and every completion is reaped by
/// an `io_uring_enter` with `GETEVENTS` from that thread, which is when
/// deferred task work runs; `TASKRUN_FLAG` makes the kernel say when such
/// work waits (`IORING_SQ_TASKRUN`), so that `has_pending` never lets the
/// loop skip the syscall that would post a finished operation. Returns the
/// ring and the flags' name.
fn new_ring(entries: u32, single_issuer: bool) -> io::Result<(Ring, &'static str)> {
    if !single_issuer {
        // Straight to the flags that allow any thread.
    } else if let Ok(r) = Ring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .build(entries)
    {
        return Ok((r, "single_issuer+defer_taskrun"));
    }
    if let Ok(r) = Ring::builder().setup_coop_taskrun().build(entries) {
        return Ok((r, "coop_taskrun"));
    }
    Ok((Ring::new(entries)?, "none"))
}

/// What a failed io_uring probe most likely means, for
/// [`Capabilities::fallback`](crate::Capabilities::fallback).
pub(crate) fn explain_probe_error(e: &io::Error) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&v| v > 0);
    let why = match (e.raw_os_error(), disabled) {
        (Some(libc::EPERM), Some(v)) => format!("kernel.io_uring_disabled = {v}"),
        (Some(libc::EPERM), None) => "refused by a seccomp filter or security policy".to_string(),
        (Some(libc::ENOSYS), _) => "the kernel has no io_uring (or a seccomp filter hides it)".to_string(),
        (Some(libc::ENOMEM), _) => "the locked-memory limit (RLIMIT_MEMLOCK) is too low".to_string(),
        _ => "the kernel lacks a feature xev needs".to_string(),
    };
    format!("{why} (io_uring probe: {e})")
}

impl IoUring {
    /// Whether io_uring really works here: sets up a small ring and runs a
    /// NOP through it (containers' seccomp profiles often answer `EPERM` or
    /// `ENOSYS`, and `kernel.io_uring_disabled` may forbid it).
    pub fn probe() -> io::Result<()> {
        let mut ring = Ring::new(2)?;
        let nop = opcode::Nop::new().build().user_data(7);
        // SAFETY: a NOP references no memory.
        unsafe { ring.submission().push(&nop) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        ring.submit_and_wait(1)?;
        let ok =
            matches!(ring.completion().next(), Some(c) if c.user_data() == 7 && c.result() >= 0);
        if !ok {
            return Err(io::Error::other("io_uring NOP did not complete"));
        }
        check_sync_cancel(&ring)
    }

    fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        push_to(&mut self.ring, sqe)
    }

    /// Makes room for `n` consecutive entries (so that a linked pair is
    /// submitted in one batch).
    fn reserve(&mut self, n: usize) -> io::Result<()> {
        loop {
            let sq = self.ring.submission();
            if sq.capacity() - sq.len() >= n {
                return Ok(());
            }
            drop(sq);
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::yield_now(),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// A close: first cancel every operation of this ring still pending on
    /// the descriptor (they hold the file open and would otherwise go on
    /// consuming data, as the readiness backends do not), then close it.
    /// The cancel is hard-linked so that the close runs whatever it finds
    /// (none pending is `ENOENT`), and the canceled operations' results
    /// come before the close's.
    fn push_close(&mut self, fd: RawFd, ud: u64) -> io::Result<()> {
        self.reserve(2)?;
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
            .build()
            .flags(squeue::Flags::IO_HARDLINK)
            .user_data(CLOSE_CANCEL);
        let close = opcode::Close::new(types::Fd(fd)).build().user_data(ud);
        self.push(&cancel)?;
        self.in_flight += 1;
        self.push(&close)
    }

    /// Records that the ring now holds `c`'s entry: counts it for its
    /// descriptor if a later direct call must not overtake it, and says so
    /// in its slot for [`IoUring::reap`] (the descriptor plus one, with
    /// [`HOLDS_SEND`] and [`HOLDS_RECV`]).
    ///
    /// # Safety
    /// `c` is a live core lent to this backend, whose entry was just pushed.
    unsafe fn hold(&mut self, c: *mut Core) {
        // SAFETY: per the contract, the core is live and ours until its CQE.
        let held = ordered_fd(unsafe { &(*c).op });
        let tag = match held.and_then(|(fd, kinds)| Some((fd, kinds, self.fd_state(fd)?))) {
            Some((fd, kinds, st)) => {
                if kinds & HOLDS_SEND != 0 {
                    st.send.held += 1;
                }
                if kinds & HOLDS_RECV != 0 {
                    st.recv.held += 1;
                }
                fd as u64 + 1 + kinds
            }
            None => 0,
        };
        // SAFETY: as above; the slot is the backend's while it holds `c`.
        unsafe { (*c).slot.uring_ordered = tag };
    }

    /// A transfer's one direct attempt: its raw result, or `None` when it
    /// must go through the ring (not a socket transfer, an earlier ordered
    /// operation on its descriptor is still in the ring, recent attempts
    /// found it not ready, or this one did).
    fn try_now(&mut self, op: &mut Op) -> Option<i32> {
        let send = match op {
            Op::Send { .. } | Op::Sendmsg(_) => true,
            Op::Recv { .. } | Op::Recvmsg(_) => false,
            _ => return None,
        };
        let st = self.fd_state(op.handle()?)?;
        let dir = if send { &mut st.send } else { &mut st.recv };
        if !dir.should_try() {
            return None;
        }
        // An interrupted call goes through the ring too.
        let r = op.try_raw().filter(|&r| r != -libc::EINTR);
        dir.found(r.is_some());
        r
    }

    /// What the backend keeps about descriptor `fd` (grown to it on first
    /// use), or `None` for one it does not track (above
    /// [`MAX_ORDERED_FD`]).
    fn fd_state(&mut self, fd: RawFd) -> Option<&mut FdState> {
        let fd = usize::try_from(fd).ok().filter(|&fd| fd < MAX_ORDERED_FD)?;
        if self.ordered.len() <= fd {
            self.ordered.resize(fd + 1, FdState::default());
        }
        Some(&mut self.ordered[fd])
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        if !self.wake_armed {
            let sqe = opcode::PollAdd::new(types::Fd(self.wake_fd), libc::POLLIN as u32)
                .multi(true)
                .build()
                .user_data(WAKE);
            self.push(&sqe)?;
            self.wake_armed = true;
        }
        Ok(())
    }

    fn reap(&mut self, sink: &mut dyn FnMut(NonNull<Core>, i32)) -> bool {
        let mut woken = false;
        self.streams.hand_back(sink);
        for cqe in self.ring.completion() {
            match cqe.user_data() {
                ud if uring_streams::is_stream(ud) => {
                    if self.streams.reap(ud, cqe.result(), cqe.flags(), sink) {
                        self.in_flight -= 1;
                    }
                }
                WAKE => {
                    woken = true;
                    if !cqueue::more(cqe.flags()) {
                        self.wake_armed = false;
                    }
                }
                DRAIN | CLOSE_CANCEL => self.in_flight -= 1,
                ud => {
                    let more = cqueue::more(cqe.flags());
                    if !more {
                        self.in_flight -= 1;
                    }
                    // Every other user data is the address of a completion
                    // the loop lent us and keeps alive until its last CQE.
                    if let Some(c) = NonNull::new(ud as usize as *mut Core) {
                        // SAFETY: `start` wrote `uring_ordered` when it
                        // pushed this completion's entry, and nothing else
                        // writes the slot while the ring holds it (but the
                        // lines below).
                        let held = unsafe { c.as_ref().slot.uring_ordered };
                        let mut res = cqe.result();
                        if held & STASHED != 0 {
                            // A zero-copy send's notification: the kernel
                            // let go of the buffer; the send's result came
                            // before.
                            res = held as u32 as i32;
                        } else {
                            let fd = (held & 0xffff_ffff).checked_sub(1);
                            if let Some(st) = fd.and_then(|fd| self.ordered.get_mut(fd as usize)) {
                                if held & HOLDS_SEND != 0 {
                                    st.send.held -= 1;
                                }
                                if held & HOLDS_RECV != 0 {
                                    st.recv.held -= 1;
                                }
                            }
                        }
                        if more {
                            // A zero-copy send's result (its data is in
                            // the socket; later sends may go directly):
                            // kept for its notification, which follows
                            // once the kernel lets go of the buffer.
                            // SAFETY: as above; the slot is ours until
                            // the last CQE.
                            unsafe { (*c.as_ptr()).slot.uring_ordered = STASHED | u64::from(res as u32) };
                            continue;
                        }
                        // SAFETY: as above.
                        let op = unsafe { &(*c.as_ptr()).op };
                        if res == -libc::EOPNOTSUPP
                            && held & PLAIN_SEND == 0
                            && matches!(op, Op::Send { buf, .. } if buf.len() >= self.send_zc_min)
                        {
                            // A socket without zero-copy sends (the
                            // refusal comes with a notification): the send
                            // goes again as a plain one (after the reap).
                            self.plain_sends.push(c);
                            continue;
                        }
                        // SAFETY: the completion is still ours (its CQE is
                        // being handed back right below).
                        if let Op::RecvPool(r) = unsafe { &mut (*c.as_ptr()).op } {
                            r.got = cqueue::buffer_select(cqe.flags());
                            if res == -libc::ENOBUFS {
                                res = crate::buf_pool::NO_BUFFERS;
                            }
                        }
                        sink(c, res);
                    }
                }
            }
        }
        self.resubmit_streams(sink);
        self.resend_plain(sink);
        woken
    }

    /// Pushes again, as plain sends, the zero-copy sends their sockets
    /// refused; one that cannot be pushed is handed back with the error.
    fn resend_plain(&mut self, sink: &mut dyn FnMut(NonNull<Core>, i32)) {
        while let Some(c) = self.plain_sends.pop() {
            let c = c.as_ptr();
            // SAFETY: the core is live and still ours (its last CQE was
            // reaped without handing it back); the entry points into its
            // buffer, which stays in place until the new entry's CQE.
            let pushed = match unsafe { &(*c).op } {
                Op::Send { fd, buf } => self.push(&send_entry(*fd, buf).user_data(user_data(c))),
                _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
            };
            match pushed {
                Ok(()) => {
                    self.in_flight += 1;
                    // SAFETY: `c` is live and its entry was just pushed.
                    unsafe {
                        self.hold(c);
                        (*c).slot.uring_ordered |= PLAIN_SEND;
                    }
                }
                // SAFETY: `c` is non-null (a completion's address).
                Err(e) => sink(unsafe { NonNull::new_unchecked(c) }, -e.raw_os_error().unwrap_or(libc::EIO)),
            }
        }
    }

    /// Pushes a multishot of `fd` for `group`: an accept for listeners,
    /// else a receive on that buffer group.
    fn push_multishot(&mut self, fd: RawFd, group: u16, ud: u64) -> io::Result<()> {
        let sqe = if group == uring_streams::ACCEPTS {
            opcode::AcceptMulti::new(types::Fd(fd))
                .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                .build()
        } else {
            opcode::RecvMulti::new(types::Fd(fd), group).build()
        };
        let sqe = sqe.user_data(ud);
        self.push(&sqe)?;
        self.in_flight += 1;
        Ok(())
    }

    /// Submits the multishots that receives waiting on a stream need
    /// after our own cancel ended its previous one; a receive whose entry
    /// cannot be pushed is handed back with the error.
    fn resubmit_streams(&mut self, sink: &mut dyn FnMut(NonNull<Core>, i32)) {
        while let Some(ud) = self.streams.resubmits.pop() {
            let (fd, bgid) = uring_streams::fd_and_group(ud);
            if let Err(e) = self.push_multishot(fd, bgid, ud) {
                let res = -e.raw_os_error().unwrap_or(libc::EIO);
                self.streams.submit_failed(ud, &mut |c| sink(c, res));
            }
        }
    }

    /// Asks the kernel to cancel every stream no receive waits on any
    /// more (their final results are dropped; data they got first stays
    /// queued for the next pooled receive). `tick`: called by a poll
    /// (which dates idleness), not a flush.
    fn cancel_idle_streams(&mut self, tick: bool) {
        let Self {
            ring,
            in_flight,
            streams,
            ..
        } = self;
        streams.cancel_idle(tick, &mut |ud| push_cancel(ring, in_flight, ud).is_ok());
    }

    /// Pushes a cancel of user data `ud` whose own result nobody waits for
    /// (if it cannot be pushed the ring itself is failing: `drain` then
    /// gives up and the loop leaks what is left).
    fn push_drain_cancel(&mut self, ud: u64) {
        let _ = push_cancel(&mut self.ring, &mut self.in_flight, ud);
    }

    fn enter(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let r = match timeout {
            Some(d) if d.is_zero() => {
                let n = self.ring.submission().len() as u32;
                // SAFETY: no argument is passed; the flags ask only for
                // completions to be flushed.
                unsafe {
                    self.ring
                        .submitter()
                        .enter::<libc::sigset_t>(n, 0, libc_getevents(), None)
                }
            }
            Some(d) => {
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Cancels need the synchronous cancel of Linux 6.0 (so that a cancel's
/// answer is known at once, as on every other backend). A ring with
/// nothing to cancel answers `ENOENT` where the kernel has it.
fn check_sync_cancel(ring: &Ring) -> io::Result<()> {
    match ring
        .submitter()
        .register_sync_cancel(None, types::CancelBuilder::user_data(WAKE))
    {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("io_uring without synchronous cancel (Linux < 6.0) is not supported: {e}"),
        )),
        Ok(()) => Err(io::Error::other(
            "io_uring synchronous cancel found a request on a new ring",
        )),
    }
}

/// `IORING_ENTER_GETEVENTS` (stable kernel ABI).
const fn libc_getevents() -> u32 {
    1
}

/// A buffer length for an entry: at most [`sys::MAX_IO_LEN`], so a larger
/// buffer gets a short count (as on the other backends), not `EINVAL`.
fn len32(len: usize) -> u32 {
    // MAX_IO_LEN < 2^31, so the conversion never saturates.
    u32::try_from(io_len(len)).unwrap_or(u32::MAX)
}

impl Backend for IoUring {
    // A multishot poll posts a CQE for each wakeup of the eventfd (each
    // write), not while it stays readable.
    const WAKE_EDGE: bool = true;

    fn new(opts: &Options) -> io::Result<(IoUring, Waker)> {
        let waker = Waker::new()?;
        let wake_fd = waker.read_fd();
        let entries = opts.entries.clamp(2, 32768);
        let (ring, setup) = new_ring(entries, opts.io_uring_single_issuer)?;
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring without EXT_ARG (Linux < 5.11) is not supported",
            ));
        }
        check_sync_cancel(&ring)?;
        let opcodes = probe_opcodes(&ring);
        let send_zc_min = match opts.io_uring_send_zc_min {
            Some(n) if opcodes & (1 << opcode::SendZc::CODE) != 0 => n,
            _ => usize::MAX,
        };
        let backend = IoUring {
            ring,
            in_flight: 0,
            wake_fd,
            wake_armed: false,
            opcodes,
            send_zc_min,
            plain_sends: Vec::new(),
            setup,
            ordered: Vec::new(),
            streams: Streams::default(),
            stream_cancels: Vec::new(),
            accept_multi: setup != "none",
        };
        Ok((backend, waker))
    }

    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn add_pool(&mut self, pool: &crate::BufPool) -> io::Result<()> {
        let bgid = self.streams.next_bgid().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "a ring holds at most 65,536 buffer pools")
        })?;
        let ring = crate::buf_pool::KernelRing::new(pool.0.count(), bgid)?;
        let (addr, entries) = ring.raw();
        // SAFETY: the ring's memory stays allocated and in place until the
        // ring is closed: the pool owns it (adopted right below) and
        // `self.streams` keeps a clone of the pool until the backend is
        // dropped (leaked if operations are left in the kernel then).
        unsafe { self.ring.submitter().register_buf_ring_with_flags(addr, entries, bgid, 0) }?;
        self.streams.add_pool(pool);
        pool.0.adopt_ring(ring);
        Ok(())
    }

    fn capabilities(&self) -> crate::Capabilities {
        use crate::capabilities::{Via, FS_REQUESTS};
        let mut c = crate::Capabilities::plain("io_uring", Via::ThreadPool);
        c.ring_setup = Some(self.setup);
        c.send_zc = (self.send_zc_min != usize::MAX).then_some(self.send_zc_min);
        // FS_OPCODES and FS_REQUESTS name the same requests in one order.
        for ((_, via), code) in c.fs.iter_mut().zip(FS_OPCODES) {
            if self.opcodes & (1 << code) != 0 {
                *via = Via::Kernel;
            }
        }
        debug_assert_eq!(FS_REQUESTS.len(), FS_OPCODES.len());
        c
    }

    unsafe fn start(&mut self, core: NonNull<Core>) -> Start {
        let c = core.as_ptr();
        // SAFETY: the loop lends us exclusive access to a live core.
        if let Op::Close { fd } = unsafe { &(*c).op } {
            self.streams.close(*fd, &mut |_| {});
            return match self.push_close(*fd, user_data(c)) {
                Ok(()) => {
                    self.in_flight += 1;
                    // SAFETY: `c` is live and its entry was just pushed.
                    unsafe { self.hold(c) };
                    Start::Pending
                }
                Err(e) => Start::Done(-e.raw_os_error().unwrap_or(libc::EIO)),
            };
        }
        // A pooled receive on a kernel ring goes through its stream, an
        // accept through its listener's multishot (where the kernel has
        // multishot accept).
        if let Some((group, fd)) = multishot(c) {
            // SAFETY: the loop lends us exclusive access to a live core.
            let begin = unsafe {
                if group == uring_streams::ACCEPTS {
                    if self.accept_multi {
                        self.streams.start_accept(c)
                    } else {
                        None
                    }
                } else {
                    self.streams.start(c, group)
                }
            };
            match begin {
                Some(Begin::Done(res)) => return Start::Done(res),
                Some(Begin::Wait) => return Start::Pending,
                Some(Begin::Submit(ud)) => {
                    return match self.push_multishot(fd, group, ud) {
                        Ok(()) => Start::Pending,
                        Err(e) => {
                            // Only this operation waited (the multishot
                            // was not live): it ends with the error.
                            self.streams.submit_failed(ud, &mut |_| {});
                            Start::Done(-e.raw_os_error().unwrap_or(libc::EIO))
                        }
                    };
                }
                // No multishot for it: one operation, below.
                None => {}
            }
        }
        // SAFETY: the loop lends us exclusive access to a live core.
        let zero_copy = matches!(unsafe { &(*c).op }, Op::Send { buf, .. } if buf.len() >= self.send_zc_min);
        // SAFETY: as above.
        let tried = unsafe { (*c).flags } & crate::record::FLAG_TRIED != 0;
        // A zero-copy send goes to the kernel as it is (a direct attempt
        // would copy).
        if !tried && !zero_copy {
            // SAFETY: as above.
            if let Some(res) = self.try_now(unsafe { &mut (*c).op }) {
                return Start::Done(res);
            }
        }
        // SAFETY: the loop lends us exclusive access to a live core that
        // stays in place until its CQE is reaped; the entries point into it.
        let sqe = unsafe {
            let ud = user_data(c);
            let e = match &mut (*c).op {
                Op::Accept { fd } => {
                    opcode::Accept::new(types::Fd(*fd), std::ptr::null_mut(), std::ptr::null_mut())
                        .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                        .build()
                }
                Op::Connect { fd, addr } => {
                    opcode::Connect::new(types::Fd(*fd), addr.as_ptr().cast(), addr.len()).build()
                }
                Op::Read { fd, buf } => {
                    opcode::Read::new(types::Fd(*fd), buf.as_mut_ptr(), len32(buf.len()))
                        .offset(u64::MAX)
                        .build()
                }
                Op::Write { fd, buf } => {
                    opcode::Write::new(types::Fd(*fd), buf.as_ptr(), len32(buf.len()))
                        .offset(u64::MAX)
                        .build()
                }
                Op::Pread { fd, buf, offset } => {
                    if *offset > i64::MAX as u64 {
                        return Start::Done(-libc::EINVAL);
                    }
                    opcode::Read::new(types::Fd(*fd), buf.as_mut_ptr(), len32(buf.len()))
                        .offset(*offset)
                        .build()
                }
                Op::Pwrite { fd, buf, offset } => {
                    if *offset > i64::MAX as u64 {
                        return Start::Done(-libc::EINVAL);
                    }
                    opcode::Write::new(types::Fd(*fd), buf.as_ptr(), len32(buf.len()))
                        .offset(*offset)
                        .build()
                }
                Op::Recv { fd, buf } => {
                    opcode::Recv::new(types::Fd(*fd), buf.as_mut_ptr(), len32(buf.len())).build()
                }
                Op::RecvPool(r) => match r.pool.0.kernel_ring() {
                    // The kernel picks the buffer when the data is there.
                    Some(k) => opcode::Recv::new(types::Fd(r.fd), std::ptr::null_mut(), len32(r.pool.0.size()))
                        .buf_group(k.bgid)
                        .build()
                        .flags(squeue::Flags::BUFFER_SELECT),
                    // Every pool of this loop is registered (`add_pool`).
                    None => return Start::Done(-libc::EINVAL),
                },
                Op::Send { fd, buf } if zero_copy => {
                    opcode::SendZc::new(types::Fd(*fd), buf.as_ptr(), len32(buf.len()))
                        .flags(libc::MSG_NOSIGNAL)
                        .build()
                }
                Op::Send { fd, buf } => send_entry(*fd, buf),
                Op::Recvmsg(m) => {
                    let hdr = m.prepare(true);
                    opcode::RecvMsg::new(types::Fd(m.fd), hdr).build()
                }
                Op::Sendmsg(m) => {
                    let hdr = m.prepare(false);
                    opcode::SendMsg::new(types::Fd(m.fd), hdr)
                        .flags(libc::MSG_NOSIGNAL as u32)
                        .build()
                }
                Op::Poll { fd, interest } => {
                    opcode::PollAdd::new(types::Fd(*fd), interest.poll_mask()).build()
                }
                Op::Shutdown { fd, how } => opcode::Shutdown::new(
                    types::Fd(*fd),
                    match how {
                        std::net::Shutdown::Read => libc::SHUT_RD,
                        std::net::Shutdown::Write => libc::SHUT_WR,
                        std::net::Shutdown::Both => libc::SHUT_RDWR,
                    },
                )
                .build(),
                // Handled above (linked behind a cancel-by-descriptor).
                Op::Close { .. } => return Start::Done(-libc::EINVAL),
                Op::ProcWait { fd, .. } => {
                    opcode::PollAdd::new(types::Fd(*fd), libc::POLLIN as u32).build()
                }
                Op::Fs(f) => match fs_entry(f, self.opcodes) {
                    Ok(Some(e)) => e,
                    Ok(None) => return Start::Pool,
                    Err(res) => return Start::Done(res),
                },
                // The loop handles async waits and pool work itself.
                Op::AsyncWait(_) | Op::Resolve(_) => return Start::Done(-libc::EINVAL),
                Op::Noop | Op::Timer { .. } | Op::Cancel { .. } => {
                    return Start::Done(-libc::EINVAL)
                }
            };
            e.user_data(ud)
        };
        match self.push(&sqe) {
            Ok(()) => {
                self.in_flight += 1;
                // SAFETY: `c` is live and its entry was just pushed.
                unsafe { self.hold(c) };
                Start::Pending
            }
            Err(e) => Start::Done(-e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }

    unsafe fn cancel(&mut self, target: NonNull<Core>) -> CancelStart {
        // An operation waiting on a multishot has no entry of its own: it
        // is let go at once, and the multishot canceled at a later poll
        // unless another operation waits by then.
        if let Some((group, fd)) = multishot(target.as_ptr()) {
            if self.streams.let_go(target.as_ptr(), group, fd) {
                return CancelStart {
                    cancel: 0,
                    target: Some(-libc::ECANCELED),
                };
            }
        }
        // A synchronous cancel (Linux 6.0+) gives the kernel's answer now,
        // as the readiness backends do; the target's CQE follows through
        // `poll`. It sees only submitted requests: submit queued ones first.
        let submitted = if self.ring.submission().is_empty() {
            Ok(0)
        } else {
            self.ring.submit()
        };
        let ud = user_data(target.as_ptr());
        let res = submitted.and_then(|_| {
            self.ring
                .submitter()
                .register_sync_cancel(None, types::CancelBuilder::user_data(ud))
        });
        CancelStart {
            cancel: match res {
                Ok(()) => 0,
                Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
            },
            target: None,
        }
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut dyn FnMut(NonNull<Core>, i32),
    ) -> io::Result<bool> {
        self.arm_wake()?;
        self.cancel_idle_streams(true);
        // Completions already posted need no syscall to wait for.
        let timeout = if self.ring.completion().is_empty() && !self.streams.has_handback() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        self.enter(timeout)?;
        let mut woken = self.reap(sink);
        // DEFER_TASKRUN runs at most 20 task-work items per enter (Linux
        // 6.13+) and sets the TASKRUN flag when it leaves some: finished
        // operations whose completions are not posted yet. Post and reap
        // them now, so that a run delivers everything that has finished
        // (as on every backend). Each round runs 20 more; the bound only
        // guards against a kernel that kept the flag set.
        let mut rounds = 0;
        while self.ring.submission().taskrun() && rounds < 1024 {
            self.enter(Some(Duration::ZERO))?;
            woken |= self.reap(sink);
            rounds += 1;
        }
        Ok(woken)
    }

    fn has_pending(&mut self) -> bool {
        // With DEFER_TASKRUN an operation the kernel has finished may not
        // be posted yet: its task work waits for our next enter, and the
        // TASKRUN flag says so. Entries not yet submitted do not count:
        // while callbacks are ready they wait for the next tick's enter,
        // which then submits them together with what those callbacks
        // start, and waits (one enter instead of two when a transfer
        // tried at once finished at its start).
        !self.ring.completion().is_empty()
            || self.ring.submission().taskrun()
            || self.streams.has_handback()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.cancel_idle_streams(false);
        // A few rounds: an interrupted submit is retried; a kernel that
        // takes fewer entries than offered gets the rest next round.
        for _ in 0..4 {
            if self.ring.submission().is_empty() {
                break;
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // Completion queue overflow: the entries stay queued and
                // the next run's poll submits them after reaping.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn forget(&mut self, fd: crate::RawHandle) {
        // A stream on `fd` must stop taking its data now: the owner reads
        // it from here on. Its late results are dropped.
        let mut uds = std::mem::take(&mut self.stream_cancels);
        self.streams.close(fd, &mut |ud| uds.push(ud));
        if !uds.is_empty() && !self.ring.submission().is_empty() {
            let _ = self.ring.submit();
        }
        for ud in uds.drain(..) {
            let _ = self
                .ring
                .submitter()
                .register_sync_cancel(None, types::CancelBuilder::user_data(ud));
        }
        self.stream_cancels = uds;
    }

    unsafe fn abandon(&mut self, target: NonNull<Core>) {
        let c = target.as_ptr();
        // An operation waiting on a multishot has no entry of its own;
        // the multishot is canceled in `drain`.
        if let Some((group, fd)) = multishot(c) {
            if self.streams.let_go(c, group, fd) {
                return;
            }
        }
        self.push_drain_cancel(user_data(c));
    }

    fn drain(&mut self, sink: &mut dyn FnMut(NonNull<Core>, i32)) {
        let mut uds = Vec::new();
        self.streams.cancel_all(&mut |ud| uds.push(ud));
        for ud in uds {
            self.push_drain_cancel(ud);
        }
        while self.in_flight > 0 {
            if self.enter(None).is_err() {
                // The ring itself failed; nothing more can be reaped. Give
                // up waiting rather than spin: the loop sees in_flight > 0
                // and leaks the completions instead of freeing memory the
                // kernel might still write.
                break;
            }
            self.reap(sink);
        }
    }
}
