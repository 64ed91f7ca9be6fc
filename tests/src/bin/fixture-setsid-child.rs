//! Serves as the recorder, after starting a child of itself that leaves the process group and
//! the session (`setsid`) and then only sleeps, as a daemonizing helper would. The child records
//! `{"escaped": PID}` in `FIXTURE_RECORD`. Stopping the plugin must stop the child too.

use std::io::Write;

use hookvisor_tests::fixture::{Recorder, env_var, relaunch_self, run};

const CHILD: &str = "FIXTURE_SETSID_CHILD";

fn main() {
    if env_var(CHILD).is_some() {
        let _ = nix::unistd::setsid();
        if let Some(path) = env_var("FIXTURE_RECORD") {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("FIXTURE_RECORD");
            let line = serde_json::json!({"escaped": std::process::id()});
            let _ = file.write_all(format!("{line}\n").as_bytes());
        }
        // No parent watchdog: only the supervisor can end this process.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    #[allow(clippy::zombie_processes)]
    let _child = relaunch_self(CHILD);
    run(Recorder::from_env(None))
}
