//! The process watcher, written once for every platform (IOCP included):
//! exit codes 0 and 42, a killed child, a child that exited before the
//! watch began, a process that is not ours, and `Process::spawn` with
//! piped stdio and `Process::kill`. The children are this test
//! binary itself, re-run on one of its `#[ignore]`d helper tests (below and
//! in `tests/support/children.rs`), so
//! no shell is needed. Each test runs on every backend this host can run
//! (`tests/support/harness.rs`).

// Not on WASI: no pipes, threads or child processes there (the
// conformance and allocation suites cover the WASI backend).
#![cfg(not(target_os = "wasi"))]
// The children are reaped by the watcher under test, not by `Child::wait`.
#![allow(clippy::zombie_processes)]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;
#[path = "support/children.rs"]
mod children;
use children::CHILD_ENV;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::rc::Rc;

use xev::backend::Backend;
use xev::generic::{Loop, OwnedLoop};
use xev::watcher::{Process, Stream, Timer};
use xev::{Action, Options, ProcessError, ReadError, RunMode};

/// Child helper: copies stdin to stdout in capitals, writes a line to
/// stderr, and exits with 3.
#[test]
#[ignore = "a child process of the tests below"]
fn child_shout() {
    if std::env::var(CHILD_ENV).is_ok() {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input).unwrap();
        let mut out = std::io::stdout().lock();
        out.write_all(&input.to_ascii_uppercase()).unwrap();
        out.flush().unwrap();
        // (Not eprint!: the test harness would capture it.)
        std::io::stderr().write_all(b"to stderr").unwrap();
        std::process::exit(3);
    }
}

/// Child helper: prints `XEV_PROCESS_TEST_CHILD` numbered lines, then
/// exits with that number modulo 7.
#[test]
#[ignore = "a child process of the tests below"]
fn child_lines() {
    if let Ok(n) = std::env::var(CHILD_ENV) {
        let n: usize = n.parse().expect("a line count");
        let mut out = std::io::stdout().lock();
        // One write: the supervisor finds all of it in the pipe at once.
        out.write_all(lines(n).as_bytes()).unwrap();
        out.flush().unwrap();
        std::process::exit((n % 7) as i32);
    }
}

/// Child helper: prints that it lags, then sleeps (until killed).
#[test]
#[ignore = "a child process of the tests below"]
fn child_lag() {
    if std::env::var(CHILD_ENV).is_ok() {
        let mut out = std::io::stdout().lock();
        out.write_all(b"lagging\n").unwrap();
        out.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}

/// What `child_lines` prints for `n`.
fn lines(n: usize) -> String {
    (0..n).map(|k| format!("line {k} of {n}\n")).collect()
}

/// Reads `s` to its end through the loop; the bytes, once end of file
/// came.
fn read_to_end<B: Backend>(lp: &mut Loop<B>, s: &Stream<B>) -> Rc<RefCell<Option<Vec<u8>>>> {
    let done = Rc::new(RefCell::new(None));
    let (d, mut acc) = (done.clone(), Vec::new());
    s.read(lp, vec![0; 256], move |_, buf, res| match res {
        Ok(n) => {
            acc.extend_from_slice(&buf[..n]);
            Action::Rearm
        }
        Err(ReadError::Eof) => {
            *d.borrow_mut() = Some(std::mem::take(&mut acc));
            Action::Disarm
        }
        Err(e) => panic!("read: {e}"),
    });
    done
}

/// Spawns `cmd` (a child helper) with its stdout piped.
fn spawn(mut cmd: Command) -> Child {
    children::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::null()))
}

fn new_loop<B: Backend>() -> OwnedLoop<B> {
    Loop::<B>::new(Options::default()).expect("creating the loop")
}

