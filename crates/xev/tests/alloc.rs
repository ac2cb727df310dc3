//! Proves that steady-state operations allocate nothing: a counting global
//! allocator (per thread, so other tests running in parallel don't count)
//! measures 100,000 timer fire/rearm cycles, 100,000 set timers started
//! and fired, 10,000 TCP write/read round trips over loopback (with plain
//! and with pooled receives), 2,000 accepted connections and 100,000
//! newly added completions after warm-up,
//! on every backend this host can run (`tests/support/harness.rs`:
//! `BACKEND::NAME`).

// Linux-hosted (io_uring, epoll, dynamic, and kqueue through libkqueue) and
// Windows (IOCP, under wine in CI); kqueue on macOS and FreeBSD is covered
// by the portable conformance suite.
#![cfg(any(target_os = "linux", windows, target_os = "wasi"))]

#[path = "support/harness.rs"]
#[macro_use]
mod harness;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;

use xev::backend::Backend;
use xev::generic::Loop;
use xev::{Action, Op, OpResult, Options, RunMode};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

/// Fires one timer `cycles` times by rearming it; returns the allocations
/// made during the last `cycles - warmup` cycles.
fn timer_cycles<B: Backend>(warmup: u64, cycles: u64) -> io::Result<(u64, u64)> {
    let mut lp = Loop::<B>::new(Options::default())?;
    let fired = Rc::new(Cell::new(0u64));
    let mark = Rc::new(Cell::new(0u64));
    let end = Rc::new(Cell::new(0u64));
    let (f, m, e) = (fired.clone(), mark.clone(), end.clone());
    lp.add(Op::timer(0), move |lp, op, res| {
        assert!(matches!(res, OpResult::Timer(Ok(()))));
        f.set(f.get() + 1);
        if f.get() == warmup {
            m.set(allocs());
        }
        if f.get() == cycles {
            e.set(allocs());
            return Action::Disarm;
        }
        *op = Op::timer(lp.now());
        Action::Rearm
    });
    lp.run(RunMode::UntilDone)?;
    assert_eq!(fired.get(), cycles);
    Ok((fired.get(), end.get() - mark.get()))
}

/// A socket's handle as operations take it.
fn raw(s: &TcpStream) -> xev::RawHandle {
    #[cfg(any(unix, target_os = "wasi"))]
    return std::os::fd::AsRawFd::as_raw_fd(s);
    #[cfg(windows)]
    return std::os::windows::io::AsRawSocket::as_raw_socket(s) as xev::RawHandle;
}

fn nonblocking_pair() -> io::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let a = TcpStream::connect(l.local_addr()?)?;
    let (b, _) = l.accept()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    a.set_nodelay(true)?;
    b.set_nodelay(true)?;
    Ok((a, b))
}

/// Adds the echo server of [`tcp_round_trips`]: read 8 -> write them back
/// -> read ..., one completion that rearms.
fn add_echo_server<B: Backend>(lp: &mut Loop<B>, sfd: xev::RawHandle) {
    lp.add(
        Op::Read {
            fd: sfd,
            buf: vec![0; 8].into(),
        },
        move |_, op, res| match res {
            OpResult::Read(Ok(n)) => {
                let mut buf = op.take_buf().unwrap_or_default();
                buf.truncate(n);
                *op = Op::Write {
                    fd: sfd,
                    buf: buf.into(),
                };
                Action::Rearm
            }
            OpResult::Write(Ok(n)) => {
                let mut buf = op.take_buf().unwrap_or_default();
                assert_eq!(n, buf.len(), "short write on loopback");
                buf.resize(8, 0);
                *op = Op::Read {
                    fd: sfd,
                    buf: buf.into(),
                };
                Action::Rearm
            }
            OpResult::Read(Err(xev::ReadError::Eof)) => Action::Disarm,
            other => panic!("server: unexpected {other:?}"),
        },
    );
}

/// The same server receiving through a pool of 4 buffers: each pooled
/// receive's bytes are copied into its one write buffer and the pool
/// buffer dropped.
fn add_pooled_echo_server<B: Backend>(lp: &mut Loop<B>, sfd: xev::RawHandle) {
    let pool = lp.add_buf_pool(4, 64).expect("a buffer pool");
    let mut out = Some(Vec::with_capacity(8));
    lp.add(Op::recv_pool(sfd, &pool), move |_, op, res| match res {
        OpResult::RecvPool(Ok(b)) => {
            let mut buf = out.take().expect("the write buffer");
            buf.clear();
            buf.extend_from_slice(&b);
            *op = Op::Write {
                fd: sfd,
                buf: buf.into(),
            };
            Action::Rearm
        }
        OpResult::Write(Ok(n)) => {
            let buf = op.take_buf().unwrap_or_default();
            assert_eq!(n, buf.len(), "short write on loopback");
            out = Some(buf);
            *op = Op::recv_pool(sfd, &pool);
            Action::Rearm
        }
        OpResult::RecvPool(Err(xev::ReadError::Eof)) => Action::Disarm,
        other => panic!("server: unexpected {other:?}"),
    });
}

