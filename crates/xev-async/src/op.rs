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

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use xev::{Action, Id, Op, OpResult, ReadError};

use crate::buf::{read_from, IoBuf, IoBufMut, Lent};
use crate::runtime::{current, Driver};

/// Where a slot's lent buffer sits in the table of lent buffers, if it
/// has one (kept apart so that a slot stays small: timers lend nothing).
type LentAt = Option<u32>;

/// One operation's place in the slot table. A buffer lent to the loop
/// for the operation stays (in the lent table) until the loop's callback
/// ran.
enum Slot {
    /// Unused (its index is on the free list).
    Free,
    /// In flight; the waker of the future that waits for it.
    Waiting(Option<Waker>, LentAt),
    /// Finished; waiting for its future to take it.
    Done(OpResult, Op, LentAt),
    /// Its future was dropped while it was in flight: the callback drops
    /// the result and the buffer and frees the slot.
    Abandoned(LentAt),
}

/// A table whose freed places are reused: it grows to the most entries
/// ever in use at once.
struct Table<T> {
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
    fn insert(&mut self, v: T) -> usize {
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
    fn remove(&mut self, i: usize, empty: T) -> T {
        self.free.push(i);
        std::mem::replace(&mut self.items[i], empty)
    }

    fn in_use(&self) -> usize {
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

/// The runtime's table of operation slots, and of the buffers lent for
/// them.
#[derive(Default)]
pub(crate) struct Slots {
    slots: Table<Slot>,
    lents: Table<Option<Lent>>,
}

impl Slots {
    fn alloc(&mut self, waker: Waker, lent: Option<Lent>) -> usize {
        let at = lent.map(|l| {
            let at = self.lents.insert(Some(l));
            u32::try_from(at).expect("fewer than 2^32 lent buffers")
        });
        self.slots.insert(Slot::Waiting(Some(waker), at))
    }

    /// Takes the lent buffer at `at` out of the table.
    fn take_lent(&mut self, at: LentAt) -> Option<Lent> {
        self.lents.remove(at? as usize, None)
    }

    /// Frees slot `i` and returns what it held, with its lent buffer, for
    /// the caller to drop once the table is no longer borrowed (a buffer's
    /// `Drop` may panic).
    fn release(&mut self, i: usize) -> (Slot, Option<Lent>) {
        let slot = self.slots.remove(i, Slot::Free);
        let lent = match slot {
            Slot::Waiting(_, at) | Slot::Done(_, _, at) | Slot::Abandoned(at) => self.take_lent(at),
            Slot::Free => None,
        };
        (slot, lent)
    }

    /// Frees the finished slot `i` and returns its result, operation and
    /// lent buffer.
    ///
    /// # Panics
    ///
    /// If slot `i` is not finished.
    fn take_done(&mut self, i: usize) -> (OpResult, Op, Option<Lent>) {
        let Slot::Done(res, op, at) = self.slots.remove(i, Slot::Free) else {
            panic!("xev-async: an unfinished slot was taken")
        };
        (res, op, self.take_lent(at))
    }

    /// Points `op`'s buffers at slot `i`'s lent buffer, if it has one.
    fn fill(&mut self, i: usize, op: &mut Op) {
        if let Slot::Waiting(_, Some(at)) = self.slots[i] {
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

/// The loop callback of every operation: stores the result (or, for an
/// abandoned slot, lets it go) and wakes the waiting future.
pub(crate) fn complete(slots: &RefCell<Slots>, i: usize, op: &mut Op, res: OpResult) -> Action {
    let mut s = slots.borrow_mut();
    match &mut s.slots[i] {
        Slot::Waiting(w, at) => {
            let (w, at) = (w.take(), *at);
            s.slots[i] = Slot::Done(res, std::mem::replace(op, Op::Noop), at);
            drop(s);
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
        Slot::Free | Slot::Done(..) => {}
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
    fn poll_op(
        &mut self,
        cx: &mut Context<'_>,
        lent: &mut Option<Lent>,
        seen: Option<&Cell<u64>>,
    ) -> Poll<(OpResult, Op, Option<Lent>)> {
        match &mut self.state {
            State::Start(..) => {
                let State::Start(mut op) = std::mem::replace(&mut self.state, State::Done) else {
                    unreachable!()
                };
                let driver = current();
                let mut s = driver.slots().borrow_mut();
                let slot = s.alloc(cx.waker().clone(), lent.take());
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
                    Slot::Waiting(w, _) => {
                        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                            *w = Some(cx.waker().clone());
                        }
                        Poll::Pending
                    }
                    Slot::Done(..) => {
                        let done = s.take_done(*slot);
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
        self.poll_op(cx, &mut None, seen)
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
pub(crate) fn set_eager_budget(on: bool) {
    EAGER_BUDGET.with(|b| b.set(if on { EAGER_BUDGET_PER_TURN } else { 0 }));
}

/// What a socket's operations learn about it as they run: whether each
/// direction is worth trying at once, and the runtime it last went to.
#[derive(Default)]
pub(crate) struct SocketHints {
    read: Eager,
    write: Eager,
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
        Via {
            eager: Some(&self.read),
            seen: &self.seen,
        }
    }

    /// For an operation that sends.
    pub(crate) fn writing(&self) -> Via<'_> {
        Via {
            eager: Some(&self.write),
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
        start_op(op, &mut None, Some(self), cx).map(|(res, op, _)| (res, op))
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
fn start_op(
    mut op: Op,
    lent: &mut Option<Lent>,
    via: Option<Via<'_>>,
    cx: &mut Context<'_>,
) -> Result<(OpResult, Op, Option<Lent>), OpFuture> {
    let now = via.and_then(|v| {
        v.run(|| {
            if let Some(l) = lent {
                l.fill(&mut op);
            }
            op.try_now()
        })
    });
    if let Some(res) = now {
        return Ok((res, op, lent.take()));
    }
    let mut fut = OpFuture::new(op);
    match fut.poll_op(cx, lent, via.map(|v| v.seen)) {
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
        (Some((op, lent)), _) => match start_op(op, &mut Some(lent), via, cx) {
            Ok(done) => Poll::Ready(done),
            Err(fut) => {
                waiting = Some(fut);
                Poll::Pending
            }
        },
        (None, Some(fut)) => fut.poll_op(cx, &mut None, via.map(|v| v.seen)),
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

impl Drop for OpFuture {
    fn drop(&mut self) {
        let State::Pending { driver, slot, id } = &self.state else {
            return;
        };
        let mut s = driver.slots().borrow_mut();
        match &mut s.slots[*slot] {
            Slot::Done(..) => {
                let done = s.release(*slot);
                drop(s);
                drop(done);
            }
            Slot::Waiting(_, at) => {
                let at = *at;
                s.slots[*slot] = Slot::Abandoned(at);
                drop(s);
                driver.cancel(*id);
            }
            Slot::Free | Slot::Abandoned(_) => {}
        }
    }
}

/// One direction of a single-buffer transfer ([`Transfer`]): how its
/// region is found, how the buffer is lent, and how the result maps to a
/// count.
pub(crate) trait Dir<B> {
    /// Where the transfer's region starts in `buf`, asked to start at
    /// `from` (`None`: the direction's default).
    fn start(buf: &B, from: Option<usize>) -> usize;
    /// The outcome without any call, if there is nothing to transfer and
    /// nothing to wait for (a stream read with no room).
    fn at_once(buf: &B, start: usize, op: &Op) -> Option<io::Result<usize>>;
    /// `buf` lent to the loop for `op`'s region.
    fn lend(buf: B, from: Option<usize>) -> Lent;
    /// The count from the loop's result, with the bytes a read wrote
    /// marked initialized.
    ///
    /// # Safety
    ///
    /// `res` is the result of the operation whose region was `buf`'s bytes
    /// from `start` to its end (a read) or its initialized bytes from
    /// `start` (a write).
    unsafe fn finish(res: OpResult, start: usize, buf: &mut B) -> io::Result<usize>;
}

/// Reads into a buffer's read region ([`read_from`]).
pub(crate) struct Reading;

impl<B: IoBufMut> Dir<B> for Reading {
    fn start(buf: &B, from: Option<usize>) -> usize {
        read_from(buf, from)
    }

    fn at_once(buf: &B, start: usize, op: &Op) -> Option<io::Result<usize>> {
        // No room in a stream read: nothing to wait for (the kernel would
        // wait for data and then read none). A datagram receive still
        // takes a datagram (cut to nothing), as the kernel does.
        (start == buf.bytes_total() && !matches!(op, Op::Recvmsg(_))).then_some(Ok(0))
    }

    fn lend(buf: B, from: Option<usize>) -> Lent {
        Lent::for_read(buf, from)
    }

    unsafe fn finish(res: OpResult, start: usize, buf: &mut B) -> io::Result<usize> {
        // SAFETY: the read's region was `buf`'s bytes from `start` to its
        // end (the caller's contract), `start` within its initialized
        // bytes ([`read_from`]).
        unsafe { mark_read(std::iter::once((start, buf)), &res) };
        read_result(res)
    }
}

/// Writes a buffer's initialized bytes from an offset on.
pub(crate) struct Writing;

impl<B: IoBuf> Dir<B> for Writing {
    fn start(_: &B, from: Option<usize>) -> usize {
        from.unwrap_or(0)
    }

    fn at_once(_: &B, _: usize, _: &Op) -> Option<io::Result<usize>> {
        None
    }

    fn lend(buf: B, from: Option<usize>) -> Lent {
        Lent::for_write(buf, from.unwrap_or(0))
    }

    unsafe fn finish(res: OpResult, _: usize, _: &mut B) -> io::Result<usize> {
        write_result(res)
    }
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
    /// In the loop (`fut` has been polled once), the region from `start`.
    Waiting {
        fut: OpFuture,
        start: usize,
    },
    Done,
}

/// A transfer of one owned buffer (a read, receive, write or send)
/// through the loop, resolving to the count and the buffer: one
/// hand-written future for the whole path (an attempt at once, the loop's
/// operation, the count), so that a transfer is polled and moved as one
/// small state.
pub(crate) struct Transfer<'a, B, D, A = NoAttempt<B>> {
    state: TransferState<B, A>,
    from: Option<usize>,
    via: Option<Via<'a>>,
    _dir: std::marker::PhantomData<D>,
}

// The buffer is never pinned (it is moved into the loop's slot and back),
// nor is anything else here.
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

    /// Takes the buffer back out of a finished operation's loan and maps
    /// its result.
    fn finish(res: OpResult, lent: Option<Lent>, start: usize) -> (io::Result<usize>, B) {
        let mut b = lent
            .and_then(Lent::take)
            .expect("xev-async: a lent buffer comes back with its operation");
        // SAFETY: the operation's region was `b`'s from `start`, lent by
        // `D::lend` with the same `from`.
        let r = unsafe { D::finish(res, start, &mut b) };
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
            TransferState::Waiting { fut, start } => {
                let start = *start;
                let (res, _, lent) = std::task::ready!(fut.poll_op(cx, &mut None, seen));
                me.state = TransferState::Done;
                Poll::Ready(Self::finish(res, lent, start))
            }
            TransferState::Start { .. } => {
                let TransferState::Start {
                    op,
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
                match start_op(op, &mut Some(D::lend(buf, me.from)), via, cx) {
                    Ok((res, _, lent)) => Poll::Ready(Self::finish(res, lent, start)),
                    Err(fut) => {
                        me.state = TransferState::Waiting { fut, start };
                        Poll::Pending
                    }
                }
            }
            TransferState::Done => panic!("xev-async: a transfer polled after it completed"),
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
    let (OpResult::Read(Ok(n)) | OpResult::RecvFrom(Ok((n, _)))) = res else {
        return;
    };
    let mut left = *n;
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
