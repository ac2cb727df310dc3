//! Readiness-to-completion machinery shared by the readiness backends
//! (epoll, kqueue and WASI poll, their kernel-facing `Poller`s in `sys`).
//!
//! A readiness backend cannot hand an operation to the kernel; it performs
//! the non-blocking syscall itself when the descriptor is ready. This module
//! does everything that is the same for every readiness API:
//!
//! - **Optimistic start**: each operation first tries its syscall at once;
//!   only an `EAGAIN` makes it wait. Together with edge-triggered
//!   registration this is also what keeps edges from being lost: any data
//!   that arrived while nobody waited is found by the next attempt.
//! - **Blocking descriptors never block the loop**: socket calls pass
//!   `MSG_DONTWAIT`; a read, write or accept checks the descriptor's mode
//!   when it starts, and on a blocking descriptor is made only once a
//!   zero-timeout `poll` finds it ready (a read or write on a blocking
//!   socket becomes `recv`/`send` with `MSG_DONTWAIT` instead); a connect
//!   of a blocking socket switches it to non-blocking for the call. The
//!   rule as users see it is on [`Op`](crate::Op#blocking-descriptors).
//! - **Per-descriptor waiter lists**: any number of completions may wait on
//!   one descriptor (a read and a write on one socket, say). On an event the
//!   waiters whose direction is ready retry in order until one sees `EAGAIN`.
//! - **Registration once per descriptor**, edge-triggered for both
//!   directions, kept until the descriptor is closed through the loop. A
//!   descriptor that had no waiter for a while is re-checked (one `MOD`)
//!   when an operation next has to wait on it, because it may have been
//!   closed behind the loop's back and its number reused; descriptors that
//!   always have a waiter cost no registration syscalls at all.
//!
//! The part that speaks to the kernel is the small [`Poller`] trait.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::time::Duration;

use super::contract::{Backend, CancelStart, Start, Waker};
use crate::op::{Plan, Interest, Op};
use crate::options::Options;
use crate::queue::Queue;
use crate::record::Core;
use crate::sys;
pub use crate::sys::unix::poller::{Event, Poller};

#[derive(Default)]
struct FdEntry {
    registered: bool,
    /// A read or write found it is not a socket: later ones skip the
    /// socket call ([`TRY_SOCKET`]). Only a hint, right either way (a
    /// socket that reuses the number is still read correctly, with its
    /// mode checked); forgotten when the loop closes the descriptor.
    not_socket: bool,
    /// The last stream read on it came back short (or found nothing) and
    /// no readable event came since: it is probably drained. Only a hint
    /// (see [`Readiness::skip_attempt`]).
    drained: bool,
    /// The poller reported a hangup or an error: reads no longer wait (an
    /// end of file persists and makes no new event), so none counts as
    /// drained.
    hup: bool,
    /// What the poller watches (for a poller that watches only the
    /// waiters' interest: [`Poller::REGISTERS_INTEREST`]).
    watched: u8,
    waiters: Queue,
}

impl FdEntry {
    /// Records what a stream read of `len` bytes on the descriptor gave
    /// (`res`, a raw result): it is drained if it found nothing or came
    /// back short, unless the poller reported a hangup (see `hup`).
    fn read_gave(&mut self, res: i32, len: usize) {
        self.drained = !self.hup && (res == -libc::EAGAIN || (res >= 0 && (res as usize) < len));
    }
}

/// For a stream read (`Read`, or `Recv`, into a non-empty buffer): the
/// buffer's length.
fn stream_read_len(op: &Op) -> Option<usize> {
    match op {
        Op::Read { buf, .. } | Op::Recv { buf, .. } if !buf.is_empty() => Some(buf.len()),
        Op::RecvPool(r) => Some(r.pool.0.size()),
        _ => None,
    }
}

