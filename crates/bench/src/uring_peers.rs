//! The io_uring proactor peers (Linux, `peers` feature): compio and
//! monoio, each a current-thread runtime per thread, written as their
//! users would (owned buffers, their own read/write traits). Ping-pongs
//! only so far (compio also serves the real-client workloads, in
//! `real_clients`); the registry shows their other workloads as not
//! written.

use std::thread;

use crate::common::{ctx, scan_pings, Meter, Outcome, Res, PING};
use crate::ping_pongs::{finish, listen};

/// compio: `TcpStream` with `AsyncRead`/`AsyncWriteExt` (buffers are
/// cleared before each read: compio fills their spare capacity).
pub fn compio_ping_pongs(n: u64) -> Res<Outcome> {
    use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
    let (listener, addr) = listen()?;
    let server = thread::spawn(move || -> Res<u64> {
        let rt = compio::runtime::Runtime::new().map_err(ctx("runtime"))?;
        let (conn, _) = listener.accept().map_err(ctx("accept"))?;
        rt.block_on(async move {
            let mut s = compio::net::TcpStream::from_std(conn).map_err(ctx("from_std"))?;
            let mut buf = Vec::with_capacity(4096);
            let mut echoed = 0u64;
            loop {
                buf.clear();
                let compio::BufResult(r, b) = s.read(buf).await;
                let n = r.map_err(ctx("server read"))?;
                if n == 0 {
                    break;
                }
                let compio::BufResult(r, b) = s.write_all(b).await;
                r.map_err(ctx("server write"))?;
                echoed += n as u64;
                buf = b;
            }
            let _ = s.shutdown().await;
            Ok(echoed)
        })
    });
    let rt = compio::runtime::Runtime::new().map_err(ctx("runtime"))?;
    let meter = Meter::start();
    let pongs = rt.block_on(async move {
        let mut s = compio::net::TcpStream::connect(addr)
            .await
            .map_err(ctx("connect"))?;
        let mut buf = Vec::with_capacity(1024);
        let (mut state, mut pongs) = (0usize, 0u64);
        let compio::BufResult(r, _) = s.write_all(PING).await;
        r.map_err(ctx("write"))?;
        loop {
            buf.clear();
            let compio::BufResult(r, b) = s.read(buf).await;
            let len = r.map_err(ctx("read"))?;
            if len == 0 {
                return Err("client read: unexpected EOF".to_string());
            }
            let mut send = 0;
            let more = scan_pings(&b[..len], &mut state, || {
                pongs += 1;
                if pongs > n {
                    return false;
                }
                send += 1;
                true
            })?;
            buf = b;
            for _ in 0..send {
                let compio::BufResult(r, _) = s.write_all(PING).await;
                r.map_err(ctx("write"))?;
            }
            if !more {
                break;
            }
        }
        let _ = s.shutdown().await;
        Ok(pongs)
    })?;
    finish(meter, server, pongs, n)
}

/// monoio (io_uring driver, current-thread runtime per thread) on
/// ping-pongs, written as its users would: owned buffers through its
/// `AsyncReadRent`/`AsyncWriteRentExt` traits (a read lands in a vector's
/// spare capacity, so it is cleared before each read).
pub fn monoio_ping_pongs(n: u64) -> Res<Outcome> {
    use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
    fn runtime() -> Res<monoio::Runtime<monoio::IoUringDriver>> {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .build()
            .map_err(ctx("monoio runtime"))
    }
    let (listener, addr) = listen()?;
    let server = thread::spawn(move || -> Res<u64> {
        let (conn, _) = listener.accept().map_err(ctx("accept"))?;
        runtime()?.block_on(async move {
            let mut s = monoio::net::TcpStream::from_std(conn).map_err(ctx("from_std"))?;
            let mut buf = Vec::with_capacity(4096);
            let mut echoed = 0u64;
            loop {
                buf.clear();
                let (r, b) = s.read(buf).await;
                let n = r.map_err(ctx("server read"))?;
                if n == 0 {
                    break;
                }
                let (r, b) = s.write_all(b).await;
                r.map_err(ctx("server write"))?;
                echoed += n as u64;
                buf = b;
            }
            let _ = s.shutdown().await;
            Ok(echoed)
        })
    });
    let mut rt = runtime()?;
    let meter = Meter::start();
    let pongs = rt.block_on(async move {
        let mut s = monoio::net::TcpStream::connect(addr)
            .await
            .map_err(ctx("connect"))?;
        let mut buf = Vec::with_capacity(1024);
        let (mut state, mut pongs) = (0usize, 0u64);
        let (r, _) = s.write_all(PING).await;
        r.map_err(ctx("write"))?;
        loop {
            buf.clear();
            let (r, b) = s.read(buf).await;
            let len = r.map_err(ctx("read"))?;
            if len == 0 {
                return Err("client read: unexpected EOF".to_string());
            }
            let mut send = 0;
            let more = scan_pings(&b[..len], &mut state, || {
                pongs += 1;
                if pongs > n {
                    return false;
                }
                send += 1;
                true
            })?;
            buf = b;
            for _ in 0..send {
                let (r, _) = s.write_all(PING).await;
                r.map_err(ctx("write"))?;
            }
            if !more {
                break;
            }
        }
        let _ = s.shutdown().await;
        Ok(pongs)
    })?;
    finish(meter, server, pongs, n)
}
