//! Proves that the async layer allocates nothing in steady state on the
//! runtime's thread: 10,000 TCP echo round trips (client and server tasks
//! on one runtime, buffers passed back and forth) and 100,000 `sleep`s,
//! measured after warm-up with a counting global allocator (per thread),
//! on every backend (`tests/support/harness.rs` of the xev crate).

#![cfg(any(target_os = "linux", windows, target_os = "wasi"))]
// WASI preview 1 has no sockets: the echo half is left out there.
#![cfg_attr(
    all(target_os = "wasi", target_env = "p1"),
    allow(dead_code, unused_imports)
)]

#[path = "../../xev/tests/support/harness.rs"]
#[macro_use]
mod harness;

#[path = "../../xev/tests/support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use xev::backend::Backend;
use xev::Options;
use xev_async::{sleep, Runtime};
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
use xev_async::{spawn, IoBuf, TcpListener, TcpStream, UdpSocket};

const MSG: usize = 64;

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn echo_round_trips<B: Backend>(warmup: u64, rounds: u64) -> u64 {
    let rt = Runtime::<B>::with_options(Options::default()).unwrap();
    let mark = Rc::new(Cell::new(0u64));
    let m = mark.clone();
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            // The server reads into a vector's spare capacity (through a
            // slice of exactly one message), the client into a boxed
            // slice: both kinds of buffer are lent to the loop without
            // allocating.
            let mut buf = Vec::with_capacity(MSG);
            loop {
                buf.clear();
                let (r, b) = conn.read_exact(buf.slice(..MSG)).await;
                if r.is_err() {
                    break;
                }
                let (r, b) = conn.write_all(b.into_inner()).await;
                r.unwrap();
                buf = b;
            }
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let mut buf = vec![0u8; MSG].into_boxed_slice();
        for i in 0..warmup + rounds {
            if i == warmup {
                m.set(allocs());
            }
            buf[..8].copy_from_slice(&i.to_le_bytes());
            let (r, b) = client.write_all(buf).await;
            r.unwrap();
            let (r, b) = client.read_exact(b).await;
            r.unwrap();
            assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), i);
            buf = b;
        }
        let used = allocs() - m.get();
        drop(client);
        server.await.unwrap();
        used
    })
}

/// UDP round trips through `send_to` and `recv_from` (a static datagram,
/// received into a vector's spare capacity): the socket reuses its
/// message boxes.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn udp_round_trips<B: Backend>(warmup: u64, rounds: u64) -> u64 {
    let rt = Runtime::<B>::with_options(Options::default()).unwrap();
    rt.block_on(async move {
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = b.local_addr().unwrap();
        let mut buf = Vec::with_capacity(64);
        let mut mark = 0;
        for i in 0..warmup + rounds {
            if i == warmup {
                mark = allocs();
            }
            let (r, _) = a.send_to(b"datagram", to).await;
            assert_eq!(r.unwrap(), 8);
            buf.clear();
            let (r, back) = b.recv_from(buf).await;
            buf = back;
            assert_eq!((r.unwrap().0, &buf[..]), (8, &b"datagram"[..]));
        }
        allocs() - mark
    })
}

fn sleeps<B: Backend>(warmup: u64, n: u64) -> u64 {
    let rt = Runtime::<B>::with_options(Options::default()).unwrap();
    rt.block_on(async move {
        let mut mark = 0;
        for i in 0..warmup + n {
            if i == warmup {
                mark = allocs();
            }
            sleep(Duration::ZERO).await;
        }
        allocs() - mark
    })
}

fn counting_allocator_is_installed() {
    let before = allocs();
    std::hint::black_box(Box::new(7u64));
    assert!(allocs() > before, "the counting allocator is not installed");
}

for_each_backend!(
    fn async_sleeps_allocate_nothing<B: Backend>() {
        counting_allocator_is_installed();
        let a = sleeps::<B>(1_000, 100_000);
        assert_eq!(a, 0, "100,000 sleeps allocated {a} times");
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    fn async_udp_allocates_nothing<B: Backend>() {
        counting_allocator_is_installed();
        let a = udp_round_trips::<B>(1_000, 10_000);
        assert_eq!(a, 0, "10,000 UDP round trips allocated {a} times");
    }

    #[cfg(not(all(target_os = "wasi", target_env = "p1")))]
    fn async_echo_allocates_nothing<B: Backend>() {
        counting_allocator_is_installed();
        let a = echo_round_trips::<B>(1_000, 10_000);
        assert_eq!(a, 0, "10,000 echo round trips allocated {a} times");
    }
);
