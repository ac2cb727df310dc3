//! The one per-backend test harness of xev's integration tests: the list of
//! backends this host can run, the one probe that says why a backend is
//! skipped, the watchdog that aborts a hung test, and [`for_each_backend!`],
//! which instantiates a module's tests for every backend.
//!
//! Each test binary includes this file as its `harness` module, at its root
//! and before anything that uses the macro:
//!
//! ```ignore
//! #[path = "support/harness.rs"] // "../support/harness.rs" from tests/NAME/main.rs
//! #[macro_use]
//! mod harness;
//! ```
//!
//! and writes its tests once, as generic functions inside the macro (one
//! invocation per module):
//!
//! ```ignore
//! for_each_backend!(
//!     /// Doc comments and attributes are kept.
//!     fn timers_fire_in_order<B: Backend>() {
//!         let mut lp = new_loop::<B>();
//!         // ...
//!     }
//! );
//! ```
//!
//! which keeps the functions as written and adds, next to them, one module
//! per backend (`io_uring`, `epoll`, `dynamic` on Linux; `kqueue` under
//! `cfg(any(xev_libkqueue, target_os = "macos", target_os = "freebsd"))`)
//! with a `#[test] fn timers_fire_in_order()` that runs it on that backend
//! through [`run`]: the test is skipped, with a message on stderr, when
//! [`probe`] says the backend cannot run here, and runs under a [`Watchdog`]
//! otherwise. Every test name is written once; the macro accepts nothing
//! but test functions of exactly that shape (helpers live outside it), and
//! a test function written outside it is never called, which the
//! `dead_code` lint reports (and CI denies).

use std::cell::Cell;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The backends this build instantiates tests for, by module name, in the
/// order [`for_each_backend!`] declares them (`tests/backends.rs` prints
/// what [`probe`] says of each).
#[allow(dead_code)] // read by tests/backends.rs only
pub const BACKENDS: &[&str] = &[
    #[cfg(target_os = "linux")]
    "io_uring",
    #[cfg(target_os = "linux")]
    "epoll",
    #[cfg(target_os = "linux")]
    "dynamic",
    #[cfg(any(xev_libkqueue, target_os = "macos", target_os = "freebsd"))]
    "kqueue",
    #[cfg(windows)]
    "iocp",
    #[cfg(target_os = "wasi")]
    "wasi",
];

/// Whether `backend` (a module name of [`BACKENDS`]) can run on this host:
/// io_uring where a real ring works (`kernel.io_uring_disabled` and seccomp
/// profiles often forbid it), the dynamic backend when its choice (from
/// `XEV_BACKEND`, or io_uring else epoll) is valid here; epoll and kqueue
/// always.
pub fn probe(backend: &str) -> std::io::Result<()> {
    match backend {
        #[cfg(target_os = "linux")]
        "io_uring" => xev::backend::io_uring::IoUring::probe(),
        #[cfg(target_os = "linux")]
        "dynamic" => xev::backend::dynamic::choose().map(|_| ()),
        _ => Ok(()),
    }
}

/// Tests that cannot apply on a backend, each with the reason: the one
/// list of them (matched against the end of the test's path,
/// `TOPIC::BACKEND::NAME`, or a whole `TOPIC::BACKEND::`). [`run`] skips them with the reason on stderr.
pub const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "pipes::iocp::partial_reads_leave_the_rest",
        "it checks readiness with a poll, Unsupported on IOCP",
    ),
    ("poll::iocp::", "poll is Unsupported on IOCP"),
    (
        "::iocp::poll_readiness",
        "poll is Unsupported on IOCP (conformance net::poll_is_readiness_or_unsupported checks that)",
    ),
    (
        "cancel::iocp::cancel_pending_poll",
        "poll is Unsupported on IOCP (net::poll_is_readiness_or_unsupported checks that)",
    ),
    (
        "completions::iocp::more_ops_than_ring_entries",
        "it keeps half its operations pending with polls, Unsupported on IOCP",
    ),
    (
        "completions::iocp::rearm_across_op_kinds",
        "one of the kinds it rearms through is a poll, Unsupported on IOCP",
    ),
    (
        "drop_safety::iocp::drop_loop_with_many_kinds_in_flight",
        "one of the kinds it leaves in flight is a poll, Unsupported on IOCP",
    ),
];

