//! Starting a child process under wine: one policy for every place the
//! project starts one (the tests' children, the benchmark's contenders,
//! the C API tests' host programs). Included with `#[path]` where needed.
//!
//! Under wine 8 on a busy machine a `CreateProcess` now and then fails
//! with `ERROR_INTERNAL_ERROR` (1359) and the next attempt succeeds (seen
//! in CI; never reproduced here in hundreds of spawns). This is a
//! workaround for wine, not for anything of the project's.

use std::io;

/// Runs `spawn` (a start of a child process) and returns its result,
/// after trying again, on Windows only and up to four more times, when it
/// failed with an I/O error (as `io_error` finds it in `E`) other than
/// "not found" or "permission denied". Each failure tried again is printed
/// on stderr.
#[allow(dead_code)] // not every includer uses every item
pub fn retry<T, E>(
    mut spawn: impl FnMut() -> Result<T, E>,
    io_error: impl Fn(&E) -> Option<&io::Error>,
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
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
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
#[allow(dead_code)] // not every includer uses every item
pub fn io(e: &io::Error) -> Option<&io::Error> {
    Some(e)
}
