//! `bare-tonic`: a benchmark baseline, not an example to copy. The same trivial plugin as
//! `allow-all` ("no opinion" on every tool call) written directly on tonic, without the SDK: no
//! health service, no JSON parsing, no signal handling. `hookvisor bench` calls it and
//! `allow-all` in alternating blocks; the ratio of the two is what the Rust SDK costs
//! (`sdk_ratio_rust_*`).
//!
//! It serves `hookvisor.v1.Plugin` on `HOOKVISOR_PLUGIN_SOCKET` until killed, on the tokio
//! runtime MODE, its only argument: `current` (one thread) or `multi` (two workers, as the SDK).
use std::process::ExitCode;

use hookvisor_plugin::proto;
use hookvisor_plugin::proto::plugin_server::{Plugin, PluginServer};
use tokio::net::UnixListener;
use tonic::codegen::tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

struct Bare;

#[tonic::async_trait]
impl Plugin for Bare {
    async fn describe(
        &self,
        _: Request<proto::DescribeRequest>,
    ) -> Result<Response<proto::PluginInfo>, Status> {
        Ok(Response::new(proto::PluginInfo {
            name: "bare-tonic".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocol_version: 1,
            hooks: vec![proto::HookRegistration {
                hook: proto::Hook::BeforeToolCall.into(),
                stage: proto::Stage::Hook.into(),
                ..Default::default()
            }],
        }))
    }

    async fn before_tool_call(
        &self,
        _: Request<proto::BeforeToolCallRequest>,
    ) -> Result<Response<proto::ToolCallDecision>, Status> {
        Ok(Response::new(proto::ToolCallDecision::default()))
    }

    async fn before_session_create(
        &self,
        _: Request<proto::BeforeSessionCreateRequest>,
    ) -> Result<Response<proto::SessionDecision>, Status> {
        Ok(Response::new(proto::SessionDecision::default()))
    }

    async fn session_created(
        &self,
        _: Request<proto::SessionCreatedEvent>,
    ) -> Result<Response<proto::Ack>, Status> {
        Ok(Response::new(proto::Ack {}))
    }
}

async fn serve(socket: &str) -> Result<(), String> {
    let listener = UnixListener::bind(socket).map_err(|e| format!("cannot bind {socket}: {e}"))?;
    tonic::transport::Server::builder()
        .add_service(PluginServer::new(Bare))
        .serve_with_incoming(UnixListenerStream::new(listener))
        .await
        .map_err(|e| format!("the gRPC server failed: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Ok(socket), [mode]) = (std::env::var("HOOKVISOR_PLUGIN_SOCKET"), args.as_slice()) else {
        eprintln!("usage: bare-tonic current|multi, started by `hookvisor bench`");
        return ExitCode::from(1);
    };
    let mut builder = match mode.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread(),
        "multi" => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
        other => {
            eprintln!("unknown mode {other:?}: current or multi");
            return ExitCode::from(1);
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(&socket)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
