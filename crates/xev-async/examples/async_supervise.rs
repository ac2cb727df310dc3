//! A process supervisor with xev-async: spawns N children (20 by default)
//! that print a line and exit with their index, except every fifth one,
//! which hangs; each child gets a deadline, laggards are killed, every
//! byte of stdout is read, and the exit codes are checked. The children
//! are this program itself, re-run with `--child I`. Exits by itself.
//!
//! ```text
//! cargo run -p xev-async --example async_supervise -- [--children N]
//! ```

// Not built on WASI, which has no processes.
#![cfg_attr(target_os = "wasi", no_main)]
#![cfg(not(target_os = "wasi"))]

use std::io;
use std::process::{Command, Stdio};
use std::time::Duration;

use xev::{Options, ThreadPool};
use xev_async::{spawn, timeout, Child, Runtime};

/// How long a child may run before it is killed (generous: a loaded
/// machine may take a while to start twenty processes).
const DEADLINE: Duration = Duration::from_secs(5);

/// What a child does: print, then exit with `i % 256`, or hang if `i` is a
/// multiple of 5.
fn child(i: u32) -> ! {
    println!("child {i} says hello");
    if i % 5 == 0 {
        std::thread::sleep(Duration::from_secs(3600));
    }
    std::process::exit((i % 256) as i32);
}

/// Supervises child `i`: its output, and its exit within the deadline or
/// a kill. Returns (killed, bytes of output).
async fn supervise(i: u32) -> io::Result<(bool, usize)> {
    let exe = std::env::current_exe()?;
    let mut c = Child::spawn(
        Command::new(exe)
            .args(["--child", &i.to_string()])
            .stdout(Stdio::piped()),
    )?;
    let out = c.stdout.take().expect("piped");
    let reader = spawn(async move { out.read_to_end().await });
    let killed = match timeout(DEADLINE, c.wait()).await {
        Ok(status) => {
            let code = status?.code();
            if code != Some((i % 256) as i32) {
                return Err(io::Error::other(format!("child {i} exited with {code:?}")));
            }
            false
        }
        Err(_) => {
            c.kill()?;
            c.wait().await?;
            true
        }
    };
    let text = reader.await??;
    if text != format!("child {i} says hello\n").as_bytes() {
        return Err(io::Error::other(format!("child {i} printed {text:?}")));
    }
    Ok((killed, text.len()))
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("async_supervise: a process supervisor on xev-async\n\nusage: async_supervise [--children N]");
        return Ok(());
    }
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    if let Some(i) = value("--child").and_then(|v| v.parse().ok()) {
        child(i);
    }
    let n: u32 = value("--children")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // A thread pool: Windows reads std's pipes there.
    let rt = Runtime::new_with(Options {
        thread_pool: Some(ThreadPool::new(Default::default())?),
        ..Options::default()
    })?;
    let (killed, bytes) = rt.block_on(async {
        let tasks: Vec<_> = (1..=n).map(|i| spawn(supervise(i))).collect();
        let (mut killed, mut bytes) = (0, 0);
        for t in tasks {
            let (k, b) = t.await??;
            killed += u32::from(k);
            bytes += b;
        }
        Ok::<_, io::Error>((killed, bytes))
    })?;
    println!(
        "{n} children: {} exited with their code, {killed} laggards killed, {bytes} bytes read",
        n - killed
    );
    if killed != n / 5 {
        return Err(io::Error::other(format!("expected {} laggards", n / 5)));
    }
    Ok(())
}
