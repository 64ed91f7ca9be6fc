//! The fixtures themselves, without a supervisor: each is started the way hookvisor starts a
//! plugin (cleared environment, `HOOKVISOR_*`, own process group) and checked to do the one
//! thing it is for, so a failing supervisor test is never a broken fixture.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::plugin_client::PluginClient;
use hookvisor_proto::v1::{
    BeforeSessionCreateRequest, BeforeToolCallRequest, DescribeRequest, Hook, SessionCreatedEvent,
    Stage,
};
use hookvisor_tests::harness::{Recording, TestDir, connect, context, fixture, json, wait_gone};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

struct Running {
    child: Child,
    socket: PathBuf,
    _dir: TestDir,
}

impl Running {
    fn start(name: &str, env: &[(&str, &str)]) -> Running {
        let dir = TestDir::new();
        let socket = dir.join("p.sock");
        let mut command = Command::new(fixture(name));
        command
            .env_clear()
            .env(hookvisor_proto::env::PLUGIN_SOCKET, &socket)
            .env(hookvisor_proto::env::PLUGIN_NAME, "standalone")
            .env(hookvisor_proto::env::PROTOCOL_VERSION, "1")
            .env(
                hookvisor_proto::env::MAGIC_COOKIE,
                hookvisor_proto::MAGIC_COOKIE,
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let child = command.spawn().expect("spawning the fixture");
        Running {
            child,
            socket,
            _dir: dir,
        }
    }

    async fn client(&self) -> PluginClient<Channel> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.socket.exists()
                && let Ok(channel) = connect(&self.socket).await
            {
                return PluginClient::new(channel);
            }
            assert!(Instant::now() < deadline, "the fixture never served");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The pid that called `listen()` on the socket.
    async fn listener_pid(&self) -> i32 {
        self.client().await;
        let stream = tokio::net::UnixStream::connect(&self.socket).await.unwrap();
        stream.peer_cred().unwrap().pid().expect("peer pid")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn tool_request(params: serde_json::Value) -> BeforeToolCallRequest {
    BeforeToolCallRequest {
        tool_name: "exec".to_owned(),
        params_json: params.to_string(),
        context: Some(context()),
        session_metadata_json: "{\"k\":1}".to_owned(),
        deadline_ms: 1234,
    }
}

#[tokio::test]
async fn recorder_describes_records_and_answers() {
    let recording = Recording::new();
    let path = recording.path().display().to_string();
    let plugin = Running::start(
        "fixture-recorder",
        &[
            ("FIXTURE_RECORD", &path),
            ("FIXTURE_STAGE", "policy"),
            ("FIXTURE_HOOKS", "before_tool_call,session_created"),
            ("FIXTURE_TOOLS", "exec,read"),
            ("FIXTURE_PRIORITY", "42"),
            ("FIXTURE_ACTION", "merge:{\"added\":1}"),
        ],
    );
    let mut client = plugin.client().await;
    let info = client
        .describe(DescribeRequest {
            protocol_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.protocol_version, 1);
    assert_eq!(info.hooks.len(), 2);
    assert_eq!(info.hooks[0].hook(), Hook::BeforeToolCall);
    assert_eq!(info.hooks[1].hook(), Hook::SessionCreated);
    assert_eq!(info.hooks[0].stage(), Stage::Policy);
    assert_eq!(info.hooks[0].priority, 42);
    assert_eq!(info.hooks[0].tools, ["exec", "read"]);

    let decision = client
        .before_tool_call(tool_request(json!({"command": "ls"})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        json(decision.params_json.as_deref().unwrap()),
        json!({"command": "ls", "added": 1})
    );
    client
        .session_created(SessionCreatedEvent {
            session_key: "s".to_owned(),
            session_id: "id".to_owned(),
            agent_id: "a".to_owned(),
            session_metadata_json: String::new(),
        })
        .await
        .unwrap();

    let start = recording.start_of("standalone");
    assert_eq!(start["pid"].as_i64(), Some(i64::from(plugin.pid())));
    assert_eq!(start["pgid"], start["pid"]);
    assert_eq!(start["stdin"], "/dev/null");
    let calls = recording.calls_of("standalone");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["hook"], "before_tool_call");
    assert_eq!(calls[0]["tool"], "exec");
    assert_eq!(
        json(calls[0]["params_json"].as_str().unwrap()),
        json!({"command": "ls"})
    );
    assert_eq!(calls[0]["session_metadata_json"], "{\"k\":1}");
    assert_eq!(calls[0]["deadline_ms"], 1234);
    assert_eq!(calls[1]["hook"], "session_created");
}

#[tokio::test]
async fn recorder_actions() {
    let cases = [
        ("allow", json!({"command": "ls"}), None, false, None),
        ("block:no", json!({}), None, true, None),
        ("block-tool:exec", json!({}), None, true, None),
        ("block-tool:read", json!({}), None, false, None),
        (
            "block-if:command=rm",
            json!({"command": "rm"}),
            None,
            true,
            None,
        ),
        (
            "block-if:command=rm",
            json!({"command": "ls"}),
            None,
            false,
            None,
        ),
        ("block-if:n=3", json!({"n": 3}), None, true, None),
        (
            "rewrite:{\"x\":1}",
            json!({}),
            Some("{\"x\":1}"),
            false,
            None,
        ),
        ("approve:Sure?", json!({}), None, false, Some("Sure?")),
    ];
    for (action, params, rewrite, block, approval) in cases {
        let plugin = Running::start("fixture-recorder", &[("FIXTURE_ACTION", action)]);
        let decision = plugin
            .client()
            .await
            .before_tool_call(tool_request(params))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decision.params_json.as_deref(), rewrite, "{action}");
        assert_eq!(decision.block, block, "{action}");
        assert_eq!(
            decision.require_approval.map(|a| a.title).as_deref(),
            approval,
            "{action}"
        );
    }
    let plugin = Running::start("fixture-recorder", &[("FIXTURE_ACTION", "patch:{\"p\":1}")]);
    let decision = plugin
        .client()
        .await
        .before_session_create(BeforeSessionCreateRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision.metadata_json.as_deref(), Some("{\"p\":1}"));
}

#[tokio::test]
async fn slow_answers_after_its_delay() {
    let plugin = Running::start("fixture-slow", &[("FIXTURE_DELAY_MS", "300")]);
    let mut client = plugin.client().await;
    let started = Instant::now();
    client
        .before_tool_call(tool_request(json!({})))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn hang_never_answers() {
    let plugin = Running::start("fixture-hang", &[]);
    let mut client = plugin.client().await;
    client
        .describe(DescribeRequest {
            protocol_version: 1,
        })
        .await
        .unwrap();
    let call = client.before_tool_call(tool_request(json!({})));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), call)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn hang_answers_cancelled_when_grpc_timeout_runs_out() {
    // tonic's own server behaviour, which every Rust plugin (and the SDK) inherits.
    let plugin = Running::start("fixture-hang", &[]);
    let mut request = tonic::Request::new(tool_request(json!({})));
    request.set_timeout(Duration::from_millis(300));
    let status = plugin
        .client()
        .await
        .before_tool_call(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
}

#[tokio::test]
async fn hang_ignoring_deadlines_serves_without_tonics_server() {
    // A tonic client enforces its own `grpc-timeout`, so only the serving path is checked
    // here; the supervisor tests show the difference.
    let plugin = Running::start("fixture-hang", &[("FIXTURE_IGNORE_DEADLINE", "1")]);
    let mut client = plugin.client().await;
    let info = client
        .describe(DescribeRequest {
            protocol_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.protocol_version, 1);
    let call = client.before_tool_call(tool_request(json!({})));
    let result = tokio::time::timeout(Duration::from_millis(500), call).await;
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn exit_mid_call_exits_3_during_the_call() {
    let mut plugin = Running::start("fixture-exit-mid-call", &[]);
    let mut client = plugin.client().await;
    client
        .describe(DescribeRequest {
            protocol_version: 1,
        })
        .await
        .unwrap();
    assert!(
        client
            .before_tool_call(tool_request(json!({})))
            .await
            .is_err()
    );
    assert_eq!(plugin.child.wait().unwrap().code(), Some(3));
}

#[tokio::test]
async fn error_answers_permission_denied() {
    let plugin = Running::start("fixture-error", &[]);
    let status = plugin
        .client()
        .await
        .before_tool_call(tool_request(json!({})))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "nope");
}

#[tokio::test]
async fn protocol_2_says_so() {
    let plugin = Running::start("fixture-protocol-2", &[]);
    let info = plugin
        .client()
        .await
        .describe(DescribeRequest {
            protocol_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.protocol_version, 2);
}

#[tokio::test]
async fn bad_params_break_the_contract_as_named() {
    for (bad, check) in [
        (
            "not-json",
            (|t: &str| serde_json::from_str::<serde_json::Value>(t).is_err()) as fn(&str) -> bool,
        ),
        ("array", |t| json(t).is_array()),
        ("huge", |t| t.len() > 262_144 && json(t).is_object()),
        ("deep", |t| {
            t.matches('{').count() == 40 && json(t).is_object()
        }),
    ] {
        let plugin = Running::start("fixture-bad-params", &[("FIXTURE_BAD", bad)]);
        let decision = plugin
            .client()
            .await
            .before_tool_call(tool_request(json!({})))
            .await
            .unwrap()
            .into_inner();
        assert!(check(decision.params_json.as_deref().unwrap()), "{bad}");
    }
}

#[tokio::test]
async fn bad_approval_breaks_the_contract_as_named() {
    for bad in ["empty-title", "long-title", "long-description", "timeout"] {
        let plugin = Running::start("fixture-bad-approval", &[("FIXTURE_BAD", bad)]);
        let approval = plugin
            .client()
            .await
            .before_tool_call(tool_request(json!({})))
            .await
            .unwrap()
            .into_inner()
            .require_approval
            .unwrap();
        let broken = match bad {
            "empty-title" => approval.title.is_empty(),
            "long-title" => approval.title.chars().count() == 81,
            "long-description" => approval.description.chars().count() == 513,
            _ => approval.timeout_ms == 600_001,
        };
        assert!(broken, "{bad}: {approval:?}");
    }
}

#[tokio::test]
async fn exit_at_start_exits_7_with_a_line_on_stderr() {
    let mut plugin = Running::start("fixture-exit-at-start", &[]);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut plugin.child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(plugin.child.wait().unwrap().code(), Some(7));
    assert_eq!(stderr, "fixture-exit-at-start: giving up\n");
}

#[tokio::test]
async fn no_bind_never_binds() {
    let mut plugin = Running::start("fixture-no-bind", &[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!plugin.socket.exists());
    assert!(plugin.child.try_wait().unwrap().is_none());
}

#[tokio::test]
async fn peer_mismatch_serves_from_another_session() {
    let plugin = Running::start("fixture-peer-mismatch", &[]);
    let listener = plugin.listener_pid().await;
    assert_ne!(listener, plugin.pid());
    let pgid = nix::unistd::getpgid(Some(Pid::from_raw(listener))).unwrap();
    assert_eq!(pgid.as_raw(), listener, "the server leads its own group");
    let sid = nix::unistd::getsid(Some(Pid::from_raw(listener))).unwrap();
    assert_eq!(sid.as_raw(), listener, "the server leads its own session");
    drop(plugin);
    assert!(
        wait_gone(listener, Duration::from_secs(3)).await,
        "the escaped server must follow its parent"
    );
}

#[tokio::test]
async fn launcher_serves_from_a_child_in_its_group() {
    let plugin = Running::start("fixture-launcher", &[("FIXTURE_ACTION", "block:child")]);
    let listener = plugin.listener_pid().await;
    assert_ne!(listener, plugin.pid());
    let pgid = nix::unistd::getpgid(Some(Pid::from_raw(listener))).unwrap();
    assert_eq!(pgid.as_raw(), plugin.pid());
    let decision = plugin
        .client()
        .await
        .before_tool_call(tool_request(json!({})))
        .await
        .unwrap()
        .into_inner();
    assert!(decision.block);
}

#[tokio::test]
async fn flood_fills_its_pipes_and_blocks_when_nobody_reads() {
    // stderr is a pipe nobody reads here: once it is full, the flood's answer (which first
    // writes to stderr) must hang. That is what makes the supervisor test meaningful.
    let plugin = Running::start("fixture-flood", &[]);
    let mut client = plugin.client().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let call = client.before_tool_call(tool_request(json!({})));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), call)
            .await
            .is_err(),
        "the flood answered with a full stderr pipe"
    );
}
