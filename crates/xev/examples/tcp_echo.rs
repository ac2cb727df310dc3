//! A TCP echo server and its clients on one xev loop, written with the
//! `Tcp` watcher on the default backend (io_uring where the kernel allows
//! it, else epoll; `XEV_BACKEND=epoll` forces epoll).
//!
//! The server accepts `CLIENTS` connections and echoes whatever it reads.
//! Each client connects, queues all its messages at once (queued writes go
//! out whole and in order), shuts down its write side after the last one,
//! and reads the echo until the server closes, checking every byte. The
//! program exits by itself when everyone is done.
//!
//! ```text
//! cargo run --example tcp_echo
//! ```

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use xev::watcher::Tcp;
use xev::{Action, Loop, ReadError, RunMode};

const USAGE: &str = "\
tcp_echo: a TCP echo server and its clients on one xev loop, written with
the Tcp watcher; every echoed byte is checked.

usage: tcp_echo

The backend is the default one; XEV_BACKEND forces io_uring or epoll on Linux.";

/// Prints the usage and exits with status 0 when `-h` or `--help` is given.
fn help_if_asked() {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        std::process::exit(0);
    }
}

const CLIENTS: usize = 4;
const MESSAGES: usize = 1_000;

/// What the server did.
#[derive(Default)]
struct ServerStats {
    accepted: Cell<usize>,
    echoed: Cell<usize>,
    closed: Rc<Cell<usize>>,
}

/// A connection that callbacks can reach and, at the end, take out to
/// close (closing consumes the watcher).
type Slot = Rc<RefCell<Option<Tcp>>>;

/// Takes the connection out of its slot and closes it through the loop.
fn close_slot(lp: &mut Loop, slot: &Slot, who: &'static str, closed: Rc<Cell<usize>>) {
    let conn = slot.borrow_mut().take();
    if let Some(conn) = conn {
        conn.close(lp, move |_, r| {
            if let Err(e) = r {
                eprintln!("{who}: close failed: {e}");
            }
            closed.set(closed.get() + 1);
        });
    }
}

/// Serves one connection: every read is queued back as an echo; at end of
/// file an empty write is queued behind the echoes, and its callback closes
/// the connection once they are all out.
fn serve(lp: &mut Loop, conn: Tcp, stats: Rc<ServerStats>) {
    let slot: Slot = Rc::new(RefCell::new(Some(conn)));
    let s = slot.clone();
    let guard = slot.borrow();
    let Some(conn) = guard.as_ref() else { return };
    conn.read(lp, vec![0; 4096], move |lp, buf, res| {
        let guard = s.borrow();
        let Some(conn) = guard.as_ref() else {
            return Action::Disarm;
        };
        match res {
            Ok(n) => {
                stats.echoed.set(stats.echoed.get() + n);
                conn.queue_write(lp, buf[..n].to_vec(), |_, _, r| {
                    if let Err(e) = r {
                        eprintln!("server: echo failed: {e}");
                    }
                    Action::Disarm
                });
                Action::Rearm
            }
            Err(e) => {
                if !matches!(e, ReadError::Eof) {
                    eprintln!("server: read failed: {e}");
                }
                let (slot, closed) = (s.clone(), stats.closed.clone());
                conn.queue_write(lp, Vec::new(), move |lp, _, _| {
                    close_slot(lp, &slot, "server", closed.clone());
                    Action::Disarm
                });
                Action::Disarm
            }
        }
    });
}

