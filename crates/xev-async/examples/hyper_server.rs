//! A `hyper` 1.x HTTP/1.1 server on xev-async (`--features hyper`): each
//! connection is a `Compat` stream served by `hyper`'s own connection code
//! in a task of its own. By default it answers a few keep-alive requests
//! from a built-in client and exits; with `--listen ADDR` it serves until
//! killed (`wrk -t1 -c64 -d10s http://ADDR/`).
//!
//! ```text
//! cargo run -p xev-async --features hyper --example hyper_server
//! ```

// Not built on WASI preview 1, which cannot create sockets.
#![cfg_attr(all(target_os = "wasi", target_env = "p1"), no_main)]
#![cfg(not(all(target_os = "wasi", target_env = "p1")))]

use std::convert::Infallible;
use std::io;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use xev_async::{spawn, Compat, Runtime, TcpListener, TcpStream};

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

/// Sends `n` keep-alive GETs on one connection and checks each answer.
async fn client(addr: std::net::SocketAddr, n: usize) -> io::Result<()> {
    let conn = TcpStream::connect(addr).await?;
    // A static request: written from the binary's own memory, no copy.
    let req: &'static [u8] = b"GET / HTTP/1.1\r\nHost: xev\r\n\r\n";
    let mut got = Vec::new();
    for i in 0..n {
        let (r, _) = conn.write_all(req).await;
        r?;
        // Read until this response's body is in.
        while !(got.ends_with(b"Hello, World!") && got.starts_with(b"HTTP/1.1 200 OK")) {
            got.reserve(4096);
            let (r, b) = conn.read(got).await;
            got = b;
            if r? == 0 {
                return Err(io::Error::other(format!("closed after {i} responses")));
            }
        }
        got.clear();
    }
    println!("client: {n} keep-alive requests answered");
    Ok(())
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("hyper_server: a hyper HTTP/1.1 server on xev-async\n\nusage: hyper_server [--listen ADDR]");
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
        println!("backend: {backend}; serving http://{addr}/");
        let server = spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let _ = conn.set_nodelay(true);
                spawn(async move {
                    let io = Compat::new(conn);
                    if let Err(e) = http1::Builder::new()
                        .serve_connection(io, service_fn(hello))
                        .await
                    {
                        eprintln!("connection: {e}");
                    }
                });
            }
        });
        if listen.is_some() {
            server.await?;
            Ok(())
        } else {
            client(addr, 10).await
        }
    })
}
