//! xev-bench: libxev's benchmark workloads on xev (io_uring, epoll and the
//! dynamic backend), on tokio (current-thread runtimes) and on a "floor" (the
//! thinnest correct code directly on io_uring and on epoll).
//!
//! ```text
//! cargo run --release -p xev-bench -- [--quick] [--runs N] [--only W,..]
//!     [--contenders C,..] [--json FILE] [--timeout SECS] [--list]
//! ```
//!
//! Every contender runs in a child process of its own (this binary, started
//! with a hidden `__child` subcommand), so that one contender cannot disturb
//! another's memory and so that the peak RSS (`ru_maxrss` from `wait4`) is
//! the contender's own. Each child verifies its own work (counts, payloads)
//! and reports an error instead of a number when that fails. With `--runs N`
//! the contenders of a workload run interleaved (A B C A B C ...) and the
//! table shows medians. One run is only indicative: on a noisy machine (a
//! shared 2-core VM, say) use `--runs 5` or more before reading anything
//! into differences of less than ~15%.

mod async_ping;
mod async_pummel;
mod common;
mod ping_pongs;
mod ping_udp;
mod timers;
mod udp_pummel;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ctx, tv, Outcome, Res};
use xev::backend::{dynamic::Dynamic, epoll::Epoll, io_uring::IoUring};

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

#[derive(Clone, Copy, Debug)]
enum Kind {
    PingPongs,
    PingUdp1,
    UdpPummel,
    MillionTimers,
    Async(usize),
    AsyncPummel(usize),
}

struct Workload {
    name: &'static str,
    kind: Kind,
    /// libxev's size (what the figure means: see `unit`).
    full: u64,
    /// The size under `--quick`.
    quick: u64,
    unit: &'static str,
    higher_is_better: bool,
}

const WORKLOADS: &[Workload] = &[
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
];

const CONTENDERS: &[&str] = &[
    "xev-io_uring",
    "xev-epoll",
    "xev-dynamic",
    "tokio",
    "floor-io_uring",
    "floor-epoll",
];

fn needs_io_uring(contender: &str) -> bool {
    contender.ends_with("io_uring")
}

// ------------------------------------------------------------ the child --

macro_rules! contenders {
    ($c:expr, $module:ident ( $($arg:expr),* )) => {
        match $c {
            "xev-io_uring" => $module::xev::<IoUring>($($arg),*),
            "xev-epoll" => $module::xev::<Epoll>($($arg),*),
            "xev-dynamic" => $module::xev::<Dynamic>($($arg),*),
            "tokio" => $module::tokio($($arg),*),
            "floor-io_uring" => $module::floor_uring($($arg),*),
            "floor-epoll" => $module::floor_epoll($($arg),*),
            other => Err(format!("unknown contender {other}")),
        }
    };
}

fn run_workload(w: &Workload, contender: &str, n: u64) -> Res<Outcome> {
    let out = match w.kind {
        Kind::PingPongs => contenders!(contender, ping_pongs(n)),
        Kind::PingUdp1 => contenders!(contender, ping_udp(n)),
        Kind::UdpPummel => contenders!(contender, udp_pummel(n)),
        Kind::MillionTimers => contenders!(contender, timers(n)),
        Kind::Async(t) => contenders!(contender, async_ping(t, n)),
        Kind::AsyncPummel(t) => contenders!(contender, async_pummel(t, n)),
    }?;
    Ok(if contender == "xev-dynamic" {
        let chosen = match xev::backend::dynamic::choose().map_err(ctx("XEV_BACKEND"))? {
            xev::backend::dynamic::Kind::IoUring => "io_uring",
            xev::backend::dynamic::Kind::Epoll => "epoll",
        };
        out.with("backend", chosen)
    } else {
        out
    })
}

