//! The memory of read and write operations: [`Buf`], either an owned
//! `Vec<u8>` (the common case: an operation reads into or writes from its
//! whole length, and the callback takes it back) or a raw region whose
//! owner keeps it alive (for layers that lend memory of their own types to
//! the loop, such as an async runtime's buffer traits: a read into a
//! vector's spare capacity, a `bytes::BytesMut`, a sub-range of a buffer).
//!
//! Backends only see the region: [`Buf::as_ptr`], [`Buf::as_mut_ptr`] and
//! [`Buf::len`]. They never make a Rust slice of a raw region, whose bytes
//! may not be initialized before the kernel writes them.

use std::fmt;
use std::ptr::NonNull;

/// The buffer of a read or write family operation: the region the kernel
/// reads into or writes from is the whole of it.
///
/// Made from a `Vec<u8>` (`buf.into()`; the loop owns the vector while the
/// operation is in flight and the callback can take it back with
/// [`crate::Op::take_buf`]), or, unsafely, from a raw region the caller
/// keeps alive ([`Buf::from_raw_parts`]).
pub struct Buf(Repr);

enum Repr {
    Vec(Vec<u8>),
    Raw { ptr: NonNull<u8>, len: usize },
}

// SAFETY: a `Vec<u8>` is `Send`; a raw region is plain bytes whose lender
// promised (`from_raw_parts`) that nothing else touches them while the
// operation holds them, so the thread the operation runs on (the loop's or
// a thread-pool worker) may access them.
unsafe impl Send for Buf {}
// SAFETY: `&Buf` gives no access to the region's bytes (only its address
// and length), and the `Vec` case is `Sync`.
unsafe impl Sync for Buf {}

impl Buf {
    /// A buffer that owns `v`: operations read into or write from
    /// `v[..v.len()]`.
    pub fn new(v: Vec<u8>) -> Buf {
        Buf(Repr::Vec(v))
    }

    /// A buffer over `len` bytes at `ptr` that the caller owns.
    ///
    /// # Safety
    ///
    /// From this call until the operation that holds the buffer has
    /// completed (its callback ran) or the loop it was added to was
    /// dropped (the loop waits until the kernel let go of in-flight
    /// operations before it returns), the `len` bytes at `ptr` must stay
    /// allocated, must not be read or written by anyone else, and must be
    /// writable if the buffer is given to a read family operation (a read
    /// may leave them partly written; they need not be initialized
    /// before). The buffer never frees them.
    pub unsafe fn from_raw_parts(ptr: NonNull<u8>, len: usize) -> Buf {
        Buf(Repr::Raw { ptr, len })
    }

    /// The region's length: the most a read takes, or what a write sends.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Vec(v) => v.len(),
            Repr::Raw { len, .. } => *len,
        }
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The region's first byte (dangling, never null, when empty).
    pub fn as_ptr(&self) -> *const u8 {
        match &self.0 {
            Repr::Vec(v) => v.as_ptr(),
            Repr::Raw { ptr, .. } => ptr.as_ptr(),
        }
    }

    /// The region's first byte, for writing into it.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        match &mut self.0 {
            Repr::Vec(v) => v.as_mut_ptr(),
            Repr::Raw { ptr, .. } => ptr.as_ptr(),
        }
    }

    /// The owned vector, if the buffer is one.
    pub fn as_vec(&self) -> Option<&Vec<u8>> {
        match &self.0 {
            Repr::Vec(v) => Some(v),
            Repr::Raw { .. } => None,
        }
    }

    /// The owned vector, mutably, if the buffer is one.
    pub fn as_vec_mut(&mut self) -> Option<&mut Vec<u8>> {
        match &mut self.0 {
            Repr::Vec(v) => Some(v),
            Repr::Raw { .. } => None,
        }
    }

    /// The owned vector, or the buffer back if it is a raw region.
    pub fn into_vec(self) -> Result<Vec<u8>, Buf> {
        match self.0 {
            Repr::Vec(v) => Ok(v),
            raw @ Repr::Raw { .. } => Err(Buf(raw)),
        }
    }
}

impl Default for Buf {
    /// An empty owned vector.
    fn default() -> Buf {
        Buf::new(Vec::new())
    }
}

impl From<Vec<u8>> for Buf {
    fn from(v: Vec<u8>) -> Buf {
        Buf::new(v)
    }
}

impl From<&[u8]> for Buf {
    /// A copy of `s`, owned.
    fn from(s: &[u8]) -> Buf {
        Buf::new(s.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Buf {
    /// A copy of `s`, owned.
    fn from(s: &[u8; N]) -> Buf {
        Buf::new(s.to_vec())
    }
}

impl fmt::Debug for Buf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Repr::Vec(_) => "Vec",
            Repr::Raw { .. } => "Raw",
        };
        f.debug_struct("Buf")
            .field("kind", &kind)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_round_trip_keeps_the_allocation() {
        let v = vec![1u8, 2, 3];
        let p = v.as_ptr();
        let b = Buf::from(v);
        assert_eq!((b.len(), b.as_ptr()), (3, p));
        let v = b.into_vec().unwrap();
        assert_eq!((v.as_ptr(), v), (p, vec![1, 2, 3]));
    }

    #[test]
    fn raw_region_is_lent_not_owned() {
        let mut backing = [0u8; 8];
        let ptr = NonNull::new(backing.as_mut_ptr()).unwrap();
        // SAFETY: `backing` outlives `b` and nothing else touches it while
        // `b` lives.
        let mut b = unsafe { Buf::from_raw_parts(ptr, 8) };
        assert_eq!((b.len(), b.as_mut_ptr()), (8, ptr.as_ptr()));
        assert!(b.as_vec().is_none());
        let b = b.into_vec().unwrap_err();
        drop(b);
        backing[0] = 1;
        assert_eq!(backing[0], 1);
    }
}