/// Tests that cannot apply on WASI (`wasm32-wasip1`, `wasm32-wasip2`), by
/// reason, matched like [`NOT_APPLICABLE`]. Preview 1 also cannot create
/// sockets: its test binaries leave out the topics that need them
/// (`tests/conformance/main.rs` says which).
#[cfg(target_os = "wasi")]
pub const NOT_APPLICABLE_ON_WASI: &[(&str, &[&str])] = &[
    (
        "WASI has no pipes (nor socketpair): the test's descriptors cannot be made",
        &[
            "bad_fds::wasi::wrong_kind_of_fd_gives_honest_errno",
            "bad_fds::wasi::receive_rearmed_on_a_pipe_fails_at_once",
            "cancel::wasi::cancel_completes_after_its_target",
            "cancel::wasi::cancel_of_queued_target",
            "cancel::wasi::cancel_pending_pipe_read",
            "cancel::wasi::cancel_pending_poll",
            "cancel::wasi::cancel_pending_write",
            "cancel::wasi::loop_cancel_answers",
            "cancel::wasi::loop_cancel_direct",
            "cancel::wasi::two_cancels_of_one_pending_read",
            "close::wasi::close_cancels_pending_ops_on_the_fd",
            "close::wasi::close_completes_after_the_ops_it_cancels",
            "close::wasi::close_keeps_other_descriptors_events",
            "completions::wasi::id_errors_busy_stale_wrong_kind",
            "completions::wasi::more_ops_than_ring_entries",
            "completions::wasi::rearm_across_op_kinds",
            "completions::wasi::rearm_with_changed_op",
            "completions::wasi::stale_id_never_reaches_a_reused_slot",
            "drop_safety::wasi::drop_loop_with_cancel_queued",
            "drop_safety::wasi::drop_loop_with_many_kinds_in_flight",
            "drop_safety::wasi::drop_loop_with_parked_and_unstarted",
            "drop_safety::wasi::drop_loop_with_read_in_flight",
            "pipes::wasi::",
            "poll::wasi::poll_readable_after_peer_writes",
            "poll::wasi::poll_rearmed_while_ready_fires_again",
            "poll::wasi::poll_reports_hangup",
            "poll::wasi::poll_writable_right_away",
            "stale_completions::wasi::cancel_after_rearm_of_ready_read",
            "stale_completions::wasi::ready_at_submission_rearm_fires_once_each",
            "stale_completions::wasi::stale_after_nowait_disarm",
        ],
    ),
    (
        "it notifies or connects from a second thread: WASI has no threads",
        &[
            "async_wait::wasi::async_notified_many_times_from_a_thread",
            "async_wait::wasi::async_lockstep_rounds_wake_a_parked_loop_each_time",
            "async_wait::wasi::async_notify_before_wait_is_not_lost",
            "async_wait::wasi::async_several_handles",
            "blocking::wasi::blocking_listener_accept_waits_for_a_client",
            "timers::wasi::far_future_wait_is_woken_by_other_work",
            // xev-async's tests/runtime.rs
            "runtime::wasi::work_from_another_thread",
            "runtime::wasi::echo_server_holds_one_buffer_against_a_client_that_does_not_read",
        ],
    ),
    (
        "wasi-libc cannot read a preview 2 socket's mode (fcntl F_GETFL is EINVAL), so a blocking socket cannot be told from a non-blocking one: on WASI, sockets given to the loop must be non-blocking (the Tcp and Udp watchers make theirs so)",
        &[
            "blocking::wasi::blocking_socket_connect_waits",
            "blocking::wasi::blocking_socket_reads_wait_for_data",
            "blocking::wasi::blocking_socket_writes_wait_for_room",
        ],
    ),
    (
        "its 2 GiB buffer does not fit a 32-bit wasm memory",
        &[
            "blocking::wasi::huge_buffer_reads_return_what_is_there",
            "blocking::wasi::huge_buffer_writes_give_short_counts",
        ],
    ),
    (
        "it resets a connection with SO_LINGER, which WASI does not offer",
        &["sockets::wasi::tcp_reset_gives_econnreset"],
    ),
    #[cfg(not(target_env = "p1"))]
    (
        "it fills a socket's send buffer to make a write wait: on preview 2 (wasmtime 49) sends go into the host's output stream, and the peer's read then failed (measured), so the test cannot set up its wait; the path it guards, an edge-triggered poller widening its registration for a waiting write, does not exist on WASI, whose poller is level-triggered over the waiters' interests",
        &["sockets::wasi::a_write_that_waits_beside_a_waiting_read_completes"],
    ),
    (
        "it holds a connect pending behind a listener with a backlog of 0, which wasi-libc refuses (EINVAL)",
        &["cancel::wasi::cancel_pending_connect"],
    ),
    #[cfg(target_env = "p1")]
    (
        "WASI preview 1 cannot create sockets (bind, listen and connect are Unsupported in std::net)",
        &[
            "cancel::wasi::cancel_pending_accept",
            "cancel::wasi::cancel_pending_recv",
            "cancel::wasi::cancel_pending_recvmsg",
            "cancel::wasi::cancel_pending_socket_read",
        ],
    ),
    #[cfg(target_env = "p1")]
    (
        "it expects EBADF from every operation on a bad descriptor; on preview 1 connect, sendmsg and recvmsg are Unsupported whatever the descriptor",
        &["bad_fds::wasi::bad_fd_closed_number", "bad_fds::wasi::bad_fd_minus_one"],
    ),
    #[cfg(target_env = "p1")]
    (
        "WASI preview 1 cannot create sockets",
        &[
            "wasi::tcp_round_trips_allocate_nothing",
            "wasi::pooled_receives_allocate_nothing",
            "wasi::accepts_allocate_nothing",
        ],
    ),
    #[cfg(not(target_env = "p1"))]
    (
        "on preview 2 every socket transfer allocates in the guest (measured: 4 allocations per round trip, with raw operations as with the watchers): the component model hands a stream read's bytes and poll's ready list back through cabi_realloc, which Rust's std routes to the global allocator, so the counting allocator sees wasi-libc's transfers, not xev's",
        &[
            "wasi::tcp_round_trips_allocate_nothing",
            "wasi::pooled_receives_allocate_nothing",
            "wasi::accepts_allocate_nothing",
            "wasi::tcp_echo_allocates_nothing",
            "wasi::udp_rearm_and_restart_allocate_nothing",
            "wasi::async_udp_allocates_nothing",
            // xev-async's tests/alloc.rs
            "wasi::async_echo_allocates_nothing",
        ],
    ),
    (
        "wasm tests run with panic=abort: a deliberate panic ends the test binary",
        &[
            "completions::wasi::panic_in_callback_leaves_loop_usable",
            "completions::wasi::panic_in_drop_of_captures_drops_once",
            "timer_sets::wasi::a_panicking_set_callback_leaves_the_loop_usable",
            "timer_sets::wasi::dropping_the_loop_drops_set_callbacks",
        ],
    ),
    (
        "its premise is a loop without a thread pool; WASI has none and runs file operations inline (files::wasi::file_pread_pwrite and fs_ops check that)",
        &[
            "files::wasi::file_pread_pwrite_without_pool",
            "fs_ops::wasi::fs_without_a_pool",
            "fs_ops::wasi::fs_op_canceled_before_it_starts",
        ],
    ),
    (
        "name lookups need the thread pool: Unsupported on WASI (names::wasi::resolve_is_unsupported_on_wasi checks that)",
        &[
            "names::wasi::many_lookups_at_once_each_complete_once",
            "names::wasi::resolve_a_missing_name_is_not_found",
            "names::wasi::resolve_canceled_before_it_runs_ends_canceled",
            "names::wasi::resolve_helper_reports_malformed_input",
            "names::wasi::resolve_literals_and_localhost",
            "names::wasi::tcp_connect_by_name_reaches_a_listener",
            "names::wasi::udp_for_peer_sends_to_the_resolved_address",
            "names::wasi::resolve_without_a_pool_says_so",
        ],
    ),
];

