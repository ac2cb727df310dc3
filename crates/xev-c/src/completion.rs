//! `xev_completion`: the caller's handle on one operation, and the
//! machinery every operation shares: `start` records the C callback in
//! the caller's storage and adds a loop-owned completion whose Rust
//! callback (`finish`) finds the storage again, turns the typed result
//! into an `int`, and calls the C callback. Also `xev_completion_zero`,
//! `xev_completion_state`, `xev_completion_peer` and `xev_cancel`.
//!
//! The storage's *token* ties it to one operation: each start writes a new
//! one, and a loop callback whose token is no longer in the storage (the
//! storage was reused for another operation while this one was active,
//! which the contract forbids, or from inside the callback, which it
//! allows) finishes its operation without calling into C.

use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::ptr::{self, addr_of, addr_of_mut};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use xev::{Action, Id, Op, OpResult};

use crate::boundary::{checked, guard, guard_code};
use crate::errors::{cancel_code, family_code, XEV_ENOTHREADPOOL, XEV_EOF, XEV_EUNKNOWN};
use crate::event_loop::{with_loop, Loop, Shared};
use crate::sys::{sockaddr, write_sockaddr};
use crate::types::{
    fits, magic, xev_cb, xev_completion, xev_loop, XEV_COMPLETION_ACTIVE, XEV_COMPLETION_DEAD,
    XEV_REARM,
};

/// What kind of operation a completion last ran (timer resets need to
/// know; a cancel of nothing reports `-ENOENT`).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Kind {
    Other = 0,
    Timer = 1,
    /// A cancel whose target had no active operation (a noop underneath).
    CancelNothing = 2,
}

/// What the caller's `xev_completion` holds.
#[repr(C)]
pub(crate) struct CompletionRepr {
    magic: u64,
    state: u32,
    kind: u32,
    /// Names the operation that owns this storage (0: none yet).
    token: u64,
    /// The loop-owned completion running it (valid when `token != 0`).
    id: MaybeUninit<Id>,
    cb: Option<xev_cb>,
    userdata: *mut c_void,
    /// A read's C buffer and its length (what a write copies on a rearm).
    buf: *mut u8,
    len: usize,
    /// The sender of the last datagram a UDP read received.
    peer: MaybeUninit<SocketAddr>,
    has_peer: u32,
}

const _: () = assert!(fits::<CompletionRepr>(xev_completion::SIZE));

/// Tokens are never reused (a 64-bit counter).
static TOKENS: AtomicU64 = AtomicU64::new(1);

/// An operation's C side: its storage, loop pointer and token, which its
/// loop callback carries.
#[derive(Clone, Copy)]
pub(crate) struct Handle {
    c: *mut CompletionRepr,
    l: *mut xev_loop,
    token: u64,
}

impl Handle {
    /// Whether the storage still belongs to this operation.
    ///
    /// # Safety
    ///
    /// The storage is readable (true while the operation is active).
    pub(crate) unsafe fn owns(&self) -> bool {
        // SAFETY: readable, per the caller; both fields are plain integers.
        unsafe {
            ptr::read(addr_of!((*self.c).magic)) == magic::COMPLETION
                && ptr::read(addr_of!((*self.c).token)) == self.token
        }
    }

    /// Marks the storage dead and calls its C callback with `code`, with
    /// `lp` as the loop that API calls from the callback use. Returns
    /// whether the callback asked for a rearm and still owns the storage
    /// (the storage is then marked active again).
    ///
    /// # Safety
    ///
    /// The storage belongs to this operation ([`Handle::owns`]).
    pub(crate) unsafe fn deliver(&self, lp: &mut Loop, shared: &Shared, code: c_int) -> bool {
        let c = self.c;
        // SAFETY: the storage is this operation's, hence valid (the C
        // contract keeps an active completion's storage alive); the
        // callback was checked non-null when the operation started.
        unsafe {
            ptr::write(addr_of_mut!((*c).state), XEV_COMPLETION_DEAD as u32);
            let cb = ptr::read(addr_of!((*c).cb));
            let userdata = ptr::read(addr_of!((*c).userdata));
            let Some(cb) = cb else { return false };
            let action = shared.with_current(lp, || cb(self.l, c.cast(), code, userdata));
            // After XEV_DISARM the storage may be freed: not touched again.
            if action == XEV_REARM && self.owns() {
                ptr::write(addr_of_mut!((*c).state), XEV_COMPLETION_ACTIVE as u32);
                return true;
            }
        }
        false
    }
}

