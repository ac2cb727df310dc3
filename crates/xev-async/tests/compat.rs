//! `futures-io` interop (`--features futures-io`): a [`Compat`] stream
//! read and written through `AsyncRead`/`AsyncWrite`, on every backend.

#![cfg(feature = "futures-io")]

#[path = "../../xev/tests/support/harness.rs"]
#[macro_use]
mod harness;

use std::future::poll_fn;
use std::pin::Pin;

use futures_io::{AsyncRead, AsyncWrite};
use xev::backend::Backend;
use xev::Options;
use xev_async::{spawn, Compat, Runtime, TcpListener, TcpStream};

async fn write_all(s: &mut Compat, mut data: &[u8]) {
    while !data.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *s).poll_write(cx, data))
            .await
            .unwrap();
        data = &data[n..];
    }
}

async fn read_to_end(s: &mut Compat) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = poll_fn(|cx| Pin::new(&mut *s).poll_read(cx, &mut buf))
            .await
            .unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

for_each_backend!(
    fn compat_stream_echoes_through_futures_io<B: Backend>() {
        let rt = Runtime::<B>::with_options(Options::default()).unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let server = spawn(async move {
                let (conn, _) = listener.accept().await.unwrap();
                let mut c = Compat::new(conn);
                let data = read_to_end(&mut c).await;
                write_all(&mut c, &data).await;
                poll_fn(|cx| Pin::new(&mut c).poll_close(cx)).await.unwrap();
                data.len()
            });
            let mut c = Compat::new(TcpStream::connect(addr).await.unwrap());
            let msg: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            write_all(&mut c, &msg).await;
            poll_fn(|cx| Pin::new(&mut c).poll_close(cx)).await.unwrap();
            let back = read_to_end(&mut c).await;
            assert_eq!(back, msg);
            assert_eq!(server.await.unwrap(), msg.len());
        });
        assert_eq!(rt.ops_in_flight(), 0);
    }
);
