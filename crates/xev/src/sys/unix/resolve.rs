//! Name lookups with the system resolver (`getaddrinfo`), for
//! [`Resolve`](crate::resolve::Resolve) on the thread pool. Called directly
//! (not through `ToSocketAddrs`) so that "no such host" and "try again"
//! come back as typed errors instead of a message string.

use std::ffi::CString;
use std::net::SocketAddr;

use socket2::SockAddr;

use crate::error::ResolveError;

/// The addresses of `host` for stream sockets, each with `port`, in the
/// resolver's order.
pub(crate) fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    let c_host = CString::new(host).map_err(|_| ResolveError::Invalid)?;
    // SAFETY: an all-zero `addrinfo` is the documented "no hints" value;
    // the fields set below are plain integers.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `c_host` is NUL-terminated and outlives the call; `hints`
    // and `list` are valid for reads and writes respectively.
    let rc = unsafe { libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if rc != 0 {
        return Err(gai_error(rc));
    }
    let mut out = Vec::new();
    let mut p = list;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getaddrinfo returned, which
        // stays valid until freeaddrinfo below.
        let ai = unsafe { &*p };
        let len = ai.ai_addrlen as usize;
        if !ai.ai_addr.is_null() && len <= std::mem::size_of::<libc::sockaddr_storage>() {
            // SAFETY: `ai_addr` points at `ai_addrlen` bytes of a socket
            // address, which fit in the zeroed storage we copy them into.
            let addr = unsafe {
                SockAddr::try_init(|storage, l| {
                    std::ptr::copy_nonoverlapping(
                        ai.ai_addr.cast::<u8>(),
                        storage.cast::<u8>(),
                        len,
                    );
                    *l = len as libc::socklen_t;
                    Ok(())
                })
            };
            if let Ok(((), a)) = addr {
                if let Some(mut a) = a.as_socket() {
                    a.set_port(port);
                    out.push(a);
                }
            }
        }
        p = ai.ai_next;
    }
    // SAFETY: `list` came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(list) };
    Ok(out)
}

/// The typed error for a non-zero `getaddrinfo` result.
fn gai_error(rc: i32) -> ResolveError {
    match rc {
        libc::EAI_NONAME => ResolveError::NotFound,
        #[cfg(any(target_os = "linux", target_os = "macos", target_os = "ios"))]
        libc::EAI_NODATA => ResolveError::NotFound,
        libc::EAI_AGAIN => ResolveError::TryAgain,
        libc::EAI_SYSTEM => ResolveError::Io(std::io::Error::last_os_error()),
        _ => {
            // SAFETY: gai_strerror returns a static NUL-terminated string.
            let msg = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(rc)) };
            ResolveError::Io(std::io::Error::other(msg.to_string_lossy().into_owned()))
        }
    }
}
