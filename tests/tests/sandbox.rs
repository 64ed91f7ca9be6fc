//! Issue 17, the sandbox: a hostile plugin (`fixture-escape`) beside a trusted policy (the
//! victim, holding a secret in its environment and its state directory) tries every attack the
//! issue lists, at the real boundary, under `hookvisor serve` run as root. Each attack must be
//! refused by the operating system; afterwards the victim still answers and every verdict is
//! right. Positive controls (what a plugin may still do) keep the tests honest: an attack that
//! fails for an unrelated reason would pass unnoticed otherwise.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::{Failure, Outcome};
use hookvisor_tests::harness::{
    PluginToml, Supervisor, TestDir, entry, plugins, run_hookvisor, toml_string,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const SECRET: &str = "victim-secret-token-5d1f";

/// A supervisor with the victim (a trusted policy that allows) and the attacker.
struct Scene {
    supervisor: Supervisor,
    victim: Value,
    attacker: Value,
}

fn victim() -> PluginToml {
    PluginToml::new("victim", "fixture-recorder")
        .policy()
        .action("allow")
        .env("VICTIM_TOKEN", SECRET)
}

fn attacker() -> PluginToml {
    PluginToml::new("attacker", "fixture-escape")
}

fn status_json(supervisor: &Supervisor) -> Vec<Value> {
    let socket = supervisor.socket().display().to_string();
    let (status, out, err) = run_hookvisor(&["status", "--json", "--socket", &socket]);
    assert!(status.success(), "{out}{err}");
    let parsed: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    parsed["plugins"].as_array().expect("plugins").clone()
}

fn plugin_status(supervisor: &Supervisor, name: &str) -> Value {
    status_json(supervisor)
        .into_iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plugin {name}"))
}

impl Scene {
    async fn start(attacker: PluginToml) -> Scene {
        Scene::start_with(attacker, "").await
    }

    async fn start_with(attacker: PluginToml, extra: &str) -> Scene {
        let body = format!("{}{extra}", plugins(&[victim(), attacker]));
        Scene::started(Supervisor::start(&body).await)
    }

    /// The scene with a supervisor started some other way.
    fn started(supervisor: Supervisor) -> Scene {
        let victim = plugin_status(&supervisor, "victim");
        let attacker = plugin_status(&supervisor, "attacker");
        assert_eq!(victim["state"], "ready", "{}", supervisor.log_tail());
        assert_eq!(attacker["state"], "ready", "{}", supervisor.log_tail());
        // The victim's own file, in its state directory, as it would have written it.
        let secret = Scene::victim_state(&supervisor).join("secret.txt");
        std::fs::write(&secret, SECRET).expect("writing the victim's file");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let owner = victim["sandbox"]["uid"].as_u64().map_or_else(
            || std::fs::metadata(supervisor.dir()).unwrap().uid(),
            |uid| uid as u32,
        );
        std::os::unix::fs::chown(&secret, Some(owner), Some(owner)).unwrap();
        Scene {
            supervisor,
            victim,
            attacker,
        }
    }

    fn victim_state(supervisor: &Supervisor) -> PathBuf {
        supervisor.dir().join("state/plugins/victim")
    }

    fn victim_pid(&self) -> i64 {
        self.victim["pid"].as_i64().expect("victim pid")
    }

    /// The victim's socket (the only one in its socket directory).
    fn victim_socket(&self) -> PathBuf {
        let dir = self.supervisor.runtime_dir().join("victim");
        std::fs::read_dir(&dir)
            .expect("the victim's socket directory")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "sock"))
            .expect("the victim's socket")
    }

    /// Makes the attacker try `params`; returns whether the attack worked, and its detail.
    async fn attack(&self, params: Value) -> (bool, String) {
        let verdict = self.supervisor.verdict("attack", params.clone()).await;
        assert_eq!(verdict.decided_by, "attacker", "{params}: {verdict:?}");
        let answer = &verdict.block_reason;
        let json_start = answer.find('{').unwrap_or_else(|| {
            panic!(
                "{params}: no answer from the attacker: {answer:?} ({})",
                self.supervisor.log_tail()
            )
        });
        let report: Value = serde_json::from_str(&answer[json_start..])
            .unwrap_or_else(|e| panic!("{params}: {e}: {answer}"));
        assert!(
            !report["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with("bad request"),
            "{params}: {report}"
        );
        (
            report["ok"].as_bool().expect("ok"),
            report["detail"].as_str().unwrap_or_default().to_owned(),
        )
    }

    async fn refused(&self, params: Value) {
        let (ok, detail) = self.attack(params.clone()).await;
        assert!(!ok, "the attack {params} got through: {detail}");
    }

    async fn allowed(&self, params: Value) -> String {
        let (ok, detail) = self.attack(params.clone()).await;
        assert!(ok, "{params} should work: {detail}");
        detail
    }

    /// The victim still runs the same process, answers, and its verdicts are right.
    async fn victim_unharmed(&self) {
        let now = plugin_status(&self.supervisor, "victim");
        assert_eq!(now["pid"], self.victim["pid"], "the victim was restarted");
        assert_eq!(now["state"], "ready");
        let verdict = self
            .supervisor
            .verdict("attack", json!({"attack": "whoami"}))
            .await;
        let victim = entry(&verdict.trace, "victim");
        assert_eq!(victim.outcome(), Outcome::Allow, "{victim:?}");
        assert_eq!(victim.failure(), Failure::None, "{victim:?}");
        let secret =
            std::fs::read_to_string(Scene::victim_state(&self.supervisor).join("secret.txt"));
        assert_eq!(secret.ok().as_deref(), Some(SECRET));
    }
}

