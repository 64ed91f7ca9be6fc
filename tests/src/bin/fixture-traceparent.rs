//! The recorder (`hookvisor_tests::fixture::Recorder`, answering as `FIXTURE_ACTION` says) that
//! also writes, for every call, the `traceparent` metadata it was sent (`null` when none) to
//! `FIXTURE_TRACEPARENTS`: one line `{"plugin", "hook", "traceparent", "request_id"}`.

use std::io::Write;

use hookvisor_proto::v1::plugin_server::Plugin;
use hookvisor_proto::v1::{
    Ack, BeforeSessionCreateRequest, BeforeToolCallRequest, DescribeRequest, PluginInfo,
    SessionCreatedEvent, SessionDecision, ToolCallDecision,
};
use hookvisor_tests::fixture::{Recorder, env_var, plugin_name, run};
use serde_json::json;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

struct Traced(Recorder);

fn note(hook: &str, metadata: &MetadataMap) {
    let Some(path) = env_var("FIXTURE_TRACEPARENTS") else {
        return;
    };
    let text = |key: &str| {
        metadata
            .get(key)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let line = json!({
        "plugin": plugin_name(),
        "hook": hook,
        "traceparent": text("traceparent"),
        "request_id": text("x-hookvisor-request-id"),
    });
    // One write on an O_APPEND file: lines from several plugins do not interleave.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|err| panic!("FIXTURE_TRACEPARENTS {path}: {err}"));
    file.write_all(format!("{line}\n").as_bytes())
        .unwrap_or_else(|err| panic!("FIXTURE_TRACEPARENTS {path}: {err}"));
}

#[tonic::async_trait]
impl Plugin for Traced {
    async fn describe(
        &self,
        request: Request<DescribeRequest>,
    ) -> Result<Response<PluginInfo>, Status> {
        self.0.describe(request).await
    }

    async fn before_tool_call(
        &self,
        request: Request<BeforeToolCallRequest>,
    ) -> Result<Response<ToolCallDecision>, Status> {
        note("before_tool_call", request.metadata());
        self.0.before_tool_call(request).await
    }

    async fn before_session_create(
        &self,
        request: Request<BeforeSessionCreateRequest>,
    ) -> Result<Response<SessionDecision>, Status> {
        note("before_session_create", request.metadata());
        self.0.before_session_create(request).await
    }

    async fn session_created(
        &self,
        request: Request<SessionCreatedEvent>,
    ) -> Result<Response<Ack>, Status> {
        note("session_created", request.metadata());
        self.0.session_created(request).await
    }
}

fn main() {
    run(Traced(Recorder::from_env(None)))
}