/// How long one test may run before its [`Watchdog`] aborts the test
/// binary: a minute (ten under Miri, which is ~100 times slower). A test
/// that legitimately runs longer raises its own limit with
/// [`watchdog_limit`].
pub const WATCHDOG: Duration = Duration::from_secs(if cfg!(miri) { 600 } else { 60 });

thread_local! {
    /// The backend the test running on this thread was instantiated for.
    static BACKEND: Cell<&'static str> = const { Cell::new("") };
    /// The running test's watchdog, to raise its limit.
    static LIMIT: Cell<Option<mpsc::Sender<Duration>>> = const { Cell::new(None) };
}

/// The module name of the backend the current test runs on (`"io_uring"`,
/// `"epoll"`, `"dynamic"`, `"kqueue"`, `"iocp"`); empty outside a harness test.
#[allow(dead_code)] // not every test binary asks
pub fn backend() -> &'static str {
    BACKEND.with(Cell::get)
}

/// Lets the current test run for `limit` in all (counted from its start)
/// before its watchdog aborts the binary.
#[allow(dead_code)] // not every test binary needs it
pub fn watchdog_limit(limit: Duration) {
    LIMIT.with(|l| {
        let tx = l.take().expect("watchdog_limit outside a harness test");
        // On WASI there is no watchdog thread to tell.
        if !cfg!(target_os = "wasi") {
            tx.send(limit).expect("the watchdog thread is gone");
        }
        l.set(Some(tx));
    });
}

