//! udp_pummel_1v1 (libxev `src/bench/udp_pummel_1v1.zig`): one thread, a
//! sender and a receiver socket on one loop. The sender writes a 45-byte
//! payload by rearming its write; after `n` write callbacks (so `n + 1`
//! datagrams) it stops the loop. The receiver checks every payload. As in
//! libxev, the loop stops when the sender is done, so datagrams the kernel
//! dropped (loopback drops when the receive buffer fills) are simply not
//! counted: the figure is datagrams *received* per second, and the report
//! carries sent and received counts.

use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use xev::backend::Backend;
use xev::generic::Loop;
use xev::{Action, Msg, Op, OpResult};

use crate::common::{ctx, raw, tokio_rt, xev_options, Meter, Outcome, Res};
#[cfg(target_os = "linux")]
use crate::ping_udp::floor::msghdr;

/// The payload (45 bytes).
pub const EXPECTED: &[u8] = b"RANG TANG DING DONG I AM THE JAPANESE SANDMAN";

fn sockets() -> Res<(UdpSocket, UdpSocket, SocketAddr)> {
    let r = UdpSocket::bind("127.0.0.1:0").map_err(ctx("bind receiver"))?;
    let s = UdpSocket::bind("127.0.0.1:0").map_err(ctx("bind sender"))?;
    let addr = r.local_addr().map_err(ctx("local_addr"))?;
    Ok((r, s, addr))
}

fn verify(meter: Meter, sent: u64, received: u64, n: u64) -> Res<Outcome> {
    let out = meter.rate(received);
    if sent != n {
        return Err(format!("{sent} send callbacks, expected {n}"));
    }
    if received == 0 || received > n + 1 {
        return Err(format!("received {received} of {} datagrams", n + 1));
    }
    let sent_rate = sent as f64 / out.elapsed;
    Ok(out
        .with("sent", n + 1)
        .with("received", received)
        .with("dropped", n + 1 - received)
        .with("sent_per_s", format!("{sent_rate:.0}")))
}

/// xev on backend `B`: one sendmsg completion rearmed, one recvmsg
/// completion rearmed; the sender stops the loop.
pub fn xev<B: Backend>(n: u64) -> Res<Outcome> {
    let (rs, ss, addr) = sockets()?;
    rs.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    ss.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    let mut lp = Loop::<B>::new(xev_options()).map_err(ctx("loop"))?;
    let err: Rc<Cell<Option<&'static str>>> = Rc::default();
    let sent = Rc::new(Cell::new(0u64));
    let received = Rc::new(Cell::new(0u64));

    let (e, r) = (err.clone(), received.clone());
    lp.add(
        Op::Recvmsg(Msg::recv_from(raw(&rs), vec![0; 65536])),
        move |_, op, res| match res {
            OpResult::RecvFrom(Ok((len, _))) => {
                if op.buf().map(|b| &b[..len]) != Some(EXPECTED) {
                    e.set(Some("unexpected data"));
                    return Action::Disarm;
                }
                r.set(r.get() + 1);
                Action::Rearm
            }
            _ => {
                e.set(Some("receive failed"));
                Action::Disarm
            }
        },
    );
    let (e, s) = (err.clone(), sent.clone());
    let mut counter = n;
    lp.add(
        Op::Sendmsg(Msg::send_to(raw(&ss), EXPECTED.to_vec(), addr)),
        move |lp, _, res| {
            if !matches!(res, OpResult::Write(Ok(45))) {
                e.set(Some("send failed or was short"));
                lp.stop();
                return Action::Disarm;
            }
            if counter == 0 {
                lp.stop();
                return Action::Disarm;
            }
            counter -= 1;
            s.set(s.get() + 1);
            Action::Rearm
        },
    );
    let meter = Meter::start();
    lp.run(xev::RunMode::UntilDone).map_err(ctx("run"))?;
    let out = verify(meter, sent.get(), received.get(), n);
    drop(lp); // cancels the pending receive before the sockets close
    if let Some(e) = err.get() {
        return Err(e.to_string());
    }
    out
}

