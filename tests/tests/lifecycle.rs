//! The command line (`serve`, `check-config`, `--socket`, exit 64), shutdown on SIGTERM
//! (drain, socket removed, plugins stopped, §2.5 and §6) and plugins dying with the supervisor.

use std::time::Duration;

use hookvisor_proto::v1::Outcome;
use hookvisor_tests::harness::{
    PluginToml, Recording, Supervisor, TestDir, plugins, process_gone, run_hookvisor, toml_string,
    tool_call, wait_gone,
};
use nix::sys::signal::Signal;
use serde_json::json;
use tonic::Code;

fn recorded_pids(recording: &Recording, expected: usize) -> Vec<i32> {
    let pids: Vec<i32> = recording
        .starts()
        .iter()
        .map(|s| s["pid"].as_i64().expect("pid") as i32)
        .collect();
    assert_eq!(pids.len(), expected, "{:?}", recording.starts());
    pids
}

#[tokio::test]
async fn sigterm_stops_plugins_removes_the_socket_and_exits_0() {
    let recording = Recording::new();
    let mut supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("one", "fixture-recorder")
            .env("FIXTURE_NO_WATCHDOG", "1")
            .record(&recording),
        PluginToml::new("two", "fixture-recorder")
            .env("FIXTURE_NO_WATCHDOG", "1")
            .record(&recording),
    ]))
    .await;
    let pids = recorded_pids(&recording, 2);
    assert!(pids.iter().all(|&pid| !process_gone(pid)));
    let socket = supervisor.socket().to_path_buf();
    let status = supervisor.stop().await;
    assert_eq!(status.code(), Some(0), "{}", supervisor.log());
    assert!(!socket.exists(), "{} is still there", socket.display());
    for pid in pids {
        assert!(
            wait_gone(pid, Duration::from_millis(500)).await,
            "plugin {pid} outlived the supervisor"
        );
    }
}

#[tokio::test]
async fn plugins_die_with_a_killed_supervisor() {
    let recording = Recording::new();
    let mut supervisor =
        Supervisor::start(&plugins(&[PluginToml::new("orphan", "fixture-recorder")
            .env("FIXTURE_NO_WATCHDOG", "1")
            .record(&recording)]))
        .await;
    let pids = recorded_pids(&recording, 1);
    supervisor.signal(Signal::SIGKILL);
    supervisor.wait_exit(Duration::from_secs(5)).await;
    let gone = wait_gone(pids[0], Duration::from_secs(3)).await;
    if !gone {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pids[0]), Signal::SIGKILL);
    }
    assert!(gone, "plugin {} outlived a SIGKILLed supervisor", pids[0]);
}

#[tokio::test]
async fn shutdown_drains_calls_in_flight_and_refuses_new_ones() {
    let recording = Recording::new();
    let mut supervisor =
        Supervisor::start(&plugins(&[PluginToml::new("slowpoke", "fixture-slow")
            .env("FIXTURE_TOOLS", "exec")
            .env("FIXTURE_DELAY_MS", "1500")
            .action("block:answered while draining")
            .record(&recording)]))
        .await;
    let mut in_flight_client = supervisor.client().await;
    let mut probe = supervisor.client().await;
    let in_flight = tokio::spawn(async move {
        in_flight_client
            .before_tool_call(tool_call("exec", json!({})))
            .await
    });
    assert_eq!(recording.wait_calls("slowpoke", 1).await.len(), 1);
    supervisor.signal(Signal::SIGTERM);
    // "read" is not the slow plugin's tool: before the drain it is allowed at once.
    let mut refused = None;
    for _ in 0..50 {
        match probe.before_tool_call(tool_call("read", json!({}))).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("new calls must be refused while draining");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let verdict = in_flight
        .await
        .unwrap()
        .expect("the call in flight finishes with its verdict")
        .into_inner();
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.block_reason, "answered while draining");
    let status = supervisor.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn socket_flag_overrides_the_configured_socket() {
    let supervisor = Supervisor::builder(&plugins(&[PluginToml::new("quiet", "fixture-recorder")]))
        .socket_flag()
        .start()
        .await;
    assert!(supervisor.socket().ends_with("flag.sock"));
    assert!(!supervisor.dir().join("host.sock").exists());
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
}

#[tokio::test]
async fn a_relative_config_path_runs_plugins_in_the_config_directory() {
    let recording = Recording::new();
    let supervisor = Supervisor::builder(&plugins(&[
        PluginToml::new("here", "fixture-recorder").record(&recording)
    ]))
    .relative_config()
    .start()
    .await;
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    let start = &recording.starts()[0];
    let cwd = std::path::PathBuf::from(start["cwd"].as_str().expect("cwd"));
    assert_eq!(
        cwd.canonicalize().expect("cwd exists"),
        supervisor.dir().canonicalize().expect("test dir exists")
    );
}

#[tokio::test]
async fn a_second_supervisor_on_the_same_runtime_dir_refuses_to_start() {
    let recording = Recording::new();
    let first = Supervisor::start(&plugins(&[
        PluginToml::new("one", "fixture-recorder").record(&recording)
    ]))
    .await;
    let dir = TestDir::new();
    let path = dir.join("hookvisor.toml");
    let second_plugin = PluginToml::new("one", "fixture-recorder").record(&recording);
    std::fs::write(
        &path,
        format!(
            "[supervisor]\nsocket = {}\nruntime_dir = {}\n{}",
            toml_string(&dir.join("h.sock").display().to_string()),
            toml_string(&first.runtime_dir().display().to_string()),
            plugins(&[second_plugin]),
        ),
    )
    .unwrap();
    let (status, stdout, stderr) =
        run_hookvisor(&["serve", "--config", &path.display().to_string()]);
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("another hookvisor is using the runtime directory"),
        "{stderr}"
    );
    // It stopped before starting any plugin, and the first one still answers.
    assert_eq!(recording.starts().len(), 1, "{:?}", recording.starts());
    let verdict = first.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
}

