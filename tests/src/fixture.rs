//! What the fixture plugins share: their registrations from `FIXTURE_*` variables, `Describe`,
//! serving `hookvisor.v1.Plugin` plus health on `HOOKVISOR_PLUGIN_SOCKET` until SIGTERM, and
//! the recorder plugin.
//!
//! Variables every fixture reads (the supervisor passes them from the plugin's configured `env`):
//!
//! - `FIXTURE_STAGE`: `policy` or `hook` (default `hook`);
//! - `FIXTURE_HOOKS`: comma list of `before_tool_call`, `before_session_create`,
//!   `session_created` (default `before_tool_call`);
//! - `FIXTURE_TOOLS`: comma list of tool names (default empty: every tool);
//! - `FIXTURE_PRIORITY`, `FIXTURE_TIMEOUT_MS`: the plugin's own priority and timeout;
//! - `FIXTURE_VERSION`: the version `Describe` reports (default `0.0.0-test`);
//! - `FIXTURE_IGNORE_DEADLINE`: set to serve without tonic's `grpc-timeout` handling, like a
//!   plugin that does not honour the header (by default a tonic server answers `CANCELLED`
//!   "Timeout expired" when the header's budget runs out);
//! - `FIXTURE_NO_WATCHDOG`: set to keep running after the parent process is gone (by default a
//!   fixture exits then, so a broken supervisor cannot leak processes across tests).