/// tokio: the receiver is a spawned task looping on `recv_from`; the sender
/// loops on `send_to` in the runtime's main future and ends the run.
pub fn tokio(n: u64) -> Res<Outcome> {
    let (rs, ss, addr) = sockets()?;
    rs.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    ss.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    let rt = tokio_rt()?;
    let received = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicBool::new(false));
    let meter = Meter::start();
    let (r, b) = (received.clone(), bad.clone());
    let sent = rt.block_on(async move {
        let rs = tokio::net::UdpSocket::from_std(rs).map_err(ctx("socket"))?;
        let ss = tokio::net::UdpSocket::from_std(ss).map_err(ctx("socket"))?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((len, _)) = rs.recv_from(&mut buf).await {
                if &buf[..len] != EXPECTED {
                    b.store(true, Ordering::Relaxed);
                    break;
                }
                r.fetch_add(1, Ordering::Relaxed);
            }
        });
        let (mut counter, mut sent) = (n, 0u64);
        loop {
            let w = ss.send_to(EXPECTED, addr).await.map_err(ctx("send_to"))?;
            if w != EXPECTED.len() {
                return Err(format!("short send of {w} bytes"));
            }
            if counter == 0 {
                break;
            }
            counter -= 1;
            sent += 1;
        }
        Ok::<u64, String>(sent)
    })?;
    let out = verify(meter, sent, received.load(Ordering::Relaxed), n);
    drop(rt);
    if bad.load(Ordering::Relaxed) {
        return Err("unexpected data".into());
    }
    out
}

/// xev-async on backend `B`: as tokio's (a spawned receiver task, the
/// sender in the main future).
pub fn xev_async<B: Backend>(n: u64) -> Res<Outcome> {
    let (rs, ss, addr) = sockets()?;
    let rt = xev_async::Runtime::<B>::with_options(xev_options()).map_err(ctx("runtime"))?;
    let received = Rc::new(Cell::new(0u64));
    let bad = Rc::new(Cell::new(false));
    let meter = Meter::start();
    let (r, b) = (received.clone(), bad.clone());
    let sent = rt.block_on(async move {
        let rs = xev_async::UdpSocket::from_std(rs).map_err(ctx("socket"))?;
        let ss = xev_async::UdpSocket::from_std(ss).map_err(ctx("socket"))?;
        let receiver = xev_async::spawn(async move {
            let mut buf = Vec::with_capacity(65536);
            loop {
                buf.clear();
                let (res, back) = rs.recv_from(buf).await;
                buf = back;
                if res.is_err() {
                    break;
                }
                if buf != EXPECTED {
                    b.set(true);
                    break;
                }
                r.set(r.get() + 1);
            }
        });
        let (mut counter, mut sent) = (n, 0u64);
        loop {
            let (w, _) = ss.send_to(EXPECTED, addr).await;
            let w = w.map_err(ctx("send_to"))?;
            if w != EXPECTED.len() {
                return Err(format!("short send of {w} bytes"));
            }
            if counter == 0 {
                break;
            }
            counter -= 1;
            sent += 1;
        }
        receiver.abort();
        Ok::<u64, String>(sent)
    })?;
    let out = verify(meter, sent, received.get(), n);
    drop(rt);
    if bad.get() {
        return Err("unexpected data".into());
    }
    out
}

/// The raw floors: the thinnest correct code on io_uring and on epoll
/// (Linux only).
#[cfg(target_os = "linux")]
pub(crate) mod floor {
    use super::*;
    use crate::common::os_err;
    use crate::floor_sys::*;
    use io_uring::{opcode, types, IoUring};
    use std::os::fd::AsRawFd;

