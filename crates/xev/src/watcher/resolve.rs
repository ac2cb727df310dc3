//! Connecting by name: [`resolve`] (a `host:port` lookup on the loop's
//! thread pool, see [`Resolve`]), [`Tcp::connect_by_name`], which tries
//! each address found in turn until one connects, and
//! [`Udp::for_peer`], which makes a UDP socket of the peer's family.

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
use std::cell::Cell;
use std::net::SocketAddr;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
use std::rc::Rc;

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
use super::tcp::Tcp;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
use super::udp::Udp;
use crate::backend::Backend;
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
use crate::error::ConnectByNameError;
use crate::error::ResolveError;
use crate::event_loop::Loop;
use crate::id::Id;
use crate::op::{unexpected, Op, OpResult};
use crate::record::Action;
use crate::resolve::Resolve;

/// Resolves `host_port` (`"name:port"`, `"[v6::addr]:port"`) on the loop's
/// thread pool and calls `cb` with the addresses (in the resolver's order;
/// never empty on success). Cancel it with the returned id: the callback
/// then gets [`ResolveError::Canceled`] (at once if the lookup has not
/// started, else when the resolver returns, its answer discarded).
///
/// A malformed `host_port` calls back with [`ResolveError::Invalid`] on
/// the next tick; a loop without a thread pool, with
/// [`ResolveError::NoThreadPool`].
pub fn resolve<B, F>(lp: &mut Loop<B>, host_port: &str, cb: F) -> Id
where
    B: Backend,
    F: FnOnce(&mut Loop<B>, Result<Vec<SocketAddr>, ResolveError>) + 'static,
{
    let mut cb = Some(cb);
    let mut call = move |lp: &mut Loop<B>, r| {
        if let Some(cb) = cb.take() {
            cb(lp, r);
        }
    };
    match Resolve::parse(host_port) {
        Ok(r) => lp.add(Op::Resolve(r), move |lp, _, res| {
            call(
                lp,
                match res {
                    OpResult::Resolve(r) => r,
                    other => Err(ResolveError::Io(unexpected(&other))),
                },
            );
            Action::Disarm
        }),
        Err(e) => {
            let mut e = Some(e);
            lp.add(Op::Noop, move |lp, _, _| {
                if let Some(e) = e.take() {
                    call(lp, Err(e));
                }
                Action::Disarm
            })
        }
    }
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
impl<B: Backend> Tcp<B> {
    /// Resolves `host_port` on the loop's thread pool, then connects to
    /// each address found, in order, until one accepts (a new socket per
    /// attempt, of that address's family). The callback gets the connected
    /// socket, or the resolver's error, or the last address's connect
    /// error.
    pub fn connect_by_name<F>(lp: &mut Loop<B>, host_port: &str, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<Tcp<B>, ConnectByNameError>) + 'static,
    {
        resolve(lp, host_port, move |lp, r| match r {
            Ok(addrs) => try_connect(lp, Rc::new(addrs), 0, cb),
            Err(e) => cb(lp, Err(ConnectByNameError::Resolve(e))),
        })
    }
}

/// Connects to `addrs[i]`, moving on to the next address on failure.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn try_connect<B, F>(lp: &mut Loop<B>, addrs: Rc<Vec<SocketAddr>>, i: usize, cb: F)
where
    B: Backend,
    F: FnOnce(&mut Loop<B>, Result<Tcp<B>, ConnectByNameError>) + 'static,
{
    let addr = addrs[i];
    let last = i + 1 == addrs.len();
    let tcp = match Tcp::new(addr) {
        Ok(t) => t,
        Err(e) if last => return cb(lp, Err(ConnectByNameError::Socket(e))),
        Err(_) => return try_connect(lp, addrs, i + 1, cb),
    };
    // The callback takes the socket out of `cell` once connected; it is
    // put there right after the connect starts (callbacks run later, from
    // the loop).
    let cell = Rc::new(Cell::new(None));
    let held = cell.clone();
    let mut cb = Some(cb);
    tcp.connect(lp, addr, move |lp, r| {
        let (Some(cb), Some(t)) = (cb.take(), held.take()) else {
            return Action::Disarm;
        };
        match r {
            Ok(()) => cb(lp, Ok(t)),
            Err(e) if last => cb(lp, Err(ConnectByNameError::Connect(e))),
            // The failed socket is dropped (closed through the loop).
            Err(_) => try_connect(lp, addrs.clone(), i + 1, cb),
        }
        Action::Disarm
    });
    cell.set(Some(tcp));
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
impl<B: Backend> Udp<B> {
    /// Resolves `host_port` on the loop's thread pool and calls back with
    /// a new UDP socket of the first address's family (unbound: its first
    /// write binds it to an ephemeral port) and that address, to pass to
    /// [`Udp::write`].
    pub fn for_peer<F>(lp: &mut Loop<B>, host_port: &str, cb: F) -> Id
    where
        F: FnOnce(&mut Loop<B>, Result<(Udp<B>, SocketAddr), ConnectByNameError>) + 'static,
    {
        resolve(lp, host_port, move |lp, r| {
            let r = r
                .map_err(ConnectByNameError::Resolve)
                .and_then(|addrs| {
                    let addr = addrs[0];
                    Udp::new(addr)
                        .map(|u| (u, addr))
                        .map_err(ConnectByNameError::Socket)
                });
            cb(lp, r)
        })
    }
}