/// Writes `hookvisor.toml` in `dir`: the host socket `dir/h.sock`, the runtime directory
/// `dir/run`, `keys` (the rest of `[supervisor]`; [`sandbox_keys`] when empty) and `body`.
fn write_config(dir: &TestDir, keys: &str, body: &str) -> PathBuf {
    let keys = if keys.is_empty() {
        hookvisor_tests::harness::sandbox_keys(dir.path())
    } else {
        keys.to_owned()
    };
    let config = dir.join("hookvisor.toml");
    std::fs::write(
        &config,
        format!(
            "[supervisor]\nsocket = {}\nruntime_dir = {}\n{keys}\n{body}",
            toml_string(&dir.join("h.sock").display().to_string()),
            toml_string(&dir.join("run").display().to_string()),
        ),
    )
    .expect("writing hookvisor.toml");
    config
}

#[tokio::test]
async fn each_plugin_runs_under_a_uid_of_its_own_with_its_state_directory() {
    let scene = Scene::start_with(attacker(), "\n[metrics]\nlisten = \"127.0.0.1:0\"\n").await;
    let victim_uid = scene.victim["sandbox"]["uid"].as_u64().expect("victim uid");
    let attacker_uid = scene.attacker["sandbox"]["uid"]
        .as_u64()
        .expect("attacker uid");
    assert_ne!(victim_uid, attacker_uid);
    assert_ne!(victim_uid, 0);
    let whoami: Value =
        serde_json::from_str(&scene.allowed(json!({"attack": "whoami"})).await).unwrap();
    assert_eq!(whoami["uid"], attacker_uid);
    assert_eq!(whoami["euid"], attacker_uid);
    assert_eq!(whoami["gid"], attacker_uid);
    assert_eq!(
        whoami["groups"],
        json!([]),
        "supplementary groups: {whoami}"
    );
    let state = scene.supervisor.dir().join("state/plugins/attacker");
    assert_eq!(
        whoami["HOOKVISOR_PLUGIN_STATE_DIR"],
        state.display().to_string()
    );
    assert_eq!(whoami["HOME"], state.display().to_string());
    assert_eq!(whoami["TMPDIR"], state.display().to_string());
    let meta = std::fs::metadata(&state).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (attacker_uid as u32, 0o700)
    );
    // Its own state directory is writable (the positive control of the write attacks).
    let file = state.join("mine.txt");
    scene
        .allowed(json!({"attack": "write_file", "path": file}))
        .await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "pwned");
    // The runtime directory: traversable, not listable; each socket directory its own.
    let runtime = std::fs::metadata(scene.supervisor.runtime_dir()).unwrap();
    assert_eq!(runtime.mode() & 0o777, 0o711);
    let socket_dir = std::fs::metadata(scene.supervisor.runtime_dir().join("attacker")).unwrap();
    assert_eq!(
        (
            socket_dir.uid(),
            socket_dir.gid(),
            socket_dir.mode() & 0o777
        ),
        (0, attacker_uid as u32, 0o770)
    );
    scene
        .refused(json!({"attack": "list_dir", "path": scene.supervisor.runtime_dir()}))
        .await;
    // `status` names the uid and what is enforced; so do the metrics (tests/metrics.rs).
    let enforced = scene.attacker["sandbox"]["enforced"].to_string();
    for mechanism in [
        "uid",
        "no_new_privs",
        "landlock",
        "seccomp",
        "max_processes 64",
    ] {
        assert!(enforced.contains(mechanism), "{mechanism}: {enforced}");
    }
    assert_eq!(scene.attacker["sandbox"]["missing"], json!([]));
    let metrics = scene.supervisor.metrics().await;
    let sample = |series: &str| {
        hookvisor_tests::harness::metrics_sample(&metrics, series)
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
    };
    assert_eq!(
        sample(r#"hookvisor_plugin_uid{plugin="attacker"}"#),
        attacker_uid as f64
    );
    for mechanism in [
        "uid",
        "landlock",
        "landlock_tcp",
        "landlock_scopes",
        "seccomp",
    ] {
        let series =
            format!(r#"hookvisor_plugin_sandbox{{plugin="attacker",mechanism="{mechanism}"}}"#);
        assert_eq!(sample(&series), 1.0, "{series}");
    }
}

/// Without root (the supervisor as uid 65534): no uid of its own for any plugin, said once per
/// plugin at start and in `status`; Landlock, seccomp and `no_new_privs` still hold, so plugins
/// of one uid still cannot read, trace or signal each other or read each other's files.
#[tokio::test]
async fn without_root_the_sandbox_says_what_it_lacks_and_landlock_still_holds() {
    const NOBODY: u32 = 65534;
    let supervisor = Supervisor::builder(&plugins(&[victim(), attacker()]))
        .as_user(NOBODY)
        .start()
        .await;
    let scene = Scene::started(supervisor);
    assert!(
        scene.attacker["sandbox"]["uid"].is_null(),
        "{}",
        scene.attacker
    );
    let missing = scene.attacker["sandbox"]["missing"].to_string();
    assert!(missing.contains("an own uid"), "{missing}");
    assert!(missing.contains("max_processes"), "{missing}");
    assert!(
        scene
            .supervisor
            .log_contains("sandbox: not enforced on this machine")
            .await,
        "{}",
        scene.supervisor.log_tail()
    );
    let whoami: Value =
        serde_json::from_str(&scene.allowed(json!({"attack": "whoami"})).await).unwrap();
    assert_eq!(whoami["uid"], NOBODY);
    let pid = scene.victim_pid();
    scene
        .refused(json!({"attack": "environ", "pid": pid}))
        .await;
    scene.refused(json!({"attack": "mem", "pid": pid})).await;
    scene.refused(json!({"attack": "ptrace", "pid": pid})).await;
    scene
        .refused(json!({"attack": "signal", "pid": pid, "signal": "SIGKILL"}))
        .await;
    let state = Scene::victim_state(&scene.supervisor);
    scene
        .refused(json!({"attack": "read_file", "path": state.join("secret.txt")}))
        .await;
    scene
        .refused(json!({"attack": "unlink", "path": scene.victim_socket()}))
        .await;
    scene
        .refused(json!({"attack": "host_call", "path": scene.supervisor.socket()}))
        .await;
    scene.refused(json!({"attack": "no_new_privs"})).await;
    scene.victim_unharmed().await;
}

/// `sandbox = "required"` refuses to start where a mechanism is missing (no root: no uid of its
/// own), naming the plugin and what is missing.
#[test]
fn required_refuses_to_start_without_what_it_requires() {
    let dir = TestDir::new();
    let keys = format!(
        "sandbox = \"required\"\n{}",
        hookvisor_tests::harness::sandbox_keys(dir.path())
    );
    let config = write_config(
        &dir,
        &keys,
        &plugins(&[PluginToml::new("strict", "fixture-recorder")]),
    );
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(hookvisor_tests::harness::hookvisor())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "plugin `strict`: sandbox: sandbox = \"required\", but this machine cannot enforce: \
             an own uid"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_plugin_cannot_read_trace_or_signal_another_plugin() {
    let scene = Scene::start(attacker()).await;
    let pid = scene.victim_pid();
    scene
        .refused(json!({"attack": "environ", "pid": pid}))
        .await;
    scene.refused(json!({"attack": "mem", "pid": pid})).await;
    scene.refused(json!({"attack": "ptrace", "pid": pid})).await;
    for signal in ["0", "SIGSTOP", "SIGTERM", "SIGKILL", "SIGUSR1"] {
        scene
            .refused(json!({"attack": "signal", "pid": pid, "signal": signal}))
            .await;
    }
    scene.victim_unharmed().await;
}

#[tokio::test]
async fn a_plugin_cannot_touch_another_plugins_socket_or_files() {
    let scene = Scene::start(attacker()).await;
    let socket = scene.victim_socket();
    let socket_dir = socket.parent().unwrap().to_path_buf();
    let state = Scene::victim_state(&scene.supervisor);
    scene
        .refused(json!({"attack": "rename", "path": socket, "to": socket_dir.join("moved")}))
        .await;
    scene
        .refused(json!({"attack": "unlink", "path": socket}))
        .await;
    scene
        .refused(json!({"attack": "bind_unix", "path": socket_dir.join("9.sock")}))
        .await;
    scene
        .refused(json!({"attack": "list_dir", "path": socket_dir}))
        .await;
    scene
        .refused(json!({"attack": "read_file", "path": state.join("secret.txt")}))
        .await;
    scene
        .refused(json!({"attack": "list_dir", "path": state}))
        .await;
    scene
        .refused(json!({"attack": "write_file", "path": state.join("planted")}))
        .await;
    assert!(socket.exists());
    scene.victim_unharmed().await;
}

#[tokio::test]
async fn a_plugin_cannot_reach_the_host_socket_the_supervisor_or_the_operators_files() {
    let scene = Scene::start(attacker()).await;
    let host = scene.supervisor.socket().to_path_buf();
    scene
        .refused(json!({"attack": "host_call", "path": host}))
        .await;
    scene
        .refused(json!({"attack": "admin_call", "path": host}))
        .await;
    let supervisor = scene.supervisor.pid();
    scene
        .refused(json!({"attack": "environ", "pid": supervisor}))
        .await;
    scene
        .refused(json!({"attack": "mem", "pid": supervisor}))
        .await;
    scene
        .refused(json!({"attack": "ptrace", "pid": supervisor}))
        .await;
    scene
        .refused(json!({"attack": "signal", "pid": supervisor, "signal": "SIGTERM"}))
        .await;
    // The configuration, a 0600 file of root's, and a 0644 file in a directory the plugin has
    // no business in.
    scene
        .refused(json!({"attack": "read_file", "path": scene.supervisor.config()}))
        .await;
    let operator = TestDir::new();
    let private = operator.join("private.txt");
    std::fs::write(&private, "root only").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = operator.join("public.txt");
    std::fs::write(&public, "readable by all").unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    scene
        .refused(json!({"attack": "read_file", "path": private}))
        .await;
    scene
        .refused(json!({"attack": "read_file", "path": public}))
        .await;
    scene
        .refused(json!({"attack": "list_dir", "path": operator.path()}))
        .await;
    // What a plugin may read: the system's directories.
    scene
        .allowed(json!({"attack": "read_file", "path": "/etc/hostname"}))
        .await;
    scene.victim_unharmed().await;
}

#[tokio::test]
async fn a_plugin_inherits_no_descriptor_and_cannot_gain_privileges() {
    let scene = Scene::start(attacker()).await;
    scene.refused(json!({"attack": "fds"})).await;
    scene.refused(json!({"attack": "no_new_privs"})).await;
    scene.refused(json!({"attack": "setuid", "uid": 0})).await;
    scene.refused(json!({"attack": "unshare"})).await;
    scene.victim_unharmed().await;
}

#[tokio::test]
async fn a_plugin_cannot_write_outside_its_directories() {
    let scene = Scene::start(attacker()).await;
    let open = TestDir::new();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    for path in [
        open.join("x"),
        PathBuf::from("/tmp/hookvisor-sandbox-escape"),
        scene.supervisor.dir().join("x"),
    ] {
        scene
            .refused(json!({"attack": "write_file", "path": path}))
            .await;
        assert!(!path.exists(), "{}", path.display());
    }
    scene.victim_unharmed().await;
}

#[tokio::test]
async fn a_plugin_opens_no_network_connection_unless_allowed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let scene = Scene::start(attacker()).await;
    scene
        .refused(json!({"attack": "tcp_connect", "addr": address}))
        .await;
    scene
        .refused(json!({"attack": "tcp_listen", "addr": "127.0.0.1:0"}))
        .await;
    scene.refused(json!({"attack": "tcp_listen_unbound"})).await;
    scene
        .refused(json!({"attack": "udp", "addr": address}))
        .await;
    for family in ["netlink", "packet", "raw", "sctp"] {
        scene.refused(json!({"attack": family})).await;
    }
    scene.victim_unharmed().await;
    drop(scene);

    // `connect_ports` opens exactly those ports.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let scene = Scene::start(attacker().sandbox(&format!("connect_ports = [{port}]"))).await;
    scene
        .allowed(json!({"attack": "tcp_connect", "addr": address}))
        .await;
    scene
        .refused(json!({"attack": "tcp_connect", "addr": other.local_addr().unwrap()}))
        .await;
    scene
        .refused(json!({"attack": "tcp_listen", "addr": "127.0.0.1:0"}))
        .await;
    drop(scene);

    // `network = true`: everything a uid without privileges may do.
    let scene = Scene::start(attacker().sandbox("network = true")).await;
    scene
        .allowed(json!({"attack": "tcp_connect", "addr": address}))
        .await;
    scene
        .allowed(json!({"attack": "tcp_listen", "addr": "127.0.0.1:0"}))
        .await;
    scene.allowed(json!({"attack": "netlink"})).await;
    scene.refused(json!({"attack": "raw"})).await;
}

#[tokio::test]
async fn a_plugin_cannot_start_more_than_its_processes_or_take_more_than_its_memory() {
    let scene = Scene::start(attacker()).await;
    let (ok, detail) = scene.attack(json!({"attack": "fork", "count": 200})).await;
    assert!(!ok, "200 processes: {detail}");
    let forked: u32 = detail
        .strip_prefix("forked ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{detail}"));
    assert!(forked < 64, "{detail}");
    // Above the default limit (1024 MiB).
    let (ok, detail) = scene
        .attack(json!({"attack": "allocate", "mib": 2048}))
        .await;
    assert!(!ok, "2 GiB: {detail}");
    // Within it, memory is there.
    scene
        .allowed(json!({"attack": "allocate", "mib": 64}))
        .await;
    scene.victim_unharmed().await;
}

