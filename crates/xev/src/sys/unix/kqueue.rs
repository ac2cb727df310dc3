//! kqueue, the [`Poller`] of the BSDs and macOS (and of Linux against
//! libkqueue): one batched `kevent` per tick, `EV_CLEAR` filters,
//! `EVFILT_PROC` for process exits. What this means for the backend is
//! written on `backend::kqueue`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::poller::{Event, Poller};

/// The kqueue system interface: libc's on the BSDs and macOS, a minimal
/// declaration of libkqueue's on Linux.
#[cfg(not(target_os = "linux"))]
mod ffi {
    pub(super) use libc::{
        kevent, kqueue, EVFILT_PROC, EVFILT_READ, EVFILT_WRITE, EV_ADD, EV_CLEAR, EV_DELETE,
        EV_EOF, EV_ERROR, EV_ONESHOT, EV_RECEIPT, NOTE_EXIT,
    };
    /// The `kevent` structure.
    pub(super) type Kevent = libc::kevent;
}

#[cfg(target_os = "linux")]
#[allow(non_camel_case_types)]
mod ffi {
    //! libkqueue's ABI on Linux (its `sys/event.h`).
    use libc::{c_int, c_short, c_uint, c_ushort, c_void, intptr_t, timespec, uintptr_t};

    /// `struct kevent` as libkqueue lays it out on Linux.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub(super) struct Kevent {
        pub ident: uintptr_t,
        pub filter: c_short,
        pub flags: c_ushort,
        pub fflags: c_uint,
        pub data: intptr_t,
        pub udata: *mut c_void,
    }

    pub(super) const EVFILT_READ: c_short = -1;
    pub(super) const EVFILT_WRITE: c_short = -2;
    pub(super) const EVFILT_PROC: c_short = -5;
    pub(super) const EV_ADD: c_ushort = 0x0001;
    pub(super) const EV_DELETE: c_ushort = 0x0002;
    pub(super) const EV_ONESHOT: c_ushort = 0x0010;
    pub(super) const EV_CLEAR: c_ushort = 0x0020;
    pub(super) const EV_RECEIPT: c_ushort = 0x0040;
    pub(super) const EV_ERROR: c_ushort = 0x4000;
    pub(super) const EV_EOF: c_ushort = 0x8000;
    pub(super) const NOTE_EXIT: c_uint = 0x8000_0000;

    #[link(name = "kqueue")]
    extern "C" {
        pub(super) fn kqueue() -> c_int;
        pub(super) fn kevent(
            kq: c_int,
            changelist: *const Kevent,
            nchanges: c_int,
            eventlist: *mut Kevent,
            nevents: c_int,
            timeout: *const timespec,
        ) -> c_int;
    }
}

use ffi::Kevent;

/// `udata` of the wake descriptor's registration.
const WAKE: usize = usize::MAX;

/// The kqueue and its change and event lists.
pub struct KqueuePoller {
    kq: OwnedFd,
    changes: Vec<Kevent>,
    events: Vec<Kevent>,
}

fn kev(ident: usize, filter: i16, flags: u16, fflags: u32, udata: usize) -> Kevent {
    // SAFETY: `kevent` is a plain C struct (integers and a pointer, plus
    // reserved fields on some systems) for which all-zero is valid.
    let mut k: Kevent = unsafe { std::mem::zeroed() };
    k.ident = ident as _;
    k.filter = filter as _;
    k.flags = flags as _;
    k.fflags = fflags as _;
    k.udata = udata as _;
    k
}

impl KqueuePoller {
    /// Submits the change list and waits (see [`Poller::wait`]).
    fn kevent(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let ts;
        let tsp = match timeout {
            None => std::ptr::null(),
            Some(d) => {
                ts = libc::timespec {
                    tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
                    tv_nsec: d.subsec_nanos() as _,
                };
                &ts as *const libc::timespec
            }
        };
        // Room for an error report per change as well as for events.
        let want = self.changes.len() + 256;
        if self.events.capacity() < want {
            self.events.reserve(want - self.events.len());
        }
        let cap = self.events.capacity().min(i32::MAX as usize);
        // SAFETY: the change list is `changes.len()` initialised entries; the
        // kernel writes at most `cap` events into the event buffer; `tsp` is
        // null or points at a live timespec.
        let n = unsafe {
            ffi::kevent(
                std::os::fd::AsRawFd::as_raw_fd(&self.kq),
                self.changes.as_ptr(),
                self.changes.len() as _,
                self.events.as_mut_ptr(),
                cap as _,
                tsp,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                // The changes were applied before the wait was interrupted.
                self.changes.clear();
                return Ok(0);
            }
            return Err(e);
        }
        self.changes.clear();
        // SAFETY: the kernel initialised the first `n` entries.
        unsafe { self.events.set_len(n as usize) };
        Ok(n as usize)
    }
}

impl Poller for KqueuePoller {
    const NAME: &'static str = "kqueue";
    const NATIVE_PROC: bool = true;

