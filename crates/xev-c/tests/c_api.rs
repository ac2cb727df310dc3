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
//!
//! On Windows (`x86_64-pc-windows-gnu`; the tests run on IOCP) the C
//! programs are compiled with mingw-w64 (`x86_64-w64-mingw32-gcc`, or
//! `XEV_C_CC`) against the same static library and the system libraries
//! it needs, and the header is checked as C99 and C11 (and C++11 with
//! `clang++ --target=x86_64-w64-mingw32` where clang is installed). Under
//! wine (CI runs this test binary with wine as cargo's runner) the
//! compiler is a Linux program, which wine starts but cannot wait for nor
//! connect to pipes: [`host_run`] runs it through `/bin/sh`, which
//! records the output and the exit status in files that the test waits
//! for. The C programs themselves are Windows programs, run as usual.

// On x86_64-pc-windows-msvc (which CI only type-checks) the C programs
// are not built: their harness is unused there; the header check runs.
#![cfg_attr(all(windows, not(target_env = "gnu")), allow(dead_code))]

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

#[path = "../../xev/tests/support/spawn_retry.rs"]
mod spawn_retry;

/// The crate's directory.
fn manifest_dir() -> PathBuf {
    local(Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// The directory for the compiled programs.
fn tmp_dir() -> PathBuf {
    local(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// Whether this Windows test binary runs under wine (its ntdll exports
/// `wine_get_version`).
#[cfg(windows)]
fn under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: NUL-terminated names; ntdll is loaded in every process.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

/// Whether this test binary runs under wine (never off Windows).
#[cfg(not(windows))]
fn under_wine() -> bool {
    false
}

/// A path as this process opens it. Under wine, the Unix paths that cargo
/// compiled in (`CARGO_MANIFEST_DIR`...) become paths on drive Z:, which
/// wine maps to `/`.
fn local(p: &Path) -> PathBuf {
    let s = p.to_string_lossy();
    if under_wine() && s.starts_with('/') {
        PathBuf::from(format!("Z:{}", s.replace('/', "\\")))
    } else {
        p.to_path_buf()
    }
}

/// A path as the compiler (a host program) opens it: under wine, a path
/// on drive Z: becomes the Unix path.
fn host(p: &Path) -> OsString {
    let s = p.to_string_lossy();
    let s = s.strip_prefix(r"\\?\").unwrap_or(&s);
    match s.strip_prefix("Z:").or_else(|| s.strip_prefix("z:")) {
        Some(rest) if under_wine() => rest.replace('\\', "/").into(),
        _ => p.as_os_str().to_owned(),
    }
}

/// What a host program said and whether it succeeded.
struct HostOutput {
    ok: bool,
    output: String,
}

/// Runs `program` with `args` on the host and waits for it. Under wine,
/// through `/bin/sh`: it writes the program's output to a file and then,
/// by a rename, its exit status to another, whose appearance the test
/// waits for (wine starts Unix programs but gives no handle to wait on
/// and no pipes). Elsewhere, directly.
fn host_run(program: &str, args: &[OsString]) -> HostOutput {
    if !under_wine() {
        return match Command::new(program).args(args).output() {
            Ok(out) => HostOutput {
                ok: out.status.success(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            },
            Err(e) => HostOutput {
                ok: false,
                output: format!("cannot run {program}: {e}"),
            },
        };
    }
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = tmp_dir().join(format!("host-{}-{n}", std::process::id()));
    let (out, status) = (base.with_extension("out"), base.with_extension("status"));
    let _ = std::fs::remove_file(&status);
    let script = "out=$1; st=$2; shift 2; PATH=\"/usr/local/bin:/usr/bin:/bin:$PATH\"; \
                  \"$@\" >\"$out\" 2>&1; echo $? >\"$st.tmp\"; mv \"$st.tmp\" \"$st\"";
    let mut cmd = Command::new(local(Path::new("/bin/sh")));
    cmd.arg("-c")
        .arg(script)
        .arg("sh")
        .arg(host(&out))
        .arg(host(&status))
        .arg(program)
        .args(args);
    // The child's handle means nothing under wine: only its files do. A
    // failed start is tried again (wine 8's occasional ERROR_INTERNAL_ERROR;
    // see spawn_retry.rs).
    drop(
        spawn_retry::retry(|| cmd.spawn(), spawn_retry::io)
            .unwrap_or_else(|e| panic!("start /bin/sh under wine: {e}")),
    );
    // A guard against a lost host program, not a time the work needs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let code = loop {
        if let Ok(code) = std::fs::read_to_string(&status) {
            break code;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{program} (run through /bin/sh under wine) never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&status);
    HostOutput {
        ok: code.trim() == "0",
        output,
    }
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

/// What the C programs link besides the library (on Windows, what
/// `rustc --print native-static-libs` lists for the static library).
#[cfg(windows)]
fn link_args() -> Vec<String> {
    [
        "-lkernel32",
        "-lntdll",
        "-luserenv",
        "-lws2_32",
        "-ldbghelp",
    ]
    .map(String::from)
    .to_vec()
}

/// The C compiler: mingw-w64's on Windows (`XEV_C_CC` overrides it).
#[cfg(windows)]
fn compiler() -> String {
    std::env::var("XEV_C_CC").unwrap_or_else(|_| "x86_64-w64-mingw32-gcc".into())
}

/// The C compiler: `CC`, else `cc`.
#[cfg(not(windows))]
fn compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// What the C programs link besides the library.
#[cfg(not(windows))]
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
    // Named after its two directories: tests/c/timer.c and
    // examples/c/timer.c must not share an executable.
    let dirs: Vec<String> = source
        .parent()
        .unwrap()
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let exe = if cfg!(windows) { ".exe" } else { "" };
    let out = tmp_dir().join(format!("c-{}-{}-{name}{exe}", dirs[1], dirs[0]));
    let mut args: Vec<OsString> = [
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-g",
        "-O1",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.extend(extra_cflags().into_iter().map(OsString::from));
    args.extend([
        "-I".into(),
        host(&manifest_dir().join("include")),
        "-I".into(),
        host(&manifest_dir().join("tests/c")),
        host(source),
        host(&static_lib()),
    ]);
    args.extend(link_args().into_iter().map(OsString::from));
    args.extend(["-o".into(), host(&out)]);
    let cc = compiler();
    let result = host_run(&cc, &args);
    assert!(
        result.ok,
        "compiling {} with {cc} failed:\n{}",
        source.display(),
        result.output
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
    if backend == "kqueue" || backend == "iocp" {
        cmd.env_remove("XEV_BACKEND");
    } else {
        cmd.env("XEV_BACKEND", backend);
    }
    let output = cmd.output().expect("run the C test");
    // (Windows programs end their lines with \r\n.)
    let stdout = String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n");
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
        #[cfg(all(unix, any(xev_libkqueue, not(target_os = "linux"))))]
        mod kqueue {
            $(#[test] fn $name() { super::run(&super::manifest_dir().join($path), "kqueue", &[$($arg),*]); })*
        }
        // The C programs are compiled with mingw-w64: the -gnu target only.
        #[cfg(all(windows, target_env = "gnu"))]
        mod iocp {
            $(#[test] fn $name() { super::run(&super::manifest_dir().join($path), "iocp", &[$($arg),*]); })*
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
    signal: "tests/c/signal.c";
    example_timer: "examples/c/timer.c";
    example_async: "examples/c/async.c";
    example_threadpool: "examples/c/threadpool.c";
    example_million_timers: "examples/c/million_timers.c", "20000";
    example_tcp_echo: "examples/c/tcp_echo.c", "3";
}

/// The compilers that check `xev.h`: per compiler (and the flags that
/// select its target), the languages to check it as.
#[cfg(not(windows))]
fn header_compilers() -> Vec<(&'static str, Vec<&'static str>, &'static str, &'static str)> {
    let mut list = Vec::new();
    for (cc, cxx) in [("gcc", "g++"), ("clang", "clang++")] {
        list.push((cc, vec![], "-std=c99", "c"));
        list.push((cc, vec![], "-std=c11", "c"));
        list.push((cxx, vec![], "-std=c++11", "c++"));
    }
    list
}

/// The compilers that check `xev.h` for Windows: mingw-w64's gcc (C99,
/// C11) and, where installed, clang for the mingw-w64 target (C99, C11,
/// C++11; Debian's mingw-w64 has no g++ unless asked for).
#[cfg(windows)]
fn header_compilers() -> Vec<(&'static str, Vec<&'static str>, &'static str, &'static str)> {
    let mingw = vec!["--target=x86_64-w64-mingw32"];
    vec![
        ("x86_64-w64-mingw32-gcc", vec![], "-std=c99", "c"),
        ("x86_64-w64-mingw32-gcc", vec![], "-std=c11", "c"),
        ("clang", mingw.clone(), "-std=c99", "c"),
        ("clang", mingw.clone(), "-std=c11", "c"),
        ("clang++", mingw, "-std=c++11", "c++"),
    ]
}

/// `xev.h` alone compiles as C99, C11 and C++11 with every warning as an
/// error, under each of gcc and clang that is installed (at least one
/// must be); for Windows, under mingw-w64 (see [`header_compilers`]).
#[test]
fn header_compiles_cleanly() {
    let src = tmp_dir().join("xev_h_check.c");
    std::fs::write(
        &src,
        "#include <xev.h>\n\
         typedef char loop_size_ok[sizeof(xev_loop) >= XEV_SIZEOF_LOOP ? 1 : -1];\n\
         typedef char completion_size_ok[sizeof(xev_completion) >= XEV_SIZEOF_COMPLETION ? 1 : -1];\n\
         int main(void) { xev_fd fd = XEV_INVALID_FD; xev_loop l; (void)l; (void)fd; return xev_loop_init(0) == 0; }\n",
    )
    .unwrap();
    let mut compilers = 0;
    for (compiler, target, std, lang) in header_compilers() {
        let probe = host_run(compiler, &["--version".into()]);
        if !probe.ok {
            eprintln!("{compiler} is not installed: xev.h is not checked with it");
            continue;
        }
        compilers += 1;
        let mut args: Vec<OsString> = target.iter().map(OsString::from).collect();
        args.extend(
            [
                std,
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-fsyntax-only",
                "-x",
                lang,
            ]
            .map(OsString::from),
        );
        args.extend([
            "-I".into(),
            host(&manifest_dir().join("include")),
            host(&src),
        ]);
        let out = host_run(compiler, &args);
        assert!(
            out.ok,
            "xev.h with {compiler} {target:?} {std}:\n{}",
            out.output
        );
    }
    assert!(compilers > 0, "no C compiler is installed");
}