/// A plugin that cannot live within its limits fails closed like any plugin that cannot start.
#[tokio::test]
async fn a_plugin_that_breaks_its_limits_fails_closed() {
    let supervisor = Supervisor::builder(&plugins(&[
        victim(),
        PluginToml::new("greedy", "fixture-recorder").sandbox("memory_max_mib = 1"),
    ]))
    .supervisor_key("start_timeout_ms = 2000")
    .start()
    .await;
    let verdict = supervisor.verdict("anything", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:?}");
    let greedy = entry(&verdict.trace, "greedy");
    assert_ne!(greedy.failure(), Failure::None, "{greedy:?}");
    assert!(
        verdict.block_reason.contains("greedy"),
        "{}",
        verdict.block_reason
    );
}

/// Without its own uid (the sandbox off for the attacker, so it runs as root like the
/// supervisor), the host socket still refuses a plugin's connection: the supervisor checks
/// whether the peer descends from it.
#[tokio::test]
async fn the_host_socket_refuses_a_plugins_connection_even_under_the_same_uid() {
    let scene = Scene::start(attacker().unsandboxed()).await;
    let host = scene.supervisor.socket().to_path_buf();
    let (ok, detail) = scene
        .attack(json!({"attack": "host_call", "path": host}))
        .await;
    assert!(!ok, "{detail}");
    let (ok, detail) = scene
        .attack(json!({"attack": "admin_call", "path": host}))
        .await;
    assert!(!ok, "{detail}");
    assert!(
        scene
            .supervisor
            .log_contains("refusing a host connection: pid")
            .await,
        "{}",
        scene.supervisor.log_tail()
    );
    // The sandbox off is said at start.
    assert!(
        scene.supervisor.log_contains("sandbox disabled").await,
        "{}",
        scene.supervisor.log_tail()
    );
    assert_eq!(scene.attacker["sandbox"]["enabled"], false);
}