/// A readiness backend: the shared machinery over a [`Poller`].
pub struct Readiness<P: Poller> {
    poller: P,
    fds: Vec<FdEntry>,
    /// Completions finished outside `poll`, reported by the next `poll` in
    /// this order: the waiters of a closed descriptor (`-ECANCELED`), then
    /// the close itself, so that a close completes after the operations it
    /// canceled (as on io_uring).
    ready: Queue,
    /// Process waits registered natively (`Poller::NATIVE_PROC`).
    procs: Queue,
    in_flight: usize,
}

/// `slot.readiness` value of a connect that is in progress.
const CONNECTING: u64 = 1;
/// `slot.readiness` value of a read or write on a blocking socket (set by `start`,
/// see [`sys::FdMode::Socket`]).
const BLOCKING_SOCKET: u64 = 2;
/// `slot.readiness` value of a read or write on another blocking descriptor, or an
/// accept on a blocking socket: its syscall is made only once the
/// descriptor polls ready (see [`sys::FdMode::Gated`]). Every other
/// operation leaves it at 0: its syscall never blocks.
const GATED: u64 = 3;

/// `slot.readiness` value of a read (into a non-empty buffer) or a write not yet
/// classified: it is first tried as a `recv`/`send` with `MSG_DONTWAIT`,
/// which never blocks and costs nothing extra on a socket; a descriptor
/// that is not a socket answers `ENOTSOCK` at once, and only then is its
/// mode checked ([`checked_mode`]).
const TRY_SOCKET: u64 = 4;

/// The `slot.readiness` value of `op` when it starts: reads and writes are first
/// tried as socket calls ([`TRY_SOCKET`]); an empty read (a `recv` of
/// nothing would swallow a datagram) and an accept have their
/// descriptor's mode checked now; every other operation's syscall never
/// blocks (per-call `MSG_DONTWAIT`, `poll` with a zero timeout, `shutdown`;
/// connect handles a blocking socket itself).
fn blocking_mode(op: &Op) -> u64 {
    match op {
        Op::Read { buf, .. } if !buf.is_empty() => TRY_SOCKET,
        Op::Write { .. } => TRY_SOCKET,
        // Every other operation: `checked_mode` lists them all.
        other => checked_mode(other),
    }
}

/// The `slot.readiness` value of `op` on its descriptor as it is now: read,
/// write and accept check the descriptor's mode (one `fcntl`, plus an
/// `fstat` when it is blocking); every other operation gets 0.
fn checked_mode(op: &Op) -> u64 {
    let (fd, write) = match op {
        Op::Read { fd, .. } => (*fd, false),
        Op::Write { fd, .. } => (*fd, true),
        Op::Accept { fd } => {
            // Accept has no per-call non-blocking flag: on a blocking
            // socket it waits for readiness. On anything else it fails at
            // once (ENOTSOCK).
            return match sys::fd_mode(*fd, false) {
                sys::FdMode::Socket => GATED,
                sys::FdMode::Direct | sys::FdMode::Gated => 0,
            };
        }
        // Their syscalls never block whatever the mode (per-call flags,
        // a zero-timeout poll, shutdown), or they never reach a syscall
        // here.
        Op::Connect { .. }
        | Op::Recv { .. }
        | Op::RecvPool(_)
        | Op::Send { .. }
        | Op::Recvmsg(_)
        | Op::Sendmsg(_)
        | Op::Poll { .. }
        | Op::Shutdown { .. }
        | Op::ProcWait { .. }
        | Op::Pread { .. }
        | Op::Pwrite { .. }
        | Op::Close { .. }
        | Op::Resolve(_)
        | Op::Fs(_)
        | Op::Noop
        | Op::Timer { .. }
        | Op::Cancel { .. }
        | Op::AsyncWait(_) => return 0,
    };
    match sys::fd_mode(fd, write) {
        sys::FdMode::Direct => 0,
        sys::FdMode::Socket => BLOCKING_SOCKET,
        sys::FdMode::Gated => GATED,
    }
}

