//! `hookvisor serve`: the runtime directory, the plugins, the host socket with `Hooks` and
//! `grpc.health.v1.Health`, and an orderly shutdown (drain, stop plugins, remove sockets).

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookvisor_proto::v1::hooks_server::HooksServer;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic_health::ServingStatus;

use crate::config::Config;
use crate::plugin::MAX_MESSAGE_BYTES;
use crate::plugins::PluginSet;
use crate::service::{Drain, HooksService};
use crate::spawner::Spawner;

/// How long closing the host connections may take once no call is in flight.
const CONNECTION_CLOSE_WAIT: Duration = Duration::from_millis(500);

/// Why `serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A filesystem or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The gRPC server failed.
    #[error("the host API server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> ServeError {
    let context = context.into();
    move |source| ServeError::Io { context, source }
}

/// Hooks `serve` calls at points of its life, so callers (the demo, later systemd notify) can
/// follow along without `serve` knowing them.
pub trait Observer: Send + Sync {
    /// The host socket accepts calls.
    fn ready(&self, _socket: &Path, _plugins: &PluginSet) {}
}

impl Observer for () {}

/// Runs the supervisor until `shutdown` resolves, then drains and stops (§6, issue: SIGTERM).
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()>,
    observer: &dyn Observer,
) -> Result<(), ServeError> {
    prepare_runtime_dir(&config.supervisor.runtime_dir)?;
    // Held until the end: two supervisors must never share plugin sockets.
    let _lock = lock_runtime_dir(&config.supervisor.runtime_dir)?;
    check_host_socket_free(&config.supervisor.socket)?;
    let spawner = Spawner::start(tokio::runtime::Handle::current())
        .map_err(io_error("cannot start the spawner thread"))?;
    let plugins = Arc::new(PluginSet::start(&config, spawner).await);
    let grace = Duration::from_millis(config.supervisor.stop_grace_ms.into());

    let socket = config.supervisor.socket.clone();
    let listener = match bind_host_socket(&socket, config.supervisor.socket_mode) {
        Ok(listener) => listener,
        Err(e) => {
            plugins.stop(grace).await;
            return Err(e);
        }
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<HooksServer<HooksService>>().await;
    health.set_service_status("", ServingStatus::Serving).await;
    let drain = Arc::new(Drain::default());
    let hooks = HooksService::new(plugins.clone(), config.hooks.clone(), drain.clone());
    let hooks = HooksServer::new(hooks)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(hooks)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stop_rx.await;
            }),
    );
    tracing::info!(socket = %socket.display(), plugins = plugins.statuses().len(), "serving");
    observer.ready(&socket, &plugins);

    let early = tokio::select! {
        _ = shutdown => None,
        ended = &mut server => Some(ended),
    };
    let result = match early {
        Some(ended) => flatten(ended),
        None => {
            tracing::info!("shutting down: new calls get UNAVAILABLE; draining calls in flight");
            drain.start();
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            health.set_not_serving::<HooksServer<HooksService>>().await;
            // No call can outlive the longest hook timeout (twice, with revalidation), so a
            // longer wait would only hide a bug.
            let limit = drain_limit(&config);
            if tokio::time::timeout(limit, drain.idle()).await.is_err() {
                tracing::warn!(
                    limit_ms = limit.as_millis() as u64,
                    "calls still in flight after the drain limit"
                );
            }
            // Close connections. A host that does not take part in HTTP/2's graceful close
            // (a frozen process, say) must not hold the shutdown up: its verdicts were sent.
            let _ = stop_tx.send(());
            match tokio::time::timeout(CONNECTION_CLOSE_WAIT, &mut server).await {
                Ok(ended) => flatten(ended),
                Err(_) => {
                    server.abort();
                    Ok(())
                }
            }
        }
    };
    plugins.stop(grace).await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("stopped");
    result
}

fn flatten(
    ended: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    match ended {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(ServeError::Io {
            context: "the host API server task".into(),
            source: io::Error::other(e),
        }),
    }
}

fn drain_limit(config: &Config) -> Duration {
    let hooks = &config.hooks;
    let longest = [
        &hooks.before_tool_call,
        &hooks.before_session_create,
        &hooks.session_created,
    ]
    .iter()
    .map(|h| h.timeout_ms)
    .max()
    .unwrap_or(0);
    // Revalidation can run the policy stage twice: allow two hook timeouts and a second.
    Duration::from_millis(u64::from(longest) * 2 + 1000)
}

/// Creates the runtime directory with mode 0700, or tightens an existing one we own.
fn prepare_runtime_dir(dir: &Path) -> Result<(), ServeError> {
    let context = || format!("runtime directory {}", dir.display());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(context()))?;
    let meta = std::fs::metadata(dir).map_err(io_error(context()))?;
    if meta.uid() != nix::unistd::getuid().as_raw() {
        return Err(ServeError::Io {
            context: context(),
            source: io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "owned by uid {}, not by this process; plugin sockets would be exposed",
                    meta.uid()
                ),
            ),
        });
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_error(context()))
}

/// Refuses a host socket another process is serving on (checked before any plugin starts, and
/// again just before binding).
fn check_host_socket_free(path: &Path) -> Result<(), ServeError> {
    if path.exists() && std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ServeError::Io {
            context: format!("host socket {}", path.display()),
            source: io::Error::new(io::ErrorKind::AddrInUse, "another process is serving on it"),
        });
    }
    Ok(())
}

/// Takes an exclusive lock on `hookvisor.lock` in the runtime directory, so a second supervisor
/// configured with the same directory stops before it touches the first one's plugin sockets.
fn lock_runtime_dir(dir: &Path) -> Result<Flock<File>, ServeError> {
    let path = dir.join("hookvisor.lock");
    let context = || format!("runtime directory lock {}", path.display());
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_error(context()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        let source = if errno == Errno::EWOULDBLOCK {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "another hookvisor is using the runtime directory {}",
                    dir.display()
                ),
            )
        } else {
            io::Error::from(errno)
        };
        ServeError::Io {
            context: context(),
            source,
        }
    })
}

/// Binds the host socket with `mode`, without a moment where it has looser permissions: bind
/// under a temporary name, chmod, then rename into place.
fn bind_host_socket(path: &Path, mode: u32) -> Result<UnixListener, ServeError> {
    let context = || format!("host socket {}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(context()))?;
    }
    check_host_socket_free(path)?;
    if path.exists() {
        std::fs::remove_file(path).map_err(io_error(context()))?;
    }
    let staging = staging_path(path);
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging).map_err(io_error(context()))?;
    let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
        .and_then(|()| std::fs::rename(&staging, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(io_error(context())(e));
    }
    Ok(listener)
}

fn staging_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{}.new", std::process::id()));
    path.with_file_name(name)
}
