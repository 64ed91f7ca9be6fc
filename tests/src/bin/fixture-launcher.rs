//! Behaves like `npx tsx` or `go run`: re-executes itself as a child in the same process group,
//! and that child serves (as the recorder). The supervisor's peer check must accept it.

use hookvisor_tests::fixture::{Recorder, env_var, relaunch_self, run, watch_parent};

const CHILD: &str = "FIXTURE_LAUNCHER_CHILD";

fn main() {
    if env_var(CHILD).is_some() {
        run(Recorder::from_env(None))
    }
    watch_parent();
    let status = relaunch_self(CHILD)
        .wait()
        .expect("waiting for the server child");
    std::process::exit(status.code().unwrap_or(1))
}
