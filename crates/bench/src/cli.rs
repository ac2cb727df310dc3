//! The command line: the options, their parsing and checking, the usage
//! text, and `--list` (the one answer given without running anything).

use std::time::Duration;

use crate::common::Res;
use crate::registry::{contender_matches, workload_matches, Workload, CONTENDERS, WORKLOADS};

/// The parsed options.
pub struct Args {
    pub quick: bool,
    pub runs: usize,
    only: Vec<String>,
    contenders: Vec<String>,
    pub json: Option<String>,
    pub plot: Option<String>,
    timeout: Option<u64>,
    pub list: bool,
}

pub const USAGE: &str = "\
usage: xev-bench [--quick] [--runs N] [--only W[,W..]] [--contenders C[,C..]]
                 [--json FILE] [--plot FILE.svg] [--timeout SECS] [--list]

  --quick          scale every workload down (the suite takes well under a
                   minute); checks that every contender completes correctly
  --runs N         run each contender N times, interleaved, and report
                   medians (default 1; use 5 or more on a noisy machine)
  --only W,..      workloads to run (see --list); 'async*' style prefixes work
  --contenders C,..  contenders to run; 'xev' and 'floor' name their groups
  --json FILE      also write the results as JSON
  --plot FILE.svg  also draw them: grouped bars per workload, each figure
                   relative to the best in its workload (1 = fastest)
  --timeout SECS   kill a contender that runs longer (default 300, quick 60)
  --list           list workloads and contenders

Every contender runs in its own child process; the table shows the
workload's figure, CPU seconds (user+system, all threads, measured region),
the child's peak RSS, and xev's speed relative to tokio and to the floor
(>1.00x: xev faster). Exit status 1 if any contender failed.";

impl Args {
    /// The process's arguments; prints the usage and exits for `--help`
    /// (status 0) and for a bad argument (status 2, with the reason).
    pub fn from_env_or_exit() -> Args {
        match parse(std::env::args().skip(1)) {
            Ok(a) => a,
            Err(e) if e.is_empty() => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("xev-bench: {e}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
    }

    /// "quick" or "full", as the output names the mode.
    pub fn mode(&self) -> &'static str {
        if self.quick {
            "quick"
        } else {
            "full"
        }
    }

    /// How long one contender run may take: `--timeout`, or 300 s (60 s
    /// with `--quick`).
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.unwrap_or(if self.quick { 60 } else { 300 }))
    }

    /// The workloads `--only` selects (all of them without it).
    pub fn workloads(&self) -> Vec<&'static Workload> {
        WORKLOADS
            .iter()
            .filter(|w| {
                self.only.is_empty() || self.only.iter().any(|p| workload_matches(p, w.name))
            })
            .collect()
    }

    /// The contenders `--contenders` selects (all of them without it).
    pub fn contenders(&self) -> Vec<&'static str> {
        CONTENDERS
            .iter()
            .copied()
            .filter(|c| {
                self.contenders.is_empty()
                    || self.contenders.iter().any(|p| contender_matches(p, c))
            })
            .collect()
    }
}

/// Parses the arguments (without the program name). `Err("")` asks for the
/// usage (`-h`, `--help`); any other error is a bad argument.
fn parse(args: impl IntoIterator<Item = String>) -> Res<Args> {
    let mut a = Args {
        quick: false,
        runs: 1,
        only: Vec::new(),
        contenders: Vec::new(),
        json: None,
        plot: None,
        timeout: None,
        list: false,
    };
    let mut it = args.into_iter();
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
            "--plot" => a.plot = Some(value()?),
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

/// `--list`: the workloads with their sizes and units, and the contenders.
pub fn print_list() {
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
}
