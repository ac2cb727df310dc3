//! The registry: which workloads there are (with their sizes, units and
//! which way is better), which contenders there are, how `--only` and
//! `--contenders` patterns select among them, and how one contender runs
//! one workload in this process.

#[cfg(windows)]
use xev::backend::iocp::Iocp;
#[cfg(target_os = "linux")]
use xev::backend::{dynamic::Dynamic, epoll::Epoll, io_uring::IoUring};

use crate::common::{Outcome, Res};
use crate::{async_ping, async_pummel, ping_pongs, ping_udp, timers, udp_pummel};

/// Which workload module runs a workload (and its thread count, if any).
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    PingPongs,
    PingUdp1,
    UdpPummel,
    MillionTimers,
    Async(usize),
    AsyncPummel(usize),
    /// `redis-benchmark` with this many commands pipelined (Linux).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Redis(u32),
    /// `wrk` with this many requests pipelined (Linux; the size is the
    /// run's length in seconds).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Http(u32),
}

/// One workload as the suite knows it.
pub struct Workload {
    pub name: &'static str,
    pub kind: Kind,
    /// libxev's size (what the figure means: see `unit`).
    pub full: u64,
    /// The size under `--quick`.
    pub quick: u64,
    pub unit: &'static str,
    pub higher_is_better: bool,
}

impl Workload {
    /// The size a run uses: `quick` under `--quick`, libxev's otherwise.
    pub fn size(&self, quick: bool) -> u64 {
        if quick {
            self.quick
        } else {
            self.full
        }
    }
}

pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "ping-pongs",
        kind: Kind::PingPongs,
        full: 500_000,
        quick: 20_000,
        unit: "round trips/s",
        higher_is_better: true,
    },
    Workload {
        name: "ping-udp1",
        kind: Kind::PingUdp1,
        full: 500_000,
        quick: 20_000,
        unit: "round trips/s",
        higher_is_better: true,
    },
    Workload {
        name: "udp_pummel_1v1",
        kind: Kind::UdpPummel,
        full: 1_000_000,
        quick: 50_000,
        unit: "received/s",
        higher_is_better: true,
    },
    Workload {
        name: "million-timers",
        kind: Kind::MillionTimers,
        full: 10_000_000,
        quick: 200_000,
        unit: "s total",
        higher_is_better: false,
    },
    Workload {
        name: "async1",
        kind: Kind::Async(1),
        full: 1_000_000,
        quick: 20_000,
        unit: "round trips/s",
        higher_is_better: true,
    },
    Workload {
        name: "async2",
        kind: Kind::Async(2),
        full: 1_000_000,
        quick: 20_000,
        unit: "round trips/s",
        higher_is_better: true,
    },
    Workload {
        name: "async4",
        kind: Kind::Async(4),
        full: 1_000_000,
        quick: 20_000,
        unit: "round trips/s",
        higher_is_better: true,
    },
    Workload {
        name: "async8",
        kind: Kind::Async(8),
        full: 1_000_000,
        quick: 20_000,
        unit: "round trips/s",
        higher_is_better: true,
    },
    Workload {
        name: "async_pummel_1",
        kind: Kind::AsyncPummel(1),
        full: 1_000_000,
        quick: 50_000,
        unit: "callbacks/s",
        higher_is_better: true,
    },
    Workload {
        name: "async_pummel_2",
        kind: Kind::AsyncPummel(2),
        full: 1_000_000,
        quick: 50_000,
        unit: "callbacks/s",
        higher_is_better: true,
    },
    Workload {
        name: "async_pummel_4",
        kind: Kind::AsyncPummel(4),
        full: 1_000_000,
        quick: 50_000,
        unit: "callbacks/s",
        higher_is_better: true,
    },
    Workload {
        name: "async_pummel_8",
        kind: Kind::AsyncPummel(8),
        full: 1_000_000,
        quick: 50_000,
        unit: "callbacks/s",
        higher_is_better: true,
    },
    Workload {
        name: "redis-P16",
        kind: Kind::Redis(16),
        full: 200_000,
        quick: 10_000,
        unit: "requests/s",
        higher_is_better: true,
    },
    Workload {
        name: "redis-P1",
        kind: Kind::Redis(1),
        full: 50_000,
        quick: 5_000,
        unit: "requests/s",
        higher_is_better: true,
    },
    Workload {
        name: "http",
        kind: Kind::Http(1),
        full: 5,
        quick: 1,
        unit: "requests/s",
        higher_is_better: true,
    },
    Workload {
        name: "http-P16",
        kind: Kind::Http(16),
        full: 5,
        quick: 1,
        unit: "requests/s",
        higher_is_better: true,
    },
];