    /// Floor: one sendmsg and one recvmsg in flight on a bare ring, each
    /// resubmitted as soon as it completes.
    pub fn floor_uring(n: u64) -> Res<Outcome> {
        let (rs, ss, addr) = sockets()?;
        let mut ring = IoUring::new(256).map_err(ctx("io_uring"))?;
        let (submitter, mut sq, mut cq) = ring.split();
        let mut payload = EXPECTED.to_vec();
        let mut rbuf = vec![0u8; 65536];
        let (mut dst, dst_len) = raw_addr(addr);
        // SAFETY: plain old data.
        let mut src: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut wiov = libc::iovec {
            iov_base: payload.as_mut_ptr().cast(),
            iov_len: payload.len(),
        };
        let mut riov = libc::iovec {
            iov_base: rbuf.as_mut_ptr().cast(),
            iov_len: rbuf.len(),
        };
        let whdr = msghdr(&mut wiov, &mut dst, dst_len);
        let src_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let mut rhdr = msghdr(&mut riov, &mut src, src_len);
        let send = opcode::SendMsg::new(types::Fd(ss.as_raw_fd()), &whdr)
            .build()
            .user_data(0);
        let recv = |h: *mut libc::msghdr| {
            opcode::RecvMsg::new(types::Fd(rs.as_raw_fd()), h)
                .build()
                .user_data(1)
        };
        // SAFETY: the entries point at locals of this frame; the receive is
        // canceled and reaped before the frame ends.
        unsafe {
            sq.push(&recv(&mut rhdr)).map_err(ctx("sq full"))?;
            sq.push(&send).map_err(ctx("sq full"))?;
        }
        sq.sync();
        let meter = Meter::start();
        let (mut counter, mut sent, mut received) = (n, 0u64, 0u64);
        let mut sending = true;
        while sending {
            submitter.submit_and_wait(1).map_err(ctx("enter"))?;
            cq.sync();
            for cqe in &mut cq {
                let res = cqe.result();
                if cqe.user_data() == 0 {
                    if res != EXPECTED.len() as i32 {
                        return Err(format!("send: result {res}"));
                    }
                    if counter == 0 {
                        sending = false;
                        continue;
                    }
                    counter -= 1;
                    sent += 1;
                    // SAFETY: as above.
                    unsafe { sq.push(&send).map_err(ctx("sq full"))? };
                } else {
                    if res < 0 || &rbuf[..res as usize] != EXPECTED {
                        return Err(format!("receive: result {res} or unexpected data"));
                    }
                    received += 1;
                    rhdr.msg_namelen = src_len;
                    // SAFETY: as above.
                    unsafe { sq.push(&recv(&mut rhdr)).map_err(ctx("sq full"))? };
                }
            }
            sq.sync();
        }
        let out = verify(meter, sent, received, n);
        // Cancel the pending receive and wait for it before its buffer goes.
        let cancel = opcode::AsyncCancel::new(1).build().user_data(2);
        // SAFETY: a cancel references no memory.
        unsafe { sq.push(&cancel).map_err(ctx("sq full"))? };
        sq.sync();
        let mut recv_gone = false;
        while !recv_gone {
            submitter.submit_and_wait(1).map_err(ctx("enter"))?;
            cq.sync();
            for cqe in &mut cq {
                recv_gone |= cqe.user_data() == 1;
            }
        }
        out
    }

    /// Floor: non-blocking sendto and recvfrom on one thread, one receive
    /// attempt per send (epoll is consulted only when a send would block).
    pub fn floor_epoll(n: u64) -> Res<Outcome> {
        let (rs, ss, addr) = sockets()?;
        rs.set_nonblocking(true).map_err(ctx("nonblocking"))?;
        ss.set_nonblocking(true).map_err(ctx("nonblocking"))?;
        let (rfd, sfd) = (rs.as_raw_fd(), ss.as_raw_fd());
        let (dst, dst_len) = raw_addr(addr);
        let mut ep = crate::floor_sys::Epoll::new()?;
        ep.ctl(libc::EPOLL_CTL_ADD, sfd, libc::EPOLLOUT as u32, 0)?;
        let mut buf = vec![0u8; 65536];
        let meter = Meter::start();
        let (mut counter, mut sent, mut received) = (n, 0u64, 0u64);
        loop {
            // SAFETY: the payload and address are live for the call.
            let w = unsafe {
                libc::sendto(
                    sfd,
                    EXPECTED.as_ptr().cast(),
                    EXPECTED.len(),
                    0,
                    (&dst as *const libc::sockaddr_storage).cast(),
                    dst_len,
                )
            };
            if w < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
                    ep.wait(-1)?;
                    continue;
                }
                return Err(os_err("sendto"));
            }
            if w as usize != EXPECTED.len() {
                return Err(format!("short send of {w} bytes"));
            }
            // SAFETY: buf is live and writable.
            let r = unsafe {
                libc::recvfrom(
                    rfd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                if &buf[..r as usize] != EXPECTED {
                    return Err("unexpected data".into());
                }
                received += 1;
            } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
                return Err(os_err("recvfrom"));
            }
            if counter == 0 {
                break;
            }
            counter -= 1;
            sent += 1;
        }
        verify(meter, sent, received, n)
    }
}
