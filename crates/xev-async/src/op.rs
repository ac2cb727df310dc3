//! Operations as futures: [`OpFuture`] submits one [`xev::Op`] to the
//! runtime's loop when first polled and resolves to the typed result and
//! the operation (with its buffer) when the loop completes it.
//!
//! Where results wait: a table of slots owned by the runtime (grown to
//! the most operations ever in flight at once, then reused), so that an
//! operation allocates nothing in steady state: the loop recycles the
//! completion's memory (one callback type for every operation), and the
//! slot is reused. A slot keeps what its future asked for ([`Outcome`]):
//! the whole result and the operation, or, for transfers, waits and
//! timers, only a count or status that the loop's callback maps from the
//! result. A transfer's future ([`Transfer`]) holds its own buffer while
//! the operation is in flight; other operations lend theirs to the slot.
//!
//! Cancellation: dropping an `OpFuture` whose operation is in flight
//! cancels the operation through the loop and abandons its slot (a
//! transfer's future hands its buffer to the slot as it goes). The
//! operation, with its buffer, stays with the loop until the kernel lets
//! go of it; its callback then drops it and frees the slot. No result is
//! delivered twice and no buffer is freed while the kernel may still
//! write to it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use xev::{Action, Id, Op, OpResult, ReadError};

use crate::buf::{point_read, point_write, read_from, Held, IoBuf, IoBufMut, Lent};
use crate::runtime::{current, Driver};

/// Where a slot's lent buffer sits in the table of lent buffers, if it
/// has one (kept apart so that a slot stays small: timers lend nothing).
type LentAt = Option<u32>;

/// What a finished operation's future wants back: the whole result and
/// the operation, or only a count or status (so that the loop's callback
/// maps the result at once, the operation stays with its completion, and
/// a slot stays small).
#[derive(Clone, Copy)]
pub(crate) enum Want {
    /// The result and the operation ([`OpFuture`]).
    Full,
    /// The result mapped by this function ([`Mapped::map`]).
    Map(fn(OpResult) -> io::Result<usize>),
}

/// One operation's place in the slot table. A buffer lent to the loop
/// for the operation stays (in the lent table) until the loop's callback
/// ran.
enum Slot {
    /// Unused (its index is on the free list).
    Free,
    /// In flight; the waker of the future that waits for it, and what
    /// that future wants back.
    Waiting(Option<Waker>, LentAt, Want),
    /// Finished, for a future that wants the whole result: the result and
    /// the operation wait in the table of results, at the index given.
    Done(u32, LentAt),
    /// Finished, for a future that wants the result mapped (a transfer,
    /// which lends no buffer at the start, or a wait): the count or status.
    Counted(io::Result<usize>),
    /// Its future was dropped while it was in flight: the callback drops
    /// the result and the buffer and frees the slot.
    Abandoned(LentAt),
}

/// What an operation's future takes back when it finishes (one type per
/// [`Want`], so that a transfer's count never travels in a value sized for
/// the whole result).
pub(crate) trait Outcome {
    /// What the future gets.
    type Out;
    /// What the slot keeps for it.
    const WANT: Want;
    /// The outcome of an operation done at once, without the loop.
    fn now(res: OpResult, op: Op, lent: Option<Lent>) -> Self::Out;
    /// Frees the finished slot `i` and returns its outcome.
    fn take(slots: &mut Slots, i: usize) -> Self::Out;
}

/// The result, the operation and the buffer lent at its start, if any.
pub(crate) struct Whole;

impl Outcome for Whole {
    type Out = (OpResult, Op, Option<Lent>);
    const WANT: Want = Want::Full;

    fn now(res: OpResult, op: Op, lent: Option<Lent>) -> Self::Out {
        (res, op, lent)
    }

    fn take(slots: &mut Slots, i: usize) -> Self::Out {
        slots.take_full(i)
    }
}

/// An outcome the loop's callback maps from the result, so that the slot
/// keeps only a count or status.
pub(crate) trait Mapped {
    /// The count or status of `res`.
    fn map(res: OpResult) -> io::Result<usize>;
}

impl<M: Mapped> Outcome for M {
    type Out = io::Result<usize>;
    const WANT: Want = Want::Map(M::map);

    fn now(res: OpResult, _: Op, _: Option<Lent>) -> Self::Out {
        M::map(res)
    }

    fn take(slots: &mut Slots, i: usize) -> Self::Out {
        slots.take_count(i)
    }
}

/// A read family's count ([`read_result`]).
pub(crate) struct ReadCount;

impl Mapped for ReadCount {
    fn map(res: OpResult) -> io::Result<usize> {
        read_result(res)
    }
}

/// A write family's count ([`write_result`]).
pub(crate) struct WriteCount;

impl Mapped for WriteCount {
    fn map(res: OpResult) -> io::Result<usize> {
        write_result(res)
    }
}

/// An async wait's status (`Ok(0)` once notified).
pub(crate) struct AsyncDone;

impl Mapped for AsyncDone {
    fn map(res: OpResult) -> io::Result<usize> {
        match res {
            OpResult::Async(r) => r.map(|()| 0).map_err(Into::into),
            other => Err(unexpected(&other)),
        }
    }
}