/// The contenders this platform has: xev on each of its backends, tokio,
/// and (on Linux) the raw floors.
#[cfg(target_os = "linux")]
pub const CONTENDERS: &[&str] = &[
    "xev-io_uring",
    "xev-epoll",
    "xev-dynamic",
    "xev_async-io_uring",
    "xev_async-epoll",
    "xev_pool-io_uring",
    "xev_pool-epoll",
    "tokio",
    "compio",
    "monoio",
    "hyper-xev_async-io_uring",
    "hyper-xev_async-epoll",
    "hyper-tokio",
    "floor-io_uring",
    "floor-epoll",
];
#[cfg(windows)]
pub const CONTENDERS: &[&str] = &["xev-iocp", "xev_async-iocp", "tokio"];

/// Why `contender` does not run workload `w`, if it does not: compio and
/// monoio are written for ping-pongs (compio also for the real-client
/// servers) only so far; the hyper servers serve the HTTP workloads.
pub fn not_written(w: &Workload, contender: &str) -> Option<&'static str> {
    if contender.starts_with("xev_pool-") {
        return (!matches!(w.kind, Kind::Redis(_) | Kind::Http(_)))
            .then_some("the pooled-receive servers serve the real-client workloads only");
    }
    if contender.starts_with("hyper-") {
        return (!matches!(w.kind, Kind::Http(_)))
            .then_some("the hyper servers serve the HTTP (wrk) workloads only");
    }
    if matches!(w.kind, Kind::Redis(_) | Kind::Http(_)) {
        let written = cfg!(target_os = "linux")
            && matches!(
                contender,
                "xev-io_uring"
                    | "xev-epoll"
                    | "xev_async-io_uring"
                    | "xev_async-epoll"
                    | "tokio"
                    | "compio"
            );
        return (!written).then_some(
            "the real-client servers are written for xev (plain and pooled receives) and xev_async (io_uring, epoll), tokio and compio so far",
        );
    }
    (matches!(contender, "compio" | "monoio") && !matches!(w.kind, Kind::PingPongs))
        .then_some("only ping-pongs is written for this contender so far")
}

/// Why workload `w` cannot run here, if a real client it needs is not
/// installed (the bench installs nothing itself).
pub fn client_missing(w: &Workload) -> Option<String> {
    #[cfg(target_os = "linux")]
    return match w.kind {
        Kind::Redis(_) => crate::real_clients::client_missing("redis-benchmark"),
        Kind::Http(_) => crate::real_clients::client_missing("wrk"),
        _ => None,
    };
    #[cfg(not(target_os = "linux"))]
    {
        let _ = w;
        None
    }
}

/// Whether a contender can only run where io_uring is available.
pub fn needs_io_uring(contender: &str) -> bool {
    contender.ends_with("io_uring") || matches!(contender, "compio" | "monoio")
}

