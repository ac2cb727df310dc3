//! Name lookups with the system resolver, for
//! [`Resolve`](crate::resolve::Resolve) on the thread pool: the standard
//! library's `ToSocketAddrs` (which calls `getaddrinfo`), whose errors on
//! Windows carry the WinSock code that tells a missing host apart.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::error::ResolveError;

/// `WSAHOST_NOT_FOUND`, `WSANO_DATA`: the name does not exist or has no
/// address.
const NOT_FOUND: [i32; 2] = [11001, 11004];
/// `WSATRY_AGAIN`: a temporary failure.
const TRY_AGAIN: i32 = 11002;

/// The addresses of `host` with `port`, in the resolver's order.
pub(crate) fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    match (host, port).to_socket_addrs() {
        Ok(it) => Ok(it.collect()),
        Err(e) => Err(match e.raw_os_error() {
            Some(c) if NOT_FOUND.contains(&c) => ResolveError::NotFound,
            Some(TRY_AGAIN) => ResolveError::TryAgain,
            _ => ResolveError::Io(e),
        }),
    }
}
