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

/// Runs `spawn` (a spawn of a child) and returns its result, after
/// trying again, on Windows only and up to four more times, when it failed
/// with an I/O error (as `io_error` finds it in `E`) other than "not found"
/// or "permission denied". Under wine 8 a `CreateProcess` of the test
/// binary now and then fails with `ERROR_INTERNAL_ERROR` (1359) on a fresh
/// prefix (seen once in CI, never in hundreds of local runs), and the next
/// attempt succeeds. Each failure tried again is printed on stderr.
#[allow(dead_code)] // not every test binary needs it
pub fn retry<T, E>(
    mut spawn: impl FnMut() -> Result<T, E>,
    io_error: impl Fn(&E) -> Option<&std::io::Error>,
) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        let e = match spawn() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let transient = io_error(&e).is_some_and(|e| {
            !matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            )
        });
        if !(cfg!(windows) && transient && attempt < 5) {
            return Err(e);
        }
        if let Some(io) = io_error(&e) {
            eprintln!("spawning a child, attempt {attempt}: {io}; trying again");
        }
        attempt += 1;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// An I/O error as itself, for [`retry`] of a spawn that returns one.
#[allow(dead_code)] // not every test binary needs it
pub fn io(e: &std::io::Error) -> Option<&std::io::Error> {
    Some(e)
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
