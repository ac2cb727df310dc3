//! Several threads, each with its own xev-async runtime (one loop per
//! thread), sharing one `xev::ThreadPool` for the work no backend can do
//! asynchronously (file I/O on epoll and kqueue, name lookups).
//!
//! Each worker thread runs a runtime that serves TCP echo on a listener of
//! its own, then writes how many bytes it echoed to a file and reads it
//! back through the shared pool. The main thread hands each worker a job
//! from outside (`Runtime::remote`: a `Send` future the worker runs on its
//! loop) and runs the clients on a runtime of its own; every echoed byte
//! and every count is checked. Exits by itself.
//!
//! ```text
//! cargo run -p xev-async --example multi_runtime -- [--threads N] [--clients N] [--messages N]
//! ```

// Not built on WASI, which has no threads.
#![cfg_attr(target_os = "wasi", no_main)]
#![cfg(not(target_os = "wasi"))]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use xev::{Options, ThreadPool};
use xev_async::{spawn, File, IoBuf, RemoteHandle, Runtime, TcpListener, TcpStream};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "multi_runtime: one xev-async runtime per thread, sharing one thread pool\n\n\
             usage: multi_runtime [--threads N] [--clients N] [--messages N]"
        );
        std::process::exit(0);
    }
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

/// Echoes one connection; returns the bytes echoed.
async fn serve(conn: TcpStream) -> io::Result<usize> {
    let mut buf = Vec::with_capacity(4096);
    let mut total = 0;
    loop {
        buf.clear();
        let (r, b) = conn.read(buf).await;
        let n = r?;
        if n == 0 {
            return Ok(total);
        }
        let (r, b) = conn.write_all(b).await;
        r?;
        total += n;
        buf = b;
    }
}

/// One worker thread's runtime: serves `conns` connections, then records
/// the bytes it echoed in a file through the shared pool and reads the
/// record back. Returns the bytes echoed.
fn worker(
    id: usize,
    pool: ThreadPool,
    conns: usize,
    ready: mpsc::Sender<(SocketAddr, RemoteHandle)>,
) -> io::Result<usize> {
    let rt = Runtime::new_with(Options {
        thread_pool: Some(pool),
        ..Options::default()
    })?;
    let remote = rt.remote();
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())?;
        ready
            .send((listener.local_addr()?, remote))
            .map_err(|_| io::Error::other("the main thread is gone"))?;
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (conn, _) = listener.accept().await?;
            tasks.push(spawn(serve(conn)));
        }
        let mut echoed = 0;
        for t in tasks {
            echoed += t.await??;
        }
        // File I/O on the shared pool (in the kernel on io_uring).
        let path =
            std::env::temp_dir().join(format!("xev-multi-runtime-{}-{id}", std::process::id()));
        let file = File::create(&path).await?;
        let (r, _) = file.write_all_at(echoed.to_string().into_bytes(), 0).await;
        r?;
        drop(file);
        let file = File::open_read(&path).await?;
        let (r, buf) = file.read_at(Vec::with_capacity(32), 0).await;
        r?;
        std::fs::remove_file(&path)?;
        let recorded: usize = std::str::from_utf8(&buf)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other("the record reads back wrong"))?;
        assert_eq!(
            recorded, echoed,
            "worker {id}: the file holds another count"
        );
        Ok(echoed)
    })
}

/// One client: sends `messages` lines and checks each echo.
async fn client(addr: SocketAddr, id: usize, messages: usize) -> io::Result<usize> {
    let conn = TcpStream::connect(addr).await?;
    let mut sent_bytes = 0;
    let mut buf = Vec::new();
    for i in 0..messages {
        let msg = format!("client {id} line {i}\n").into_bytes();
        let (r, sent) = conn.write_all(msg).await;
        r?;
        buf.clear();
        buf.reserve_exact(sent.len());
        let (r, got) = conn.read_exact(buf.slice(..sent.len())).await;
        let got = got.into_inner();
        r?;
        assert_eq!(got, sent, "the echo differs");
        sent_bytes += sent.len();
        buf = got;
    }
    conn.shutdown(std::net::Shutdown::Write).await?;
    Ok(sent_bytes)
}

fn main() -> io::Result<()> {
    let threads = arg("--threads", 2).max(1);
    let clients = arg("--clients", 4).max(1);
    let messages = arg("--messages", 500);
    let pool = ThreadPool::new(Default::default())?;

    let (ready_tx, ready_rx) = mpsc::channel();
    let workers: Vec<_> = (0..threads)
        .map(|id| {
            let (pool, ready) = (pool.clone(), ready_tx.clone());
            std::thread::spawn(move || worker(id, pool, clients, ready))
        })
        .collect();
    drop(ready_tx);
    let endpoints: Vec<(SocketAddr, RemoteHandle)> = ready_rx.iter().take(threads).collect();
    if endpoints.len() != threads {
        return Err(io::Error::other("a worker failed before listening"));
    }

    // Work handed to each worker's loop from this thread.
    let greeted = Arc::new(AtomicUsize::new(0));
    for (_, remote) in &endpoints {
        let greeted = greeted.clone();
        remote.spawn(async move {
            greeted.fetch_add(1, Ordering::SeqCst);
        });
    }

    // The clients, on this thread's own runtime (sharing the pool too).
    let rt = Runtime::new_with(Options {
        thread_pool: Some(pool),
        ..Options::default()
    })?;
    println!("backend: {}, {threads} worker runtimes", rt.backend_name());
    let addrs: Vec<SocketAddr> = endpoints.iter().map(|(a, _)| *a).collect();
    let sent = rt.block_on(async move {
        let mut tasks = Vec::new();
        for (w, addr) in addrs.into_iter().enumerate() {
            for c in 0..clients {
                tasks.push(spawn(client(addr, w * clients + c, messages)));
            }
        }
        let mut sent = 0;
        for t in tasks {
            sent += t.await??;
        }
        Ok::<_, io::Error>(sent)
    })?;

    let mut echoed = 0;
    for w in workers {
        echoed += w
            .join()
            .map_err(|_| io::Error::other("a worker panicked"))??;
    }
    assert_eq!(echoed, sent, "the workers echoed another byte count");
    assert_eq!(
        greeted.load(Ordering::SeqCst),
        threads,
        "a remote job did not run"
    );
    println!(
        "{threads} runtimes echoed {echoed} bytes for {} clients; {threads} remote jobs ran",
        threads * clients
    );
    Ok(())
}
