//! Recycles the memory of finished completions, so that adding a completion
//! in steady state takes no trip to the global allocator.
//!
//! A disarmed completion's value is dropped, but its memory goes on a free
//! list kept per memory layout (size and alignment; a program has only a few
//! distinct completion types, so a short vector scanned linearly suffices).
//! The next completion of the same layout reuses it. The lists only hold
//! as much memory as the most completions of each layout ever alive at once,
//! and give it back to the global allocator when the loop is dropped.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::{self, NonNull};

struct FreeList {
    layout: Layout,
    head: *mut u8,
}

/// Free lists of completion memory, by layout.
pub(crate) struct Recycler {
    lists: Vec<FreeList>,
}

fn recyclable(layout: Layout) -> bool {
    layout.size() >= std::mem::size_of::<*mut u8>()
        && layout.align() >= std::mem::align_of::<*mut u8>()
}

impl Recycler {
    pub(crate) const fn new() -> Recycler {
        Recycler { lists: Vec::new() }
    }

    /// Memory for a value of `layout` (non-zero size).
    pub(crate) fn alloc(&mut self, layout: Layout) -> NonNull<u8> {
        if let Some(list) = self.lists.iter_mut().find(|l| l.layout == layout) {
            let p = list.head;
            if !p.is_null() {
                // SAFETY: free-list nodes are blocks of `layout` that we own;
                // their first word holds the next node (written in `free`).
                list.head = unsafe { p.cast::<*mut u8>().read() };
                // SAFETY: `p` is not null.
                return unsafe { NonNull::new_unchecked(p) };
            }
        }
        debug_assert!(layout.size() > 0);
        // SAFETY: completions always have a non-zero size.
        let p = unsafe { alloc(layout) };
        NonNull::new(p).unwrap_or_else(|| handle_alloc_error(layout))
    }

    /// Takes back a block of `layout` whose value was already dropped.
    ///
    /// # Safety
    /// `p` was allocated by the global allocator with `layout` (by `alloc`
    /// or by a `Box` of a type with this layout) and is not used anymore.
    pub(crate) unsafe fn free(&mut self, p: NonNull<u8>, layout: Layout) {
        if !recyclable(layout) {
            // SAFETY: per the contract.
            unsafe { dealloc(p.as_ptr(), layout) };
            return;
        }
        let list = match self.lists.iter().position(|l| l.layout == layout) {
            Some(i) => &mut self.lists[i],
            None => {
                self.lists.push(FreeList {
                    layout,
                    head: ptr::null_mut(),
                });
                let last = self.lists.len() - 1;
                &mut self.lists[last]
            }
        };
        // SAFETY: the block is ours, large and aligned enough for a pointer.
        unsafe { p.as_ptr().cast::<*mut u8>().write(list.head) };
        list.head = p.as_ptr();
    }
}

impl Drop for Recycler {
    fn drop(&mut self) {
        for list in &mut self.lists {
            let mut p = list.head;
            while !p.is_null() {
                // SAFETY: each node is a block of `list.layout` from the
                // global allocator; read its link before freeing it.
                unsafe {
                    let next = p.cast::<*mut u8>().read();
                    dealloc(p, list.layout);
                    p = next;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_blocks_of_the_same_layout() {
        let mut r = Recycler::new();
        let l = Layout::from_size_align(64, 8).unwrap();
        let a = r.alloc(l);
        // SAFETY: `a` came from `alloc` with `l` and is unused.
        unsafe { r.free(a, l) };
        let b = r.alloc(l);
        assert_eq!(a, b, "the freed block is reused");
        let other = Layout::from_size_align(128, 8).unwrap();
        let c = r.alloc(other);
        assert_ne!(c.cast::<u8>(), b, "another layout gets other memory");
        // SAFETY: both came from `alloc` with these layouts.
        unsafe {
            r.free(b, l);
            r.free(c, other);
        }
    }
}
