//! Says which backends this host can run, in the test output itself (a
//! harness-less test, so nothing captures it), with the same probe the
//! per-backend tests use (`tests/support/harness.rs`): where io_uring is
//! not allowed (`kernel.io_uring_disabled`, a seccomp profile...), its
//! tests skip with a message, and this line says so up front.

#[path = "support/harness.rs"]
#[allow(dead_code, unused_macros)] // only the probe and the list are used here
mod harness;

fn main() {
    for backend in harness::BACKENDS {
        match harness::probe(backend) {
            Ok(()) => println!("xev backends: {backend} available"),
            Err(e) => println!(
                "xev backends: {backend} NOT available here ({e}): its tests skip, the others still run"
            ),
        }
    }
    match xev::Loop::new(xev::Options::default()) {
        Ok(lp) => println!("xev backends: the default loop: {}", lp.capabilities()),
        Err(e) => println!("xev backends: no default loop here: {e}"),
    }
    #[cfg(target_os = "linux")]
    match xev::backend::dynamic::choose() {
        Ok(k) => println!("xev backends: the dynamic backend picks {k:?}"),
        Err(e) => println!("xev backends: XEV_BACKEND is invalid: {e}"),
    }
}