    fn new(wake_fd: RawFd) -> io::Result<Self> {
        // SAFETY: kqueue takes no arguments.
        let fd = unsafe { ffi::kqueue() };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is new and owned by nothing else.
        let kq = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut p = KqueuePoller {
            kq,
            changes: Vec::with_capacity(64),
            events: Vec::with_capacity(256),
        };
        // The wake descriptor: edge-triggered, drained by the loop.
        p.changes.push(kev(
            wake_fd as usize,
            ffi::EVFILT_READ,
            ffi::EV_ADD | ffi::EV_CLEAR,
            0,
            WAKE,
        ));
        p.kevent(Some(Duration::ZERO))?;
        for ev in p.events.drain(..) {
            if ev.flags & ffi::EV_ERROR != 0 && ev.data != 0 {
                return Err(io::Error::from_raw_os_error(ev.data as i32));
            }
        }
        Ok(p)
    }

    fn register(
        &mut self,
        fd: RawFd,
        believed_registered: bool,
        _interest: crate::Interest,
    ) -> io::Result<()> {
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // A real kqueue drops a descriptor's filters when it is closed, so
        // adding again is all a possibly reused descriptor needs. libkqueue
        // cannot see closes: drop its stale filters first.
        if cfg!(target_os = "linux") && believed_registered {
            for filter in [ffi::EVFILT_READ, ffi::EVFILT_WRITE] {
                self.changes
                    .push(kev(fd as usize, filter, ffi::EV_DELETE, 0, fd as usize));
            }
        }
        let flags = ffi::EV_ADD | ffi::EV_CLEAR;
        self.changes
            .push(kev(fd as usize, ffi::EVFILT_READ, flags, 0, fd as usize));
        self.changes
            .push(kev(fd as usize, ffi::EVFILT_WRITE, flags, 0, fd as usize));
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) {
        // Closing removes the filters in the kernel; only drop changes not
        // yet submitted, so none can reach a reused descriptor number.
        self.changes.retain(|c| {
            !(c.ident == fd as usize
                && (c.filter == ffi::EVFILT_READ || c.filter == ffi::EVFILT_WRITE))
        });
        // libkqueue cannot see the close that follows: delete its filters
        // now (one extra kevent call, on libkqueue only). This call must
        // touch nothing but these two filters: with room in the event list
        // after the changes, kevent would also collect pending events of
        // other descriptors (or a child's one-shot exit), and they would be
        // lost. `EV_RECEIPT` makes each change report one entry (success or
        // error), so the two entries fill the list and nothing is collected.
        if cfg!(target_os = "linux") {
            let flags = ffi::EV_DELETE | ffi::EV_RECEIPT;
            let dels = [ffi::EVFILT_READ, ffi::EVFILT_WRITE]
                .map(|f| kev(fd as usize, f, flags, 0, fd as usize));
            let mut out = [kev(0, 0, 0, 0, 0); 2];
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: two initialised changes in, room for their two
            // receipts out, a live zero timeout. Errors (nothing registered)
            // are fine: the goal is that nothing is registered.
            unsafe {
                ffi::kevent(
                    std::os::fd::AsRawFd::as_raw_fd(&self.kq),
                    dels.as_ptr(),
                    dels.len() as _,
                    out.as_mut_ptr(),
                    out.len() as _,
                    &zero,
                )
            };
        }
    }

    fn register_proc(&mut self, pid: i32) -> io::Result<()> {
        if pid <= 0 {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        self.changes.push(kev(
            pid as usize,
            ffi::EVFILT_PROC,
            ffi::EV_ADD | ffi::EV_ONESHOT,
            ffi::NOTE_EXIT,
            pid as usize,
        ));
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>, f: &mut dyn FnMut(Event)) -> io::Result<bool> {
        let n = self.kevent(timeout)?;
        let mut woken = false;
        for i in 0..n {
            let ev = self.events[i];
            if ev.udata as usize == WAKE {
                woken = true;
                continue;
            }
            let errored = ev.flags & ffi::EV_ERROR != 0;
            if errored && ev.data == 0 {
                continue; // a receipt, not an error
            }
            let eof = ev.flags & ffi::EV_EOF != 0;
            let id = ev.ident as RawFd;
            if ev.filter == ffi::EVFILT_PROC {
                f(Event {
                    fd: id,
                    proc_exit: true,
                    error: errored,
                    errno: if errored { ev.data as i32 } else { 0 },
                    ..Event::default()
                });
                continue;
            }
            if errored && ev.data as i32 == libc::ENOENT {
                // The delete half of a re-registration found nothing to
                // delete (the descriptor was closed): expected.
                continue;
            }
            // With EV_EOF, `fflags` carries the socket's pending error
            // (ECONNREFUSED, ECONNRESET...), which reading SO_ERROR may no
            // longer show: pass it on.
            let errno = if errored {
                ev.data as i32
            } else if eof {
                ev.fflags as i32
            } else {
                0
            };
            f(Event {
                fd: id,
                readable: ev.filter == ffi::EVFILT_READ,
                writable: ev.filter == ffi::EVFILT_WRITE,
                hangup: eof,
                error: errored || errno != 0,
                errno,
                proc_exit: false,
            });
        }
        self.events.clear();
        Ok(woken)
    }
}