/// Aborts the process if the test it guards runs for longer than its limit
/// ([`WATCHDOG`] unless raised): a hang that the tests' own guard timers
/// cannot catch, e.g. inside `Drop` or a blocking system call. Dropping it
/// (the test ended, or is unwinding) stops the watchdog thread.
pub struct Watchdog(mpsc::Sender<Duration>);

impl Watchdog {
    pub fn start(test: &'static str) -> Watchdog {
        let (tx, rx) = mpsc::channel::<Duration>();
        // No threads on WASI: the tests' own guard timers are the net
        // there (and `.ci/run` bounds the whole run).
        if cfg!(target_os = "wasi") {
            drop(rx);
            return Watchdog(tx);
        }
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut limit = WATCHDOG;
            loop {
                let left = limit.saturating_sub(start.elapsed());
                match rx.recv_timeout(left) {
                    Ok(new) => limit = new,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        eprintln!("test {test} hung for {limit:?}: aborting the test binary");
                        std::process::abort();
                    }
                }
            }
        });
        Watchdog(tx)
    }
}

/// Clears the thread's record of the running test when it ends (or
/// unwinds).
struct Current;

impl Drop for Current {
    fn drop(&mut self) {
        BACKEND.with(|b| b.set(""));
        LIMIT.with(|l| l.set(None));
    }
}

/// Whether `code` is the platform's "bad descriptor or handle" error:
/// `EBADF` on Unix; on Windows `ERROR_INVALID_HANDLE` (file calls) or
/// `WSAENOTSOCK` (WinSock calls, which is what an invalid socket gets).
#[allow(dead_code)] // not every test binary needs it
pub fn is_bad_handle(code: Option<i32>) -> bool {
    #[cfg(any(unix, target_os = "wasi"))]
    return code == Some(libc::EBADF);
    #[cfg(windows)]
    return matches!(code, Some(6) | Some(10038));
}

/// Tests that wine 8 cannot run (real Windows can), each with the reason;
/// skipped only when the test runs under wine (see [`under_wine`]).
pub const NOT_UNDER_WINE: &[(&str, &str)] = &[
    (
        "blocking::iocp::blocking_socket_write_file_waits_for_room",
        "wine 8 never completes a WriteFile on a socket that had to wait for room, even once the peer drains it (WSASend, Op::Send, does complete)",
    ),
    (
        "::iocp::udp_outlives_loop",
        "moving a handle to another loop's completion port needs FileReplaceCompletionInformation, which wine 8 does not implement",
    ),
];

/// Whether this Windows test binary runs under wine (its ntdll exports
/// `wine_get_version`).
#[cfg(windows)]
pub fn under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: NUL-terminated names; ntdll is loaded in every process.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

/// Whether this test binary runs under wine (never off Windows).
#[cfg(not(windows))]
pub fn under_wine() -> bool {
    false
}

