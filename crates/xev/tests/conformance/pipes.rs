//! Pipes: write then read, end of file, `EPIPE` (at once and for a
//! pending write), empty reads and writes, and partial reads that leave
//! the rest for the next one. On Windows the pipe is the overlapped named
//! pipe that `Stream::pipe` makes (see `support::pipe`), and a broken pipe
//! is `ERROR_NO_DATA` or `ERROR_BROKEN_PIPE` (`ErrorKind::BrokenPipe`).

use crate::support::*;

for_each_backend!(
    fn pipe_write_then_read<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        let rd = submit(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 32].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd.calls(), 0, "no data yet");
        let (res, _) = run_op(
            &mut lp,
            Op::Write {
                fd: w.as_raw_fd(),
                buf: b"through".to_vec().into(),
            },
            "write",
        );
        assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 7);
        let (res, op) = wait(&mut lp, &rd, "read");
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"through");
    }

    fn pipe_eof_when_writer_closed<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        assert_eq!(raw_write(w.as_raw_fd(), b"last"), 4);
        let rd = submit(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 32].into(),
            },
        );
        let (res, _) = wait(&mut lp, &rd, "data");
        assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 4);
        let rd = submit(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 32].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(rd.calls(), 0);
        let (res, _) = run_op(
            &mut lp,
            Op::Close {
                fd: w.into_raw_fd(),
            },
            "close writer",
        );
        expect!(res, OpResult::Close(Ok(())));
        let (res, _) = wait(&mut lp, &rd, "eof");
        expect!(res, OpResult::Read(Err(ReadError::Eof)));
    }

    fn pipe_write_to_closed_reader_is_epipe<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        drop(r);
        let (res, _) = run_op(
            &mut lp,
            Op::Write {
                fd: w.as_raw_fd(),
                buf: b"x".to_vec().into(),
            },
            "write",
        );
        let e = expect!(res, OpResult::Write(Err(WriteError::Io(e))) => e);
        assert!(is_broken_pipe(e.raw_os_error()), "{e}");
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    }

    fn read_into_empty_buffer_is_not_eof<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        assert_eq!(raw_write(w.as_raw_fd(), b"z"), 1);
        let (res, _) = run_op(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: Vec::new().into(),
            },
            "empty read",
        );
        assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 0);
    }

    fn write_of_empty_buffer_is_ok_zero<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (_r, w) = pipe();
        let (res, _) = run_op(
            &mut lp,
            Op::Write {
                fd: w.as_raw_fd(),
                buf: Vec::new().into(),
            },
            "empty write",
        );
        assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), 0);
    }

    /// A read smaller than the data leaves the rest for the next read, without
    /// new data arriving (edge-triggered readiness must not lose it).
    fn partial_reads_leave_the_rest<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (c, s) = tcp_pair();
        let rd = submit(
            &mut lp,
            Op::Recv {
                fd: c.as_raw_fd(),
                buf: vec![0; 4].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(raw_write(s.as_raw_fd(), b"0123456789"), 10);
        let (res, op) = wait(&mut lp, &rd, "first 4 bytes");
        assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 4);
        assert_eq!(op.buf().unwrap(), b"0123");
        let (res, op) = run_op(
            &mut lp,
            Op::Read {
                fd: c.as_raw_fd(),
                buf: vec![0; 4].into(),
            },
            "next 4",
        );
        assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 4);
        assert_eq!(op.buf().unwrap(), b"4567");
        let (res, op) = run_op(
            &mut lp,
            Op::Recv {
                fd: c.as_raw_fd(),
                buf: vec![0; 4].into(),
            },
            "last 2",
        );
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"89");
        // Same on a pipe with a poll in between.
        let (r, w) = pipe();
        assert_eq!(raw_write(w.as_raw_fd(), b"abcdef"), 6);
        let (res, _) = run_op(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 2].into(),
            },
            "ab",
        );
        assert_eq!(expect!(res, OpResult::Read(Ok(n)) => n), 2);
        let (res, _) = run_op(
            &mut lp,
            Op::Poll {
                fd: r.as_raw_fd(),
                interest: Interest::READABLE,
            },
            "poll",
        );
        assert!(expect!(res, OpResult::Poll(Ok(r)) => r).readable);
        let (res, op) = run_op(
            &mut lp,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: vec![0; 8].into(),
            },
            "rest",
        );
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"cdef");
    }

    fn pending_write_gets_epipe_when_reader_closes<B: Backend>() {
        let mut lp = new_loop::<B>();
        let (r, w) = pipe();
        fill(w.as_raw_fd());
        let wr = submit(
            &mut lp,
            Op::Write {
                fd: w.as_raw_fd(),
                buf: vec![3; 4096].into(),
            },
        );
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(wr.calls(), 0, "the pipe is full");
        drop(r);
        let (res, _) = wait(&mut lp, &wr, "write after the reader left");
        assert!(is_broken_pipe(errno(&res)), "{res:?}");
    }
);
