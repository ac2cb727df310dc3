//! IOCP only: a disk file opened for overlapped I/O (`FILE_FLAG_OVERLAPPED`)
//! has no file position, so a plain read or write on it answers a typed
//! `Unsupported` at once, while positional reads and writes go through the
//! completion port (no thread pool needed). Files opened the usual way
//! (`std::fs::File`, synchronous I/O) are covered by the portable suites.

#![cfg(windows)]

use std::cell::RefCell;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::rc::Rc;

use xev::backend::iocp::Iocp;
use xev::generic::Loop;
use xev::{Action, Op, OpResult, Options, ReadError, RunMode, WriteError};

/// `FILE_FLAG_OVERLAPPED`.
const OVERLAPPED: u32 = 0x4000_0000;

fn run_one(lp: &mut Loop<Iocp>, op: Op) -> (OpResult, Op) {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    lp.add(op, move |_, op, res| {
        *o.borrow_mut() = Some((res, std::mem::replace(op, Op::Noop)));
        Action::Disarm
    });
    lp.run(RunMode::UntilDone).unwrap();
    let r = out.borrow_mut().take().expect("the callback ran");
    r
}

#[test]
fn overlapped_file_positional_only() {
    let path = std::env::temp_dir().join(format!("xev-iocp-overlapped-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(OVERLAPPED)
        .open(&path)
        .unwrap();
    let fd = f.as_raw_handle() as xev::RawHandle;
    // No thread pool: positional I/O must not need one here.
    let mut lp = Loop::<Iocp>::new(Options::default()).unwrap();

    let (res, _) = run_one(
        &mut lp,
        Op::Write {
            fd,
            buf: b"abc".to_vec().into(),
        },
    );
    assert!(
        matches!(res, OpResult::Write(Err(WriteError::Unsupported))),
        "{res:?}"
    );
    let (res, _) = run_one(
        &mut lp,
        Op::Read {
            fd,
            buf: vec![0; 4].into(),
        },
    );
    assert!(
        matches!(res, OpResult::Read(Err(ReadError::Unsupported))),
        "{res:?}"
    );

    let (res, _) = run_one(
        &mut lp,
        Op::Pwrite {
            fd,
            buf: (b"hello, iocp".to_vec()).into(),
            offset: 0,
        },
    );
    assert!(matches!(res, OpResult::Write(Ok(11))), "{res:?}");
    let (res, op) = run_one(
        &mut lp,
        Op::Pread {
            fd,
            buf: vec![0; 4].into(),
            offset: 7,
        },
    );
    assert!(matches!(res, OpResult::Read(Ok(4))), "{res:?}");
    assert_eq!(op.buf().unwrap(), b"iocp");
    let (res, _) = run_one(
        &mut lp,
        Op::Pread {
            fd,
            buf: vec![0; 4].into(),
            offset: 100,
        },
    );
    assert!(
        matches!(res, OpResult::Read(Err(ReadError::Eof))),
        "{res:?}"
    );

    drop(f);
    std::fs::remove_file(&path).unwrap();
}
