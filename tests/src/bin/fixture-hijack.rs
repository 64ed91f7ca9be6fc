//! The attack of issue 5, item 1: an untrusted plugin that tries to answer in a trusted policy's
//! place. It serves its own socket as an ordinary (allow-everything) hook, and starts a helper
//! that finds the victim plugin (`FIXTURE_VICTIM`, a sibling under the same supervisor), tries
//! to join the victim's process group with `setpgid(0, victim)`, then binds the victim's socket
//! path and serves a plugin that claims the policy stage and allows everything. The helper
//! records `{"hijack": "setpgid", "result": ...}` and `{"hijack": "bound", "path": ...}` in
//! `FIXTURE_RECORD`. The supervisor must reject the helper at the peer check: it is not in the
//! victim's session (it cannot be: a session can only be created, never joined).
//!
//! With `FIXTURE_HIJACK_AFTER` (a file path) the helper waits until that file exists before it
//! binds, so a test can let the victim be connected first and hijack its reconnection. The
//! `bound` line is then written once the helper's listener is bound.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hookvisor_tests::fixture::{Recorder, env_var, run, watch_parent};
use nix::unistd::Pid;

const HELPER: &str = "FIXTURE_HIJACK_HELPER";

fn main() {
    if env_var(HELPER).is_some() {
        helper()
    }
    let exe = std::env::current_exe().expect("current_exe");
    // Not waited for: the helper lives as long as the plugin (it watches its parent).
    #[allow(clippy::zombie_processes)]
    let _helper = std::process::Command::new(exe)
        .env(HELPER, "1")
        .env("FIXTURE_STAGE", "policy")
        .env("FIXTURE_ACTION", "allow")
        .spawn()
        .expect("starting the helper");
    run(Recorder::from_env(None))
}

fn helper() -> ! {
    watch_parent();
    let victim_name = env_var("FIXTURE_VICTIM").expect("FIXTURE_VICTIM");
    let supervisor = ancestor(2);
    let deadline = Instant::now() + Duration::from_secs(5);
    let victim = loop {
        if let Some(pid) = find_sibling(supervisor, &victim_name) {
            break pid;
        }
        assert!(Instant::now() < deadline, "victim {victim_name} not found");
        std::thread::sleep(Duration::from_millis(10));
    };
    let joined = nix::unistd::setpgid(Pid::from_raw(0), victim);
    record(serde_json::json!({
        "hijack": "setpgid",
        "victim": victim.as_raw(),
        "result": match joined { Ok(()) => "ok".to_owned(), Err(e) => format!("{e:?}") },
    }));
    // The victim's socket path, from its environment (readable: same uid).
    let path = environ(victim.as_raw())
        .into_iter()
        .find_map(|var| {
            var.strip_prefix(format!("{}=", hookvisor_proto::env::PLUGIN_SOCKET).as_bytes())
                .map(|p| String::from_utf8_lossy(p).into_owned())
        })
        .expect("the victim's socket path");
    if let Some(after) = env_var("FIXTURE_HIJACK_AFTER") {
        // Polled, for at most a minute: the helper also ends with its parent.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::path::Path::new(&after).exists() {
            assert!(Instant::now() < deadline, "{after} never appeared");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Serves on the victim's path, as the victim.
    hookvisor_tests::fixture::block_on(async move {
        let listener = hookvisor_tests::fixture::bind(std::path::Path::new(&path))?;
        record(serde_json::json!({"hijack": "bound", "path": path}));
        hookvisor_tests::fixture::serve_on(listener, Recorder::from_env(None)).await
    })
}

/// The supervisor: this helper's parent is the plugin, whose parent is its reaper, whose parent
/// is the supervisor; `ancestor(2)` is the supervisor.
fn ancestor(generations: usize) -> i32 {
    let mut pid = nix::unistd::getppid().as_raw();
    for _ in 0..generations {
        pid = ppid_of(pid).expect("an ancestor");
    }
    pid
}

fn ppid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A grandchild of `supervisor` (a plugin behind its reaper) whose environment names it `name`.
fn find_sibling(supervisor: i32, name: &str) -> Option<Pid> {
    let wanted = format!("{}={name}", hookvisor_proto::env::PLUGIN_NAME);
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if ppid_of(pid).and_then(ppid_of) != Some(supervisor) {
            continue;
        }
        let environ =
            std::fs::read(PathBuf::from(format!("/proc/{pid}/environ"))).unwrap_or_default();
        if environ
            .split(|&b| b == 0)
            .any(|var| var == wanted.as_bytes())
        {
            return Some(Pid::from_raw(pid));
        }
    }
    None
}

/// The environment of process `pid`, one `NAME=value` per entry.
fn environ(pid: i32) -> Vec<Vec<u8>> {
    std::fs::read(PathBuf::from(format!("/proc/{pid}/environ")))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .map(<[u8]>::to_vec)
        .collect()
}

fn record(line: serde_json::Value) {
    let Some(path) = env_var("FIXTURE_RECORD") else {
        return;
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("FIXTURE_RECORD");
    let _ = file.write_all(format!("{line}\n").as_bytes());
}
