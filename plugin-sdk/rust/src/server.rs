//! The plugin process: handshake environment, socket, gRPC and health services, signals, exit codes.

use std::convert::Infallible;
use std::ffi::OsStr;
use std::fmt::Display;
use std::future::Future;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hookvisor_proto::{MAGIC_COOKIE, env};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;

use crate::proto::plugin_server::PluginServer;
use crate::{Plugin, SessionCreate, SessionCreated, ToolCall, proto};

/// What a process started by hand, without hookvisor's environment, prints before exiting 1.
const NOT_BY_HAND: &str = "this is a hookvisor plugin; it is started by hookvisor (see `hookvisor serve`), not run by hand";

/// How long calls still in flight may finish after SIGTERM before the process exits anyway;
/// shorter than the supervisor's default grace period (2000 ms) so a hung handler cannot turn a
/// clean stop into a SIGKILL.
const DRAIN_LIMIT: Duration = Duration::from_millis(1500);

/// The gRPC service name the health service reports besides `""`.
const PLUGIN_SERVICE: &str = "hookvisor.v1.Plugin";

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket could not be bound (or a stale socket there could not be removed).
    #[error("cannot bind the plugin socket {}: {error}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// Signal handlers or the async runtime could not be set up.
    #[error("cannot start: {0}")]
    Setup(std::io::Error),
}

/// Runs `plugin` as a hookvisor plugin process and returns the exit code for `main`.
///
/// Checks `HOOKVISOR_MAGIC_COOKIE` (missing or wrong: one line on stderr, exit 1), reads
/// `HOOKVISOR_PLUGIN_SOCKET` (must be absolute, else exit 1) and `HOOKVISOR_PLUGIN_NAME`, binds
/// the socket (replacing a stale socket file), serves `hookvisor.v1.Plugin` and
/// `grpc.health.v1.Health` until SIGTERM or SIGINT, then drains, removes the socket and exits 0.
/// Bind or serve errors are reported on stderr with exit 2. Builds its own tokio runtime.
pub fn run<P: Plugin>(plugin: P) -> ExitCode {
    run_with(|| Ok::<P, Infallible>(plugin))
}

