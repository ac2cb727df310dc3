//! Adding a watcher's requests to the loop, shared by the descriptor
//! watchers: the reads and writes of [`Stream`](super::Stream),
//! [`Tcp`](super::Tcp) and [`File`](super::File) (one completion
//! each, tracked by the watcher's descriptor, its callback given the buffer
//! and a typed result; positional ones continue at the next offset on
//! rearm), and [`unexpected`], the one error every watcher reports for a
//! result of the wrong kind.


use super::shared_fd::FdOwner;
use crate::backend::Backend;
use crate::error::{ReadError, WriteError};
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{Op, OpResult};
use crate::op::unexpected;
use crate::record::Action;

/// After a positional operation moved `n` bytes, a rearm continues right
/// after them.
fn advance(op: &mut Op, n: usize) {
    if let Op::Pread { offset, .. } | Op::Pwrite { offset, .. } = op {
        *offset = offset.saturating_add(n as u64);
    }
}

/// Adds a read-family operation of `owner`'s descriptor whose callback gets
/// the buffer and a read result. On [`Action::Rearm`] a positional read
/// continues at `offset + n`.
pub(super) fn add_read<B, F>(lp: &mut Loop<B>, owner: &FdOwner<B>, op: Op, cb: F) -> Id
where
    B: Backend,
    F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, ReadError>) -> Action + 'static,
{
    add_transfer(lp, owner, op, cb, |res| match res {
        OpResult::Read(r) => r,
        other => Err(ReadError::Io(unexpected(&other))),
    })
}

/// Adds a write-family operation of `owner`'s descriptor whose callback
/// gets the buffer and a write result. On [`Action::Rearm`] a positional
/// write continues at `offset + n`.
pub(super) fn add_write<B, F>(lp: &mut Loop<B>, owner: &FdOwner<B>, op: Op, cb: F) -> Id
where
    B: Backend,
    F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, WriteError>) -> Action + 'static,
{
    add_transfer(lp, owner, op, cb, |res| match res {
        OpResult::Write(r) => r,
        other => Err(WriteError::Io(unexpected(&other))),
    })
}

/// The body of [`add_read`] and [`add_write`]: `typed` picks the family's
/// result out of the loop's `OpResult`.
fn add_transfer<B, E, F>(
    lp: &mut Loop<B>,
    owner: &FdOwner<B>,
    op: Op,
    mut cb: F,
    typed: fn(OpResult) -> Result<usize, E>,
) -> Id
where
    B: Backend,
    E: 'static,
    F: FnMut(&mut Loop<B>, &mut Vec<u8>, Result<usize, E>) -> Action + 'static,
{
    owner.track(lp, op, move |mut t| {
        move |lp: &mut Loop<B>, op: &mut Op, res: OpResult| {
            let res = typed(res);
            let n = *res.as_ref().unwrap_or(&0);
            let mut none = Vec::new();
            let action = cb(lp, op.buf_mut().unwrap_or(&mut none), res);
            let action = t.settle(lp, action);
            if action == Action::Rearm {
                advance(op, n);
            }
            action
        }
    })
}
