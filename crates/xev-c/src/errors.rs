//! Error codes: every failure is a negative `int`, either a negated errno
//! value or one of xev's own codes (`XEV_EOF`, ...), and `xev_strerror`
//! describes them. This module also turns xev's typed errors back into
//! those codes. On Windows the errno values are the C runtime's (its
//! `<errno.h>`), which Win32 and WinSock codes are mapped to
//! (`sys::os_code`).

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::io;
use std::sync::Mutex;

use crate::boundary::guard;

/// End of file (`XEV_EOF`): the peer closed its side, or the file ended.
pub const XEV_EOF: c_int = -4095;
/// The operation needs a thread pool and the loop has none (`XEV_ENOTHREADPOOL`).
pub const XEV_ENOTHREADPOOL: c_int = -4094;
/// The backend cannot do this on this platform (`XEV_EUNSUPPORTED`).
pub const XEV_EUNSUPPORTED: c_int = -4093;
/// A panic (a bug of xev's) was caught at the C boundary (`XEV_EPANIC`).
pub const XEV_EPANIC: c_int = -4092;
/// An error with no errno value (`XEV_EUNKNOWN`).
pub const XEV_EUNKNOWN: c_int = -4091;

/// The code of an `io::Error`: its negated errno, else the closest code.
pub(crate) fn io_code(e: &io::Error) -> c_int {
    if let Some(n) = e.raw_os_error() {
        return crate::sys::os_code(n);
    }
    match e.kind() {
        io::ErrorKind::InvalidInput => -libc::EINVAL,
        io::ErrorKind::NotFound => -libc::ENOENT,
        io::ErrorKind::Unsupported => XEV_EUNSUPPORTED,
        io::ErrorKind::UnexpectedEof => XEV_EOF,
        _ => XEV_EUNKNOWN,
    }
}

/// The code of one of xev's error families (they share `Canceled`,
/// `Unsupported` and `Io`; `extra` maps the family's own variants).
macro_rules! family_code {
    ($e:expr, $family:ident $(, $variant:ident => $code:expr)* $(,)?) => {
        match $e {
            xev::$family::Canceled => -libc::ECANCELED,
            xev::$family::Unsupported => $crate::errors::XEV_EUNSUPPORTED,
            $( xev::$family::$variant => $code, )*
            xev::$family::Io(e) => $crate::errors::io_code(e),
            _ => $crate::errors::XEV_EUNKNOWN,
        }
    };
}
pub(crate) use family_code;

/// The code of a cancel's own result.
pub(crate) fn cancel_code(e: &xev::CancelError) -> c_int {
    match e {
        xev::CancelError::NotFound => -libc::ENOENT,
        xev::CancelError::AlreadyFinished => -libc::EALREADY,
        xev::CancelError::Os(n) => crate::sys::os_code(*n),
        _ => XEV_EUNKNOWN,
    }
}

/// Descriptions already made for errno values, kept for the life of the
/// process (at most one per errno value, so bounded).
static DESCRIPTIONS: Mutex<BTreeMap<c_int, &'static CStr>> = Mutex::new(BTreeMap::new());

/// The description of `code`, with static storage.
pub(crate) fn describe(code: c_int) -> &'static CStr {
    match code {
        0.. => c"success",
        XEV_EOF => c"end of file",
        XEV_ENOTHREADPOOL => c"this operation needs a thread pool and the loop has none",
        XEV_EUNSUPPORTED => c"operation not supported by this backend on this platform",
        XEV_EPANIC => c"internal error in xev (a panic was caught at the C boundary)",
        XEV_EUNKNOWN => c"unknown error",
        // Every errno value (they are far below 4091 everywhere).
        -4090..=-1 => {
            let mut table = DESCRIPTIONS.lock().unwrap_or_else(|p| p.into_inner());
            table.entry(code).or_insert_with(|| {
                let text = crate::sys::describe_errno(-code);
                let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
                Box::leak(text.into_boxed_c_str())
            })
        }
        _ => c"not an xev error code",
    }
}

/// Describes a result code: "success" for 0 and positive results, the
/// system's message for a negated errno value, and xev's own message for
/// the `XEV_E*` codes.
///
/// Any thread may call it. The string has static storage and must not be
/// freed or modified.
#[no_mangle]
pub extern "C" fn xev_strerror(code: c_int) -> *const c_char {
    guard(c"internal error in xev".as_ptr(), || {
        describe(code).as_ptr()
    })
}