/// The descriptor and direction an operation waits on (from the table in
/// [`Op::plan`]).
fn wait_target(op: &Op) -> Option<(RawFd, Interest)> {
    match op.plan() {
        Plan::Ready { fd, interest } => Some((fd, interest)),
        Plan::Once
        | Plan::File
        | Plan::Pool
        | Plan::Close { .. }
        | Plan::Noop
        | Plan::Timer
        | Plan::Cancel(_)
        | Plan::AsyncWait(_) => None,
    }
}

/// `poll(2)` bits for an event, limited to what `interest` asked for
/// (hang-ups and errors are always reported).
fn event_mask(ev: &Event, interest: Interest) -> i32 {
    let mut m = 0i32;
    if ev.readable && interest.is_readable() {
        m |= libc::POLLIN as i32;
    }
    if ev.writable && interest.is_writable() {
        m |= libc::POLLOUT as i32;
    }
    if ev.hangup {
        m |= libc::POLLHUP as i32;
    }
    if ev.error {
        m |= libc::POLLERR as i32;
    }
    m
}

/// Whether child `pid` exited: 0 when it has, `-EAGAIN` while it runs.
fn proc_state(pid: i32) -> i32 {
    sys::proc_exited(pid).unwrap_or(-libc::EAGAIN)
}

/// Checks current readiness with `poll(2)` without blocking.
fn poll_now(fd: RawFd, interest: Interest) -> i32 {
    let mut pfd = libc::pollfd {
        fd,
        events: interest.poll_mask() as i16,
        revents: 0,
    };
    // SAFETY: `pfd` is a live array of one pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    if r < 0 {
        crate::sys::neg_errno()
    } else if pfd.revents & libc::POLLNVAL != 0 {
        -libc::EBADF
    } else if r == 0 {
        -libc::EAGAIN
    } else {
        i32::from(pfd.revents)
    }
}

/// Removes `target` from `q` if it is there.
///
/// # Safety
/// `q` holds live cores.
unsafe fn unlink_from(q: &mut Queue, target: *mut Core) -> bool {
    let mut c = q.front();
    while !c.is_null() {
        if c == target {
            // SAFETY: `c` is in `q`.
            unsafe { q.remove(c) };
            return true;
        }
        // SAFETY: queue members are live.
        c = unsafe { (*c).next };
    }
    false
}

impl<P: Poller> Readiness<P> {
    /// One attempt at `core`'s operation, given what the poller saw (`None`
    /// on the optimistic first try).
    ///
    /// # Safety
    /// `core` is live and held by this backend (or being started).
    unsafe fn attempt(core: *mut Core, ev: Option<&Event>) -> i32 {
        // SAFETY: exclusive access per the contract.
        unsafe {
            match &(*core).op {
                Op::Poll { fd, interest } => match ev {
                    Some(ev) => match event_mask(ev, *interest) {
                        0 => -libc::EAGAIN,
                        m => m,
                    },
                    None => poll_now(*fd, *interest),
                },
                Op::ProcWait { pid, fd } => {
                    if P::NATIVE_PROC {
                        proc_state(*pid)
                    } else {
                        match poll_now(*fd, Interest::READABLE) {
                            r if r >= 0 => 0,
                            r => r,
                        }
                    }
                }
                Op::Connect { fd, addr } => {
                    if (*core).slot.readiness == CONNECTING {
                        if let Some(ev) = ev {
                            match sys::socket_error(*fd) {
                                0 if ev.errno != 0 => -ev.errno,
                                r => r,
                            }
                        } else {
                            -libc::EAGAIN
                        }
                    } else {
                        match sys::connect_start(*fd, addr) {
                            r if r == -libc::EINPROGRESS => {
                                (*core).slot.readiness = CONNECTING;
                                -libc::EAGAIN
                            }
                            r => r,
                        }
                    }
                }
                // Never attempted here: the loop, the pool or `start` does
                // them.
                Op::Noop
                | Op::Timer { .. }
                | Op::Cancel { .. }
                | Op::AsyncWait(_)
                | Op::Pread { .. }
                | Op::Pwrite { .. }
                | Op::Resolve(_)
                | Op::Fs(_)
                | Op::Close { .. } => -libc::EINVAL,
                Op::Read { .. }
                | Op::Write { .. }
                | Op::Recv { .. }
                | Op::RecvPool(_)
                | Op::Send { .. }
                | Op::Recvmsg(_)
                | Op::Sendmsg(_)
                | Op::Accept { .. }
                | Op::Shutdown { .. } => {
                    let mut tried = None;
                    if (*core).slot.readiness == TRY_SOCKET {
                        match sys::perform_as(core, sys::FdMode::Socket) {
                            // Not a socket: check what it is, then go on.
                            r if r == -libc::ENOTSOCK => {
                                (*core).slot.readiness = checked_mode(&(*core).op);
                            }
                            // A socket (or a bad descriptor): done, or
                            // waiting; it stays a socket call.
                            r => tried = Some(r),
                        }
                    }
                    let r = match tried {
                        Some(r) => r,
                        None => Self::perform_checked(core),
                    };
                    // A pending socket error the poller reported (kqueue's
                    // EV_EOF fflags) wins over the end of file that a read
                    // then sees.
                    match ev {
                        Some(ev) if r == 0 && ev.errno != 0 && (*core).op.is_read() => -ev.errno,
                        _ => r,
                    }
                }
            }
        }
    }

