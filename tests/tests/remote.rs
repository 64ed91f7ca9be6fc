//! Issue 23 §1, remote plugins (contract §2.6): a `[[plugin]] endpoint` reached over TCP with
//! mutual TLS, served by each SDK's remote mode (Rust, Python, TypeScript, Go: real TLS servers
//! in each language) with certificates made for the test (a CA, a server, a client; a second,
//! unrelated CA). Allow and block through the real `hookvisor serve`; every failure blocks,
//! naming the plugin and the cause: nothing listening, a server from another CA, a wrong name,
//! a pinned key that differs, a server that never finishes TLS, a client certificate the server
//! refuses; `RestartPlugin` dials again; `status` shows the endpoint; `check-config` refuses the
//! mixes §2.6 names and unreadable TLS files.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::admin_client::AdminClient;
use hookvisor_proto::v1::{
    BlockKind, Failure, ListPluginsRequest, Outcome, PluginStatus, RestartPluginRequest,
    ToolCallVerdict,
};
use hookvisor_tests::harness::{Supervisor, TestDir, binary, hookvisor, repo_root, toml_string};
use hookvisor_tests::languages::{self, python_plugin};
use hookvisor_tests::pki::Pki;
use serde_json::json;

/// How long a remote plugin may take to listen (a Python or Node start on a loaded machine).
const LISTEN_DEADLINE: Duration = Duration::from_secs(30);

/// A plugin process in its SDK's remote mode; killed on drop.
struct RemotePlugin {
    child: Child,
    address: String,
    stderr: Arc<Mutex<String>>,
}

