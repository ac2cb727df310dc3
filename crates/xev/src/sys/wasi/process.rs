//! Child processes on WASI: there are none (no `fork`, no `exec`). A
//! process wait is `Unsupported` before it reaches the backend; this is
//! the one check the shared readiness engine names.

/// Whether child `pid` exited: WASI has no child processes, so the answer
/// is always `Unsupported`.
pub(crate) fn proc_exited(_pid: i32) -> Option<i32> {
    Some(crate::error::UNSUPPORTED)
}
