//! Upgrades and restarts that refuse no call and restart no plugin (issue 22): `hookvisor
//! upgrade` re-executes the installed binary in place while a host calls without pause; a new
//! binary that fails its check is refused and the old one serves on; under socket activation a
//! restart queues calls in the listener's backlog instead of failing them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::admin_client::AdminClient;
use hookvisor_proto::v1::hooks_client::HooksClient;
use hookvisor_proto::v1::{ListPluginsRequest, Outcome};
use hookvisor_tests::harness::{
    PluginToml, START_DEADLINE, Supervisor, TestDir, binary, connect, fixture, hookvisor, plugins,
    sandbox_keys, toml_string, tool_call,
};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::json;
use tonic::transport::Channel;

/// How long a host waits for a verdict: generous, so the test measures the upgrade, not the
/// machine's load.
const HOST_DEADLINE: Duration = Duration::from_secs(10);
/// Concurrent callers of the host.
const CALLERS: usize = 8;

/// A trusted policy that blocks the tool `forbidden` only, and a hook that allows everything:
/// `exec` must be allowed and `forbidden` blocked, whatever happens to the supervisor.
fn body() -> String {
    plugins(&[
        PluginToml::new("policy", "fixture-recorder")
            .policy()
            .action("block-tool:forbidden"),
        PluginToml::new("hook", "fixture-recorder").action("allow"),
    ])
}

/// What the callers saw.
#[derive(Debug, Default)]
struct Tally {
    calls: AtomicU64,
    /// Errors and timeouts (the host got no verdict).
    failed: AtomicU64,
    /// `exec` not allowed: a block that would have been an allow.
    wrongly_blocked: AtomicU64,
    /// `forbidden` not blocked.
    wrongly_allowed: AtomicU64,
    /// Calls tonic's client cancelled before sending them, and sent again (see [`unsent`]).
    resent: AtomicU64,
    /// The longest wait for a verdict, in microseconds.
    longest_us: AtomicU64,
    first_errors: std::sync::Mutex<Vec<String>>,
}

