//! Name resolution: [`Resolve`], the operation behind [`Op::Resolve`]
//! (crate::Op::Resolve), which turns `host:port` into socket addresses with
//! the system resolver (`getaddrinfo`) on the loop's thread pool, on every
//! backend. xev has no DNS client of its own.
//!
//! A lookup blocks a pool thread for as long as the system resolver takes
//! (its own timeouts apply). Canceling a lookup never waits for it: a
//! queued lookup is dropped before it starts, and one already running has
//! its result discarded when it returns (the completion then ends with
//! [`ResolveError::Canceled`]); the pool thread is never held by the loop.

use std::fmt;
use std::net::SocketAddr;

use crate::error::ResolveError;

/// A `host:port` lookup. Build one with [`Resolve::new`] or
/// [`Resolve::parse`] and add it as [`Op::Resolve`](crate::Op::Resolve);
/// the callback gets [`OpResult::Resolve`](crate::OpResult::Resolve) with
/// the addresses in the resolver's order (IPv4 and IPv6 as configured on
/// the system), one per address (stream sockets' entries only, so no
/// duplicates per protocol).
pub struct Resolve {
    host: String,
    port: u16,
    /// What the pool thread found; taken by the result.
    pub(crate) outcome: Option<Result<Vec<SocketAddr>, ResolveError>>,
}

impl Resolve {
    /// A lookup of `host` (a name or an address literal, IPv6 without
    /// brackets) with `port` in every address found.
    pub fn new(host: impl Into<String>, port: u16) -> Box<Resolve> {
        Box::new(Resolve {
            host: host.into(),
            port,
            outcome: None,
        })
    }

    /// A lookup of `"host:port"` (`"[v6::addr]:port"` for IPv6 literals).
    ///
    /// # Errors
    /// [`ResolveError::Invalid`] when `s` has no `:port` suffix, the port is
    /// not a number from 0 to 65535, or the host is empty.
    pub fn parse(s: &str) -> Result<Box<Resolve>, ResolveError> {
        let (host, port) = s.rsplit_once(':').ok_or(ResolveError::Invalid)?;
        let port: u16 = port.parse().map_err(|_| ResolveError::Invalid)?;
        let host = match host.strip_prefix('[') {
            Some(h) => h.strip_suffix(']').ok_or(ResolveError::Invalid)?,
            None if host.contains(':') => return Err(ResolveError::Invalid),
            None => host,
        };
        if host.is_empty() {
            return Err(ResolveError::Invalid);
        }
        Ok(Resolve::new(host, port))
    }

    /// The host looked up.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port every address carries.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Performs the lookup (on a pool thread) and keeps its outcome.
    pub(crate) fn run(&mut self) {
        let r = if self.host.contains('\0') {
            Err(ResolveError::Invalid)
        } else {
            crate::sys::lookup(&self.host, self.port)
        };
        self.outcome = Some(r.and_then(|v| {
            if v.is_empty() {
                Err(ResolveError::NotFound)
            } else {
                Ok(v)
            }
        }));
    }

    /// The typed result for the raw result `res` the loop delivered.
    pub(crate) fn result(&mut self, res: i32) -> Result<Vec<SocketAddr>, ResolveError> {
        let outcome = self.outcome.take();
        match res {
            crate::error::NO_THREAD_POOL => Err(ResolveError::NoThreadPool),
            r if r < 0 => Err(ResolveError::from_raw(r)),
            _ => outcome.unwrap_or(Err(ResolveError::NotFound)),
        }
    }
}

impl fmt::Debug for Resolve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolve")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_names_and_literals_and_refuses_the_rest() {
        let r = Resolve::parse("example.com:80").unwrap();
        assert_eq!((r.host(), r.port()), ("example.com", 80));
        let r = Resolve::parse("[::1]:443").unwrap();
        assert_eq!((r.host(), r.port()), ("::1", 443));
        let r = Resolve::parse("127.0.0.1:0").unwrap();
        assert_eq!((r.host(), r.port()), ("127.0.0.1", 0));
        for bad in ["example.com", ":80", "host:99999", "host:x", "::1:80", "[::1:80"] {
            assert!(
                matches!(Resolve::parse(bad), Err(ResolveError::Invalid)),
                "{bad}"
            );
        }
    }
}
