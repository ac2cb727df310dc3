//! What every workload shares: the result a child process reports, CPU-time
//! measurement, the xev loop options and tokio runtime every contender of
//! its kind uses, and small socket and syscall helpers.

use std::fmt::Write as _;
use std::io;
use std::time::Instant;

/// A contender's result for one run, as measured inside the child process.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The workload's headline figure (its unit is the workload's).
    pub figure: f64,
    /// Wall-clock seconds of the measured region.
    pub elapsed: f64,
    /// CPU seconds (user + system, all threads) of the measured region.
    pub cpu: f64,
    /// The count the workload verified (round trips, callbacks, ...).
    pub count: u64,
    /// Further figures (name, value), e.g. init and dispatch seconds.
    pub extra: Vec<(String, String)>,
}

impl Outcome {
    /// Adds a named extra figure.
    pub fn with(mut self, key: &str, value: impl ToString) -> Outcome {
        self.extra.push((key.to_string(), value.to_string()));
        self
    }

    /// The line the child prints: `key=value` pairs separated by tabs.
    pub fn encode(&self) -> String {
        let mut s = format!(
            "figure={}\telapsed={}\tcpu={}\tcount={}",
            self.figure, self.elapsed, self.cpu, self.count
        );
        for (k, v) in &self.extra {
            let _ = write!(s, "\t{k}={}", v.replace(['\t', '\n'], " "));
        }
        s
    }

    /// Parses [`Outcome::encode`]'s output.
    pub fn decode(line: &str) -> Result<Outcome, String> {
        let mut o = Outcome::default();
        for field in line.split('\t') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("malformed result field {field:?}"))?;
            let num = || {
                v.parse::<f64>()
                    .map_err(|e| format!("result field {k}={v:?}: {e}"))
            };
            match k {
                "figure" => o.figure = num()?,
                "elapsed" => o.elapsed = num()?,
                "cpu" => o.cpu = num()?,
                "count" => o.count = v.parse().map_err(|e| format!("count={v:?}: {e}"))?,
                _ => o.extra.push((k.to_string(), v.to_string())),
            }
        }
        Ok(o)
    }

    /// An extra figure by name.
    pub fn get(&self, key: &str) -> Option<&str> {
        extra(&self.extra, key)
    }
}

/// A named extra figure's value among `(name, value)` pairs.
pub fn extra<'a>(extras: &'a [(String, String)], key: &str) -> Option<&'a str> {
    extras
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// CPU seconds (user + system) used so far by this whole process, all
/// threads included (also threads that already exited).
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes one rusage into the zeroed local.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    rusage_cpu(&ru)
}

/// The CPU seconds (user + system) an `rusage` records.
pub fn rusage_cpu(ru: &libc::rusage) -> f64 {
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A `timeval` in seconds.
fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Wall clock and CPU clock started together.
pub struct Meter {
    start: Instant,
    cpu: f64,
}

impl Meter {
    /// Starts measuring.
    pub fn start() -> Meter {
        Meter {
            cpu: cpu_seconds(),
            start: Instant::now(),
        }
    }

    /// CPU seconds (all threads) since the start.
    pub fn cpu(&self) -> f64 {
        cpu_seconds() - self.cpu
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Stops: an outcome with `count` events whose figure is events/s.
    pub fn rate(&self, count: u64) -> Outcome {
        self.stop(count, |elapsed| count as f64 / elapsed)
    }

    /// Stops: an outcome whose figure is the elapsed seconds.
    pub fn seconds(&self, count: u64) -> Outcome {
        self.stop(count, |elapsed| elapsed)
    }

    /// Stops: an outcome whose figure `figure` makes of the elapsed
    /// seconds.
    fn stop(&self, count: u64, figure: impl FnOnce(f64) -> f64) -> Outcome {
        let elapsed = self.elapsed();
        let cpu = self.cpu();
        Outcome {
            figure: figure(elapsed),
            elapsed,
            cpu,
            count,
            extra: Vec::new(),
        }
    }
}

/// A result of the benchmark's own code: errors are messages.
pub type Res<T> = Result<T, String>;

/// The loop options every xev contender uses: libxev's benchmarks use 4096
/// submission-queue entries; everything else is the default.
pub fn xev_options() -> xev::Options {
    xev::Options {
        entries: 4096,
        ..Default::default()
    }
}

/// A current-thread tokio runtime with its I/O and time drivers, as
/// `#[tokio::main(flavor = "current_thread")]` builds it.
pub fn tokio_rt() -> Res<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ctx("tokio runtime"))
}

