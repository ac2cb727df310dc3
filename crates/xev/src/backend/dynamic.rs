//! The dynamic backend: io_uring where the kernel really allows it, else
//! epoll, chosen when the loop is created, behind the same API.
//!
//! io_uring is probed with a real ring and a NOP (containers' seccomp
//! profiles answer `EPERM` or `ENOSYS` to `io_uring_setup`, and
//! `kernel.io_uring_disabled` may forbid it even where the kernel has it).
//! The environment variable `XEV_BACKEND` (`io_uring` or `epoll`) forces a
//! choice; forcing io_uring where it does not work is an error, not a silent
//! fallback. [`Loop::backend_name`](crate::generic::Loop::backend_name) says
//! which one runs. The cost over a static backend is one predictable branch
//! per call into the backend.

use std::io;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::time::Duration;

use super::epoll::Epoll;
use super::io_uring::{explain_probe_error, IoUring};
use super::contract::{Backend, CancelStart, Start, Waker};
use crate::record::Core;
use crate::options::Options;

/// Which backend [`Dynamic`] picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// io_uring.
    IoUring,
    /// epoll.
    Epoll,
}

/// The environment variable that forces a backend.
pub const ENV: &str = "XEV_BACKEND";

/// The backend a new [`Dynamic`] loop would use here: `XEV_BACKEND` when
/// set (`io_uring` or `epoll`, in any case; `io-uring` and `iouring` too),
/// else io_uring when the probe succeeds (probed once per process), else
/// epoll. An unknown `XEV_BACKEND` value is an `InvalidInput` error whose
/// message names the accepted values.
pub fn choose() -> io::Result<Kind> {
    match std::env::var(ENV) {
        Ok(v) => parse(&v).map(|k| k.unwrap_or_else(auto)),
        Err(_) => Ok(auto()),
    }
}

/// A value of `XEV_BACKEND`: `Some` backend, `None` for the automatic
/// choice (an empty value), or an error that names the accepted values.
pub fn parse(value: &str) -> io::Result<Option<Kind>> {
    match value.trim().to_ascii_lowercase().as_str() {
        "io_uring" | "iouring" | "io-uring" => Ok(Some(Kind::IoUring)),
        "epoll" => Ok(Some(Kind::Epoll)),
        "" => Ok(None),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{ENV} is {value:?}, which is not a backend: use io_uring or epoll \
                 (any case), or unset it to let xev choose"
            ),
        )),
    }
}


fn auto() -> Kind {
    match probed() {
        Ok(()) => Kind::IoUring,
        Err(_) => Kind::Epoll,
    }
}

/// The io_uring probe's outcome, once per process: why it failed, if it did.
fn probed() -> &'static Result<(), String> {
    static PROBED: OnceLock<Result<(), String>> = OnceLock::new();
    PROBED.get_or_init(|| IoUring::probe().map_err(|e| explain_probe_error(&e)))
}

/// Why a dynamic loop on epoll is not on io_uring.
fn why_epoll() -> String {
    match std::env::var(ENV).ok().map(|v| parse(&v)) {
        Some(Ok(Some(Kind::Epoll))) => format!("{ENV} chose epoll"),
        _ => match probed() {
            Err(why) => why.clone(),
            Ok(()) => "io_uring could not be set up for this loop".to_string(),
        },
    }
}

/// io_uring or epoll, chosen at run time.
// One per loop: the size difference costs nothing, while boxing the larger
// variant would add an indirection to every backend call.
#[allow(clippy::large_enum_variant)]
pub enum Dynamic {
    /// Running on io_uring.
    IoUring(IoUring),
    /// Running on epoll.
    Epoll(Epoll),
}

macro_rules! each {
    ($self:expr, $b:ident => $e:expr) => {
        match $self {
            Dynamic::IoUring($b) => $e,
            Dynamic::Epoll($b) => $e,
        }
    };
}

impl Dynamic {
    /// Which backend this is.
    pub fn kind(&self) -> Kind {
        match self {
            Dynamic::IoUring(_) => Kind::IoUring,
            Dynamic::Epoll(_) => Kind::Epoll,
        }
    }
}

impl Backend for Dynamic {
    const WAKE_EDGE: bool = IoUring::WAKE_EDGE && Epoll::WAKE_EDGE;

    fn new(opts: &Options) -> io::Result<(Self, Waker)> {
        Ok(match choose()? {
            Kind::IoUring => {
                let (b, w) = IoUring::new(opts)?;
                (Dynamic::IoUring(b), w)
            }
            Kind::Epoll => {
                let (b, w) = Epoll::new(opts)?;
                (Dynamic::Epoll(b), w)
            }
        })
    }

    fn name(&self) -> &'static str {
        each!(self, b => b.name())
    }

    fn add_pool(&mut self, pool: &crate::BufPool) -> io::Result<()> {
        each!(self, b => b.add_pool(pool))
    }

    fn capabilities(&self) -> crate::Capabilities {
        let mut c = each!(self, b => b.capabilities());
        if let Dynamic::Epoll(_) = self {
            c.fallback = Some(why_epoll());
        }
        c
    }

    #[inline]
    unsafe fn start(&mut self, core: NonNull<Core>) -> Start {
        // SAFETY: forwarded contract.
        each!(self, b => unsafe { b.start(core) })
    }

    unsafe fn cancel(&mut self, target: NonNull<Core>) -> CancelStart {
        // SAFETY: forwarded contract.
        each!(self, b => unsafe { b.cancel(target) })
    }

    #[inline]
    fn poll(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut dyn FnMut(NonNull<Core>, i32),
    ) -> io::Result<bool> {
        each!(self, b => b.poll(timeout, sink))
    }

    fn has_pending(&mut self) -> bool {
        each!(self, b => b.has_pending())
    }

    fn flush(&mut self) -> io::Result<()> {
        each!(self, b => b.flush())
    }

    fn in_flight(&self) -> usize {
        each!(self, b => b.in_flight())
    }

    unsafe fn abandon(&mut self, target: NonNull<Core>) {
        // SAFETY: forwarded contract.
        each!(self, b => unsafe { b.abandon(target) })
    }

    fn forget(&mut self, fd: crate::RawHandle) {
        each!(self, b => b.forget(fd))
    }

    fn drain(&mut self, sink: &mut dyn FnMut(NonNull<Core>, i32)) {
        each!(self, b => b.drain(sink))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_in_any_case() {
        assert_eq!(parse("IO_URING").unwrap(), Some(Kind::IoUring));
        assert_eq!(parse("Epoll").unwrap(), Some(Kind::Epoll));
        assert_eq!(parse(" io-uring ").unwrap(), Some(Kind::IoUring));
        assert_eq!(parse("").unwrap(), None);
        let e = parse("kqueue").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(msg.contains("io_uring or epoll") && msg.contains("\"kqueue\""), "{msg}");
    }
}
