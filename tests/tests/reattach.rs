//! Reattaching to running plugins after the supervisor is SIGKILLed (issue 22 §3,
//! `[supervisor] keep_plugins_on_crash = true`): a new supervisor started within the grace period
//! takes the same plugin processes (their in-memory state with them); with none, they end when
//! the grace period passes; a claim from another uid is refused.
//!
//! The default mode (no plugin outlives a SIGKILLed supervisor) is tested in lifecycle.rs:
//! `plugins_die_with_a_killed_supervisor` and `a_killed_supervisor_leaves_no_plugin_process_at_all`;
//! `the_default_mode_leaves_no_claim_socket` here checks that it makes no claim socket either.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hookvisor_proto::v1::admin_client::AdminClient;
use hookvisor_proto::v1::{ListPluginsRequest, Outcome, PluginStatus};
use hookvisor_tests::harness::{
    PluginToml, START_DEADLINE, Supervisor, connect, hookvisor, plugins, tool_call,
};
use hookvisor_tests::languages::python_plugin;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

/// The configuration: a trusted policy that blocks `forbidden`, and the Python SDK's
/// budget guard (three calls a session), whose count lives in the process's memory.
fn body() -> String {
    plugins(&[
        PluginToml::new("policy", "fixture-recorder")
            .policy()
            .action("block-tool:forbidden"),
        python_plugin("examples/python/budget_guard.py", &[])
            .plugin("budget")
            .env("BUDGET_MAX_CALLS", "3"),
    ])
}

/// A supervisor keeping its plugins for `grace_ms` after a crash.
async fn keeping(body: &str, grace_ms: u32) -> Supervisor {
    Supervisor::builder(body)
        .supervisor_key("keep_plugins_on_crash = true")
        .supervisor_key(&format!("keep_plugins_grace_ms = {grace_ms}"))
        .start()
        .await
}

/// Every plugin's status, from `Admin/ListPlugins`, or `None` when the socket does not answer.
async fn statuses(socket: &Path) -> Option<BTreeMap<String, PluginStatus>> {
    let channel = connect(socket).await.ok()?;
    let plugins = AdminClient::new(channel)
        .list_plugins(ListPluginsRequest {})
        .await
        .ok()?
        .into_inner()
        .plugins;
    Some(plugins.into_iter().map(|p| (p.name.clone(), p)).collect())
}

/// Waits until every plugin is ready; returns their pids.
async fn ready_pids(socket: &Path, log: impl Fn() -> String) -> BTreeMap<String, i32> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Some(all) = statuses(socket).await
            && !all.is_empty()
            && all.values().all(|p| p.state == "ready" && p.pid > 0)
        {
            return all.into_iter().map(|(name, p)| (name, p.pid)).collect();
        }
        assert!(Instant::now() < deadline, "not all ready:\n{}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn verdict(socket: &Path, tool: &str, session: &str) -> Outcome {
    let mut request = tool_call(tool, json!({}));
    if let Some(context) = request.context.as_mut() {
        context.session_key = session.to_owned();
    }
    let channel = connect(socket).await.expect("connecting");
    hookvisor_proto::v1::hooks_client::HooksClient::new(channel)
        .before_tool_call(request)
        .await
        .unwrap_or_else(|status| panic!("{tool}: {status:?}"))
        .get_ref()
        .outcome()
}

fn alive(pid: i32) -> bool {
    // A zombie is gone for this purpose: it runs nothing.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()? != "Z"))
        .unwrap_or(false)
}

