//! ping-udp1 (libxev `src/bench/ping-udp1.zig`): one thread, one UDP socket
//! on loopback sending "PING\n" to itself with sendmsg/recvmsg (sendto /
//! recvfrom). The read stays armed; the next write starts only once both the
//! read of the previous ping and the previous write completed. Stops after
//! `n + 1` round trips and closes the socket. Figure: round trips/s.

use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;

use xev::backend::Backend;
use xev::generic::Loop;
use xev::{Action, Msg, Op, OpResult};

use crate::common::{ctx, into_raw, scan_pings, tokio_rt, xev_options, Meter, Outcome, Res, PING};

fn socket() -> Res<(UdpSocket, SocketAddr)> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(ctx("bind"))?;
    let addr = s.local_addr().map_err(ctx("local_addr"))?;
    Ok((s, addr))
}

fn verify(meter: Meter, pongs: u64, n: u64) -> Res<Outcome> {
    let out = meter.rate(pongs);
    if pongs != n + 1 {
        return Err(format!("counted {pongs} round trips, expected {}", n + 1));
    }
    Ok(out)
}

/// xev on backend `B`: one read completion rearmed for ever, one write
/// completion parked between pings and restarted by whichever of the two
/// callbacks completes the pair.
pub fn xev<B: Backend>(n: u64) -> Res<Outcome> {
    let (sock, addr) = socket()?;
    sock.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    let fd = into_raw(sock); // closed by the loop (Op::Close)
    let mut lp = Loop::<B>::new(xev_options()).map_err(ctx("loop"))?;
    let err: Rc<Cell<Option<&'static str>>> = Rc::default();
    let ops = Rc::new(Cell::new(0u8));
    let closed = Rc::new(Cell::new(false));
    let pongs = Rc::new(Cell::new(0u64));

    let (e, o, c) = (err.clone(), ops.clone(), closed.clone());
    let write = lp.add_parked_callback(
        Op::Sendmsg(Msg::send_to(fd, PING.to_vec(), addr)),
        move |_: &mut Loop<B>, _: &mut Op, res: OpResult| {
            if !matches!(res, OpResult::Write(Ok(5))) {
                e.set(Some("write failed or was short"));
                return Action::Disarm;
            }
            if c.get() {
                return Action::Disarm;
            }
            o.set(o.get() + 1);
            if o.get() == 2 {
                o.set(0);
                Action::Rearm
            } else {
                Action::Park
            }
        },
    );
    lp.restart(write).map_err(|e| format!("restart: {e:?}"))?;

    let (e, o, c, p) = (err.clone(), ops, closed, pongs.clone());
    let mut state = 0usize;
    lp.add(
        Op::Recvmsg(Msg::recv_from(fd, vec![0; 1024])),
        move |lp, op, res| match res {
            OpResult::RecvFrom(Ok((len, _))) => {
                let data = &op.buf().expect("recvmsg has a buffer")[..len];
                let mut restart = false;
                let more = scan_pings(data, &mut state, || {
                    p.set(p.get() + 1);
                    if p.get() > n {
                        return false;
                    }
                    o.set(o.get() + 1);
                    if o.get() == 2 {
                        o.set(0);
                        restart = true;
                    }
                    true
                });
                match more {
                    Ok(true) => {
                        if restart && lp.restart(write).is_err() {
                            e.set(Some("write completion not parked"));
                            return Action::Disarm;
                        }
                        Action::Rearm
                    }
                    Ok(false) => {
                        c.set(true);
                        *op = Op::Close { fd };
                        Action::Rearm
                    }
                    Err(_) => {
                        e.set(Some("corrupted ping"));
                        Action::Disarm
                    }
                }
            }
            OpResult::Close(Ok(())) => Action::Disarm,
            _ => {
                e.set(Some("read or close failed"));
                Action::Disarm
            }
        },
    );
    let meter = Meter::start();
    lp.run(xev::RunMode::UntilDone).map_err(ctx("run"))?;
    if let Some(e) = err.get() {
        return Err(e.to_string());
    }
    verify(meter, pongs.get(), n)
}

