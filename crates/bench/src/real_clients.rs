//! Workloads driven by real clients from Debian's packages: a
//! Redis-protocol server (PING, SET, GET, INCR, pipelining) under
//! `redis-benchmark` (50 clients, `-P 16` and `-P 1`) and an HTTP/1.1
//! keep-alive plaintext server under `wrk` (64 connections, with and
//! without 16-deep pipelining). The server runs on a thread of this
//! process and the client in its own process, so this process's CPU time
//! is the server's: the report gives requests/s and server CPU
//! microseconds per request. Each contender's server (xev's callbacks and
//! xev-async on io_uring and epoll, tokio, compio) is the obvious code
//! for its runtime around one shared protocol handler ([`Proto`]); the
//! `hyper-*` contenders serve the HTTP workloads with `hyper` 1.x on
//! xev-async (its `Compat` adapter) and on tokio. A missing client is
//! reported as such and the workload skipped (the bench installs nothing).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::thread;

use xev::backend::Backend;

use crate::common::{ctx, xev_options, Meter, Outcome, Res};

/// Which protocol a server speaks.
#[derive(Clone, Copy, Debug)]
pub enum Proto {
    /// RESP (Redis): PING, SET, GET, INCR, and SHUTDOWN to stop.
    Redis,
    /// HTTP/1.1 keep-alive, one plaintext reply; `GET /shutdown` stops.
    Http,
}

/// What a server's connections share: the store and the counters.
#[derive(Default)]
struct State {
    store: RefCell<HashMap<Vec<u8>, Vec<u8>>>,
    served: Cell<u64>,
    stop: Cell<bool>,
}

const HTTP_REPLY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

impl Proto {
    /// Answers every complete request at the front of `input` into `out`;
    /// returns the bytes consumed, or `None` on a malformed request.
    fn handle(self, input: &[u8], out: &mut Vec<u8>, st: &State) -> Option<usize> {
        let mut at = 0;
        loop {
            let step = match self {
                Proto::Redis => resp_one(&input[at..], out, st)?,
                Proto::Http => http_one(&input[at..], out, st),
            };
            match step {
                0 => return Some(at),
                n => at += n,
            }
        }
    }
}

/// One HTTP request (its head: these requests have no body), or 0 if the
/// head is not complete yet.
fn http_one(input: &[u8], out: &mut Vec<u8>, st: &State) -> usize {
    let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
        return 0;
    };
    if input.starts_with(b"GET /shutdown ") {
        st.stop.set(true);
    }
    out.extend_from_slice(HTTP_REPLY);
    st.served.set(st.served.get() + 1);
    end + 4
}

/// One RESP command (an array of bulk strings), 0 if incomplete, `None`
/// if malformed.
fn resp_one(input: &[u8], out: &mut Vec<u8>, st: &State) -> Option<usize> {
    let mut args: [&[u8]; 3] = [&[]; 3];
    if input.first().is_some_and(|&b| b != b'*') {
        // An inline command (`PING\r\n`: redis-benchmark's PING_INLINE).
        let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
            return Some(0);
        };
        let mut count = 0;
        for word in input[..end].split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            if count < args.len() {
                args[count] = word;
            }
            count += 1;
        }
        answer(&args, count, out, st);
        return Some(end + 2);
    }
    let Some((count, mut at)) = resp_line(input, b'*')? else {
        return Some(0);
    };
    for i in 0..count {
        let Some((len, next)) = resp_line(&input[at..], b'$')? else {
            return Some(0);
        };
        let start = at + next;
        if input.len() < start + len + 2 {
            return Some(0);
        }
        if i < args.len() {
            args[i] = &input[start..start + len];
        }
        at = start + len + 2;
    }
    answer(&args, count, out, st);
    Some(at)
}

