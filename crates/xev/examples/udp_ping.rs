//! UDP ping-pong between two `Udp` watchers on one xev loop, over loopback.
//!
//! The pinger sends an 8-byte round number, the ponger echoes every datagram
//! back to its sender, and the pinger checks the echo (content and sender)
//! before sending the next round. Each side is one read that is rearmed for
//! every datagram; each reply is one write. Prints the round-trip rate.
//!
//! ```text
//! cargo run --example udp_ping -- [ROUNDS]
//! ```

// Not built on WASI preview 1, which cannot create sockets.
#![cfg_attr(all(target_os = "wasi", target_env = "p1"), no_main)]
#![cfg(not(all(target_os = "wasi", target_env = "p1")))]

use std::cell::Cell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use xev::watcher::Udp;
use xev::{Action, Loop, RunMode};

const USAGE: &str = "\
udp_ping: UDP ping-pong between two Udp watchers on one xev loop; prints
the round-trip rate.

usage: udp_ping [ROUNDS]   (default 10000)

The backend is the default one; XEV_BACKEND forces io_uring or epoll on Linux.";

/// Prints the usage and exits with status 0 when `-h` or `--help` is given.
fn help_if_asked() {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        std::process::exit(0);
    }
}

fn main() -> ExitCode {
    help_if_asked();
    let rounds: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 10_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: udp_ping [ROUNDS]");
            return ExitCode::FAILURE;
        }
    };
    match run(rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp_ping: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(rounds: u64) -> std::io::Result<()> {
    let mut lp = Loop::new(Default::default())?;
    let any: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    let ping = Udp::new(any)?;
    ping.bind(any)?;
    let pong = Udp::new(any)?;
    pong.bind(any)?;
    let (ping_addr, pong_addr) = (ping.local_addr()?, pong.local_addr()?);
    println!(
        "backend {}: ping {ping_addr} <-> pong {pong_addr}, {rounds} rounds",
        lp.backend_name()
    );

    // Pong: echo every datagram to its sender, until told to stop (an
    // empty datagram).
    let echo = pong.clone();
    pong.read(&mut lp, vec![0; 64], move |lp, buf, res| {
        let (n, from) = match res {
            Ok(r) => r,
            Err(e) => {
                eprintln!("pong: read: {e}");
                return Action::Disarm;
            }
        };
        if n == 0 {
            return Action::Disarm;
        }
        echo.write(lp, from, buf[..n].to_vec(), |_, _, res| {
            if let Err(e) = res {
                eprintln!("pong: write: {e}");
            }
            Action::Disarm
        });
        Action::Rearm
    });

    // Ping: send round 0, then one round per echo.
    let done = Rc::new(Cell::new(0u64));
    let ok = Rc::new(Cell::new(true));
    let (d, good, sender) = (done.clone(), ok.clone(), ping.clone());
    ping.read(&mut lp, vec![0; 64], move |lp, buf, res| {
        let expected = d.get().to_le_bytes();
        match res {
            Ok((8, from)) if from == pong_addr && buf[..8] == expected => {}
            other => {
                eprintln!("ping: bad echo for round {}: {other:?}", d.get());
                good.set(false);
                return Action::Disarm;
            }
        }
        d.set(d.get() + 1);
        let next = if d.get() == rounds {
            Vec::new() // tells pong to stop
        } else {
            d.get().to_le_bytes().to_vec()
        };
        sender.write(lp, pong_addr, next, |_, _, res| {
            if let Err(e) = res {
                eprintln!("ping: write: {e}");
            }
            Action::Disarm
        });
        if d.get() == rounds {
            Action::Disarm
        } else {
            Action::Rearm
        }
    });
    let start = Instant::now();
    ping.write(
        &mut lp,
        pong_addr,
        0u64.to_le_bytes().to_vec(),
        |_, _, res| {
            if let Err(e) = res {
                eprintln!("ping: write: {e}");
            }
            Action::Disarm
        },
    );
    lp.run(RunMode::UntilDone)?;
    let elapsed = start.elapsed();

    let closed = Rc::new(Cell::new(0));
    for u in [ping, pong] {
        let c = closed.clone();
        u.close(&mut lp, move |_, res| match res {
            Ok(()) => c.set(c.get() + 1),
            Err(e) => eprintln!("close: {e}"),
        });
    }
    lp.run(RunMode::UntilDone)?;

    if !ok.get() || done.get() != rounds || closed.get() != 2 {
        return Err(std::io::Error::other(format!(
            "only {} of {rounds} rounds completed",
            done.get()
        )));
    }
    let secs = elapsed.as_secs_f64();
    println!(
        "{rounds} round trips in {:.3} s: {:.0} round trips/s ({:.1} us each)",
        secs,
        rounds as f64 / secs,
        secs * 1e6 / rounds as f64
    );
    Ok(())
}