/// tokio: `UdpSocket::send_to` then `recv_from`, in one task.
pub fn tokio(n: u64) -> Res<Outcome> {
    let (sock, addr) = socket()?;
    sock.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    let rt = tokio_rt()?;
    let meter = Meter::start();
    let pongs = rt.block_on(async move {
        let sock = tokio::net::UdpSocket::from_std(sock).map_err(ctx("socket"))?;
        let mut buf = vec![0u8; 1024];
        let (mut state, mut pongs) = (0usize, 0u64);
        loop {
            let w = sock.send_to(PING, addr).await.map_err(ctx("send_to"))?;
            if w != PING.len() {
                return Err(format!("short send of {w} bytes"));
            }
            let (len, _) = sock.recv_from(&mut buf).await.map_err(ctx("recv_from"))?;
            let more = scan_pings(&buf[..len], &mut state, || {
                pongs += 1;
                pongs <= n
            })?;
            if !more {
                break;
            }
        }
        Ok::<u64, String>(pongs)
    })?;
    verify(meter, pongs, n)
}

/// xev-async on backend `B`: `send_to` then `recv_from` in one task, as
/// tokio's (the ping is static, the receive lands in a vector's spare
/// capacity).
pub fn xev_async<B: Backend>(n: u64) -> Res<Outcome> {
    let (sock, addr) = socket()?;
    let rt = xev_async::Runtime::<B>::with_options(xev_options()).map_err(ctx("runtime"))?;
    let meter = Meter::start();
    let pongs = rt.block_on(async move {
        let sock = xev_async::UdpSocket::from_std(sock).map_err(ctx("socket"))?;
        let mut buf = Vec::with_capacity(1024);
        let (mut state, mut pongs) = (0usize, 0u64);
        loop {
            let (w, _) = sock.send_to(PING, addr).await;
            let w = w.map_err(ctx("send_to"))?;
            if w != PING.len() {
                return Err(format!("short send of {w} bytes"));
            }
            buf.clear();
            let (r, b) = sock.recv_from(buf).await;
            buf = b;
            r.map_err(ctx("recv_from"))?;
            let more = scan_pings(&buf, &mut state, || {
                pongs += 1;
                pongs <= n
            })?;
            if !more {
                break;
            }
        }
        Ok::<u64, String>(pongs)
    })?;
    verify(meter, pongs, n)
}

/// The raw floors: the thinnest correct code on io_uring and on epoll
/// (Linux only).
#[cfg(target_os = "linux")]
pub(crate) mod floor {
    use super::*;
    use crate::floor_sys::*;
    use io_uring::{opcode, types, IoUring};
    use std::os::fd::AsRawFd;

