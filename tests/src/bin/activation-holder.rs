//! A test helper standing in for a systemd socket unit: it binds a listening Unix socket and
//! keeps it, and runs a command on it through socket activation (`LISTEN_FDS=1`, descriptor 3,
//! `LISTEN_PID` the command's own pid) again each time the command exits, as
//! `systemctl restart` does. Writes the running command's pid to PIDFILE.
//!
//! Usage: `activation-holder SOCKET PIDFILE PROGRAM [ARGS…]`. Runs until killed.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::process::Command;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, pidfile, program, rest @ ..] = args.as_slice() else {
        eprintln!("usage: activation-holder SOCKET PIDFILE PROGRAM [ARGS…]");
        std::process::exit(2);
    };
    // The first descriptor this (single-threaded) process opens is 3, SD_LISTEN_FDS_START: the
    // command inherits it there once it is no longer close-on-exec.
    let listener = UnixListener::bind(socket).expect("binding the socket");
    assert_eq!(listener.as_raw_fd(), 3, "the socket is not descriptor 3");
    nix::fcntl::fcntl(
        &listener,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .expect("clearing close-on-exec");
    loop {
        // `sh` sets LISTEN_PID to its own pid, which `exec` gives the command.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
            .arg(program)
            .args(rest)
            .spawn()
            .expect("starting the command");
        let next = format!("{pidfile}.new");
        std::fs::write(&next, child.id().to_string()).expect("writing the pid");
        std::fs::rename(&next, pidfile).expect("writing the pid");
        let status = child.wait().expect("waiting for the command");
        eprintln!("activation-holder: the command exited ({status}); starting it again");
    }
}