/// Client writes 8 bytes, server reads them and writes them back, client
/// reads them: one round trip. Each side is a single completion that turns
/// its read into a write (and back) and rearms; `pooled` makes the server
/// receive through a buffer pool.
fn tcp_round_trips<B: Backend>(warmup: u64, trips: u64, pooled: bool) -> io::Result<(u64, u64)> {
    let (client, server) = nonblocking_pair()?;
    let (cfd, sfd) = (raw(&client), raw(&server));
    let mut lp = Loop::<B>::new(Options::default())?;
    let done = Rc::new(Cell::new(0u64));
    let mark = Rc::new(RefCell::new(0u64));
    let end = Rc::new(Cell::new(0u64));
    if pooled {
        add_pooled_echo_server(&mut lp, sfd);
    } else {
        add_echo_server(&mut lp, sfd);
    }

    // Client: write 8 -> read 8 -> write ...
    let (d, m, e) = (done.clone(), mark.clone(), end.clone());
    lp.add(
        Op::Write {
            fd: cfd,
            buf: 0u64.to_le_bytes().to_vec().into(),
        },
        move |_, op, res| match res {
            OpResult::Write(Ok(8)) => {
                let buf = op.take_buf().unwrap_or_default();
                *op = Op::Read {
                    fd: cfd,
                    buf: buf.into(),
                };
                Action::Rearm
            }
            OpResult::Read(Ok(n)) => {
                let buf = op.take_buf().unwrap_or_default();
                assert_eq!(n, 8, "echo arrived in pieces");
                let got = u64::from_le_bytes(buf[..8].try_into().unwrap());
                assert_eq!(got, d.get(), "echo out of order");
                d.set(d.get() + 1);
                if d.get() == warmup {
                    *m.borrow_mut() = allocs();
                }
                if d.get() == trips {
                    e.set(allocs());
                    // Close our side so the server sees EOF and disarms.
                    *op = Op::Shutdown {
                        fd: cfd,
                        how: std::net::Shutdown::Write,
                    };
                    return Action::Rearm;
                }
                let mut buf = buf;
                buf.copy_from_slice(&d.get().to_le_bytes());
                *op = Op::Write {
                    fd: cfd,
                    buf: buf.into(),
                };
                Action::Rearm
            }
            OpResult::Shutdown(Ok(())) => Action::Disarm,
            other => panic!("client: unexpected {other:?}"),
        },
    );
    lp.run(RunMode::UntilDone)?;
    let mark = *mark.borrow();
    drop(lp);
    drop((client, server));
    Ok((done.get(), end.get() - mark))
}

/// Accepts `total` connections (each client connects once the previous
/// connection was accepted) with one accept that rearms and closes what
/// it got; returns the allocations made during the last `total - warmup`.
fn accept_cycles<B: Backend>(warmup: u64, total: u64) -> io::Result<(u64, u64)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    l.set_nonblocking(true)?;
    let addr = l.local_addr()?;
    #[cfg(any(unix, target_os = "wasi"))]
    let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
    #[cfg(windows)]
    let fd = std::os::windows::io::AsRawSocket::as_raw_socket(&l) as xev::RawHandle;
    let mut lp = Loop::<B>::new(Options::default())?;
    let accepted = Rc::new(Cell::new(0u64));
    let a = accepted.clone();
    lp.add(Op::Accept { fd }, move |_, _, res| match res {
        OpResult::Accept(Ok(s)) => {
            drop(s);
            a.set(a.get() + 1);
            Action::Rearm
        }
        other => panic!("accept: unexpected {other:?}"),
    });
    let mut mark = 0;
    for i in 0..total {
        if i == warmup {
            mark = allocs();
        }
        let c = TcpStream::connect(addr)?;
        while accepted.get() == i {
            lp.run(RunMode::Once)?;
        }
        drop(c);
    }
    let end = allocs();
    drop(lp);
    Ok((accepted.get(), end - mark))
}