/// `__child WORKLOAD CONTENDER N`: runs one contender once and prints one
/// line, `RESULT\t...` or `ERROR\t...`.
fn child(args: &[String]) -> ! {
    let line = match args {
        [w, c, n] => match (WORKLOADS.iter().find(|x| x.name == w), n.parse::<u64>()) {
            (Some(w), Ok(n)) => match run_workload(w, c, n) {
                Ok(o) => format!("RESULT\t{}", o.encode()),
                Err(e) => format!("ERROR\t{}", e.replace(['\t', '\n'], " ")),
            },
            _ => format!("ERROR\tbad child arguments {args:?}"),
        },
        _ => format!("ERROR\tbad child arguments {args:?}"),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    // Threads of a failed run may still be blocked: leave without them.
    std::process::exit(0)
}

// ----------------------------------------------------------- the parent --

struct Args {
    quick: bool,
    runs: usize,
    only: Vec<String>,
    contenders: Vec<String>,
    json: Option<String>,
    timeout: Option<u64>,
    list: bool,
}

const USAGE: &str = "\
usage: xev-bench [--quick] [--runs N] [--only W[,W..]] [--contenders C[,C..]]
                 [--json FILE] [--timeout SECS] [--list]

  --quick          scale every workload down (the suite takes well under a
                   minute); checks that every contender completes correctly
  --runs N         run each contender N times, interleaved, and report
                   medians (default 1; use 5 or more on a noisy machine)
  --only W,..      workloads to run (see --list); 'async*' style prefixes work
  --contenders C,..  contenders to run; 'xev' and 'floor' name their groups
  --json FILE      also write the results as JSON
  --timeout SECS   kill a contender that runs longer (default 300, quick 60)
  --list           list workloads and contenders

Every contender runs in its own child process; the table shows the
workload's figure, CPU seconds (user+system, all threads, measured region),
the child's peak RSS, and xev's speed relative to tokio and to the floor
(>1.00x: xev faster). Exit status 1 if any contender failed.";

fn parse_args() -> Res<Args> {
    let mut a = Args {
        quick: false,
        runs: 1,
        only: Vec::new(),
        contenders: Vec::new(),
        json: None,
        timeout: None,
        list: false,
    };
    let mut it = std::env::args().skip(1);
    let list = |v: String| -> Vec<String> {
        v.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    while let Some(flag) = it.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (flag, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--quick" => a.quick = true,
            "--runs" => {
                a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?;
                if a.runs == 0 {
                    return Err("--runs must be at least 1".into());
                }
            }
            "--only" => a.only.extend(list(value()?)),
            "--contenders" => a.contenders.extend(list(value()?)),
            "--json" => a.json = Some(value()?),
            "--timeout" => {
                a.timeout = Some(value()?.parse().map_err(|e| format!("--timeout: {e}"))?)
            }
            "--list" => a.list = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    for w in &a.only {
        if !WORKLOADS.iter().any(|x| workload_matches(w, x.name)) {
            return Err(format!("unknown workload {w} (see --list)"));
        }
    }
    for c in &a.contenders {
        if !CONTENDERS.iter().any(|x| contender_matches(c, x)) {
            return Err(format!("unknown contender {c} (see --list)"));
        }
    }
    Ok(a)
}

fn workload_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn contender_matches(pattern: &str, name: &str) -> bool {
    pattern == name
        || name
            .strip_prefix(pattern)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// One run of one contender, as the parent saw it.
struct RunResult {
    outcome: Result<Outcome, String>,
    /// CPU seconds of the whole child process (wait4).
    cpu_process: f64,
    /// Peak RSS of the child, KiB.
    maxrss_kb: u64,
}

fn spawn_child(w: &Workload, contender: &str, n: u64, timeout: Duration) -> RunResult {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return failed(format!("current_exe: {e}")),
    };
    let mut child = match Command::new(exe)
        .arg("__child")
        .arg(w.name)
        .arg(contender)
        .arg(n.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return failed(format!("spawn: {e}")),
    };
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let mut status = 0;
        // SAFETY: waits for our own child and fills the zeroed locals.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            while libc::wait4(pid, &mut status, 0, &mut ru) < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
            ru
        };
        let _ = tx.send((text, status, ru));
    });
    let (text, status, ru, timed_out) = match rx.recv_timeout(timeout) {
        Ok((t, s, r)) => (t, s, r, false),
        Err(_) => {
            // SAFETY: signals the child we started (not yet reaped: the
            // waiter thread reaps it once it dies).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            match rx.recv() {
                Ok((t, s, r)) => (t, s, r, true),
                Err(_) => return failed("child lost".into()),
            }
        }
    };
    let outcome = if timed_out {
        Err(format!("timed out after {} s", timeout.as_secs()))
    } else if let Some(line) = text.lines().rev().find_map(|l| l.strip_prefix("RESULT\t")) {
        Outcome::decode(line)
    } else if let Some(line) = text.lines().rev().find_map(|l| l.strip_prefix("ERROR\t")) {
        Err(line.to_string())
    } else if libc::WIFSIGNALED(status) {
        Err(format!("child killed by signal {}", libc::WTERMSIG(status)))
    } else {
        Err(format!(
            "child exited with status {} without a result (panic?)",
            libc::WEXITSTATUS(status)
        ))
    };
    RunResult {
        outcome,
        cpu_process: tv(ru.ru_utime) + tv(ru.ru_stime),
        maxrss_kb: ru.ru_maxrss.max(0) as u64,
    }
}