    /// Performs the operation of `core` as its checked `slot.readiness` mode says.
    ///
    /// # Safety
    /// As for [`sys::perform`]: `core` is live and held by this backend.
    unsafe fn perform_checked(core: *mut Core) -> i32 {
        // SAFETY: per the contract; the op is read, not borrowed across the
        // syscall.
        unsafe {
            let mode = match (*core).slot.readiness {
                BLOCKING_SOCKET => sys::FdMode::Socket,
                GATED => {
                    // A blocking descriptor: the syscall only if it is ready
                    // now (even after an event: another waiter may have
                    // taken what the event was for).
                    if let Some((fd, interest)) = wait_target(&(*core).op) {
                        let ready = poll_now(fd, interest);
                        if ready < 0 {
                            return ready;
                        }
                    }
                    sys::FdMode::Gated
                }
                _ => sys::FdMode::Direct,
            };
            sys::perform_as(core, mode)
        }
    }

    /// Tells a level-triggered poller what each registered descriptor's
    /// waiters wait for now (see `Poller::LEVEL_TRIGGERED`).
    fn tell_interest(&mut self) {
        for (fd, e) in self.fds.iter().enumerate() {
            if !e.registered {
                continue;
            }
            let (mut readable, mut writable) = (false, false);
            let mut c = e.waiters.front();
            while !c.is_null() {
                // SAFETY: waiters are live cores held by this backend.
                unsafe {
                    if let Some((_, interest)) = wait_target(&(*c).op) {
                        readable |= interest.is_readable();
                        writable |= interest.is_writable();
                    }
                    c = (*c).next;
                }
            }
            self.poller.interest(fd as RawFd, readable, writable);
        }
    }

    /// Whether a starting op can skip its optimistic attempt and go
    /// straight to waiting: a stream read of a descriptor whose last read
    /// came back short, with no readable event since, and no other waiter
    /// (so the wait re-registers it, and a poller whose registration
    /// reports present readiness finds any data that came since: skipping
    /// costs at most one more wait, never a lost wakeup). Saves the
    /// `EAGAIN` read of a request-reply exchange.
    fn skip_attempt(&self, c: *const Core, target: Option<(RawFd, Interest)>) -> bool {
        if !P::REGISTER_REPORTS_READY {
            return false;
        }
        // SAFETY: the caller holds `c`, a live core being started.
        let (is_stream_read, mode) = unsafe { (stream_read_len(&(*c).op).is_some(), (*c).slot.readiness) };
        is_stream_read
            && (mode == TRY_SOCKET || mode == 0)
            && target
                .and_then(|(fd, _)| usize::try_from(fd).ok())
                .and_then(|i| self.fds.get(i))
                .is_some_and(|e| e.registered && e.drained && e.waiters.is_empty())
    }