/// Plugins started at once each get a uid of their own: the allocation and its record (the
/// state directory) happen under one lock.
#[tokio::test]
async fn plugins_started_at_once_never_share_a_uid() {
    let many: Vec<PluginToml> = (0..8)
        .map(|i| PluginToml::new(&format!("p{i}"), "fixture-recorder").action("allow"))
        .collect();
    let supervisor = Supervisor::start(&plugins(&many)).await;
    let mut uids: Vec<u64> = status_json(&supervisor)
        .iter()
        .map(|p| p["sandbox"]["uid"].as_u64().expect("a uid"))
        .collect();
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), 8, "{uids:?}");
}

#[tokio::test]
async fn a_plugins_uid_is_kept_across_restarts_and_reloads_and_never_reused() {
    let scene = Scene::start(attacker()).await;
    let uid = |status: &Value| status["sandbox"]["uid"].as_u64().expect("uid");
    let victim_uid = uid(&scene.victim);
    let attacker_uid = uid(&scene.attacker);
    let socket = scene.supervisor.socket().display().to_string();
    let (status, out, err) = run_hookvisor(&["restart", "attacker", "--socket", &socket]);
    assert!(status.success(), "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let restarted = loop {
        let now = plugin_status(&scene.supervisor, "attacker");
        if now["state"] == "ready" && now["pid"] != scene.attacker["pid"] {
            break now;
        }
        assert!(Instant::now() < deadline, "not restarted: {now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(uid(&restarted), attacker_uid);

    // A reload that removes the victim and adds a newcomer: the newcomer never gets the
    // removed plugin's uid (its state directory, the record of the uid, stays).
    scene.supervisor.rewrite_config(&plugins(&[
        attacker(),
        PluginToml::new("newcomer", "fixture-recorder").action("allow"),
    ]));
    scene.supervisor.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    let newcomer = loop {
        let all = status_json(&scene.supervisor);
        if let Some(p) = all
            .iter()
            .find(|p| p["name"] == "newcomer" && p["state"] == "ready")
        {
            break p.clone();
        }
        assert!(Instant::now() < deadline, "no newcomer: {all:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(uid(&newcomer), victim_uid);
    assert_ne!(uid(&newcomer), attacker_uid);
    assert_eq!(
        uid(&plugin_status(&scene.supervisor, "attacker")),
        attacker_uid
    );
    assert!(Scene::victim_state(&scene.supervisor).exists());
}

fn sha256_of(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

#[tokio::test]
async fn a_pinned_executable_starts_only_with_its_digest() {
    let command = hookvisor_tests::harness::fixture("fixture-recorder");
    let good = sha256_of(&command);
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("pinned", "fixture-recorder")
        .action("allow")
        .key(&format!("sha256 = {}", toml_string(&good)))]))
    .await;
    assert_eq!(
        supervisor.verdict("t", json!({})).await.outcome(),
        Outcome::Allow,
        "{}",
        supervisor.log_tail()
    );
    drop(supervisor);

    let wrong = "0".repeat(64);
    let supervisor =
        Supervisor::builder(&plugins(&[PluginToml::new("pinned", "fixture-recorder")
            .action("allow")
            .key(&format!("sha256 = {}", toml_string(&wrong)))]))
        .supervisor_key("restart_delay_max_ms = 60000")
        .start()
        .await;
    let verdict = supervisor.verdict("t", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(
        entry(&verdict.trace, "pinned").failure(),
        Failure::Unavailable
    );
    let status = plugin_status(&supervisor, "pinned");
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("its sha256 is {good}, not the configured {wrong}")),
        "{status}"
    );
}

/// `check-config` refuses what cannot work under the sandbox, naming the plugin and the cause:
/// a command another uid cannot reach (here, under a 0700 directory).
#[test]
fn check_config_refuses_a_command_its_uid_cannot_reach() {
    let dir = TestDir::new();
    let hidden = dir.join("hidden");
    std::fs::create_dir(&hidden).unwrap();
    std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o700)).unwrap();
    let command = hidden.join("plugin");
    std::fs::copy(
        hookvisor_tests::harness::fixture("fixture-recorder"),
        &command,
    )
    .unwrap();
    let config = write_config(
        &dir,
        "",
        &plugins(&[PluginToml::program("hidden", &command)]),
    );
    let config = config.display().to_string();
    for command in ["check-config", "serve"] {
        let (status, out, err) = run_hookvisor(&[command, "--config", &config]);
        assert_eq!(status.code(), Some(64), "{command}: {out}{err}");
        assert!(
            err.contains("plugin `hidden`: sandbox: command")
                && err.contains("cannot be reached by its own uid")
                && err.contains(&format!("directory {}", hidden.display())),
            "{command}: {err}"
        );
    }
}

