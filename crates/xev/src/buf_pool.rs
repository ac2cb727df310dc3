//! Receive buffer pools: [`BufPool`], a loop's set of equal-size buffers
//! that pooled receives ([`Op::recv_pool`](crate::Op::recv_pool)) draw
//! from, and [`PoolBuf`], one buffer of it holding received data, which
//! goes back to the pool when dropped.
//!
//! A receive that brings its own buffer keeps it for as long as it waits,
//! so a server with many idle connections holds a buffer per connection. A
//! pooled receive takes a buffer only when its data is there (on IOCP,
//! when it starts): a pool sized for the connections that are busy at
//! once serves any number of idle ones. On io_uring the pool is a
//! provided-buffer ring registered with the kernel, which picks the
//! buffer itself, and a socket's pooled receives share one multishot
//! receive (`backend/uring_streams.rs`); on the other backends the loop
//! takes one from the pool's free list for the receive's call.
//!
//! The pool's memory is allocated once, when the pool is made; taking and
//! giving back buffers allocates nothing.

use std::alloc::Layout;
use std::cell::RefCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::rc::Rc;

use crate::op::io_len;

/// Raw result for "the pool had no free buffer", never a valid error code.
pub(crate) const NO_BUFFERS: i32 = i32::MIN + 2;
/// Raw result for "the pool belongs to another loop", never a valid error
/// code.
pub(crate) const FOREIGN_POOL: i32 = i32::MIN + 3;

/// A loop's pool of equal-size receive buffers for pooled receives
/// ([`Op::recv_pool`](crate::Op::recv_pool)), made by
/// [`Loop::add_buf_pool`](crate::generic::Loop::add_buf_pool). A pooled
/// receive takes a buffer only when its data is there (on IOCP, when it
/// starts), so a pool sized for the connections busy at once serves any
/// number of idle ones; the buffer comes back as a [`PoolBuf`], which
/// returns to the pool when dropped.
///
/// Cloning gives another handle to the same pool. A pool lives while a
/// handle, a receive that uses it, a [`PoolBuf`] of it or its loop does;
/// its memory is freed with the last of them. It is `!Send`: its buffers
/// go back to the pool on the loop's thread.
#[derive(Clone)]
pub struct BufPool(pub(crate) Rc<PoolInner>);

/// A pool's memory and bookkeeping.
pub(crate) struct PoolInner {
    /// `count` buffers of `size` bytes each, back to back.
    base: NonNull<u8>,
    layout: Layout,
    size: usize,
    count: u16,
    /// The tag of the loop the pool belongs to.
    pub(crate) tag: u32,
    /// Free buffers, when the loop takes them itself (every backend but
    /// io_uring); empty with a kernel ring.
    free: RefCell<Vec<u16>>,
    /// The provided-buffer ring the io_uring backend registered, if any:
    /// buffers go back there instead of to `free`.
    #[cfg(target_os = "linux")]
    ring: std::cell::OnceCell<KernelRing>,
}

impl PoolInner {
    /// A pool of `count` buffers of `size` bytes for the loop tagged
    /// `tag`, every buffer free.
    pub(crate) fn new(count: u16, size: usize, tag: u32) -> std::io::Result<PoolInner> {
        let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
        if count == 0 || size == 0 {
            return Err(invalid("a buffer pool needs at least one buffer of at least one byte"));
        }
        if size > io_len(usize::MAX) {
            return Err(invalid("a pool buffer holds at most 0x7fff_f000 bytes"));
        }
        let total = size
            .checked_mul(usize::from(count))
            .ok_or_else(|| invalid("buffer pool too large"))?;
        let layout =
            Layout::from_size_align(total, 64).map_err(|_| invalid("buffer pool too large"))?;
        // SAFETY: the layout's size is non-zero (count and size are).
        let base = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
        Ok(PoolInner {
            base,
            layout,
            size,
            count,
            tag,
            // Given out from the end: buffer 0 first.
            free: RefCell::new((0..count).rev().collect()),
            #[cfg(target_os = "linux")]
            ring: std::cell::OnceCell::new(),
        })
    }

    /// The address of buffer `id`.
    pub(crate) fn buf_ptr(&self, id: u16) -> *mut u8 {
        debug_assert!(id < self.count);
        // SAFETY: id < count, so the offset stays inside the allocation.
        unsafe { self.base.as_ptr().add(usize::from(id) * self.size) }
    }

