//! Owned buffers for the I/O futures: the [`IoBuf`] (written from) and
//! [`IoBufMut`] (read into) traits, their implementations for `Vec<u8>`,
//! `Box<[u8]>`, `&'static [u8]`, `&'static [u8; N]`, `&'static str`, [`Slice`] (a sub-range of
//! any of them) and, with the `bytes` feature, `bytes::Bytes` and
//! `bytes::BytesMut`.
//!
//! An operation takes its buffer by value and gives it back with the
//! result, because the kernel may still write into it after a future is
//! dropped: the runtime keeps the buffer in the operation's slot until the
//! loop reports that the kernel let go, so a cancelled read can never write
//! into freed memory. The kernel reads and writes the buffer's own memory:
//! no copy and no zeroing.
//!
//! Where a read lands: into the buffer's spare capacity for growable
//! buffers (`Vec<u8>`, `BytesMut`: `buf[len..capacity]`, and the length
//! grows by the count read), from the start for fixed ones (`Box<[u8]>`, a
//! [`Slice`]). A read with no room (a full vector) completes at once with
//! 0. A write sends the initialized bytes (a vector's `buf[..len]`).

use std::any::TypeId;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};
use std::ops::{Bound, RangeBounds};
use std::ptr::NonNull;

/// A buffer an operation can write from: memory that stays put while the
/// value moves (heap or static memory).
///
/// # Safety
///
/// `stable_ptr` points to `bytes_total()` bytes, of which the first
/// `bytes_init()` are initialized, and it keeps pointing to the same
/// allocation, which stays allocated, while the value lives (moving the
/// value does not move the bytes); `bytes_init() <= bytes_total()`. The
/// bytes are not changed by anyone else while an operation holds the
/// value.
pub unsafe trait IoBuf: 'static {
    /// The first byte.
    fn stable_ptr(&self) -> *const u8;

    /// How many bytes are initialized: what a write sends.
    fn bytes_init(&self) -> usize;

    /// How many bytes the memory holds.
    fn bytes_total(&self) -> usize;

    /// The sub-range `range` of the buffer, owning it.
    ///
    /// # Panics
    ///
    /// If the range ends past `bytes_total()`, starts after it ends, or
    /// starts past `bytes_init()` (a slice never starts in uninitialized
    /// bytes, so that a read into it leaves the whole buffer initialized up
    /// to the bytes it wrote).
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        Slice::new(self, range)
    }
}

/// A buffer an operation can read into.
///
/// # Safety
///
/// As for [`IoBuf`], and: the bytes at `stable_mut_ptr` (the same address
/// as `stable_ptr`) are writable; `read_start() <= bytes_init()`;
/// `set_init(pos)` only records that the first `pos` bytes are
/// initialized (and never shrinks `bytes_init()`).
pub unsafe trait IoBufMut: IoBuf {
    /// The first byte, for writing.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Where a read lands, from the first byte: the end of the initialized
    /// bytes (the spare capacity) unless the type says otherwise.
    fn read_start(&self) -> usize {
        self.bytes_init()
    }

    /// Records that the first `pos` bytes are initialized (a vector's
    /// length becomes `pos` if that is longer).
    ///
    /// # Safety
    ///
    /// The first `pos` bytes are initialized, and `pos <= bytes_total()`.
    unsafe fn set_init(&mut self, pos: usize);
}

// SAFETY: a vector's heap memory does not move with the value; `len` bytes
// are initialized out of `capacity`.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as above; `set_init` only grows the length, over bytes the
// caller guarantees initialized.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if pos > self.len() {
            // SAFETY: per the caller, `pos <= capacity` and the first `pos`
            // bytes are initialized.
            unsafe { self.set_len(pos) };
        }
    }
}

