//! Watchers: platform-agnostic, high-level sugar over completions, written
//! once against the [`Backend`](crate::backend::Backend) contract so they
//! work on every backend.
//!
//! Each watcher owns its completions for its whole life: they are added to
//! the loop *parked* when the watcher is created and restarted for each
//! request, so running, resetting or rearming a watcher allocates nothing.
//! Callbacks are closures that receive the loop and a typed result (and
//! buffers back by value where the watcher lent them to the kernel). A
//! callback returning [`Action::Rearm`](crate::Action::Rearm) repeats the
//! request; [`Action::Disarm`](crate::Action::Disarm) and
//! [`Action::Park`](crate::Action::Park) both leave the watcher idle and
//! reusable. A watcher's `free` releases its completions; a watcher dropped
//! without `free` keeps them parked in its loop until the loop is dropped.

pub mod async_wait;
pub mod file;
#[cfg_attr(not(target_os = "linux"), path = "process_kqueue.rs")]
pub mod process;
pub mod stream;
pub mod tcp;
pub mod timer;
pub mod udp;

pub use timer::Timer;