    fn entry(&mut self, fd: RawFd) -> Option<&mut FdEntry> {
        let i = usize::try_from(fd).ok()?;
        if i >= self.fds.len() {
            self.fds.resize_with(i + 1, FdEntry::default);
        }
        Some(&mut self.fds[i])
    }

    /// Finishes every waiter of `fd` with `-ECANCELED` (queued on `ready`)
    /// and forgets the descriptor (it is about to be closed). Returns
    /// whether it had waiters.
    fn forget_fd(&mut self, fd: RawFd) -> bool {
        let Some(i) = usize::try_from(fd).ok().filter(|&i| i < self.fds.len()) else {
            return false;
        };
        let entry = &mut self.fds[i];
        entry.not_socket = false;
        entry.drained = false;
        entry.hup = false;
        let had_waiters = !entry.waiters.is_empty();
        loop {
            let c = entry.waiters.pop_front();
            if c.is_null() {
                break;
            }
            // SAFETY: waiters are live cores held by this backend.
            unsafe {
                (*c).res = -libc::ECANCELED;
                self.ready.push_back(c);
            }
        }
        if entry.registered {
            entry.registered = false;
            self.poller.deregister(fd);
        }
        had_waiters
    }

    /// Removes `target` from `ready` (finished, result not yet reported).
    /// Returns whether it was there.
    ///
    /// # Safety
    /// `target` is live.
    unsafe fn unlink_ready(&mut self, target: *mut Core) -> bool {
        // SAFETY: `ready` holds live cores.
        let found = !self.ready.is_empty() && unsafe { unlink_from(&mut self.ready, target) };
        if found {
            self.in_flight -= 1;
        }
        found
    }

    /// Removes `target` from the list that holds it (a waiter list, the
    /// process waits, or `ready`). Returns whether it was there.
    ///
    /// # Safety
    /// `target` is live.
    unsafe fn unlink(&mut self, target: *mut Core) -> bool {
        // SAFETY: forwarded from the caller.
        if unsafe { self.unlink_ready(target) } {
            return true;
        }
        // SAFETY: `target` is live (caller).
        if P::NATIVE_PROC && matches!(unsafe { &(*target).op }, Op::ProcWait { .. }) {
            // SAFETY: `procs` holds live cores.
            return unsafe { unlink_from(&mut self.procs, target) } && {
                self.in_flight -= 1;
                true
            };
        }
        // SAFETY: `target` is live (caller).
        let Some((fd, _)) = wait_target(unsafe { &(*target).op }) else {
            return false;
        };
        let Some(entry) = usize::try_from(fd).ok().and_then(|i| self.fds.get_mut(i)) else {
            return false;
        };
        let mut c = entry.waiters.front();
        while !c.is_null() {
            if c == target {
                // SAFETY: `c` is in this list.
                unsafe { entry.waiters.remove(c) };
                self.in_flight -= 1;
                return true;
            }
            // SAFETY: list members are live.
            c = unsafe { (*c).next };
        }
        false
    }
}

impl<P: Poller> Backend for Readiness<P> {
    const WAKE_EDGE: bool = P::WAKE_EDGE;

    fn new(_opts: &Options) -> io::Result<(Self, Waker)> {
        let waker = Waker::new()?;
        let backend = Readiness {
            poller: P::new(waker.read_fd())?,
            fds: Vec::new(),
            ready: Queue::new(),
            procs: Queue::new(),
            in_flight: 0,
        };
        Ok((backend, waker))
    }

