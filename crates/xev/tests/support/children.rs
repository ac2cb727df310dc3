//! Child processes for the process tests: the test binary itself, re-run
//! on one of its `#[ignore]`d helper tests (so no shell is needed, on any
//! platform). The helpers act only when `XEV_TEST_CHILD` is set, which
//! [`command`] does. Included by each test binary that needs it with
//! `#[path]`, as `mod children`.

use std::process::{Child, Command};

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

/// Spawns `cmd`, panicking with the error if it cannot.
///
/// On Windows a failed spawn is tried again, up to four more times, when
/// the error is not "not found" or "permission denied": under wine 8 a
/// `CreateProcess` of the test binary now and then fails with
/// `ERROR_INTERNAL_ERROR` (1359) on a fresh prefix (seen once in CI, never
/// reproduced in hundreds of local runs), and a second attempt succeeds.
/// Each failure is printed on stderr.
#[allow(dead_code)] // not every test binary needs it
pub fn spawn(cmd: &mut Command) -> Child {
    let mut attempt = 1;
    loop {
        match cmd.spawn() {
            Ok(child) => return child,
            Err(e)
                if cfg!(windows)
                    && attempt < 5
                    && !matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                    ) =>
            {
                eprintln!("spawning a child, attempt {attempt}: {e}; trying again");
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("spawning a child ({cmd:?}): {e}"),
        }
    }
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