fn parent_of(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn claim_sockets(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "sock"))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `dir` holds `count` claim sockets.
async fn wait_claim_sockets(dir: &Path, count: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = claim_sockets(dir);
        if found.len() == count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} claim sockets in {}, expected {count}",
            found.len(),
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until none of `pids` runs, for at most `limit`; returns those still running.
async fn survivors(pids: &[i32], limit: Duration) -> Vec<i32> {
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A second `hookvisor serve` on the first one's configuration; stopped with SIGTERM on drop.
struct Next {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Next {
    async fn start(first: &Supervisor) -> Next {
        let log = first.dir().join("next.log");
        let out = std::fs::File::create(&log).expect("next.log");
        let child = tokio::process::Command::new(hookvisor())
            .arg("serve")
            .arg("--config")
            .arg(first.config())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("next.log"))
            .stderr(out)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the next hookvisor serve");
        Next { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let waited = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        assert!(
            waited.is_ok(),
            "the next supervisor did not stop\n{}",
            self.log()
        );
    }
}

#[tokio::test]
async fn a_new_supervisor_reattaches_to_the_plugins_a_killed_one_left() {
    let mut first = keeping(&body(), 30_000).await;
    let socket = first.socket().to_path_buf();
    let pids = ready_pids(&socket, || first.log()).await;
    assert_eq!(pids.len(), 2, "{pids:?}");
    // Two of the session's three calls, counted in the Python plugin's memory.
    for _ in 0..2 {
        assert_eq!(verdict(&socket, "exec", "s1").await, Outcome::Allow);
    }
    let reapers: Vec<i32> = pids.values().map(|p| parent_of(*p)).collect();

    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).await;
    let dir = first.runtime_dir().join(".reattach");
    wait_claim_sockets(&dir, 2).await;
    let all: Vec<i32> = pids.values().copied().collect();
    assert!(
        all.iter().all(|p| alive(*p)),
        "a plugin died with the supervisor"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir)
        .expect("claim dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "claim directory mode {mode:o}");

    let next = Next::start(&first).await;
    let again = ready_pids(&socket, || next.log()).await;
    assert_eq!(again, pids, "not the same processes\n{}", next.log());
    assert!(next.log().contains("reattached"), "{}", next.log());
    for (reaper, pid) in reapers.iter().zip(pids.values()) {
        assert_eq!(parent_of(*pid), *reaper, "the plugin's reaper changed");
    }
    // The claims were taken: no socket waits any more.
    assert!(claim_sockets(&dir).is_empty(), "{:?}", claim_sockets(&dir));
    // The policy still blocks, and the budget goes on from where it was: the third call is
    // allowed, the fourth blocked.
    assert_eq!(verdict(&socket, "forbidden", "s2").await, Outcome::Block);
    assert_eq!(verdict(&socket, "exec", "s1").await, Outcome::Allow);
    assert_eq!(verdict(&socket, "exec", "s1").await, Outcome::Block);

    // A later exit is still reported (on the claim connection) and the plugin restarted.
    let policy = pids["policy"];
    kill(Pid::from_raw(policy), Signal::SIGKILL).expect("kill -9 the plugin");
    let deadline = Instant::now() + START_DEADLINE;
    let restarted = loop {
        let status = statuses(&socket).await.and_then(|mut s| s.remove("policy"));
        if let Some(status) = status
            && status.state == "ready"
            && status.pid > 0
            && status.pid != policy
        {
            break status;
        }
        assert!(Instant::now() < deadline, "not restarted:\n{}", next.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(restarted.restarts >= 1, "{restarted:?}");
    assert!(
        restarted.last_error.contains("signal: 9"),
        "the exit status was not reported: {restarted:?}\n{}",
        next.log()
    );
    assert_eq!(verdict(&socket, "forbidden", "s3").await, Outcome::Block);

    // An orderly stop of the new supervisor stops what it reattached.
    let budget = pids["budget"];
    next.stop().await;
    let left = survivors(&[budget, restarted.pid], Duration::from_secs(5)).await;
    assert!(left.is_empty(), "left running after a stop: {left:?}");
}

#[tokio::test]
async fn unclaimed_plugins_end_when_the_grace_period_passes() {
    let mut first = keeping(
        &plugins(&[
            PluginToml::new("one", "fixture-recorder").env("FIXTURE_NO_WATCHDOG", "1"),
            PluginToml::new("two", "fixture-recorder").env("FIXTURE_NO_WATCHDOG", "1"),
        ]),
        1000,
    )
    .await;
    let pids = ready_pids(first.socket(), || first.log()).await;
    let mut all: Vec<i32> = pids.values().copied().collect();
    all.extend(pids.values().map(|p| parent_of(*p)));
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).await;
    let killed = Instant::now();
    let dir = first.runtime_dir().join(".reattach");
    wait_claim_sockets(&dir, 2).await;
    let left = survivors(&all, Duration::from_secs(10)).await;
    assert!(
        left.is_empty(),
        "plugins or reapers outlived the grace period: {left:?} of {all:?}"
    );
    assert!(
        killed.elapsed() >= Duration::from_millis(900),
        "ended before the grace period passed"
    );
    assert!(claim_sockets(&dir).is_empty(), "{:?}", claim_sockets(&dir));
}

#[tokio::test]
async fn the_default_mode_leaves_no_claim_socket() {
    let mut first = Supervisor::start(&plugins(&[
        PluginToml::new("one", "fixture-recorder").env("FIXTURE_NO_WATCHDOG", "1")
    ]))
    .await;
    let pids = ready_pids(first.socket(), || first.log()).await;
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).await;
    let all: Vec<i32> = pids.values().copied().collect();
    let left = survivors(&all, Duration::from_secs(5)).await;
    assert!(left.is_empty(), "outlived a SIGKILLed supervisor: {left:?}");
    assert!(!first.runtime_dir().join(".reattach").exists());
}

/// A uid nobody has: no passwd entry, and not the test's own.
fn unused_uid() -> u32 {
    (60_000..65_000)
        .find(|uid| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(*uid))
                .ok()
                .flatten()
                .is_none()
        })
        .expect("an unused uid")
}