mod recorder;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use hookvisor_proto::v1::plugin_server::{Plugin, PluginServer};
use hookvisor_proto::v1::{
    Ack, BeforeSessionCreateRequest, BeforeToolCallRequest, DescribeRequest, Hook,
    HookRegistration, PluginInfo, SessionCreatedEvent, SessionDecision, Stage, ToolCallDecision,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

pub use recorder::{Action, Recorder};

/// A non-empty environment variable.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The plugin's configured name, `HOOKVISOR_PLUGIN_NAME`.
pub fn plugin_name() -> String {
    env_var(hookvisor_proto::env::PLUGIN_NAME).unwrap_or_else(|| "unnamed".to_owned())
}

fn comma_list(name: &str) -> Vec<String> {
    env_var(name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn parse_hook(name: &str) -> Hook {
    match name {
        "before_tool_call" => Hook::BeforeToolCall,
        "before_session_create" => Hook::BeforeSessionCreate,
        "session_created" => Hook::SessionCreated,
        other => panic!("FIXTURE_HOOKS: unknown hook {other:?}"),
    }
}

/// The hooks named in `FIXTURE_HOOKS` (default `before_tool_call`).
pub fn hooks() -> Vec<Hook> {
    let names = comma_list("FIXTURE_HOOKS");
    if names.is_empty() {
        return vec![Hook::BeforeToolCall];
    }
    names.iter().map(|n| parse_hook(n)).collect()
}

/// One registration per hook in `FIXTURE_HOOKS`, with `FIXTURE_STAGE`, `FIXTURE_TOOLS`,
/// `FIXTURE_PRIORITY` and `FIXTURE_TIMEOUT_MS`.
pub fn registrations() -> Vec<HookRegistration> {
    let stage = match env_var("FIXTURE_STAGE").as_deref() {
        Some("policy") => Stage::Policy,
        None | Some("hook") => Stage::Hook,
        Some(other) => panic!("FIXTURE_STAGE: expected policy or hook, got {other:?}"),
    };
    let priority = env_var("FIXTURE_PRIORITY").map_or(0, |p| p.parse().expect("FIXTURE_PRIORITY"));
    let timeout_ms =
        env_var("FIXTURE_TIMEOUT_MS").map_or(0, |t| t.parse().expect("FIXTURE_TIMEOUT_MS"));
    let tools = comma_list("FIXTURE_TOOLS");
    hooks()
        .into_iter()
        .map(|hook| HookRegistration {
            hook: hook.into(),
            stage: stage.into(),
            priority,
            tools: tools.clone(),
            timeout_ms,
        })
        .collect()
}

/// The `Describe` answer. The name is the fixture's own, deliberately not the configured one:
/// the supervisor must use the configured name everywhere.
pub fn plugin_info(protocol_version: u32) -> PluginInfo {
    PluginInfo {
        name: format!("fixture-{}", std::process::id()),
        version: env_var("FIXTURE_VERSION").unwrap_or_else(|| "0.0.0-test".to_owned()),
        protocol_version,
        hooks: registrations(),
    }
}

/// One fixture's behaviour; every call defaults to "no opinion". [`Fixture`] turns it into a
/// [`Plugin`] whose `Describe` answers [`plugin_info`].
#[tonic::async_trait]
pub trait Behaviour: Send + Sync + 'static {
    /// What `Describe` reports as `protocol_version`.
    fn protocol_version(&self) -> u32 {
        hookvisor_proto::PROTOCOL_VERSION
    }

    /// Answers `BeforeToolCall`.
    async fn tool_call(&self, _call: BeforeToolCallRequest) -> Result<ToolCallDecision, Status> {
        Ok(ToolCallDecision::default())
    }

    /// Answers `BeforeSessionCreate`.
    async fn session_create(
        &self,
        _call: BeforeSessionCreateRequest,
    ) -> Result<SessionDecision, Status> {
        Ok(SessionDecision::default())
    }

    /// Answers `SessionCreated`.
    async fn session_created(&self, _event: SessionCreatedEvent) -> Result<Ack, Status> {
        Ok(Ack {})
    }
}

/// Serves a [`Behaviour`] as a `hookvisor.v1.Plugin`.
pub struct Fixture<B>(pub B);

#[tonic::async_trait]
impl<B: Behaviour> Plugin for Fixture<B> {
    async fn describe(
        &self,
        _request: Request<DescribeRequest>,
    ) -> Result<Response<PluginInfo>, Status> {
        Ok(Response::new(plugin_info(self.0.protocol_version())))
    }

    async fn before_tool_call(
        &self,
        request: Request<BeforeToolCallRequest>,
    ) -> Result<Response<ToolCallDecision>, Status> {
        self.0
            .tool_call(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn before_session_create(
        &self,
        request: Request<BeforeSessionCreateRequest>,
    ) -> Result<Response<SessionDecision>, Status> {
        self.0
            .session_create(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn session_created(
        &self,
        request: Request<SessionCreatedEvent>,
    ) -> Result<Response<Ack>, Status> {
        self.0
            .session_created(request.into_inner())
            .await
            .map(Response::new)
    }
}

/// Exits the process when its parent is gone, unless `FIXTURE_NO_WATCHDOG` is set.
pub fn watch_parent() {
    if env_var("FIXTURE_NO_WATCHDOG").is_some() {
        return;
    }
    let parent = nix::unistd::getppid();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if nix::unistd::getppid() != parent {
                std::process::exit(0);
            }
        }
    });
}

/// Runs `main` on a fresh multi-threaded runtime and exits with its status.
pub fn block_on<F: Future<Output = std::io::Result<()>>>(main: F) -> ! {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(main) {
        Ok(()) => std::process::exit(0),
        Err(err) => {
            eprintln!("fixture {}: {err}", plugin_name());
            std::process::exit(1)
        }
    }
}

/// The whole life of a well-behaved fixture: watch the parent, serve `plugin` until SIGTERM.
pub fn run<P: Plugin>(plugin: P) -> ! {
    watch_parent();
    block_on(serve(plugin))
}

/// Binds `HOOKVISOR_PLUGIN_SOCKET` and serves `plugin` and `grpc.health.v1.Health` on it until
/// SIGTERM, which ends the process at once (calls in flight included: a hanging fixture must
/// not hold up the supervisor's shutdown).
pub async fn serve<P: Plugin>(plugin: P) -> std::io::Result<()> {
    let path = env_var(hookvisor_proto::env::PLUGIN_SOCKET).ok_or_else(|| {
        std::io::Error::other(format!(
            "{} is not set: fixtures are started by hookvisor",
            hookvisor_proto::env::PLUGIN_SOCKET
        ))
    })?;
    serve_at(Path::new(&path), plugin).await
}

/// [`serve`] on `path` instead of `HOOKVISOR_PLUGIN_SOCKET`.
pub async fn serve_at<P: Plugin>(path: &Path, plugin: P) -> std::io::Result<()> {
    serve_on(bind(path)?, plugin).await
}

/// [`serve`] on a listener already bound (by [`bind`]).
pub async fn serve_on<P: Plugin>(listener: UnixListener, plugin: P) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let (_reporter, health) = tonic_health::server::health_reporter();
    if env_var("FIXTURE_IGNORE_DEADLINE").is_some() {
        let routes = Routes::new(health).add_service(PluginServer::new(plugin));
        return tokio::select! {
            result = serve_without_deadlines(listener, routes) => result,
            _ = term.recv() => Ok(()),
        };
    }
    let server = Server::builder()
        .add_service(health)
        .add_service(PluginServer::new(plugin))
        .serve_with_incoming(UnixListenerStream::new(listener));
    tokio::select! {
        result = server => result.map_err(std::io::Error::other),
        _ = term.recv() => Ok(()),
    }
}

/// HTTP/2 straight from hyper: tonic's `Server` would apply the `grpc-timeout` header.
async fn serve_without_deadlines(listener: UnixListener, routes: Routes) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(routes.clone());
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .http2_only()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds `path`, replacing whatever is there (a socket left behind, or another's).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    UnixListener::bind(path)
        .map_err(|err| std::io::Error::other(format!("binding {}: {err}", path.display())))
}

/// Starts this same executable again with `var=1` added to the environment (which is
/// otherwise inherited), for fixtures that act as launchers.
pub fn relaunch_self(var: &str) -> std::process::Child {
    let exe = std::env::current_exe().expect("current_exe");
    std::process::Command::new(exe)
        .env(var, "1")
        .spawn()
        .expect("re-executing the fixture")
}