// SAFETY: writable heap memory, all initialized; a read starts at 0.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    /// A box has no spare capacity: a read fills it from its start.
    fn read_start(&self) -> usize {
        0
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

/// `IoBuf` for a type whose initialized bytes are all of it (`len`
/// bytes at `as_ptr`), with why its memory stays put.
macro_rules! whole_buffer {
    ($(#[$attr:meta])* $ty:ty, $why:literal) => {
        $(#[$attr])*
        #[doc = concat!("Its memory stays put: ", $why, ".")]
        // SAFETY: per `$why`, the memory does not move with the value and
        // stays allocated while it lives; all `len` bytes are initialized.
        unsafe impl IoBuf for $ty {
            fn stable_ptr(&self) -> *const u8 {
                self.as_ptr()
            }
            fn bytes_init(&self) -> usize {
                self.len()
            }
            fn bytes_total(&self) -> usize {
                self.len()
            }
        }
    };
}

whole_buffer!(
    Box<[u8]>,
    "a box's heap memory does not move with the value"
);
whole_buffer!(&'static [u8], "static memory never moves nor goes away");
whole_buffer!(&'static str, "static memory never moves nor goes away");

// SAFETY: as for `&'static [u8]`.
unsafe impl<const N: usize> IoBuf for &'static [u8; N] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        N
    }
    fn bytes_total(&self) -> usize {
        N
    }
}

whole_buffer!(
    #[cfg(feature = "bytes")]
    bytes::Bytes,
    "shared, immutable heap or static memory that lives as long as the handle"
);

#[cfg(feature = "bytes")]
// SAFETY: `BytesMut` owns its view of heap memory, which does not move
// with the value; `len` bytes are initialized out of `capacity`.
unsafe impl IoBuf for bytes::BytesMut {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

#[cfg(feature = "bytes")]
// SAFETY: the view is unique (a `BytesMut` is never shared for writing);
// `set_init` only grows the length over initialized bytes.
unsafe impl IoBufMut for bytes::BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if pos > self.len() {
            // SAFETY: per the caller, `pos <= capacity` and the first `pos`
            // bytes are initialized.
            unsafe { self.set_len(pos) };
        }
    }
}

/// A sub-range of an owned buffer ([`IoBuf::slice`]), owning it. A write
/// sends the initialized bytes of the range; a read fills the range from
/// its start (and the buffer's initialized length grows to cover what it
/// wrote). Get the buffer back with [`Slice::into_inner`].
#[derive(Debug)]
pub struct Slice<T> {
    buf: T,
    begin: usize,
    end: usize,
}

impl<T: IoBuf> Slice<T> {
    fn new(buf: T, range: impl RangeBounds<usize>) -> Slice<T> {
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.checked_add(1).expect("slice start overflows"),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n.checked_add(1).expect("slice end overflows"),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => buf.bytes_total(),
        };
        assert!(
            begin <= end && end <= buf.bytes_total(),
            "slice {begin}..{end} out of a buffer of {} bytes",
            buf.bytes_total()
        );
        assert!(
            begin <= buf.bytes_init(),
            "slice starts at {begin}, past the {} initialized bytes",
            buf.bytes_init()
        );
        Slice { buf, begin, end }
    }
}

impl<T> Slice<T> {
    /// Where the range starts in the buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// Where the range ends in the buffer.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The whole buffer, for reading.
    pub fn get_ref(&self) -> &T {
        &self.buf
    }

    /// The whole buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

// SAFETY: the range lies within the buffer's memory (checked at
// construction, and the buffer cannot be reached mutably but through this
// impl); its initialized part is the buffer's initialized bytes within it.
unsafe impl<T: IoBuf> IoBuf for Slice<T> {
    fn stable_ptr(&self) -> *const u8 {
        self.buf.stable_ptr().wrapping_add(self.begin)
    }
    fn bytes_init(&self) -> usize {
        self.buf
            .bytes_init()
            .min(self.end)
            .saturating_sub(self.begin)
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: a read fills the range from its start (`read_start` 0 is within
// the initialized bytes); since the range starts within the buffer's
// initialized bytes (checked at construction), bytes `..begin + pos` of
// the buffer are initialized once the slice's first `pos` are.
unsafe impl<T: IoBufMut> IoBufMut for Slice<T> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.stable_mut_ptr().wrapping_add(self.begin)
    }
    fn read_start(&self) -> usize {
        0
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: see the impl's comment; `begin + pos <= end <= total`.
        unsafe { self.buf.set_init(self.begin + pos) }
    }
}

/// Moves bytes `from..to` of `buf` (one buffer or several) through
/// `step(buf, at)`, which reads or writes from offset `at` on (the same
/// buffer: no copy) and gives the count and the buffer back, until all
/// are through; a count of 0 first is the error `zero`.
async fn all_with<B, F, Fut>(
    buf: B,
    (from, to): (usize, usize),
    zero: io::ErrorKind,
    mut step: F,
) -> (io::Result<()>, B)
where
    F: FnMut(B, usize) -> Fut,
    Fut: Future<Output = (io::Result<usize>, B)>,
{
    let (mut at, mut buf) = (from, buf);
    while at < to {
        let (r, back) = step(buf, at).await;
        buf = back;
        match r {
            Ok(0) => return (Err(zero.into()), buf),
            Ok(n) => at += n,
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// Sends the `len` bytes of `buf` (one buffer or several) through
/// `write_from(buf, sent)`, which writes the bytes from offset `sent` on
/// and gives the count and the buffer back.
pub(crate) async fn write_all_with<B, F, Fut>(
    buf: B,
    len: usize,
    write_from: F,
) -> (io::Result<()>, B)
where
    F: FnMut(B, usize) -> Fut,
    Fut: Future<Output = (io::Result<usize>, B)>,
{
    all_with(buf, (0, len), io::ErrorKind::WriteZero, write_from).await
}

/// Fills `buf` from its read start to its end through
/// `read_from(buf, at)`, which reads into the bytes from offset `at` on
/// and gives the count and the buffer back; `UnexpectedEof` if a read
/// finds the end of the stream first.
pub(crate) async fn read_exact_with<B, F, Fut>(buf: B, read_from: F) -> (io::Result<()>, B)
where
    B: IoBufMut,
    F: FnMut(B, usize) -> Fut,
    Fut: Future<Output = (io::Result<usize>, B)>,
{
    let range = (buf.read_start(), buf.bytes_total());
    all_with(buf, range, io::ErrorKind::UnexpectedEof, read_from).await
}

/// Where a read into `b` asked to land at `from` (`None`: the buffer's
/// read start) lands: never past the initialized bytes, so that the bytes
/// before the region are initialized.
pub(crate) fn read_from<B: IoBufMut>(b: &B, from: Option<usize>) -> usize {
    match from {
        None => b.read_start(),
        Some(at) => at.min(b.bytes_init()),
    }
}

/// `b`'s initialized bytes from `from` on (none if `from` is past them):
/// what a write sends.
pub(crate) fn init_bytes<B: IoBuf>(b: &B, from: usize) -> &[u8] {
    let k = from.min(b.bytes_init());
    // SAFETY: per the trait's contract the first `bytes_init()` bytes at
    // `stable_ptr` are initialized and stay unchanged while `b` is
    // borrowed; `k <= bytes_init()`.
    unsafe { std::slice::from_raw_parts(b.stable_ptr().add(k), b.bytes_init() - k) }
}

/// `b`'s memory from `start` (at most `bytes_total()`) to its end, to read
/// into: possibly uninitialized, hence `MaybeUninit`.
pub(crate) fn room<B: IoBufMut>(b: &mut B, start: usize) -> &mut [MaybeUninit<u8>] {
    let start = start.min(b.bytes_total());
    let len = b.bytes_total() - start;
    // SAFETY: per the trait's contract `stable_mut_ptr` points to
    // `bytes_total()` writable bytes of one allocation, borrowed mutably
    // with `b` here; `MaybeUninit` claims nothing about their contents.
    unsafe { std::slice::from_raw_parts_mut(b.stable_mut_ptr().add(start).cast(), len) }
}

/// Words of a buffer kept inline in an operation's slot; larger buffer
/// types (a `Slice` of a `Slice`, say) are boxed.
const WORDS: usize = 6;

/// Whether `B` is kept inline.
const fn inline<B>() -> bool {
    size_of::<B>() <= size_of::<[usize; WORDS]>() && align_of::<B>() <= align_of::<usize>()
}

/// A buffer lent to the loop for one operation, with its type erased so
/// that every operation's slot has one type: kept in the slot from submit
/// until the loop reports the operation finished (or the runtime is
/// dropped after the loop), then given back to the future (or dropped, if
/// the future went away). Holds the buffer inline (no allocation) when it
/// fits in six words, which every buffer type of this module and a
/// [`Slice`] of any of them do.
pub(crate) struct Lent {
    storage: MaybeUninit<[usize; WORDS]>,
    type_id: TypeId,
    drop: unsafe fn(*mut u8),
    /// Points an operation's buffer (a vectored message's buffers) at the
    /// held value's memory, from `from` (see the constructors).
    fill: unsafe fn(*mut u8, Option<usize>, &mut xev::Op),
    from: Option<usize>,
    /// The buffer may be `!Send`: so is its holder.
    _not_send: PhantomData<*mut ()>,
}

/// Each buffer of a read or write family operation, in order: the one
/// buffer, or a vectored message's.
fn targets(op: &mut xev::Op) -> impl Iterator<Item = &mut xev::Buf> {
    let (first, more): (Option<&mut xev::Buf>, &mut [xev::Buf]) = match op {
        xev::Op::Sendmsg(m) | xev::Op::Recvmsg(m) => (Some(&mut m.buf), &mut m.more),
        other => (other.io_buf_mut(), &mut []),
    };
    first.into_iter().chain(more.iter_mut())
}

impl Lent {
    /// Lends `b` for a write: the region is its initialized bytes from
    /// `from` on (none if `from` is past them).
    pub(crate) fn for_write<B: IoBuf>(b: B, from: usize) -> Lent {
        Lent::for_write_held(Held::new(b), from)
    }

    /// [`Lent::for_write`] for a buffer held by a transfer's future.
    pub(crate) fn for_write_held<B: IoBuf>(b: Held<B>, from: usize) -> Lent {
        /// # Safety
        ///
        /// `p` is storage holding a live `B` (inline or boxed).
        unsafe fn fill<B: IoBuf>(p: *mut u8, from: Option<usize>, op: &mut xev::Op) {
            // SAFETY: per the contract, a live `B` sits in its `Lent`.
            unsafe {
                let b = &*Lent::value_ptr::<B>(p);
                write_regions(std::iter::once(b), from.unwrap_or(0), op);
            }
        }
        Lent::new(b, fill::<B>, Some(from))
    }

    /// Lends `b` for a read: the region runs from [`read_from`]`(b, from)`
    /// to the buffer's end.
    pub(crate) fn for_read<B: IoBufMut>(b: B, from: Option<usize>) -> Lent {
        Lent::for_read_held(Held::new(b), from)
    }

    /// [`Lent::for_read`] for a buffer held by a transfer's future.
    pub(crate) fn for_read_held<B: IoBufMut>(b: Held<B>, from: Option<usize>) -> Lent {
        /// # Safety
        ///
        /// `p` is storage holding a live `B` (inline or boxed).
        unsafe fn fill<B: IoBufMut>(p: *mut u8, from: Option<usize>, op: &mut xev::Op) {
            // SAFETY: per the contract; nothing else references the value
            // while the slot's owner calls this, and it sits in its `Lent`.
            unsafe {
                let b = &mut *Lent::value_ptr::<B>(p);
                read_regions(std::iter::once((read_from(b, from), b)), op);
            }
        }
        Lent::new(b, fill::<B>, from)
    }

    /// Lends `bufs` for a vectored send: the message's buffers are their
    /// initialized bytes, skipping the first `from` bytes of the whole.
    pub(crate) fn for_write_vectored<B: IoBuf>(bufs: Vec<B>, from: usize) -> Lent {
        /// # Safety
        ///
        /// `p` is storage holding a live `Vec<B>`.
        unsafe fn fill<B: IoBuf>(p: *mut u8, from: Option<usize>, op: &mut xev::Op) {
            // SAFETY: per the contract; the vector sits in its `Lent`.
            unsafe {
                let bufs = &*Lent::value_ptr::<Vec<B>>(p);
                write_regions(bufs.iter(), from.unwrap_or(0), op);
            }
        }
        Lent::new(Held::new(bufs), fill::<B>, Some(from))
    }

    /// Lends `bufs` for a vectored receive into each one's read region.
    pub(crate) fn for_read_vectored<B: IoBufMut>(bufs: Vec<B>) -> Lent {
        /// # Safety
        ///
        /// `p` is storage holding a live `Vec<B>`.
        unsafe fn fill<B: IoBufMut>(p: *mut u8, _: Option<usize>, op: &mut xev::Op) {
            // SAFETY: per the contract; nothing else references the value,
            // and the vector sits in its `Lent`.
            unsafe {
                let bufs = &mut *Lent::value_ptr::<Vec<B>>(p);
                read_regions(bufs.iter_mut().map(|b| (b.read_start(), b)), op);
            }
        }
        Lent::new(Held::new(bufs), fill::<B>, None)
    }

    fn new<B: 'static>(
        b: Held<B>,
        fill: unsafe fn(*mut u8, Option<usize>, &mut xev::Op),
        from: Option<usize>,
    ) -> Lent {
        /// # Safety
        ///
        /// `p` is storage holding a live `B`, dropped once.
        unsafe fn drop_value<B: 'static>(p: *mut u8) {
            // SAFETY: per the contract.
            unsafe {
                if inline::<B>() {
                    p.cast::<B>().drop_in_place()
                } else {
                    p.cast::<Box<B>>().drop_in_place()
                }
            }
        }
        let mut storage = MaybeUninit::<[usize; WORDS]>::uninit();
        let p = storage.as_mut_ptr().cast::<u8>();
        // SAFETY: `inline::<B>()` checked that `B` fits the storage's size
        // and alignment; a `Box` is one word, aligned like `usize`. The
        // value moves as untyped bytes (see [`Held`]), and a
        // `Box<MaybeUninit<B>>` holding an initialized `B` is a valid
        // `Box<B>` (same layout), as which the other methods read it.
        unsafe {
            if inline::<B>() {
                p.cast::<MaybeUninit<B>>().write(b.0);
            } else {
                p.cast::<Box<MaybeUninit<B>>>().write(Box::new(b.0));
            }
        }
        Lent {
            storage,
            type_id: TypeId::of::<B>(),
            drop: drop_value::<B>,
            fill,
            from,
            _not_send: PhantomData,
        }
    }

    /// Where the value of type `B` sits, given the storage `p` holding it.
    ///
    /// # Safety
    ///
    /// `p` is storage holding a live `B` (inline or boxed).
    unsafe fn value_ptr<B>(p: *mut u8) -> *mut B {
        if inline::<B>() {
            p.cast()
        } else {
            // SAFETY: per the contract, a live `Box<B>` sits at `p`.
            unsafe { &mut **p.cast::<Box<B>>() }
        }
    }

    /// Points `op`'s buffer (or, for a vectored message, buffers) at the
    /// lent memory. Call it once the `Lent` is where it stays (its slot):
    /// the regions are the buffers' heap or static memory, which moving
    /// the `Lent` does not move. Buffers the operation does not have are
    /// left out.
    pub(crate) fn fill(&mut self, op: &mut xev::Op) {
        // SAFETY: the storage holds the live value `fill` was made for.
        unsafe { (self.fill)(self.storage.as_mut_ptr().cast(), self.from, op) }
    }

    /// The buffer back, if it is a `B` (it always is: the future that lent
    /// it asks).
    pub(crate) fn take<B: 'static>(self) -> Option<B> {
        if self.type_id != TypeId::of::<B>() {
            return None;
        }
        let mut me = std::mem::ManuallyDrop::new(self);
        let p = me.storage.as_mut_ptr().cast::<u8>();
        // SAFETY: the storage holds a live `B` (checked by type id), read
        // out once; `me` is never dropped, so it is not dropped again.
        unsafe {
            Some(if inline::<B>() {
                p.cast::<B>().read()
            } else {
                *p.cast::<Box<B>>().read()
            })
        }
    }
}

/// A buffer held by a transfer's future while the loop may use its bytes:
/// kept as untyped storage, so that moving the future never moves the
/// buffer as a typed value while the kernel may use its bytes (a move of a
/// `Box` asserts that it is unique, which would invalidate the kernel's
/// pointer under Rust's aliasing rules). It always holds a live `B`, given
/// back by [`Held::into_inner`] or lent on by [`Lent::for_read_held`] /
/// [`Lent::for_write_held`]; dropped instead (only while a panic unwinds),
/// it leaks the buffer, which is safe even if the kernel still uses it.
pub(crate) struct Held<B>(MaybeUninit<B>);

impl<B> Held<B> {
    pub(crate) fn new(b: B) -> Held<B> {
        Held(MaybeUninit::new(b))
    }

    /// The buffer, to point an operation at its bytes.
    pub(crate) fn get_mut(&mut self) -> &mut B {
        // SAFETY: a `Held` always holds a live `B` (made from one, and
        // consumed when it is taken out).
        unsafe { self.0.assume_init_mut() }
    }

    /// The buffer back.
    pub(crate) fn into_inner(self) -> B {
        // SAFETY: as in `get_mut`; `self` is consumed, so the value is
        // taken out once.
        unsafe { self.0.assume_init() }
    }
}

/// Points `op`'s buffer at `b`'s read region from `start` (within its
/// initialized bytes) to its end.
///
/// # Safety
///
/// `b` is held, in a [`Held`] or a [`Lent`], until the loop is done with
/// `op` (see [`raw_buf`]).
pub(crate) unsafe fn point_read<B: IoBufMut>(b: &mut B, start: usize, op: &mut xev::Op) {
    // SAFETY: the caller's contract.
    unsafe { read_regions(std::iter::once((start, b)), op) }
}

/// Points `op`'s buffer at `b`'s initialized bytes from `from` on.
///
/// # Safety
///
/// As for [`point_read`].
pub(crate) unsafe fn point_write<B: IoBuf>(b: &B, from: usize, op: &mut xev::Op) {
    // SAFETY: the caller's contract.
    unsafe { write_regions(std::iter::once(b), from, op) }
}

/// Points `op`'s buffers at the initialized bytes of `bufs`, in order,
/// skipping the first `skip` bytes of the whole (the kernel only reads
/// them).
///
/// # Safety
///
/// `bufs` are held by a [`Lent`] that stays where it is while `op` holds
/// the regions (see [`raw_buf`]).
unsafe fn write_regions<'a, B: IoBuf>(
    bufs: impl Iterator<Item = &'a B>,
    mut skip: usize,
    op: &mut xev::Op,
) {
    for (b, target) in bufs.zip(targets(op)) {
        let k = skip.min(b.bytes_init());
        skip -= k;
        let ptr = b.stable_ptr().wrapping_add(k).cast_mut();
        // SAFETY: within `b`'s initialized bytes; `b` is held by a `Lent`
        // (the caller's contract).
        *target = unsafe { raw_buf(ptr, b.bytes_init() - k) };
    }
}

/// Points `op`'s buffers at `bufs`' memory from each one's given start
/// (within its initialized bytes) to its end, in order.
///
/// # Safety
///
/// As for [`write_regions`].
unsafe fn read_regions<'a, B: IoBufMut>(
    bufs: impl Iterator<Item = (usize, &'a mut B)>,
    op: &mut xev::Op,
) {
    for ((start, b), target) in bufs.zip(targets(op)) {
        let len = b.bytes_total() - start;
        let ptr = b.stable_mut_ptr().wrapping_add(start);
        // SAFETY: within `b`'s memory; `b` is held by a `Lent` (the
        // caller's contract).
        *target = unsafe { raw_buf(ptr, len) };
    }
}

/// The core buffer over `len` bytes at `ptr`, lent from a buffer that a
/// [`Lent`] holds.
///
/// # Safety
///
/// The bytes are within the memory of a buffer held by a `Lent` (the
/// traits' contracts), which stays allocated and untouched by anyone else
/// while the `Lent` lives; the runtime keeps the `Lent` in the operation's
/// slot until the loop's callback for the operation ran, or, if the loop
/// is dropped first, until after the loop made the kernel let go of it
/// (the callback owns a handle on the slot table). Or by a [`Held`] in a
/// transfer's future ([`crate::op::Transfer`]), which keeps it while the
/// operation is in flight and, dropped first, lends it to the operation's
/// slot as a `Lent`. Both move the buffer only as untyped storage, so the
/// buffer value is never moved while the kernel may use its bytes (a move
/// of a `Box` asserts that it is unique). A write's bytes are only read by
/// the kernel.
unsafe fn raw_buf(ptr: *mut u8, len: usize) -> xev::Buf {
    let ptr = NonNull::new(ptr).unwrap_or(NonNull::dangling());
    // SAFETY: per the contract.
    unsafe { xev::Buf::from_raw_parts(ptr, len) }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // SAFETY: the storage holds the live value `drop` was made for;
        // this runs once.
        unsafe { (self.drop)(self.storage.as_mut_ptr().cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Lent {
        /// The region a one-buffer operation gets.
        fn region(&mut self) -> xev::Buf {
            let mut op = xev::Op::Recv {
                fd: 0,
                buf: xev::Buf::default(),
            };
            self.fill(&mut op);
            op.take_io_buf().unwrap()
        }
    }

    #[test]
    fn vec_reads_land_in_spare_capacity() {
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(b"ab");
        let base = v.as_ptr() as usize;
        let mut lent = Lent::for_read(v, None);
        let region = lent.region();
        assert_eq!(region.as_ptr() as usize, base + 2);
        assert!(region.len() >= 6);
        let v: Vec<u8> = lent.take().unwrap();
        assert_eq!(v, b"ab");
    }

    #[test]
    fn reads_from_an_offset_never_start_past_the_initialized_bytes() {
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(b"abc");
        let base = v.as_ptr() as usize;
        let mut lent = Lent::for_read(v, Some(1));
        assert_eq!(lent.region().as_ptr() as usize, base + 1);
        let v: Vec<u8> = lent.take().unwrap();
        let mut lent = Lent::for_read(v, Some(5));
        assert_eq!(lent.region().as_ptr() as usize, base + 3, "clamped");
    }

    #[test]
    fn writes_send_initialized_bytes() {
        let mut lent = Lent::for_write(b"hello".as_slice(), 0);
        assert_eq!(lent.region().len(), 5);
        let mut lent = Lent::for_write(b"hello".as_slice(), 3);
        assert_eq!(lent.region().len(), 2);
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(b"xyz");
        let mut lent = Lent::for_write(v.slice(1..), 0);
        assert_eq!(lent.region().len(), 2);
        let s: Slice<Vec<u8>> = lent.take().unwrap();
        assert_eq!(s.into_inner(), b"xyz");
    }

    #[test]
    fn slices_read_from_their_start_and_grow_the_vector() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"abcd");
        let mut s = v.slice(2..10);
        assert_eq!((s.read_start(), s.bytes_total(), s.bytes_init()), (0, 8, 2));
        // SAFETY: the slice's first 8 bytes are written before being
        // recorded as initialized.
        unsafe {
            std::ptr::write_bytes(s.stable_mut_ptr(), b'z', 8);
            s.set_init(8);
        }
        assert_eq!(s.into_inner(), b"abzzzzzzzz");
    }

    #[test]
    #[should_panic(expected = "past the 0 initialized bytes")]
    fn slices_cannot_start_in_uninitialized_bytes() {
        let _ = Vec::<u8>::with_capacity(16).slice(4..);
    }

    #[test]
    fn large_buffers_are_boxed_and_come_back() {
        let v = vec![1u8, 2, 3];
        let nested = v.slice(..).slice(1..).slice(1..);
        assert!(!inline::<Slice<Slice<Slice<Vec<u8>>>>>());
        assert!(inline::<Slice<Vec<u8>>>() && inline::<Slice<Box<[u8]>>>());
        let mut lent = Lent::for_write(nested, 0);
        assert_eq!(lent.region().len(), 1);
        assert!(lent.take::<Vec<u8>>().is_none(), "wrong type is refused");
    }

    #[test]
    fn a_lent_buffer_is_dropped_once() {
        use std::rc::Rc;
        struct Counted(#[allow(dead_code)] Rc<()>, Vec<u8>);
        // SAFETY: delegates to the vector.
        unsafe impl IoBuf for Counted {
            fn stable_ptr(&self) -> *const u8 {
                self.1.as_ptr()
            }
            fn bytes_init(&self) -> usize {
                self.1.len()
            }
            fn bytes_total(&self) -> usize {
                self.1.capacity()
            }
        }
        let rc = Rc::new(());
        drop(Lent::for_write(Counted(rc.clone(), vec![1]), 0));
        assert_eq!(Rc::strong_count(&rc), 1);
        let lent = Lent::for_write(Counted(rc.clone(), vec![1]), 0);
        let back: Counted = lent.take().unwrap();
        assert_eq!(Rc::strong_count(&rc), 2);
        drop(back);
        assert_eq!(Rc::strong_count(&rc), 1);
    }
}
