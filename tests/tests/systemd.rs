//! systemd notifications on a real `NOTIFY_SOCKET` datagram socket: `READY=1` with a status line
//! once every plugin is ready or has failed, `WATCHDOG=1` at half of `WATCHDOG_USEC`,
//! `RELOADING=1` then `READY=1` around a reload, and `STOPPING=1` at shutdown.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use hookvisor_tests::harness::{PluginToml, Supervisor, TestDir, plugins};

/// The datagrams received within `limit`, until one contains `needle`.
fn receive_until(socket: &UnixDatagram, needle: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = socket.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = text.contains(needle);
                received.push(text);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    received
}

#[tokio::test]
async fn ready_status_watchdog_and_stopping_reach_notify_socket() {
    let dir = TestDir::new();
    let path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&path).expect("binding NOTIFY_SOCKET");
    let mut supervisor = Supervisor::builder(&plugins(&[
        PluginToml::new("good", "fixture-recorder"),
        PluginToml::new("quitter", "fixture-exit-at-start"),
    ]))
    .env("NOTIFY_SOCKET", &path.display().to_string())
    .env("WATCHDOG_USEC", "200000")
    .start()
    .await;

    let received = receive_until(&notify, "READY=1", Duration::from_secs(10));
    let ready = received
        .iter()
        .find(|m| m.contains("READY=1"))
        .unwrap_or_else(|| panic!("no READY=1: {received:?}"));
    assert!(
        ready.contains("STATUS=1/2 plugins ready; not ready: quitter (failed to start)"),
        "{ready:?}"
    );

    let watchdog = receive_until(&notify, "WATCHDOG=1", Duration::from_secs(5));
    assert!(
        watchdog.iter().any(|m| m.contains("WATCHDOG=1")),
        "{watchdog:?}"
    );

    supervisor.signal(nix::sys::signal::Signal::SIGHUP);
    let reload = receive_until(&notify, "READY=1", Duration::from_secs(10));
    let reloading = reload
        .iter()
        .find(|m| m.contains("RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1: {reload:?}"));
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    assert!(reload.iter().any(|m| m.contains("READY=1")), "{reload:?}");

    supervisor.stop().await;
    let stopping = receive_until(&notify, "STOPPING=1", Duration::from_secs(5));
    assert!(
        stopping.iter().any(|m| m.contains("STOPPING=1")),
        "{stopping:?}"
    );
}

