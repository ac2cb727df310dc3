//! Name resolution ([`Op::Resolve`], `getaddrinfo` on the thread pool):
//! address literals and `localhost`, a name that cannot exist, no thread
//! pool, canceling a lookup, and connecting by name with the watchers.

use crate::support::*;
use xev::watcher::{resolve, Tcp, Udp};
use xev::{ConnectByNameError, Resolve, ResolveError};

/// A name no resolver can find, refused before any network query: its
/// first label is longer than DNS allows (63 bytes).
fn missing_name() -> String {
    format!("{}.invalid:80", "a".repeat(64))
}

/// Where a callback leaves its result for the test.
type Slot<T> = Rc<RefCell<Option<T>>>;

fn lookup<B: Backend>(lp: &mut Loop<B>, r: Box<Resolve>) -> Result<Vec<SocketAddr>, ResolveError> {
    let (res, _) = run_op(lp, Op::Resolve(r), "resolve");
    expect!(res, OpResult::Resolve(r) => r)
}

for_each_backend!(
    fn resolve_literals_and_localhost<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let v4 = lookup(&mut lp, Resolve::parse("127.0.0.1:8080").unwrap()).unwrap();
        assert_eq!(v4, vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);
        let v6 = lookup(&mut lp, Resolve::new("::1", 9)).unwrap();
        assert_eq!(v6, vec!["[::1]:9".parse::<SocketAddr>().unwrap()]);
        let local = lookup(&mut lp, Resolve::parse("localhost:4242").unwrap()).unwrap();
        assert!(
            local
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 4242),
            "localhost gave {local:?}"
        );
    }

    fn resolve_a_missing_name_is_not_found<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let r = lookup(&mut lp, Resolve::parse(&missing_name()).unwrap());
        expect!(r, Err(ResolveError::NotFound));
        // A NUL byte never reaches the resolver.
        expect!(
            lookup(&mut lp, Resolve::new("a\0b", 1)),
            Err(ResolveError::Invalid)
        );
    }

    /// WASI has no thread pool (no threads) and so no resolver: a lookup
    /// is `Unsupported` at once.
    #[cfg(target_os = "wasi")]
    fn resolve_is_unsupported_on_wasi<B: Backend>() {
        let mut lp = new_loop::<B>();
        let r = lookup(&mut lp, Resolve::new("127.0.0.1", 1));
        expect!(r, Err(ResolveError::Unsupported));
    }

    fn resolve_without_a_pool_says_so<B: Backend>() {
        let mut lp = new_loop::<B>();
        let r = lookup(&mut lp, Resolve::new("127.0.0.1", 1));
        expect!(r, Err(ResolveError::NoThreadPool));
    }

    fn resolve_canceled_before_it_runs_ends_canceled<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        // Both start in the same tick: the lookup is still queued for the
        // pool (batches are scheduled at the end of a tick) when the cancel
        // finds it.
        let p = submit(&mut lp, Op::Resolve(Resolve::new("localhost", 1)));
        let c = submit(&mut lp, Op::Cancel { target: p.id });
        let (res, _) = wait(&mut lp, &p, "the lookup");
        expect!(res, OpResult::Resolve(Err(ResolveError::Canceled)));
        let (res, _) = wait(&mut lp, &c, "the cancel");
        expect!(res, OpResult::Cancel(Ok(())));
    }

    fn many_lookups_at_once_each_complete_once<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let ps: Vec<_> = (0..32u16)
            .map(|i| submit(&mut lp, Op::Resolve(Resolve::new("127.0.0.1", i))))
            .collect();
        for (i, p) in ps.iter().enumerate() {
            let (res, _) = wait(&mut lp, p, "a lookup");
            let addrs = expect!(res, OpResult::Resolve(Ok(a)) => a);
            assert_eq!(addrs[0].port(), i as u16);
        }
    }

    fn resolve_helper_reports_malformed_input<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        resolve(&mut lp, "no-port-here", move |_, r| {
            *g.borrow_mut() = Some(r)
        });
        run_until(&mut lp, "the callback", || got.borrow().is_some());
        expect!(got.borrow_mut().take().unwrap(), Err(ResolveError::Invalid));
    }

    fn tcp_connect_by_name_reaches_a_listener<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Slot<Result<Tcp<B>, ConnectByNameError>> = Rc::default();
        let g = got.clone();
        Tcp::connect_by_name(&mut lp, &format!("localhost:{port}"), move |_, r| {
            *g.borrow_mut() = Some(r)
        });
        run_until(&mut lp, "connect by name", || got.borrow().is_some());
        let tcp = got.borrow_mut().take().unwrap().expect("connected");
        let (_peer, from) = listener.accept().unwrap();
        assert_eq!(tcp.local_addr().unwrap(), from);
        drop(tcp);
        // A missing name is the resolver's typed error.
        let g = got.clone();
        Tcp::connect_by_name(&mut lp, &missing_name(), move |_, r| {
            *g.borrow_mut() = Some(r)
        });
        run_until(&mut lp, "connect to a missing name", || {
            got.borrow().is_some()
        });
        expect!(
            got.borrow_mut().take().unwrap(),
            Err(ConnectByNameError::Resolve(ResolveError::NotFound))
        );
        settle(&mut lp);
    }

    fn udp_for_peer_sends_to_the_resolved_address<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = peer.local_addr().unwrap().port();
        let got = Rc::new(Cell::new(false));
        let held: Rc<RefCell<Option<Udp<B>>>> = Rc::default();
        let (g, h) = (got.clone(), held.clone());
        Udp::<B>::for_peer(&mut lp, &format!("127.0.0.1:{port}"), move |lp, r| {
            let (udp, addr) = r.expect("a socket for the peer");
            udp.write(lp, addr, b"by name".to_vec(), move |_, _, r| {
                assert_eq!(r.unwrap(), 7);
                g.set(true);
                Action::Disarm
            });
            // Kept alive until the write is done (a dropped watcher cancels).
            *h.borrow_mut() = Some(udp);
        });
        run_until(&mut lp, "the datagram", || got.get());
        drop(held.borrow_mut().take());
        let mut buf = [0u8; 16];
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"by name");
        settle(&mut lp);
    }
);
