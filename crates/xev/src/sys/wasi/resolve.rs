//! Name lookups on WASI: there is no thread pool to run the system
//! resolver on (and preview 1 has no resolver), so lookups end with
//! `Unsupported` before they get here.

use std::net::SocketAddr;

use crate::error::ResolveError;

/// Never reached on WASI (the loop answers `Unsupported` first).
pub(crate) fn lookup(_host: &str, _port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    Err(ResolveError::Unsupported)
}
