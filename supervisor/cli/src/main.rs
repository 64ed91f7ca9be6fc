//! The `hookvisor` command: `serve`, `check-config` and `demo`. The library (`hookvisor`) does
//! the work; this binary owns the command line, logging, systemd notifications and the demo.
#![forbid(unsafe_code)]
// Nothing a host, a plugin or a configuration controls may panic the daemon.
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod demo;
mod systemd;

fn main() -> std::process::ExitCode {
    cli::main()
}