/// A table whose freed places are reused: it grows to the most entries
/// ever in use at once.
pub(crate) struct Table<T> {
    items: Vec<T>,
    free: Vec<usize>,
}

impl<T> Default for Table<T> {
    fn default() -> Table<T> {
        Table {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Table<T> {
    /// Puts `v` in a free place (or a new one) and returns where.
    pub(crate) fn insert(&mut self, v: T) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.items[i] = v;
                i
            }
            None => {
                self.items.push(v);
                self.items.len() - 1
            }
        }
    }

    /// Frees place `i`, leaving `empty` there, and returns what it held.
    pub(crate) fn remove(&mut self, i: usize, empty: T) -> T {
        self.free.push(i);
        std::mem::replace(&mut self.items[i], empty)
    }

    pub(crate) fn in_use(&self) -> usize {
        self.items.len() - self.free.len()
    }
}

impl<T> std::ops::Index<usize> for Table<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.items[i]
    }
}

impl<T> std::ops::IndexMut<usize> for Table<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.items[i]
    }
}

/// An index into one of the runtime's tables, as a slot keeps it.
fn small_index(i: usize) -> u32 {
    u32::try_from(i).expect("xev-async: fewer than 2^32 operations at once")
}

/// What [`Slots::release`] took out of a slot, for the caller to drop
/// once the table is no longer borrowed (a buffer's `Drop` may panic).
type Released = (Slot, Option<Lent>, Option<(OpResult, Op)>);

/// The runtime's table of operation slots, and of the buffers lent and
/// the whole results kept for them.
#[derive(Default)]
pub(crate) struct Slots {
    slots: Table<Slot>,
    lents: Table<Option<Lent>>,
    results: Table<Option<(OpResult, Op)>>,
}

impl Slots {
    fn alloc(&mut self, waker: Waker, lent: Option<Lent>, want: Want) -> usize {
        let at = lent.map(|l| small_index(self.lents.insert(Some(l))));
        self.slots.insert(Slot::Waiting(Some(waker), at, want))
    }

    /// Takes the lent buffer at `at` out of the table.
    fn take_lent(&mut self, at: LentAt) -> Option<Lent> {
        self.lents.remove(at? as usize, None)
    }

    /// Frees slot `i` and returns what it held, with its lent buffer and
    /// kept result, for the caller to drop once the table is no longer
    /// borrowed.
    fn release(&mut self, i: usize) -> Released {
        let slot = self.slots.remove(i, Slot::Free);
        let (lent, result) = match slot {
            Slot::Done(k, at) => (self.take_lent(at), self.results.remove(k as usize, None)),
            Slot::Waiting(_, at, _) | Slot::Abandoned(at) => (self.take_lent(at), None),
            Slot::Counted(_) | Slot::Free => (None, None),
        };
        (slot, lent, result)
    }

    /// Frees the slot `i`, finished with its whole result kept, and
    /// returns the result, the operation and the lent buffer.
    ///
    /// # Panics
    ///
    /// If slot `i` did not finish so (a future asks for what it wanted).
    fn take_full(&mut self, i: usize) -> (OpResult, Op, Option<Lent>) {
        let Slot::Done(k, at) = self.slots.remove(i, Slot::Free) else {
            panic!("xev-async: a slot was taken for a whole result it did not keep")
        };
        let (res, op) = self
            .results
            .remove(k as usize, None)
            .expect("xev-async: a finished slot keeps its result");
        (res, op, self.take_lent(at))
    }

    /// Frees the slot `i`, finished with a count kept, and returns it.
    ///
    /// # Panics
    ///
    /// If slot `i` did not finish so.
    fn take_count(&mut self, i: usize) -> io::Result<usize> {
        let Slot::Counted(n) = self.slots.remove(i, Slot::Free) else {
            panic!("xev-async: a slot was taken for a count it did not keep")
        };
        n
    }

    /// Points `op`'s buffers at slot `i`'s lent buffer, if it has one.
    fn fill(&mut self, i: usize, op: &mut Op) {
        if let Slot::Waiting(_, Some(at), _) = self.slots[i] {
            if let Some(lent) = &mut self.lents[at as usize] {
                lent.fill(op);
            }
        }
    }

    /// Operations in flight or finished but not yet taken.
    pub(crate) fn in_use(&self) -> usize {
        self.slots.in_use()
    }
}

