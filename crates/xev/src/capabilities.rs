//! What a loop's backend can do on the running system, and why it is the
//! backend it is: [`Capabilities`], from [`Loop::capabilities`]
//! (crate::Loop::capabilities). For diagnostics and benchmark headers: the
//! loop itself never needs it (operations fall back on their own).

use std::fmt;

/// How one operation is carried out by a loop's backend here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Via {
    /// The kernel performs it (an io_uring opcode, an overlapped call).
    Kernel,
    /// A non-blocking syscall once the descriptor is ready.
    Readiness,
    /// A blocking call on the loop's thread pool.
    ThreadPool,
    /// Inline on the loop's thread (WASI, where files never wait).
    Inline,
    /// Not at all: the operation answers `Unsupported`.
    Unsupported,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::Kernel => "kernel",
            Via::Readiness => "readiness",
            Via::ThreadPool => "thread pool",
            Via::Inline => "inline",
            Via::Unsupported => "unsupported",
        })
    }
}

/// What a loop's backend does on this system.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The backend's name, as [`Loop::backend_name`](crate::Loop::backend_name).
    pub backend: &'static str,
    /// Why a dynamic loop is not on io_uring: `XEV_BACKEND` chose epoll,
    /// or the io_uring probe failed (its error, with what it most likely
    /// means: seccomp, `kernel.io_uring_disabled`, no io_uring in the
    /// kernel, the memlock limit). `None` when the loop is on the backend
    /// it would prefer.
    pub fallback: Option<String>,
    /// io_uring only: the ring's setup flags, as applied
    /// (`single_issuer+defer_taskrun`, `coop_taskrun`, or `none` on older
    /// kernels).
    pub ring_setup: Option<&'static str>,
    /// How each filesystem request of [`Op::Fs`](crate::Op::Fs) is carried
    /// out, by name (`open`, `stat`, `fsync`, `fallocate`, `rename`,
    /// `unlink`, `mkdir`, `symlink`, `link`): on io_uring, in the kernel
    /// where the per-loop probe found the opcode, else on the pool.
    pub fs: Vec<(&'static str, Via)>,
    /// io_uring only: the size from which sends go as zero-copy sends
    /// ([`Options::io_uring_send_zc_min`](crate::Options::io_uring_send_zc_min)),
    /// if the loop asked for them and the kernel has them.
    pub send_zc: Option<usize>,
}

impl Capabilities {
    /// A backend that reports nothing but its name and how it does
    /// filesystem requests (all the same way).
    pub(crate) fn plain(backend: &'static str, fs: Via) -> Capabilities {
        Capabilities {
            backend,
            fallback: None,
            ring_setup: None,
            fs: FS_REQUESTS.iter().map(|&n| (n, fs)).collect(),
            send_zc: None,
        }
    }

    /// What a backend without native filesystem opcodes reports: the
    /// requests go to the thread pool (inline on WASI), except those this
    /// platform lacks (fallocate on macOS and Windows; fallocate and
    /// symlink on WASI), which are `Unsupported`.
    pub(crate) fn without_native_fs(backend: &'static str) -> Capabilities {
        let routed = if cfg!(target_os = "wasi") {
            Via::Inline
        } else {
            Via::ThreadPool
        };
        let mut c = Capabilities::plain(backend, routed);
        let missing: &[&str] = if cfg!(target_os = "wasi") {
            &["fallocate", "symlink"]
        } else if cfg!(any(windows, target_vendor = "apple")) {
            &["fallocate"]
        } else {
            &[]
        };
        for (name, via) in &mut c.fs {
            if missing.contains(name) {
                *via = Via::Unsupported;
            }
        }
        c
    }
}

/// The filesystem requests [`Capabilities::fs`] names, in order.
pub(crate) const FS_REQUESTS: [&str; 9] = [
    "open", "stat", "fsync", "fallocate", "rename", "unlink", "mkdir", "symlink", "link",
];

impl fmt::Display for Capabilities {
    /// One line: `io_uring (ring: single_issuer+defer_taskrun; fs: open
    /// kernel, ...)`, plus the fallback reason where there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.backend)?;
        let mut parts = Vec::new();
        if let Some(r) = self.ring_setup {
            parts.push(format!("ring: {r}"));
        }
        if !self.fs.is_empty() {
            let first = self.fs[0].1;
            if self.fs.iter().all(|&(_, v)| v == first) {
                parts.push(format!("fs: {first}"));
            } else {
                let each: Vec<String> = self.fs.iter().map(|(n, v)| format!("{n} {v}")).collect();
                parts.push(format!("fs: {}", each.join(", ")));
            }
        }
        if let Some(n) = self.send_zc {
            parts.push(format!("zero-copy sends from {n} bytes"));
        }
        if let Some(why) = &self.fallback {
            parts.push(format!("not io_uring: {why}"));
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join("; "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_groups_identical_fs_routes() {
        let c = Capabilities::plain("epoll", Via::ThreadPool);
        assert_eq!(c.to_string(), "epoll (fs: thread pool)");
        let mut c = Capabilities::plain("io_uring", Via::Kernel);
        c.ring_setup = Some("coop_taskrun");
        c.fs[3].1 = Via::ThreadPool;
        let s = c.to_string();
        assert!(s.starts_with("io_uring (ring: coop_taskrun; fs: open kernel, "), "{s}");
        assert!(s.contains("fallocate thread pool"), "{s}");
    }
}