/// Like [`run`], but builds the plugin with `init` after the handshake checks pass.
///
/// Use it for plugins that read configuration (files, environment) at start: started by hand they
/// still print the "started by hookvisor" line, and an `init` error is printed on stderr as one
/// line with exit 1, which the supervisor reports as a start failure with that line.
pub fn run_with<P, E, F>(init: F) -> ExitCode
where
    P: Plugin,
    E: Display,
    F: FnOnce() -> Result<P, E>,
{
    if std::env::var_os(env::MAGIC_COOKIE).as_deref() != Some(OsStr::new(MAGIC_COOKIE)) {
        eprintln!("{NOT_BY_HAND}");
        return ExitCode::from(1);
    }
    let socket = match std::env::var_os(env::PLUGIN_SOCKET) {
        Some(path) if Path::new(&path).is_absolute() => PathBuf::from(path),
        Some(path) => {
            eprintln!(
                "{} must be an absolute path, got {path:?}",
                env::PLUGIN_SOCKET
            );
            return ExitCode::from(1);
        }
        None => {
            eprintln!(
                "{} is not set; hookvisor sets it when it starts a plugin",
                env::PLUGIN_SOCKET
            );
            return ExitCode::from(1);
        }
    };
    let plugin = match init() {
        Ok(plugin) => plugin,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut info = plugin.info().to_proto();
    if info.name.is_empty() {
        info.name = std::env::var(env::PLUGIN_NAME).unwrap_or_default();
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}", Error::Setup(e));
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(serve_until_signal(plugin, info, &socket));
    // Handlers still stuck after the drain limit are dropped here.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// Serves `plugin` on `listener` until `shutdown` completes, then waits for calls in flight.
///
/// This is the gRPC part of [`run`] without the environment, signals and exit codes, so tests can
/// drive a plugin over a real socket. `Describe` answers the plugin's own [`Plugin::info`].
pub async fn serve<P: Plugin>(
    plugin: P,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let info = plugin.info().to_proto();
    serve_described(plugin, info, listener, shutdown).await
}

async fn serve_described<P: Plugin>(
    plugin: P,
    info: proto::PluginInfo,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    health
        .set_service_status(PLUGIN_SERVICE, ServingStatus::Serving)
        .await;
    let shutdown = async move {
        shutdown.await;
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        health
            .set_service_status(PLUGIN_SERVICE, ServingStatus::NotServing)
            .await;
    };
    let adapter = Adapter {
        plugin: Arc::new(plugin),
        info,
    };
    tonic::transport::Server::builder()
        .add_service(PluginServer::new(adapter))
        .add_service(health_service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

async fn serve_until_signal<P: Plugin>(
    plugin: P,
    info: proto::PluginInfo,
    socket: &Path,
) -> Result<(), Error> {
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::Setup)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Setup)?;
    let listener = bind(socket)?;

    let (stop, stopped) = oneshot::channel::<()>();
    let server = serve_described(plugin, info, listener, async {
        let _ = stopped.await;
    });
    tokio::pin!(server);
    let signal_name = tokio::select! {
        result = &mut server => {
            remove_socket(socket);
            return result;
        }
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    // On stdout: hookvisor logs a plugin's stdout at info and its stderr at warn, and a stop
    // asked for is no warning. A closed stdout is ignored (`println!` would panic on it).
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stdout(),
            "received {signal_name}; finishing calls in flight and exiting"
        );
    }
    let _ = stop.send(());
    let result = match tokio::time::timeout(DRAIN_LIMIT, &mut server).await {
        Ok(result) => result,
        Err(_) => {
            eprintln!(
                "calls still running after {} ms; exiting anyway",
                DRAIN_LIMIT.as_millis()
            );
            Ok(())
        }
    };
    remove_socket(socket);
    result
}

/// Binds `path`, first removing a socket left there by an earlier run (never any other file).
fn bind(path: &Path) -> Result<UnixListener, Error> {
    let bind_error = |error| Error::Bind {
        path: path.to_owned(),
        error,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_socket()
    {
        std::fs::remove_file(path).map_err(bind_error)?;
    }
    UnixListener::bind(path).map_err(bind_error)
}

fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("cannot remove the plugin socket {}: {e}", path.display());
    }
}

/// The host call's request id the supervisor sends with every call (`""` when absent).
fn request_id<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get("x-hookvisor-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Turns the generated service's requests into the SDK's views and back.
struct Adapter<P> {
    plugin: Arc<P>,
    info: proto::PluginInfo,
}

#[tonic::async_trait]
impl<P: Plugin> proto::plugin_server::Plugin for Adapter<P> {
    async fn describe(
        &self,
        _request: Request<proto::DescribeRequest>,
    ) -> Result<Response<proto::PluginInfo>, Status> {
        Ok(Response::new(self.info.clone()))
    }

    async fn before_tool_call(
        &self,
        request: Request<proto::BeforeToolCallRequest>,
    ) -> Result<Response<proto::ToolCallDecision>, Status> {
        let request_id = request_id(&request);
        let mut call = ToolCall::try_from(request.into_inner())?;
        call.request_id = request_id;
        self.plugin.before_tool_call(call).await.map(Response::new)
    }

    async fn before_session_create(
        &self,
        request: Request<proto::BeforeSessionCreateRequest>,
    ) -> Result<Response<proto::SessionDecision>, Status> {
        let request_id = request_id(&request);
        let mut session = SessionCreate::try_from(request.into_inner())?;
        session.request_id = request_id;
        self.plugin
            .before_session_create(session)
            .await
            .map(Response::new)
    }

    async fn session_created(
        &self,
        request: Request<proto::SessionCreatedEvent>,
    ) -> Result<Response<proto::Ack>, Status> {
        let request_id = request_id(&request);
        let mut event = SessionCreated::try_from(request.into_inner())?;
        event.request_id = request_id;
        self.plugin.session_created(event).await?;
        Ok(Response::new(proto::Ack {}))
    }
}
