//! Copies a file with `pread`/`pwrite` through an xev loop (the `File`
//! watcher on the default backend), several chunks in flight at once. On
//! epoll the positional I/O runs on the loop's thread pool, so the loop is
//! created with one.
//!
//! Without arguments it creates a temporary file of a few MiB, copies it,
//! checks that the copy is identical, and removes both files. With two
//! arguments it copies SRC to DST (creating or truncating DST) and checks
//! the copy.
//!
//! ```text
//! cargo run --example file_copy [-- SRC DST]
//! ```

// Not built on WASI, which has no threads for the thread pool it shows.
#![cfg_attr(target_os = "wasi", no_main)]
#![cfg(not(target_os = "wasi"))]

use std::cell::{Cell, RefCell};
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use xev::watcher::File;
use xev::{Action, Loop, Options, ReadError, RunMode, ThreadPool, ThreadPoolConfig};

const USAGE: &str = "\
file_copy: copies a file with pread/pwrite through an xev loop, several
chunks in flight, and checks the copy. Without arguments it copies a
temporary file of a few MiB and removes both afterwards.

usage: file_copy [SRC DST]

The backend is the default one; XEV_BACKEND forces io_uring or epoll on Linux.";

/// Prints the usage and exits with status 0 when `-h` or `--help` is given.
fn help_if_asked() {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        std::process::exit(0);
    }
}

/// Bytes per read/write request.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight at once.
const LANES: usize = 4;

/// The state of one copy, shared by every request.
struct Copy {
    src: File,
    dst: File,
    size: u64,
    /// Offset of the next chunk nobody has claimed yet.
    next: Cell<u64>,
    copied: Cell<u64>,
    lanes_left: Cell<usize>,
    error: RefCell<Option<io::Error>>,
}

impl Copy {
    fn fail(&self, e: io::Error) {
        self.error.borrow_mut().get_or_insert(e);
    }
}

/// A lane claims the next chunk and reads it (or finishes when none is left).
fn next_chunk(lp: &mut Loop, cp: Rc<Copy>, buf: Vec<u8>) {
    let off = cp.next.get();
    if off >= cp.size || cp.error.borrow().is_some() {
        cp.lanes_left.set(cp.lanes_left.get() - 1);
        return;
    }
    let end = (off + CHUNK as u64).min(cp.size);
    cp.next.set(end);
    read_chunk(lp, cp, buf, off, end);
}

/// Reads `[off, end)` of the source, then writes what it got.
fn read_chunk(lp: &mut Loop, cp: Rc<Copy>, mut buf: Vec<u8>, off: u64, end: u64) {
    buf.resize((end - off) as usize, 0);
    let c = cp.clone();
    cp.src.pread(lp, buf, off, move |lp, buf, res| {
        match res {
            Ok(n) => {
                let mut data = std::mem::take(buf);
                data.truncate(n);
                write_chunk(lp, c.clone(), data, off, end);
            }
            Err(ReadError::Eof) => {
                c.fail(io::Error::other("the source file shrank during the copy"));
                c.lanes_left.set(c.lanes_left.get() - 1);
            }
            Err(e) => {
                c.fail(e.into());
                c.lanes_left.set(c.lanes_left.get() - 1);
            }
        }
        Action::Disarm
    });
}

/// Writes `data` at `off` in the destination (finishing short writes by
/// rearming: the watcher continues at `off + n`), then reads the rest of
/// the chunk, if the read was short, or claims the next chunk.
fn write_chunk(lp: &mut Loop, cp: Rc<Copy>, data: Vec<u8>, off: u64, end: u64) {
    let c = cp.clone();
    let mut at = off;
    cp.dst.pwrite(lp, data, off, move |lp, buf, res| match res {
        Ok(n) => {
            at += n as u64;
            c.copied.set(c.copied.get() + n as u64);
            if n < buf.len() {
                buf.drain(..n);
                return Action::Rearm;
            }
            let buf = std::mem::take(buf);
            if at < end {
                read_chunk(lp, c.clone(), buf, at, end);
            } else {
                next_chunk(lp, c.clone(), buf);
            }
            Action::Disarm
        }
        Err(e) => {
            c.fail(e.into());
            c.lanes_left.set(c.lanes_left.get() - 1);
            Action::Disarm
        }
    });
}