/// Converts any displayable error into a message with context.
pub fn ctx<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// The last OS error as a message with context.
pub fn os_err(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// Checks a libc return value (negative means error).
pub fn check(r: isize, what: &str) -> Res<isize> {
    if r < 0 {
        Err(os_err(what))
    } else {
        Ok(r)
    }
}

/// "PING\n", the ping-pong payload.
pub const PING: &[u8; 5] = b"PING\n";

/// Counts the pings in `data`, checking every byte; `state` is the position
/// inside the current ping. Calls `on_pong` after each whole ping; stops
/// early (returning false) when it returns false.
#[inline]
pub fn scan_pings(
    data: &[u8],
    state: &mut usize,
    mut on_pong: impl FnMut() -> bool,
) -> Result<bool, String> {
    for &b in data {
        if b != PING[*state] {
            return Err(format!(
                "corrupted echo: byte {b:#04x} where {:#04x} was expected",
                PING[*state]
            ));
        }
        *state = (*state + 1) % PING.len();
        if *state == 0 && !on_pong() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// An eventfd (blocking unless `nonblocking`), for the floors.
pub fn eventfd(nonblocking: bool) -> Res<i32> {
    let flags = libc::EFD_CLOEXEC | if nonblocking { libc::EFD_NONBLOCK } else { 0 };
    // SAFETY: no pointers.
    let fd = unsafe { libc::eventfd(0, flags) };
    check(fd as isize, "eventfd").map(|_| fd)
}

/// Adds one to an eventfd.
pub fn eventfd_write(fd: i32) -> Res<()> {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a live local.
    let r = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    check(r, "eventfd write").map(|_| ())
}

/// Reads (and resets) an eventfd's counter.
pub fn eventfd_read(fd: i32) -> Res<u64> {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a live local.
    let r = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    check(r, "eventfd read").map(|_| v)
}

/// A small epoll wrapper for the floors: level-triggered registrations whose
/// data is a caller-chosen token.
pub struct Epoll {
    /// The epoll descriptor.
    pub fd: i32,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new epoll instance.
    pub fn new() -> Res<Epoll> {
        // SAFETY: no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        check(fd as isize, "epoll_create1")?;
        Ok(Epoll {
            fd,
            events: Vec::with_capacity(64),
        })
    }

    /// Registers (or, with `modify`, changes) `fd` for `events`.
    pub fn ctl(&self, op: i32, fd: i32, events: u32, token: u64) -> Res<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is live; epoll_ctl copies it.
        let r = unsafe { libc::epoll_ctl(self.fd, op, fd, &mut ev) };
        check(r as isize, "epoll_ctl").map(|_| ())
    }

    /// Adds `fd` for reading.
    pub fn add_in(&self, fd: i32, token: u64) -> Res<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, token)
    }

    /// Waits (`timeout_ms` -1: forever) and returns the ready tokens with
    /// their event bits.
    pub fn wait(&mut self, timeout_ms: i32) -> Res<&[libc::epoll_event]> {
        let cap = self.events.capacity();
        // SAFETY: the kernel writes at most `cap` events into the buffer.
        let n =
            unsafe { libc::epoll_wait(self.fd, self.events.as_mut_ptr(), cap as i32, timeout_ms) };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                return Ok(&[]);
            }
            return Err(os_err("epoll_wait"));
        }
        // SAFETY: the kernel initialised the first n entries.
        unsafe { self.events.set_len(n as usize) };
        Ok(&self.events)
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.fd) };
    }
}

/// Closes a raw descriptor we own.
pub fn close(fd: i32) {
    // SAFETY: the caller owns `fd`.
    unsafe { libc::close(fd) };
}

/// Reads into `buf`, retrying on EINTR; returns bytes read or an error.
pub fn read_fd(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, writable buffer of its length.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Writes all of `buf` to a (possibly non-blocking) descriptor, waiting
/// with poll(2) when it would block.
pub fn write_all_fd(fd: i32, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live buffer of its length.
        let r = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if r >= 0 {
            buf = &buf[r as usize..];
            continue;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one live pollfd.
                unsafe { libc::poll(&mut p, 1, -1) };
            }
            _ => return Err(e),
        }
    }
    Ok(())
}

/// A `sockaddr_storage` and its length for a socket address.
pub fn raw_addr(addr: std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let sa = socket2::SockAddr::from(addr);
    // SAFETY: storage is plain old data; we copy `len` valid bytes into it.
    unsafe {
        let mut st: libc::sockaddr_storage = std::mem::zeroed();
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (&mut st as *mut libc::sockaddr_storage).cast::<u8>(),
            sa.len() as usize,
        );
        (st, sa.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_round_trips_through_its_encoding() {
        let o = Outcome {
            figure: 1234.5,
            elapsed: 2.0,
            cpu: 1.5,
            count: 42,
            extra: vec![
                ("backend".into(), "io_uring".into()),
                ("init_s".into(), "0.1".into()),
            ],
        };
        let d = Outcome::decode(&o.encode()).unwrap();
        assert_eq!(
            (d.figure, d.elapsed, d.cpu, d.count),
            (1234.5, 2.0, 1.5, 42)
        );
        assert_eq!(d.get("backend"), Some("io_uring"));
        assert_eq!(d.get("init_s"), Some("0.1"));
    }
}
