//! Pipes for the tests: non-blocking and close-on-exec, made with `pipe2`
//! where it exists (one syscall, and one Miri emulates), else `pipe` and
//! `fcntl`. Included by each test binary that needs it with `#[path]`.

#[cfg(unix)]
use std::os::fd::FromRawFd;
use std::os::fd::OwnedFd;

/// A non-blocking, close-on-exec pipe: (read end, write end). `pipe2`
/// where it exists (one syscall, and one Miri supports), else `pipe` and
/// `fcntl`.
#[cfg(unix)]
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as libc::c_int; 2];
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        // SAFETY: `fds` is a live array of two ints for the kernel to fill.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        // SAFETY: `fds` is a live array of two ints for the kernel to fill.
        let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
        assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
        for fd in fds {
            // SAFETY: fcntl on descriptors this function just created.
            unsafe {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                assert!(fl >= 0 && libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) == 0);
                assert_eq!(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC), 0);
            }
        }
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// WASI has no pipes: the tests that need one are listed in the harness's
/// `NOT_APPLICABLE` and never get here.
#[cfg(target_os = "wasi")]
pub fn pipe() -> (OwnedFd, OwnedFd) {
    panic!("WASI has no pipes (this test belongs in the harness's NOT_APPLICABLE list)")
}
