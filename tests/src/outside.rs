//! What the package tests (`tests/package_*.rs`) share: a directory outside the checkout that a
//! plugin's own uid may enter, and a command run to its end with a deadline.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::harness::{TestDir, repo_root};

/// A directory under the system temp dir, outside the checkout, that another uid may enter
/// (conformance runs the plugin under a uid of its own when run as root).
pub fn dir() -> TestDir {
    let dir = TestDir::new();
    assert!(
        !dir.path().starts_with(repo_root()),
        "{} is inside the checkout; set TMPDIR elsewhere",
        dir.path().display()
    );
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 0755");
    dir
}

/// Runs `command` in `dir` in a process group of its own, waiting at most `limit` (then the
/// group is killed); panics unless it exits 0. Returns its stdout.
pub fn run(mut command: Command, dir: &Path, limit: Duration) -> String {
    let what = format!("{command:?} in {}", dir.display());
    let mut child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|err| panic!("starting {what}: {err}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            break status;
        }
        if began.elapsed() > limit {
            let pid = i32::try_from(child.id()).expect("pid");
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "{what} still running after {limit:?}; stderr:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    assert!(
        status.success(),
        "{what}: {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    eprintln!("{what}: {:?}", began.elapsed());
    stdout
}