/// What an operation needs from its start: the C callback and user data,
/// its kind, and the C buffer a read fills or a write copies.
pub(crate) struct Request {
    pub(crate) cb: Option<xev_cb>,
    pub(crate) userdata: *mut c_void,
    pub(crate) kind: Kind,
    pub(crate) buf: *mut u8,
    pub(crate) len: usize,
}

impl Request {
    /// A request with no buffer.
    pub(crate) fn new(cb: Option<xev_cb>, userdata: *mut c_void) -> Request {
        Request {
            cb,
            userdata,
            kind: Kind::Other,
            buf: ptr::null_mut(),
            len: 0,
        }
    }
}

/// Starts an operation for the C storage `c` on loop `l`: `add` adds the
/// loop-owned completion (given the loop, its shared state and the
/// operation's [`Handle`]) and returns its id. Returns 0, or a negative
/// code (nothing was started and the storage is unchanged).
///
/// # Safety
///
/// `l` as for [`with_loop`]; `c` is null or points to writable
/// `xev_completion` storage that is not active, which stays valid until
/// the operation's callback returns `XEV_DISARM`.
pub(crate) unsafe fn start(
    l: *mut xev_loop,
    c: *mut xev_completion,
    req: Request,
    add: impl FnOnce(&mut Loop, &Rc<Shared>, Handle) -> Result<Id, c_int>,
) -> Result<c_int, c_int> {
    let cr = checked::<_, CompletionRepr>(c)?;
    if req.cb.is_none() {
        return Err(-libc::EINVAL);
    }
    // SAFETY: forwarded contract.
    unsafe {
        with_loop(l, |lp, shared| {
            let token = TOKENS.fetch_add(1, Ordering::Relaxed);
            let handle = Handle { c: cr, l, token };
            let id = add(lp, shared, handle)?;
            // The loop calls back no sooner than its next pass: the storage
            // is complete before anything reads it.
            cr.write(CompletionRepr {
                magic: magic::COMPLETION,
                state: XEV_COMPLETION_ACTIVE as u32,
                kind: req.kind as u32,
                token,
                id: MaybeUninit::new(id),
                cb: req.cb,
                userdata: req.userdata,
                buf: req.buf,
                len: req.len,
                peer: MaybeUninit::uninit(),
                has_peer: 0,
            });
            Ok(0)
        })?
    }
}

/// [`start`] for an operation `op` whose loop callback is [`finish`].
///
/// # Safety
///
/// As [`start`]; a read's `req.buf` holds `req.len` writable bytes until
/// its callback, and a write's `req.buf` holds `req.len` readable bytes at
/// its start and whenever its callback returns `XEV_REARM`.
pub(crate) unsafe fn start_op(
    l: *mut xev_loop,
    c: *mut xev_completion,
    req: Request,
    op: impl FnOnce(&mut Loop, &Shared) -> Result<Op, c_int>,
) -> Result<c_int, c_int> {
    let add = |lp: &mut Loop, shared: &Rc<Shared>, h: Handle| {
        let op = op(lp, shared)?;
        let shared = Rc::clone(shared);
        // SAFETY: the loop calls this while the operation is active, when
        // the C contract keeps the storage valid.
        Ok(lp.add(op, move |lp, op, res| unsafe {
            finish(lp, op, res, h, &shared)
        }))
    };
    // SAFETY: forwarded contract.
    unsafe { start(l, c, req, add) }
}

