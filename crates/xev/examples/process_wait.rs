//! Waiting for child processes on an xev loop with the `Process` watcher:
//! one child exits with status 3, another (sleeping 30 s) is killed once
//! the first has been reaped (SIGKILL on Unix, `TerminateProcess` on
//! Windows). Both statuses are printed as the watcher reports them. The
//! children are this program itself, run with `--child-exit 3` and
//! `--child-sleep`, so it needs no shell and runs on every platform.
//!
//! ```text
//! cargo run --example process_wait
//! ```

// Not built on WASI, which has no processes.
#![cfg_attr(target_os = "wasi", no_main)]
#![cfg(not(target_os = "wasi"))]

use std::cell::RefCell;
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode, ExitStatus};
use std::rc::Rc;

use xev::watcher::Process;
use xev::{Action, Loop, ProcessError, RunMode};

const USAGE: &str = "\
process_wait: waits for two child processes with the Process watcher: one
exits with 3, the other is killed once the first has exited.

usage: process_wait

The backend is the default one; XEV_BACKEND forces io_uring or epoll on Linux.";

/// Prints the usage and exits with status 0 when `-h` or `--help` is given.
fn help_if_asked() {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        std::process::exit(0);
    }
}

/// The signal that killed the child (Unix only).
#[cfg(unix)]
fn signal(s: &ExitStatus) -> Option<i32> {
    s.signal()
}

/// The signal that killed the child (Unix only).
#[cfg(not(unix))]
fn signal(_: &ExitStatus) -> Option<i32> {
    None
}

/// Whether the child was the one killed: by SIGKILL on Unix; on Windows
/// `Child::kill` ends it with exit code 1.
fn was_killed(s: &ExitStatus) -> bool {
    if cfg!(unix) {
        signal(s) == Some(9)
    } else {
        s.code() == Some(1)
    }
}

fn describe(s: &ExitStatus) -> String {
    match (s.code(), signal(s)) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!(
            "killed by signal {sig}{}",
            if core_dumped(s) { " (core dumped)" } else { "" }
        ),
        _ => format!("{s}"),
    }
}

/// Whether the child dumped core (Unix only).
fn core_dumped(s: &ExitStatus) -> bool {
    #[cfg(unix)]
    return s.core_dumped();
    #[cfg(not(unix))]
    return s.code().is_none();
}

fn main() -> ExitCode {
    help_if_asked();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child-exit") => {
            let code = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            std::process::exit(code);
        }
        Some("--child-sleep") => {
            std::thread::sleep(std::time::Duration::from_secs(30));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("process_wait: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> std::io::Result<()> {
    let mut lp = Loop::new(Default::default())?;
    println!("backend: {}", lp.backend_name());
    let me = std::env::current_exe()?;
    let exits = Command::new(&me).args(["--child-exit", "3"]).spawn()?;
    let sleeper = Rc::new(RefCell::new(
        Command::new(&me).arg("--child-sleep").spawn()?,
    ));
    let p_exit = match Process::from_child(&exits) {
        Ok(p) => p,
        Err(ProcessError::Unsupported) => {
            let _ = sleeper.borrow_mut().kill();
            let _ = sleeper.borrow_mut().wait();
            println!("pidfds are not supported here (Linux < 5.4, or a sandbox); nothing to show");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let p_sleep = Process::from_child(&sleeper.borrow())?;
    println!(
        "spawned pid {} (exits with 3) and pid {} (sleeps 30 s)",
        p_exit.pid(),
        p_sleep.pid()
    );

    let statuses: Rc<RefCell<Vec<(String, ExitStatus)>>> = Rc::default();

    let st = statuses.clone();
    p_sleep.wait(&mut lp, move |_, res| {
        match res {
            Ok(s) => {
                println!("sleeper: {}", describe(&s));
                st.borrow_mut().push(("sleep".into(), s));
            }
            Err(e) => eprintln!("sleeper: {e}"),
        }
        Action::Disarm
    });

    let (st, victim) = (statuses.clone(), sleeper.clone());
    p_exit.wait(&mut lp, move |_, res| {
        match res {
            Ok(s) => {
                println!("exit 3: {}", describe(&s));
                st.borrow_mut().push(("exit".into(), s));
            }
            Err(e) => eprintln!("exit 3: {e}"),
        }
        // Now kill the sleeper (it has not been reaped, so its pid is still
        // its own); its watcher reports how it ended.
        if let Err(e) = victim.borrow_mut().kill() {
            eprintln!("kill: {e}");
        }
        Action::Disarm
    });

    lp.run(RunMode::UntilDone)?;
    for p in [p_exit, p_sleep] {
        p.close(&mut lp, |_, res| {
            if let Err(e) = res {
                eprintln!("close: {e}");
            }
        });
    }
    lp.run(RunMode::UntilDone)?;

    let statuses = statuses.borrow();
    let ok = statuses.len() == 2
        && statuses
            .iter()
            .any(|(n, s)| n == "exit" && s.code() == Some(3))
        && statuses.iter().any(|(n, s)| n == "sleep" && was_killed(s));
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "unexpected statuses: {statuses:?}"
        )))
    }
}
