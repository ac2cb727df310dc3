//! A TCP echo server and client on one xev loop, over loopback.
//!
//! The server accepts connections and echoes whatever it reads; each client
//! connects, sends `--messages` 64-byte messages one at a time, checks every
//! echo byte for byte, then closes. Everything runs on a single thread and
//! the program exits by itself when the clients are done.
//!
//! ```text
//! cargo run --release --example echo -- [--backend io_uring|epoll] [--clients N] [--messages N]
//! ```
//!
//! Without `--backend` it runs on the default backend, which honours
//! `XEV_BACKEND` like every xev program.

// Not built on WASI: it makes its sockets non-blocking with std, which
// wasi-libc cannot do for a preview 2 socket (`tcp_echo`, on the Tcp
// watcher, runs there).
#![cfg_attr(target_os = "wasi", no_main)]
#![cfg(not(target_os = "wasi"))]

use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::Instant;

use socket2::{Domain, Socket, Type};
use xev::backend::Backend;
#[cfg(target_os = "linux")]
use xev::backend::{epoll::Epoll, io_uring::IoUring};
use xev::generic::Loop;
use xev::{Action, Op, OpResult, Options, RawHandle, RunMode};

const MSG: usize = 64;

const USAGE: &str = "\
echo: a TCP echo server and its clients on one xev loop, over loopback;
every echoed byte is checked.

usage: echo [--backend io_uring|epoll] [--clients N] [--messages N]

  --backend B    io_uring or epoll (Linux); default: the default backend,
                 which XEV_BACKEND can force
  --clients N    concurrent clients (default 4)
  --messages N   64-byte messages per client (default 20000)";

struct Args {
    backend: Option<String>,
    clients: usize,
    messages: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        backend: None,
        clients: 4,
        messages: 20_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => a.backend = Some(value()?),
            "--clients" => a.clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--messages" => {
                a.messages = value()?.parse().map_err(|e| format!("--messages: {e}"))?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n\n{USAGE}")),
        }
    }
    Ok(a)
}

/// Server side of one connection: read -> write back -> read ... until EOF,
/// then close. One completion, rearmed with a changed operation.
fn serve<B: Backend>(lp: &mut Loop<B>, fd: RawHandle) {
    lp.add(
        Op::Read {
            fd,
            buf: vec![0; MSG].into(),
        },
        move |_, op, res| match res {
            OpResult::Read(Ok(n)) => {
                let mut buf = op.take_buf().unwrap_or_default();
                buf.truncate(n);
                *op = Op::Write {
                    fd,
                    buf: buf.into(),
                };
                Action::Rearm
            }
            OpResult::Write(Ok(n)) => {
                let mut buf = op.take_buf().unwrap_or_default();
                if n < buf.len() {
                    buf.drain(..n); // finish a short write first
                    *op = Op::Write {
                        fd,
                        buf: buf.into(),
                    };
                } else {
                    buf.resize(MSG, 0);
                    *op = Op::Read {
                        fd,
                        buf: buf.into(),
                    };
                }
                Action::Rearm
            }
            OpResult::Read(Err(_)) | OpResult::Write(Err(_)) => {
                *op = Op::Close { fd };
                Action::Rearm
            }
            _ => Action::Disarm,
        },
    );
}

/// One client: connect, then `messages` times write a message and read the
/// whole echo back, checking it.
fn client<B: Backend>(
    lp: &mut Loop<B>,
    addr: SocketAddr,
    id: u8,
    messages: u64,
    finished: Rc<Cell<usize>>,
) -> io::Result<()> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    let fd = into_raw(sock);
    let mut sent = 0u64;
    let mut got = 0usize;
    let expected = move |sent: u64| -> [u8; MSG] {
        let mut m = [id; MSG];
        m[..8].copy_from_slice(&sent.to_le_bytes());
        m
    };
    lp.add(Op::connect(fd, addr), move |_, op, res| {
        let mut buf = op.take_buf().unwrap_or_else(|| vec![0; MSG]);
        match res {
            // Connected, or the previous echo arrived whole: send the next
            // message, or close when all were sent.
            OpResult::Connect(Ok(())) => {}
            OpResult::Write(Ok(n)) => {
                assert_eq!(n, MSG, "short write of {n} bytes on loopback");
                buf.resize(MSG, 0);
                *op = Op::Read {
                    fd,
                    buf: buf.into(),
                };
                return Action::Rearm;
            }
            OpResult::Read(Ok(n)) => {
                let want = expected(sent - 1);
                assert_eq!(&buf[..n], &want[got..got + n], "echo corrupted");
                got += n;
                if got < MSG {
                    buf.resize(MSG - got, 0);
                    *op = Op::Read {
                        fd,
                        buf: buf.into(),
                    };
                    return Action::Rearm;
                }
                got = 0;
            }
            OpResult::Close(_) => {
                finished.set(finished.get() + 1);
                return Action::Disarm;
            }
            other => panic!("client {id}: unexpected {other:?}"),
        }
        if sent == messages {
            *op = Op::Close { fd };
            return Action::Rearm;
        }
        buf.resize(MSG, 0);
        buf.copy_from_slice(&expected(sent));
        sent += 1;
        *op = Op::Write {
            fd,
            buf: buf.into(),
        };
        Action::Rearm
    });
    Ok(())
}