/// Answers one command (its first three arguments, and how many it had).
fn answer(args: &[&[u8]; 3], count: usize, out: &mut Vec<u8>, st: &State) {
    let cmd = args[0].to_ascii_uppercase();
    let mut store = st.store.borrow_mut();
    match (cmd.as_slice(), count) {
        (b"PING", 1) => out.extend_from_slice(b"+PONG\r\n"),
        (b"SET", 3) => {
            store.insert(args[1].to_vec(), args[2].to_vec());
            out.extend_from_slice(b"+OK\r\n");
        }
        (b"GET", 2) => match store.get(args[1]) {
            Some(v) => {
                out.extend_from_slice(format!("${}\r\n", v.len()).as_bytes());
                out.extend_from_slice(v);
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(b"$-1\r\n"),
        },
        (b"INCR", 2) => {
            let v = store
                .entry(args[1].to_vec())
                .or_insert_with(|| b"0".to_vec());
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
        (b"SHUTDOWN", _) => {
            st.stop.set(true);
            out.extend_from_slice(b"+OK\r\n");
        }
        // redis-benchmark asks for the server's configuration first.
        (b"CONFIG", _) => out.extend_from_slice(b"*0\r\n"),
        _ => out.extend_from_slice(b"-ERR unknown command\r\n"),
    }
    st.served.set(st.served.get() + 1);
}

/// A `<tag><number>\r\n` line: (number, bytes), `Ok(None)` if incomplete.
fn resp_line(input: &[u8], tag: u8) -> Option<Option<(usize, usize)>> {
    if input.is_empty() {
        return Some(None);
    }
    if input[0] != tag {
        return None;
    }
    let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
        return Some(None);
    };
    let n = std::str::from_utf8(&input[1..end]).ok()?.parse().ok()?;
    Some(Some((n, end + 2)))
}

/// The size of each connection's read buffer.
const BUF: usize = 16 * 1024;

/// What a connection keeps between reads: the start of a request that has
/// not fully arrived. Every server runs the same loop around it: read,
/// answer what is complete ([`Pending::feed`]), write the answers, repeat.
#[derive(Default)]
struct Pending(Vec<u8>);

impl Pending {
    /// Answers what `data` (just read) completes into `out`; keeps the
    /// rest. `None`: a malformed request (the connection is closed).
    fn feed(&mut self, data: &[u8], proto: Proto, out: &mut Vec<u8>, st: &State) -> Option<()> {
        if self.0.is_empty() {
            let used = proto.handle(data, out, st)?;
            self.0.extend_from_slice(&data[used..]);
        } else {
            self.0.extend_from_slice(data);
            let used = proto.handle(&self.0, out, st)?;
            self.0.drain(..used);
        }
        Some(())
    }
}

/// What the xev callback servers do with `data` a connection received:
/// feed it to the connection's parser and queue the answers in order (one
/// vector per batch); after the stop request's answer is out, the loop
/// stops. Disarms the read on a protocol error.
fn serve_data<B: Backend>(
    lp: &mut xev::generic::Loop<B>,
    conn: &xev::watcher::Tcp<B>,
    pending: &mut Pending,
    data: &[u8],
    proto: Proto,
    st: &State,
) -> xev::Action {
    let mut out = Vec::new();
    if pending.feed(data, proto, &mut out, st).is_none() {
        return xev::Action::Disarm;
    }
    if !out.is_empty() {
        let stop = st.stop.get();
        conn.queue_write(lp, out, move |lp, _, _| {
            if stop {
                lp.stop();
            }
            xev::Action::Disarm
        });
    }
    xev::Action::Rearm
}

/// The xev callback server: `Tcp` watchers; each connection keeps one read
/// rearmed into its own buffer and queues its answers in order
/// (`queue_write`, one vector per batch of answers): the obvious callback
/// code. The stop request stops the loop once its answer is written.
fn serve_xev<B: Backend>(listener: TcpListener, proto: Proto, ready: Ready) -> Res<u64> {
    use xev::Action;
    drop(ready);
    let mut lp = xev::generic::Loop::<B>::new(xev_options()).map_err(ctx("loop"))?;
    let server = xev::watcher::Tcp::<B>::from_fd(std::os::fd::OwnedFd::from(listener))
        .map_err(ctx("listener"))?;
    let st = Rc::new(State::default());
    let s2 = st.clone();
    server.accept(&mut lp, move |lp, res| {
        let Ok(conn) = res else {
            return Action::Disarm;
        };
        let conn = Rc::new(conn);
        let (c2, st) = (conn.clone(), s2.clone());
        let mut pending = Pending::default();
        conn.read(lp, vec![0; BUF], move |lp, buf, r| {
            let Ok(n) = r else {
                return Action::Disarm;
            };
            serve_data(lp, &c2, &mut pending, &buf[..n], proto, &st)
        });
        Action::Rearm
    });
    lp.run(xev::RunMode::UntilDone).map_err(ctx("run"))?;
    drop(server);
    Ok(st.served.get())
}

/// The xev callback server with pooled receives: as [`serve_xev`], but
/// each connection's rearmed read is a pooled receive ([`xev::Op::recv_pool`])
/// from one pool of 256 buffers that every connection shares (on io_uring
/// a multishot receive per connection; elsewhere a `recv` into a buffer
/// taken for the call).
fn serve_xev_pooled<B: Backend>(listener: TcpListener, proto: Proto, ready: Ready) -> Res<u64> {
    use std::os::fd::AsRawFd;
    use xev::{Action, OpResult};
    drop(ready);
    let mut lp = xev::generic::Loop::<B>::new(xev_options()).map_err(ctx("loop"))?;
    let pool = lp.add_buf_pool(256, BUF).map_err(ctx("buffer pool"))?;
    let server = xev::watcher::Tcp::<B>::from_fd(std::os::fd::OwnedFd::from(listener))
        .map_err(ctx("listener"))?;
    let st = Rc::new(State::default());
    let s2 = st.clone();
    server.accept(&mut lp, move |lp, res| {
        let Ok(conn) = res else {
            return Action::Disarm;
        };
        let fd = conn.as_raw_fd();
        let st = s2.clone();
        let mut pending = Pending::default();
        lp.add(xev::Op::recv_pool(fd, &pool), move |lp, _, r| {
            let OpResult::RecvPool(Ok(data)) = r else {
                return Action::Disarm;
            };
            serve_data(lp, &conn, &mut pending, &data, proto, &st)
        });
        Action::Rearm
    });
    lp.run(xev::RunMode::UntilDone).map_err(ctx("run"))?;
    drop(server);
    Ok(st.served.get())
}

/// The xev-async server: a task per connection, owned buffers.
fn serve_xev_async<B: Backend>(listener: TcpListener, proto: Proto, ready: Ready) -> Res<u64> {
    drop(ready);
    listener.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    let rt = xev_async::Runtime::<B>::with_options(xev_options()).map_err(ctx("runtime"))?;
    let st = Rc::new(State::default());
    let s2 = st.clone();
    rt.block_on(async move {
        let listener = xev_async::TcpListener::from_std(listener).map_err(ctx("listener"))?;
        while !s2.stop.get() {
            let (conn, _) = listener.accept().await.map_err(ctx("accept"))?;
            let st = s2.clone();
            xev_async::spawn(async move {
                let (mut buf, mut out) = (Vec::with_capacity(BUF), Vec::with_capacity(BUF));
                let mut pending = Pending::default();
                loop {
                    buf.clear();
                    let (r, b) = conn.read(buf).await;
                    let n = match r {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if pending.feed(&b[..n], proto, &mut out, &st).is_none() {
                        return;
                    }
                    buf = b;
                    if out.is_empty() {
                        continue;
                    }
                    let (r, o) = conn.write_all(out).await;
                    if r.is_err() {
                        return;
                    }
                    out = o;
                    out.clear();
                }
            });
        }
        Ok::<_, String>(())
    })?;
    Ok(st.served.get())
}

/// The tokio server: a task per connection, borrowed buffers.
fn serve_tokio(listener: TcpListener, proto: Proto, ready: Ready) -> Res<u64> {
    drop(ready);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    listener.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    let rt = crate::common::tokio_rt()?;
    let local = tokio::task::LocalSet::new();
    let st = Rc::new(State::default());
    let s2 = st.clone();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::from_std(listener).map_err(ctx("listener"))?;
        while !s2.stop.get() {
            let (mut conn, _) = listener.accept().await.map_err(ctx("accept"))?;
            let st = s2.clone();
            tokio::task::spawn_local(async move {
                let (mut buf, mut out) = (vec![0u8; BUF], Vec::with_capacity(BUF));
                let mut pending = Pending::default();
                loop {
                    let n = match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if pending.feed(&buf[..n], proto, &mut out, &st).is_none() {
                        return;
                    }
                    if out.is_empty() {
                        continue;
                    }
                    if conn.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                }
            });
        }
        Ok::<_, String>(())
    })?;
    Ok(st.served.get())
}

