//! Socket activation takes only what is certainly its own: `LISTEN_PID` must be the supervisor's
//! pid, `LISTEN_FDS` must be 1, descriptor 3 must be a listening Unix stream socket, and the
//! directory it lives in must pass the checks the configured socket passes. Anything else
//! refuses the start with exit 64 and one line saying what was passed, before any plugin runs
//! and without binding the configured path.
//!
//! The socket is passed the way systemd passes it: `systemd-socket-activate`, or, for what it
//! would never pass, `sh` putting a descriptor at 3 (`3<&0`) and, where the pid must be right,
//! setting `LISTEN_PID=$$` before it `exec`s hookvisor in its own process.

use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookvisor_tests::harness::{
    PluginToml, Recording, TestDir, hookvisor, plugins, sandbox_keys, toml_string,
};

/// A configuration whose host socket (`configured.sock`) must stay unbound, with a recorder
/// that writes down whether it ever started.
fn configuration(dir: &TestDir, recording: &Recording) -> PathBuf {
    let config = dir.join("hookvisor.toml");
    let text = format!(
        "[supervisor]\nsocket = {}\nruntime_dir = {}\n{}{}",
        toml_string(&dir.join("configured.sock").display().to_string()),
        toml_string(&dir.join("run").display().to_string()),
        sandbox_keys(dir.path()),
        plugins(&[PluginToml::new("watcher", "fixture-recorder").record(recording)])
    );
    std::fs::write(&config, text).expect("writing the configuration");
    config
}

