//! `__sizes`: prints the memory per timer of the xev types million-timers
//! uses (a diagnostic, not part of the suite).

use xev::generic::Completion;
use xev::DefaultBackend as Epoll;
use xev::{Action, Op};

pub fn print() {
    let c = Completion::<Epoll, _>::new(
        Op::timer(0),
        |_: &mut xev::generic::Loop<Epoll>, _: &mut Op, _| Action::Disarm,
    );
    println!("size_of::<xev::Op>() = {}", std::mem::size_of::<Op>());
    println!(
        "size_of_val(Completion<Epoll, zero-sized closure>) = {}",
        std::mem::size_of_val(&*c)
    );
    println!(
        "size_of::<xev::OpResult>() = {}",
        std::mem::size_of::<xev::OpResult>()
    );
    println!(
        "size_of::<xev::Msg>() = {}",
        std::mem::size_of::<xev::Msg>()
    );
}