fn failed(msg: String) -> RunResult {
    RunResult {
        outcome: Err(msg),
        cpu_process: 0.0,
        maxrss_kb: 0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The medians of one contender on one workload.
struct Row {
    workload: &'static Workload,
    contender: &'static str,
    error: Option<String>,
    skipped: Option<String>,
    runs: Vec<f64>,
    figure: f64,
    cpu: f64,
    cpu_process: f64,
    elapsed: f64,
    maxrss_mb: f64,
    count: u64,
    /// Medians of the numeric extras; text extras from the last run.
    extra: Vec<(String, String)>,
    vs_tokio: Option<f64>,
    vs_floor: Option<f64>,
}

fn aggregate(w: &'static Workload, contender: &'static str, runs: &[RunResult]) -> Row {
    let mut row = Row {
        workload: w,
        contender,
        error: None,
        skipped: None,
        runs: Vec::new(),
        figure: f64::NAN,
        cpu: f64::NAN,
        cpu_process: f64::NAN,
        elapsed: f64::NAN,
        maxrss_mb: f64::NAN,
        count: 0,
        extra: Vec::new(),
        vs_tokio: None,
        vs_floor: None,
    };
    let mut oks = Vec::new();
    for r in runs {
        match &r.outcome {
            Ok(o) => oks.push((o, r)),
            Err(e) => {
                row.error.get_or_insert_with(|| e.clone());
            }
        }
    }
    if row.error.is_some() || oks.is_empty() {
        row.error.get_or_insert_with(|| "no run".into());
        return row;
    }
    row.runs = oks.iter().map(|(o, _)| o.figure).collect();
    row.figure = median(row.runs.clone());
    row.cpu = median(oks.iter().map(|(o, _)| o.cpu).collect());
    row.cpu_process = median(oks.iter().map(|(_, r)| r.cpu_process).collect());
    row.elapsed = median(oks.iter().map(|(o, _)| o.elapsed).collect());
    row.maxrss_mb = median(
        oks.iter()
            .map(|(_, r)| r.maxrss_kb as f64 / 1024.0)
            .collect(),
    );
    row.count = oks.last().map(|(o, _)| o.count).unwrap_or(0);
    for (k, v) in &oks.last().expect("non-empty").0.extra {
        let nums: Option<Vec<f64>> = oks
            .iter()
            .map(|(o, _)| o.get(k).and_then(|x| x.parse::<f64>().ok()))
            .collect();
        let value = match nums {
            Some(nums) => {
                let m = median(nums);
                if m.fract() == 0.0 && m.abs() < 1e15 {
                    format!("{}", m as i64)
                } else {
                    format!("{m:.4}")
                }
            }
            None => v.clone(),
        };
        row.extra.push((k.clone(), value));
    }
    row
}

/// xev's speed relative to `other` (>1: xev faster).
fn speed_ratio(w: &Workload, xev: f64, other: f64) -> Option<f64> {
    if !(xev.is_finite() && other.is_finite()) || xev <= 0.0 || other <= 0.0 {
        return None;
    }
    Some(if w.higher_is_better {
        xev / other
    } else {
        other / xev
    })
}

fn fill_ratios(rows: &mut [Row]) {
    let find = |rows: &[Row], w: &str, c: &str| -> Option<f64> {
        rows.iter()
            .find(|r| r.workload.name == w && r.contender == c && r.error.is_none())
            .map(|r| r.figure)
            .filter(|f| f.is_finite())
    };
    for i in 0..rows.len() {
        let (w, c) = (rows[i].workload, rows[i].contender);
        if !c.starts_with("xev-") || rows[i].error.is_some() || rows[i].skipped.is_some() {
            continue;
        }
        let backend = match c {
            "xev-dynamic" => rows[i]
                .extra
                .iter()
                .find(|(k, _)| k == "backend")
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            _ => c.trim_start_matches("xev-").to_string(),
        };
        let fig = rows[i].figure;
        rows[i].vs_tokio = find(rows, w.name, "tokio").and_then(|t| speed_ratio(w, fig, t));
        rows[i].vs_floor =
            find(rows, w.name, &format!("floor-{backend}")).and_then(|f| speed_ratio(w, fig, f));
    }
}

fn fmt_figure(w: &Workload, f: f64) -> String {
    if !f.is_finite() {
        return "-".into();
    }
    if w.higher_is_better {
        group_digits(f.round() as u64)
    } else {
        format!("{f:.2}")
    }
}

fn group_digits(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn notes(row: &Row) -> String {
    if let Some(s) = &row.skipped {
        return format!("skipped: {s}");
    }
    if let Some(e) = &row.error {
        return format!("ERROR: {e}");
    }
    let get = |k: &str| {
        row.extra
            .iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.as_str())
    };
    let mut parts = Vec::new();
    if let Some(b) = get("backend") {
        parts.push(format!("on {b}"));
    }
    if let (Some(i), Some(d)) = (get("init_s"), get("dispatch_s")) {
        let num = |v: Option<&str>| v.and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
        let (i, d) = (num(Some(i)), num(Some(d)));
        let (ic, dc) = (num(get("init_cpu_s")), num(get("dispatch_cpu_s")));
        parts.push(format!(
            "init {i:.2} s ({ic:.2} CPU), dispatch {d:.2} s ({dc:.2} CPU)"
        ));
    }
    if let (Some(r), Some(s)) = (get("received"), get("sent")) {
        parts.push(format!("received {r} of {s}"));
    }
    if let Some(n) = get("notifies") {
        if let Ok(n) = n.parse::<f64>() {
            parts.push(format!("{} notifies", group_digits(n.round() as u64)));
        }
    }
    if row.runs.len() > 1 {
        let lo = row.runs.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = row.runs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        parts.push(format!(
            "runs {}..{}",
            fmt_figure(row.workload, lo),
            fmt_figure(row.workload, hi)
        ));
    }
    parts.join("; ")
}

fn ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "-".into())
}

