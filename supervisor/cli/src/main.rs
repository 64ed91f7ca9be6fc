//! The `hookvisor` command: `serve`, `check-config` and `demo`. The library (`hookvisor`) does
//! the work; this binary owns the command line, logging, systemd notifications and the demo.
#![forbid(unsafe_code)]
// Nothing a host, a plugin or a configuration controls may panic the daemon.
#![deny(clippy::unwrap_used, clippy::expect_used)]

/// mimalloc instead of glibc's allocator: the supervisor allocates and frees small buffers on
/// every call (HTTP/2 frames, headers, messages), and `hookvisor bench` measured glibc's malloc,
/// free and consolidation at about 12 % of the supervisor's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod activation;
mod admin;
mod bench;
mod call;
mod cases;
mod cli;
mod conformance;
mod demo;
mod output;
mod systemd;

fn main() -> std::process::ExitCode {
    // Each plugin runs behind this binary re-executed as its reaper; that must happen before
    // anything else (no thread, no runtime, no open file).
    hookvisor::plugin::spawner::reaper::main_if_reaper();
    // An upgrade runs the new binary once to check it, then executes it in place of the old
    // image with the hand-over's descriptors: both before any thread or file.
    if let Some(check) = hookvisor::serve::handover::check_args() {
        return cli::upgrade_check(check);
    }
    let resumed = match hookvisor::serve::handover::resume_from_args() {
        None => None,
        Some(Ok(resumed)) => Some(resumed),
        Some(Err(e)) => {
            // The plugins, this process's children, end with it: fail closed.
            output::error_line(format_args!(
                "hookvisor: cannot take over after an upgrade: {e}"
            ));
            return std::process::ExitCode::FAILURE;
        }
    };
    cli::main(resumed)
}
