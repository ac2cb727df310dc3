//! ping-pongs (libxev `src/bench/ping-pongs.zig`): an echo server on its own
//! thread with its own loop, a client on the main thread, one TCP connection
//! over loopback. The client writes "PING\n", counts echoed bytes, sends the
//! next ping after each whole echo and stops after `n + 1` round trips, then
//! shuts the connection down and closes it. The server keeps one read in
//! flight and echoes every read with a separate write. Figure: round trips/s.

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::thread;

use xev::backend::Backend;
use xev::generic::Loop;
use xev::{Action, Op, OpResult, ReadError};

use crate::common::{
    ctx, into_raw, raw, scan_pings, tokio_rt, xev_options, Meter, Outcome, Res, PING,
};

pub(crate) fn listen() -> Res<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(ctx("bind"))?;
    let addr = l.local_addr().map_err(ctx("local_addr"))?;
    Ok((l, addr))
}

/// Joins the server thread and checks that it echoed every byte.
pub(crate) fn finish(
    meter: Meter,
    server: thread::JoinHandle<Res<u64>>,
    pongs: u64,
    n: u64,
) -> Res<Outcome> {
    let echoed = server
        .join()
        .map_err(|_| "server thread panicked".to_string())??;
    let out = meter.rate(pongs);
    if pongs != n + 1 {
        return Err(format!(
            "client counted {pongs} round trips, expected {}",
            n + 1
        ));
    }
    if echoed != pongs * PING.len() as u64 {
        return Err(format!(
            "server echoed {echoed} bytes, expected {}",
            pongs * PING.len() as u64
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------- xev ----

type Shared<T> = Rc<RefCell<T>>;

/// A completion's own id, for its callback (set right after `add`).
type SelfId = Rc<Cell<Option<xev::Id>>>;

/// From a read's callback, before it rearms: the connection's descriptor
/// stayed open (this program owns it and closes it through the loop), so
/// the rearmed read may skip a readiness backend's registration check
/// when it waits (`Loop::vouch`).
fn vouch_for_rearm<B: Backend>(lp: &mut Loop<B>, me: &SelfId) {
    if let Some(id) = me.get() {
        // Cannot fail: the completion's own callback is running.
        let _ = lp.vouch(id);
    }
}

/// Records the first error seen by a callback.
fn fail(err: &Shared<Option<String>>, msg: String) {
    err.borrow_mut().get_or_insert(msg);
}

/// Writes `data` on `fd` with a completion of its own (its memory recycled by
/// the loop) and a buffer from `pool`; the buffer goes back to the pool when
/// the write is done.
fn xev_write<B: Backend>(
    lp: &mut Loop<B>,
    fd: xev::RawHandle,
    data: &[u8],
    pool: &Shared<Vec<Vec<u8>>>,
    err: &Shared<Option<String>>,
) {
    let mut buf = pool.borrow_mut().pop().unwrap_or_default();
    buf.clear();
    buf.extend_from_slice(data);
    let (pool, err) = (pool.clone(), err.clone());
    lp.add(
        Op::Send {
            fd,
            buf: buf.into(),
        },
        move |_, op, res| {
            match res {
                OpResult::Write(Ok(n)) => {
                    let buf = op.buf_mut().expect("write has a buffer");
                    if n < buf.len() {
                        buf.drain(..n); // short write: send the rest
                        return Action::Rearm;
                    }
                }
                OpResult::Write(Err(e)) => fail(&err, format!("write: {e:?}")),
                other => fail(&err, format!("write: unexpected {other:?}")),
            }
            if let Some(buf) = op.take_buf() {
                pool.borrow_mut().push(buf);
            }
            Action::Disarm
        },
    );
}

fn xev_server<B: Backend>(listener: TcpListener) -> Res<u64> {
    let mut lp = Loop::<B>::new(xev_options()).map_err(ctx("server loop"))?;
    listener.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    let err: Shared<Option<String>> = Rc::default();
    let echoed = Rc::new(Cell::new(0u64));
    let pool: Shared<Vec<Vec<u8>>> = Rc::default();
    let (e, ec) = (err.clone(), echoed.clone());
    lp.add(Op::Accept { fd: raw(&listener) }, move |lp, _, res| {
        let fd = match res {
            OpResult::Accept(Ok(conn)) => into_raw(conn),
            other => {
                fail(&e, format!("accept: {other:?}"));
                return Action::Disarm;
            }
        };
        // One read stays in flight; each read is echoed by its own write.
        let (e, ec, pool) = (e.clone(), ec.clone(), pool.clone());
        let me = SelfId::default();
        let m = me.clone();
        let id = lp.add(
            Op::Recv {
                fd,
                buf: vec![0; 4096].into(),
            },
            move |lp, op, res| match res {
                OpResult::Read(Ok(n)) => {
                    let data = &op.buf().expect("read has a buffer")[..n];
                    xev_write(lp, fd, data, &pool, &e);
                    ec.set(ec.get() + n as u64);
                    vouch_for_rearm(lp, &m);
                    Action::Rearm
                }
                OpResult::Read(Err(ReadError::Eof)) => {
                    *op = Op::Shutdown {
                        fd,
                        how: std::net::Shutdown::Both,
                    };
                    Action::Rearm
                }
                OpResult::Shutdown(_) => {
                    *op = Op::Close { fd };
                    Action::Rearm
                }
                OpResult::Close(r) => {
                    if let Err(x) = r {
                        fail(&e, format!("server close: {x:?}"));
                    }
                    Action::Disarm
                }
                other => {
                    fail(&e, format!("server read: {other:?}"));
                    *op = Op::Close { fd };
                    Action::Rearm
                }
            },
        );
        me.set(Some(id));
        Action::Disarm
    });
    lp.run(xev::RunMode::UntilDone).map_err(ctx("server run"))?;
    let e = err.borrow_mut().take();
    match e {
        Some(e) => Err(format!("server: {e}")),
        None => Ok(echoed.get()),
    }
}

/// xev on backend `B`, raw operations.
pub fn xev<B: Backend>(n: u64) -> Res<Outcome> {
    let (listener, addr) = listen()?;
    let server = thread::spawn(move || xev_server::<B>(listener));
    let mut lp = Loop::<B>::new(xev_options()).map_err(ctx("client loop"))?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(ctx("socket"))?;
    sock.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    let fd = into_raw(sock);
    let err: Shared<Option<String>> = Rc::default();
    let pongs = Rc::new(Cell::new(0u64));
    let pool: Shared<Vec<Vec<u8>>> = Rc::default();
    let (e, p) = (err.clone(), pongs.clone());
    let mut state = 0usize;
    let me = SelfId::default();
    let m = me.clone();
    let id = lp.add(Op::connect(fd, addr), move |lp, op, res| match res {
        OpResult::Connect(Ok(())) => {
            xev_write(lp, fd, PING, &pool, &e);
            *op = Op::Recv {
                fd,
                buf: vec![0; 1024].into(),
            };
            Action::Rearm
        }
        OpResult::Read(Ok(len)) => {
            let data = &op.buf().expect("read has a buffer")[..len];
            let mut send = 0;
            let more = scan_pings(data, &mut state, || {
                p.set(p.get() + 1);
                if p.get() > n {
                    return false;
                }
                send += 1;
                true
            });
            for _ in 0..send {
                xev_write(lp, fd, PING, &pool, &e);
            }
            match more {
                Ok(true) => {
                    vouch_for_rearm(lp, &m);
                    Action::Rearm
                }
                Ok(false) => {
                    *op = Op::Shutdown {
                        fd,
                        how: std::net::Shutdown::Both,
                    };
                    Action::Rearm
                }
                Err(x) => {
                    fail(&e, x);
                    *op = Op::Close { fd };
                    Action::Rearm
                }
            }
        }
        OpResult::Shutdown(_) => {
            *op = Op::Close { fd };
            Action::Rearm
        }
        OpResult::Close(r) => {
            if let Err(x) = r {
                fail(&e, format!("client close: {x:?}"));
            }
            Action::Disarm
        }
        other => {
            fail(&e, format!("client: {other:?}"));
            *op = Op::Close { fd };
            Action::Rearm
        }
    });
    me.set(Some(id));
    let meter = Meter::start();
    lp.run(xev::RunMode::UntilDone).map_err(ctx("client run"))?;
    let e = err.borrow_mut().take();
    if let Some(e) = e {
        return Err(format!("client: {e}"));
    }
    finish(meter, server, pongs.get(), n)
}

// -------------------------------------------------------------- tokio ----

/// tokio: `TcpStream` with `AsyncReadExt`/`AsyncWriteExt`, one current-thread
/// runtime per thread.
pub fn tokio(n: u64) -> Res<Outcome> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (listener, addr) = listen()?;
    listener.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    let server = thread::spawn(move || -> Res<u64> {
        let rt = tokio_rt()?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(ctx("listener"))?;
            let (mut s, _) = listener.accept().await.map_err(ctx("accept"))?;
            let mut buf = vec![0u8; 4096];
            let mut echoed = 0u64;
            loop {
                let n = s.read(&mut buf).await.map_err(ctx("server read"))?;
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.map_err(ctx("server write"))?;
                echoed += n as u64;
            }
            let _ = s.shutdown().await;
            Ok(echoed)
        })
    });
    let rt = tokio_rt()?;
    let meter = Meter::start();
    let pongs = rt.block_on(async move {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(ctx("connect"))?;
        let mut buf = vec![0u8; 1024];
        let (mut state, mut pongs) = (0usize, 0u64);
        s.write_all(PING).await.map_err(ctx("write"))?;
        loop {
            let len = s.read(&mut buf).await.map_err(ctx("read"))?;
            if len == 0 {
                return Err("client read: unexpected EOF".to_string());
            }
            let mut send = 0;
            let more = scan_pings(&buf[..len], &mut state, || {
                pongs += 1;
                if pongs > n {
                    return false;
                }
                send += 1;
                true
            })?;
            for _ in 0..send {
                s.write_all(PING).await.map_err(ctx("write"))?;
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

// ---------------------------------------------------------- xev-async ----

/// xev-async on backend `B`: the same program as the tokio contender,
/// written with xev-async's owned-buffer streams (a current-thread
/// runtime per thread).
pub fn xev_async<B: Backend>(n: u64) -> Res<Outcome> {
    let (listener, addr) = listen()?;
    listener.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    let server = thread::spawn(move || -> Res<u64> {
        let rt = xev_async::Runtime::<B>::with_options(xev_options()).map_err(ctx("runtime"))?;
        rt.block_on(async move {
            let listener = xev_async::TcpListener::from_std(listener).map_err(ctx("listener"))?;
            let (s, _) = listener.accept().await.map_err(ctx("accept"))?;
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
            let _ = s.shutdown(std::net::Shutdown::Both).await;
            Ok(echoed)
        })
    });
    let rt = xev_async::Runtime::<B>::with_options(xev_options()).map_err(ctx("runtime"))?;
    let meter = Meter::start();
    let pongs = rt.block_on(async move {
        let s = xev_async::TcpStream::connect(addr)
            .await
            .map_err(ctx("connect"))?;
        let mut buf = Vec::with_capacity(1024);
        // The ping is static: written from the binary's memory, no copy.
        let ping: &'static [u8] = PING;
        let (mut state, mut pongs) = (0usize, 0u64);
        let (r, _) = s.write_all(ping).await;
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
                let (r, _) = s.write_all(ping).await;
                r.map_err(ctx("write"))?;
            }
            if !more {
                break;
            }
        }
        let _ = s.shutdown(std::net::Shutdown::Both).await;
        Ok(pongs)
    })?;
    finish(meter, server, pongs, n)
}

// ------------------------------------------------------- floor: io_uring --

/// The raw floors: the thinnest correct code on io_uring and on epoll
/// (Linux only).
#[cfg(target_os = "linux")]
pub(crate) mod floor {
    use super::*;
    use crate::floor_sys::*;
    use io_uring::{opcode, types, IoUring};
    use std::io::ErrorKind;
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;

    const UD_READ: u64 = 1 << 32;

    /// The server on a bare ring: one read always in flight, each read echoed by
    /// a write from one of a few buffers.
    fn uring_server(listener: TcpListener) -> Res<u64> {
        let (conn, _) = listener.accept().map_err(ctx("accept"))?;
        let fd = types::Fd(conn.as_raw_fd());
        let mut ring = IoUring::new(256).map_err(ctx("io_uring"))?;
        let (submitter, mut sq, mut cq) = ring.split();
        let mut rbuf = [0u8; 4096];
        const SLOTS: usize = 16;
        let mut wbuf = vec![[0u8; 4096]; SLOTS];
        let mut wlen = [0usize; SLOTS];
        let mut woff = [0usize; SLOTS];
        let mut free: Vec<usize> = (0..SLOTS).collect();
        let mut echoed = 0u64;
        let read = |rbuf: &mut [u8; 4096]| {
            opcode::Recv::new(fd, rbuf.as_mut_ptr(), rbuf.len() as u32)
                .build()
                .user_data(UD_READ)
        };
        // SAFETY: rbuf lives until the read's CQE is reaped (or the ring is gone).
        unsafe { sq.push(&read(&mut rbuf)).map_err(ctx("sq full"))? };
        sq.sync();
        let mut eof = false;
        let mut writes = 0usize;
        while !eof || writes > 0 {
            // Wait for everything in flight at once (the write completes at
            // submission, the read when the next ping arrives): one enter per
            // round trip.
            let in_flight = writes + usize::from(!eof);
            submitter.submit_and_wait(in_flight).map_err(ctx("enter"))?;
            cq.sync();
            for cqe in &mut cq {
                let (ud, res) = (cqe.user_data(), cqe.result());
                if res < 0 {
                    return Err(format!("server op {ud:#x}: errno {}", -res));
                }
                if ud == UD_READ {
                    let n = res as usize;
                    if n == 0 {
                        eof = true;
                        continue;
                    }
                    let i = free.pop().ok_or("out of write buffers")?;
                    wbuf[i][..n].copy_from_slice(&rbuf[..n]);
                    (wlen[i], woff[i]) = (n, 0);
                    echoed += n as u64;
                    writes += 1;
                    let w = opcode::Write::new(fd, wbuf[i].as_ptr(), n as u32)
                        .build()
                        .user_data(i as u64);
                    // SAFETY: the buffers live in this frame until their CQEs.
                    unsafe {
                        sq.push(&w).map_err(ctx("sq full"))?;
                        sq.push(&read(&mut rbuf)).map_err(ctx("sq full"))?;
                    }
                } else {
                    let i = ud as usize;
                    woff[i] += res as usize;
                    if woff[i] < wlen[i] {
                        let w = opcode::Write::new(
                            fd,
                            wbuf[i][woff[i]..].as_ptr(),
                            (wlen[i] - woff[i]) as u32,
                        )
                        .build()
                        .user_data(i as u64);
                        // SAFETY: as above.
                        unsafe { sq.push(&w).map_err(ctx("sq full"))? };
                    } else {
                        free.push(i);
                        writes -= 1;
                    }
                }
            }
            sq.sync();
        }
        let _ = conn.shutdown(std::net::Shutdown::Both);
        Ok(echoed)
    }

    /// Floor: both sides directly on io_uring (one ring each), no abstraction;
    /// each side waits for all of its operations in one `io_uring_enter`.
    pub fn floor_uring(n: u64) -> Res<Outcome> {
        let (listener, addr) = listen()?;
        let server = thread::spawn(move || uring_server(listener));
        let meter = Meter::start();
        let conn = TcpStream::connect(addr).map_err(ctx("connect"))?;
        let fd = types::Fd(conn.as_raw_fd());
        let mut ring = IoUring::new(256).map_err(ctx("io_uring"))?;
        let (submitter, mut sq, mut cq) = ring.split();
        let mut rbuf = [0u8; 1024];
        let write = || {
            opcode::Write::new(fd, PING.as_ptr(), PING.len() as u32)
                .build()
                .user_data(0)
        };
        let read = |rbuf: &mut [u8; 1024]| {
            opcode::Recv::new(fd, rbuf.as_mut_ptr(), rbuf.len() as u32)
                .build()
                .user_data(UD_READ)
        };
        // SAFETY: PING is static; rbuf outlives the ring's use of it (we reap
        // the last read before leaving).
        unsafe {
            sq.push(&write()).map_err(ctx("sq full"))?;
            sq.push(&read(&mut rbuf)).map_err(ctx("sq full"))?;
        }
        sq.sync();
        let (mut state, mut pongs, mut writes) = (0usize, 0u64, 1usize);
        let mut done = false;
        while !done || writes > 0 {
            // Wait for everything in flight at once: one enter per round trip.
            let in_flight = writes + usize::from(!done);
            submitter.submit_and_wait(in_flight).map_err(ctx("enter"))?;
            cq.sync();
            for cqe in &mut cq {
                let res = cqe.result();
                if res < 0 {
                    return Err(format!("client op: errno {}", -res));
                }
                if cqe.user_data() == 0 {
                    if res as usize != PING.len() {
                        return Err(format!("short write of {res} bytes"));
                    }
                    writes -= 1;
                    continue;
                }
                if res == 0 {
                    return Err("client read: unexpected EOF".into());
                }
                let mut send = 0;
                let more = scan_pings(&rbuf[..res as usize], &mut state, || {
                    pongs += 1;
                    if pongs > n {
                        return false;
                    }
                    send += 1;
                    true
                })?;
                for _ in 0..send {
                    // SAFETY: PING is static.
                    unsafe { sq.push(&write()).map_err(ctx("sq full"))? };
                    writes += 1;
                }
                if more {
                    // SAFETY: as above.
                    unsafe { sq.push(&read(&mut rbuf)).map_err(ctx("sq full"))? };
                } else {
                    done = true;
                }
            }
            sq.sync();
        }
        drop((submitter, sq, cq));
        drop(ring);
        let _ = conn.shutdown(std::net::Shutdown::Both);
        drop(conn);
        finish(meter, server, pongs, n)
    }

    // ---------------------------------------------------------- floor: epoll --

    fn epoll_server(listener: TcpListener) -> Res<u64> {
        let (conn, _) = listener.accept().map_err(ctx("accept"))?;
        conn.set_nonblocking(true).map_err(ctx("nonblocking"))?;
        let fd = conn.as_raw_fd();
        let mut ep = Epoll::new()?;
        ep.add_in(fd, 0)?;
        let mut buf = [0u8; 4096];
        let mut echoed = 0u64;
        loop {
            ep.wait(-1)?;
            let n = match read_fd(fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => return Err(format!("server read: {e}")),
            };
            write_all_fd(fd, &buf[..n]).map_err(ctx("server write"))?;
            echoed += n as u64;
        }
        let _ = conn.shutdown(std::net::Shutdown::Both);
        Ok(echoed)
    }

    /// Floor: both sides on a level-triggered epoll with non-blocking sockets.
    pub fn floor_epoll(n: u64) -> Res<Outcome> {
        let (listener, addr) = listen()?;
        let server = thread::spawn(move || epoll_server(listener));
        let meter = Meter::start();
        let conn = TcpStream::connect(addr).map_err(ctx("connect"))?;
        conn.set_nonblocking(true).map_err(ctx("nonblocking"))?;
        let fd = conn.as_raw_fd();
        let mut ep = Epoll::new()?;
        ep.add_in(fd, 0)?;
        let mut buf = [0u8; 1024];
        let (mut state, mut pongs) = (0usize, 0u64);
        write_all_fd(fd, PING).map_err(ctx("write"))?;
        loop {
            ep.wait(-1)?;
            let len = match read_fd(fd, &mut buf) {
                Ok(0) => return Err("client read: unexpected EOF".into()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => return Err(format!("client read: {e}")),
            };
            let mut send = 0;
            let more = scan_pings(&buf[..len], &mut state, || {
                pongs += 1;
                if pongs > n {
                    return false;
                }
                send += 1;
                true
            })?;
            for _ in 0..send {
                write_all_fd(fd, PING).map_err(ctx("write"))?;
            }
            if !more {
                break;
            }
        }
        let _ = conn.shutdown(std::net::Shutdown::Both);
        drop(conn);
        finish(meter, server, pongs, n)
    }
}
