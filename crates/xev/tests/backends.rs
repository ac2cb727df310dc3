//! Says which backends this host can run, in the test output itself (a
//! harness-less test, so nothing captures it): where io_uring is not
//! allowed (`kernel.io_uring_disabled`, a seccomp profile...), the io_uring
//! tests skip with a message, and this line says so up front.

fn main() {
    #[cfg(target_os = "linux")]
    {
        match xev::backend::io_uring::IoUring::probe() {
            Ok(()) => println!("xev backends: io_uring available; epoll available"),
            Err(e) => println!(
                "xev backends: io_uring NOT available here ({e}): its tests skip, \
                 epoll and dynamic (on epoll) still run"
            ),
        }
        match xev::backend::dynamic::choose() {
            Ok(k) => println!("xev backends: the dynamic backend picks {k:?}"),
            Err(e) => println!("xev backends: XEV_BACKEND is invalid: {e}"),
        }
    }
    #[cfg(not(target_os = "linux"))]
    println!("xev backends: kqueue");
}