/// `CALLERS` tasks calling `BeforeToolCall` on one connection (tonic reconnects it when the
/// supervisor sends GOAWAY), alternating `exec` and `forbidden`, at `rate` calls a second in
/// all (`None`: as fast as they can).
struct Traffic {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn start(channel: Channel, rate: Option<u64>) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let tasks = (0..CALLERS)
            .map(|n| {
                let (stop, tally) = (stop.clone(), tally.clone());
                let mut client = HooksClient::new(channel.clone());
                tokio::spawn(async move {
                    let mut tick = rate.map(|rate| {
                        let every = Duration::from_micros(1_000_000 * CALLERS as u64 / rate.max(1));
                        let mut tick = tokio::time::interval(every);
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        tick
                    });
                    let mut i = n;
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(tick) = tick.as_mut() {
                            tick.tick().await;
                        }
                        i += 1;
                        let tool = if i % 2 == 0 { "exec" } else { "forbidden" };
                        let asked = Instant::now();
                        let answer = tokio::time::timeout(HOST_DEADLINE, async {
                            loop {
                                let call =
                                    client.before_tool_call(tool_call(tool, json!({"n": i})));
                                match call.await {
                                    Err(status) if unsent(&status) => {
                                        tally.resent.fetch_add(1, Ordering::Relaxed);
                                    }
                                    answer => return answer,
                                }
                            }
                        })
                        .await;
                        let waited = asked.elapsed().as_micros() as u64;
                        tally.longest_us.fetch_max(waited, Ordering::Relaxed);
                        tally.calls.fetch_add(1, Ordering::Relaxed);
                        let outcome = match answer {
                            Ok(Ok(verdict)) => verdict.get_ref().outcome(),
                            other => {
                                tally.failed.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut errors) = tally.first_errors.lock()
                                    && errors.len() < 5
                                {
                                    errors.push(format!("{tool}: {other:?}"));
                                }
                                continue;
                            }
                        };
                        match (tool, outcome) {
                            ("exec", Outcome::Allow) | ("forbidden", Outcome::Block) => {}
                            ("exec", _) => {
                                tally.wrongly_blocked.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                tally.wrongly_allowed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Traffic { stop, tally, tasks }
    }

    async fn finish(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        self.tally
    }
}

/// Whether the server never saw a call the client gave up on: hyper cancels the requests still
/// queued for a connection that closed, and HTTP/2 fails the streams a GOAWAY (NO_ERROR) says
/// were not processed (RFC 9113 §6.8: "can be safely retried"). gRPC's transparent retry sends
/// those again (grpc-go, grpc-js and C-core do; tonic does not), so this host does.
fn unsent(status: &tonic::Status) -> bool {
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        cause = error.source();
    }
    false
}

/// Calls a second the supervisor answers with every caller going as fast as it can.
async fn capacity(socket: &Path) -> u64 {
    let channel = connect(socket).await.expect("connecting");
    let traffic = Traffic::start(channel, None);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tally = traffic.finish().await;
    let calls = tally.calls.load(Ordering::Relaxed);
    assert_eq!(tally.failed.load(Ordering::Relaxed), 0, "{tally:?}");
    calls * 1000 / (started.elapsed().as_millis() as u64).max(1)
}

/// Each configured plugin's pid, from `Admin/ListPlugins`.
async fn plugin_pids(socket: &Path) -> BTreeMap<String, i32> {
    let channel = connect(socket).await.expect("connecting");
    AdminClient::new(channel)
        .list_plugins(ListPluginsRequest {})
        .await
        .expect("ListPlugins")
        .into_inner()
        .plugins
        .into_iter()
        .map(|p| (p.name, p.pid))
        .collect()
}

/// The children of `pid` and their children: reapers and plugins.
fn descendants(pid: i32) -> BTreeSet<i32> {
    let children = |pid: i32| -> Vec<i32> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .flat_map(|task| {
                std::fs::read_to_string(task.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|c| c.parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    };
    let mut all = BTreeSet::new();
    for child in children(pid) {
        all.insert(child);
        all.extend(children(child));
    }
    all
}

fn open_descriptors(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Runs `hookvisor upgrade --socket SOCKET`; returns its status, stdout and stderr.
async fn upgrade(socket: &Path) -> (bool, String, String) {
    let output = tokio::process::Command::new(hookvisor())
        .arg("upgrade")
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running hookvisor upgrade");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_upgrades_under_traffic_refuse_no_call_and_keep_every_plugin() {
    let supervisor = Supervisor::start(&body()).await;
    let socket = supervisor.socket().to_path_buf();
    let measured = capacity(&socket).await;
    // Half of what the machine answers (several thousand a second on a quiet machine).
    let rate = (measured / 2).max(100);
    let pids = plugin_pids(&socket).await;
    assert!(pids.values().all(|&pid| pid > 0), "{pids:?}");

    let channel = connect(&socket).await.expect("connecting");
    let traffic = Traffic::start(channel, Some(rate));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let processes = descendants(supervisor.pid());
    let descriptors = open_descriptors(supervisor.pid());

    for round in 1..=10 {
        let (ok, stdout, stderr) = upgrade(&socket).await;
        assert!(
            ok && stdout.contains("2 of 2 plugins kept their process"),
            "upgrade {round}: {stdout}{stderr}\n{}",
            supervisor.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tally = traffic.finish().await;
    let calls = tally.calls.load(Ordering::Relaxed);
    eprintln!(
        "capacity {measured}/s, rate {rate}/s, {calls} calls across 10 upgrades, longest wait {} ms, \
         {} sent again (cancelled unsent by the client)",
        tally.longest_us.load(Ordering::Relaxed) / 1000,
        tally.resent.load(Ordering::Relaxed)
    );
    assert_eq!(tally.failed.load(Ordering::Relaxed), 0, "{tally:?}");
    assert_eq!(
        tally.wrongly_blocked.load(Ordering::Relaxed),
        0,
        "{tally:?}"
    );
    assert_eq!(
        tally.wrongly_allowed.load(Ordering::Relaxed),
        0,
        "{tally:?}"
    );
    assert!(calls > 0);

    // Same supervisor process, same plugin processes, nothing left behind.
    assert!(kill(Pid::from_raw(supervisor.pid()), None).is_ok());
    assert_eq!(plugin_pids(&socket).await, pids);
    assert_eq!(descendants(supervisor.pid()), processes);
    let deadline = Instant::now() + Duration::from_secs(5);
    // Connections of the callers close once they have moved; the count settles.
    while open_descriptors(supervisor.pid()) > descriptors && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        open_descriptors(supervisor.pid()) <= descriptors,
        "descriptors: {} before, {} after\n{:?}",
        descriptors,
        open_descriptors(supervisor.pid()),
        std::fs::read_dir(format!("/proc/{}/fd", supervisor.pid()))
            .map(|d| d
                .flatten()
                .map(|e| std::fs::read_link(e.path()).unwrap_or_default())
                .collect::<Vec<_>>())
            .unwrap_or_default()
    );
    let log = supervisor.log();
    assert_eq!(log.matches("plugins taken over").count(), 10, "{log}");
}

/// A supervisor started from a copy of the binary in its own directory, so the test can replace
/// the installed binary as a package upgrade would.
struct Installed {
    dir: TestDir,
    binary: PathBuf,
    socket: PathBuf,
    child: tokio::process::Child,
}

impl Installed {
    async fn start(body: &str) -> Installed {
        let dir = TestDir::new();
        let binary = dir.join("hookvisor");
        std::fs::copy(hookvisor(), &binary).expect("copying hookvisor");
        let socket = dir.join("host.sock");
        let config = dir.join("hookvisor.toml");
        let text = format!(
            "[supervisor]\nsocket = {}\nruntime_dir = {}\n{}\n{body}",
            toml_string(&socket.display().to_string()),
            toml_string(&dir.join("run").display().to_string()),
            sandbox_keys(dir.path())
        );
        std::fs::write(&config, text).expect("writing hookvisor.toml");
        let log = std::fs::File::create(dir.join("log")).expect("log");
        let child = tokio::process::Command::new(&binary)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("spawning hookvisor serve");
        let installed = Installed {
            dir,
            binary,
            socket,
            child,
        };
        installed.wait_serving().await;
        installed
    }

    async fn wait_serving(&self) {
        let deadline = Instant::now() + START_DEADLINE;
        while plugin_pids_now(&self.socket).await.is_none() {
            assert!(Instant::now() < deadline, "not serving:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Replaces the installed binary with `program`, as a package manager does (a new file
    /// renamed over the old one).
    fn install(&self, program: &Path) {
        let next = self.dir.join("hookvisor.new");
        std::fs::copy(program, &next).expect("copying the new binary");
        std::fs::rename(&next, &self.binary).expect("installing the new binary");
    }

    fn install_script(&self, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let next = self.dir.join("script");
        std::fs::write(&next, script).expect("writing the script");
        std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        self.install(&next);
    }

    fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

async fn plugin_pids_now(socket: &Path) -> Option<BTreeMap<String, i32>> {
    let channel = connect(socket).await.ok()?;
    let plugins = AdminClient::new(channel)
        .list_plugins(ListPluginsRequest {})
        .await
        .ok()?
        .into_inner()
        .plugins;
    Some(plugins.into_iter().map(|p| (p.name, p.pid)).collect())
}

async fn verdict(socket: &Path, tool: &str) -> Outcome {
    let channel = connect(socket).await.expect("connecting");
    HooksClient::new(channel)
        .before_tool_call(tool_call(tool, json!({})))
        .await
        .expect("a verdict")
        .get_ref()
        .outcome()
}

#[tokio::test]
async fn a_new_binary_that_fails_its_check_is_refused_and_the_old_one_serves_on() {
    let installed = Installed::start(&body()).await;
    let pids = plugin_pids_now(&installed.socket).await.expect("serving");

    // A binary that exits at start.
    installed.install(&fixture("fixture-exit-at-start"));
    let (ok, stdout, stderr) = upgrade(&installed.socket).await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("upgrade refused; the running supervisor serves on")
            && stderr.contains(&installed.binary.display().to_string()),
        "{stderr}"
    );
    assert_eq!(verdict(&installed.socket, "exec").await, Outcome::Allow);
    assert_eq!(
        verdict(&installed.socket, "forbidden").await,
        Outcome::Block
    );

    // A binary that does not read this hand-over's version.
    installed.install_script("#!/bin/sh\necho 'hookvisor-handover 99'\n");
    let (ok, stdout, stderr) = upgrade(&installed.socket).await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("reads hand-over version(s) 99")
            && stderr.contains("this supervisor writes version 1"),
        "{stderr}"
    );
    assert_eq!(plugin_pids_now(&installed.socket).await, Some(pids.clone()));

    // The real one again: the same supervisor upgrades, and its plugins stay.
    installed.install(&hookvisor());
    let (ok, stdout, stderr) = upgrade(&installed.socket).await;
    assert!(ok, "{stdout}{stderr}\n{}", installed.log());
    assert_eq!(plugin_pids_now(&installed.socket).await, Some(pids.clone()));
    assert!(kill(Pid::from_raw(installed.pid()), None).is_ok());

    // A plugin's exit after the upgrade is still reported with its status.
    let policy = Pid::from_raw(pids["policy"]);
    kill(policy, Signal::SIGKILL).expect("killing the policy plugin");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let channel = connect(&installed.socket).await.expect("connecting");
        let plugins = AdminClient::new(channel)
            .list_plugins(ListPluginsRequest {})
            .await
            .expect("ListPlugins")
            .into_inner()
            .plugins;
        let policy = plugins.iter().find(|p| p.name == "policy").expect("policy");
        if policy.last_error.contains("signal: 9") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no exit status reported: {policy:?}\n{}",
            installed.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The holder test helper: keeps the listening socket, as a systemd socket unit does, and
/// starts `hookvisor serve` on it again each time one exits (LISTEN_FDS).
struct Holder {
    dir: TestDir,
    socket: PathBuf,
    child: tokio::process::Child,
}

impl Holder {
    async fn start(body: &str) -> Holder {
        let dir = TestDir::new();
        let socket = dir.join("activated.sock");
        let config = dir.join("hookvisor.toml");
        let text = format!(
            "[supervisor]\nsocket = {}\nruntime_dir = {}\n{}\n{body}",
            toml_string(&dir.join("unused.sock").display().to_string()),
            toml_string(&dir.join("run").display().to_string()),
            sandbox_keys(dir.path())
        );
        std::fs::write(&config, text).expect("writing hookvisor.toml");
        let log = std::fs::File::create(dir.join("log")).expect("log");
        let child = tokio::process::Command::new(binary("activation-holder"))
            .arg(&socket)
            .arg(dir.join("pid"))
            .arg(hookvisor())
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the holder");
        let holder = Holder { dir, socket, child };
        let deadline = Instant::now() + START_DEADLINE;
        while plugin_pids_now(&holder.socket).await.is_none() {
            assert!(Instant::now() < deadline, "not serving:\n{}", holder.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        holder
    }

    /// The supervisor running now.
    fn supervisor(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let supervisor = self.supervisor();
        let _ = self.child.start_kill();
        if let Some(pid) = supervisor {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(2);
            while kill(Pid::from_raw(pid), None).is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Some(pid) = self.child.id() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_under_socket_activation_fail_no_call() {
    let holder = Holder::start(&body()).await;
    let measured = capacity(&holder.socket).await;
    let rate = (measured / 2).max(100);
    let channel = connect(&holder.socket).await.expect("connecting");
    let traffic = Traffic::start(channel, Some(rate));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for round in 1..=5 {
        let old = holder.supervisor().expect("a supervisor pid");
        kill(Pid::from_raw(old), Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let now = holder.supervisor();
            if now.is_some_and(|pid| pid != old) && plugin_pids_now(&holder.socket).await.is_some()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "restart {round}: no new supervisor\n{}",
                holder.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tally = traffic.finish().await;
    let calls = tally.calls.load(Ordering::Relaxed);
    eprintln!(
        "capacity {measured}/s, rate {rate}/s, {calls} calls across 5 restarts, longest wait {} ms, \
         {} sent again (cancelled unsent by the client)",
        tally.longest_us.load(Ordering::Relaxed) / 1000,
        tally.resent.load(Ordering::Relaxed)
    );
    assert_eq!(
        tally.failed.load(Ordering::Relaxed),
        0,
        "{tally:?}\n{}",
        holder.log()
    );
    assert_eq!(
        tally.wrongly_blocked.load(Ordering::Relaxed),
        0,
        "{tally:?}"
    );
    assert_eq!(
        tally.wrongly_allowed.load(Ordering::Relaxed),
        0,
        "{tally:?}"
    );
    assert!(calls > 0);
}

#[tokio::test]
async fn a_configuration_changed_before_an_upgrade_goes_through_the_reload_rules() {
    let supervisor = Supervisor::start(&body()).await;
    let socket = supervisor.socket().to_path_buf();
    let before = plugin_pids(&socket).await;
    // The hook's process-defining settings change (its env); the policy's do not.
    supervisor.rewrite_config(&plugins(&[
        PluginToml::new("policy", "fixture-recorder")
            .policy()
            .action("block-tool:forbidden"),
        PluginToml::new("hook", "fixture-recorder")
            .action("allow")
            .env("FIXTURE_VERSION", "2.0.0"),
    ]));
    let (ok, stdout, stderr) = upgrade(&socket).await;
    assert!(
        ok && stdout.contains("1 of 2 plugins kept their process"),
        "{stdout}{stderr}\n{}",
        supervisor.log_tail()
    );
    let after = plugin_pids(&socket).await;
    assert_eq!(after["policy"], before["policy"]);
    assert_ne!(after["hook"], before["hook"]);
    assert!(after["hook"] > 0, "{after:?}");
    // The changed plugin's old process was stopped, as a reload stops it.
    let old = Pid::from_raw(before["hook"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while kill(old, None).is_ok() {
        assert!(Instant::now() < deadline, "the replaced hook still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(verdict(&socket, "forbidden").await, Outcome::Block);
    assert_eq!(verdict(&socket, "exec").await, Outcome::Allow);
}

#[tokio::test]
async fn sigusr2_upgrades_in_place() {
    let supervisor = Supervisor::start(&body()).await;
    let socket = supervisor.socket().to_path_buf();
    let before = plugin_pids(&socket).await;
    supervisor.signal(Signal::SIGUSR2);
    assert!(
        supervisor.log_contains("plugins taken over").await,
        "{}",
        supervisor.log_tail()
    );
    let deadline = Instant::now() + START_DEADLINE;
    while plugin_pids_now(&socket).await.as_ref() != Some(&before) {
        assert!(Instant::now() < deadline, "{}", supervisor.log_tail());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(verdict(&socket, "forbidden").await, Outcome::Block);
}

#[tokio::test]
async fn a_host_that_does_not_answer_goaway_holds_an_upgrade_up_for_a_moment_only() {
    use tokio::io::AsyncWriteExt;
    let supervisor = Supervisor::start(&body()).await;
    let socket = supervisor.socket().to_path_buf();
    // An HTTP/2 client that says hello and then never reads again: it never answers the PING
    // of the two-phase GOAWAY, so its connection never closes by itself.
    let mut frozen = tokio::net::UnixStream::connect(&socket)
        .await
        .expect("connecting");
    frozen
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("the preface");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (ok, stdout, stderr) = upgrade(&socket).await;
    let took = started.elapsed();
    assert!(ok, "{stdout}{stderr}\n{}", supervisor.log_tail());
    // The drain limit would be 11 s (two default hook timeouts and a second).
    assert!(
        took < Duration::from_secs(5),
        "the upgrade took {took:?}\n{}",
        supervisor.log_tail()
    );
    assert_eq!(verdict(&socket, "exec").await, Outcome::Allow);
    drop(frozen);
}
