//! Runs the suite's contenders, each in a child process of its own: this
//! binary again, as `xev-bench __child WORKLOAD CONTENDER N`, so that one
//! contender cannot disturb another's memory and the peak RSS is the
//! contender's own. The parent side interleaves the runs, reports progress
//! on stderr, kills a child that outlives the timeout and reaps each one
//! with its CPU time and peak memory (`wait4` on Unix; on Windows the
//! process's times and peak working set); the child side runs the
//! contender and prints the one line the parent reads, `RESULT\t...` or
//! `ERROR\t...`.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli::Args;

// The one retry policy for starting a child under wine (it lives with the
// tests' support code, which shares it too).
#[path = "../../xev/tests/support/spawn_retry.rs"]
mod spawn_retry;
use crate::common::Outcome;
use crate::registry::{self, needs_io_uring, Workload};
use crate::report::fmt_figure;
use crate::stats::{aggregate, Row};

/// The prefixes of the child's one line.
const RESULT: &str = "RESULT\t";
const ERROR: &str = "ERROR\t";

/// One run of one contender, as the parent saw it.
pub struct RunResult {
    pub outcome: Result<Outcome, String>,
    /// CPU seconds of the whole child process.
    pub cpu_process: f64,
    /// Peak RSS of the child, KiB (0: the platform did not say).
    pub maxrss_kb: u64,
}

/// Runs every selected contender on every selected workload, `--runs`
/// times, interleaved (A B C A B C ...), with a progress line per run on
/// stderr, and returns a row of medians per workload and contender (in
/// that order). Contenders that need io_uring are skipped where it is
/// unavailable.
pub fn run_all(args: &Args, host: &str) -> Vec<Row> {
    let workloads = args.workloads();
    let contenders = args.contenders();
    let uring = registry::io_uring_available();
    let timeout = args.timeout();
    eprintln!(
        "xev-bench: {} mode, {} run(s) per contender, {host}{}",
        args.mode(),
        args.runs,
        match &uring {
            _ if !cfg!(target_os = "linux") => String::new(),
            Ok(()) => "; io_uring available".to_string(),
            Err(e) => format!("; io_uring unavailable ({e})"),
        }
    );
    let uring_ok = |c: &str| !needs_io_uring(c) || uring.is_ok();
    let total: usize = workloads
        .iter()
        .map(|w| {
            args.runs
                * contenders
                    .iter()
                    .filter(|c| {
                        uring_ok(c)
                            && registry::not_written(w, c).is_none()
                            && registry::client_missing(w).is_none()
                    })
                    .count()
        })
        .sum();
    let started = Instant::now();
    let mut done = 0usize;
    let mut rows = Vec::new();
    for w in &workloads {
        let n = w.size(args.quick);
        let mut results: Vec<Vec<RunResult>> = contenders.iter().map(|_| Vec::new()).collect();
        let missing = registry::client_missing(w);
        let runnable =
            |c: &str| uring_ok(c) && registry::not_written(w, c).is_none() && missing.is_none();
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
            if let Some(why) = registry::not_written(w, c) {
                row.error = None;
                row.skipped = Some(why.to_string());
            } else if let Some(why) = &missing {
                row.error = None;
                row.skipped = Some(why.clone());
            } else if !uring_ok(c) {
                row.error = None;
                row.skipped = Some(format!(
                    "io_uring unavailable: {}",
                    uring.as_ref().err().map(String::as_str).unwrap_or("")
                ));
            }
            rows.push(row);
        }
    }
    eprintln!(
        "xev-bench: {} contender runs in {:.1} s",
        done,
        started.elapsed().as_secs_f64()
    );
    rows
}