    /// The size of each buffer.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Takes a free buffer from the free list (never from a kernel ring).
    pub(crate) fn take(&self) -> Option<u16> {
        self.free.borrow_mut().pop()
    }

    /// Whether the free list has a buffer (for a backend that takes one
    /// later, and answers `NoBuffers` at once when it would find none).
    #[cfg(windows)]
    pub(crate) fn has_free(&self) -> bool {
        !self.free.borrow().is_empty()
    }

    /// Gives buffer `id`, which the caller owned, back to the pool.
    pub(crate) fn give_back(&self, id: u16) {
        #[cfg(target_os = "linux")]
        if let Some(r) = self.ring.get() {
            r.push(self, id);
            return;
        }
        // Never grows: the list holds each of the `count` ids at most once.
        self.free.borrow_mut().push(id);
    }

    /// Whether the kernel picks this pool's buffers.
    #[cfg(target_os = "linux")]
    pub(crate) fn kernel_ring(&self) -> Option<&KernelRing> {
        self.ring.get()
    }

    /// Moves the pool's buffers into `ring`, which the caller registered
    /// with the kernel: from now on buffers go back there.
    #[cfg(target_os = "linux")]
    pub(crate) fn adopt_ring(&self, ring: KernelRing) {
        let ring = self.ring.get_or_init(|| ring);
        for id in self.free.borrow_mut().drain(..).rev() {
            ring.push(self, id);
        }
    }

    /// How many buffers the pool holds in all.
    pub(crate) fn count(&self) -> u16 {
        self.count
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; no buffer is lent
        // out any more (each `PoolBuf` and receive holds an `Rc` of the
        // pool), and a kernel ring's owner keeps its own `Rc` until the
        // kernel is done with it.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

/// An io_uring provided-buffer ring: entries the kernel takes buffers
/// from, page-aligned as `IORING_REGISTER_PBUF_RING` wants.
#[cfg(target_os = "linux")]
pub(crate) struct KernelRing {
    entries: NonNull<io_uring::types::BufRingEntry>,
    layout: Layout,
    /// Ring size minus one (the size is a power of two).
    mask: u16,
    /// Our copy of the tail (the kernel reads the shared one).
    tail: std::cell::Cell<u16>,
    /// The buffer group id it is registered under.
    pub(crate) bgid: u16,
}

#[cfg(target_os = "linux")]
impl KernelRing {
    /// Allocates an empty ring with room for `count` buffers.
    pub(crate) fn new(count: u16, bgid: u16) -> std::io::Result<KernelRing> {
        let n = count.checked_next_power_of_two().filter(|&n| n <= 32768).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "io_uring buffer pools hold at most 32768 buffers",
            )
        })?;
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let size = usize::from(n) * std::mem::size_of::<io_uring::types::BufRingEntry>();
        let layout = Layout::from_size_align(size, page.max(4096))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: the size is non-zero. Zeroed: the shared tail starts at 0.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let entries = NonNull::new(p.cast())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
        Ok(KernelRing {
            entries,
            layout,
            mask: n - 1,
            tail: std::cell::Cell::new(0),
            bgid,
        })
    }

    /// The ring's address and number of entries, for registration.
    pub(crate) fn raw(&self) -> (u64, u16) {
        (self.entries.as_ptr() as u64, self.mask.wrapping_add(1))
    }

    /// Publishes buffer `id` of `pool` to the kernel.
    fn push(&self, pool: &PoolInner, id: u16) {
        let t = self.tail.get();
        // SAFETY: the index is masked into the ring; the kernel reads only
        // entries before the shared tail, and this one is past it (the
        // ring has room for every buffer, so it is not in use).
        let e = unsafe { &mut *self.entries.as_ptr().add(usize::from(t & self.mask)) };
        e.set_addr(pool.buf_ptr(id) as u64);
        // size <= 0x7fff_f000 (checked in `PoolInner::new`).
        e.set_len(pool.size as u32);
        e.set_bid(id);
        let t = t.wrapping_add(1);
        self.tail.set(t);
        // SAFETY: the tail field lies inside the ring's first entry, and
        // the kernel reads it as a 16-bit value with acquire ordering: the
        // release store makes the entry written above visible first.
        unsafe {
            let tail = io_uring::types::BufRingEntry::tail(self.entries.as_ptr());
            (*tail.cast::<std::sync::atomic::AtomicU16>())
                .store(t, std::sync::atomic::Ordering::Release);
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for KernelRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; its owner keeps the
        // ring until the kernel no longer reads it.
        unsafe { std::alloc::dealloc(self.entries.as_ptr().cast(), self.layout) }
    }
}