/// The loop callback of every operation: stores the result (whole, or
/// mapped to a count; the operation then stays with its completion) or,
/// for an abandoned slot, lets it go, and wakes the waiting future.
pub(crate) fn complete(slots: &RefCell<Slots>, i: usize, op: &mut Op, res: OpResult) -> Action {
    let mut s = slots.borrow_mut();
    match &mut s.slots[i] {
        Slot::Waiting(w, at, want) => {
            let (w, at, want) = (w.take(), *at, *want);
            let mut lent = None;
            s.slots[i] = match want {
                Want::Full => {
                    let k = s
                        .results
                        .insert(Some((res, std::mem::replace(op, Op::Noop))));
                    Slot::Done(small_index(k), at)
                }
                // These lend no buffer at the start (were one lent, it is
                // dropped here: the loop is done with it).
                Want::Map(map) => {
                    lent = s.take_lent(at);
                    Slot::Counted(map(res))
                }
            };
            drop(s);
            drop(lent);
            if let Some(w) = w {
                w.wake();
            }
        }
        // The op is dropped with the completion, the lent buffer here,
        // once the slot is free and the table no longer borrowed.
        Slot::Abandoned(_) => {
            let released = s.release(i);
            drop(s);
            drop(released);
        }
        // Impossible: one callback per slot use.
        Slot::Free | Slot::Done(..) | Slot::Counted(..) => {}
    }
    Action::Disarm
}

enum State {
    /// Not submitted yet.
    Start(Op),
    /// In flight in slot `slot` of `driver`'s table, as completion `id`.
    Pending {
        driver: Rc<dyn Driver>,
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

    /// Polls the operation; when it starts, `lent` (if any) goes into its
    /// slot and becomes the operation's buffer (the core one in the op is
    /// replaced). A lending future keeps its buffer beside this one, so
    /// that an `OpFuture` without one (a timer) stays small.
    /// `seen`: the socket's last runtime, for [`Driver::submit`].
    pub(crate) fn poll_op<T: Outcome>(
        &mut self,
        cx: &mut Context<'_>,
        lent: &mut Option<Lent>,
        seen: Option<&Cell<u64>>,
    ) -> Poll<T::Out> {
        match &mut self.state {
            State::Start(..) => {
                let State::Start(mut op) = std::mem::replace(&mut self.state, State::Done) else {
                    unreachable!()
                };
                let driver = current();
                let mut s = driver.slots().borrow_mut();
                let slot = s.alloc(cx.waker().clone(), lent.take(), T::WANT);
                // The region is taken once the buffer sits in its slot.
                s.fill(slot, &mut op);
                drop(s);
                let id = driver.submit(op, slot, seen);
                self.state = State::Pending { driver, slot, id };
                Poll::Pending
            }
            State::Pending { driver, slot, .. } => {
                let mut s = driver.slots().borrow_mut();
                match &mut s.slots[*slot] {
                    Slot::Waiting(w, _, _) => {
                        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                            *w = Some(cx.waker().clone());
                        }
                        Poll::Pending
                    }
                    Slot::Done(..) | Slot::Counted(..) => {
                        let done = T::take(&mut s, *slot);
                        drop(s);
                        self.state = State::Done;
                        Poll::Ready(done)
                    }
                    Slot::Free | Slot::Abandoned(_) => {
                        panic!("xev-async: an operation's slot was reused while it waited")
                    }
                }
            }
            State::Done => panic!("xev-async: OpFuture polled after it completed"),
        }
    }
}

impl OpFuture {
    /// Polls the operation of a socket whose last runtime is `seen` (see
    /// [`SocketHints`]).
    pub(crate) fn poll_via(
        &mut self,
        cx: &mut Context<'_>,
        seen: Option<&Cell<u64>>,
    ) -> Poll<(OpResult, Op)> {
        self.poll_op::<Whole>(cx, &mut None, seen)
            .map(|(res, op, _)| (res, op))
    }
}

impl Future for OpFuture {
    type Output = (OpResult, Op);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(OpResult, Op)> {
        self.poll_via(cx, None)
    }
}

thread_local! {
    /// Socket transfers the task being polled may still complete at once
    /// (see [`Eager`]): refilled by the runtime before it polls a task (or
    /// the main future), zero outside a runtime.
    static EAGER_BUDGET: Cell<u32> = const { Cell::new(0) };
    /// Whether the task being polled leaves its sends to the loop instead
    /// of trying them at once (see [`set_eager_budget`]).
    static SENDS_JOIN_BATCH: Cell<bool> = const { Cell::new(false) };
}

/// How many socket transfers one poll of a task may complete at once
/// (without the loop): a task whose sockets are always ready still waits
/// for the loop after that many, so the loop, its timers and the other
/// tasks run.
const EAGER_BUDGET_PER_TURN: u32 = 128;

/// Takes one from the eager budget of the task being polled: whether an
/// operation may complete at once, without the loop.
pub(crate) fn spend_eager_budget() -> bool {
    EAGER_BUDGET.with(|b| {
        let left = b.get();
        b.set(left.saturating_sub(1));
        left > 0
    })
}

/// Refills (`on`) or empties this thread's eager budget; the runtime
/// calls it before it polls a task and when it stops running.
/// `join_batch`: a send that answers a receive (see
/// [`SocketHints::writing`]) is not tried at once but goes to the loop, to
/// be submitted in one batch with the other tasks' operations of this
/// round. The runtime asks for it on a backend that submits in batches
/// (io_uring: one `io_uring_enter` for every entry of a turn) when more
/// than one task runs in the round: there a send tried at once is one
/// more syscall, while alone (a single request / response peer) it saves
/// a turn of the loop.
pub(crate) fn set_eager_budget(on: bool, join_batch: bool) {
    EAGER_BUDGET.with(|b| b.set(if on { EAGER_BUDGET_PER_TURN } else { 0 }));
    SENDS_JOIN_BATCH.with(|j| j.set(join_batch));
}