/// Watches `child` and runs the loop until its wait reports; returns the
/// result (after closing the watcher), or `None` when this host refuses
/// process watching (Linux without pidfds).
fn watch<B: Backend>(lp: &mut Loop<B>, child: &Child) -> Option<Result<ExitStatus, ProcessError>> {
    let p = match Process::<B>::from_child(child) {
        Ok(p) => p,
        Err(ProcessError::Unsupported) => return None,
        Err(e) => panic!("watching the child: {e}"),
    };
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    p.wait(lp, move |_, res| {
        *g.borrow_mut() = Some(res);
        Action::Disarm
    });
    lp.run(RunMode::UntilDone).unwrap();
    let res = got.borrow_mut().take().expect("the wait reported");
    if let Ok(status) = &res {
        assert_eq!(
            p.exit_status().as_ref(),
            Some(status),
            "the watcher keeps it"
        );
    }
    p.close(lp, |_, r| r.expect("close"));
    lp.run(RunMode::UntilDone).unwrap();
    assert_eq!(lp.active(), 0);
    Some(res)
}

for_each_backend!(
    /// Exit codes 0 and 42 come back as the child's exit status.
    fn process_exit_codes<B: Backend>() {
        let mut lp = new_loop::<B>();
        for code in [0, 42] {
            let child = spawn(children::exiting(code));
            let Some(res) = watch(&mut lp, &child) else {
                return;
            };
            assert_eq!(res.expect("the wait").code(), Some(code));
        }
    }

    /// A killed child reports a failed exit (a signal on Unix, exit code
    /// 1 from `TerminateProcess` on Windows).
    fn process_killed<B: Backend>() {
        let mut lp = new_loop::<B>();
        let mut child = spawn(children::sleeping());
        let p = match Process::<B>::from_child(&child) {
            Ok(p) => p,
            Err(ProcessError::Unsupported) => return,
            Err(e) => panic!("{e}"),
        };
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        p.wait(&mut lp, move |_, res| {
            *g.borrow_mut() = Some(res);
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap();
        assert!(got.borrow().is_none(), "the sleeper is still running");
        child.kill().expect("kill");
        lp.run(RunMode::UntilDone).unwrap();
        let status = got.borrow_mut().take().unwrap().expect("the wait");
        children::assert_killed(&status);
        p.close(&mut lp, |_, r| r.expect("close"));
        lp.run(RunMode::UntilDone).unwrap();
    }

    /// A child that exited before the watch began (its stdout reached end
    /// of file, it is not reaped yet) reports at once.
    fn process_exited_before_the_watch<B: Backend>() {
        let mut lp = new_loop::<B>();
        let mut child = spawn(children::exiting(7));
        let mut out = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        let Some(res) = watch(&mut lp, &child) else {
            return;
        };
        assert_eq!(res.expect("the wait").code(), Some(7));
    }

    /// `Process::spawn` with piped stdin, stdout and stderr: what the child
    /// reads from the stdin stream comes back on the stdout stream, its
    /// stderr on the stderr stream, and the wait reports its exit code.
    fn spawn_with_pipes<B: Backend>() {
        let mut lp = new_loop::<B>();
        let mut cmd = children::command("child_shout", 0);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = match children::retry(|| Process::<B>::spawn(&mut cmd), children::process_io)
        {
            Ok(s) => s,
            Err(ProcessError::Unsupported) => return,
            Err(e) => panic!("spawn: {e}"),
        };
        let (stdin, stdout, stderr) = (
            spawned.stdin.expect("stdin piped"),
            spawned.stdout.expect("stdout piped"),
            spawned.stderr.expect("stderr piped"),
        );
        let wrote = Rc::new(RefCell::new(false));
        let w = wrote.clone();
        stdin.queue_write(&mut lp, b"quiet words".to_vec(), move |_, _, res| {
            assert_eq!(res.expect("write to the child"), 11);
            *w.borrow_mut() = true;
            Action::Disarm
        });
        while !*wrote.borrow() {
            lp.run(RunMode::Once).unwrap();
        }
        // End of file for the child (a close cancels writes not yet done,
        // so it comes after the write).
        stdin.close(&mut lp, |_, res| res.expect("close stdin"));
        let out = read_to_end(&mut lp, &stdout);
        let err = read_to_end(&mut lp, &stderr);
        let status = Rc::new(RefCell::new(None));
        let st = status.clone();
        spawned.process.wait(&mut lp, move |_, res| {
            *st.borrow_mut() = Some(res);
            Action::Disarm
        });
        lp.run(RunMode::UntilDone).unwrap();
        // The test harness of the child prints its header first.
        let out = out.borrow().clone().expect("stdout to its end");
        assert!(
            out.ends_with(b"QUIET WORDS"),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(err.borrow().as_deref(), Some(&b"to stderr"[..]));
        let status = status.borrow_mut().take().unwrap().expect("the wait");
        assert_eq!(status.code(), Some(3));
        for s in [stdout, stderr] {
            s.close(&mut lp, |_, res| res.expect("close"));
        }
        spawned.process.close(&mut lp, |_, r| r.expect("close"));
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(lp.active(), 0);
    }

    /// `Process::kill` ends a running child (SIGKILL on Unix, exit code 1
    /// on Windows); once the child is reaped, killing it again is a no-op
    /// (`Ok`), as for `Child::kill`, and on Unix signalling it is refused.
    fn spawn_then_kill<B: Backend>() {
        let mut lp = new_loop::<B>();
        let p = match children::retry(
            || Process::<B>::spawn(&mut children::sleeping()),
            children::process_io,
        ) {
            Ok(s) => s.process,
            Err(ProcessError::Unsupported) => return,
            Err(e) => panic!("spawn: {e}"),
        };
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        p.wait(&mut lp, move |_, res| {
            *g.borrow_mut() = Some(res);
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap();
        assert!(got.borrow().is_none(), "the sleeper is still running");
        p.kill().expect("kill");
        lp.run(RunMode::UntilDone).unwrap();
        let status = got.borrow_mut().take().unwrap().expect("the wait");
        children::assert_killed(&status);
        assert_eq!(p.exit_status(), Some(status));
        p.kill().expect("a second kill, after the reap");
        #[cfg(unix)]
        assert!(matches!(p.signal(15), Err(ProcessError::NotChild)));
        p.close(&mut lp, |_, r| r.expect("close"));
        lp.run(RunMode::UntilDone).unwrap();
    }

    /// A watcher asked to kill on drop kills its child when dropped (a
    /// second watcher of the same child sees it killed); one not asked
    /// leaves the child running.
    fn kill_on_drop<B: Backend>() {
        let mut lp = new_loop::<B>();
        let p = match children::retry(
            || Process::<B>::spawn(&mut children::sleeping()),
            children::process_io,
        ) {
            Ok(s) => s.process,
            Err(ProcessError::Unsupported) => return,
            Err(e) => panic!("spawn: {e}"),
        };
        let observer = Process::<B>::new(p.pid()).expect("a second watcher");
        drop(p); // not asked: the child lives on
        lp.run(RunMode::NoWait).unwrap();
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        observer.wait(&mut lp, move |_, res| {
            *g.borrow_mut() = Some(res);
            Action::Disarm
        });
        lp.run(RunMode::NoWait).unwrap();
        assert!(
            got.borrow().is_none(),
            "dropping the watcher killed the child"
        );
        let killer = Process::<B>::new(observer.pid()).expect("a third watcher");
        killer.kill_on_drop(true);
        drop(killer);
        lp.run(RunMode::UntilDone).unwrap();
        let status = got.borrow_mut().take().unwrap().expect("the wait");
        children::assert_killed(&status);
        observer.close(&mut lp, |_, r| r.expect("close"));
        lp.run(RunMode::UntilDone).unwrap();
    }

    /// A small supervisor: children spawned with piped stdout, every byte
    /// of it read, exit codes checked, and the laggards (every third child
    /// prints "lagging" and sleeps) killed by a per-child timer that starts
    /// with the child's own first output. The timer kills only a child
    /// whose output is still incomplete, so a slow machine cannot make a
    /// well-behaved child look like a laggard. `examples/supervise.rs`,
    /// smaller.
    fn supervisor<B: Backend>() {
        #[derive(Default)]
        struct Kid {
            out: Vec<u8>,
            status: Option<ExitStatus>,
            killed: bool,
        }
        const CHILDREN: usize = 9;
        let lags = |i: usize| i % 3 == 2;
        let want = move |i: usize| match lags(i) {
            true => None,
            false => Some(lines(10 * i + 1)),
        };
        let complete =
            move |i: usize, out: &[u8]| want(i).is_some_and(|w| out.ends_with(w.as_bytes()));
        let mut lp = new_loop::<B>();
        let kids: Rc<RefCell<Vec<Kid>>> = Rc::default();
        let mut keep = Vec::new();
        for i in 0..CHILDREN {
            let mut cmd = match lags(i) {
                true => children::command("child_lag", 0),
                false => children::command("child_lines", 10 * i as i32 + 1),
            };
            cmd.stdout(Stdio::piped());
            let spawned =
                match children::retry(|| Process::<B>::spawn(&mut cmd), children::process_io) {
                    Ok(s) => s,
                    Err(ProcessError::Unsupported) => return,
                    Err(e) => panic!("spawn: {e}"),
                };
            kids.borrow_mut().push(Kid::default());
            let p = Rc::new(spawned.process);
            let out = spawned.stdout.expect("stdout piped");
            let (k, pk) = (kids.clone(), p.clone());
            let timer = Rc::new(Timer::<B>::new(&mut lp, move |_, res| {
                let kid = &mut k.borrow_mut()[i];
                if res.is_ok() && kid.status.is_none() && !complete(i, &kid.out) {
                    kid.killed = true;
                    pk.kill().expect("kill");
                }
                Action::Disarm
            }));
            let (k, t) = (kids.clone(), timer.clone());
            let mut armed = false;
            out.read(&mut lp, vec![0; 4096], move |lp, buf, res| match res {
                Ok(n) => {
                    k.borrow_mut()[i].out.extend_from_slice(&buf[..n]);
                    // The child's own output (after its test harness's
                    // header) starts the clock.
                    let own = |o: &[u8]| o.windows(4).any(|w| w == b"line" || w == b"lagg");
                    if !armed && own(&k.borrow()[i].out) {
                        armed = true;
                        t.run(lp, 200).unwrap();
                    }
                    Action::Rearm
                }
                Err(ReadError::Eof) => Action::Disarm,
                Err(e) => panic!("read: {e}"),
            });
            let (k, t) = (kids.clone(), timer.clone());
            p.wait(&mut lp, move |lp, res| {
                k.borrow_mut()[i].status = Some(res.expect("the wait"));
                let _ = t.cancel(lp);
                Action::Disarm
            });
            keep.push((p, out, timer));
        }
        lp.run(RunMode::UntilDone).unwrap();
        for (i, kid) in kids.borrow().iter().enumerate() {
            let status = kid.status.expect("every child reported");
            let out = String::from_utf8_lossy(&kid.out);
            if lags(i) {
                assert!(
                    kid.killed && out.ends_with("lagging\n"),
                    "child {i}: {out:?}"
                );
                children::assert_killed(&status);
            } else {
                assert!(complete(i, &kid.out), "child {i}: {out:?}");
                let code = ((10 * i + 1) % 7) as i32;
                assert_eq!((status.code(), kid.killed), (Some(code), false));
            }
        }
        for (p, out, timer) in keep {
            out.close(&mut lp, |_, r| r.expect("close"));
            drop(timer);
            if let Ok(p) = Rc::try_unwrap(p) {
                p.close(&mut lp, |_, r| r.expect("close"));
            }
        }
        lp.run(RunMode::UntilDone).unwrap();
        assert_eq!(lp.active(), 0);
    }

    /// Spawning a program that does not exist is a typed error
    /// (`ProcessError::Io` of kind `NotFound`), not a panic; nothing is
    /// left behind in the loop.
    fn spawn_a_missing_program<B: Backend>() {
        let lp = new_loop::<B>();
        let mut cmd = Command::new("xev-test-no-such-program-anywhere");
        cmd.stdout(Stdio::piped());
        match Process::<B>::spawn(&mut cmd) {
            Err(ProcessError::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e:?}")
            }
            Err(ProcessError::Unsupported) => {}
            other => panic!(
                "expected NotFound, got {:?}",
                other.map(|s| s.process.pid())
            ),
        }
        assert_eq!(lp.active(), 0);
    }

    /// A process that is not ours (pid 1: init on Unix, none on Windows)
    /// is a typed error, not a panic or a hang.
    fn process_not_ours<B: Backend>() {
        match Process::<B>::new(1) {
            Err(ProcessError::NotChild) | Err(ProcessError::Unsupported) => {}
            other => panic!("expected NotChild, got {other:?}"),
        }
    }
);