/// hyper's service for the wrk workloads: the plaintext reply, counting
/// requests; `/shutdown` stops the server.
fn hyper_hello(
    req: &hyper::Request<hyper::body::Incoming>,
    st: &State,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    if req.uri().path() == "/shutdown" {
        st.stop.set(true);
    }
    st.served.set(st.served.get() + 1);
    let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
        b"Hello, World!",
    )));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    resp
}

/// Serves one connection with hyper's HTTP/1 code and [`hyper_hello`]
/// (pipelined replies flushed together), whatever runtime `io` is from.
async fn serve_hyper_conn<I>(io: I, st: Rc<State>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let resp = hyper_hello(&req, &st);
        async move { Ok::<_, std::convert::Infallible>(resp) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .pipeline_flush(true)
        .serve_connection(io, service)
        .await;
}

/// hyper on xev-async: a task per connection, each a `Compat` stream
/// served by hyper's HTTP/1 connection code (pipelined replies flushed
/// together), as in `xev-async`'s hyper example.
fn serve_hyper_xev_async<B: Backend>(listener: TcpListener, _: Proto, ready: Ready) -> Res<u64> {
    drop(ready);
    let rt = xev_async::Runtime::<B>::with_options(xev_options()).map_err(ctx("runtime"))?;
    let st = Rc::new(State::default());
    let s2 = st.clone();
    rt.block_on(async move {
        let listener = xev_async::TcpListener::from_std(listener).map_err(ctx("listener"))?;
        while !s2.stop.get() {
            let (conn, _) = listener.accept().await.map_err(ctx("accept"))?;
            let _ = conn.set_nodelay(true);
            let st = s2.clone();
            xev_async::spawn(serve_hyper_conn(xev_async::Compat::new(conn), st));
        }
        Ok::<_, String>(())
    })?;
    Ok(st.served.get())
}

/// hyper on tokio (current-thread, `LocalSet`): the same service through
/// hyper-util's `TokioIo`.
fn serve_hyper_tokio(listener: TcpListener, _: Proto, ready: Ready) -> Res<u64> {
    drop(ready);
    listener.set_nonblocking(true).map_err(ctx("nonblocking"))?;
    let rt = crate::common::tokio_rt()?;
    let local = tokio::task::LocalSet::new();
    let st = Rc::new(State::default());
    let s2 = st.clone();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::from_std(listener).map_err(ctx("listener"))?;
        while !s2.stop.get() {
            let (conn, _) = listener.accept().await.map_err(ctx("accept"))?;
            let _ = conn.set_nodelay(true);
            let st = s2.clone();
            tokio::task::spawn_local(serve_hyper_conn(hyper_util::rt::TokioIo::new(conn), st));
        }
        Ok::<_, String>(())
    })?;
    Ok(st.served.get())
}

