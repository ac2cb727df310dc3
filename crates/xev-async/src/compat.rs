//! Interop with borrowed-buffer I/O traits: [`Compat`] gives a
//! [`TcpStream`] `futures-io`'s `AsyncRead`/`AsyncWrite` (feature
//! `futures-io`) and `hyper` 1.x's `rt::Read`/`rt::Write` (feature `hyper`),
//! which much of the ecosystem is written against.
//!
//! What it costs: a completion API cannot lend the caller's slice to the
//! kernel (the future that owns the slice may be dropped while the kernel
//! still writes into it), so `Compat` keeps two buffers of its own (64 KiB
//! each, allocated once) and copies: a read lands in the read buffer and is
//! copied out to the caller's slice; a write copies the caller's bytes into
//! the write buffer and completes at once (write-behind: its outcome, an
//! error included, is reported by the next `poll_write`, `poll_flush` or
//! `poll_close`). Use [`TcpStream`]'s own owned-buffer methods where the
//! copies matter.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use xev::{Op, OpResult, ReadError};

use crate::net::TcpStream;
use crate::op::OpFuture;

const CAP: usize = 64 * 1024;

/// A [`TcpStream`] with borrowed-buffer read and write traits (see the
/// module docs).
pub struct Compat {
    // Fields drop in order: operations first (canceled), then the socket.
    read: Option<OpFuture>,
    write: Option<OpFuture>,
    rbuf: Vec<u8>,
    rpos: usize,
    rlen: usize,
    wbuf: Vec<u8>,
    /// A write error not reported yet.
    werr: Option<io::Error>,
    stream: TcpStream,
}

impl Compat {
    /// Wraps `stream`.
    pub fn new(stream: TcpStream) -> Compat {
        Compat {
            read: None,
            write: None,
            rbuf: Vec::new(),
            rpos: 0,
            rlen: 0,
            wbuf: Vec::new(),
            werr: None,
            stream,
        }
    }

    /// The stream back (operations in flight are canceled).
    pub fn into_inner(self) -> TcpStream {
        self.stream
    }

    /// Drives the write in flight (and the rest of a short write) to its
    /// end.
    fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(op) = self.write.as_mut() {
            let (res, op) = match op.poll_via(cx, Some(self.stream.hints().seen())) {
                Poll::Ready(r) => r,
                Poll::Pending => return Poll::Pending,
            };
            self.write = None;
            if let Some(rest) = self.sent(res, op) {
                self.send(cx, rest);
            }
        }
        match self.werr.take() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Sends `op` (a `Send` of the write buffer): at once when the socket
    /// takes it (see `TcpStream`'s eager attempts), else through the
    /// loop, leaving it in `self.write`. A failure waits in `self.werr`.
    fn send(&mut self, cx: &mut Context<'_>, mut op: Op) {
        loop {
            let (res, done) = match self.stream.hints().writing().start(op, cx) {
                Ok(done) => done,
                Err(fut) => {
                    self.write = Some(fut);
                    return;
                }
            };
            match self.sent(res, done) {
                Some(rest) => op = rest,
                None => return,
            }
        }
    }

    /// Takes a finished send: the write buffer comes back (or a failure
    /// goes to `self.werr`), or the rest of a short send is returned.
    fn sent(&mut self, res: OpResult, mut op: Op) -> Option<Op> {
        let mut buf = op.take_buf().unwrap_or_default();
        match res {
            OpResult::Write(Ok(n)) if n < buf.len() && n > 0 => {
                buf.drain(..n);
                return Some(Op::Send {
                    fd: self.stream.raw(),
                    buf: buf.into(),
                });
            }
            OpResult::Write(Ok(0)) if !buf.is_empty() => {
                self.werr = Some(io::ErrorKind::WriteZero.into());
            }
            OpResult::Write(Ok(_)) => {}
            OpResult::Write(Err(e)) => self.werr = Some(e.into()),
            other => self.werr = Some(io::Error::other(format!("unexpected {other:?}"))),
        }
        self.wbuf = buf;
        None
    }
}

impl Compat {
    /// Reads into the read buffer when it is empty, then hands `copy` the
    /// bytes waiting there; `copy` returns how many it took. `want` is how
    /// many the caller can take (0 answers `Ok(0)` at once).
    fn poll_read_with(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
        copy: impl FnOnce(&[u8]) -> usize,
    ) -> Poll<io::Result<usize>> {
        if self.rpos < self.rlen {
            let n = copy(&self.rbuf[self.rpos..self.rlen]);
            self.rpos += n;
            return Poll::Ready(Ok(n));
        }
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        let (res, mut op) = match self.read.as_mut() {
            Some(fut) => match fut.poll_via(cx, Some(self.stream.hints().seen())) {
                Poll::Ready(r) => r,
                Poll::Pending => return Poll::Pending,
            },
            None => {
                let mut buf = std::mem::take(&mut self.rbuf);
                buf.resize(CAP, 0);
                let op = Op::Recv {
                    fd: self.stream.raw(),
                    buf: buf.into(),
                };
                match self.stream.hints().reading().start(op, cx) {
                    Ok(done) => done,
                    Err(fut) => {
                        self.read = Some(fut);
                        return Poll::Pending;
                    }
                }
            }
        };
        self.read = None;
        self.rbuf = op.take_buf().unwrap_or_default();
        match res {
            OpResult::Read(Ok(n)) => {
                let k = copy(&self.rbuf[..n]);
                (self.rpos, self.rlen) = (k, n);
                Poll::Ready(Ok(k))
            }
            OpResult::Read(Err(ReadError::Eof)) => Poll::Ready(Ok(0)),
            OpResult::Read(Err(e)) => Poll::Ready(Err(e.into())),
            other => Poll::Ready(Err(io::Error::other(format!("unexpected {other:?}")))),
        }
    }

    /// Copies `data` (up to the write buffer's size) into the write buffer
    /// and starts sending it, once the previous write is done.
    fn poll_write_from(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.poll_written(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        let n = data.len().min(CAP);
        let mut buf = std::mem::take(&mut self.wbuf);
        buf.clear();
        buf.extend_from_slice(&data[..n]);
        // Sent now, or submitted now (the first poll adds it to the loop,
        // which answers later); its outcome is reported by the next write
        // or flush.
        let op = Op::Send {
            fd: self.stream.raw(),
            buf: buf.into(),
        };
        self.send(cx, op);
        Poll::Ready(Ok(n))
    }

    /// Flushes, then shuts down the write side (which never waits).
    fn poll_close_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_written(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let _ = self.stream.shutdown_now(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}

#[cfg(feature = "futures-io")]
impl futures_io::AsyncRead for Compat {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let want = out.len();
        self.poll_read_with(cx, want, |data| {
            let n = data.len().min(out.len());
            out[..n].copy_from_slice(&data[..n]);
            n
        })
    }
}

#[cfg(feature = "futures-io")]
impl futures_io::AsyncWrite for Compat {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_from(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_written(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_close_write(cx)
    }
}

#[cfg(feature = "hyper")]
impl hyper::rt::Read for Compat {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let want = buf.remaining();
        self.poll_read_with(cx, want, |data| {
            let n = data.len().min(buf.remaining());
            buf.put_slice(&data[..n]);
            n
        })
        .map_ok(drop)
    }
}

#[cfg(feature = "hyper")]
impl hyper::rt::Write for Compat {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_from(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_written(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_close_write(cx)
    }
}
