//! The SDK's gRPC server over a real Unix socket: Describe, hooks, health, invalid params, shutdown.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use hookvisor_plugin::proto::plugin_client::PluginClient;
use hookvisor_plugin::serde_json::json;
use hookvisor_plugin::{
    Info, Plugin, Registration, SessionCreate, Stage, Status, ToolCall, decision, proto, session,
};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Blocks tool `bad`, rewrites `path` to upper case, patches session metadata with the agent id.
struct Fixture;

impl Plugin for Fixture {
    fn info(&self) -> Info {
        Info::new("fixture", "0.0.1")
            .hook(
                Registration::before_tool_call()
                    .stage(Stage::Policy)
                    .priority(7),
            )
            .hook(Registration::before_session_create())
    }

    async fn before_tool_call(&self, call: ToolCall) -> Result<proto::ToolCallDecision, Status> {
        if call.tool_name == "bad" {
            return Ok(decision::block("bad tool"));
        }
        let mut params = call.params;
        if let Some(path) = params.get("path").and_then(|p| p.as_str()) {
            let upper = path.to_uppercase();
            params.insert("path".into(), upper.into());
            return Ok(decision::rewrite(params));
        }
        Ok(decision::allow())
    }

    async fn before_session_create(
        &self,
        session: SessionCreate,
    ) -> Result<proto::SessionDecision, Status> {
        Ok(session::patch(json!({ "agent": session.agent_id })))
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Server {
    _dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), hookvisor_plugin::Error>>,
    channel: Channel,
}

async fn start_server() -> Server {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hvp-sdk-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(hookvisor_plugin::serve(Fixture, listener, async {
        let _ = stopped.await;
    }));
    let channel = Endpoint::from_shared(format!("unix://{}", path.display()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Server {
        _dir: TempDir(dir),
        stop: Some(stop),
        done,
        channel,
    }
}

fn call(tool: &str, params_json: &str) -> proto::BeforeToolCallRequest {
    proto::BeforeToolCallRequest {
        tool_name: tool.into(),
        params_json: params_json.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn describe_answers_info_at_protocol_version_1() {
    let server = start_server().await;
    let mut client = PluginClient::new(server.channel.clone());
    let info = client
        .describe(proto::DescribeRequest {
            protocol_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "fixture");
    assert_eq!(info.protocol_version, 1);
    assert_eq!(info.hooks.len(), 2);
    assert_eq!(info.hooks[0].stage, Stage::Policy as i32);
    assert_eq!(info.hooks[0].priority, 7);
}

#[tokio::test]
async fn hooks_are_answered_through_the_trait() {
    let server = start_server().await;
    let mut client = PluginClient::new(server.channel.clone());

    let blocked = client
        .before_tool_call(call("bad", "{}"))
        .await
        .unwrap()
        .into_inner();
    assert!(blocked.block);
    assert_eq!(blocked.block_reason, "bad tool");

    let rewritten = client
        .before_tool_call(call("read", r#"{"path":"a","n":1}"#))
        .await
        .unwrap()
        .into_inner();
    let params: serde_json::Value =
        serde_json::from_str(rewritten.params_json.as_deref().unwrap()).unwrap();
    assert_eq!(params, json!({"path": "A", "n": 1}));

    let allowed = client
        .before_tool_call(call("read", "{}"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(allowed, proto::ToolCallDecision::default());

    let patched = client
        .before_session_create(proto::BeforeSessionCreateRequest {
            agent_id: "main".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        patched.metadata_json.as_deref(),
        Some(r#"{"agent":"main"}"#)
    );

    // Not implemented by the fixture: the default "no opinion" answers.
    client
        .session_created(proto::SessionCreatedEvent::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn params_that_are_not_an_object_are_invalid_argument() {
    let server = start_server().await;
    let mut client = PluginClient::new(server.channel.clone());
    let status = client
        .before_tool_call(call("read", "[1]"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("params_json"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_plugin_service() {
    let server = start_server().await;
    let mut health = HealthClient::new(server.channel.clone());
    for service in ["", "hookvisor.v1.Plugin"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
}

#[tokio::test]
async fn shutdown_future_stops_the_server() {
    let mut server = start_server().await;
    drop(server.channel);
    server.stop.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(5), server.done)
        .await
        .expect("server stops")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}
