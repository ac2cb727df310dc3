//! The epoll backend: the thin, Linux-specific part of a readiness backend.
//!
//! Descriptors are registered edge-triggered for both directions, with the
//! descriptor number as the event's data; everything else (optimistic
//! attempts, waiter lists, retries) is the shared
//! [`readiness`](super::contract) machinery. File `pread`/`pwrite` run on
//! the loop's thread pool, since epoll cannot wait on regular files.

pub use crate::sys::epoll::EpollPoller;

use super::readiness::Readiness;

/// The epoll backend.
pub type Epoll = Readiness<EpollPoller>;