/// What a socket's operations learn about it as they run: whether each
/// direction is worth trying at once, and the runtime it last went to.
#[derive(Default)]
pub(crate) struct SocketHints {
    read: Eager,
    write: Eager,
    /// The socket's last operation was a send: a send after it is tried at
    /// once even in a batching round (a sender that streams would
    /// otherwise send once per turn of the loop).
    sending: Cell<bool>,
    /// The runtime (its number) this socket's last operation went to; 0
    /// for none. While the socket object lives its descriptor stays open,
    /// so a later operation sent to the same runtime can vouch for it
    /// ([`xev::Loop::vouch`]).
    seen: Cell<u64>,
}

impl SocketHints {
    /// The runtime this socket last went to (for polling an operation's
    /// future, [`OpFuture::poll_via`]).
    pub(crate) fn seen(&self) -> &Cell<u64> {
        &self.seen
    }

    /// For an operation that receives.
    pub(crate) fn reading(&self) -> Via<'_> {
        self.sending.set(false);
        Via {
            eager: Some(&self.read),
            seen: &self.seen,
        }
    }

    /// For an operation that sends. Not tried at once when it answers a
    /// receive (the socket's last operation) while the task's sends join
    /// the loop's batch (see [`set_eager_budget`]).
    pub(crate) fn writing(&self) -> Via<'_> {
        let answer = !self.sending.replace(true);
        let join = answer && SENDS_JOIN_BATCH.with(Cell::get);
        Via {
            eager: (!join).then_some(&self.write),
            seen: &self.seen,
        }
    }
}

/// A socket operation's hints (see [`SocketHints`]); `eager` is `None`
/// for an operation already tried at once.
#[derive(Clone, Copy)]
pub(crate) struct Via<'a> {
    eager: Option<&'a Eager>,
    seen: &'a Cell<u64>,
}

impl<'a> Via<'a> {
    /// Runs `call` (one attempt; `None`: the socket was not ready) if
    /// trying at once is worth it (see [`Eager`]), and records what it
    /// found: its result, or `None` (not tried, or not ready) to go
    /// through the loop.
    fn run<R>(self, call: impl FnOnce() -> Option<R>) -> Option<R> {
        let eager = self.eager.filter(|e| e.should_try())?;
        let res = call();
        eager.found(res.is_some());
        res
    }

    /// Runs `call`, one non-blocking socket call, if trying at once is
    /// worth it (see [`Eager`]): its result, or `None` (not tried, or the
    /// socket was not ready) to go through the loop, with [`Via::tried`].
    /// The socket types call `socket2` directly here, which costs less
    /// than a core operation; the results are those the loop would give.
    pub(crate) fn attempt<R>(self, call: impl FnOnce() -> io::Result<R>) -> Option<io::Result<R>> {
        self.run(|| {
            let res = call();
            let ready = !matches!(
                res.as_ref().map_err(io::Error::kind),
                Err(io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
            );
            ready.then_some(res)
        })
    }

    /// Starts `op` (an operation with its own buffer, on this socket):
    /// done at once when that is worth it and the socket is ready
    /// ([`xev::Op::try_now`]), else submitted to the loop and polled once.
    /// `Err`: the operation's future, still waiting.
    #[cfg_attr(not(any(feature = "futures-io", feature = "hyper")), allow(dead_code))]
    pub(crate) fn start(self, op: Op, cx: &mut Context<'_>) -> Result<(OpResult, Op), OpFuture> {
        start_op::<Whole>(op, &mut None, Some(self), cx).map(|(res, op, _)| (res, op))
    }

    /// The same hints for the operation that goes to the loop after an
    /// [`Via::attempt`] (it is not tried again).
    pub(crate) fn tried(self) -> Via<'a> {
        Via {
            eager: None,
            seen: self.seen,
        }
    }
}

/// Whether one direction of a socket is worth trying at once, before its
/// operation goes to the loop ([`xev::Op::try_now`]: Unix only; a no-op
/// elsewhere). A transfer that found the socket ready keeps the next one
/// trying; one that found it not ready skips the next 1, 2, 4, .. up to 64
/// attempts, so that a socket whose data is never there yet (a request /
/// response peer) pays at most an occasional failed syscall, while one
/// whose data is usually there (a datagram sent to itself, a send into a
/// socket buffer with room, a pipelining client) saves a turn of the loop
/// per transfer. Results are the same either way.
#[derive(Default)]
struct Eager {
    skip: Cell<u8>,
    backoff: Cell<u8>,
}

impl Eager {
    /// Whether to try now (and, if so, takes one from the budget).
    fn should_try(&self) -> bool {
        if !cfg!(unix) {
            return false;
        }
        let skip = self.skip.get();
        if skip > 0 {
            self.skip.set(skip - 1);
            return false;
        }
        spend_eager_budget()
    }