/// Runs one contender once in a child process and waits for it, killing
/// it after `timeout`.
fn spawn_child(w: &Workload, contender: &str, n: u64, timeout: Duration) -> RunResult {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return failed(format!("current_exe: {e}")),
    };
    let mut cmd = Command::new(exe);
    cmd.arg("__child")
        .arg(w.name)
        .arg(contender)
        .arg(n.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = match spawn_retry::retry(|| cmd.spawn(), spawn_retry::io) {
        Ok(c) => c,
        Err(e) => return failed(format!("spawn: {e}")),
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let Reaped {
        text,
        ending,
        cpu,
        maxrss_kb,
        timed_out,
    } = match reap(child, stdout, timeout) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let last = |prefix: &str| text.lines().rev().find_map(|l| l.strip_prefix(prefix));
    let outcome = if timed_out {
        Err(format!("timed out after {} s", timeout.as_secs()))
    } else if let Some(line) = last(RESULT) {
        Outcome::decode(line)
    } else if let Some(line) = last(ERROR) {
        Err(line.to_string())
    } else {
        Err(format!("child {ending} without a result (panic?)"))
    };
    RunResult {
        outcome,
        cpu_process: cpu,
        maxrss_kb,
    }
}

/// What the parent learnt of a finished child.
struct Reaped {
    /// All it printed on stdout.
    text: String,
    /// How it ended, for messages ("exited with status 1", ...).
    ending: String,
    /// CPU seconds (user + system) of the whole process.
    cpu: f64,
    /// Its peak resident memory, in KiB.
    maxrss_kb: u64,
    /// Whether it was killed for outliving the timeout.
    timed_out: bool,
}

/// Reads the child's stdout to its end and reaps it with `wait4` (CPU time
/// and peak RSS), killing it if it outlives `timeout`.
#[cfg(unix)]
fn reap(
    child: std::process::Child,
    mut stdout: std::process::ChildStdout,
    timeout: Duration,
) -> Result<Reaped, String> {
    let pid = child.id() as libc::pid_t;
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
                Err(_) => return Err("child lost".into()),
            }
        }
    };
    let ending = if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    };
    Ok(Reaped {
        text,
        ending,
        cpu: crate::common::rusage_cpu(&ru),
        maxrss_kb: ru.ru_maxrss.max(0) as u64,
        timed_out,
    })
}

/// Reads the child's stdout to its end and waits for it, then reads its
/// CPU times and peak working set from its process handle; kills it
/// (`TerminateProcess`) if it outlives `timeout`.
#[cfg(windows)]
fn reap(
    mut child: std::process::Child,
    mut stdout: std::process::ChildStdout,
    timeout: Duration,
) -> Result<Reaped, String> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::System::ProcessStatus::{
        K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS,
    };
    use windows_sys::Win32::System::Threading::TerminateProcess;

    let handle = child.as_raw_handle() as usize;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let status = child.wait();
        let h = child.as_raw_handle();
        let cpu = crate::common::process_cpu(h);
        // SAFETY: PROCESS_MEMORY_COUNTERS is plain data; the handle is the
        // child's, still open (the Child owns it until this thread ends).
        let peak = unsafe {
            let mut pmc: PROCESS_MEMORY_COUNTERS = std::mem::zeroed();
            let size = std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
            pmc.cb = size;
            match K32GetProcessMemoryInfo(h, &mut pmc, size) {
                0 => 0,
                _ => pmc.PeakWorkingSetSize as u64 / 1024,
            }
        };
        let _ = tx.send((text, status, cpu, peak));
    });
    let (text, status, cpu, peak, timed_out) = match rx.recv_timeout(timeout) {
        Ok((t, s, c, p)) => (t, s, c, p, false),
        Err(_) => {
            // SAFETY: the handle is the child's, still open: the waiter
            // thread owns the Child and has not returned.
            unsafe { TerminateProcess(handle as _, 1) };
            match rx.recv() {
                Ok((t, s, c, p)) => (t, s, c, p, true),
                Err(_) => return Err("child lost".into()),
            }
        }
    };
    let ending = match status {
        Ok(s) => format!("exited with {s}"),
        Err(e) => format!("could not be waited for ({e})"),
    };
    Ok(Reaped {
        text,
        ending,
        cpu,
        maxrss_kb: peak,
        timed_out,
    })
}

fn failed(msg: String) -> RunResult {
    RunResult {
        outcome: Err(msg),
        cpu_process: 0.0,
        maxrss_kb: 0,
    }
}

/// The child side, `__child WORKLOAD CONTENDER N`: runs one contender once
/// and prints one line, `RESULT\t...` or `ERROR\t...`.
pub fn child(args: &[String]) -> ! {
    let run = match args {
        [w, c, n] => match (registry::workload(w), n.parse::<u64>()) {
            (Some(w), Ok(n)) => Some(registry::run_workload(w, c, n)),
            _ => None,
        },
        _ => None,
    };
    let line = match run {
        Some(Ok(o)) => format!("{RESULT}{}", o.encode()),
        Some(Err(e)) => format!("{ERROR}{}", e.replace(['\t', '\n'], " ")),
        None => format!("{ERROR}bad child arguments {args:?}"),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    // Threads of a failed run may still be blocked: leave without them.
    std::process::exit(0)
}
