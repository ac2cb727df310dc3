//! What every workload shares: the result a child process reports, CPU-time
//! measurement, the xev loop options and tokio runtime every contender of
//! its kind uses, and small socket and syscall helpers.

use std::fmt::Write as _;

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
#[cfg(unix)]
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes one rusage into the zeroed local.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    rusage_cpu(&ru)
}

/// CPU seconds (user + system) used so far by this whole process, all
/// threads included (also threads that already exited).
#[cfg(windows)]
pub fn cpu_seconds() -> f64 {
    // SAFETY: the pseudo-handle of the current process needs no closing.
    process_cpu(unsafe { windows_sys::Win32::System::Threading::GetCurrentProcess() })
}

/// The CPU seconds (user + system) an `rusage` records.
#[cfg(unix)]
pub fn rusage_cpu(ru: &libc::rusage) -> f64 {
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A `timeval` in seconds.
#[cfg(unix)]
fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// The CPU seconds (user + system) of the process `h` (0 if it cannot be
/// read).
#[cfg(windows)]
pub fn process_cpu(h: std::os::windows::io::RawHandle) -> f64 {
    use windows_sys::Win32::Foundation::FILETIME;
    use windows_sys::Win32::System::Threading::GetProcessTimes;
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: four live FILETIME locals; the kernel checks the handle.
    let ok = unsafe { GetProcessTimes(h, &mut created, &mut exited, &mut kernel, &mut user) };
    if ok == 0 {
        return 0.0;
    }
    // FILETIMEs count 100 ns units.
    let secs =
        |t: FILETIME| ((t.dwHighDateTime as u64) << 32 | t.dwLowDateTime as u64) as f64 / 1e7;
    secs(kernel) + secs(user)
}

/// The handle xev's operations take for a socket.
#[cfg(unix)]
pub fn raw(s: &impl std::os::fd::AsRawFd) -> xev::RawHandle {
    s.as_raw_fd()
}

/// The handle xev's operations take for a socket.
#[cfg(windows)]
pub fn raw(s: &impl std::os::windows::io::AsRawSocket) -> xev::RawHandle {
    s.as_raw_socket() as xev::RawHandle
}

/// A socket's handle, given up to the caller (who closes it, e.g. with
/// `Op::Close`).
#[cfg(unix)]
pub fn into_raw(s: impl std::os::fd::IntoRawFd) -> xev::RawHandle {
    s.into_raw_fd()
}

/// A socket's handle, given up to the caller (who closes it, e.g. with
/// `Op::Close`).
#[cfg(windows)]
pub fn into_raw(s: impl std::os::windows::io::IntoRawSocket) -> xev::RawHandle {
    s.into_raw_socket() as xev::RawHandle
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

/// The last OS error as a message with context (the floors' syscalls).
#[cfg(target_os = "linux")]
pub fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
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
