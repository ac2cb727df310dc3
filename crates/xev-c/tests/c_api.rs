//! Runs the C tests in `tests/c/` (and the C examples in `examples/c/`,
//! with small workloads)
//! against the static library this crate builds, on every backend the
//! host can run: io_uring and epoll on Linux (io_uring only where the
//! kernel allows it, said on stderr otherwise; `XEV_BACKEND` picks the
//! backend), kqueue when built with `--cfg xev_libkqueue`. Each C program
//! is compiled once with the system's `cc` and strict warnings
//! (`-Wall -Wextra -Werror -pedantic`); it checks its own results and
//! exits non-zero, saying why, on the first failure.
//!
//! Also checks that `xev.h` compiles on its own as C99, C11 and C++11
//! under gcc and clang (each compiler that is installed; CI installs both).
//!
//! `XEV_C_CFLAGS` adds compiler flags (`-fsanitize=address` for an ASan
//! run, whose Rust side is built with `-Zsanitizer=address`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The crate's directory.
fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The static library cargo built for this test, found from the test
/// executable whatever the target directory or `--target`: cargo puts
/// both in the profile directory (target/[TRIPLE/]PROFILE/: the library
/// there and in `deps/`, the test in `deps/`), or, in newer cargos, each
/// in its own `build/CRATE/HASH/out/` below it. The nearest profile
/// directory with a library wins; among several builds of the library
/// there, the newest (the one made with this test).
fn static_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    for dir in exe.ancestors().skip(1).take(6) {
        let mut found: Vec<PathBuf> = vec![dir.join("libxev_c.a"), dir.join("deps/libxev_c.a")];
        if let Ok(builds) = std::fs::read_dir(dir.join("build/xev-c")) {
            found.extend(builds.flatten().map(|b| b.path().join("out/libxev_c.a")));
        }
        let newest = found
            .into_iter()
            .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
            .max();
        if let Some((_, lib)) = newest {
            return lib;
        }
    }
    panic!("libxev_c.a not found above {}", exe.display());
}

/// Flags from `XEV_C_CFLAGS`.
fn extra_cflags() -> Vec<String> {
    std::env::var("XEV_C_CFLAGS")
        .map(|v| v.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// What the C programs link besides the library.
fn link_args() -> Vec<String> {
    let mut args: Vec<String> = ["-lpthread", "-ldl", "-lm"].map(String::from).to_vec();
    if cfg!(target_os = "linux") {
        args.push("-lrt".into());
    }
    if cfg!(xev_libkqueue) {
        // libkqueue's directory is on LD_LIBRARY_PATH for the run anyway.
        if let Ok(paths) = std::env::var("LD_LIBRARY_PATH") {
            args.extend(std::env::split_paths(&paths).map(|p| format!("-L{}", p.display())));
        }
        args.push("-lkqueue".into());
    }
    args
}

/// Compiles `source` (once per process) and returns the executable.
fn build(source: &Path) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    // One compiler at a time: the machine may be small.
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(exe) = built.get(source) {
        return exe.clone();
    }
    let name = source.file_stem().unwrap().to_string_lossy().into_owned();
    let parent = source
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("c-{parent}-{name}"));
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args([
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-g",
        "-O1",
    ])
    .args(extra_cflags())
    .arg("-I")
    .arg(manifest_dir().join("include"))
    .arg("-I")
    .arg(manifest_dir().join("tests/c"))
    .arg(source)
    .arg(static_lib())
    .args(link_args())
    .arg("-o")
    .arg(&out);
    let output = cmd.output().expect("run the C compiler (cc)");
    assert!(
        output.status.success(),
        "compiling {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    built.insert(source.to_path_buf(), out.clone());
    out
}

/// Whether io_uring works here (probed once).
#[cfg(all(target_os = "linux", not(xev_libkqueue)))]
fn io_uring_works() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| match xev::backend::io_uring::IoUring::probe() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("io_uring is not available here ({e}): its C tests are skipped");
            false
        }
    })
}

