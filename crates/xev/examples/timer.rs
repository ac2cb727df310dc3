//! A repeating timer on an xev loop: the `Timer` watcher ticks every 20 ms
//! by returning `Rearm` from its callback, five times. A second timer is
//! started far in the future and, at the third tick, reset to fire 5 ms
//! later instead. The program ends when both are done.
//!
//! ```text
//! cargo run --example timer
//! ```

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use xev::{Action, Loop, RunMode, Timer};

const USAGE: &str = "\
timer: a repeating timer (every 20 ms, five times) and a timer reset on
an xev loop.

usage: timer

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
            eprintln!("timer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_main() -> std::io::Result<()> {
    let mut lp = Loop::new(Default::default())?;
    let start = Instant::now();
    println!("backend: {}", lp.backend_name());

    // The timer that gets reset: one minute away until the third tick.
    let late_fired = Rc::new(Cell::new(false));
    let lf = late_fired.clone();
    let late = Timer::new(&mut lp, move |_, res| {
        match res {
            Ok(()) => println!("{:>4} ms  reset timer fired", start.elapsed().as_millis()),
            Err(e) => eprintln!("reset timer: {e}"),
        }
        lf.set(true);
        Action::Disarm
    });
    late.run(&mut lp, 60_000).map_err(std::io::Error::from)?;
    let late = Rc::new(RefCell::new(Some(late)));

    // The repeating timer.
    let ticks = Rc::new(Cell::new(0u32));
    let (t, l) = (ticks.clone(), late.clone());
    let repeat = Timer::new(&mut lp, move |lp, res| {
        if let Err(e) = res {
            eprintln!("repeating timer: {e}");
            return Action::Disarm;
        }
        t.set(t.get() + 1);
        println!("{:>4} ms  tick {}", start.elapsed().as_millis(), t.get());
        if t.get() == 3 {
            if let Some(late) = l.borrow().as_ref() {
                println!(
                    "{:>4} ms  resetting the one-minute timer to 5 ms",
                    start.elapsed().as_millis()
                );
                if let Err(e) = late.reset(lp, 5) {
                    eprintln!("reset: {e}");
                }
            }
        }
        if t.get() < 5 {
            Action::Rearm // again in 20 ms
        } else {
            Action::Disarm
        }
    });
    repeat.run(&mut lp, 20).map_err(std::io::Error::from)?;

    lp.run(RunMode::UntilDone)?;
    println!(
        "done after {} ms: {} ticks, reset timer fired: {}",
        start.elapsed().as_millis(),
        ticks.get(),
        late_fired.get()
    );
    repeat.free(&mut lp).map_err(std::io::Error::from)?;
    if let Some(late) = late.borrow_mut().take() {
        late.free(&mut lp).map_err(std::io::Error::from)?;
    }
    if ticks.get() != 5 || !late_fired.get() {
        return Err(std::io::Error::other("timers did not all fire"));
    }
    Ok(())
}
