//! A process supervisor on one xev loop: spawns N children (50 by default)
//! with `Process::spawn`, reads every byte of each child's stdout through a
//! `Stream`, waits for each exit, and kills the laggards with a per-child
//! timeout (a `Timer` armed when the child's first output arrives, which
//! kills a child that has not written all its output by then). Every
//! fifth child lags (it prints one line, then sleeps); the others print 100
//! numbered lines and exit with code `index % 7`. At the end every exit code,
//! every kill and every byte is checked. The children are this program
//! itself (`--child INDEX`), so it needs no shell and runs on every platform.
//!
//! ```text
//! cargo run --example supervise -- [--children N] [--timeout-ms MS]
//! ```

// Not built on WASI, which has no processes.
#![cfg_attr(target_os = "wasi", no_main)]
#![cfg(not(target_os = "wasi"))]

use std::cell::RefCell;
use std::io::Write;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::rc::Rc;

use xev::watcher::{Process, Stream, Timer};
use xev::{Action, Loop, ProcessError, ReadError, RunMode};

const USAGE: &str = "\
supervise: spawns children, reads their output, kills the ones that lag.

usage: supervise [--children N] [--timeout-ms MS]

  --children N      how many children (default 50)
  --timeout-ms MS   how long a child may run after its first output before
                    it is killed (default 5000)

The backend is the default one; XEV_BACKEND forces io_uring or epoll on Linux.";

/// Lines a well-behaved child prints.
const LINES: usize = 100;

/// Whether child `index` lags (it is then killed by its timeout).
fn lags(index: usize) -> bool {
    index % 5 == 4
}

/// The output of a child that finishes its work.
fn full_output(index: usize) -> String {
    (0..LINES)
        .map(|k| format!("child {index} line {k}\n"))
        .collect()
}

/// What a laggard prints before it stalls.
fn lag_line(index: usize) -> String {
    format!("child {index} is lagging\n")
}

/// The child side: prints its output and exits; a laggard first says so
/// and stalls (for ten minutes) before it would.
fn child(index: usize) -> ! {
    let mut out = std::io::stdout().lock();
    if lags(index) {
        out.write_all(lag_line(index).as_bytes())
            .and_then(|()| out.flush())
            .expect("writing to the supervisor");
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
    out.write_all(full_output(index).as_bytes())
        .and_then(|()| out.flush())
        .expect("writing to the supervisor");
    std::process::exit((index % 7) as i32)
}

/// What the supervisor learns of one child.
#[derive(Default)]
struct Kid {
    out: Vec<u8>,
    eof: bool,
    status: Option<ExitStatus>,
    killed: bool,
}

/// Whether `s` is the status of a child killed by `Process::kill`.
fn was_killed(s: &ExitStatus) -> bool {
    #[cfg(unix)]
    return std::os::unix::process::ExitStatusExt::signal(s) == Some(9);
    #[cfg(windows)]
    return s.code() == Some(1);
}

struct Args {
    children: usize,
    timeout_ms: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        children: 50,
        timeout_ms: 5000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--child" => child(value("--child")? as usize),
            "--children" => args.children = value("--children")? as usize,
            "--timeout-ms" => args.timeout_ms = value("--timeout-ms")?,
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("supervise: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supervise: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut lp = Loop::new(Default::default())?;
    println!("backend: {}", lp.backend_name());
    let me = std::env::current_exe()?;
    let kids: Rc<RefCell<Vec<Kid>>> = Rc::default();
    let mut processes: Vec<Rc<Process>> = Vec::new();
    let mut streams: Vec<Stream> = Vec::new();
    let mut timers: Vec<Rc<Timer>> = Vec::new();
    let started = std::time::Instant::now();

    for index in 0..args.children {
        let spawned = match Process::spawn(
            Command::new(&me)
                .args(["--child", &index.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped()),
        ) {
            Ok(s) => s,
            Err(ProcessError::Unsupported) => {
                println!("process watching is not supported here (Linux < 5.4, or a sandbox)");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        kids.borrow_mut().push(Kid::default());
        let process = Rc::new(spawned.process);
        let stdout = spawned.stdout.ok_or("stdout was not piped")?;

        // The timeout: kills the child if it has neither exited nor written
        // all its output by then (one that has is only exiting: a loaded
        // machine must not make it look like a laggard).
        let (k, p) = (kids.clone(), process.clone());
        let timer = Rc::new(Timer::new(&mut lp, move |_, res| {
            let done = {
                let kid = &k.borrow()[index];
                kid.status.is_some() || kid.out.ends_with(full_output(index).as_bytes())
            };
            if res.is_ok() && !done {
                k.borrow_mut()[index].killed = true;
                if let Err(e) = p.kill() {
                    eprintln!("child {index}: kill: {e}");
                }
            }
            Action::Disarm
        }));

        // Every byte of stdout; the timer starts with the first bytes.
        let (k, t, timeout) = (kids.clone(), timer.clone(), args.timeout_ms);
        stdout.read(&mut lp, vec![0; 4096], move |lp, buf, res| match res {
            Ok(n) => {
                let first = k.borrow()[index].out.is_empty();
                k.borrow_mut()[index].out.extend_from_slice(&buf[..n]);
                if first {
                    t.run(lp, timeout).expect("arming the timeout");
                }
                Action::Rearm
            }
            Err(ReadError::Eof) => {
                k.borrow_mut()[index].eof = true;
                Action::Disarm
            }
            Err(e) => {
                eprintln!("child {index}: read: {e}");
                Action::Disarm
            }
        });

        // The exit; the timeout is no longer needed.
        let (k, t) = (kids.clone(), timer.clone());
        process.wait(&mut lp, move |lp, res| {
            match res {
                Ok(s) => k.borrow_mut()[index].status = Some(s),
                Err(e) => eprintln!("child {index}: wait: {e}"),
            }
            let _ = t.cancel(lp);
            Action::Disarm
        });
        processes.push(process);
        streams.push(stdout);
        timers.push(timer);
    }
    lp.run(RunMode::UntilDone)?;
    let elapsed = started.elapsed();

    // Check everything.
    let kids = kids.borrow();
    let mut problems = Vec::new();
    let (mut exited, mut killed, mut bytes) = (0, 0, 0);
    for (index, kid) in kids.iter().enumerate() {
        bytes += kid.out.len();
        let want = match lags(index) {
            true => lag_line(index),
            false => full_output(index),
        };
        if kid.out != want.as_bytes() || !kid.eof {
            problems.push(format!("child {index}: output not read in full"));
        }
        match (&kid.status, lags(index)) {
            (Some(s), true) if kid.killed && was_killed(s) => killed += 1,
            (Some(s), false) if s.code() == Some((index % 7) as i32) && !kid.killed => exited += 1,
            (s, _) => problems.push(format!(
                "child {index}: status {s:?}, killed by us: {}",
                kid.killed
            )),
        }
    }
    println!(
        "{} children in {:.2} s: {exited} exited with the expected codes, {killed} laggards killed after {} ms, {bytes} bytes of output read",
        kids.len(),
        elapsed.as_secs_f64(),
        args.timeout_ms
    );

    // Let go of everything through the loop.
    for s in streams {
        s.close(&mut lp, |_, _| {});
    }
    for t in timers {
        if let Ok(t) = Rc::try_unwrap(t) {
            let _ = t.free(&mut lp);
        }
    }
    for p in processes {
        if let Ok(p) = Rc::try_unwrap(p) {
            p.close(&mut lp, |_, _| {});
        }
    }
    lp.run(RunMode::UntilDone)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}
