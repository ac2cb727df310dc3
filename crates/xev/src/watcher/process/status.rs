//! What a process wait hands its callback, the same on every platform: the
//! exit status (cached once known, since a child can be reaped only once),
//! from the loop's result and the platform's way of reaping.

use std::cell::Cell;
use std::process::ExitStatus;

use crate::error::ProcessError;
use crate::op::{unexpected, OpResult};

/// The result of a wait whose completion ended with `res`, the same on
/// every platform: the cached status once known, else what `reap` (the
/// platform's reaping) gives, cached. `None` when the loop reported the
/// exit but `reap` found the child not reapable yet (`Ok(None)`); the
/// platform decides what that means.
pub(super) fn wait_result(
    res: OpResult,
    status: &Cell<Option<ExitStatus>>,
    reap: impl FnOnce() -> Result<Option<ExitStatus>, ProcessError>,
) -> Option<Result<ExitStatus, ProcessError>> {
    Some(match res {
        OpResult::ProcExit(Ok(())) => match status.get() {
            Some(s) => Ok(s),
            None => match reap() {
                Ok(Some(s)) => {
                    status.set(Some(s));
                    Ok(s)
                }
                Ok(None) => return None,
                Err(e) => Err(e),
            },
        },
        // Already reaped by an earlier wait: kqueue then finds no such
        // child; the cached status is the answer.
        OpResult::ProcExit(Err(ProcessError::NotChild)) => status.get().ok_or(ProcessError::NotChild),
        OpResult::ProcExit(Err(e)) => Err(e),
        other => Err(ProcessError::Io(unexpected(&other))),
    })
}