/// Runs the compiled `source` with `args` on `backend` (with
/// `XEV_BACKEND=backend` where the backend is chosen at run time; kqueue is
/// the build's only one) and checks that it succeeds (and, for programs
/// that print their backend, that it ran on `backend`).
fn run(source: &Path, backend: &str, args: &[&str]) {
    #[cfg(all(target_os = "linux", not(xev_libkqueue)))]
    if backend == "io_uring" && !io_uring_works() {
        return;
    }
    let exe = build(source);
    let mut cmd = Command::new(&exe);
    cmd.args(args);
    if backend == "kqueue" {
        cmd.env_remove("XEV_BACKEND");
    } else {
        cmd.env("XEV_BACKEND", backend);
    }
    let output = cmd.output().expect("run the C test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} on {backend:?} failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        source.display(),
        output.status
    );
    assert!(
        stdout.contains(&format!("backend {backend}\n")) || !stdout.contains("backend "),
        "{} did not run on {backend}:\n{stdout}",
        source.display()
    );
}

/// One test per C program and backend.
macro_rules! c_tests {
    ($($name:ident: $path:literal $(, $arg:literal)*;)*) => {
        #[cfg(all(target_os = "linux", not(xev_libkqueue)))]
        mod io_uring {
            $(#[test] fn $name() { super::run(&super::manifest_dir().join($path), "io_uring", &[$($arg),*]); })*
        }
        #[cfg(all(target_os = "linux", not(xev_libkqueue)))]
        mod epoll {
            $(#[test] fn $name() { super::run(&super::manifest_dir().join($path), "epoll", &[$($arg),*]); })*
        }
        #[cfg(any(xev_libkqueue, not(target_os = "linux")))]
        mod kqueue {
            $(#[test] fn $name() { super::run(&super::manifest_dir().join($path), "kqueue", &[$($arg),*]); })*
        }
    };
}

c_tests! {
    timer: "tests/c/timer.c";
    async_wakeup: "tests/c/async.c";
    threadpool: "tests/c/threadpool.c";
    tcp: "tests/c/tcp.c";
    udp: "tests/c/udp.c";
    files_and_streams: "tests/c/files.c";
    process: "tests/c/process.c";
    example_timer: "examples/c/timer.c";
    example_async: "examples/c/async.c";
    example_threadpool: "examples/c/threadpool.c";
    example_million_timers: "examples/c/million_timers.c", "20000";
    example_tcp_echo: "examples/c/tcp_echo.c", "3";
}

/// `xev.h` alone compiles as C99, C11 and C++11 with every warning as an
/// error, under each of gcc and clang that is installed (at least one
/// must be).
#[test]
fn header_compiles_cleanly() {
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xev_h_check.c");
    std::fs::write(
        &src,
        "#include <xev.h>\n\
         typedef char loop_size_ok[sizeof(xev_loop) >= XEV_SIZEOF_LOOP ? 1 : -1];\n\
         typedef char completion_size_ok[sizeof(xev_completion) >= XEV_SIZEOF_COMPLETION ? 1 : -1];\n\
         int main(void) { xev_loop l; (void)l; return xev_loop_init(0) == 0; }\n",
    )
    .unwrap();
    let mut compilers = 0;
    for (cc, cxx) in [("gcc", "g++"), ("clang", "clang++")] {
        for (compiler, std, lang) in [
            (cc, "-std=c99", "c"),
            (cc, "-std=c11", "c"),
            (cxx, "-std=c++11", "c++"),
        ] {
            let probe = Command::new(compiler).arg("--version").output();
            if !probe.is_ok_and(|o| o.status.success()) {
                eprintln!("{compiler} is not installed: xev.h is not checked with it");
                continue;
            }
            compilers += 1;
            let out = Command::new(compiler)
                .args([
                    std,
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-pedantic",
                    "-fsyntax-only",
                    "-x",
                    lang,
                ])
                .arg("-I")
                .arg(manifest_dir().join("include"))
                .arg(&src)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "xev.h with {compiler} {std}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(compilers > 0, "neither gcc nor clang is installed");
}
