//! Child processes through the async layer, on every backend: exit codes,
//! piped stdin/stdout, kill, and a wait dropped before the exit.

// Not on WASI, which has no processes.
#![cfg(not(target_os = "wasi"))]

#[path = "../../xev/tests/support/harness.rs"]
#[macro_use]
mod harness;
#[path = "../../xev/tests/support/children.rs"]
mod children;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use xev::backend::Backend;
use xev::{Options, ThreadPool};
use xev_async::{sleep, timeout, Child, Runtime};

/// Child helper: copies stdin to stdout, upper-cased.
#[test]
#[ignore = "a child process of the process tests"]
fn child_shout() {
    if std::env::var(children::CHILD_ENV).is_ok() {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).unwrap();
        let mut out = std::io::stdout();
        out.write_all(s.to_uppercase().as_bytes()).unwrap();
        out.flush().unwrap();
        // Before the test harness prints its own lines.
        std::process::exit(0);
    }
}

/// A runtime with a thread pool (Windows runs the std pipes' I/O there).
fn rt<B: Backend>() -> Runtime<B> {
    Runtime::<B>::with_options(Options {
        thread_pool: Some(ThreadPool::new(Default::default()).unwrap()),
        ..Options::default()
    })
    .unwrap()
}

for_each_backend!(
    fn child_exit_code_and_pipes<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let mut c =
                children::retry(|| Child::spawn(&mut children::exiting(42)), children::io).unwrap();
            assert_eq!(c.wait().await.unwrap().code(), Some(42));
            // Known now: at once, and killing it is a no-op.
            assert_eq!(c.wait().await.unwrap().code(), Some(42));
            c.kill().unwrap();

            let mut cmd = children::command("child_shout", 0);
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let mut c = children::retry(|| Child::spawn(&mut cmd), children::io).unwrap();
            let stdin = c.stdin.take().unwrap();
            stdin.write_all(b"quiet words".as_slice()).await.0.unwrap();
            drop(stdin); // end of file for the child
            let out = c.stdout.take().unwrap().read_to_end().await.unwrap();
            assert!(
                out.ends_with(b"QUIET WORDS"),
                "{:?}",
                String::from_utf8_lossy(&out)
            );
            assert!(c.wait().await.unwrap().success());
        });
    }

    fn child_killed_and_wait_dropped<B: Backend>() {
        let rt = rt::<B>();
        rt.block_on(async {
            let mut c =
                children::retry(|| Child::spawn(&mut children::sleeping()), children::io).unwrap();
            // A wait dropped before the exit: the child lives on.
            assert!(timeout(Duration::from_millis(1), c.wait()).await.is_err());
            sleep(Duration::from_millis(1)).await;
            c.kill().unwrap();
            let status = c.wait().await.unwrap();
            children::assert_killed(&status);
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }
);
