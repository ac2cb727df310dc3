//! Operations as futures: [`OpFuture`] submits one [`xev::Op`] to the
//! runtime's loop when first polled and resolves to the typed result and
//! the operation (with its buffer) when the loop completes it.
//!
//! Where results wait: a table of slots owned by the runtime (grown to
//! the most operations ever in flight at once, then reused), so that an
//! operation allocates nothing in steady state: the loop recycles the
//! completion's memory (one callback type for every operation), and the
//! slot is reused.
//!
//! Cancellation: dropping an `OpFuture` whose operation is in flight
//! cancels the operation through the loop and abandons its slot. The
//! operation, with its buffer, stays with the loop until the kernel lets
//! go of it; its callback then drops it and frees the slot. No result is
//! delivered twice and no buffer is freed while the kernel may still
//! write to it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use xev::{Action, Id, Op, OpResult};

use crate::runtime::{current, Driver};

/// One operation's place in the slot table.
enum Slot {
    /// Unused (its index is on the free list).
    Free,
    /// In flight; the waker of the future that waits for it.
    Waiting(Option<Waker>),
    /// Finished; waiting for its future to take it.
    Done(OpResult, Op),
    /// Its future was dropped while it was in flight: the callback drops
    /// the result and frees the slot.
    Abandoned,
}

/// The runtime's table of operation slots.
#[derive(Default)]
pub(crate) struct Slots {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

impl Slots {
    fn alloc(&mut self) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Slot::Waiting(None);
                i
            }
            None => {
                self.slots.push(Slot::Waiting(None));
                self.slots.len() - 1
            }
        }
    }

    fn release(&mut self, i: usize) {
        self.slots[i] = Slot::Free;
        self.free.push(i);
    }

    /// Operations in flight or finished but not yet taken.
    pub(crate) fn in_use(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// The loop callback of every operation: stores the result (or, for an
/// abandoned slot, lets it go) and wakes the waiting future.
pub(crate) fn complete(slots: &RefCell<Slots>, i: usize, op: &mut Op, res: OpResult) -> Action {
    let waker = {
        let mut s = slots.borrow_mut();
        match std::mem::replace(&mut s.slots[i], Slot::Free) {
            Slot::Waiting(w) => {
                s.slots[i] = Slot::Done(res, std::mem::replace(op, Op::Noop));
                w
            }
            // The op (and its buffer) is dropped with the completion.
            Slot::Abandoned => {
                s.free.push(i);
                None
            }
            other => {
                // Impossible: one callback per slot use.
                s.slots[i] = other;
                None
            }
        }
    };
    if let Some(w) = waker {
        w.wake();
    }
    Action::Disarm
}

enum State {
    /// Not submitted yet.
    Start(Op),
    /// In flight in slot `slot`, as completion `id`.
    Pending {
        driver: Rc<dyn Driver>,
        slots: Rc<RefCell<Slots>>,
        slot: usize,
        id: Id,
    },
    Done,
}

/// A future for one operation on the current runtime's loop: resolves to
/// the typed result and the operation (with its buffer). Must be polled
/// inside a runtime ([`crate::Runtime::block_on`] or a spawned task).
pub struct OpFuture {
    state: State,
}

impl OpFuture {
    /// An operation that starts when first polled.
    pub fn new(op: Op) -> OpFuture {
        OpFuture {
            state: State::Start(op),
        }
    }
}

impl Future for OpFuture {
    type Output = (OpResult, Op);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(OpResult, Op)> {
        match &mut self.state {
            State::Start(_) => {
                let State::Start(op) = std::mem::replace(&mut self.state, State::Done) else {
                    unreachable!()
                };
                let driver = current();
                let slots = driver.slots();
                let slot = slots.borrow_mut().alloc();
                if let Slot::Waiting(w) = &mut slots.borrow_mut().slots[slot] {
                    *w = Some(cx.waker().clone());
                }
                let id = driver.submit(op, slot);
                self.state = State::Pending {
                    driver,
                    slots,
                    slot,
                    id,
                };
                Poll::Pending
            }
            State::Pending { slots, slot, .. } => {
                let mut s = slots.borrow_mut();
                match &mut s.slots[*slot] {
                    Slot::Waiting(w) => {
                        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                            *w = Some(cx.waker().clone());
                        }
                        Poll::Pending
                    }
                    Slot::Done(..) => {
                        let i = *slot;
                        let Slot::Done(res, op) = std::mem::replace(&mut s.slots[i], Slot::Free)
                        else {
                            unreachable!()
                        };
                        s.free.push(i);
                        drop(s);
                        self.state = State::Done;
                        Poll::Ready((res, op))
                    }
                    Slot::Free | Slot::Abandoned => {
                        panic!("xev-async: an operation's slot was reused while it waited")
                    }
                }
            }
            State::Done => panic!("xev-async: OpFuture polled after it completed"),
        }
    }
}

impl Drop for OpFuture {
    fn drop(&mut self) {
        let State::Pending {
            driver,
            slots,
            slot,
            id,
        } = &self.state
        else {
            return;
        };
        let mut s = slots.borrow_mut();
        match s.slots[*slot] {
            Slot::Done(..) => s.release(*slot),
            _ => {
                s.slots[*slot] = Slot::Abandoned;
                drop(s);
                driver.cancel(*id);
            }
        }
    }
}