    fn name(&self) -> &'static str {
        P::NAME
    }

    unsafe fn start(&mut self, core: NonNull<Core>) -> Start {
        let c = core.as_ptr();
        // SAFETY: the loop lends us exclusive access to a live core.
        unsafe {
            // What it waits on, if it ever does (the op's descriptor and
            // direction do not change while it is started).
            let target = wait_target(&(*c).op);
            let hint = target
                .and_then(|(fd, _)| usize::try_from(fd).ok())
                .and_then(|i| self.fds.get(i))
                .is_some_and(|e| e.not_socket);
            (*c).slot.readiness = if hint {
                checked_mode(&(*c).op)
            } else {
                blocking_mode(&(*c).op)
            };
            let tried_socket = (*c).slot.readiness == TRY_SOCKET;
            // Its owner vouched that the descriptor stayed open since
            // its last start ([`Loop::vouch`](crate::Loop::vouch)).
            let vouched = (*c).flags & crate::record::FLAG_VOUCHED != 0;
            match (*c).op.plan() {
                Plan::File => return Start::Pool,
                Plan::Close { fd } => {
                    let canceled_some = self.forget_fd(fd);
                    let res = sys::perform(c);
                    if !canceled_some {
                        return Start::Done(res);
                    }
                    // The close completes after the waiters it canceled:
                    // queued behind them on `ready`.
                    (*c).res = res;
                    self.ready.push_back(c);
                    self.in_flight += 1;
                    return Start::Pending;
                }
                Plan::Ready { .. } | Plan::Once => {}
                // The loop handles these itself.
                Plan::Noop | Plan::Timer | Plan::Cancel(_) | Plan::AsyncWait(_) | Plan::Pool => {
                    return Start::Done(-libc::EINVAL)
                }
            }
            let res = if self.skip_attempt(c, target) {
                -libc::EAGAIN
            } else {
                Self::attempt(c, None)
            };
            if let (Some(len), Some((fd, _))) = (stream_read_len(&(*c).op), target) {
                if let Some(e) = self.entry(fd) {
                    e.read_gave(res, len);
                }
            }
            if tried_socket && (*c).slot.readiness != TRY_SOCKET {
                if let Some(e) = target.and_then(|(fd, _)| self.entry(fd)) {
                    e.not_socket = true;
                }
            }
            if res != -libc::EAGAIN {
                return Start::Done(res);
            }
            if let (true, Op::ProcWait { pid, .. }) = (P::NATIVE_PROC, &(*c).op) {
                if let Err(e) = self.poller.register_proc(*pid) {
                    return Start::Done(-e.raw_os_error().unwrap_or(libc::EIO));
                }
                self.procs.push_back(c);
                self.in_flight += 1;
                return Start::Pending;
            }
            let Some((fd, _)) = target else {
                return Start::Done(res);
            };
            let Some(entry) = self.entry(fd) else {
                return Start::Done(-libc::EBADF);
            };
            // A descriptor with waiters is surely still registered. One
            // without may have been closed behind the loop's back and its
            // number reused since its last wait: re-check it (one MOD),
            // unless its owner vouched that it was not. A poller that
            // watches only the waiters' interest registers again when
            // this waiter wants more.
            let want = target.map_or(0, |(_, i)| i.0);
            let widen = P::REGISTERS_INTEREST && entry.watched & want != want;
            let unsure = entry.waiters.is_empty() && !vouched;
            if !entry.registered || unsure || widen {
                let believed = entry.registered;
                let watched = if entry.waiters.is_empty() {
                    want
                } else {
                    entry.watched | want
                };
                if let Err(e) = self.poller.register(fd, believed, Interest(watched)) {
                    self.fds[fd as usize].registered = false;
                    return Start::Done(-e.raw_os_error().unwrap_or(libc::EIO));
                }
                self.fds[fd as usize].registered = true;
                self.fds[fd as usize].watched = watched;
            }
            self.fds[fd as usize].waiters.push_back(c);
            self.in_flight += 1;
            Start::Pending
        }
    }

    unsafe fn cancel(&mut self, target: NonNull<Core>) -> CancelStart {
        // SAFETY: `target` is held by this backend (trait contract).
        if unsafe { self.unlink(target.as_ptr()) } {
            CancelStart {
                cancel: 0,
                target: Some(-libc::ECANCELED),
            }
        } else {
            // It already finished (its result waits in `ready`, behind
            // what it must follow: a close behind the operations it
            // canceled): too late, and it stays where it is, so the order
            // of results holds; the loop delivers the cancel after it.
            CancelStart {
                cancel: -libc::ENOENT,
                target: None,
            }
        }
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut dyn FnMut(NonNull<Core>, i32),
    ) -> io::Result<bool> {
        let timeout = if self.ready.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        if P::LEVEL_TRIGGERED {
            self.tell_interest();
        }
        loop {
            let c = self.ready.pop_front();
            if c.is_null() {
                break;
            }
            self.in_flight -= 1;
            // SAFETY: `ready` holds live cores that we now hand back.
            unsafe { sink(NonNull::new_unchecked(c), (*c).res) };
        }
        let Readiness {
            poller,
            fds,
            procs,
            in_flight,
            ..
        } = self;
        poller.wait(timeout, &mut |ev| {
            if ev.proc_exit {
                // Every wait on this pid finishes: exited, or the error
                // that made the registration fail (rechecked: a child that
                // exited just before the registration is a success).
                let mut c = procs.front();
                while !c.is_null() {
                    // SAFETY: `procs` holds live cores held by this backend;
                    // `next` is read before `c` may leave the list.
                    unsafe {
                        let next = (*c).next;
                        if matches!((*c).op, Op::ProcWait { pid, .. } if pid == ev.fd) {
                            let res = match (ev.error, sys::proc_exited(ev.fd)) {
                                (_, Some(r)) => r,
                                (true, None) => -ev.errno,
                                // NOTE_EXIT fired: the child is a zombie.
                                (false, None) => 0,
                            };
                            if res != -libc::EAGAIN {
                                procs.remove(c);
                                *in_flight -= 1;
                                sink(NonNull::new_unchecked(c), res);
                            }
                        }
                        c = next;
                    }
                }
                return;
            }
            let Some(entry) = usize::try_from(ev.fd).ok().and_then(|i| fds.get_mut(i)) else {
                return;
            };
            if ev.readable || ev.hangup || ev.error {
                entry.drained = false;
            }
            entry.hup |= ev.hangup || ev.error;
            let (mut read_blocked, mut write_blocked) = (false, false);
            let mut c = entry.waiters.front();
            while !c.is_null() {
                // SAFETY: waiters are live cores held by this backend; `next`
                // is read before `c` may leave the list.
                unsafe {
                    let next = (*c).next;
                    if let Some((_, interest)) = wait_target(&(*c).op) {
                        let failed = ev.hangup || ev.error;
                        let try_read =
                            interest.is_readable() && (ev.readable || failed) && !read_blocked;
                        let try_write =
                            interest.is_writable() && (ev.writable || failed) && !write_blocked;
                        if try_read || try_write {
                            let res = Self::attempt(c, Some(&ev));
                            if let Some(len) = stream_read_len(&(*c).op) {
                                entry.read_gave(res, len);
                            }
                            if res == -libc::EAGAIN {
                                let is_poll = matches!((*c).op, Op::Poll { .. });
                                if !is_poll {
                                    read_blocked |= try_read;
                                    write_blocked |= try_write;
                                }
                            } else {
                                entry.waiters.remove(c);
                                *in_flight -= 1;
                                sink(NonNull::new_unchecked(c), res);
                            }
                        }
                    }
                    c = next;
                }
            }
        })
    }

    fn has_pending(&mut self) -> bool {
        !self.ready.is_empty()
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    unsafe fn abandon(&mut self, target: NonNull<Core>) {
        // SAFETY: forwarded from the caller.
        unsafe { self.unlink(target.as_ptr()) };
    }

    fn forget(&mut self, fd: crate::RawHandle) {
        // No waiters (the contract): this deregisters and clears the cache.
        self.forget_fd(fd);
    }

    fn drain(&mut self, _sink: &mut dyn FnMut(NonNull<Core>, i32)) {
        // Nothing is in the kernel's hands: `abandon` unlinked everything.
    }
}