/// Whose pid `LISTEN_PID` names.
enum ListenPid {
    /// Not set at all.
    Unset,
    /// hookvisor's own (the shell's `$$`, which `exec` keeps).
    Ours,
    /// This value.
    Other(&'static str),
}

/// `hookvisor serve --config CONFIG` with `fd` at descriptor 3, `LISTEN_FDS=1` and `pid`; its
/// stderr goes to `log`.
fn serve_with_fd3(config: &Path, fd: OwnedFd, pid: ListenPid, log: &Path) -> Child {
    let script = match pid {
        ListenPid::Ours => r#"LISTEN_PID=$$ exec "$@" 3<&0 0</dev/null"#,
        ListenPid::Unset | ListenPid::Other(_) => r#"exec "$@" 3<&0 0</dev/null"#,
    };
    let mut command = Command::new("sh");
    command
        .args(["-c", script, "sh"])
        .arg(hookvisor())
        .args(["serve", "--config"])
        .arg(config)
        .env("LISTEN_FDS", "1")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS_FIRST_FD")
        .stdin(Stdio::from(fd))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .process_group(0);
    if let ListenPid::Other(value) = pid {
        command.env("LISTEN_PID", value);
    }
    command.spawn().expect("spawning sh")
}

/// Waits up to 30 s for `child` to exit; its exit code and the log. A supervisor that serves
/// instead of refusing is killed and the test fails.
fn exit_code(mut child: Child, log: &Path) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return (status.code(), log());
        }
        if Instant::now() > deadline {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
            panic!("hookvisor did not refuse to start within 30 s:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Refused with 64, one line naming every `needle`, nothing started or bound.
fn assert_refused(
    code: Option<i32>,
    log: &str,
    needles: &[&str],
    dir: &TestDir,
    recording: &Recording,
) {
    assert_eq!(code, Some(64), "{log}");
    assert_eq!(log.trim().lines().count(), 1, "one line: {log}");
    for needle in needles {
        assert!(log.contains(needle), "{needle:?} not named: {log}");
    }
    assert!(recording.starts().is_empty(), "a plugin ran: {log}");
    assert!(
        !dir.join("configured.sock").exists(),
        "the configured path was bound"
    );
}

/// A listening socket at `path`, as a descriptor to pass in.
fn listening(path: &Path) -> OwnedFd {
    OwnedFd::from(UnixListener::bind(path).expect("binding a socket"))
}

#[test]
fn two_sockets_passed_in_are_refused_naming_the_count() {
    let dir = TestDir::new();
    let recording = Recording::new();
    let config = configuration(&dir, &recording);
    let (first, second) = (dir.join("first.sock"), dir.join("second.sock"));
    let log = dir.join("log");
    let child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&first)
        .arg("-l")
        .arg(&second)
        .arg(hookvisor())
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .process_group(0)
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(first.exists() && second.exists()) {
        assert!(
            Instant::now() < deadline,
            "systemd-socket-activate never bound"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first connection makes systemd-socket-activate exec hookvisor with both sockets.
    let _knock = UnixStream::connect(&first).expect("connecting to the first socket");
    let (code, log) = exit_code(child, &log);
    // systemd-socket-activate says what it does on stderr too; hookvisor's line is the last.
    let refusal = log.trim().lines().last().unwrap_or_default().to_owned();
    assert_refused(
        code,
        &refusal,
        &["LISTEN_FDS=2", "2 sockets"],
        &dir,
        &recording,
    );
}

#[test]
fn a_socket_without_listen_pid_is_refused() {
    let dir = TestDir::new();
    let recording = Recording::new();
    let config = configuration(&dir, &recording);
    let log = dir.join("log");
    let fd = listening(&dir.join("act.sock"));
    let (code, log) = exit_code(serve_with_fd3(&config, fd, ListenPid::Unset, &log), &log);
    assert_refused(
        code,
        &log,
        &["LISTEN_PID", "LISTEN_FDS=1"],
        &dir,
        &recording,
    );
}

#[test]
fn a_socket_for_another_pid_is_refused() {
    let dir = TestDir::new();
    let recording = Recording::new();
    let config = configuration(&dir, &recording);
    let log = dir.join("log");
    let fd = listening(&dir.join("act.sock"));
    let child = serve_with_fd3(&config, fd, ListenPid::Other("1"), &log);
    let (code, log) = exit_code(child, &log);
    assert_refused(
        code,
        &log,
        &["LISTEN_PID=1", "not this process"],
        &dir,
        &recording,
    );
}

#[test]
fn a_regular_file_passed_in_is_refused_naming_it() {
    let dir = TestDir::new();
    let recording = Recording::new();
    let config = configuration(&dir, &recording);
    let log = dir.join("log");
    let file = std::fs::File::open(&config).expect("opening a file");
    let child = serve_with_fd3(&config, OwnedFd::from(file), ListenPid::Ours, &log);
    let (code, log) = exit_code(child, &log);
    let named = config.display().to_string();
    assert_refused(
        code,
        &log,
        &["descriptor 3 is a regular file", &named],
        &dir,
        &recording,
    );
}

#[test]
fn a_socket_that_is_not_listening_is_refused() {
    let dir = TestDir::new();
    let recording = Recording::new();
    let config = configuration(&dir, &recording);
    let log = dir.join("log");
    // One end of a connection: a Unix stream socket, but no listener.
    let (connection, _peer) = UnixStream::pair().expect("socketpair");
    let child = serve_with_fd3(&config, OwnedFd::from(connection), ListenPid::Ours, &log);
    let (code, log) = exit_code(child, &log);
    assert_refused(
        code,
        &log,
        &["not listening", "SO_ACCEPTCONN"],
        &dir,
        &recording,
    );
}

#[test]
fn a_datagram_socket_is_refused_naming_it() {
    let dir = TestDir::new();
    let recording = Recording::new();
    let config = configuration(&dir, &recording);
    let log = dir.join("log");
    let datagram = UnixDatagram::bind(dir.join("dgram.sock")).expect("datagram socket");
    let child = serve_with_fd3(&config, OwnedFd::from(datagram), ListenPid::Ours, &log);
    let (code, log) = exit_code(child, &log);
    assert_refused(
        code,
        &log,
        &[
            "a Unix datagram socket",
            "not a listening Unix stream socket",
        ],
        &dir,
        &recording,
    );
}

#[test]
fn a_socket_in_a_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new();
    let recording = Recording::new();
    let config = configuration(&dir, &recording);
    let log = dir.join("log");
    // Anyone could rename the socket aside and answer in hookvisor's place.
    let open = dir.join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let fd = listening(&open.join("act.sock"));
    let (code, log) = exit_code(serve_with_fd3(&config, fd, ListenPid::Ours, &log), &log);
    let named = open.display().to_string();
    assert_refused(
        code,
        &log,
        &[&named, "writable by group or others"],
        &dir,
        &recording,
    );
}

/// The same passing, done right, is served: the refusals above are hookvisor's, not the
/// shell's.
#[tokio::test]
async fn a_socket_passed_in_properly_is_served() {
    use hookvisor_proto::v1::Outcome;
    use hookvisor_proto::v1::hooks_client::HooksClient;
    use hookvisor_tests::harness::{connect, tool_call};

    let dir = TestDir::new();
    let recording = Recording::new();
    let config = configuration(&dir, &recording);
    let log = dir.join("log");
    let socket = dir.join("act.sock");
    let mut child = serve_with_fd3(&config, listening(&socket), ListenPid::Ours, &log);
    let verdict = tokio::time::timeout(Duration::from_secs(30), async {
        let channel = connect(&socket).await.expect("connect");
        HooksClient::new(channel)
            .before_tool_call(tool_call("exec", serde_json::json!({"command": "ls"})))
            .await
    })
    .await;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
    let exited = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let verdict = verdict
        .expect("a verdict within 30 s")
        .unwrap_or_else(|e| panic!("{e}\n{log}"))
        .into_inner();
    assert_eq!(verdict.outcome(), Outcome::Allow, "{log}");
    assert_eq!(recording.calls_of("watcher").len(), 1, "{log}");
    assert!(
        !dir.join("configured.sock").exists(),
        "the configured path was bound"
    );
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}\n{log}");
}