/// Runs one instantiated test: `test` (its full path, for messages) on
/// `backend`, by calling `f`. Skips it with a message on stderr when
/// [`probe`] says the backend cannot run here; otherwise runs it under a
/// [`Watchdog`].
pub fn run(backend: &'static str, test: &'static str, f: fn()) {
    if let Err(e) = probe(backend) {
        eprintln!("{backend} unavailable here ({e}): skipping {test}");
        return;
    }
    if let Some((_, why)) = NOT_APPLICABLE
        .iter()
        .find(|(t, _)| test.ends_with(t) || (t.ends_with("::") && test.contains(t)))
    {
        eprintln!("not applicable: skipping {test}: {why}");
        return;
    }
    #[cfg(target_os = "wasi")]
    if let Some((why, _)) = NOT_APPLICABLE_ON_WASI.iter().find(|(_, tests)| {
        tests
            .iter()
            .any(|t| test.ends_with(t) || (t.ends_with("::") && test.contains(t)))
    }) {
        eprintln!("not applicable on WASI: skipping {test}: {why}");
        return;
    }
    if let Some((_, why)) = NOT_UNDER_WINE
        .iter()
        .find(|(t, _)| under_wine() && test.ends_with(t))
    {
        eprintln!("not under wine: skipping {test}: {why}");
        return;
    }
    #[cfg(xev_libkqueue)]
    start_libkqueue();
    let watchdog = Watchdog::start(test);
    BACKEND.with(|b| b.set(backend));
    LIMIT.with(|l| l.set(Some(watchdog.0.clone())));
    let _current = Current;
    f();
}

/// Makes libkqueue open its process-wide descriptors (the epoll and
/// eventfd of its close-detection thread, made at the first `kqueue()`
/// and kept for the life of the process) before any test runs. Made in the
/// middle of the tests, they took whatever numbers were free at that
/// moment, and a test waiting to get a number it had just closed back (the
/// descriptor-reuse tests) could find it taken for good: one of them failed
/// now and then in the libkqueue build, on any backend.
#[cfg(xev_libkqueue)]
fn start_libkqueue() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        drop(
            xev::generic::Loop::<xev::backend::kqueue::Kqueue>::new(Default::default())
                .expect("a kqueue loop (libkqueue)"),
        );
    });
}

/// Instantiates the test functions written inside it for every backend
/// this host can run (see the module documentation). Each function must be
/// `fn NAME<B: Backend>() { ... }` (attributes and doc comments allowed),
/// with `Backend` (`xev::backend::Backend`) in scope. A function's
/// attributes also go on its instantiations, so a `#[cfg(unix)]` scenario
/// is instantiated only where it compiles.
macro_rules! for_each_backend {
    (@backend $module:ident, $backend:ty; $([$(#[$attr:meta])*] $name:ident)*) => {
        mod $module {
            $(
                $(#[$attr])*
                #[test]
                fn $name() {
                    $crate::harness::run(
                        stringify!($module),
                        concat!(module_path!(), "::", stringify!($name)),
                        super::$name::<$backend>,
                    );
                }
            )*
        }
    };
    ($($(#[$attr:meta])* fn $name:ident<B: Backend>() $body:block)*) => {
        $($(#[$attr])* fn $name<B: Backend>() $body)*

        #[cfg(target_os = "linux")]
        for_each_backend!(@backend io_uring, xev::backend::io_uring::IoUring; $([$(#[$attr])*] $name)*);
        #[cfg(target_os = "linux")]
        for_each_backend!(@backend epoll, xev::backend::epoll::Epoll; $([$(#[$attr])*] $name)*);
        // Whichever of the two this host allows (or XEV_BACKEND forces):
        // every test must hold for it too.
        #[cfg(target_os = "linux")]
        for_each_backend!(@backend dynamic, xev::backend::dynamic::Dynamic; $([$(#[$attr])*] $name)*);
        // Natively on macOS and FreeBSD; through libkqueue on Linux
        // (RUSTFLAGS="--cfg xev_libkqueue", see the README).
        #[cfg(any(xev_libkqueue, target_os = "macos", target_os = "freebsd"))]
        for_each_backend!(@backend kqueue, xev::backend::kqueue::Kqueue; $([$(#[$attr])*] $name)*);
        #[cfg(windows)]
        for_each_backend!(@backend iocp, xev::backend::iocp::Iocp; $([$(#[$attr])*] $name)*);
        // Under wasmtime (see .ci/run): wasm32-wasip1 and wasm32-wasip2.
        #[cfg(target_os = "wasi")]
        for_each_backend!(@backend wasi, xev::backend::wasi::Wasi; $([$(#[$attr])*] $name)*);
    };
}
