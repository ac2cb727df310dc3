//! An async TCP echo server and its clients on one xev-async runtime. The
//! server echoes every connection in its own task; each client task sends
//! its messages, reads the echo back and checks every byte. Backpressure
//! comes for free: a connection's task does not read again until its last
//! reply is written. Exits by itself.
//!
//! ```text
//! cargo run -p xev-async --example async_echo -- [--clients N] [--messages N]
//! ```

// Not built on WASI preview 1, which cannot create sockets.
#![cfg_attr(all(target_os = "wasi", target_env = "p1"), no_main)]
#![cfg(not(all(target_os = "wasi", target_env = "p1")))]

use std::io;
use std::net::Shutdown;

use xev_async::{spawn, IoBuf, Runtime, TcpListener, TcpStream};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("async_echo: an async TCP echo server and its clients on one xev-async runtime\n\nusage: async_echo [--clients N] [--messages N]");
        std::process::exit(0);
    }
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

async fn serve(conn: TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        buf.clear();
        let (r, b) = conn.read(buf).await; // into the spare capacity
        if r? == 0 {
            return Ok(());
        }
        let (r, b) = conn.write_all(b).await;
        r?;
        buf = b;
    }
}

async fn client(addr: std::net::SocketAddr, id: usize, messages: usize) -> io::Result<usize> {
    let conn = TcpStream::connect(addr).await?;
    let mut buf = Vec::new();
    for i in 0..messages {
        let msg = format!("client {id} message {i}\n").into_bytes();
        let (r, sent) = conn.write_all(msg).await;
        r?;
        buf.clear();
        buf.reserve_exact(sent.len());
        let (r, got) = conn.read_exact(buf.slice(..sent.len())).await;
        let got = got.into_inner();
        r?;
        assert_eq!(got, sent, "the echo differs");
        buf = got;
    }
    conn.shutdown(Shutdown::Write).await?;
    Ok(messages)
}

fn main() -> io::Result<()> {
    let (clients, messages) = (arg("--clients", 8), arg("--messages", 1000));
    let rt = Runtime::new()?;
    println!("backend: {}", rt.backend_name());
    let total = rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())?;
        let addr = listener.local_addr()?;
        spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                spawn(serve(conn));
            }
        });
        let tasks: Vec<_> = (0..clients)
            .map(|id| spawn(client(addr, id, messages)))
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await??;
        }
        Ok::<_, io::Error>(total)
    })?;
    println!("{clients} clients echoed {total} messages");
    Ok(())
}