impl BufPool {
    /// How many buffers the pool holds in all.
    pub fn count(&self) -> u16 {
        self.0.count()
    }

    /// The size of each buffer in bytes.
    pub fn buf_size(&self) -> usize {
        self.0.size
    }
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufPool")
            .field("count", &self.0.count)
            .field("buf_size", &self.0.size)
            .finish()
    }
}

/// One buffer of a [`BufPool`], holding the bytes a pooled receive got.
/// It dereferences to those bytes (mutably too) and goes back to its pool
/// when dropped.
pub struct PoolBuf {
    pool: Rc<PoolInner>,
    id: u16,
    len: usize,
}

impl PoolBuf {
    /// Wraps buffer `id` of `pool`, filled with `len` bytes.
    pub(crate) fn new(pool: Rc<PoolInner>, id: u16, len: usize) -> PoolBuf {
        debug_assert!(len <= pool.size);
        PoolBuf { pool, id, len }
    }

    /// The buffer's index in its pool (for diagnostics).
    pub fn index(&self) -> u16 {
        self.id
    }
}

impl Deref for PoolBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the buffer is this value's alone until it is dropped (it
        // is in neither the free list nor the kernel ring), and its first
        // `len` bytes were written by the receive.
        unsafe { std::slice::from_raw_parts(self.pool.buf_ptr(self.id), self.len) }
    }
}

impl DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.pool.buf_ptr(self.id), self.len) }
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        self.pool.give_back(self.id);
    }
}

impl fmt::Debug for PoolBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuf")
            .field("index", &self.id)
            .field("len", &self.len)
            .finish()
    }
}

/// The operation of a pooled receive ([`Op::RecvPool`](crate::Op::RecvPool),
/// made by [`Op::recv_pool`](crate::Op::recv_pool)): a socket and the pool
/// its buffer comes from.
pub struct PoolRecv {
    pub(crate) fd: crate::RawHandle,
    pub(crate) pool: BufPool,
    /// The buffer the receive holds: filled (the result is its length), or
    /// on IOCP taken at the start; given back if the result is not a
    /// count.
    pub(crate) got: Option<u16>,
}

impl PoolRecv {
    /// The socket.
    pub fn fd(&self) -> crate::RawHandle {
        self.fd
    }

    /// The pool.
    pub fn pool(&self) -> &BufPool {
        &self.pool
    }

    /// The result for raw result `res`: the filled buffer, or the error
    /// (a held buffer goes back to the pool).
    pub(crate) fn result(&mut self, res: i32) -> Result<PoolBuf, crate::ReadError> {
        use crate::ReadError;
        let got = self.got.take();
        match (res, got) {
            (r, Some(id)) if r > 0 => Ok(PoolBuf::new(self.pool.0.clone(), id, r as usize)),
            (r, got) => {
                if let Some(id) = got {
                    self.pool.0.give_back(id);
                }
                Err(match r {
                    0 => ReadError::Eof,
                    NO_BUFFERS => ReadError::NoBuffers,
                    FOREIGN_POOL => ReadError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the receive's buffer pool belongs to another loop",
                    )),
                    r if r < 0 => ReadError::from_raw(r),
                    // A count without a buffer: never from a backend.
                    _ => ReadError::Io(std::io::Error::other("pooled receive without a buffer")),
                })
            }
        }
    }
}

impl Drop for PoolRecv {
    fn drop(&mut self) {
        if let Some(id) = self.got.take() {
            self.pool.0.give_back(id);
        }
    }
}

impl fmt::Debug for PoolRecv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolRecv")
            .field("fd", &self.fd)
            .field("pool", &self.pool)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_to_the_free_list() {
        let p = Rc::new(PoolInner::new(3, 8, 0).unwrap());
        let ids: Vec<u16> = (0..3).map(|_| p.take().unwrap()).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert!(p.take().is_none());
        let mut b = PoolBuf::new(p.clone(), ids[1], 5);
        b.copy_from_slice(b"hello");
        assert_eq!(&*b, b"hello");
        drop(b);
        assert_eq!(p.take(), Some(1));
        assert!(PoolInner::new(0, 8, 0).is_err());
        assert!(PoolInner::new(1, 0, 0).is_err());
    }
}
