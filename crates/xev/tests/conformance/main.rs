//! Backend conformance suite: what every backend must do the same way,
//! split by topic (one module per file of this directory).
//!
//! Every test is written once, generic over `B: xev::backend::Backend`,
//! inside its topic's `for_each_backend!` (`tests/support/harness.rs`),
//! which instantiates it for every backend this host can run:
//! `TOPIC::io_uring::NAME`, `TOPIC::epoll::NAME`, `TOPIC::dynamic::NAME`
//! and, under libkqueue or on macOS and FreeBSD, `TOPIC::kqueue::NAME`. A
//! backend that cannot run here (io_uring forbidden by the kernel or a
//! sandbox) has its tests skipped with a message on stderr.
//!
//! Safety nets: waits go through [`support::run_until`], which arms a 5 s
//! timer that stops the loop and fails the test instead of hanging; every
//! test also runs under the harness's watchdog thread, which aborts the
//! process if a test hangs outside the loop's own waiting (in a drop, say).

// On WASI some topics and tests are left out (no pipes, threads or, on
// preview 1, sockets): the helpers only they use are unused there.
#![cfg_attr(target_os = "wasi", allow(dead_code, unused_imports))]

#[cfg(any(unix, target_os = "wasi"))]
#[path = "../support/pipes.rs"]
mod test_pipes;
#[cfg(windows)]
#[path = "../support/win_io.rs"]
mod win_io;
#[path = "../support/harness.rs"]
#[macro_use]
mod harness;
#[cfg(not(target_os = "wasi"))]
#[path = "../support/children.rs"]
mod children;

#[macro_use]
mod support;

mod async_wait;
mod bad_fds;
mod blocking;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
mod buf_pools;
mod cancel;
mod close;
mod completions;
mod drop_safety;
mod files;
mod fs_ops;
// WASI preview 1 cannot create sockets (no socket2, no std::net that
// works): the topics built on them are left out there.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
mod names;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
mod net;
mod pipes;
mod poll;
mod run_modes;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
mod sockets;
mod stale_completions;
mod timer_sets;
mod timers;

/// Every file of this directory is one of the modules above: a topic file
/// that is not declared would otherwise be silently left out of the suite.
/// (Not on WASI: the sandbox does not see the source tree's host path.)
#[cfg(not(target_os = "wasi"))]
#[test]
fn every_topic_file_is_compiled() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let main = include_str!("main.rs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("reading tests/conformance") {
        let path = entry.expect("a directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if stem == "main" {
            continue;
        }
        assert!(
            main.lines().any(|l| l.trim() == format!("mod {stem};")),
            "tests/conformance/{stem}.rs is not declared in main.rs: its tests never run"
        );
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} topic files found in {}",
        dir.display()
    );
}