/// Each noop's callback adds a brand-new completion (a different closure
/// each time would be a different type; here it is one type) and disarms
/// itself: the loop recycles the memory of the finished one.
fn add_chain<B: Backend>(warmup: u64, total: u64) -> io::Result<(u64, u64)> {
    fn link<B: Backend>(
        lp: &mut Loop<B>,
        n: Rc<Cell<u64>>,
        warmup: u64,
        total: u64,
        mark: Rc<Cell<u64>>,
    ) {
        lp.add(Op::Noop, move |lp, _, res| {
            assert!(matches!(res, OpResult::Noop(Ok(()))));
            n.set(n.get() + 1);
            if n.get() == warmup {
                mark.set(allocs());
            }
            if n.get() < total {
                link(lp, n.clone(), warmup, total, mark.clone());
            } else {
                mark.set(allocs() - mark.get());
            }
            Action::Disarm
        });
    }
    let mut lp = Loop::<B>::new(Options::default())?;
    let n = Rc::new(Cell::new(0));
    let mark = Rc::new(Cell::new(0));
    link(&mut lp, n.clone(), warmup, total, mark.clone());
    lp.run(RunMode::UntilDone)?;
    Ok((n.get(), mark.get()))
}

/// A timer set whose callback starts the next timer (64 pending at once,
/// so freed entries are reused while others wait; some start far ahead and
/// are moved): returns how many fired
/// and the allocations made after the first `warmup`.
fn set_timer_cycles<B: Backend>(warmup: u64, total: u64) -> io::Result<(u64, u64)> {
    let mut lp = Loop::<B>::new(Options::default())?;
    let n = Rc::new(Cell::new(0u64));
    let mark = Rc::new(Cell::new(0u64));
    let (n2, m2) = (n.clone(), mark.clone());
    let set = lp.add_timer_set(move |lp, key| {
        n2.set(n2.get() + 1);
        if n2.get() == warmup {
            m2.set(allocs());
        }
        if n2.get() + 64 <= total {
            let set = SET.with(|s| s.get().unwrap());
            // Every 10th starts an hour ahead, in a higher wheel level,
            // and is moved to now (a blocking wait would measure the
            // platform's poll: WASI preview 2 allocates its result list).
            if n2.get() % 10 == 0 {
                let id = lp.start_timer(set, lp.now() + 3_600_000, key + 64).unwrap();
                lp.reset_timer(id, lp.now()).unwrap();
            } else {
                lp.start_timer(set, lp.now(), key + 64).unwrap();
            }
        }
        if n2.get() == total {
            m2.set(allocs() - m2.get());
        }
    })?;
    SET.with(|s| s.set(Some(set)));
    let now = lp.now();
    for key in 0..64 {
        lp.start_timer(set, now, key).unwrap();
    }
    lp.run(RunMode::UntilDone)?;
    Ok((n.get(), mark.get()))
}

thread_local! {
    static SET: Cell<Option<xev::TimerSet>> = const { Cell::new(None) };
}

// ---------------------------------------------------------------------------
// Tests, on every backend
// ---------------------------------------------------------------------------

for_each_backend!(
    fn timers_allocate_nothing<B: Backend>() {
        let (n, a) = timer_cycles::<B>(1_000, 101_000).unwrap();
        assert_eq!(n, 101_000);
        assert_eq!(a, 0, "100,000 timer cycles allocated {a} times");
    }

    fn tcp_round_trips_allocate_nothing<B: Backend>() {
        let (n, a) = tcp_round_trips::<B>(100, 10_100, false).unwrap();
        assert_eq!(n, 10_100);
        assert_eq!(a, 0, "10,000 TCP round trips allocated {a} times");
    }

    fn pooled_receives_allocate_nothing<B: Backend>() {
        let (n, a) = tcp_round_trips::<B>(100, 10_100, true).unwrap();
        assert_eq!(n, 10_100);
        assert_eq!(
            a, 0,
            "10,000 TCP round trips through a buffer pool allocated {a} times"
        );
    }

    fn accepts_allocate_nothing<B: Backend>() {
        let (n, a) = accept_cycles::<B>(100, 2_100).unwrap();
        assert_eq!(n, 2_100);
        assert_eq!(a, 0, "2,000 accepts allocated {a} times");
    }

    fn set_timers_allocate_nothing<B: Backend>() {
        let (n, a) = set_timer_cycles::<B>(1_000, 101_000).unwrap();
        assert_eq!(n, 101_000);
        assert_eq!(a, 0, "100,000 set timers allocated {a} times");
    }

    fn adding_new_completions_allocates_nothing<B: Backend>() {
        let (n, a) = add_chain::<B>(1_000, 101_000).unwrap();
        assert_eq!(n, 101_000);
        assert_eq!(a, 0, "100,000 added completions allocated {a} times");
    }
);