/// The loop callback of every operation started by [`start_op`].
///
/// # Safety
///
/// Called by the loop while the operation is active (its storage valid).
unsafe fn finish(lp: &mut Loop, op: &mut Op, res: OpResult, h: Handle, shared: &Shared) -> Action {
    // SAFETY: the storage is valid while the operation is active.
    if !unsafe { h.owns() } {
        // The storage was given to another operation: finish quietly (an
        // accepted socket in `res` is closed as it drops).
        recycle(op, shared);
        return Action::Disarm;
    }
    // SAFETY: the storage is this operation's.
    let code = unsafe { result_code(op, res, h.c) };
    // SAFETY: as above.
    if unsafe { h.deliver(lp, shared, code) } {
        // SAFETY: the callback asked for a rearm and still owns the storage.
        if unsafe { refill(op, h.c) } {
            return Action::Rearm;
        }
        // SAFETY: as above.
        unsafe { ptr::write(addr_of_mut!((*h.c).state), XEV_COMPLETION_DEAD as u32) };
    }
    recycle(op, shared);
    Action::Disarm
}

/// Keeps the buffer of a finished operation for reuse.
fn recycle(op: &mut Op, shared: &Shared) {
    if let Some(buf) = op.take_buf() {
        shared.keep(buf);
    }
}

/// Prepares a rearmed operation: a write copies its C buffer again.
/// Returns false when it cannot be rearmed.
///
/// # Safety
///
/// `c` is the operation's storage.
unsafe fn refill(op: &mut Op, c: *mut CompletionRepr) -> bool {
    // The C layer makes every buffer an owned vector (`Buf::new`).
    let copy_in = |buf: &mut xev::Buf| {
        let Some(buf) = buf.as_vec_mut() else {
            return;
        };
        // SAFETY: the storage is valid; a write's C buffer is readable
        // for `len` bytes whenever its callback returns XEV_REARM (the
        // contract of the write functions).
        unsafe {
            let (src, len) = (ptr::read(addr_of!((*c).buf)), ptr::read(addr_of!((*c).len)));
            buf.clear();
            if len > 0 {
                buf.extend_from_slice(std::slice::from_raw_parts(src, len));
            }
        }
    };
    match op {
        Op::Write { buf, .. } | Op::Send { buf, .. } | Op::Pwrite { buf, .. } => copy_in(buf),
        Op::Sendmsg(m) => copy_in(&mut m.buf),
        _ => {}
    }
    true
}

/// Copies what a read received into the C buffer.
///
/// # Safety
///
/// `c` is the operation's storage, whose buffer holds `len` writable bytes.
unsafe fn copy_out(c: *mut CompletionRepr, data: &[u8]) {
    // SAFETY: per the contract; the loop-owned buffer was made `len`
    // bytes long, so `data` fits.
    unsafe {
        let (dst, len) = (ptr::read(addr_of!((*c).buf)), ptr::read(addr_of!((*c).len)));
        let n = data.len().min(len);
        if n > 0 {
            ptr::copy_nonoverlapping(data.as_ptr(), dst, n);
        }
    }
}