/// Copies `src` to `dst` through the loop; returns the bytes copied.
fn copy(lp: &mut Loop, src: &Path, dst: &Path) -> io::Result<u64> {
    let src_std = std::fs::File::open(src)?;
    let len = src_std.metadata()?.len();
    let src = File::from_std(src_std);
    let dst = File::open(
        dst,
        OpenOptions::new().write(true).create(true).truncate(true),
    )?;
    let cp = Rc::new(Copy {
        src,
        dst,
        size: len,
        next: Cell::new(0),
        copied: Cell::new(0),
        lanes_left: Cell::new(LANES),
        error: RefCell::new(None),
    });
    for _ in 0..LANES {
        next_chunk(lp, cp.clone(), Vec::with_capacity(CHUNK));
    }
    lp.run(RunMode::UntilDone)?;
    let cp = Rc::try_unwrap(cp).map_err(|_| io::Error::other("copy state still in use"))?;
    if let Some(e) = cp.error.into_inner() {
        return Err(e);
    }
    if cp.lanes_left.get() != 0 {
        return Err(io::Error::other("a lane did not finish"));
    }
    // Close both through the loop.
    let closed = Rc::new(Cell::new(0));
    for f in [cp.src, cp.dst] {
        let c = closed.clone();
        f.close(lp, move |_, r| {
            if let Err(e) = r {
                eprintln!("close failed: {e}");
            }
            c.set(c.get() + 1);
        });
    }
    lp.run(RunMode::UntilDone)?;
    Ok(cp.copied.get())
}

/// Whether two files have the same contents (compared in 1 MiB pieces).
fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// A temporary file of `len` bytes of a fixed pseudo-random pattern.
fn make_source(path: &Path, len: usize) -> io::Result<()> {
    let mut x: u32 = 0x9e37_79b9;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(path, data)
}

fn main() -> std::process::ExitCode {
    help_if_asked();
    match run_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("file_copy: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (src, dst, temporary) = match args.as_slice() {
        [] => {
            let dir = std::env::temp_dir();
            let pid = std::process::id();
            let src = dir.join(format!("xev-file-copy-{pid}.src"));
            let dst = dir.join(format!("xev-file-copy-{pid}.dst"));
            make_source(&src, 5 * 1024 * 1024 + 12_345)?;
            (src, dst, true)
        }
        [src, dst] => (PathBuf::from(src), PathBuf::from(dst), false),
        _ => {
            eprintln!("usage: file_copy [SRC DST]");
            std::process::exit(2);
        }
    };

    let pool = ThreadPool::new(ThreadPoolConfig::default())?;
    let mut lp = Loop::new(Options {
        thread_pool: Some(pool),
        ..Default::default()
    })?;
    println!(
        "file_copy: backend {}, {} -> {}",
        lp.backend_name(),
        src.display(),
        dst.display()
    );
    let start = Instant::now();
    let result = copy(&mut lp, &src, &dst);
    let secs = start.elapsed().as_secs_f64();
    let outcome = result.and_then(|n| {
        println!(
            "copied {n} bytes in {secs:.3} s ({:.1} MiB/s), {LANES} chunks of {} KiB in flight",
            n as f64 / (1024.0 * 1024.0) / secs.max(1e-9),
            CHUNK / 1024
        );
        if same_contents(&src, &dst)? {
            println!("verified: the copy is identical");
            Ok(())
        } else {
            Err(io::Error::other("the copy differs from the source"))
        }
    });
    if temporary {
        let _ = std::fs::remove_file(&src);
        let _ = std::fs::remove_file(&dst);
        println!("removed the temporary files");
    }
    outcome
}