/// Connects to `socket` as `uid` and reads what comes: `connect: ERROR`, or the number of
/// bytes read before the connection closed (`read N`).
fn connect_as(uid: u32, socket: &Path) -> String {
    use std::os::unix::process::CommandExt;
    let script = "import socket, sys\n\
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
        s.settimeout(5)\n\
        try:\n    s.connect(sys.argv[1])\n\
        except OSError as e:\n    print('connect:', e.__class__.__name__); sys.exit(0)\n\
        n = 0\n\
        while True:\n    b = s.recv(4096)\n    n += len(b)\n    if not b: break\n\
        print('read', n)\n";
    let output = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(socket)
        .uid(uid)
        .gid(uid)
        .output()
        .expect("running python3 as another uid");
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

#[tokio::test]
async fn a_claim_from_another_uid_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: a_claim_from_another_uid_is_refused needs root to switch uids");
        return;
    }
    let mut first = keeping(
        &plugins(&[PluginToml::new("one", "fixture-recorder").env("FIXTURE_NO_WATCHDOG", "1")]),
        30_000,
    )
    .await;
    let pids = ready_pids(first.socket(), || first.log()).await;
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).await;
    let dir = first.runtime_dir().join(".reattach");
    let sockets = wait_claim_sockets(&dir, 1).await;
    let uid = unused_uid();

    // The directory keeps every other uid out.
    let answer = connect_as(uid, &sockets[0]);
    assert_eq!(answer, "connect: PermissionError", "{answer}");

    // Opened up by hand (as an administrator's mistake would), the reaper itself refuses the
    // other uid: the connection closes with nothing said.
    let open = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    open(&dir, 0o711);
    open(&sockets[0], 0o666);
    let answer = connect_as(uid, &sockets[0]);
    open(&dir, 0o700);
    open(&sockets[0], 0o600);
    assert_eq!(answer, "read 0", "another uid got the hello: {answer}");

    // Still waiting for its own supervisor: a new one reattaches it.
    let next = Next::start(&first).await;
    let again = ready_pids(first.socket(), || next.log()).await;
    assert_eq!(again, pids, "{}", next.log());
    next.stop().await;
}

/// A supervisor that reattached and then upgrades in place keeps the plugins: their claims end
/// with the old image, and the new one claims them again, with their records.
#[tokio::test]
async fn reattached_plugins_are_kept_across_an_upgrade() {
    let mut first = keeping(
        &plugins(&[PluginToml::new("one", "fixture-recorder").env("FIXTURE_NO_WATCHDOG", "1")]),
        30_000,
    )
    .await;
    let socket = first.socket().to_path_buf();
    let pids = ready_pids(&socket, || first.log()).await;
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).await;
    wait_claim_sockets(&first.runtime_dir().join(".reattach"), 1).await;
    let next = Next::start(&first).await;
    assert_eq!(ready_pids(&socket, || next.log()).await, pids);
    for round in 1..=2 {
        let output = tokio::process::Command::new(hookvisor())
            .arg("upgrade")
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("running hookvisor upgrade");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 of 1 plugins kept their process"),
            "upgrade {round}: {stdout}{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            next.log()
        );
        assert_eq!(ready_pids(&socket, || next.log()).await, pids);
    }
    assert!(
        !next.log().contains("not taken over"),
        "a stale hand-over was tried: {}",
        next.log()
    );
    next.stop().await;
    let all: Vec<i32> = pids.values().copied().collect();
    let left = survivors(&all, Duration::from_secs(5)).await;
    assert!(left.is_empty(), "left running after a stop: {left:?}");
}

#[test]
fn check_config_bounds_the_grace_period() {
    let dir = hookvisor_tests::harness::TestDir::new();
    let check = |grace: &str| {
        let config = dir.join("hookvisor.toml");
        std::fs::write(
            &config,
            format!(
                "[supervisor]\nkeep_plugins_on_crash = true\nkeep_plugins_grace_ms = {grace}\n"
            ),
        )
        .expect("writing hookvisor.toml");
        let path = config.display().to_string();
        let (status, stdout, stderr) =
            hookvisor_tests::harness::run_hookvisor(&["check-config", "--config", &path]);
        (status.code(), format!("{stdout}{stderr}"))
    };
    let (code, text) = check("999");
    assert_eq!(code, Some(64), "{text}");
    assert!(
        text.contains(":3:")
            && text.contains("keep_plugins_grace_ms")
            && text.contains("1000..=600000"),
        "{text}"
    );
    let (code, text) = check("600000");
    assert_eq!(code, Some(0), "{text}");
}
