//! Serves from the wrong process: re-executes itself as a child that leaves the process group
//! (`setsid`: new session, new group) and binds the socket there, while the process the
//! supervisor started only waits. The supervisor's `SO_PEERCRED` check must reject it.

use hookvisor_tests::fixture::{Recorder, env_var, relaunch_self, run, watch_parent};

const CHILD: &str = "FIXTURE_PEER_MISMATCH_CHILD";

fn main() {
    if env_var(CHILD).is_some() {
        nix::unistd::setsid().expect("setsid");
        // Out of the group the supervisor signals: only the watchdog ends this process.
        run(Recorder::from_env(None))
    }
    watch_parent();
    let status = relaunch_self(CHILD)
        .wait()
        .expect("waiting for the server child");
    std::process::exit(status.code().unwrap_or(1))
}
