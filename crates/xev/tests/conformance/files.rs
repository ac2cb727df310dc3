//! Regular files: `pread`/`pwrite` with and without a thread pool, reads
//! and writes at the file cursor, offsets out of range, and many file
//! operations at once.

use crate::support::*;

fn file_pread_pwrite_round_trip(lp: &mut Loop<impl Backend>) {
    let f = temp_file("p");
    let fd = f.as_raw_fd();
    let (res, _) = run_op(
        lp,
        Op::Pwrite {
            fd,
            buf: b"0123456789".to_vec().into(),
            offset: 0,
        },
        "pwrite",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 10);
    let (res, _) = run_op(
        lp,
        Op::Pwrite {
            fd,
            buf: b"abc".to_vec().into(),
            offset: 20,
        },
        "pwrite",
    );
    assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 3);
    let (res, op) = run_op(
        lp,
        Op::Pread {
            fd,
            buf: vec![0; 4].into(),
            offset: 3,
        },
        "pread",
    );
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(&op.buf().unwrap()[..n], b"3456");
    let (res, op) = run_op(
        lp,
        Op::Pread {
            fd,
            buf: vec![9; 32].into(),
            offset: 8,
        },
        "pread",
    );
    let n = expect!(res, OpResult::Read(Ok(n)) => n);
    assert_eq!(n, 15, "short read to the end of the file");
    assert_eq!(&op.buf().unwrap()[..n], b"89\0\0\0\0\0\0\0\0\0\0abc");
    let (res, _) = run_op(
        lp,
        Op::Pread {
            fd,
            buf: vec![0; 8].into(),
            offset: 23,
        },
        "pread at end",
    );
    expect!(res, OpResult::Read(Err(ReadError::Eof)));
    let (res, _) = run_op(
        lp,
        Op::Pread {
            fd,
            buf: vec![0; 8].into(),
            offset: 1 << 40,
        },
        "pread past end",
    );
    expect!(res, OpResult::Read(Err(ReadError::Eof)));
    // The file really holds what the loop wrote.
    let mut data = vec![0u8; 64];
    let n = read_file_at(&borrow_file(fd), &mut data, 0);
    assert_eq!(&data[..n], b"0123456789\0\0\0\0\0\0\0\0\0\0abc");
}

for_each_backend!(
    fn file_pread_pwrite<B: Backend>() {
        // io_uring does file I/O natively; readiness backends need a pool.
        let mut lp = new_loop_with_pool::<B>();
        file_pread_pwrite_round_trip(&mut lp);
    }

    fn file_pread_pwrite_without_pool<B: Backend>() {
        let mut lp = new_loop::<B>();
        if lp.backend_name() == "io_uring" {
            file_pread_pwrite_round_trip(&mut lp);
            return;
        }
        let f = temp_file("np");
        let fd = f.as_raw_fd();
        let (res, op) = run_op(
            &mut lp,
            Op::Pwrite {
                fd,
                buf: b"x".to_vec().into(),
                offset: 0,
            },
            "pwrite",
        );
        expect!(res, OpResult::Write(Err(WriteError::NoThreadPool)));
        assert_eq!(op.buf().unwrap(), b"x", "the buffer comes back");
        let (res, _) = run_op(
            &mut lp,
            Op::Pread {
                fd,
                buf: vec![0; 8].into(),
                offset: 0,
            },
            "pread",
        );
        expect!(res, OpResult::Read(Err(ReadError::NoThreadPool)));
        assert_eq!(f.metadata().unwrap().len(), 0, "nothing was written");
    }

    fn file_read_write_at_cursor<B: Backend>() {
        let mut lp = new_loop::<B>();
        let f = temp_file("c");
        let fd = f.as_raw_fd();
        let (res, _) = run_op(
            &mut lp,
            Op::Write {
                fd,
                buf: b"hello ".to_vec().into(),
            },
            "write",
        );
        assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 6);
        let (res, _) = run_op(
            &mut lp,
            Op::Write {
                fd,
                buf: b"world".to_vec().into(),
            },
            "write",
        );
        assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 5);
        {
            use std::io::Seek;
            let mut f = borrow_file(fd);
            assert_eq!(f.stream_position().unwrap(), 11, "cursor advanced");
            f.rewind().unwrap();
        }
        let (res, op) = run_op(
            &mut lp,
            Op::Read {
                fd,
                buf: vec![0; 7].into(),
            },
            "read",
        );
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"hello w");
        let (res, op) = run_op(
            &mut lp,
            Op::Read {
                fd,
                buf: vec![0; 7].into(),
            },
            "read",
        );
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"orld");
        let (res, _) = run_op(
            &mut lp,
            Op::Read {
                fd,
                buf: vec![0; 7].into(),
            },
            "read at eof",
        );
        expect!(res, OpResult::Read(Err(ReadError::Eof)));
    }

    fn pread_offset_out_of_range_is_einval<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let f = temp_file("o");
        let fd = f.as_raw_fd();
        let off = i64::MAX as u64 + 1;
        let (res, _) = run_op(
            &mut lp,
            Op::Pread {
                fd,
                buf: vec![0; 4].into(),
                offset: off,
            },
            "pread",
        );
        assert_eq!(
            error_kind(&res),
            Some(std::io::ErrorKind::InvalidInput),
            "{res:?}"
        );
        let (res, _) = run_op(
            &mut lp,
            Op::Pwrite {
                fd,
                buf: vec![0; 4].into(),
                offset: u64::MAX,
            },
            "pwrite",
        );
        assert_eq!(
            error_kind(&res),
            Some(std::io::ErrorKind::InvalidInput),
            "{res:?}"
        );
    }

    /// Many file operations at once (thread pool on readiness backends).
    fn many_file_ops_concurrently<B: Backend>() {
        const N: usize = 48;
        let mut lp = new_loop_with_pool::<B>();
        let f = temp_file("m");
        let fd = f.as_raw_fd();
        let writes: Vec<Pending> = (0..N)
            .map(|i| {
                let op = Op::Pwrite {
                    fd,
                    buf: vec![i as u8; 512].into(),
                    offset: (i * 512) as u64,
                };
                submit(&mut lp, op)
            })
            .collect();
        run_until(&mut lp, "all pwrites", || writes.iter().all(|p| p.done()));
        settle(&mut lp);
        for p in &writes {
            assert_eq!(expect!(p.take().0, OpResult::Write(Ok(n)) => n), 512);
        }
        let reads: Vec<Pending> = (0..N)
            .map(|i| {
                let op = Op::Pread {
                    fd,
                    buf: vec![0xff; 512].into(),
                    offset: (i * 512) as u64,
                };
                submit(&mut lp, op)
            })
            .collect();
        run_until(&mut lp, "all preads", || reads.iter().all(|p| p.done()));
        settle(&mut lp);
        for (i, p) in reads.iter().enumerate() {
            let (res, op) = p.take();
            assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 512);
            assert!(op.buf().unwrap().iter().all(|&b| b == i as u8), "block {i}");
        }
        assert_eq!(lp.active(), 0);
    }
);
