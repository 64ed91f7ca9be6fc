//! Gives up before binding its socket: one line on stderr, exit status 7.

fn main() {
    eprintln!("fixture-exit-at-start: giving up");
    std::process::exit(7)
}