/// Dropped by a server once it accepts connections.
type Ready = std::sync::mpsc::Sender<()>;

/// The compio server: a task per connection, owned buffers (compio reads
/// into a buffer's spare capacity, so it is cleared before each read).
fn serve_compio(listener: TcpListener, proto: Proto, ready: Ready) -> Res<u64> {
    use compio::io::{AsyncRead, AsyncWriteExt};
    let rt = compio::runtime::Runtime::new().map_err(ctx("runtime"))?;
    let st = Rc::new(State::default());
    let s2 = st.clone();
    rt.block_on(async move {
        // compio makes its listeners itself (no `from_std`): it binds the
        // address the std listener held, then says it is ready.
        let addr = listener.local_addr().map_err(ctx("local_addr"))?;
        drop(listener);
        let listener = compio::net::TcpListener::bind(addr)
            .await
            .map_err(ctx("compio bind"))?;
        drop(ready);
        while !s2.stop.get() {
            let (mut conn, _) = listener.accept().await.map_err(ctx("accept"))?;
            let st = s2.clone();
            compio::runtime::spawn(async move {
                let (mut buf, mut out) = (Vec::with_capacity(BUF), Vec::with_capacity(BUF));
                let mut pending = Pending::default();
                loop {
                    buf.clear();
                    let compio::BufResult(r, b) = conn.read(buf).await;
                    let n = match r {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if pending.feed(&b[..n], proto, &mut out, &st).is_none() {
                        return;
                    }
                    buf = b;
                    if out.is_empty() {
                        continue;
                    }
                    let compio::BufResult(r, o) = conn.write_all(out).await;
                    if r.is_err() {
                        return;
                    }
                    out = o;
                    out.clear();
                }
            })
            .detach();
        }
        Ok::<_, String>(())
    })?;
    Ok(st.served.get())
}

/// Starts `contender`'s server on a thread; returns its address and the
/// thread (which gives the number of requests served).
fn start(contender: &str, proto: Proto) -> Res<(SocketAddr, thread::JoinHandle<Res<u64>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(ctx("bind"))?;
    let addr = listener.local_addr().map_err(ctx("local_addr"))?;
    let serve: fn(TcpListener, Proto, Ready) -> Res<u64> = match contender {
        "xev-io_uring" => serve_xev::<xev::backend::io_uring::IoUring>,
        "xev-epoll" => serve_xev::<xev::backend::epoll::Epoll>,
        "xev_pool-io_uring" => serve_xev_pooled::<xev::backend::io_uring::IoUring>,
        "xev_pool-epoll" => serve_xev_pooled::<xev::backend::epoll::Epoll>,
        "xev_async-io_uring" => serve_xev_async::<xev::backend::io_uring::IoUring>,
        "xev_async-epoll" => serve_xev_async::<xev::backend::epoll::Epoll>,
        "tokio" => serve_tokio,
        "compio" => serve_compio,
        "hyper-xev_async-io_uring" => serve_hyper_xev_async::<xev::backend::io_uring::IoUring>,
        "hyper-xev_async-epoll" => serve_hyper_xev_async::<xev::backend::epoll::Epoll>,
        "hyper-tokio" => serve_hyper_tokio,
        other => return Err(format!("no {proto:?} server written for {other}")),
    };
    let (ready, wait) = std::sync::mpsc::channel();
    let server = thread::spawn(move || serve(listener, proto, ready));
    // The sender is dropped once the server listens (or has failed).
    let _ = wait.recv();
    if server.is_finished() {
        return match server.join() {
            Ok(Err(e)) => Err(e),
            _ => Err("the server stopped before it served".into()),
        };
    }
    Ok((addr, server))
}

/// Stops a server: the stop request, then a connection that wakes its
/// accept so that it sees the flag.
fn stop(addr: SocketAddr, proto: Proto) -> Res<()> {
    let mut c = std::net::TcpStream::connect(addr).map_err(ctx("connect to stop"))?;
    let req: &[u8] = match proto {
        Proto::Redis => b"*1\r\n$8\r\nSHUTDOWN\r\n",
        Proto::Http => b"GET /shutdown HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    c.write_all(req).map_err(ctx("stop request"))?;
    let mut b = [0u8; 256];
    let n = c.read(&mut b).map_err(ctx("stop reply"))?;
    if n == 0 {
        return Err("the server closed instead of answering the stop request".into());
    }
    drop(std::net::TcpStream::connect(addr));
    Ok(())
}

/// Whether a client program is installed (it runs with `--version`).
pub fn client_missing(program: &str) -> Option<String> {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    (!ok).then(|| format!("{program} is not installed (Debian: redis-tools or wrk); skipped"))
}

/// `redis-benchmark` against `contender`'s server: 50 clients, `n`
/// requests for each of PING (inline and bulk), SET, GET and INCR, with
/// `pipeline` commands in flight per client.
pub fn redis(contender: &str, pipeline: u32, n: u64) -> Res<Outcome> {
    if let Some(why) = client_missing("redis-benchmark") {
        return Err(why);
    }
    let (addr, server) = start(contender, Proto::Redis)?;
    let meter = Meter::start();
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args([
            "-c",
            "50",
            "-n",
            &n.to_string(),
            "-P",
            &pipeline.to_string(),
        ])
        .args(["-t", "ping,set,get,incr", "-q", "--csv"])
        .stdin(Stdio::null())
        .output()
        .map_err(ctx("redis-benchmark"))?;
    let outcome = finish(meter, addr, Proto::Redis, server, 5 * n);
    if !out.status.success() {
        return Err(format!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    outcome
}

/// `wrk` against `contender`'s server for `secs` seconds: 64 connections
/// on 2 threads, each request alone or 16 pipelined.
pub fn http(contender: &str, pipeline: u32, secs: u64) -> Res<Outcome> {
    if let Some(why) = client_missing("wrk") {
        return Err(why);
    }
    let (addr, server) = start(contender, Proto::Http)?;
    let script = std::env::temp_dir().join(format!("xev-bench-wrk-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "init = function(args)\n  local r = {{}}\n  for i = 1, {pipeline} do r[i] = wrk.format(nil, \"/\") end\n  req = table.concat(r)\nend\nrequest = function() return req end\n"
        ),
    )
    .map_err(ctx("wrk script"))?;
    let meter = Meter::start();
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", "64", "-d", &format!("{}s", secs.max(1))])
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{addr}/"))
        .stdin(Stdio::null())
        .output()
        .map_err(ctx("wrk"));
    let _ = std::fs::remove_file(&script);
    let out = out?;
    let outcome = finish(meter, addr, Proto::Http, server, 1);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    outcome
}

/// Ends a run: the figures (requests/s over the client's run, server CPU
/// per request), then the server stopped and its count checked against
/// `at_least`.
fn finish(
    meter: Meter,
    addr: SocketAddr,
    proto: Proto,
    server: thread::JoinHandle<Res<u64>>,
    at_least: u64,
) -> Res<Outcome> {
    let (elapsed, cpu) = (meter.elapsed(), meter.cpu());
    stop(addr, proto)?;
    let served = server
        .join()
        .map_err(|_| "the server thread panicked".to_string())??;
    // The stop request was served too.
    let served = served.saturating_sub(1);
    if served < at_least {
        return Err(format!(
            "the server answered {served} requests, expected at least {at_least}"
        ));
    }
    Ok(Outcome {
        figure: served as f64 / elapsed,
        elapsed,
        cpu,
        count: served,
        extra: Vec::new(),
    }
    .with(
        "server_cpu_us_per_req",
        format!("{:.2}", cpu * 1e6 / served as f64),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_commands_and_partial_input() {
        let st = State::default();
        let mut out = Vec::new();
        let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n41\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET";
        let used = Proto::Redis.handle(req, &mut out, &st).unwrap();
        assert_eq!(out, b"+OK\r\n:42\r\n$2\r\n42\r\n+PONG\r\n");
        assert_eq!(&req[used..], b"*2\r\n$3\r\nGET");
        assert_eq!(st.served.get(), 4);
        // Inline commands (redis-benchmark's PING_INLINE).
        out.clear();
        assert_eq!(Proto::Redis.handle(b"PING\r\nPI", &mut out, &st), Some(6));
        assert_eq!(out, b"+PONG\r\n");
        assert!(Proto::Redis.handle(b"*x\r\n", &mut out, &st).is_none());
    }

    #[test]
    fn http_pipelined_requests() {
        let st = State::default();
        let mut out = Vec::new();
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET /";
        let used = Proto::Http.handle(req, &mut out, &st).unwrap();
        assert_eq!(out.len(), 2 * HTTP_REPLY.len());
        assert_eq!(&req[used..], b"GET /");
        assert!(!st.stop.get());
    }
}