fn print_table(rows: &[Row]) {
    let header = [
        "workload",
        "contender",
        "figure",
        "unit",
        "CPU s",
        "peak MB",
        "xev/tokio",
        "xev/floor",
        "notes",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            let ok = r.error.is_none() && r.skipped.is_none();
            [
                r.workload.name.to_string(),
                r.contender.to_string(),
                if ok {
                    fmt_figure(r.workload, r.figure)
                } else {
                    "-".into()
                },
                r.workload.unit.to_string(),
                if ok {
                    format!("{:.2}", r.cpu)
                } else {
                    "-".into()
                },
                if ok {
                    format!("{:.1}", r.maxrss_mb)
                } else {
                    "-".into()
                },
                ratio(r.vs_tokio),
                ratio(r.vs_floor),
                notes(r),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            widths[i] = widths[i].max(s.len());
        }
    }
    let right = [false, false, true, false, true, true, true, true, false];
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, v) in c.iter().enumerate() {
            if i == c.len() - 1 {
                s.push_str(v);
            } else if right[i] {
                let _ = write!(s, "{v:>w$}  ", w = widths[i]);
            } else {
                let _ = write!(s, "{v:<w$}  ", w = widths[i]);
            }
        }
        s.trim_end().to_string()
    };
    println!("{}", line(&header.map(String::from)));
    let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    println!("{}", "-".repeat(total.min(160)));
    let mut last = "";
    for (r, c) in rows.iter().zip(&cells) {
        if !last.is_empty() && last != r.workload.name {
            println!();
        }
        last = r.workload.name;
        println!("{}", line(c));
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn json_opt(v: Option<f64>) -> String {
    v.map(json_num).unwrap_or_else(|| "null".into())
}

fn write_json(path: &str, args: &Args, host: &str, rows: &[Row]) -> Res<()> {
    let mut s = String::from("{\n");
    let cmd: Vec<String> = std::env::args().collect();
    let _ = writeln!(s, "  \"command\": {},", json_str(&cmd.join(" ")));
    let _ = writeln!(
        s,
        "  \"mode\": {},",
        json_str(if args.quick { "quick" } else { "full" })
    );
    let _ = writeln!(s, "  \"runs\": {},", args.runs);
    let _ = writeln!(s, "  \"host\": {},", json_str(host));
    s.push_str("  \"results\": [\n");
    for (i, r) in rows.iter().enumerate() {
        s.push_str("    {");
        let _ = write!(
            s,
            "\"workload\": {}, \"contender\": {}, \"unit\": {}, \"higher_is_better\": {}, ",
            json_str(r.workload.name),
            json_str(r.contender),
            json_str(r.workload.unit),
            r.workload.higher_is_better
        );
        let _ = write!(
            s,
            "\"size\": {}, \"figure\": {}, \"runs\": [{}], \"cpu_s\": {}, \"cpu_process_s\": {}, \"elapsed_s\": {}, \"peak_rss_mb\": {}, \"count\": {}, ",
            if args.quick { r.workload.quick } else { r.workload.full },
            json_num(r.figure),
            r.runs.iter().map(|v| json_num(*v)).collect::<Vec<_>>().join(", "),
            json_num(r.cpu),
            json_num(r.cpu_process),
            json_num(r.elapsed),
            json_num(r.maxrss_mb),
            r.count
        );
        let extra: Vec<String> = r
            .extra
            .iter()
            .map(|(k, v)| {
                let val = v
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|_| v.clone())
                    .unwrap_or_else(|| json_str(v));
                format!("{}: {}", json_str(k), val)
            })
            .collect();
        let _ = write!(
            s,
            "\"extra\": {{{}}}, \"vs_tokio\": {}, \"vs_floor\": {}, \"error\": {}, \"skipped\": {}}}",
            extra.join(", "),
            json_opt(r.vs_tokio),
            json_opt(r.vs_floor),
            r.error.as_deref().map(json_str).unwrap_or_else(|| "null".into()),
            r.skipped.as_deref().map(json_str).unwrap_or_else(|| "null".into()),
        );
        s.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ]\n}\n");
    std::fs::write(path, s).map_err(|e| format!("writing {path}: {e}"))
}