impl RemotePlugin {
    /// Starts `program args` with the remote-mode environment and `env`, and waits for the
    /// line that says where it listens.
    fn start(program: &Path, args: &[String], env: &[(String, String)]) -> RemotePlugin {
        let mut child = Command::new(program)
            .args(args)
            .env_remove("HOOKVISOR_MAGIC_COOKIE")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("stderr pipe");
        let text = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("hookvisor plugin listening on ").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = found.send(address);
                }
                let mut text = text.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        let address = address.recv_timeout(LISTEN_DEADLINE).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "{} did not say where it listens within {LISTEN_DEADLINE:?}: {}",
                program.display(),
                stderr.lock().map(|s| s.clone()).unwrap_or_default()
            )
        });
        RemotePlugin {
            child,
            address,
            stderr,
        }
    }

    fn port(&self) -> u16 {
        self.address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {:?}", self.address))
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RemotePlugin {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Rust `deny-list` example in remote mode.
fn deny_list(pki: &Pki, server: &str, client_ca: &str) -> RemotePlugin {
    deny_list_at(pki, server, client_ca, "127.0.0.1:0")
}

/// [`deny_list`] listening on `address`.
fn deny_list_at(pki: &Pki, server: &str, client_ca: &str, address: &str) -> RemotePlugin {
    let mut env = pki.server_env(server, client_ca);
    env[0].1 = address.to_owned();
    env.push((
        "HOOKVISOR_DENY_LIST".to_owned(),
        repo_root()
            .join("examples/deny-list.txt")
            .display()
            .to_string(),
    ));
    RemotePlugin::start(&binary("deny-list"), &[], &env)
}

/// A block by `plugin`'s failure whose reason holds every needle.
fn assert_failure(verdict: &ToolCallVerdict, plugin: &str, needles: &[&str]) {
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:?}");
    assert_eq!(verdict.decided_by, plugin, "{verdict:?}");
    assert_eq!(verdict.block_kind(), BlockKind::Failure, "{verdict:?}");
    assert!(
        verdict.block_reason.contains(&format!("'{plugin}'")),
        "{verdict:?}"
    );
    for needle in needles {
        assert!(
            verdict.block_reason.contains(needle),
            "{needle:?} not in {:?}",
            verdict.block_reason
        );
    }
}

async fn admin(supervisor: &Supervisor) -> AdminClient<tonic::transport::Channel> {
    let channel = hookvisor_tests::harness::connect(supervisor.socket())
        .await
        .expect("connecting to the host socket");
    AdminClient::new(channel)
}

/// `ListPlugins`: every plugin's status.
async fn statuses(supervisor: &Supervisor) -> Vec<PluginStatus> {
    admin(supervisor)
        .await
        .list_plugins(ListPluginsRequest {})
        .await
        .expect("ListPlugins")
        .into_inner()
        .plugins
}

/// The `deny-list` example in remote mode and a supervisor reaching it as the trusted
/// `org-policy`.
async fn org_policy(pki: &Pki) -> (RemotePlugin, Supervisor) {
    let server = deny_list(pki, "server", "ca");
    let body = pki.plugin(
        "org-policy",
        &format!("127.0.0.1:{}", server.port()),
        &["trusted = true", "timeout_ms = 2000"],
        &[],
    );
    (server, Supervisor::start(&body).await)
}

/// Polls the verdict of `tool` until `done` holds (the plugin dials with backoff).
async fn verdict_until(
    supervisor: &Supervisor,
    tool: &str,
    limit: Duration,
    done: impl Fn(&ToolCallVerdict) -> bool,
) -> ToolCallVerdict {
    let deadline = Instant::now() + limit;
    loop {
        let verdict = supervisor.verdict(tool, json!({"command": "ls"})).await;
        if done(&verdict) || Instant::now() >= deadline {
            return verdict;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Rust SDK's remote mode behind a real supervisor: allow, block with the plugin's
/// reason, the endpoint in `status`; the server killed: calls block naming the plugin and the
/// refused connection; started again on the same port and `RestartPlugin`: allowed again.
#[tokio::test]
async fn a_remote_rust_plugin_decides_and_a_dead_one_blocks() {
    let pki = Pki::new();
    let mut server = deny_list(&pki, "server", "ca");
    let port = server.port();
    let body = pki.plugin(
        "org-policy",
        &format!("127.0.0.1:{port}"),
        &["trusted = true", "timeout_ms = 2000"],
        &["server_name = \"localhost\""],
    );
    let audit = TestDir::new();
    let audit_path = audit.join("decisions.jsonl");
    let body = format!(
        "{body}\n[audit]\npath = {}\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        toml_string(&audit_path.display().to_string())
    );
    let supervisor = Supervisor::start(&body).await;

    let allowed = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(allowed.outcome(), Outcome::Allow, "{allowed:?}");
    let blocked = supervisor
        .verdict("exec", json!({"command": "rm -rf /"}))
        .await;
    assert_eq!(blocked.outcome(), Outcome::Block, "{blocked:?}");
    assert_eq!(blocked.decided_by, "org-policy");
    assert_eq!(blocked.block_kind(), BlockKind::Policy, "{blocked:?}");

    let plugins = statuses(&supervisor).await;
    assert_eq!(plugins.len(), 1);
    assert_eq!(plugins[0].state, "ready");
    assert_eq!(plugins[0].endpoint, format!("https://127.0.0.1:{port}"));
    assert_eq!(plugins[0].pid, 0, "a remote plugin has no process here");
    assert_eq!((plugins[0].calls, plugins[0].blocks), (2, 1), "{plugins:?}");
    // Metrics and the audit log as for a local plugin.
    let metrics = supervisor.metrics().await;
    assert!(
        metrics.contains("hookvisor_plugin_up{plugin=\"org-policy\"} 1"),
        "{metrics}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let audited = loop {
        let text = std::fs::read_to_string(&audit_path).unwrap_or_default();
        if text.lines().count() >= 2 || Instant::now() >= deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        audited
            .lines()
            .any(|l| l.contains("\"decided_by\":\"org-policy\"")),
        "{audited}"
    );

    server.kill();
    let down = verdict_until(&supervisor, "exec", Duration::from_secs(10), |v| {
        v.block_reason.contains("Connection refused")
    })
    .await;
    assert_failure(
        &down,
        "org-policy",
        &[&format!("https://127.0.0.1:{port}"), "Connection refused"],
    );

    // Back on the same port: an operator's restart dials again at once.
    let _back = deny_list_at(&pki, "server", "ca", &format!("127.0.0.1:{port}"));
    let restarted = admin(&supervisor)
        .await
        .restart_plugin(RestartPluginRequest {
            name: "org-policy".to_owned(),
        })
        .await
        .expect("RestartPlugin")
        .into_inner();
    assert_eq!(restarted.state, "ready", "{restarted:?}");
    let again = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(again.outcome(), Outcome::Allow, "{again:?}");
}

/// Every way the supervisor's side of TLS can refuse a server blocks, naming the plugin and
/// the cause: a server from another CA, a name the certificate does not hold, a pinned public
/// key that differs (the right pin passes), nothing listening, a server that accepts TCP and
/// never speaks TLS; and a server that refuses the supervisor's client certificate.
#[tokio::test]
async fn every_tls_failure_blocks_with_its_cause() {
    let pki = Pki::new();
    let good = deny_list(&pki, "server", "ca");
    let rogue = deny_list(&pki, "other-server", "ca");
    let picky = deny_list(&pki, "server", "other-ca");
    let silent = TcpListener::bind("127.0.0.1:0").expect("a silent listener");
    let silent_port = silent.local_addr().expect("address").port();
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("address").port()
    };
    let pin = |digest: &[u8; 32]| {
        format!(
            "spki_sha256 = \"{}\"",
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    };
    let right_pin = pin(&pki.server_spki);
    let wrong_pin = pin(&[7u8; 32]);
    let at = |p: &RemotePlugin| format!("127.0.0.1:{}", p.port());
    let keys = ["trusted = true", "timeout_ms = 2000"];
    let cases: Vec<(String, String, &[&str])> = vec![
        (
            "other-ca".into(),
            pki.plugin("other-ca", &at(&rogue), &keys, &[]),
            &["certificate was refused", "UnknownIssuer"],
        ),
        (
            "wrong-name".into(),
            pki.plugin(
                "wrong-name",
                &at(&good),
                &keys,
                &["server_name = \"elsewhere.test\""],
            ),
            &["certificate was refused", "NotValidForName"],
        ),
        (
            "wrong-pin".into(),
            pki.plugin("wrong-pin", &at(&good), &keys, &[&wrong_pin]),
            &["is not the pinned spki_sha256"],
        ),
        (
            "nobody-home".into(),
            pki.plugin(
                "nobody-home",
                &format!("127.0.0.1:{closed_port}"),
                &keys,
                &[],
            ),
            &["Connection refused"],
        ),
        (
            "silent".into(),
            pki.plugin("silent", &format!("127.0.0.1:{silent_port}"), &keys, &[]),
            &["did not complete TLS and Describe"],
        ),
        (
            "refuses-us".into(),
            pki.plugin("refuses-us", &at(&picky), &keys, &[]),
            &["https://127.0.0.1"],
        ),
    ];
    let pinned = pki.plugin("pinned", &at(&good), &keys, &[&right_pin]);
    let body: String = cases
        .iter()
        .map(|(_, table, _)| table.as_str())
        .chain([pinned.as_str()])
        .collect();
    let supervisor = Supervisor::builder(&body)
        .supervisor_key("start_timeout_ms = 3000")
        .start()
        .await;
    // Each plugin alone, so its own failure decides the verdict.
    for (name, table, needles) in &cases {
        let alone = Supervisor::builder(table)
            .supervisor_key("start_timeout_ms = 3000")
            .start()
            .await;
        let verdict = alone.verdict("exec", json!({"command": "ls"})).await;
        assert_failure(&verdict, name, needles);
        assert_eq!(
            verdict.trace[0].failure(),
            Failure::Unavailable,
            "{verdict:?}"
        );
    }
    let first = statuses(&supervisor).await;
    // No process to restart, but the same backoff and quarantine: refused dials in a row.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let plugins = statuses(&supervisor).await;
        let state = plugins
            .iter()
            .find(|p| p.name == "nobody-home")
            .map(|p| (p.state.clone(), p.last_error.clone()));
        if let Some((state, last_error)) = &state
            && state == "quarantined"
        {
            assert!(last_error.contains("Connection refused"), "{last_error}");
            break;
        }
        assert!(Instant::now() < deadline, "not quarantined: {state:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pinned_state = first.iter().find(|p| p.name == "pinned").map(|p| &p.state);
    assert_eq!(pinned_state.map(String::as_str), Some("ready"), "{first:?}");
    drop(silent);
    assert!(good.stderr().contains("listening on"));
}

/// A remote plugin in each other SDK language, served by that SDK's remote mode: Python's
/// budget guard, Go's path guard, TypeScript's secret guard, each allowing and blocking through
/// the supervisor over mutual TLS (by the name `localhost`, as a DNS name).
#[tokio::test]
async fn python_go_and_typescript_plugins_serve_remotely() {
    let pki = Pki::new();
    let mut python_env = pki.server_env("server", "ca");
    python_env.push(("BUDGET_MAX_CALLS".to_owned(), "1".to_owned()));
    let python = python_plugin("examples/python/budget_guard.py", &[]);
    let go = languages::go_plugin("path-guard");
    let ts = languages::node_plugin("examples/typescript/dist/secret-guard.js", &[]);
    let key = "AKIAABCDEFGHIJKLMNOP";
    let cases = [
        (
            "budget",
            RemotePlugin::start(&python.program, &python.args, &python_env),
            ("exec", json!({"command": "ls"})),
            ("exec", json!({"command": "ls"})),
            "budget of 1",
        ),
        (
            "path-guard",
            RemotePlugin::start(&go.program, &go.args, &pki.server_env("server", "ca")),
            ("read", json!({"path": "src/../a.txt"})),
            ("write", json!({"file_path": "../../etc/passwd"})),
            "escapes the workspace",
        ),
        (
            "secret-guard",
            RemotePlugin::start(&ts.program, &ts.args, &pki.server_env("server", "ca")),
            ("exec", json!({"command": "ls"})),
            ("exec", json!({"env": {"KEY": key}})),
            "$.env.KEY",
        ),
    ];
    for (name, server, (allow_tool, allow_params), (block_tool, block_params), reason) in cases {
        let address = format!("localhost:{}", server.port());
        let body = pki.plugin(name, &address, &["timeout_ms = 3000"], &[]);
        let supervisor = Supervisor::start(&body).await;
        let allowed = supervisor.verdict(allow_tool, allow_params).await;
        assert_eq!(allowed.outcome(), Outcome::Allow, "{name}: {allowed:?}");
        let blocked = supervisor.verdict(block_tool, block_params).await;
        assert_eq!(blocked.outcome(), Outcome::Block, "{name}: {blocked:?}");
        assert_eq!(blocked.decided_by, name, "{blocked:?}");
        assert_eq!(blocked.block_kind(), BlockKind::Policy, "{blocked:?}");
        assert!(blocked.block_reason.contains(reason), "{name}: {blocked:?}");
        assert!(
            server
                .stderr()
                .contains("(TLS, client certificates required)"),
            "{name}: {}",
            server.stderr()
        );
    }
}

/// `check-config` refuses what §2.6 excludes, naming the key and its line, and names an
/// unreadable TLS file.
#[test]
fn check_config_refuses_remote_mixes_and_missing_files() {
    let pki = Pki::new();
    let dir = TestDir::new();
    // A certificate file past the 1 MiB bound: refused before it is parsed.
    let mut huge = std::fs::read_to_string(pki.path("client.pem")).expect("client.pem");
    while huge.len() <= 1024 * 1024 {
        huge = huge.repeat(2);
    }
    std::fs::write(pki.path("huge.pem"), huge).expect("huge.pem");
    let table = pki.plugin("p", "127.0.0.1:8443", &[], &[]);
    let cases: Vec<(String, &str)> = vec![
        (
            table.replace("endpoint =", "command = \"/bin/true\"\nendpoint ="),
            "key `command`: a plugin with an `endpoint` is reached over the network",
        ),
        (table.replace("https://", "http://"), "is plain HTTP"),
        (
            table.replace("https://127.0.0.1:8443", "https://127.0.0.1:8443/v1/x"),
            "has a path",
        ),
        (
            table[..table.find("[plugin.tls]").expect("tls table")].to_owned(),
            "needs a [plugin.tls] table",
        ),
        (
            format!("{table}[plugin.sandbox]\nnetwork = true\n"),
            "[plugin.sandbox] has nothing to confine",
        ),
        (
            table.replace("client.key", "missing.key"),
            "[plugin.tls] key",
        ),
        (
            table.replace("client.pem", "client.key"),
            "no PEM certificate",
        ),
        (
            table.replace(
                &toml_string(&pki.path("ca.pem").display().to_string()),
                "\"/dev/zero\"",
            ),
            "larger than 1048576 bytes",
        ),
        (
            table.replace("client.pem", "huge.pem"),
            "larger than 1048576 bytes",
        ),
        (
            format!("{table}spki_sha256 = \"abc\"\n"),
            "key `spki_sha256`",
        ),
    ];
    for (i, (body, needle)) in cases.iter().enumerate() {
        let config = dir.join(&format!("case-{i}.toml"));
        let text = format!(
            "[supervisor]\nsocket = {}\nruntime_dir = {}\n{body}",
            toml_string(&dir.join("h.sock").display().to_string()),
            toml_string(&dir.join("run").display().to_string())
        );
        std::fs::write(&config, text).expect("config");
        let output = Command::new(hookvisor())
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .expect("check-config");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "case {i} passed: {body}");
        assert!(err.contains(needle), "case {i}: {needle:?} not in {err}");
    }
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        format!(
            "[supervisor]\nsocket = {}\nruntime_dir = {}\n{table}",
            toml_string(&dir.join("h.sock").display().to_string()),
            toml_string(&dir.join("run").display().to_string())
        ),
    )
    .expect("config");
    let output = Command::new(hookvisor())
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .expect("check-config");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A remote connection whose peer stops answering (a stopped process here; a middlebox that
/// drops an idle connection without a word in production) is closed by the keep-alive PINGs
/// rather than left for the next call to wait on until its deadline; once the peer answers
/// again, calls are allowed on a new connection.
#[tokio::test]
async fn a_silent_remote_connection_is_closed_by_keep_alive() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let pki = Pki::new();
    let (server, supervisor) = org_policy(&pki).await;
    let allowed = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(allowed.outcome(), Outcome::Allow, "{allowed:?}");

    let pid = Pid::from_raw(i32::try_from(server.child.id()).expect("pid"));
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
    let deadline = Instant::now() + Duration::from_secs(40);
    let closed = loop {
        if supervisor.log().contains("no answer to a keep-alive PING") {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    kill(pid, Signal::SIGCONT).expect("SIGCONT");
    assert!(
        closed,
        "no keep-alive closure logged: {}",
        supervisor.log_tail()
    );
    let again = verdict_until(&supervisor, "exec", Duration::from_secs(40), |v| {
        v.outcome() == Outcome::Allow
    })
    .await;
    assert_eq!(again.outcome(), Outcome::Allow, "{again:?}");
}

/// An upgrade in place hands no remote plugin over (it has no process): the new image dials it
/// again before it takes calls.
#[tokio::test]
async fn an_upgrade_dials_a_remote_plugin_again() {
    let pki = Pki::new();
    let (_server, supervisor) = org_policy(&pki).await;
    let before = supervisor
        .verdict("exec", json!({"command": "rm -rf /"}))
        .await;
    assert_eq!(before.outcome(), Outcome::Block, "{before:?}");
    let output = Command::new(hookvisor())
        .arg("upgrade")
        .arg("--socket")
        .arg(supervisor.socket())
        .output()
        .expect("hookvisor upgrade");
    assert!(
        output.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        supervisor.log_tail()
    );
    let plugins = statuses(&supervisor).await;
    assert_eq!(plugins[0].state, "ready", "{plugins:?}");
    let allowed = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(allowed.outcome(), Outcome::Allow, "{allowed:?}");
    let blocked = supervisor
        .verdict("exec", json!({"command": "rm -rf /"}))
        .await;
    assert_eq!(blocked.outcome(), Outcome::Block, "{blocked:?}");
    assert_eq!(blocked.decided_by, "org-policy");
}