/// A count as a result code (counts never exceed 0x7fff_f000).
fn count(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

/// The result code of a finished operation; a read's data is copied to
/// the C buffer and a datagram's sender recorded on the way.
///
/// # Safety
///
/// `c` is the operation's storage.
unsafe fn result_code(op: &mut Op, res: OpResult, c: *mut CompletionRepr) -> c_int {
    let unit = |r: Result<(), c_int>| r.map_or_else(|e| e, |()| 0);
    match res {
        OpResult::Timer(r) => unit(r.map_err(|e| family_code!(&e, TimerError))),
        OpResult::Async(r) => unit(r.map_err(|e| family_code!(&e, AsyncError))),
        OpResult::Noop(r) => {
            // SAFETY: the storage is valid.
            if unsafe { ptr::read(addr_of!((*c).kind)) } == Kind::CancelNothing as u32 {
                -libc::ENOENT
            } else {
                unit(r.map_err(|e| family_code!(&e, NoopError)))
            }
        }
        OpResult::Cancel(r) => unit(r.map_err(|e| cancel_code(&e))),
        OpResult::Accept(r) => match r {
            Ok(fd) => crate::sys::accepted(fd),
            Err(e) => family_code!(&e, AcceptError),
        },
        OpResult::Connect(r) => unit(r.map_err(|e| family_code!(&e, ConnectError))),
        OpResult::Shutdown(r) => unit(r.map_err(|e| family_code!(&e, ShutdownError))),
        OpResult::Close(r) => unit(r.map_err(|e| family_code!(&e, CloseError))),
        OpResult::Write(r) => match r {
            Ok(n) => count(n),
            Err(e) => family_code!(&e, WriteError, NoThreadPool => XEV_ENOTHREADPOOL),
        },
        OpResult::Read(r) => match r {
            Ok(n) => {
                if let Some(buf) = op.buf() {
                    // SAFETY: the storage is this read's.
                    unsafe { copy_out(c, &buf[..n.min(buf.len())]) };
                }
                count(n)
            }
            Err(e) => read_code(&e),
        },
        OpResult::RecvFrom(r) => match r {
            Ok((n, from)) => {
                if let Some(buf) = op.buf() {
                    // SAFETY: the storage is this read's.
                    unsafe { copy_out(c, &buf[..n.min(buf.len())]) };
                }
                // SAFETY: the storage is valid.
                unsafe {
                    if let Some(from) = from {
                        ptr::write(addr_of_mut!((*c).peer), MaybeUninit::new(from));
                    }
                    ptr::write(addr_of_mut!((*c).has_peer), u32::from(from.is_some()));
                }
                count(n)
            }
            Err(e) => read_code(&e),
        },
        _ => XEV_EUNKNOWN,
    }
}

fn read_code(e: &xev::ReadError) -> c_int {
    family_code!(e, ReadError, Eof => XEV_EOF, NoThreadPool => XEV_ENOTHREADPOOL)
}

/// The storage at `c` if it is initialised and active: its kind and id.
///
/// # Safety
///
/// `c` is null or points to readable `xev_completion` storage.
pub(crate) unsafe fn active(c: *mut xev_completion) -> Option<(Kind, Id)> {
    let cr = checked::<_, CompletionRepr>(c).ok()?;
    // SAFETY: non-null, aligned and readable; the fields are trusted only
    // after the magic number, and `id` only with a token.
    unsafe {
        if ptr::read(addr_of!((*cr).magic)) != magic::COMPLETION
            || ptr::read(addr_of!((*cr).state)) != XEV_COMPLETION_ACTIVE as u32
            || ptr::read(addr_of!((*cr).token)) == 0
        {
            return None;
        }
        let kind = match ptr::read(addr_of!((*cr).kind)) {
            1 => Kind::Timer,
            2 => Kind::CancelNothing,
            _ => Kind::Other,
        };
        Some((kind, ptr::read(addr_of!((*cr).id)).assume_init()))
    }
}

/// Replaces the C callback and user data of an active completion (a timer
/// reset).
///
/// # Safety
///
/// `c` is active ([`active`] said so).
pub(crate) unsafe fn set_callback(c: *mut xev_completion, cb: xev_cb, userdata: *mut c_void) {
    let cr = c.cast::<CompletionRepr>();
    // SAFETY: per the contract, the storage is valid and initialised.
    unsafe {
        ptr::write(addr_of_mut!((*cr).cb), Some(cb));
        ptr::write(addr_of_mut!((*cr).userdata), userdata);
    }
}

/// Sets a completion to its initial, dead state, so that
/// `xev_completion_state` can be asked before it is first used. (Starting
/// an operation needs no zeroing: every start writes the whole storage.)
///
/// # Safety
///
/// `c` is null (ignored) or points to writable `xev_completion` storage
/// that is not active.
#[no_mangle]
pub unsafe extern "C" fn xev_completion_zero(c: *mut xev_completion) {
    crate::boundary::guard_void("xev_completion_zero", || {
        let cr = checked::<_, CompletionRepr>(c)?;
        // SAFETY: non-null, aligned and writable, per the contract.
        unsafe {
            cr.write(CompletionRepr {
                magic: magic::COMPLETION,
                state: XEV_COMPLETION_DEAD as u32,
                kind: Kind::Other as u32,
                token: 0,
                id: MaybeUninit::uninit(),
                cb: None,
                userdata: ptr::null_mut(),
                buf: ptr::null_mut(),
                len: 0,
                peer: MaybeUninit::uninit(),
                has_peer: 0,
            })
        };
        Ok(())
    })
}

/// `XEV_COMPLETION_ACTIVE` from the start of an operation until its
/// callback is called (and again if the callback returns `XEV_REARM`),
/// else `XEV_COMPLETION_DEAD`: inside its own callback a completion is
/// dead. Storage that was neither zeroed nor used reads as dead.
///
/// # Safety
///
/// `c` is null (dead) or points to readable `xev_completion` storage that
/// `xev_completion_zero` or an operation initialised (any other bytes are
/// read too, but their answer means nothing); on the loop's thread.
#[no_mangle]
pub unsafe extern "C" fn xev_completion_state(c: *mut xev_completion) -> c_int {
    guard(XEV_COMPLETION_DEAD, || {
        let Ok(cr) = checked::<_, CompletionRepr>(c) else {
            return XEV_COMPLETION_DEAD;
        };
        // SAFETY: non-null, aligned and readable.
        unsafe {
            if ptr::read(addr_of!((*cr).magic)) == magic::COMPLETION
                && ptr::read(addr_of!((*cr).state)) == XEV_COMPLETION_ACTIVE as u32
            {
                XEV_COMPLETION_ACTIVE
            } else {
                XEV_COMPLETION_DEAD
            }
        }
    })
}

/// Copies the sender of the datagram that the UDP read on `c` received
/// into `out`, which has room for `*len` bytes; `*len` becomes the
/// address's length. Returns 0, or `-EINVAL` (no sender recorded, a null
/// pointer, or too little room).
///
/// # Safety
///
/// `c` is null or points to readable `xev_completion` storage; `out` and
/// `len` are null or valid for writes (`out` of `*len` bytes).
#[no_mangle]
pub unsafe extern "C" fn xev_completion_peer(
    c: *const xev_completion,
    out: *mut sockaddr,
    len: *mut usize,
) -> c_int {
    guard_code(|| {
        let cr = checked::<_, CompletionRepr>(c)?;
        if len.is_null() {
            return Err(-libc::EINVAL);
        }
        // SAFETY: non-null, aligned and readable; `peer` is read only when
        // `has_peer` says a read wrote it, after the magic number.
        unsafe {
            if ptr::read(addr_of!((*cr).magic)) != magic::COMPLETION
                || ptr::read(addr_of!((*cr).has_peer)) == 0
            {
                return Err(-libc::EINVAL);
            }
            let peer = ptr::read(addr_of!((*cr).peer)).assume_init();
            write_sockaddr(peer, out, len)?;
        }
        Ok(0)
    })
}

/// Cancels the active operation of `target`: its callback then runs with
/// `-ECANCELED` (or with the result it already had). `cb`, on completion
/// `c`, gets 0 (canceled), `-ENOENT` (`target` had no active operation)
/// or `-EALREADY` (its result was already in). Returns 0, or a negative
/// code when nothing was started.
///
/// # Safety
///
/// `loop` as for every loop function; `target` is null or points to
/// readable `xev_completion` storage; `c` to writable storage that is not
/// active and stays valid until its callback returns `XEV_DISARM`.
#[no_mangle]
pub unsafe extern "C" fn xev_cancel(
    loop_: *mut xev_loop,
    target: *mut xev_completion,
    c: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> c_int {
    // SAFETY: forwarded contract.
    guard_code(|| unsafe { cancel(loop_, target, c, userdata, cb) })
}

/// `xev_cancel`, shared with `xev_timer_cancel`.
///
/// # Safety
///
/// As [`xev_cancel`].
pub(crate) unsafe fn cancel(
    l: *mut xev_loop,
    target: *mut xev_completion,
    c: *mut xev_completion,
    userdata: *mut c_void,
    cb: Option<xev_cb>,
) -> Result<c_int, c_int> {
    // SAFETY: forwarded contract.
    let target = unsafe { active(target) }.map(|(_, id)| id);
    let mut req = Request::new(cb, userdata);
    if target.is_none() {
        req.kind = Kind::CancelNothing;
    }
    // SAFETY: forwarded contract.
    unsafe {
        start_op(l, c, req, |_, _| {
            Ok(match target {
                Some(target) => Op::Cancel { target },
                None => Op::Noop,
            })
        })
    }
}
