//! Graceful shutdown on a signal: a loop does periodic work (a timer that
//! ticks every 20 ms) until SIGINT or SIGTERM arrives (Ctrl-C or
//! Ctrl-Break on Windows); then it stops taking work, finishes the tick in
//! progress and exits cleanly. To run to completion by itself, the program
//! sends itself SIGTERM (on Windows, Ctrl-Break to its console) after five
//! ticks.
//!
//! ```text
//! cargo run --example signals
//! ```

// Not built on WASI, which has no signals.
#![cfg_attr(target_os = "wasi", no_main)]
#![cfg(not(target_os = "wasi"))]

use std::cell::Cell;
use std::rc::Rc;

use xev::{Action, Loop, RunMode, Signal, Timer};

const USAGE: &str = "\
signals: periodic work on an xev loop until SIGINT or SIGTERM (Ctrl-C or
Ctrl-Break on Windows), then a graceful shutdown; it sends itself SIGTERM
(Ctrl-Break) after five ticks.

usage: signals

The backend is the default one; XEV_BACKEND forces io_uring or epoll on Linux.";

#[cfg(unix)]
const WATCHED: [(i32, &str); 2] = [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")];
#[cfg(windows)]
const WATCHED: [(i32, &str); 2] = [
    (xev::signal::CTRL_C, "Ctrl-C"),
    (xev::signal::CTRL_BREAK, "Ctrl-Break"),
];

/// Sends this process the shutdown signal (SIGTERM; Ctrl-Break on Windows).
fn send_shutdown() {
    #[cfg(unix)]
    // SAFETY: kill with our own pid and a valid signal number.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGTERM);
    }
    #[cfg(windows)]
    // SAFETY: plain integer arguments (process group 0: this console).
    unsafe {
        windows_sys::Win32::System::Console::GenerateConsoleCtrlEvent(1, 0);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let mut lp = Loop::new(Default::default())?;
    println!("backend: {}", lp.backend_name());
    let stopping = Rc::new(Cell::new(None::<&'static str>));
    let ticks = Rc::new(Cell::new(0u32));

    // The work: a tick every 20 ms, until shutdown is asked for.
    let (st, tk) = (stopping.clone(), ticks.clone());
    let timer = Timer::new(&mut lp, move |_, res| {
        res.expect("the timer");
        tk.set(tk.get() + 1);
        println!("tick {}", tk.get());
        if tk.get() == 5 {
            send_shutdown();
        }
        // The signal is delivered within a tick or two; a platform that
        // never delivers it (wine cannot raise console events) must not
        // keep the program running forever.
        if tk.get() == 500 {
            eprintln!("signals: the shutdown signal never arrived");
            std::process::exit(1);
        }
        if st.get().is_some() {
            Action::Disarm
        } else {
            Action::Rearm
        }
    });
    timer.run(&mut lp, 20)?;

    // The signals: each one asks for a shutdown; the watchers then stop.
    let mut watchers = Vec::new();
    for (sig, name) in WATCHED {
        let st = stopping.clone();
        watchers.push(Signal::new(&mut lp, sig, move |_, res| {
            if let Ok(n) = res {
                println!("{name} (x{n}): shutting down after the current tick");
                st.set(Some(name));
            }
            Action::Disarm
        })?);
    }

    // Run until the shutdown signal, then let the timer finish its tick.
    while stopping.get().is_none() {
        lp.run(RunMode::Once)?;
    }
    drop(watchers);
    lp.run(RunMode::UntilDone)?;
    let name = stopping.get().unwrap_or("?");
    println!("stopped cleanly on {name} after {} ticks", ticks.get());
    Ok(())
}
