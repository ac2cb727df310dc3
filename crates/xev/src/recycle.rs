//! Completion memory: every completion a loop holds lives in memory this
//! recycler owns, carved from chunks and reused after the completion is
//! freed. It gives the loop three things:
//!
//! - **No allocation in steady state**: a finished completion's block goes
//!   on a free list kept per memory layout (a program has only a few
//!   distinct completion types, so a short vector scanned linearly
//!   suffices) and the next completion of the same layout takes it.
//! - **Dense, cheap memory**: blocks are carved from chunks that grow
//!   geometrically up to 1 MiB, with no per-block allocator header, so ten
//!   million timers cost ten million blocks and a few thousand allocations.
//! - **Ids that can always be checked**: memory is returned to the global
//!   allocator only when the loop is dropped, so a (possibly stale) [`Id`]
//!   of this loop always points at a readable core whose generation and
//!   state say whether it still names a live completion.
//!
//! [`Id`]: crate::Id

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::{self, NonNull};

use crate::record::{Core, State};

/// The largest chunk, in bytes.
const MAX_CHUNK: usize = 1 << 20;

struct Chunk {
    base: NonNull<u8>,
    layout: Layout,
    /// Blocks handed out so far (the rest is untouched memory).
    carved: usize,
    capacity: usize,
}

struct Pool {
    /// Layout of one block (size a multiple of the alignment).
    block: Layout,
    /// Freed blocks, linked through `Core::next`.
    free: *mut Core,
    chunks: Vec<Chunk>,
}

/// The recycler: one pool of blocks per completion layout.
pub(crate) struct Recycler {
    pools: Vec<Pool>,
}

impl Pool {
    fn stride(&self) -> usize {
        self.block.size()
    }

    /// A never-used block from the last chunk, or from a new one.
    fn carve(&mut self) -> NonNull<Core> {
        let stride = self.stride();
        let need_chunk = self.chunks.last().map_or(true, |c| c.carved == c.capacity);
        if need_chunk {
            let bytes =
                (4096usize << self.chunks.len().min(8)).clamp(stride, MAX_CHUNK.max(stride));
            let capacity = bytes / stride;
            let layout = Layout::from_size_align(capacity * stride, self.block.align())
                .unwrap_or_else(|_| handle_alloc_error(self.block));
            // SAFETY: `layout` has a non-zero size (a block is at least a Core).
            let base = NonNull::new(unsafe { alloc(layout) })
                .unwrap_or_else(|| handle_alloc_error(layout));
            self.chunks.push(Chunk {
                base,
                layout,
                carved: 0,
                capacity,
            });
        }
        let chunk = self.chunks.last_mut().unwrap_or_else(|| unreachable!());
        // SAFETY: `carved < capacity`, so the block lies inside the chunk.
        let p = unsafe { chunk.base.as_ptr().add(chunk.carved * stride) };
        chunk.carved += 1;
        // SAFETY: inside a live allocation, hence not null.
        unsafe { NonNull::new_unchecked(p.cast()) }
    }
}

impl Recycler {
    pub(crate) const fn new() -> Recycler {
        Recycler { pools: Vec::new() }
    }

    fn pool(&mut self, layout: Layout) -> &mut Pool {
        let block = layout.pad_to_align();
        match self.pools.iter().position(|p| p.block == block) {
            Some(i) => &mut self.pools[i],
            None => {
                self.pools.push(Pool {
                    block,
                    free: ptr::null_mut(),
                    chunks: Vec::new(),
                });
                let last = self.pools.len() - 1;
                &mut self.pools[last]
            }
        }
    }

    /// A block for a completion of `layout` (whose first field is a
    /// `Core`), and the generation to give it: the block's next generation
    /// if it was used before, else 0. The block's contents are unspecified
    /// except, for a reused block, `gen` and `state` (Free).
    pub(crate) fn alloc(&mut self, layout: Layout) -> (NonNull<Core>, u32) {
        let pool = self.pool(layout);
        if !pool.free.is_null() {
            let c = pool.free;
            // SAFETY: free-list blocks are initialised, freed cores.
            unsafe {
                pool.free = (*c).next;
                return (NonNull::new_unchecked(c), (*c).gen);
            }
        }
        (pool.carve(), 0)
    }

    /// Takes back the block of a completion of `layout` whose value was
    /// already dropped, whose `gen` was bumped and whose state is `Free`.
    ///
    /// # Safety
    /// `c` came from [`Recycler::alloc`] with `layout` and is not used
    /// anymore.
    pub(crate) unsafe fn free(&mut self, c: NonNull<Core>, layout: Layout) {
        let pool = self.pool(layout);
        // SAFETY: per the contract; `next` is the free-list link.
        unsafe { (*c.as_ptr()).next = pool.free };
        pool.free = c.as_ptr();
    }

    /// Calls `f` on every block in use (state other than `Free`).
    pub(crate) fn for_each_live(&self, mut f: impl FnMut(*mut Core)) {
        for pool in &self.pools {
            for chunk in &pool.chunks {
                for i in 0..chunk.carved {
                    // SAFETY: carved blocks are initialised cores (live or
                    // freed); only their `state` is read here.
                    unsafe {
                        let c = chunk.base.as_ptr().add(i * pool.stride()).cast::<Core>();
                        if (*c).state != State::Free {
                            f(c);
                        }
                    }
                }
            }
        }
    }
}

impl Drop for Recycler {
    fn drop(&mut self) {
        for pool in &self.pools {
            for chunk in &pool.chunks {
                // SAFETY: allocated in `carve` with exactly this layout.
                unsafe { dealloc(chunk.base.as_ptr(), chunk.layout) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Op;

    #[test]
    fn reuses_blocks_of_the_same_layout_and_counts_generations() {
        let mut r = Recycler::new();
        let l = Layout::new::<Core>();
        let (a, gen) = r.alloc(l);
        assert_eq!(gen, 0, "fresh memory starts at generation 0");
        // SAFETY: `a` is a fresh block of Core's layout.
        unsafe {
            a.as_ptr().write(Core::new_for_tests(Op::Noop));
            (*a.as_ptr()).gen = 1;
            (*a.as_ptr()).state = State::Free;
            r.free(a, l);
        }
        let (b, gen) = r.alloc(l);
        assert_eq!(a, b, "the freed block is reused");
        assert_eq!(gen, 1, "with its next generation");
        let mut live = 0;
        // SAFETY: mark `b` live again for the walk below.
        unsafe {
            b.as_ptr().write(Core::new_for_tests(Op::Noop));
        }
        r.for_each_live(|_| live += 1);
        assert_eq!(live, 1);
        // Many blocks: several chunks, all distinct.
        let mut seen = std::collections::HashSet::new();
        let n = if cfg!(miri) { 300 } else { 10_000 };
        for _ in 0..n {
            let (c, _) = r.alloc(l);
            // SAFETY: fresh block.
            unsafe { c.as_ptr().write(Core::new_for_tests(Op::Noop)) };
            assert!(seen.insert(c.as_ptr() as usize));
        }
        let mut live = 0;
        r.for_each_live(|_| live += 1);
        assert_eq!(live, n + 1);
    }
}