/// A workload by its exact name.
pub fn workload(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

/// Whether an `--only` pattern names a workload: exactly, or by the prefix
/// before a trailing `*`.
pub fn workload_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Whether a `--contenders` pattern names a contender: exactly, or as the
/// group before a `-` (`xev`, `floor`).
pub fn contender_matches(pattern: &str, name: &str) -> bool {
    pattern == name
        || name
            .strip_prefix(pattern)
            .is_some_and(|rest| rest.starts_with('-'))
}

#[cfg(target_os = "linux")]
macro_rules! contenders {
    ($c:expr, $module:ident ( $($arg:expr),* )) => {
        match $c {
            "xev-io_uring" => $module::xev::<IoUring>($($arg),*),
            "xev-epoll" => $module::xev::<Epoll>($($arg),*),
            "xev-dynamic" => $module::xev::<Dynamic>($($arg),*),
            "tokio" => $module::tokio($($arg),*),
            "floor-io_uring" => $module::floor::floor_uring($($arg),*),
            "floor-epoll" => $module::floor::floor_epoll($($arg),*),
            other => Err(format!("unknown contender {other}")),
        }
    };
}

#[cfg(windows)]
macro_rules! contenders {
    ($c:expr, $module:ident ( $($arg:expr),* )) => {
        match $c {
            "xev-iocp" => $module::xev::<Iocp>($($arg),*),
            "tokio" => $module::tokio($($arg),*),
            other => Err(format!("unknown contender {other}")),
        }
    };
}

/// The async layer on backend `B` runs workload `w` (the real-client
/// workloads and async_pummel are dispatched or refused before).
fn run_xev_async<B: xev::backend::Backend>(w: &Workload, n: u64) -> Res<Outcome> {
    match w.kind {
        Kind::PingPongs => ping_pongs::xev_async::<B>(n),
        Kind::PingUdp1 => ping_udp::xev_async::<B>(n),
        Kind::UdpPummel => udp_pummel::xev_async::<B>(n),
        Kind::MillionTimers => timers::xev_async::<B>(n),
        Kind::Async(t) => async_ping::xev_async::<B>(t, n),
        Kind::AsyncPummel(t) => async_pummel::xev_async::<B>(t, n),
        Kind::Redis(_) | Kind::Http(_) => Err("a real-client workload".to_string()),
    }
}

/// Runs `contender` once on workload `w` at size `n`, in this process.
/// `xev-dynamic`'s outcome also names the backend it picked.
pub fn run_workload(w: &Workload, contender: &str, n: u64) -> Res<Outcome> {
    if let Some(why) = not_written(w, contender) {
        return Err(why.to_string());
    }
    #[cfg(target_os = "linux")]
    match w.kind {
        Kind::Redis(p) => return crate::real_clients::redis(contender, p, n),
        Kind::Http(p) => return crate::real_clients::http(contender, p, n),
        _ => {}
    }
    #[cfg(target_os = "linux")]
    if contender == "compio" {
        // Ping-pongs only (`not_written`).
        return crate::uring_peers::compio_ping_pongs(n);
    }
    #[cfg(target_os = "linux")]
    if contender == "monoio" {
        // Ping-pongs only (`not_written`).
        return crate::uring_peers::monoio_ping_pongs(n);
    }
    if let Some(backend) = contender.strip_prefix("xev_async-") {
        return match backend {
            #[cfg(target_os = "linux")]
            "io_uring" => run_xev_async::<IoUring>(w, n),
            #[cfg(target_os = "linux")]
            "epoll" => run_xev_async::<Epoll>(w, n),
            #[cfg(windows)]
            "iocp" => run_xev_async::<Iocp>(w, n),
            other => Err(format!("unknown contender xev_async-{other}")),
        };
    }
    let out = match w.kind {
        Kind::PingPongs => contenders!(contender, ping_pongs(n)),
        Kind::PingUdp1 => contenders!(contender, ping_udp(n)),
        Kind::UdpPummel => contenders!(contender, udp_pummel(n)),
        Kind::MillionTimers => contenders!(contender, timers(n)),
        Kind::Async(t) => contenders!(contender, async_ping(t, n)),
        Kind::AsyncPummel(t) => contenders!(contender, async_pummel(t, n)),
        Kind::Redis(_) | Kind::Http(_) => Err(not_written(w, contender)
            .unwrap_or("a real-client workload")
            .to_string()),
    }?;
    #[cfg(target_os = "linux")]
    if contender == "xev-dynamic" {
        let chosen =
            match xev::backend::dynamic::choose().map_err(crate::common::ctx("XEV_BACKEND"))? {
                xev::backend::dynamic::Kind::IoUring => "io_uring",
                xev::backend::dynamic::Kind::Epoll => "epoll",
            };
        return Ok(out.with("backend", chosen));
    }
    Ok(out)
}

/// Whether io_uring can run here, or why not (never off Linux).
pub fn io_uring_available() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    return IoUring::probe().map(drop).map_err(|e| e.to_string());
    #[cfg(not(target_os = "linux"))]
    Err("not on this platform".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every workload on every contender, in-process and tiny: each one
    /// completes and verifies its own counts (speed is not looked at).
    #[test]
    fn every_contender_completes_every_workload() {
        let uring = io_uring_available().is_ok();
        let mut failures = Vec::new();
        for w in WORKLOADS {
            let n = match w.kind {
                Kind::MillionTimers => 3_000,
                Kind::Redis(_) => 1_000,
                Kind::Http(_) => 1,
                _ => 300,
            };
            for c in CONTENDERS {
                if not_written(w, c).is_some() {
                    continue;
                }
                if let Some(why) = client_missing(w) {
                    eprintln!("{}: {why}", w.name);
                    continue;
                }
                if needs_io_uring(c) && !uring {
                    eprintln!("io_uring unavailable: skipping {} on {c}", w.name);
                    continue;
                }
                match run_workload(w, c, n) {
                    Ok(o) if o.figure.is_finite() && o.figure > 0.0 => {}
                    Ok(o) => failures.push(format!("{} {c}: bad figure {}", w.name, o.figure)),
                    Err(e) => failures.push(format!("{} {c}: {e}", w.name)),
                }
            }
        }
        assert!(failures.is_empty(), "failures: {failures:#?}");
    }

    #[test]
    fn patterns() {
        assert!(workload_matches("async*", "async_pummel_8"));
        assert!(!workload_matches("async", "async1"));
        assert!(contender_matches("xev", "xev-epoll"));
        assert!(contender_matches("floor-epoll", "floor-epoll"));
        assert!(!contender_matches("floor-e", "floor-epoll"));
    }
}