    /// A message header for sendmsg/recvmsg pointing at `buf` and `addr`.
    pub(crate) fn msghdr(
        iov: &mut libc::iovec,
        addr: &mut libc::sockaddr_storage,
        addr_len: libc::socklen_t,
    ) -> libc::msghdr {
        // SAFETY: msghdr is plain old data; all-zero is valid.
        let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
        h.msg_name = (addr as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = addr_len;
        h.msg_iov = iov;
        h.msg_iovlen = 1;
        h
    }

    /// Floor: sendmsg and recvmsg directly on a ring.
    pub fn floor_uring(n: u64) -> Res<Outcome> {
        let (sock, addr) = socket()?;
        let fd = types::Fd(sock.as_raw_fd());
        let mut ring = IoUring::new(256).map_err(ctx("io_uring"))?;
        let (submitter, mut sq, mut cq) = ring.split();
        let mut ping = *PING;
        let mut rbuf = [0u8; 1024];
        let (mut dst, dst_len) = raw_addr(addr);
        // SAFETY: plain old data.
        let mut src: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut wiov = libc::iovec {
            iov_base: ping.as_mut_ptr().cast(),
            iov_len: ping.len(),
        };
        let mut riov = libc::iovec {
            iov_base: rbuf.as_mut_ptr().cast(),
            iov_len: rbuf.len(),
        };
        let whdr = msghdr(&mut wiov, &mut dst, dst_len);
        let src_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let mut rhdr = msghdr(&mut riov, &mut src, src_len);
        let send = opcode::SendMsg::new(fd, &whdr).build().user_data(0);
        let recv = |h: *mut libc::msghdr| opcode::RecvMsg::new(fd, h).build().user_data(1);
        // SAFETY: every pointer in the entries points at locals of this frame
        // that outlive the ring's use of them (we reap before returning).
        unsafe {
            sq.push(&send).map_err(ctx("sq full"))?;
            sq.push(&recv(&mut rhdr)).map_err(ctx("sq full"))?;
        }
        sq.sync();
        let meter = Meter::start();
        let (mut state, mut pongs, mut ops) = (0usize, 0u64, 0u8);
        let mut done = false;
        let mut write_pending = true;
        while !done || write_pending {
            submitter.submit_and_wait(1).map_err(ctx("enter"))?;
            cq.sync();
            for cqe in &mut cq {
                let res = cqe.result();
                if res < 0 {
                    return Err(format!("op {}: errno {}", cqe.user_data(), -res));
                }
                let mut pair_done = false;
                if cqe.user_data() == 0 {
                    if res as usize != PING.len() {
                        return Err(format!("short send of {res} bytes"));
                    }
                    write_pending = false;
                    ops += 1;
                    pair_done = ops == 2;
                } else {
                    let more = scan_pings(&rbuf[..res as usize], &mut state, || {
                        pongs += 1;
                        if pongs > n {
                            return false;
                        }
                        ops += 1;
                        pair_done = ops == 2;
                        true
                    })?;
                    if more {
                        rhdr.msg_namelen = src_len;
                        // SAFETY: as above.
                        unsafe { sq.push(&recv(&mut rhdr)).map_err(ctx("sq full"))? };
                    } else {
                        done = true;
                    }
                }
                if pair_done && !done {
                    ops = 0;
                    write_pending = true;
                    // SAFETY: as above.
                    unsafe { sq.push(&send).map_err(ctx("sq full"))? };
                }
            }
            sq.sync();
        }
        drop((submitter, sq, cq));
        drop(ring);
        drop(sock);
        verify(meter, pongs, n)
    }

    /// Floor: sendto, then recvfrom on the non-blocking socket, waiting in
    /// epoll_wait only when the datagram is not there yet.
    pub fn floor_epoll(n: u64) -> Res<Outcome> {
        let (sock, addr) = socket()?;
        sock.set_nonblocking(true).map_err(ctx("nonblocking"))?;
        let fd = sock.as_raw_fd();
        let (dst, dst_len) = raw_addr(addr);
        let mut ep = Epoll::new()?;
        ep.add_in(fd, 0)?;
        let mut buf = [0u8; 1024];
        let meter = Meter::start();
        let (mut state, mut pongs) = (0usize, 0u64);
        loop {
            // SAFETY: PING and dst are live for the call.
            let w = unsafe {
                libc::sendto(
                    fd,
                    PING.as_ptr().cast(),
                    PING.len(),
                    0,
                    (&dst as *const libc::sockaddr_storage).cast(),
                    dst_len,
                )
            };
            if check(w, "sendto")? as usize != PING.len() {
                return Err(format!("short send of {w} bytes"));
            }
            let len = loop {
                // SAFETY: buf is live and writable.
                let r = unsafe {
                    libc::recvfrom(
                        fd,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
                if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
                    ep.wait(-1)?;
                    continue;
                }
                break check(r, "recvfrom")? as usize;
            };
            let more = scan_pings(&buf[..len], &mut state, || {
                pongs += 1;
                pongs <= n
            })?;
            if !more {
                break;
            }
        }
        drop(sock);
        verify(meter, pongs, n)
    }
}