fn run<B: Backend>(args: &Args) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let lfd = raw(&listener);
    let mut lp = Loop::<B>::new(Options::default())?;
    println!("xev echo: backend {}, server on {addr}", lp.backend_name());

    // Accept `clients` connections, serving each; then stop accepting.
    let mut to_accept = args.clients;
    lp.add(Op::Accept { fd: lfd }, move |lp, _, res| match res {
        OpResult::Accept(Ok(conn)) => {
            serve(lp, into_raw(conn));
            to_accept -= 1;
            if to_accept == 0 {
                Action::Disarm
            } else {
                Action::Rearm
            }
        }
        other => panic!("accept failed: {other:?}"),
    });

    let finished = Rc::new(Cell::new(0));
    for id in 0..args.clients {
        client(&mut lp, addr, id as u8, args.messages, finished.clone())?;
    }
    let start = Instant::now();
    lp.run(RunMode::UntilDone)?;
    let secs = start.elapsed().as_secs_f64();
    let trips = args.messages * args.clients as u64;
    assert_eq!(finished.get(), args.clients, "a client did not finish");
    println!(
        "{} clients x {} messages of {MSG} bytes echoed and checked: {trips} round trips in {secs:.3} s ({:.0} round trips/s)",
        args.clients,
        args.messages,
        trips as f64 / secs
    );
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    #[cfg(not(target_os = "linux"))]
    let r = match args.backend.as_deref() {
        None => run::<xev::DefaultBackend>(&args),
        Some(other) => {
            eprintln!("echo: --backend {other}: only the default backend is built here");
            std::process::exit(2);
        }
    };
    #[cfg(target_os = "linux")]
    let r = match args
        .backend
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => run::<xev::DefaultBackend>(&args),
        Some("io_uring") => match IoUring::probe() {
            Ok(()) => run::<IoUring>(&args),
            Err(e) => {
                eprintln!("io_uring unavailable ({e}); using epoll");
                run::<Epoll>(&args)
            }
        },
        Some("epoll") => run::<Epoll>(&args),
        Some(other) => {
            eprintln!("echo: unknown backend {other} (io_uring or epoll)");
            std::process::exit(2);
        }
    };
    if let Err(e) = r {
        eprintln!("echo failed: {e}");
        std::process::exit(1);
    }
}

/// A socket's raw handle (a descriptor on Unix, a `SOCKET` on Windows).
#[cfg(any(unix, target_os = "wasi"))]
fn raw<T: std::os::fd::AsRawFd>(s: &T) -> RawHandle {
    s.as_raw_fd()
}

/// Gives up a socket, returning its raw handle (the loop closes it).
#[cfg(any(unix, target_os = "wasi"))]
fn into_raw<T: std::os::fd::IntoRawFd>(s: T) -> RawHandle {
    s.into_raw_fd()
}

/// A socket's raw handle (a descriptor on Unix, a `SOCKET` on Windows).
#[cfg(windows)]
fn raw<T: std::os::windows::io::AsRawSocket>(s: &T) -> RawHandle {
    s.as_raw_socket() as RawHandle
}

/// Gives up a socket, returning its raw handle (the loop closes it).
#[cfg(windows)]
fn into_raw<T: std::os::windows::io::IntoRawSocket>(s: T) -> RawHandle {
    s.into_raw_socket() as RawHandle
}