    /// Records what an attempt found.
    fn found(&self, ready: bool) {
        if ready {
            self.backoff.set(0);
        } else {
            let b = (self.backoff.get().saturating_mul(2)).clamp(1, 64);
            self.backoff.set(b);
            self.skip.set(b);
        }
    }
}

/// Starts `op`, with `lent` (if any; taken) as its buffer: done at once when it
/// is a socket's (`via`) and trying at once is worth it and finds the
/// socket ready ([`xev::Op::try_now`], see [`Eager`]), else submitted to the
/// loop (the buffer goes into the operation's slot) and polled once.
/// `Err`: the operation's future, still waiting.
// Inlined: every transfer's first poll comes here; as a call it cost 1.2%
// more instructions on ping-pongs (callgrind).
#[inline(always)]
fn start_op<T: Outcome>(
    mut op: Op,
    lent: &mut Option<Lent>,
    via: Option<Via<'_>>,
    cx: &mut Context<'_>,
) -> Result<T::Out, OpFuture> {
    let now = via.and_then(|v| {
        v.run(|| {
            if let Some(l) = lent {
                l.fill(&mut op);
            }
            op.try_now()
        })
    });
    if let Some(res) = now {
        return Ok(T::now(res, op, lent.take()));
    }
    let mut fut = OpFuture::new(op);
    match fut.poll_op::<T>(cx, lent, via.map(|v| v.seen)) {
        Poll::Ready(done) => Ok(done),
        Poll::Pending => Err(fut),
    }
}

/// Runs `op` with `lent` as its buffer: the result, the operation, and
/// the buffer back. A socket operation (`via`) is first tried at once
/// when that is worth it (see [`start_op`]).
async fn lend<B: 'static>(op: Op, lent: Lent, via: Option<Via<'_>>) -> (OpResult, Op, B) {
    let mut first = Some((op, lent));
    let mut waiting: Option<OpFuture> = None;
    let (res, op, lent) = std::future::poll_fn(|cx| match (first.take(), &mut waiting) {
        (Some((op, lent)), _) => match start_op::<Whole>(op, &mut Some(lent), via, cx) {
            Ok(done) => Poll::Ready(done),
            Err(fut) => {
                waiting = Some(fut);
                Poll::Pending
            }
        },
        (None, Some(fut)) => fut.poll_op::<Whole>(cx, &mut None, via.map(|v| v.seen)),
        (None, None) => unreachable!("started on the first poll"),
    })
    .await;
    let b = lent
        .and_then(Lent::take)
        .expect("xev-async: a lent buffer comes back with its operation");
    (res, op, b)
}

/// Runs the write family `op` (its buffer is replaced) from `buf`'s
/// initialized bytes from offset `from` on: the result, the operation, and
/// the buffer back.
pub(crate) async fn lend_write<B: IoBuf>(
    op: Op,
    buf: B,
    from: usize,
    via: Option<Via<'_>>,
) -> (OpResult, Op, B) {
    lend(op, Lent::for_write(buf, from), via).await
}

/// Runs the read family `op` (its buffer is replaced) into `buf` from
/// [`read_from`]`(buf, from)` to its end (`None`: from its read start, see
/// [`IoBufMut::read_start`]); a successful read of `n` bytes marks them
/// initialized. A stream read with no room completes at once with a
/// count of 0, without reaching the loop. The result, the operation, and the
/// buffer back.
pub(crate) async fn lend_read<B: IoBufMut>(
    op: Op,
    buf: B,
    from: Option<usize>,
    via: Option<Via<'_>>,
) -> (OpResult, Op, B) {
    let start = read_from(&buf, from);
    if <Reading as Dir<B>>::at_once(&buf, start, &op).is_some() {
        return (OpResult::Read(Ok(0)), op, buf);
    }
    let (res, op, mut b) = lend::<B>(op, Lent::for_read(buf, from), via).await;
    // SAFETY: the read's region was `b`'s bytes from `start` to its end.
    unsafe { mark_read(std::iter::once((start, &mut b)), &res) };
    (res, op, b)
}

impl OpFuture {
    /// Lets the operation go: a finished one's result (and `lent`) is
    /// dropped; one in flight is canceled, and its slot keeps `lent` (the
    /// buffer its operation uses, held by the caller until now) with any
    /// buffer lent at its start, until the loop's callback.
    fn abandon(mut self, lent: Option<Lent>) {
        self.let_go(lent);
    }

    /// [`OpFuture::abandon`], for a future that may also have not started
    /// or have finished (nothing to do then: checked inline, since every
    /// finished transfer's drop comes here).
    #[inline]
    fn let_go(&mut self, lent: Option<Lent>) {
        if matches!(self.state, State::Pending { .. }) {
            self.let_go_pending(lent);
        }
    }

