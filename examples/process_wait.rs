//! Waiting for child processes on an xev loop with the `Process` watcher:
//! one child exits with status 3, another (`sleep 30`) is killed with
//! SIGKILL once the first has been reaped. Both statuses are printed as
//! the watcher reports them.
//!
//! ```text
//! cargo run --example process_wait
//! ```

use std::cell::RefCell;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode, ExitStatus};
use std::rc::Rc;

use xev::watcher::process::Process;
use xev::{Action, Loop, ProcessError, RunMode};

fn describe(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!(
            "killed by signal {sig}{}",
            if s.core_dumped() {
                " (core dumped)"
            } else {
                ""
            }
        ),
        _ => format!("{s}"),
    }
}

fn main() -> ExitCode {
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
    let exits = Command::new("sh").args(["-c", "exit 3"]).spawn()?;
    let sleeper = Rc::new(RefCell::new(Command::new("sleep").arg("30").spawn()?));
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
        "spawned pid {} (sh -c 'exit 3') and pid {} (sleep 30)",
        p_exit.pid(),
        p_sleep.pid()
    );

    let statuses: Rc<RefCell<Vec<(String, ExitStatus)>>> = Rc::default();

    let st = statuses.clone();
    p_sleep.wait(&mut lp, move |_, res| {
        match res {
            Ok(s) => {
                println!("sleep 30: {}", describe(&s));
                st.borrow_mut().push(("sleep".into(), s));
            }
            Err(e) => eprintln!("sleep 30: {e}"),
        }
        Action::Disarm
    });

    let (st, victim) = (statuses.clone(), sleeper.clone());
    p_exit.wait(&mut lp, move |_, res| {
        match res {
            Ok(s) => {
                println!("sh -c 'exit 3': {}", describe(&s));
                st.borrow_mut().push(("sh".into(), s));
            }
            Err(e) => eprintln!("sh: {e}"),
        }
        // Now kill the sleeper (it has not been reaped, so its pid is still
        // its own); its watcher reports the signal.
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
            .any(|(n, s)| n == "sh" && s.code() == Some(3))
        && statuses
            .iter()
            .any(|(n, s)| n == "sleep" && s.signal() == Some(libc::SIGKILL));
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "unexpected statuses: {statuses:?}"
        )))
    }
}