/// Socket activation: `systemd-socket-activate` (Debian's `systemd` package) binds the socket,
/// starts `hookvisor serve` on the first connection and passes the listening socket in
/// (`LISTEN_FDS`). hookvisor serves on it, never binds the configured path, and leaves the socket
/// to its owner at shutdown.
#[tokio::test]
async fn socket_activation_serves_on_the_socket_passed_in() {
    use hookvisor_proto::v1::Outcome;
    use hookvisor_proto::v1::hooks_client::HooksClient;
    use hookvisor_tests::harness::{Recording, connect, hookvisor, toml_string, tool_call};
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let dir = TestDir::new();
    let activated = dir.join("act.sock");
    let configured = dir.join("configured.sock");
    let recording = Recording::new();
    let config = dir.join("hookvisor.toml");
    let text = format!(
        "[supervisor]\nsocket = {}\nruntime_dir = {}\n{}{}",
        toml_string(&configured.display().to_string()),
        toml_string(&dir.join("run").display().to_string()),
        hookvisor_tests::harness::sandbox_keys(dir.path()),
        plugins(&[PluginToml::new("watcher", "fixture-recorder").record(&recording)])
    );
    std::fs::write(&config, text).expect("writing the configuration");
    let log = std::fs::File::create(dir.join("log")).expect("log file");
    let mut child = tokio::process::Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&activated)
        .arg(hookvisor())
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !activated.exists() {
        assert!(
            Instant::now() < deadline,
            "systemd-socket-activate never bound"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first connection starts hookvisor; the call waits in the backlog until it serves.
    let verdict = tokio::time::timeout(Duration::from_secs(30), async {
        let channel = connect(&activated).await.expect("connect");
        HooksClient::new(channel)
            .before_tool_call(tool_call("exec", serde_json::json!({"command": "ls"})))
            .await
    })
    .await
    .expect("a verdict within 30 s")
    .expect("BeforeToolCall")
    .into_inner();
    let log = || std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    assert_eq!(verdict.outcome(), Outcome::Allow, "{}", log());
    assert_eq!(recording.calls_of("watcher").len(), 1);
    assert!(!configured.exists(), "the configured path was bound");

    let pid = child.id().expect("pid") as i32;
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s after SIGTERM")
        .expect("wait");
    assert!(status.success(), "{status}\n{}", log());
}

/// The shipped units (`examples/systemd/`) pass `systemd-analyze verify`, with `/usr/bin/hookvisor`
/// replaced by the binary under test (verify checks that `ExecStart=` exists).
#[test]
fn the_shipped_units_pass_systemd_analyze_verify() {
    let dir = TestDir::new();
    let units = hookvisor_tests::harness::repo_root().join("examples/systemd");
    let binary = hookvisor_tests::harness::hookvisor();
    for unit in ["hookvisor.service", "hookvisor.socket"] {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        let text = text.replace("/usr/bin/hookvisor", &binary.display().to_string());
        std::fs::write(dir.join(unit), text).unwrap();
    }
    let output = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("hookvisor.socket"))
        .arg(dir.join("hookvisor.service"))
        .output()
        .expect("systemd-analyze (Debian's systemd package; `make test` installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("hookvisor."))
        .collect();
    assert!(
        ours.is_empty(),
        "warnings about the shipped units: {ours:?}"
    );
}

/// A notification socket nobody reads (its queue fills after a few watchdog pings) must not
/// stall the supervisor: notifications never block, the full queue is logged, calls still get
/// verdicts and SIGTERM still stops it.
#[tokio::test]
async fn a_notification_socket_nobody_reads_does_not_stall_the_supervisor() {
    let dir = TestDir::new();
    let path = dir.join("notify.sock");
    let _unread = UnixDatagram::bind(&path).expect("binding NOTIFY_SOCKET");
    let mut supervisor =
        Supervisor::builder(&plugins(&[PluginToml::new("good", "fixture-recorder")]))
            .env("NOTIFY_SOCKET", &path.display().to_string())
            .env("WATCHDOG_USEC", "20000")
            .start()
            .await;
    assert!(
        supervisor
            .log_contains("its notification socket is full")
            .await,
        "{}",
        supervisor.log()
    );
    for _ in 0..20 {
        let verdict = supervisor.verdict("exec", serde_json::json!({})).await;
        assert_eq!(verdict.outcome(), hookvisor_proto::v1::Outcome::Allow);
    }
    assert!(supervisor.stop().await.success(), "{}", supervisor.log());
}

/// Under systemd with stderr on the journal (`JOURNAL_STREAM` names stderr's device and inode),
/// every line carries the sd-daemon priority of its level (`<6>` info, `<4>` warning …) for the
/// journal to file it under, and no timestamp or colour of its own; plugin output too.
#[tokio::test]
async fn log_lines_for_the_journal_carry_their_priority() {
    let mut supervisor =
        Supervisor::builder(&plugins(&[PluginToml::new("chatty", "fixture-recorder")
            .env(
                "FIXTURE_SAY",
                r#"{"level":"error","msg":"json error line"}"#,
            )
            .env("FIXTURE_GRUMBLE", "plain stderr line")]))
        .journal_stream()
        .start()
        .await;
    assert!(supervisor.log_contains("plain stderr line").await);
    assert!(supervisor.log_contains("json error line").await);
    assert!(supervisor.stop().await.success());
    let raw = std::fs::read_to_string(supervisor.dir().join("stderr.log")).unwrap();
    let line = |needle: &str| {
        raw.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {raw}"))
            .to_owned()
    };
    assert!(line("json error line").starts_with("<3>"), "{raw}");
    assert!(line("plain stderr line").starts_with("<4>"), "{raw}");
    assert!(line("serving").starts_with("<6>"), "{raw}");
    for l in raw.lines() {
        assert!(l.starts_with('<'), "a line without its priority: {l:?}");
        assert!(!l.contains('\u{1b}'), "colour in the journal: {l:?}");
        let after = l.get(3..).unwrap_or_default().trim_start();
        assert!(!after.starts_with("20"), "a timestamp: {l:?}");
    }
}

/// Issue 17's descriptor leak: a socket unit passing two sockets (`LISTEN_FDS=2`). The
/// supervisor served the first; the second stayed open in it, and every plugin inherited it:
/// a hostile plugin served a fake `Hooks` on it and the host got ALLOW for `rm -rf /` with no
/// plugin in the trace. No descriptor past stderr reaches a plugin any more (`close_range`
/// before exec, `sandbox::a_plugin_inherits_no_descriptor_and_cannot_gain_privileges`), and
/// the supervisor now refuses to start with more than one socket passed in (exit 64, see
/// `activation.rs`): the hostile plugin never runs, and neither socket gets a verdict.
#[tokio::test]
async fn a_second_activation_socket_never_reaches_a_plugin() {
    use hookvisor_proto::v1::Outcome;
    use hookvisor_proto::v1::hooks_client::HooksClient;
    use hookvisor_tests::harness::{connect, hookvisor, toml_string, tool_call};

    let dir = TestDir::new();
    let first = dir.join("first.sock");
    let second = dir.join("second.sock");
    let config = dir.join("hookvisor.toml");
    let text = format!(
        "[supervisor]\nsocket = {}\nruntime_dir = {}\n{}{}",
        toml_string(&dir.join("configured.sock").display().to_string()),
        toml_string(&dir.join("run").display().to_string()),
        hookvisor_tests::harness::sandbox_keys(dir.path()),
        plugins(&[
            PluginToml::new("attacker", "fixture-escape").env("FIXTURE_SERVE_INHERITED", "1")
        ])
    );
    std::fs::write(&config, text).expect("writing the configuration");
    let log_path = dir.join("log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = tokio::process::Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&first)
        .arg("-l")
        .arg(&second)
        .arg(hookvisor())
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(first.exists() && second.exists()) {
        assert!(
            Instant::now() < deadline,
            "systemd-socket-activate never bound"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let call = |socket: std::path::PathBuf| async move {
        let channel = connect(&socket).await.map_err(|e| e.to_string())?;
        HooksClient::new(channel)
            .before_tool_call(tool_call(
                "exec",
                serde_json::json!({"command": "rm -rf /"}),
            ))
            .await
            .map(|v| v.into_inner())
            .map_err(|e| e.to_string())
    };
    // The first connection starts hookvisor, which refuses both sockets.
    let verdict = tokio::time::timeout(Duration::from_secs(30), call(first.clone())).await;
    assert!(
        matches!(&verdict, Ok(Err(_))),
        "the first socket answered: {verdict:?}\n{}",
        log()
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("hookvisor exits")
        .expect("wait");
    assert_eq!(status.code(), Some(64), "{}", log());
    assert!(log().contains("LISTEN_FDS=2"), "{}", log());
    // Nobody serves the second socket: no verdict at all, let alone a fake ALLOW.
    let fake = tokio::time::timeout(Duration::from_secs(2), call(second.clone())).await;
    assert!(
        !matches!(&fake, Ok(Ok(v)) if v.outcome() == Outcome::Allow),
        "the second socket answered: {fake:?}\n{}",
        log()
    );
    assert!(!log().contains("serving a fake Hooks"), "{}", log());
}