    fn let_go_pending(&mut self, lent: Option<Lent>) {
        let State::Pending { driver, slot, id } = std::mem::replace(&mut self.state, State::Done)
        else {
            return;
        };
        let mut s = driver.slots().borrow_mut();
        match &mut s.slots[slot] {
            Slot::Done(..) | Slot::Counted(..) => {
                let done = s.release(slot);
                drop(s);
                drop(done);
                drop(lent);
            }
            Slot::Waiting(w, at, _) => {
                let w = w.take();
                // A slot lends at most one buffer: either at the start or
                // here (a transfer's, held by its future until now).
                let at = match (*at, lent) {
                    (Some(at), None) => Some(at),
                    (None, Some(l)) => Some(small_index(s.lents.insert(Some(l)))),
                    (None, None) => None,
                    // Impossible (no future lends twice); were it to
                    // happen, the buffer is leaked rather than freed while
                    // the kernel may use it.
                    (Some(at), Some(l)) => {
                        std::mem::forget(l);
                        Some(at)
                    }
                };
                s.slots[slot] = Slot::Abandoned(at);
                drop(s);
                // A waker's drop runs its owner's code: not while the
                // table is borrowed.
                drop(w);
                driver.cancel(id);
            }
            Slot::Free | Slot::Abandoned(_) => {
                drop(s);
                drop(lent);
            }
        }
    }
}

impl Drop for OpFuture {
    fn drop(&mut self) {
        self.let_go(None);
    }
}

/// One direction of a single-buffer transfer ([`Transfer`]): how its
/// region is found, how the buffer is lent, and how the result maps to a
/// count.
pub(crate) trait Dir<B> {
    /// The count the loop keeps for the transfer's future.
    type Count: Outcome<Out = io::Result<usize>>;
    /// Where the transfer's region starts in `buf`, asked to start at
    /// `from` (`None`: the direction's default).
    fn start(buf: &B, from: Option<usize>) -> usize;
    /// The outcome without any call, if there is nothing to transfer and
    /// nothing to wait for (a stream read with no room).
    fn at_once(buf: &B, start: usize, op: &Op) -> Option<io::Result<usize>>;
    /// `buf` lent to the loop for `op`'s region (by a transfer dropped
    /// while its operation is in flight).
    fn lend(buf: Held<B>, from: Option<usize>) -> Lent;
    /// Points `op`'s buffer at `buf`'s region from `start`.
    ///
    /// # Safety
    ///
    /// `buf` is held until the loop is done with `op` (see
    /// [`point_read`]).
    unsafe fn point(buf: &mut B, start: usize, op: &mut Op);
    /// Marks the bytes a read wrote initialized (a write has nothing to
    /// do).
    ///
    /// # Safety
    ///
    /// `res` is the count of the operation whose region was `buf`'s bytes
    /// from `start` to its end (a read) or its initialized bytes from
    /// `start` (a write).
    unsafe fn finish(res: &io::Result<usize>, start: usize, buf: &mut B);
}

/// Reads into a buffer's read region ([`read_from`]).
pub(crate) struct Reading;

impl<B: IoBufMut> Dir<B> for Reading {
    type Count = ReadCount;

    fn start(buf: &B, from: Option<usize>) -> usize {
        read_from(buf, from)
    }

    fn at_once(buf: &B, start: usize, op: &Op) -> Option<io::Result<usize>> {
        // No room in a stream read: nothing to wait for (the kernel would
        // wait for data and then read none). A datagram receive still
        // takes a datagram (cut to nothing), as the kernel does.
        (start == buf.bytes_total() && !matches!(op, Op::Recvmsg(_))).then_some(Ok(0))
    }

    fn lend(buf: Held<B>, from: Option<usize>) -> Lent {
        Lent::for_read_held(buf, from)
    }

    unsafe fn point(buf: &mut B, start: usize, op: &mut Op) {
        // SAFETY: the caller's contract.
        unsafe { point_read(buf, start, op) }
    }

    unsafe fn finish(res: &io::Result<usize>, start: usize, buf: &mut B) {
        if let Ok(n) = res {
            // SAFETY: the read's region was `buf`'s bytes from `start` to
            // its end (the caller's contract), `start` within its
            // initialized bytes ([`read_from`]).
            unsafe { mark_read_count(std::iter::once((start, buf)), *n) };
        }
    }
}

/// Writes a buffer's initialized bytes from an offset on.
pub(crate) struct Writing;

impl<B: IoBuf> Dir<B> for Writing {
    type Count = WriteCount;

    fn start(_: &B, from: Option<usize>) -> usize {
        from.unwrap_or(0)
    }

    fn at_once(_: &B, _: usize, _: &Op) -> Option<io::Result<usize>> {
        None
    }

    fn lend(buf: Held<B>, from: Option<usize>) -> Lent {
        Lent::for_write_held(buf, from.unwrap_or(0))
    }

    unsafe fn point(buf: &mut B, start: usize, op: &mut Op) {
        // SAFETY: the caller's contract.
        unsafe { point_write(buf, start, op) }
    }

    unsafe fn finish(_: &io::Result<usize>, _: usize, _: &mut B) {}
}

/// A socket's own attempt at a transfer, made at once when that is worth
/// it ([`Via::attempt`]): given the buffer and the region's start, one
/// non-blocking call (a read marks the bytes it wrote initialized).
pub(crate) type NoAttempt<B> = fn(&mut B, usize) -> io::Result<usize>;

