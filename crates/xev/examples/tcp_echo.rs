//! A TCP echo server and its clients on one xev loop, written with the
//! `Tcp` watcher on the default backend (io_uring where the kernel allows
//! it, else epoll; `XEV_BACKEND=epoll` forces epoll).
//!
//! The server accepts `CLIENTS` connections and echoes whatever it reads.
//! Each client connects, queues all its messages at once, `BATCH` to a
//! write (queued writes go out whole and in order), shuts down its write
//! side after the last one, and reads the echo until the server closes,
//! checking every byte. The program exits by itself when everyone is done.
//!
//! **Backpressure.** An echo server that queues every read back without
//! looking grows without bound against a client that sends but does not
//! read its replies (the echo piles up in the server's write queue). This
//! one watches the queue: while a connection has more than `HIGH_WATER`
//! bytes queued (`queued_bytes`), it stops reading from it (the read is
//! parked, buffer and all), and `on_drain` restarts the read once the
//! queue is down to `LOW_WATER`. A connection then holds at most
//! `HIGH_WATER` plus one read of echo, however slowly its client reads.
//! Client 0 reads slowly on purpose (small reads, small receive buffer),
//! so the server has to stop reading from it now and then; the program
//! checks that the bound held. At end of file the server closes a
//! connection from `on_drain(lp, 0, ..)`, once every echo is out.
//!
//! ```text
//! cargo run --example tcp_echo
//! ```

// Not built on WASI preview 1, which cannot create sockets.
#![cfg_attr(all(target_os = "wasi", target_env = "p1"), no_main)]
#![cfg(not(all(target_os = "wasi", target_env = "p1")))]

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use xev::watcher::Tcp;
use xev::{Action, Id, Loop, ReadError, RunMode};

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
/// Bytes per message (each is a numbered line, padded with dots).
const MESSAGE_LEN: usize = 256;
/// Messages per queued write.
const BATCH: usize = 16;

/// The server's read buffer.
const READ_BUF: usize = 4096;
/// The server stops reading from a connection while more than this many
/// bytes of echo wait in its write queue,
const HIGH_WATER: usize = 64 * 1024;
/// and reads from it again once they have drained to this many.
const LOW_WATER: usize = 16 * 1024;
/// The kernel send buffer the server asks for on its connections: small,
/// so that a backlog shows in the write queue, where the server sees it.
const SERVER_SNDBUF: usize = 16 * 1024;
/// Client 0 reads its echo this many bytes at a time, through a receive
/// buffer of `SLOW_RCVBUF`: slower than the server echoes it.
const SLOW_READ: usize = 256;
const SLOW_RCVBUF: usize = 4096;

/// What the server did.
#[derive(Default)]
struct ServerStats {
    accepted: Cell<usize>,
    echoed: Cell<usize>,
    closed: Rc<Cell<usize>>,
    /// Times the server stopped reading from a connection.
    pauses: Cell<usize>,
    /// The most bytes one connection had queued.
    peak: Cell<usize>,
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

/// Serves one connection: every read is queued back as an echo. While
/// more than `HIGH_WATER` bytes wait in the connection's write queue the
/// read is parked (its callback returns `Park`) and a drain callback
/// restarts it at `LOW_WATER`. At end of file, a drain callback at 0
/// closes the connection once every echo is out.
fn serve(lp: &mut Loop, conn: Tcp, stats: Rc<ServerStats>) {
    if let Err(e) = socket2::SockRef::from(&*conn).set_send_buffer_size(SERVER_SNDBUF) {
        eprintln!("server: cannot set the send buffer size: {e}");
    }
    let slot: Slot = Rc::new(RefCell::new(Some(conn)));
    let s = slot.clone();
    // The read's id, for the drain callback to restart it.
    let read_id: Rc<Cell<Option<Id>>> = Rc::default();
    let rid = read_id.clone();
    let guard = slot.borrow();
    let Some(conn) = guard.as_ref() else { return };
    let id = conn.read(lp, vec![0; READ_BUF], move |lp, buf, res| {
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
                let queued = conn.queued_bytes();
                stats.peak.set(stats.peak.get().max(queued));
                if queued <= HIGH_WATER {
                    return Action::Rearm; // read again into the same buffer
                }
                // The client is not reading its echo as fast as it sends:
                // stop reading from it until the echo has drained. (If the
                // writes fail instead, e.g. the client is gone, the queue
                // drains too, and the read then sees why.)
                stats.pauses.set(stats.pauses.get() + 1);
                let rid = rid.clone();
                conn.on_drain(lp, LOW_WATER, move |lp, _| {
                    if let Some(id) = rid.get() {
                        if let Err(e) = lp.restart(id) {
                            eprintln!("server: cannot resume reading: {e}");
                        }
                    }
                });
                Action::Park // keep the read, and its buffer, for the restart
            }
            Err(e) => {
                if !matches!(e, ReadError::Eof) {
                    eprintln!("server: read failed: {e}");
                }
                // Close once every echo is out (or failed).
                let (slot, closed) = (s.clone(), stats.closed.clone());
                conn.on_drain(lp, 0, move |lp, _| {
                    close_slot(lp, &slot, "server", closed);
                });
                Action::Disarm
            }
        }
    });
    read_id.set(Some(id));
}

/// One client: connect, queue all messages, shut down writing after the
/// last, read the echo until the server closes, check it, close.
fn client(lp: &mut Loop, addr: SocketAddr, id: usize, ok: Rc<Cell<usize>>) -> io::Result<()> {
    let tcp = Tcp::new(addr)?;
    tcp.set_nodelay(true)?;
    let slow = id == 0;
    if slow {
        socket2::SockRef::from(&*tcp).set_recv_buffer_size(SLOW_RCVBUF)?;
    }
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
        // The messages go out in writes of BATCH messages, all queued now.
        for first in (0..MESSAGES).step_by(BATCH) {
            let mut batch = Vec::with_capacity(BATCH * MESSAGE_LEN);
            for i in first..MESSAGES.min(first + BATCH) {
                let start = batch.len();
                batch.extend_from_slice(format!("client {id} says hello #{i} ").as_bytes());
                batch.resize(start + MESSAGE_LEN - 1, b'.');
                batch.push(b'\n');
            }
            expected.extend_from_slice(&batch);
            let last = first + BATCH >= MESSAGES;
            let s2 = s.clone();
            tcp.queue_write(lp, batch, move |lp, _, r| {
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
        let read_len = if slow { SLOW_READ } else { 4096 };
        tcp.read(lp, vec![0; read_len], move |lp, buf, res| match res {
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
        "server: stopped reading from a client {} times; at most {} bytes queued for one \
         (high-water mark {HIGH_WATER} + one read of {READ_BUF})",
        stats.pauses.get(),
        stats.peak.get()
    );
    println!(
        "{}/{CLIENTS} clients verified their echo in {secs:.3} s",
        ok.get()
    );
    if ok.get() != CLIENTS || stats.closed.get() != CLIENTS {
        return Err(io::Error::other("the echo did not complete"));
    }
    if stats.peak.get() > HIGH_WATER + READ_BUF {
        return Err(io::Error::other(
            "a connection queued more than the mark allows",
        ));
    }
    Ok(())
}
