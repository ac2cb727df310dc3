//! The socket address of [`Op::Connect`](crate::Op::Connect) and of
//! message operations on WASI preview 1, where `socket2` (whose `SockAddr`
//! the other targets use) does not build. Preview 1 cannot connect or send
//! datagrams, so the address is only carried, never given to the system.

use std::net::SocketAddr;

/// A socket address (an IPv4 or IPv6 address and port). On WASI preview 1
/// only; elsewhere this is `socket2::SockAddr`, whose conversions from and
/// to [`SocketAddr`] this type shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockAddr {
    addr: SocketAddr,
}

impl From<SocketAddr> for SockAddr {
    fn from(addr: SocketAddr) -> SockAddr {
        SockAddr { addr }
    }
}

impl SockAddr {
    /// The address as a standard socket address (always `Some` here).
    pub fn as_socket(&self) -> Option<SocketAddr> {
        Some(self.addr)
    }

    /// Nothing to record: preview 1 never receives an address.
    ///
    /// # Safety
    /// None needed; `unsafe` to match `socket2::SockAddr::set_length`.
    pub(crate) unsafe fn set_length(&mut self, _len: u32) {}
}