fn socket_mode(supervisor: &Supervisor) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(supervisor.socket()).expect("host socket");
    meta.permissions().mode() & 0o777
}

#[tokio::test]
async fn the_host_socket_is_0600_by_default() {
    let supervisor = Supervisor::start("").await;
    assert_eq!(socket_mode(&supervisor), 0o600);
}

#[tokio::test]
async fn socket_mode_sets_the_host_socket_permissions() {
    let supervisor = Supervisor::builder("")
        .supervisor_key("socket_mode = \"0660\"")
        .start()
        .await;
    assert_eq!(socket_mode(&supervisor), 0o660);
    // No plugin configured: nothing can object, so the call is allowed.
    let verdict = supervisor.verdict("exec", json!({"a": 1})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
    assert!(verdict.trace.is_empty());
}

fn write_config(dir: &TestDir, body: &str) -> String {
    let path = dir.join("hookvisor.toml");
    let text = format!(
        "[supervisor]\nsocket = {}\nruntime_dir = {}\n{body}",
        toml_string(&dir.join("h.sock").display().to_string()),
        toml_string(&dir.join("run").display().to_string()),
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = TestDir::new();
    let config = write_config(
        &dir,
        &format!(
            "[hooks.before_tool_call]\ntimeout_ms = 2000\nrevalidate = true\n{}",
            plugins(&[
                PluginToml::new("guard", "fixture-recorder")
                    .policy()
                    .priority(100)
                    .timeout_ms(200)
                    .key("args = []")
                    .key("inherit_env = [\"PATH\"]"),
                PluginToml::new("hook", "fixture-recorder").key("on_failure = \"skip\""),
            ])
        ),
    );
    let (status, stdout, stderr) = run_hookvisor(&["check-config", "--config", &config]);
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "ok");
    assert!(!dir.join("h.sock").exists(), "check-config must not serve");
}

#[test]
fn check_config_names_an_unknown_key_and_its_line() {
    let dir = TestDir::new();
    // Line 1 [supervisor], 2 socket, 3 runtime_dir, 4 blank, 5 [[plugin]], 6 name, 7 command,
    // 8 the typo.
    let config = write_config(
        &dir,
        &format!(
            "\n[[plugin]]\nname = \"typo\"\ncommand = {}\ntrusetd = true\n",
            toml_string(
                &hookvisor_tests::harness::fixture("fixture-recorder")
                    .display()
                    .to_string()
            )
        ),
    );
    let (status, stdout, stderr) = run_hookvisor(&["check-config", "--config", &config]);
    assert_eq!(status.code(), Some(64), "{stdout}{stderr}");
    let text = format!("{stdout}{stderr}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {text}");
    assert!(
        lines[0].starts_with(&format!("{config}:8:")),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("trusetd"), "{}", lines[0]);
}

#[test]
fn serve_with_a_bad_config_exits_64_without_serving() {
    let dir = TestDir::new();
    let config = write_config(
        &dir,
        "\n[[plugin]]\nname = \"Bad Name!\"\ncommand = \"/bin/true\"\n",
    );
    let (status, stdout, stderr) = run_hookvisor(&["serve", "--config", &config]);
    assert_eq!(status.code(), Some(64), "{stdout}{stderr}");
    let text = format!("{stdout}{stderr}");
    assert!(text.contains(&config), "{text}");
    assert!(text.contains("name"), "{text}");
    assert!(!dir.join("h.sock").exists());
}

#[test]
fn check_config_refuses_duplicate_plugin_names() {
    let dir = TestDir::new();
    let config = write_config(
        &dir,
        &plugins(&[
            PluginToml::new("twin", "fixture-recorder"),
            PluginToml::new("twin", "fixture-recorder"),
        ]),
    );
    let (status, stdout, stderr) = run_hookvisor(&["check-config", "--config", &config]);
    assert_eq!(status.code(), Some(64), "{stdout}{stderr}");
    assert!(format!("{stdout}{stderr}").contains("twin"));
}

/// Issue 7, item 3 (a clean stop): a descendant that left the plugin's process group and
/// session with `setsid` is out of `killpg`'s reach; stopping the supervisor stops it too.
#[tokio::test]
async fn a_clean_stop_leaves_no_setsid_descendant() {
    let recording = Recording::new();
    let mut supervisor = Supervisor::start(&plugins(&[PluginToml::new(
        "daemonizer",
        "fixture-setsid-child",
    )
    .record(&recording)]))
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let escaped = loop {
        let text = std::fs::read_to_string(recording.path()).unwrap_or_default();
        let pid = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v["escaped"].as_i64());
        if let Some(pid) = pid {
            break pid as i32;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(supervisor.stop().await.success(), "{}", supervisor.log());
    let gone = wait_gone(escaped, Duration::from_secs(5)).await;
    if !gone {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(escaped), Signal::SIGKILL);
    }
    assert!(gone, "the setsid descendant outlived the stop");
}

/// The pids a recording holds: every process that recorded its start, and every `setsid`
/// descendant (`{"escaped": PID}`), once there are `starts` and `escaped` of them (5 s at most).
async fn pids_in(recording: &Recording, starts: usize, escaped: usize) -> Vec<i32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(recording.path()).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let started: Vec<i32> = lines
            .iter()
            .filter_map(|l| l.get("pid")?.as_i64())
            .map(|p| p as i32)
            .collect();
        let left: Vec<i32> = lines
            .iter()
            .filter_map(|l| l.get("escaped")?.as_i64())
            .map(|p| p as i32)
            .collect();
        if started.len() >= starts && left.len() >= escaped {
            return started.into_iter().chain(left).collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {starts} starts and {escaped} escaped descendants: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits up to `limit` for every pid to be gone, then kills the survivors (so a failing test
/// leaves nothing behind) and returns them.
async fn survivors(pids: &[i32], limit: Duration) -> Vec<i32> {
    let mut alive = Vec::new();
    for pid in pids {
        if !wait_gone(*pid, limit).await {
            alive.push(*pid);
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
    alive
}

/// A plugin that serves from a grandchild: `sh -c 'SERVER & wait'`, as a shell script that
/// starts the real server in the background would.
fn shell_launched(name: &str, recording: &Recording) -> PluginToml {
    let server = hookvisor_tests::harness::fixture("fixture-recorder");
    let script = format!("'{}' & wait", server.display());
    PluginToml::new(name, "fixture-recorder")
        .command("/bin/sh")
        .key(&format!("args = [\"-c\", {}]", toml_string(&script)))
        .env("FIXTURE_NO_WATCHDOG", "1")
        // The script names the server, which the sandbox would not otherwise let it run.
        .sandbox(&format!(
            "read = [{}]",
            toml_string(&server.display().to_string())
        ))
        .record(recording)
}

/// Issue 7, item 3: after `kill -9` of the supervisor no plugin process survives: not a
/// launcher's grandchild (`fixture-launcher`, as `npx tsx` or `go run`), not a shell script's
/// background server, not a descendant that left the session with `setsid`. Every fixture
/// here has its parent watchdog off, so only the supervisor's reapers can end them.
#[tokio::test]
async fn a_killed_supervisor_leaves_no_plugin_process_at_all() {
    let recording = Recording::new();
    let mut supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("launched", "fixture-launcher")
            .env("FIXTURE_NO_WATCHDOG", "1")
            .record(&recording),
        shell_launched("scripted", &recording),
        PluginToml::new("daemonizer", "fixture-setsid-child")
            .env("FIXTURE_NO_WATCHDOG", "1")
            .record(&recording),
    ]))
    .await;
    let pids = pids_in(&recording, 3, 1).await;
    for pid in &pids {
        assert!(!process_gone(*pid), "{pid} is not running before the kill");
    }
    supervisor.signal(Signal::SIGKILL);
    supervisor.wait_exit(Duration::from_secs(5)).await;
    let alive = survivors(&pids, Duration::from_secs(5)).await;
    assert!(
        alive.is_empty(),
        "outlived a SIGKILLed supervisor: {alive:?} of {pids:?}\n{}",
        supervisor.log()
    );
}

/// A plugin that kills its own reaper (it runs under the same uid, so it can) leaves orphans;
/// they come to the supervisor, a child subreaper, which kills and reaps them: the `setsid`
/// descendant is not left running, nor as a zombie. The plugin itself dies with its reaper
/// (its parent-death signal) and is restarted.
#[tokio::test]
async fn orphans_of_a_killed_reaper_are_killed_and_reaped_by_the_supervisor() {
    let recording = Recording::new();
    let mut supervisor = Supervisor::start(&plugins(&[PluginToml::new(
        "daemonizer",
        "fixture-setsid-child",
    )
    .env("FIXTURE_NO_WATCHDOG", "1")
    .record(&recording)]))
    .await;
    let pids = pids_in(&recording, 1, 1).await;
    let (plugin, escaped) = (pids[0], pids[1]);
    let reaper = parent_of(plugin);
    assert_ne!(reaper, supervisor.pid(), "the plugin runs behind a reaper");
    assert_eq!(parent_of(reaper), supervisor.pid());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(reaper), Signal::SIGKILL).unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let reaped = |pid: i32| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH)
    };
    while !(reaped(plugin) && reaped(escaped)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alive = survivors(&[plugin, escaped], Duration::ZERO).await;
    assert!(alive.is_empty(), "still running: {alive:?}");
    assert!(
        reaped(escaped),
        "the orphan was killed but never reaped (a zombie)"
    );
    assert!(
        supervisor.log_contains("orphaned plugin descendant").await,
        "{}",
        supervisor.log()
    );
    // The plugin comes back: a new start line.
    pids_in(&recording, 2, 2).await;
    assert!(supervisor.stop().await.success(), "{}", supervisor.log());
}

