//! The program of `xev-async`'s `async_resp` example written for tokio
//! (current-thread runtime, `LocalSet`), kept to compare their length: a
//! Redis-protocol (RESP) server with pipelining and a self-test client.
//!
//! ```text
//! cargo run -p xev-bench --features peers --example tokio_resp -- [--listen 127.0.0.1:6380]
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::spawn_local as spawn;

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
async fn serve(mut conn: TcpStream, db: Db) -> io::Result<()> {
    let (mut pending, mut out) = (Vec::with_capacity(16 * 1024), Vec::new());
    loop {
        if conn.read_buf(&mut pending).await? == 0 {
            return Ok(());
        }
        let mut used = 0;
        while let Some((args, len)) = parse(&pending[used..]).map_err(io::Error::other)? {
            execute(&db, &args, &mut out);
            used += len;
        }
        pending.drain(..used);
        if !out.is_empty() {
            conn.write_all(&out).await?;
            out.clear();
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
    let mut conn = TcpStream::connect(addr).await?;
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
    conn.write_all(&req).await?;
    let mut got = vec![0; want.len()];
    conn.read_exact(&mut got).await?;
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
            "tokio_resp: a Redis-protocol server on tokio\n\nusage: tokio_resp [--listen ADDR]"
        );
        return Ok(());
    }
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1));
    let addr = listen.map_or("127.0.0.1:0", |s| s.as_str());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio::task::LocalSet::new().block_on(&rt, async move {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        println!("listening on {addr}");
        let db: Db = Rc::default();
        let server = spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let _ = conn.set_nodelay(true);
                spawn(serve(conn, db.clone()));
            }
        });
        if listen.is_some() {
            server.await.map_err(io::Error::other)?;
            Ok(())
        } else {
            self_test(addr).await
        }
    })
}
