//! Filesystem operations through an xev loop: the program builds a small
//! directory tree (mkdir, open with create, write, symlink), walks it
//! (read_dir, then lstat of every entry, several in flight at once) and
//! prints each entry with its kind and size, then removes the tree again
//! (unlink, rmdir, deepest first). On io_uring the kernel performs most of
//! these; on epoll (`XEV_BACKEND=epoll`) and the other backends the loop's
//! thread pool does. The program checks what it finds and exits by itself.
//!
//! ```text
//! cargo run --example file_ops
//! ```

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use xev::watcher::{fs_op, File};
use xev::{Action, FileKind, Fs, FsError, FsOutput, Loop, OpenFlags, Options, RunMode, ThreadPool};

const USAGE: &str = "\
file_ops: builds a small directory tree through an xev loop (mkdir, open,
symlink), walks it (read_dir and lstat), prints what it finds and removes
it again (unlink, rmdir).

usage: file_ops

The backend is the default one; XEV_BACKEND forces io_uring or epoll on Linux.";

/// Prints the usage and exits with status 0 when `-h` or `--help` is given.
fn help_if_asked() {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        std::process::exit(0);
    }
}

fn main() -> std::process::ExitCode {
    help_if_asked();
    match run_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("file_ops: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One entry found by the walk.
#[derive(Debug)]
struct Found {
    path: PathBuf,
    kind: FileKind,
    size: u64,
}

/// Runs one filesystem operation to completion.
fn run(lp: &mut Loop, op: Box<Fs>) -> Result<FsOutput, FsError> {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    fs_op(lp, op, move |_, r| *o.borrow_mut() = Some(r));
    while out.borrow().is_none() {
        lp.run(RunMode::Once).map_err(FsError::Io)?;
    }
    let r = out.borrow_mut().take();
    r.unwrap_or(Err(FsError::Canceled))
}

/// Lists `dir` through the loop, then stats every entry (all at once),
/// recursing into directories; pushes what it finds onto `found`.
fn walk(lp: &mut Loop, dir: &Path, found: &Rc<RefCell<Vec<Found>>>) -> Result<(), FsError> {
    let FsOutput::Entries(entries) = run(lp, Fs::read_dir(dir))? else {
        return Err(FsError::Io(io::Error::other("read_dir gave no entries")));
    };
    let pending = Rc::new(RefCell::new(entries.len()));
    let failed: Rc<RefCell<Option<FsError>>> = Rc::default();
    for e in &entries {
        let path = dir.join(&e.name);
        let (f, p, err) = (found.clone(), pending.clone(), failed.clone());
        fs_op(lp, Fs::lstat(&path), move |_, r| {
            *p.borrow_mut() -= 1;
            match r {
                Ok(FsOutput::Stat(s)) => f.borrow_mut().push(Found {
                    path,
                    kind: s.kind,
                    size: s.size,
                }),
                Ok(_) => {}
                Err(e) => *err.borrow_mut() = Some(e),
            }
        });
    }
    while *pending.borrow() > 0 {
        lp.run(RunMode::Once).map_err(FsError::Io)?;
    }
    if let Some(e) = failed.borrow_mut().take() {
        return Err(e);
    }
    for e in entries {
        if e.kind == Some(FileKind::Dir) {
            walk(lp, &dir.join(&e.name), found)?;
        }
    }
    Ok(())
}

fn run_main() -> Result<(), FsError> {
    // WASI has no threads and runs file operations inline: no pool there.
    let thread_pool = if cfg!(target_os = "wasi") {
        None
    } else {
        Some(ThreadPool::new(Default::default())?)
    };
    let mut lp = Loop::new(Options {
        thread_pool,
        ..Options::default()
    })?;
    println!("backend: {}", lp.backend_name());
    // WASI has no temporary directory: the current one (preopened with
    // `wasmtime run --dir .`) instead.
    let base = if cfg!(target_os = "wasi") {
        std::path::PathBuf::from(".")
    } else {
        std::env::temp_dir()
    };
    // A name of its own: the process id (WASI has none: the clock there).
    let tag = if cfg!(target_os = "wasi") {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    } else {
        u128::from(std::process::id())
    };
    let root = base.join(format!("xev-file-ops-{tag}"));

    // Build: root/{a.txt, sub/{b.txt, c.txt}, link -> a.txt (Unix)}.
    run(&mut lp, Fs::mkdir(&root, 0o755))?;
    run(&mut lp, Fs::mkdir(root.join("sub"), 0o755))?;
    let files = [("a.txt", 10), ("sub/b.txt", 2000), ("sub/c.txt", 0)];
    for (name, len) in files {
        let FsOutput::Opened(f) = run(&mut lp, Fs::open(root.join(name), OpenFlags::CREATE))?
        else {
            return Err(FsError::Io(io::Error::other("open gave no file")));
        };
        // Written through the loop too (on Windows the file is opened for
        // overlapped I/O, which only the loop uses).
        let f: File = File::from_std(f);
        let written = Rc::new(RefCell::new(None));
        let w = written.clone();
        f.pwrite(&mut lp, vec![b'x'; len], 0, move |_, _, r| {
            *w.borrow_mut() = Some(r);
            Action::Disarm
        });
        while written.borrow().is_none() {
            lp.run(RunMode::Once)?;
        }
        let n = written
            .borrow_mut()
            .take()
            .unwrap_or(Ok(0))
            .map_err(io::Error::from)?;
        if n != len {
            return Err(FsError::Io(io::Error::other("short write")));
        }
        f.close(&mut lp, |_, r| r.expect("closing a file"));
    }
    #[cfg(unix)]
    run(&mut lp, Fs::symlink("a.txt", root.join("link")))?;

    // Walk and check.
    let found = Rc::new(RefCell::new(Vec::new()));
    walk(&mut lp, &root, &found)?;
    let mut found = std::mem::take(&mut *found.borrow_mut());
    found.sort_by(|a, b| a.path.cmp(&b.path));
    for f in &found {
        let rel = f.path.strip_prefix(&root).unwrap_or(&f.path);
        let kind = format!("{:?}", f.kind);
        println!("{:<12} {kind:<8} {:>6} bytes", rel.display(), f.size);
    }
    let expected = if cfg!(unix) { 5 } else { 4 };
    let bytes: u64 = found
        .iter()
        .filter(|f| f.kind == FileKind::File)
        .map(|f| f.size)
        .sum();
    if found.len() != expected || bytes != 2010 {
        return Err(FsError::Io(io::Error::other(format!(
            "found {} entries and {bytes} bytes, expected {expected} and 2010",
            found.len()
        ))));
    }

    // Remove, deepest first: files and links, then directories.
    found.sort_by_key(|f| std::cmp::Reverse(f.path.components().count()));
    for f in &found {
        match f.kind {
            FileKind::Dir => run(&mut lp, Fs::rmdir(&f.path))?,
            _ => run(&mut lp, Fs::unlink(&f.path))?,
        };
    }
    run(&mut lp, Fs::rmdir(&root))?;
    match run(&mut lp, Fs::stat(&root)) {
        Err(FsError::NotFound) => {}
        other => {
            return Err(FsError::Io(io::Error::other(format!(
                "the tree is still there: {other:?}"
            ))))
        }
    }
    println!(
        "walked {} entries ({bytes} bytes in files) and removed them",
        found.len()
    );
    Ok(())
}