enum TransferState<B, A> {
    /// Not started.
    Start {
        op: Op,
        buf: B,
        attempt: Option<A>,
    },
    /// In the loop (`fut` has been polled once), the region from `start`:
    /// the future holds the buffer until the operation ends, and lends it
    /// to the operation's slot (with `lend`) if it is dropped first.
    Waiting {
        fut: OpFuture,
        start: usize,
        buf: Held<B>,
        lend: fn(Held<B>, Option<usize>) -> Lent,
    },
    Done,
}

/// A transfer of one owned buffer (a read, receive, write or send)
/// through the loop, resolving to the count and the buffer: one
/// hand-written future for the whole path (an attempt at once, the loop's
/// operation, the count), so that a transfer is polled and moved as one
/// small state. The future itself holds the buffer ([`Held`]) while the
/// operation is in flight and the loop keeps only the count, so that the
/// buffer goes through no table; dropped before the operation ends, the
/// future lends the buffer to the operation's slot, where it stays until
/// the loop is done with it.
pub(crate) struct Transfer<'a, B, D, A = NoAttempt<B>> {
    state: TransferState<B, A>,
    from: Option<usize>,
    via: Option<Via<'a>>,
    _dir: std::marker::PhantomData<D>,
}

// The buffer is never pinned (its bytes stay put when it moves, and it
// moves only as untyped storage while in use: `Held`), nor is anything
// else here.
impl<B, D, A> Unpin for Transfer<'_, B, D, A> {}

impl<'a, B, D, A> Transfer<'a, B, D, A>
where
    B: 'static,
    D: Dir<B>,
    A: FnOnce(&mut B, usize) -> io::Result<usize>,
{
    /// Transfers `buf`'s region (from `from`, see [`Dir::start`]) with
    /// `op` (its buffer is replaced). A socket's transfer (`via`) first
    /// tries `attempt` if given, else the operation itself, at once when
    /// that is worth it (see [`Eager`]).
    pub(crate) fn new(
        op: Op,
        buf: B,
        from: Option<usize>,
        via: Option<Via<'a>>,
        attempt: Option<A>,
    ) -> Self {
        Transfer {
            state: TransferState::Start { op, buf, attempt },
            from,
            via,
            _dir: std::marker::PhantomData,
        }
    }

    /// The count of a finished operation on the region from `start` of
    /// `buf`, and the buffer, with the bytes a read wrote marked
    /// initialized.
    fn finish(r: io::Result<usize>, start: usize, buf: Held<B>) -> (io::Result<usize>, B) {
        let mut b = buf.into_inner();
        // SAFETY: the operation's region was `b`'s from `start` (pointed at
        // by `D::point`), and `r` is its count.
        unsafe { D::finish(&r, start, &mut b) };
        (r, b)
    }
}

impl<B, D, A> Future for Transfer<'_, B, D, A>
where
    B: 'static,
    D: Dir<B>,
    A: FnOnce(&mut B, usize) -> io::Result<usize>,
{
    type Output = (io::Result<usize>, B);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        let seen = me.via.map(|v| v.seen);
        match &mut me.state {
            TransferState::Waiting { fut, .. } => {
                let done = std::task::ready!(fut.poll_op::<D::Count>(cx, &mut None, seen));
                let TransferState::Waiting { start, buf, .. } =
                    std::mem::replace(&mut me.state, TransferState::Done)
                else {
                    unreachable!()
                };
                Poll::Ready(Self::finish(done, start, buf))
            }
            TransferState::Start { .. } => {
                let TransferState::Start {
                    mut op,
                    mut buf,
                    attempt,
                } = std::mem::replace(&mut me.state, TransferState::Done)
                else {
                    unreachable!()
                };
                let start = D::start(&buf, me.from);
                if let Some(r) = D::at_once(&buf, start, &op) {
                    return Poll::Ready((r, buf));
                }
                let mut via = me.via;
                if let (Some(v), Some(attempt)) = (via, attempt) {
                    if let Some(r) = v.attempt(|| attempt(&mut buf, start)) {
                        return Poll::Ready((r, buf));
                    }
                    via = Some(v.tried());
                }
                let mut buf = Held::new(buf);
                // SAFETY: this future holds `buf` until the loop is done
                // with `op`: in `Waiting` while the operation is in flight,
                // then it takes it back; dropped first, it lends it to the
                // operation's slot (`Drop` below; a future leaked instead
                // keeps it forever).
                unsafe { D::point(buf.get_mut(), start, &mut op) };
                match start_op::<D::Count>(op, &mut None, via, cx) {
                    Ok(done) => Poll::Ready(Self::finish(done, start, buf)),
                    Err(fut) => {
                        me.state = TransferState::Waiting {
                            fut,
                            start,
                            buf,
                            lend: D::lend,
                        };
                        Poll::Pending
                    }
                }
            }
            TransferState::Done => panic!("xev-async: a transfer polled after it completed"),
        }
    }
}

