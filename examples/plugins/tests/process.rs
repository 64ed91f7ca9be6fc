//! The example binaries as real processes: the handshake environment, gRPC on the socket,
//! SIGTERM, crashes and hangs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hookvisor_plugin::proto::plugin_client::PluginClient;
use hookvisor_plugin::proto::{self, Stage};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tonic::transport::{Channel, Endpoint};

const COOKIE: &str = "d7f0c2a4-hookvisor-plugin-v1";

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("hvx-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `bin` to completion with exactly `env` (nothing inherited).
fn run_to_exit(bin: &str, env: &[(&str, &str)]) -> Output {
    Command::new(bin)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A plugin process started the way hookvisor starts one, with a connected channel.
struct Running {
    child: Child,
    socket: PathBuf,
    channel: Channel,
    _dir: TempDir,
}

async fn start(bin: &str, name: &str, env: &[(&str, &str)]) -> Running {
    let dir = TempDir::new();
    let socket = dir.0.join(format!("{name}.sock"));
    let child = Command::new(bin)
        .env_clear()
        .env("HOOKVISOR_MAGIC_COOKIE", COOKIE)
        .env("HOOKVISOR_PLUGIN_SOCKET", &socket)
        .env("HOOKVISOR_PLUGIN_NAME", name)
        .env("HOOKVISOR_PROTOCOL_VERSION", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let channel = loop {
        let endpoint = Endpoint::from_shared(format!("unix://{}", socket.display())).unwrap();
        if let Ok(channel) = endpoint.connect().await {
            break channel;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not serve on {}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Running {
        child,
        socket,
        channel,
        _dir: dir,
    }
}

impl Running {
    fn client(&self) -> PluginClient<Channel> {
        PluginClient::new(self.channel.clone())
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits up to `limit` for the process to exit.
    async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process still running after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(tool: &str, params_json: &str) -> proto::BeforeToolCallRequest {
    proto::BeforeToolCallRequest {
        tool_name: tool.into(),
        params_json: params_json.into(),
        ..Default::default()
    }
}

#[test]
fn run_by_hand_explains_and_exits_1() {
    let out = run_to_exit(env!("CARGO_BIN_EXE_deny-list"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("this is a hookvisor plugin; it is started by hookvisor"),
        "stderr: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn wrong_cookie_is_the_same_as_none() {
    let out = run_to_exit(
        env!("CARGO_BIN_EXE_demo-hang"),
        &[("HOOKVISOR_MAGIC_COOKIE", "nope")],
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn missing_or_relative_socket_exits_1() {
    let bin = env!("CARGO_BIN_EXE_demo-hang");
    let out = run_to_exit(bin, &[("HOOKVISOR_MAGIC_COOKIE", COOKIE)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOOKVISOR_PLUGIN_SOCKET is not set"));

    let out = run_to_exit(
        bin,
        &[
            ("HOOKVISOR_MAGIC_COOKIE", COOKIE),
            ("HOOKVISOR_PLUGIN_SOCKET", "rel.sock"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be an absolute path"));
}

#[test]
fn deny_list_without_its_file_fails_closed_with_exit_1() {
    let dir = TempDir::new();
    let socket = dir.0.join("d.sock");
    let out = run_to_exit(
        env!("CARGO_BIN_EXE_deny-list"),
        &[
            ("HOOKVISOR_MAGIC_COOKIE", COOKIE),
            ("HOOKVISOR_PLUGIN_SOCKET", socket.to_str().unwrap()),
            ("HOOKVISOR_DENY_LIST", "/nonexistent/deny.txt"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read deny list /nonexistent/deny.txt"),
        "{stderr}"
    );
    assert!(!socket.exists());
}

#[tokio::test]
async fn deny_list_serves_blocks_and_stops_cleanly_on_sigterm() {
    let lists = TempDir::new();
    let list = lists.0.join("deny.txt");
    std::fs::write(&list, "# test\ntool dangerous_tool\ncommand rm -rf /\n").unwrap();
    let mut plugin = start(
        env!("CARGO_BIN_EXE_deny-list"),
        "deny-list",
        &[("HOOKVISOR_DENY_LIST", list.to_str().unwrap())],
    )
    .await;
    let mut client = plugin.client();

    let info = client
        .describe(proto::DescribeRequest {
            protocol_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (info.name.as_str(), info.protocol_version),
        ("deny-list", 1)
    );
    assert_eq!(info.hooks[0].stage, Stage::Policy as i32);
    assert!(info.hooks[0].tools.is_empty());

    let d = client
        .before_tool_call(call("exec", r#"{"command":"rm -rf /"}"#))
        .await
        .unwrap()
        .into_inner();
    assert!(d.block);
    assert_eq!(d.block_reason, "command matches deny pattern 'rm -rf /'");
    let d = client
        .before_tool_call(call("dangerous_tool", "{}"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.block_reason, "tool 'dangerous_tool' is on the deny list");
    let d = client
        .before_tool_call(call("exec", r#"{"command":"ls"}"#))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d, proto::ToolCallDecision::default());

    drop(client);
    plugin.signal(Signal::SIGTERM);
    let status = plugin.exit_within(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0));
    assert!(!plugin.socket.exists(), "socket removed on exit");
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new();
    let stale = dir.0.join("demo-hang.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    // A socket file left behind by an earlier run, with nobody listening on it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo-hang"))
        .env_clear()
        .env("HOOKVISOR_MAGIC_COOKIE", COOKIE)
        .env("HOOKVISOR_PLUGIN_SOCKET", &stale)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let endpoint = Endpoint::from_shared(format!("unix://{}", stale.display())).unwrap();
        if endpoint.connect().await.is_ok() {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "plugin exited instead of replacing the socket"
        );
        assert!(Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn demo_crash_exits_101_on_a_call() {
    let mut plugin = start(env!("CARGO_BIN_EXE_demo-crash"), "demo-crash", &[]).await;
    let result = plugin
        .client()
        .before_tool_call(call("crash-me", "{}"))
        .await;
    assert!(result.is_err(), "{result:?}");
    let status = plugin.exit_within(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(101));
}

#[tokio::test]
async fn demo_hang_never_answers_but_still_stops_on_sigterm() {
    let mut plugin = start(env!("CARGO_BIN_EXE_demo-hang"), "demo-hang", &[]).await;
    let mut client = plugin.client();
    let call = tokio::spawn(async move { client.before_tool_call(call("hang-me", "{}")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "demo-hang answered");

    plugin.signal(Signal::SIGTERM);
    let status = plugin.exit_within(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "exits after the drain limit");
    assert!(!Path::new(&plugin.socket).exists());
    assert!(
        call.await.unwrap().is_err(),
        "the hung call ends with an error"
    );
}