/// The parent pid of `pid`, from `/proc/PID/stat`.
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `worker_threads` sizes the supervisor's runtime: four workers are four threads (the default,
/// one thread, is what every other test runs on).
#[tokio::test]
async fn worker_threads_sets_the_runtime() {
    let supervisor = Supervisor::builder(&plugins(&[PluginToml::new("p", "fixture-recorder")]))
        .supervisor_key("worker_threads = 4")
        .start()
        .await;
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
    let workers = std::fs::read_dir(format!("/proc/{}/task", supervisor.pid()))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("tokio-rt-worker"))
        .count();
    assert!(workers >= 4, "{workers} runtime threads");
}

/// A plugin can stop its own reaper (same uid). The supervisor's stop still ends: it kills the
/// plugin's group, gives the reaper 2 s, then kills the reaper and sweeps its orphans; no
/// plugin process is left.
#[tokio::test]
async fn a_stopped_reaper_does_not_hold_up_the_shutdown() {
    let recording = Recording::new();
    let mut supervisor = Supervisor::start(&plugins(&[PluginToml::new(
        "daemonizer",
        "fixture-setsid-child",
    )
    .env("FIXTURE_NO_WATCHDOG", "1")
    .record(&recording)]))
    .await;
    let pids = pids_in(&recording, 1, 1).await;
    let reaper = parent_of(pids[0]);
    assert_eq!(parent_of(reaper), supervisor.pid());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(reaper), Signal::SIGSTOP).unwrap();
    supervisor.signal(Signal::SIGTERM);
    let status = supervisor.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{}", supervisor.log());
    let alive = survivors(&pids, Duration::from_secs(3)).await;
    assert!(
        alive.is_empty(),
        "still running: {alive:?}\n{}",
        supervisor.log()
    );
    assert!(
        supervisor.log_contains("its reaper did not exit").await,
        "{}",
        supervisor.log()
    );
}

/// The reaper blocks the signals it waits for; the plugin must not inherit that mask, or it
/// would never see SIGTERM and every stop would end in SIGKILL after the grace period.
#[tokio::test]
async fn a_plugin_starts_with_no_signal_blocked_and_stops_on_sigterm() {
    let recording = Recording::new();
    let mut supervisor = Supervisor::start(&plugins(&[PluginToml::new("p", "fixture-recorder")
        .env("FIXTURE_NO_WATCHDOG", "1")
        .record(&recording)]))
    .await;
    let pid = recorded_pids(&recording, 1)[0];
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let blocked = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .map(str::trim)
        .unwrap();
    assert_eq!(
        u64::from_str_radix(blocked, 16).unwrap(),
        0,
        "signals blocked in plugin {pid}: {blocked}"
    );
    assert!(supervisor.stop().await.success(), "{}", supervisor.log());
    assert!(
        !supervisor.log_contains("sending SIGKILL").await,
        "the plugin did not stop on SIGTERM: {}",
        supervisor.log()
    );
}
