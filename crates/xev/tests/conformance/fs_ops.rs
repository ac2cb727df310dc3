//! Filesystem operations ([`Op::Fs`]): open, stat/lstat/fstat, fsync,
//! fdatasync, ftruncate, fallocate, rename, unlink, mkdir, rmdir, symlink,
//! link, readlink and reading a directory, natively on io_uring and on the
//! thread pool elsewhere; their typed errors; no thread pool; cancel.

use std::path::{Path, PathBuf};

use crate::support::*;
use xev::watcher::File;
use xev::{FileKind, Fs, FsError, FsOutput, OpenFlags};

/// A fresh, empty directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = scratch_dir().join(format!(
            "xev-fs-{}-{tag}-{}",
            process_id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&p).expect("creating the test directory");
        TempDir(p)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs one filesystem operation and returns what it produced.
fn fs<B: Backend>(lp: &mut Loop<B>, op: Box<Fs>) -> Result<FsOutput, FsError> {
    let (res, _) = run_op(lp, Op::Fs(op), "a filesystem operation");
    expect!(res, OpResult::Fs(r) => r)
}

fn done<B: Backend>(lp: &mut Loop<B>, op: Box<Fs>) {
    expect!(fs(lp, op), Ok(FsOutput::Done));
}

fn stat<B: Backend>(lp: &mut Loop<B>, op: Box<Fs>) -> xev::FileStat {
    expect!(fs(lp, op), Ok(FsOutput::Stat(s)) => s)
}

fn open<B: Backend>(lp: &mut Loop<B>, p: &Path, flags: OpenFlags) -> std::fs::File {
    expect!(fs(lp, Fs::open(p, flags)), Ok(FsOutput::Opened(f)) => f)
}

