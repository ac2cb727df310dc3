//! Child processes for the process tests: the test binary itself, re-run
//! on one of its `#[ignore]`d helper tests (so no shell is needed, on any
//! platform). The helpers act only when `XEV_TEST_CHILD` is set, which
//! [`command`] does. Included by each test binary that needs it with
//! `#[path]`, as `mod children`.

use std::process::{Child, Command};

#[path = "spawn_retry.rs"]
mod spawn_retry;
pub use spawn_retry::{io, retry};

/// Set in the children's environment: the helpers act only there.
pub const CHILD_ENV: &str = "XEV_TEST_CHILD";

/// Child helper: exits with the code in `XEV_TEST_CHILD`.
#[test]
#[ignore = "a child process of the process tests"]
fn child_exit_with_code() {
    if let Ok(code) = std::env::var(CHILD_ENV) {
        std::process::exit(code.parse().expect("an exit code"));
    }
}

/// Child helper: sleeps (until killed; two minutes at most).
#[test]
#[ignore = "a child process of the process tests"]
fn child_sleep() {
    if std::env::var(CHILD_ENV).is_ok() {
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}

/// The command that runs this binary on helper test `name` (its path in
/// the binary), with `arg` in the child's `XEV_TEST_CHILD`.
pub fn command(name: &str, arg: i32) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args(["--ignored", "--exact", name, "--test-threads=1", "-q"])
        .env(CHILD_ENV, arg.to_string());
    cmd
}

/// The I/O error inside a process watcher's spawn error, for [`retry`].
#[allow(dead_code)] // not every test binary needs it
pub fn process_io(e: &xev::ProcessError) -> Option<&std::io::Error> {
    match e {
        xev::ProcessError::Io(e) => Some(e),
        _ => None,
    }
}

/// Spawns `cmd` (through [`retry`]), panicking with the error if it
/// cannot.
#[allow(dead_code)] // not every test binary needs it
pub fn spawn(cmd: &mut Command) -> Child {
    retry(|| cmd.spawn(), io).unwrap_or_else(|e| panic!("spawning a child ({cmd:?}): {e}"))
}

/// A child that exits with `code`.
#[allow(dead_code)] // not every test binary needs each
pub fn exiting(code: i32) -> Command {
    command("children::child_exit_with_code", code)
}

/// A child that sleeps until killed.
#[allow(dead_code)] // not every test binary needs each
pub fn sleeping() -> Command {
    command("children::child_sleep", 0)
}

/// Checks that `status` is that of a child killed by `Process::kill` or
/// `Child::kill`: SIGKILL on Unix, exit code 1 on Windows
/// (`TerminateProcess`).
#[allow(dead_code)] // not every test binary needs it
pub fn assert_killed(status: &std::process::ExitStatus) {
    assert!(!status.success(), "{status:?}");
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(status),
        Some(9),
        "{status:?}"
    );
    #[cfg(windows)]
    assert_eq!(status.code(), Some(1), "{status:?}");
}
