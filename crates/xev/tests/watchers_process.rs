//! The process watcher, written once for every platform (IOCP included):
//! exit codes 0 and 42, a killed child, a child that exited before the
//! watch began, and a process that is not ours. The children are this test
//! binary itself, re-run on one of the `#[ignore]`d helper tests below, so
//! no shell is needed. Each test runs on every backend this host can run
//! (`tests/support/harness.rs`).

// The children are reaped by the watcher under test, not by `Child::wait`.
#![allow(clippy::zombie_processes)]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::cell::RefCell;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::rc::Rc;

use xev::backend::Backend;
use xev::generic::{Loop, OwnedLoop};
use xev::watcher::Process;
use xev::{Action, Options, ProcessError, RunMode};

/// Set in the children's environment, so that the helpers act only there.
const CHILD_ENV: &str = "XEV_PROCESS_TEST_CHILD";

/// Child helper: exits with the code in `XEV_PROCESS_TEST_CHILD`.
#[test]
#[ignore = "a child process of the tests below"]
fn child_exit_with_code() {
    if let Ok(code) = std::env::var(CHILD_ENV) {
        std::process::exit(code.parse().expect("an exit code"));
    }
}

/// Child helper: sleeps (until killed).
#[test]
#[ignore = "a child process of the tests below"]
fn child_sleep() {
    if std::env::var(CHILD_ENV).is_ok() {
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}

/// Spawns this binary running helper `name`, with `code` in its
/// environment and its stdout piped.
fn spawn(name: &str, code: i32) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", name, "--test-threads=1", "-q"])
        .env(CHILD_ENV, code.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning a child")
}

fn new_loop<B: Backend>() -> OwnedLoop<B> {
    Loop::<B>::new(Options::default()).expect("creating the loop")
}

/// Watches `child` and runs the loop until its wait reports; returns the
/// result (after closing the watcher), or `None` when this host refuses
/// process watching (Linux without pidfds).
fn watch<B: Backend>(lp: &mut Loop<B>, child: &Child) -> Option<Result<ExitStatus, ProcessError>> {
    let p = match Process::<B>::from_child(child) {
        Ok(p) => p,
        Err(ProcessError::Unsupported) => return None,
        Err(e) => panic!("watching the child: {e}"),
    };
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    p.wait(lp, move |_, res| {
        *g.borrow_mut() = Some(res);
        Action::Disarm
    });
    lp.run(RunMode::UntilDone).unwrap();
    let res = got.borrow_mut().take().expect("the wait reported");
    if let Ok(status) = &res {
        assert_eq!(
            p.exit_status().as_ref(),
            Some(status),
            "the watcher keeps it"
        );
    }
    p.close(lp, |_, r| r.expect("close"));
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(lp.active(), 0);
    Some(res)
}

for_each_backend!(
    /// Exit codes 0 and 42 come back as the child's exit status.
    fn process_exit_codes<B: Backend>() {
        let mut lp = new_loop::<B>();
        for code in [0, 42] {
            let child = spawn("child_exit_with_code", code);
            let Some(res) = watch(&mut lp, &child) else {
                return;
            };
            assert_eq!(res.expect("the wait").code(), Some(code));
        }
    }

    /// A killed child reports a failed exit (a signal on Unix, exit code
    /// 1 from `TerminateProcess` on Windows).
    fn process_killed<B: Backend>() {
        let mut lp = new_loop::<B>();
        let mut child = spawn("child_sleep", 0);
        let p = match Process::<B>::from_child(&child) {
            Ok(p) => p,
            Err(ProcessError::Unsupported) => return,
            Err(e) => panic!("{e}"),
        };
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        p.wait(&mut lp, move |_, res| {
            *g.borrow_mut() = Some(res);
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap();
        assert!(got.borrow().is_none(), "the sleeper is still running");
        child.kill().expect("kill");
        lp.run(RunMode::UntilDone).unwrap();
        let status = got.borrow_mut().take().unwrap().expect("the wait");
        assert!(!status.success(), "{status:?}");
        #[cfg(unix)]
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        #[cfg(windows)]
        assert_eq!(status.code(), Some(1));
        p.close(&mut lp, |_, r| r.expect("close"));
        lp.run(RunMode::UntilDone).unwrap();
    }

    /// A child that exited before the watch began (its stdout reached end
    /// of file, it is not reaped yet) reports at once.
    fn process_exited_before_the_watch<B: Backend>() {
        let mut lp = new_loop::<B>();
        let mut child = spawn("child_exit_with_code", 7);
        let mut out = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        let Some(res) = watch(&mut lp, &child) else {
            return;
        };
        assert_eq!(res.expect("the wait").code(), Some(7));
    }

    /// A process that is not ours (pid 1: init on Unix, none on Windows)
    /// is a typed error, not a panic or a hang.
    fn process_not_ours<B: Backend>() {
        match Process::<B>::new(1) {
            Err(ProcessError::NotChild) | Err(ProcessError::Unsupported) => {}
            other => panic!("expected NotChild, got {other:?}"),
        }
    }
);
