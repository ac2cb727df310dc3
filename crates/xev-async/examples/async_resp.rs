//! An async Redis-protocol (RESP) server on xev-async: PING, ECHO, SET,
//! GET, INCR and DEL, with pipelining (every complete command in a read is
//! answered in one write). By default it serves one self-test client that
//! pipelines commands and checks the replies, then exits; with `--listen
//! ADDR` it serves until killed (for `redis-benchmark -p PORT -t
//! ping,set,get,incr -P 16`).
//!
//! ```text
//! cargo run -p xev-async --example async_resp -- [--listen 127.0.0.1:6380]
//! ```

// Not built on WASI preview 1, which cannot create sockets.
#![cfg_attr(all(target_os = "wasi", target_env = "p1"), no_main)]
#![cfg(not(all(target_os = "wasi", target_env = "p1")))]

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;

use xev_async::{spawn, IoBuf, Runtime, TcpListener, TcpStream};

type Db = Rc<RefCell<HashMap<Vec<u8>, Vec<u8>>>>;

/// Parses one RESP array of bulk strings from `buf`: the arguments and the
/// bytes used, `Ok(None)` if incomplete.
/// A parsed command's arguments and its length in bytes.
type Command<'a> = (Vec<&'a [u8]>, usize);

fn parse(buf: &[u8]) -> Result<Option<Command<'_>>, &'static str> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        Some((&buf[at..at + end], at + end + 2))
    }
    fn num(s: &[u8]) -> Result<usize, &'static str> {
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad length")
    }
    let Some((head, mut at)) = line(buf, 0) else {
        return Ok(None);
    };
    let n = match head.split_first() {
        Some((b'*', n)) => num(n)?,
        _ => return Err("expected an array"),
    };
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let Some((h, next)) = line(buf, at) else {
            return Ok(None);
        };
        let len = match h.split_first() {
            Some((b'$', l)) => num(l)?,
            _ => return Err("expected a bulk string"),
        };
        if buf.len() < next + len + 2 {
            return Ok(None);
        }
        args.push(&buf[next..next + len]);
        at = next + len + 2;
    }
    Ok(Some((args, at)))
}

fn bulk(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", v.len()).as_bytes());
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
}

/// Appends the reply to one command.
fn execute(db: &Db, args: &[&[u8]], out: &mut Vec<u8>) {
    let cmd = args
        .first()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or_default();
    let mut db = db.borrow_mut();
    match (cmd.as_slice(), args.len()) {
        (b"PING", 1) => out.extend_from_slice(b"+PONG\r\n"),
        (b"ECHO", 2) => bulk(out, args[1]),
        (b"SET", 3) => {
            db.insert(args[1].to_vec(), args[2].to_vec());
            out.extend_from_slice(b"+OK\r\n");
        }
        (b"GET", 2) => match db.get(args[1]) {
            Some(v) => bulk(out, v),
            None => out.extend_from_slice(b"$-1\r\n"),
        },
        (b"DEL", 2) => {
            let n = db.remove(args[1]).is_some() as u8;
            out.extend_from_slice(format!(":{n}\r\n").as_bytes());
        }
        (b"INCR", 2) => {
            let v = db.entry(args[1].to_vec()).or_insert_with(|| b"0".to_vec());
            match std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(n) => {
                    *v = (n + 1).to_string().into_bytes();
                    out.extend_from_slice(format!(":{}\r\n", n + 1).as_bytes());
                }
                None => out.extend_from_slice(b"-ERR value is not an integer\r\n"),
            }
        }
        _ => out.extend_from_slice(b"-ERR unknown command or wrong number of arguments\r\n"),
    }
}

/// Serves one connection: reads, answers every complete command in one
/// write, keeps the incomplete rest for the next read.
async fn serve(conn: TcpStream, db: Db) -> io::Result<()> {
    let (mut pending, mut out) = (Vec::with_capacity(16 * 1024), Vec::new());
    loop {
        pending.reserve(4096);
        let (r, p) = conn.read(pending).await; // appends to what is pending
        pending = p;
        if r? == 0 {
            return Ok(());
        }
        let mut used = 0;
        while let Some((args, len)) = parse(&pending[used..]).map_err(io::Error::other)? {
            execute(&db, &args, &mut out);
            used += len;
        }
        pending.drain(..used);
        if !out.is_empty() {
            let (r, mut o) = conn.write_all(std::mem::take(&mut out)).await;
            r?;
            o.clear();
            out = o;
        }
    }
}

fn command(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        bulk(&mut v, a.as_bytes());
    }
    v
}

/// Pipelines a batch of commands and checks the replies.
async fn self_test(addr: std::net::SocketAddr) -> io::Result<()> {
    let conn = TcpStream::connect(addr).await?;
    let mut req = Vec::new();
    let mut want = Vec::new();
    for (cmd, reply) in [
        (vec!["PING"], "+PONG\r\n"),
        (vec!["SET", "k", "v1"], "+OK\r\n"),
        (vec!["GET", "k"], "$2\r\nv1\r\n"),
        (vec!["GET", "missing"], "$-1\r\n"),
        (vec!["INCR", "n"], ":1\r\n"),
        (vec!["INCR", "n"], ":2\r\n"),
        (vec!["INCR", "k"], "-ERR value is not an integer\r\n"),
        (vec!["DEL", "k"], ":1\r\n"),
    ] {
        req.extend_from_slice(&command(&cmd));
        want.extend_from_slice(reply.as_bytes());
    }
    let (r, _) = conn.write_all(req).await;
    r?;
    let (r, got) = conn
        .read_exact(Vec::with_capacity(want.len()).slice(..want.len()))
        .await;
    let got = got.into_inner();
    r?;
    if got != want {
        return Err(io::Error::other(format!(
            "replies differ: {:?}",
            String::from_utf8_lossy(&got)
        )));
    }
    println!("self-test: {} pipelined commands answered correctly", 8);
    Ok(())
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "async_resp: a Redis-protocol server on xev-async\n\nusage: async_resp [--listen ADDR]"
        );
        return Ok(());
    }
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1));
    let addr = listen
        .map_or("127.0.0.1:0", |s| s.as_str())
        .parse()
        .map_err(io::Error::other)?;
    let rt = Runtime::new()?;
    let backend = rt.backend_name();
    rt.block_on(async move {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        println!("backend: {backend}; listening on {addr}");
        let db: Db = Rc::default();
        let server = spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let _ = conn.set_nodelay(true);
                spawn(serve(conn, db.clone()));
            }
        });
        if listen.is_some() {
            server.await?;
            Ok(())
        } else {
            self_test(addr).await
        }
    })
}