/// The owner of a plugin's state directory is the record of its uid, so a `state_dir` below a
/// directory another user could write (and so move it aside) is refused, as for the runtime
/// directory.
#[test]
fn a_state_dir_below_a_directory_others_can_write_is_refused() {
    let dir = TestDir::new();
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let keys = format!(
        "state_dir = {}",
        toml_string(&shared.join("state").display().to_string())
    );
    let config = write_config(
        &dir,
        &keys,
        &plugins(&[PluginToml::new("p", "fixture-recorder")]),
    );
    let config = config.display().to_string();
    for command in ["check-config", "serve"] {
        let (status, out, err) = run_hookvisor(&[command, "--config", &config]);
        assert_eq!(status.code(), Some(64), "{command}: {out}{err}");
        assert!(
            err.contains("state directory") && err.contains("writable by group or others"),
            "{command}: {err}"
        );
    }
    assert!(!shared.join("state").exists(), "nothing was created");
}

/// The descriptor leak at its root: a descriptor the supervisor holds without close-on-exec
/// (as a socket passed in by systemd is, or one its parent left open) never reaches a plugin,
/// sandboxed or not: every descriptor past stderr is closed on exec before the reaper and the
/// plugin start.
#[tokio::test]
async fn no_descriptor_the_supervisor_inherited_reaches_a_plugin() {
    use hookvisor_proto::v1::hooks_client::HooksClient;
    let dir = TestDir::new();
    let socket = dir.join("h.sock");
    let held = dir.join("held.txt");
    std::fs::write(&held, "a descriptor of the supervisor's").unwrap();
    let config = write_config(
        &dir,
        "",
        &plugins(&[
            PluginToml::new("boxed", "fixture-escape").env("FIXTURE_TOOLS", "boxed"),
            PluginToml::new("loose", "fixture-escape")
                .env("FIXTURE_TOOLS", "loose")
                .unsandboxed(),
        ]),
    );
    // The shell opens descriptor 7 without close-on-exec and hands it to hookvisor.
    let _serving = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"exec "$0" serve --config "$1" 7<"$2""#)
        .arg(hookvisor_tests::harness::hookvisor())
        .arg(&config)
        .arg(&held)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sh");
    let deadline = Instant::now() + Duration::from_secs(20);
    let channel = loop {
        if let Ok(channel) = hookvisor_tests::harness::connect(&socket).await {
            break channel;
        }
        assert!(Instant::now() < deadline, "hookvisor never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Each plugin takes the calls for its own tool.
    for plugin in ["boxed", "loose"] {
        let verdict = HooksClient::new(channel.clone())
            .before_tool_call(hookvisor_tests::harness::tool_call(
                plugin,
                json!({"attack": "fds"}),
            ))
            .await
            .expect("a verdict")
            .into_inner();
        assert_eq!(verdict.decided_by, plugin, "{verdict:?}");
        assert!(
            verdict.block_reason.contains(r#""ok":false"#),
            "{plugin} inherited a descriptor: {}",
            verdict.block_reason
        );
    }
}
