//! The program of `xev-async`'s `async_echo` example written for tokio
//! (current-thread runtime, `LocalSet`), kept to compare their length: the
//! server echoes every connection in its own task; each client task sends
//! its messages, reads the echo back and checks every byte.
//!
//! ```text
//! cargo run -p xev-bench --features peers --example tokio_echo -- [--clients N] [--messages N]
//! ```

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::spawn_local as spawn;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("tokio_echo: a TCP echo server and its clients on one tokio runtime\n\nusage: tokio_echo [--clients N] [--messages N]");
        std::process::exit(0);
    }
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

async fn serve(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n]).await?;
    }
}

async fn client(addr: std::net::SocketAddr, id: usize, messages: usize) -> io::Result<usize> {
    let mut conn = TcpStream::connect(addr).await?;
    let mut buf = Vec::new();
    for i in 0..messages {
        let msg = format!("client {id} message {i}\n").into_bytes();
        conn.write_all(&msg).await?;
        buf.resize(msg.len(), 0);
        conn.read_exact(&mut buf).await?;
        assert_eq!(buf, msg, "the echo differs");
    }
    conn.shutdown().await?;
    Ok(messages)
}

fn main() -> io::Result<()> {
    let (clients, messages) = (arg("--clients", 8), arg("--messages", 1000));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let total = tokio::task::LocalSet::new().block_on(&rt, async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
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