impl<B, D, A> Drop for Transfer<'_, B, D, A> {
    fn drop(&mut self) {
        if let TransferState::Waiting { .. } = self.state {
            let TransferState::Waiting { fut, buf, lend, .. } =
                std::mem::replace(&mut self.state, TransferState::Done)
            else {
                unreachable!()
            };
            fut.abandon(Some(lend(buf, self.from)));
        }
    }
}

/// A read family `op` (its buffer is replaced) into `buf` from
/// [`read_from`]`(buf, from)` to its end, with the result as a count (0
/// at end of file, or with no room; see [`Reading`]).
pub(crate) fn read_count<B: IoBufMut>(
    op: Op,
    buf: B,
    from: Option<usize>,
    via: Option<Via<'_>>,
) -> Transfer<'_, B, Reading> {
    Transfer::new(op, buf, from, via, None)
}

/// A write family `op` (its buffer is replaced) from `buf`'s initialized
/// bytes from `from` on, with the result as a count.
pub(crate) fn write_count<B: IoBuf>(
    op: Op,
    buf: B,
    from: usize,
    via: Option<Via<'_>>,
) -> Transfer<'_, B, Writing> {
    Transfer::new(op, buf, Some(from), via, None)
}

/// Runs the vectored message `op` (made with as many buffers as `bufs`;
/// they are replaced) from `bufs`' initialized bytes, skipping the first
/// `from` of the whole: the result, the operation, and the buffers back.
pub(crate) async fn lend_write_vectored<B: IoBuf>(
    op: Op,
    bufs: Vec<B>,
    from: usize,
    via: Option<Via<'_>>,
) -> (OpResult, Op, Vec<B>) {
    lend(op, Lent::for_write_vectored(bufs, from), via).await
}

/// Runs the vectored receive `op` (made with as many buffers as `bufs`;
/// they are replaced) into each buffer's read region in order; the count
/// is spread over them in order and marked initialized. With no room at
/// all it completes at once with a count of 0.
pub(crate) async fn lend_read_vectored<B: IoBufMut>(
    op: Op,
    bufs: Vec<B>,
    via: Option<Via<'_>>,
) -> (OpResult, Op, Vec<B>) {
    let room = |b: &B| b.bytes_total() - b.read_start();
    if bufs.iter().map(room).sum::<usize>() == 0 {
        return (OpResult::RecvFrom(Ok((0, None))), op, bufs);
    }
    let (res, op, mut bufs) = lend::<Vec<B>>(op, Lent::for_read_vectored(bufs), via).await;
    let regions = bufs.iter_mut().map(|b| (b.read_start(), b));
    // SAFETY: the receive's regions were the buffers' bytes from their
    // read starts to their ends, in order.
    unsafe { mark_read(regions, &res) };
    (res, op, bufs)
}

/// After a read family operation whose regions were `bufs`' bytes from
/// each given start to its end, in order: marks the bytes it read
/// initialized, filling the regions in order.
///
/// # Safety
///
/// The regions were those of the operation that gave `res`, and each
/// start is within its buffer's initialized bytes.
unsafe fn mark_read<'a, B: IoBufMut>(
    bufs: impl Iterator<Item = (usize, &'a mut B)>,
    res: &OpResult,
) {
    if let OpResult::Read(Ok(n)) | OpResult::RecvFrom(Ok((n, _))) = res {
        // SAFETY: as this function's own contract.
        unsafe { mark_read_count(bufs, *n) };
    }
}

/// After a read family operation whose regions were `bufs`' bytes from
/// each given start to its end, in order, and which read `n` bytes:
/// marks them initialized, filling the regions in order.
///
/// # Safety
///
/// As [`mark_read`], with `n` the operation's count.
unsafe fn mark_read_count<'a, B: IoBufMut>(
    bufs: impl Iterator<Item = (usize, &'a mut B)>,
    n: usize,
) {
    let mut left = n;
    for (start, b) in bufs {
        let k = left.min(b.bytes_total() - start);
        // SAFETY: the kernel wrote the first `k` bytes of this region (a
        // count never exceeds the regions' total, and fills them in
        // order); the bytes before `start` were initialized already.
        unsafe { b.set_init(start + k) };
        left -= k;
    }
}

/// Maps a read result (of a vectored receive too): end of file is
/// `Ok(0)`.
pub(crate) fn read_result(res: OpResult) -> io::Result<usize> {
    match res {
        OpResult::Read(Ok(n)) | OpResult::RecvFrom(Ok((n, _))) => Ok(n),
        OpResult::Read(Err(ReadError::Eof)) | OpResult::RecvFrom(Err(ReadError::Eof)) => Ok(0),
        OpResult::Read(Err(e)) | OpResult::RecvFrom(Err(e)) => Err(e.into()),
        other => Err(unexpected(&other)),
    }
}

/// Maps a write result.
pub(crate) fn write_result(res: OpResult) -> io::Result<usize> {
    match res {
        OpResult::Write(r) => r.map_err(Into::into),
        other => Err(unexpected(&other)),
    }
}

/// An error for a result of another kind than the operation gives.
pub(crate) fn unexpected(res: &OpResult) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("xev-async: unexpected result {res:?}"),
    )
}