/// One client: connect, queue all messages, shut down writing after the
/// last, read the echo until the server closes, check it, close.
fn client(lp: &mut Loop, addr: SocketAddr, id: usize, ok: Rc<Cell<usize>>) -> io::Result<()> {
    let tcp = Tcp::new(addr)?;
    tcp.set_nodelay(true)?;
    let slot: Slot = Rc::new(RefCell::new(Some(tcp)));
    let s = slot.clone();
    let guard = slot.borrow();
    let Some(tcp) = guard.as_ref() else {
        return Ok(());
    };
    tcp.connect(lp, addr, move |lp, res| {
        if let Err(e) = res {
            eprintln!("client {id}: connect failed: {e}");
            return Action::Disarm;
        }
        let guard = s.borrow();
        let Some(tcp) = guard.as_ref() else {
            return Action::Disarm;
        };
        let mut expected = Vec::new();
        for i in 0..MESSAGES {
            let msg = format!("client {id} says hello #{i}\n").into_bytes();
            expected.extend_from_slice(&msg);
            let last = i + 1 == MESSAGES;
            let s2 = s.clone();
            tcp.queue_write(lp, msg, move |lp, _, r| {
                if let Err(e) = r {
                    eprintln!("client {id}: write failed: {e}");
                } else if last {
                    // Everything is written: tell the server we are done.
                    if let Some(tcp) = s2.borrow().as_ref() {
                        tcp.shutdown(lp, Shutdown::Write, move |_, r| {
                            if let Err(e) = r {
                                eprintln!("client {id}: shutdown failed: {e}");
                            }
                            Action::Disarm
                        });
                    }
                }
                Action::Disarm
            });
        }
        let got = Rc::new(RefCell::new(Vec::with_capacity(expected.len())));
        let (s3, ok) = (s.clone(), ok.clone());
        tcp.read(lp, vec![0; 4096], move |lp, buf, res| match res {
            Ok(n) => {
                got.borrow_mut().extend_from_slice(&buf[..n]);
                Action::Rearm
            }
            Err(e) => {
                if !matches!(e, ReadError::Eof) {
                    eprintln!("client {id}: read failed: {e}");
                }
                if *got.borrow() == expected {
                    println!(
                        "client {id}: {MESSAGES} messages, {} bytes echoed back intact",
                        expected.len()
                    );
                    ok.set(ok.get() + 1);
                } else {
                    eprintln!("client {id}: the echo differs from what was sent");
                }
                close_slot(lp, &s3, "client", Rc::new(Cell::new(0)));
                Action::Disarm
            }
        });
        Action::Disarm
    });
    Ok(())
}

fn main() -> std::process::ExitCode {
    help_if_asked();
    match run_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp_echo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_main() -> io::Result<()> {
    let mut lp = Loop::new(Default::default())?;
    let server: Tcp = Tcp::new("127.0.0.1:0".parse().map_err(io::Error::other)?)?;
    server.bind("127.0.0.1:0".parse().map_err(io::Error::other)?)?;
    server.listen(128)?;
    let addr = server.local_addr()?;
    println!("tcp_echo: backend {}, server on {addr}", lp.backend_name());

    let stats = Rc::new(ServerStats::default());
    let st = stats.clone();
    server.accept(&mut lp, move |lp, res| match res {
        Ok(conn) => {
            st.accepted.set(st.accepted.get() + 1);
            serve(lp, conn, st.clone());
            if st.accepted.get() < CLIENTS {
                Action::Rearm
            } else {
                Action::Disarm
            }
        }
        Err(e) => {
            eprintln!("accept failed: {e}");
            Action::Disarm
        }
    });

    let ok = Rc::new(Cell::new(0));
    for id in 0..CLIENTS {
        client(&mut lp, addr, id, ok.clone())?;
    }
    let start = Instant::now();
    lp.run(RunMode::UntilDone)?;

    // The clients closed themselves; close the listener too.
    server.close(&mut lp, |_, r| {
        if let Err(e) = r {
            eprintln!("close failed: {e}");
        }
    });
    lp.run(RunMode::UntilDone)?;
    let secs = start.elapsed().as_secs_f64();

    println!(
        "server: accepted {} connections, echoed {} bytes, closed {} connections",
        stats.accepted.get(),
        stats.echoed.get(),
        stats.closed.get()
    );
    println!(
        "{}/{CLIENTS} clients verified their echo in {secs:.3} s",
        ok.get()
    );
    if ok.get() != CLIENTS || stats.closed.get() != CLIENTS {
        return Err(io::Error::other("the echo did not complete"));
    }
    Ok(())
}