for_each_backend!(
    #[cfg(not(target_os = "wasi"))]
    fn fs_open_write_stat_and_fstat_agree_with_std<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let d = TempDir::new("open");
        let p = d.join("f");
        // Written through the loop: on Windows the file is opened for
        // overlapped I/O, which std's synchronous calls refuse.
        let f = open(&mut lp, &p, OpenFlags::CREATE);
        let pwrite = |lp: &mut Loop<B>, f: &std::fs::File, data: &[u8], offset| {
            let op = Op::Pwrite {
                fd: raw(f),
                buf: data.to_vec().into(),
                offset,
            };
            let (res, _) = run_op(lp, op, "pwrite");
            assert_eq!(expect!(res, OpResult::Write(Ok(n)) => n), data.len());
        };
        pwrite(&mut lp, &f, b"hello", 0);
        // Append adds at the end (shown with std's writes on Unix).
        #[cfg(any(unix, target_os = "wasi"))]
        {
            use std::io::Write;
            let mut a = open(&mut lp, &p, OpenFlags::APPEND);
            a.write_all(b" world").unwrap();
        }
        #[cfg(windows)]
        pwrite(&mut lp, &f, b" world", 5);
        // create_new refuses an existing file.
        let flags = OpenFlags {
            create_new: true,
            ..OpenFlags::CREATE
        };
        expect!(
            fs(&mut lp, Fs::open(&p, flags)),
            Err(FsError::AlreadyExists)
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"hello world");
        let r = open(&mut lp, &p, OpenFlags::READ);
        let (res, op) = run_op(
            &mut lp,
            Op::Pread {
                fd: raw(&r),
                buf: vec![0; 32].into(),
                offset: 6,
            },
            "pread",
        );
        let n = expect!(res, OpResult::Read(Ok(n)) => n);
        assert_eq!(&op.buf().unwrap()[..n], b"world");
        // Truncating on open empties it.
        drop(open(&mut lp, &p, OpenFlags::CREATE));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        pwrite(&mut lp, &f, b"0123456789", 0);

        let m = std::fs::metadata(&p).unwrap();
        for s in [
            stat(&mut lp, Fs::stat(&p)),
            stat(&mut lp, Fs::lstat(&p)),
            stat(&mut lp, Fs::fstat(raw(&f))),
        ] {
            assert_eq!(s.kind, FileKind::File);
            assert_eq!(s.size, m.len());
            assert_eq!(s.readonly, m.permissions().readonly());
            assert_eq!(s.modified, m.modified().ok());
            #[cfg(any(unix, target_os = "wasi"))]
            {
                use std::os::unix::fs::MetadataExt;
                assert_eq!(
                    (s.mode, s.ino, s.nlink),
                    (m.mode() & 0o7777, m.ino(), m.nlink())
                );
                assert_eq!((s.uid, s.gid), (m.uid(), m.gid()));
            }
        }
        assert_eq!(stat(&mut lp, Fs::stat(&d.0)).kind, FileKind::Dir);
    }

    fn fs_directories_rename_unlink_and_listing<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let d = TempDir::new("dirs");
        let sub = d.join("sub");
        done(&mut lp, Fs::mkdir(&sub, 0o755));
        expect!(
            fs(&mut lp, Fs::mkdir(&sub, 0o755)),
            Err(FsError::AlreadyExists)
        );
        std::fs::write(d.join("a"), b"a").unwrap();
        done(&mut lp, Fs::rename(d.join("a"), sub.join("b")));
        let mut names = expect!(fs(&mut lp, Fs::read_dir(&sub)), Ok(FsOutput::Entries(e)) => e);
        names.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(names.len(), 1);
        assert_eq!(names[0].name, "b");
        assert_eq!(names[0].kind, Some(FileKind::File));
        expect!(fs(&mut lp, Fs::rmdir(&sub)), Err(FsError::NotEmpty));
        done(&mut lp, Fs::unlink(sub.join("b")));
        expect!(
            fs(&mut lp, Fs::unlink(sub.join("b"))),
            Err(FsError::NotFound)
        );
        done(&mut lp, Fs::rmdir(&sub));
        assert!(!sub.exists());
        let listed = expect!(fs(&mut lp, Fs::read_dir(&d.0)), Ok(FsOutput::Entries(e)) => e);
        assert!(listed.is_empty(), "{listed:?}");
    }

    fn fs_errors_are_typed<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let d = TempDir::new("errors");
        let missing = d.join("missing");
        expect!(
            fs(&mut lp, Fs::open(&missing, OpenFlags::READ)),
            Err(FsError::NotFound)
        );
        expect!(fs(&mut lp, Fs::stat(&missing)), Err(FsError::NotFound));
        expect!(fs(&mut lp, Fs::read_dir(&missing)), Err(FsError::NotFound));
        // Renaming into a directory that does not exist.
        std::fs::write(d.join("f"), b"").unwrap();
        expect!(
            fs(&mut lp, Fs::rename(d.join("f"), missing.join("g"))),
            Err(FsError::NotFound)
        );
        // A file used as a directory.
        expect!(
            fs(&mut lp, Fs::mkdir(d.join("f").join("x"), 0o755)),
            Err(FsError::NotADirectory | FsError::NotFound)
        );
        #[cfg(any(unix, target_os = "wasi"))]
        expect!(
            fs(&mut lp, Fs::stat(d.join("f").join("x"))),
            Err(FsError::NotADirectory)
        );
        #[cfg(any(unix, target_os = "wasi"))]
        expect!(
            fs(&mut lp, Fs::rmdir(d.join("f"))),
            Err(FsError::NotADirectory)
        );
        // Neither read nor write: invalid input.
        let none = OpenFlags {
            read: false,
            ..OpenFlags::READ
        };
        let e = expect!(fs(&mut lp, Fs::open(d.join("f"), none)), Err(e) => e);
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e:?}");
        // Operations on descriptors that are not open: the OS's own error,
        // typed, on every backend (-1 included: nothing assumes a
        // descriptor is valid).
        for fd in [closed_fd(), -1i32 as RawFd] {
            for op in [Fs::fstat(fd), Fs::fsync(fd), Fs::ftruncate(fd, 1)] {
                let e = expect!(fs(&mut lp, op), Err(FsError::Io(e)) => e);
                #[cfg(any(unix, target_os = "wasi"))]
                assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e:?}");
                #[cfg(windows)]
                assert!(e.raw_os_error().is_some(), "{e:?}");
            }
        }
        // A path with a NUL byte never reaches the OS.
        let e = expect!(fs(&mut lp, Fs::stat("a\0b")), Err(e) => e);
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e:?}");
    }

    fn fs_sync_truncate_and_allocate<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let d = TempDir::new("sync");
        let f = open(
            &mut lp,
            &d.join("f"),
            OpenFlags {
                read: true,
                ..OpenFlags::CREATE
            },
        );
        done(&mut lp, Fs::fsync(raw(&f)));
        done(&mut lp, Fs::fdatasync(raw(&f)));
        done(&mut lp, Fs::ftruncate(raw(&f), 4096));
        assert_eq!(f.metadata().unwrap().len(), 4096);
        done(&mut lp, Fs::ftruncate(raw(&f), 10));
        assert_eq!(f.metadata().unwrap().len(), 10);
        let r = fs(&mut lp, Fs::fallocate(raw(&f), 0, 65536));
        if cfg!(any(target_os = "linux", target_os = "freebsd")) {
            expect!(r, Ok(FsOutput::Done));
            assert_eq!(f.metadata().unwrap().len(), 65536);
        } else {
            expect!(r, Err(FsError::Unsupported));
        }
    }

    fn fs_without_a_pool<B: Backend>() {
        let mut lp = new_loop::<B>();
        let d = TempDir::new("nopool");
        // io_uring has stat natively; every other backend needs the pool.
        let r = fs(&mut lp, Fs::stat(&d.0));
        if lp.backend_name() == "io_uring" {
            assert_eq!(expect!(r, Ok(FsOutput::Stat(s)) => s).kind, FileKind::Dir);
        } else {
            expect!(r, Err(FsError::NoThreadPool));
        }
        // Reading a directory has no io_uring opcode: the pool everywhere.
        expect!(fs(&mut lp, Fs::read_dir(&d.0)), Err(FsError::NoThreadPool));
    }

    /// `Loop::capabilities` says how each filesystem request runs, and
    /// it does: a kernel (or inline) request completes on a loop without
    /// a pool, a pool request asks for the pool, an unsupported one says
    /// `Unsupported` even with a pool.
    fn capabilities_say_how_fs_requests_run<B: Backend>() {
        let d = TempDir::new("caps");
        let file = d.join("file");
        std::fs::write(&file, b"x").unwrap();
        std::fs::write(d.join("from"), b"y").unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .unwrap();
        let request = |name: &str| -> Box<Fs> {
            match name {
                "open" => Fs::open(d.join("new"), OpenFlags::CREATE),
                "stat" => Fs::stat(&file),
                "fsync" => Fs::fsync(raw(&f)),
                "fallocate" => Fs::fallocate(raw(&f), 0, 4096),
                "rename" => Fs::rename(d.join("from"), d.join("to")),
                "unlink" => Fs::unlink(d.join("to")),
                "mkdir" => Fs::mkdir(d.join("sub"), 0o755),
                "symlink" => Fs::symlink(&file, d.join("symlink")),
                "link" => Fs::link(&file, d.join("hard")),
                other => panic!("capabilities name an unknown request {other:?}"),
            }
        };
        let mut lp = new_loop::<B>();
        let caps = lp.capabilities();
        assert_eq!(caps.backend, lp.backend_name());
        assert_eq!(caps.fs.len(), 9, "{caps}");
        assert_eq!(
            caps.ring_setup.is_some(),
            lp.backend_name() == "io_uring",
            "{caps}"
        );
        for &(name, via) in &caps.fs {
            if via == xev::Via::Unsupported {
                continue;
            }
            let r = fs(&mut lp, request(name));
            match via {
                xev::Via::ThreadPool => expect!(r, Err(FsError::NoThreadPool)),
                _ => assert!(
                    !matches!(r, Err(FsError::NoThreadPool) | Err(FsError::Unsupported)),
                    "{name} runs via {via} by the capabilities, but gave {r:?}"
                ),
            }
        }
        let mut lp = new_loop_with_pool::<B>();
        for &(name, via) in &lp.capabilities().fs {
            let r = fs(&mut lp, request(name));
            if via == xev::Via::Unsupported {
                expect!(r, Err(FsError::Unsupported));
            } else {
                assert!(!matches!(r, Err(FsError::Unsupported)), "{name}: {r:?}");
            }
        }
    }

    fn fs_op_canceled_before_it_starts<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let d = TempDir::new("cancel");
        // Reading a directory always goes to the pool: canceled in the same
        // tick, it is still queued there, and never runs.
        let p = submit(&mut lp, Op::Fs(Fs::read_dir(&d.0)));
        let c = submit(&mut lp, Op::Cancel { target: p.id });
        let (res, _) = wait(&mut lp, &p, "the listing");
        expect!(res, OpResult::Fs(Err(FsError::Canceled)));
        let (res, _) = wait(&mut lp, &c, "the cancel");
        expect!(res, OpResult::Cancel(Ok(())));
    }

    fn file_watcher_fs_methods<B: Backend>() {
        let mut lp = new_loop_with_pool::<B>();
        let d = TempDir::new("watcher");
        let p = d.join("w");
        let got: Rc<RefCell<Option<File<B>>>> = Rc::default();
        let g = got.clone();
        File::open_async(
            &mut lp,
            &p,
            OpenFlags {
                read: true,
                ..OpenFlags::CREATE
            },
            move |_, r| *g.borrow_mut() = Some(r.expect("opened")),
        );
        run_until(&mut lp, "open", || got.borrow().is_some());
        let f = got.borrow_mut().take().unwrap();
        let steps = Rc::new(Cell::new(0));
        let s = steps.clone();
        f.set_len(&mut lp, 123, move |_, r| {
            r.unwrap();
            s.set(s.get() + 1);
            Action::Disarm
        });
        run_until(&mut lp, "set_len", || steps.get() == 1);
        let (s, s2) = (steps.clone(), steps.clone());
        f.sync(&mut lp, move |_, r| {
            r.unwrap();
            s.set(s.get() + 1);
            Action::Disarm
        });
        f.sync_data(&mut lp, move |_, r| {
            r.unwrap();
            s2.set(s2.get() + 1);
            Action::Disarm
        });
        run_until(&mut lp, "sync", || steps.get() == 3);
        // Rearming a stat asks again.
        let sizes = Rc::new(RefCell::new(Vec::new()));
        let z = sizes.clone();
        f.stat(&mut lp, move |_, r| {
            z.borrow_mut().push(r.unwrap().size);
            if z.borrow().len() < 3 {
                Action::Rearm
            } else {
                Action::Disarm
            }
        });
        run_until(&mut lp, "stat x3", || sizes.borrow().len() == 3);
        assert_eq!(*sizes.borrow(), vec![123; 3]);
        // A missing file: the typed error through the callback.
        let e: Rc<RefCell<Option<FsError>>> = Rc::default();
        let e2 = e.clone();
        File::<B>::open_async(&mut lp, d.join("nope"), OpenFlags::READ, move |_, r| {
            *e2.borrow_mut() = r.err();
        });
        run_until(&mut lp, "open missing", || e.borrow().is_some());
        expect!(e.borrow_mut().take(), Some(FsError::NotFound));
        drop(f);
        settle(&mut lp);
    }

    #[cfg(unix)]
    fn fs_links_and_open_at<B: Backend>() {
        use std::os::unix::fs::MetadataExt;
        let mut lp = new_loop_with_pool::<B>();
        let d = TempDir::new("links");
        std::fs::write(d.join("t"), b"target").unwrap();
        done(&mut lp, Fs::symlink("t", d.join("s")));
        let target = expect!(fs(&mut lp, Fs::readlink(d.join("s"))), Ok(FsOutput::Target(t)) => t);
        assert_eq!(target, Path::new("t"));
        assert_eq!(
            stat(&mut lp, Fs::lstat(d.join("s"))).kind,
            FileKind::Symlink
        );
        assert_eq!(stat(&mut lp, Fs::stat(d.join("s"))).kind, FileKind::File);
        expect!(fs(&mut lp, Fs::readlink(d.join("t"))), Err(FsError::Io(_)));
        done(&mut lp, Fs::link(d.join("t"), d.join("h")));
        assert_eq!(stat(&mut lp, Fs::stat(d.join("h"))).nlink, 2);
        assert_eq!(std::fs::metadata(d.join("h")).unwrap().nlink(), 2);
        // openat: relative to a directory descriptor.
        let dir = std::fs::File::open(&d.0).unwrap();
        let f = expect!(
            fs(&mut lp, Fs::open_at(dir.as_raw_fd(), "t", OpenFlags::READ)),
            Ok(FsOutput::Opened(f)) => f
        );
        assert_eq!(f.metadata().unwrap().len(), 6);
        expect!(
            fs(
                &mut lp,
                Fs::open_at(dir.as_raw_fd(), "absent", OpenFlags::READ)
            ),
            Err(FsError::NotFound)
        );
    }
);

/// The raw handle of a std file, for operations that take one.
fn raw(f: &std::fs::File) -> xev::RawHandle {
    #[cfg(any(unix, target_os = "wasi"))]
    {
        f.as_raw_fd()
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawHandle;
        f.as_raw_handle() as xev::RawHandle
    }
}