/// `__sizes`: the per-timer memory of the xev types million-timers uses.
fn sizes() {
    use xev::generic::Completion;
    use xev::{Action, Op};
    let c = Completion::<Epoll, _>::new(
        Op::timer(0),
        |_: &mut xev::generic::Loop<Epoll>, _: &mut Op, _| Action::Disarm,
    );
    println!("size_of::<xev::Op>() = {}", std::mem::size_of::<Op>());
    println!(
        "size_of_val(Completion<Epoll, zero-sized closure>) = {}",
        std::mem::size_of_val(&*c)
    );
    println!(
        "size_of::<xev::OpResult>() = {}",
        std::mem::size_of::<xev::OpResult>()
    );
    println!(
        "size_of::<xev::Msg>() = {}",
        std::mem::size_of::<xev::Msg>()
    );
}

fn host_description() -> String {
    // SAFETY: uname fills the zeroed struct.
    let kernel = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) == 0 {
            std::ffi::CStr::from_ptr(u.release.as_ptr())
                .to_string_lossy()
                .into_owned()
        } else {
            "?".into()
        }
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("Linux {kernel}, {cpus} CPUs")
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("__child") {
        child(&raw[1..]);
    }
    if raw.first().map(String::as_str) == Some("__sizes") {
        sizes();
        return;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("xev-bench: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if args.list {
        println!("workloads (size full / quick):");
        for w in WORKLOADS {
            println!(
                "  {:<16} {:>10} / {:<8} {}",
                w.name, w.full, w.quick, w.unit
            );
        }
        println!("contenders:");
        for c in CONTENDERS {
            println!("  {c}");
        }
        return;
    }
    let workloads: Vec<&'static Workload> = WORKLOADS
        .iter()
        .filter(|w| args.only.is_empty() || args.only.iter().any(|p| workload_matches(p, w.name)))
        .collect();
    let contenders: Vec<&'static str> = CONTENDERS
        .iter()
        .copied()
        .filter(|c| {
            args.contenders.is_empty() || args.contenders.iter().any(|p| contender_matches(p, c))
        })
        .collect();
    let uring = IoUring::probe().map_err(|e| e.to_string());
    let timeout = Duration::from_secs(args.timeout.unwrap_or(if args.quick { 60 } else { 300 }));
    let host = host_description();
    eprintln!(
        "xev-bench: {} mode, {} run(s) per contender, {host}; io_uring {}",
        if args.quick { "quick" } else { "full" },
        args.runs,
        match &uring {
            Ok(()) => "available".to_string(),
            Err(e) => format!("unavailable ({e})"),
        }
    );
    let runnable = |c: &str| !needs_io_uring(c) || uring.is_ok();
    let total = workloads.len() * args.runs * contenders.iter().filter(|c| runnable(c)).count();
    let started = Instant::now();
    let mut done = 0usize;
    let mut rows = Vec::new();
    for w in &workloads {
        let n = if args.quick { w.quick } else { w.full };
        let mut results: Vec<Vec<RunResult>> = contenders.iter().map(|_| Vec::new()).collect();
        for run in 0..args.runs {
            for (ci, c) in contenders.iter().enumerate() {
                if !runnable(c) {
                    continue;
                }
                done += 1;
                eprint!(
                    "[{done:>3}/{total}] {:<15} {:<15} run {}/{} ... ",
                    w.name,
                    c,
                    run + 1,
                    args.runs
                );
                let _ = std::io::stderr().flush();
                let t = Instant::now();
                let r = spawn_child(w, c, n, timeout);
                let secs = t.elapsed().as_secs_f64();
                match &r.outcome {
                    Ok(o) => eprintln!(
                        "{} {} ({secs:.1} s, {:.0} MB)",
                        fmt_figure(w, o.figure),
                        w.unit,
                        r.maxrss_kb as f64 / 1024.0
                    ),
                    Err(e) => eprintln!("ERROR: {e} ({secs:.1} s)"),
                }
                results[ci].push(r);
            }
        }
        for (ci, c) in contenders.iter().enumerate() {
            let mut row = aggregate(w, c, &results[ci]);
            if !runnable(c) {
                row.error = None;
                row.skipped = Some(format!(
                    "io_uring unavailable: {}",
                    uring.as_ref().err().map(String::as_str).unwrap_or("")
                ));
            }
            rows.push(row);
        }
    }
    fill_ratios(&mut rows);
    eprintln!(
        "xev-bench: {} contender runs in {:.1} s",
        done,
        started.elapsed().as_secs_f64()
    );
    println!(
        "xev-bench ({} mode, {} run(s), medians; {host})",
        if args.quick { "quick" } else { "full" },
        args.runs
    );
    println!(
        "xev/tokio, xev/floor: xev's speed relative to the other (>1.00x: xev faster); \
         floor = raw code on the same kernel interface"
    );
    println!();
    print_table(&rows);
    if let Some(path) = &args.json {
        if let Err(e) = write_json(path, &args, &host, &rows) {
            eprintln!("xev-bench: {e}");
            std::process::exit(1);
        }
        eprintln!("xev-bench: wrote {path}");
    }
    let failures = rows.iter().filter(|r| r.error.is_some()).count();
    if failures > 0 {
        eprintln!("xev-bench: {failures} contender(s) FAILED");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every workload on every contender, in-process and tiny: each one
    /// completes and verifies its own counts (speed is not looked at).
    #[test]
    fn every_contender_completes_every_workload() {
        let uring = IoUring::probe().is_ok();
        let mut failures = Vec::new();
        for w in WORKLOADS {
            let n = match w.kind {
                Kind::MillionTimers => 3_000,
                _ => 300,
            };
            for c in CONTENDERS {
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

    #[test]
    fn helpers() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(group_digits(1234567), "1,234,567");
        assert_eq!(group_digits(999), "999");
        assert!(workload_matches("async*", "async_pummel_8"));
        assert!(!workload_matches("async", "async1"));
        assert!(contender_matches("xev", "xev-epoll"));
        assert!(contender_matches("floor-epoll", "floor-epoll"));
        assert!(!contender_matches("floor-e", "floor-epoll"));
        let timers = WORKLOADS
            .iter()
            .find(|w| w.name == "million-timers")
            .unwrap();
        assert_eq!(speed_ratio(timers, 10.0, 20.0), Some(2.0));
        let pp = WORKLOADS.iter().find(|w| w.name == "ping-pongs").unwrap();
        assert_eq!(speed_ratio(pp, 10.0, 20.0), Some(0.5));
    }
}
