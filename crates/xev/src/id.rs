//! Completion ids ([`Id`]): how callers name a completion that the loop
//! owns, checkable against the loop's memory even after it was freed.

use std::fmt;

/// Identifies a completion owned by a loop. Copyable; becomes stale (and
/// every request made with it fails with [`crate::IdError::Stale`] or
/// [`CancelError::NotFound`](crate::CancelError::NotFound)) once the completion is freed.
///
/// An id is the completion's address in the loop's completion memory, the
/// generation of that memory when the completion was added, and the loop's
/// tag. The loop keeps that memory until it is dropped, so it can always
/// check an id of its own (an id of another loop has another tag and is
/// never followed).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id {
    /// The completion's address, type-erased (only its loop casts it back,
    /// after checking the tag).
    pub(crate) ptr: *mut (),
    pub(crate) gen: u32,
    pub(crate) tag: u32,
}

// SAFETY: an id is an inert handle: only the loop whose tag it carries ever
// follows its pointer, on that loop's own thread, after checking it.
unsafe impl Send for Id {}
// SAFETY: as above; an id has no interior mutability.
unsafe impl Sync for Id {}

impl Id {
    /// Names no completion of any loop (loop tags start at 1): a
    /// placeholder that is always stale.
    pub(crate) const DETACHED: Id = Id {
        ptr: std::ptr::null_mut(),
        gen: 0,
        tag: 0,
    };

    pub(crate) fn new(core: *mut (), gen: u32, tag: u32) -> Id {
        Id {
            ptr: core,
            gen,
            tag,
        }
    }

    /// The completion's address (check `gen` and `tag` before use).
    pub(crate) fn addr(self) -> *mut () {
        self.ptr
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({:p}v{}@{})", self.ptr, self.gen, self.tag)
    }
}
