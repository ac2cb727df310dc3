//! xev-bench: libxev's benchmark workloads on xev (io_uring, epoll and the
//! dynamic backend on Linux; IOCP on Windows), on tokio (current-thread
//! runtimes) and, on Linux, on a "floor" (the thinnest correct code directly
//! on io_uring and on epoll).
//!
//! ```text
//! cargo run --release -p xev-bench -- [--quick] [--runs N] [--only W,..]
//!     [--contenders C,..] [--json FILE] [--plot FILE.svg] [--timeout SECS] [--list]
//! ```
//!
//! Every contender runs in a child process of its own (this binary, started
//! with a hidden `__child` subcommand), so that one contender cannot disturb
//! another's memory and so that the peak RSS (`ru_maxrss` from `wait4`; the
//! peak working set on Windows, where the platform keeps it) is the
//! contender's own. Each child verifies its own work (counts, payloads)
//! and reports an error instead of a number when that fails. With `--runs N`
//! the contenders of a workload run interleaved (A B C A B C ...) and the
//! table shows medians. One run is only indicative: on a noisy machine (a
//! shared 2-core VM, say) use `--runs 5` or more before reading anything
//! into differences of less than ~15%.
//!
//! This file only wires the parts together: [`cli`] (options, usage,
//! `--list`), [`registry`] (workloads and contenders), [`supervisor`] (the
//! child processes), [`stats`] (medians and ratios) and [`report`] (table
//! and JSON); [`common`] and one file per workload hold the benchmarks.

mod async_ping;
mod async_pummel;
mod cli;
mod common;
#[cfg(target_os = "linux")]
mod floor_sys;
mod ping_pongs;
mod ping_udp;
mod plot;
#[cfg(target_os = "linux")]
mod real_clients;
mod registry;
mod report;
mod sizes;
mod stats;
mod supervisor;
mod timers;
mod udp_pummel;
#[cfg(target_os = "linux")]
mod uring_peers;

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    match raw.first().map(String::as_str) {
        Some("__child") => supervisor::child(&raw[1..]),
        Some("__sizes") => {
            sizes::print();
            return;
        }
        _ => {}
    }
    let args = cli::Args::from_env_or_exit();
    if args.list {
        cli::print_list();
        return;
    }
    let host = report::host_description();
    let mut rows = supervisor::run_all(&args, &host);
    stats::fill_ratios(&mut rows);
    report::print_table(&args, &host, &rows);
    if let Some(path) = &args.json {
        if let Err(e) = report::write_json(path, &args, &host, &rows) {
            eprintln!("xev-bench: {e}");
            std::process::exit(1);
        }
        eprintln!("xev-bench: wrote {path}");
    }
    if let Some(path) = &args.plot {
        if let Err(e) = plot::write_plot(path, &host, &rows) {
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
