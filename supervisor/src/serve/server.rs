//! `hookvisor serve`: the plugins, the host socket with `Hooks` and `grpc.health.v1.Health`, and
//! an orderly shutdown (drain, stop plugins, remove sockets). The files it uses on disk, and the
//! checks on them, are [`layout`]'s.

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hookvisor_proto::v1::hooks_server::HooksServer;
use tokio::net::UnixListener;
use tonic_health::ServingStatus;

use crate::files::config::Config;
use crate::files::layout::{self, LayoutError};
use crate::files::preflight;
use crate::host::admission::{AdmissionLayer, HOST_MAX_REQUEST_BYTES};
use crate::host::connections;
use crate::host::drain::Drain;
use crate::host::service::{HooksService, Observers};
use crate::observe::audit::Audit;
use crate::observe::metrics::{self, Metrics};
use crate::plugin::PluginSet;
use crate::plugin::generation::{self, Generation};
use crate::plugin::spawner::Spawner;
use crate::serve::admin::{AdminService, ReloadReply};
use hookvisor_proto::v1::admin_server::AdminServer;

/// How long closing the host connections may take once no call is in flight.
const CONNECTION_CLOSE_WAIT: Duration = Duration::from_millis(500);

/// Why `serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A filesystem or socket operation failed. The cause is part of the message, so it is
    /// not also a `source` (an error chain would print it twice).
    #[error("{context}: {error}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The cause.
        error: io::Error,
    },
    /// A file or directory of hookvisor's own is missing, unsafe or in use (see [`layout`]).
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A plugin's sandbox cannot be had as configured (see [`crate::plugin::sandbox`]).
    #[error(transparent)]
    Sandbox(#[from] crate::plugin::sandbox::SandboxError),
    /// The gRPC server failed.
    #[error("the host API server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> ServeError {
    let context = context.into();
    move |error| ServeError::Io { context, error }
}

/// Hooks `serve` calls at points of its life, so callers (the demo, later systemd notify) can
/// follow along without `serve` knowing them.
pub trait Observer: Send + Sync {
    /// The host socket accepts calls; every plugin is ready or has failed its start.
    fn ready(&self, _socket: &Path, _plugins: &PluginSet) {}
    /// Shutdown has begun: new calls are refused, calls in flight drain.
    fn stopping(&self) {}
    /// A reload has begun; `ready` follows when it is done (or refused).
    fn reloading(&self) {}
}

impl Observer for () {}

/// Where the host API listens.
#[derive(Debug)]
pub enum HostSocket {
    /// Bind the configured `socket` (and remove it at the end).
    Bind,
    /// Serve on a listening socket systemd passed in (socket activation); the configured path
    /// is not used, and the socket is systemd's to remove.
    Activated(std::os::unix::net::UnixListener),
}

/// Runs the supervisor until `shutdown` resolves, then drains and stops (§6, issue: SIGTERM).
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()>,
    observer: &dyn Observer,
) -> Result<(), ServeError> {
    serve_on(
        config,
        HostSocket::Bind,
        Control::default(),
        shutdown,
        observer,
    )
    .await
}

/// What can be asked of `serve` while it runs (by signals, in the `hookvisor` binary).
#[derive(Default)]
pub struct Control {
    /// Reload the configuration (SIGHUP).
    pub reload: Option<Reload>,
    /// Log every plugin's state and record, one line each (SIGUSR1).
    pub status: Option<tokio::sync::mpsc::Receiver<()>>,
}

/// How `serve` reloads its configuration: each message on `requests` (SIGHUP, say) makes it call
/// `load` and, when that succeeds, switch to the new configuration without a gap.
pub struct Reload {
    /// One message per reload asked for.
    pub requests: tokio::sync::mpsc::Receiver<()>,
    /// Reads and checks the configuration again (the error is logged, and the running
    /// configuration kept).
    pub load: Box<dyn Fn() -> Result<Config, String> + Send + Sync>,
}

/// [`serve`] on `host` (the configured socket, or one systemd passed in), answering `control`'s
/// requests.
pub async fn serve_on(
    config: Config,
    host: HostSocket,
    control: Control,
    shutdown: impl Future<Output = ()>,
    observer: &dyn Observer,
) -> Result<(), ServeError> {
    // Nothing is created before everything that would be refused is known.
    match &host {
        HostSocket::Bind => preflight::preflight(&config)?,
        HostSocket::Activated(_) => preflight::preflight_activated(&config)?,
    }
    crate::plugin::sandbox::preflight(&config)?;
    // No process of another uid, nor a plugin of the same uid (Landlock), may read this
    // process's memory or environment through /proc or trace it.
    let _ = nix::sys::prctl::set_dumpable(false);
    connections::raise_nofile_limit();
    layout::prepare_runtime_dir(&config.supervisor.runtime_dir)?;
    // Held until the end: two supervisors must never share plugin sockets.
    let _lock = layout::lock_runtime_dir(&config.supervisor.runtime_dir)?;
    if matches!(host, HostSocket::Bind) {
        layout::check_host_socket_free(&config.supervisor.socket)?;
    }
    // Before any plugin starts: an audit log that cannot be opened stops `serve` here.
    let audit = match &config.audit {
        Some(audit) => Some(Audit::start(audit).map_err(io_error("[audit] path"))?),
        None => None,
    };
    let metrics_listener = match &config.metrics {
        Some(metrics) => Some(
            metrics::bind(metrics.listen)
                .await
                .map_err(io_error("[metrics] listen"))?,
        ),
        None => None,
    };
    let metrics = metrics_listener.as_ref().map(|_| Arc::new(Metrics::new()));
    let observers = Arc::new(Observers::new(audit, metrics));
    let spawner = Spawner::start(tokio::runtime::Handle::current())
        .map_err(io_error("cannot start the spawner thread"))?;
    let plugins = Arc::new(PluginSet::start(&config, spawner.clone()).await);
    let grace = Duration::from_millis(config.supervisor.stop_grace_ms.into());

    let activated = matches!(host, HostSocket::Activated(_));
    let listener = match host {
        HostSocket::Bind => {
            layout::bind_host_socket(&config.supervisor.socket, config.supervisor.socket_mode)
                .map_err(ServeError::from)
        }
        HostSocket::Activated(listener) => listener
            .set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(listener))
            .map_err(io_error("the socket systemd passed in")),
    };
    let listener = match listener {
        Ok(listener) => listener,
        Err(e) => {
            plugins.stop(grace).await;
            return Err(e);
        }
    };
    let socket = match listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf))
    {
        Some(path) if activated => path,
        _ => config.supervisor.socket.clone(),
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<HooksServer<HooksService>>().await;
    health.set_service_status("", ServingStatus::Serving).await;
    let drain = Arc::new(Drain::default());
    // Kept for reload (the lifecycle work): a new generation is switched in here.
    let (current, reader) = generation::Current::new(Generation {
        plugins: plugins.clone(),
        hooks: config.hooks.clone(),
    });
    let hooks = HooksService::new(reader.clone(), drain.clone(), observers.clone());
    let (admin_reloads_tx, mut admin_reloads) = tokio::sync::mpsc::channel::<ReloadReply>(4);
    let admin = AdminServer::new(AdminService::new(
        reader.clone(),
        observers.clone(),
        admin_reloads_tx,
    ));
    // gRPC reflection, v1 and the v1alpha older tools still ask for.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(hookvisor_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_error = |e| ServeError::Io {
        context: "gRPC reflection".into(),
        error: io::Error::other(e),
    };
    let reflection_v1 = reflection().build_v1().map_err(reflection_error)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_error)?;
    let metrics_server = match (metrics_listener, &observers.metrics) {
        (Some(listener), Some(metrics)) => {
            let (metrics, observers, drain) = (metrics.clone(), observers.clone(), drain.clone());
            let render = move || {
                let dropped = observers.audit.as_ref().map_or(0, Audit::dropped);
                metrics.render(
                    &reader.get().plugins,
                    &observers.hosts.list(),
                    drain.in_flight(),
                    dropped,
                )
            };
            Some(AbortOnDrop(tokio::spawn(metrics::serve(
                listener,
                Arc::new(render),
            ))))
        }
        _ => None,
    };
    // A verdict is never refused on our side: its size is bounded by what goes in it (the
    // canonical params, texts cut to 4 KiB, the trace: docs/security.md).
    let hooks = HooksServer::new(hooks)
        .max_decoding_message_size(HOST_MAX_REQUEST_BYTES)
        .max_encoding_message_size(usize::MAX);

    let limits = config.supervisor.host_limits;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(
        tonic::transport::Server::builder()
            // HTTP/2's own bound on streams; the admission layer answers RESOURCE_EXHAUSTED
            // below it, so hosts are told rather than queued.
            .max_concurrent_streams(limits.max_calls_per_connection.saturating_mul(2))
            .http2_keepalive_interval(None)
            .layer(AdmissionLayer::new(&limits))
            .add_service(health_service)
            .add_service(hooks)
            .add_service(admin)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .serve_with_incoming_shutdown(connections::incoming(listener, limits), async {
                let _ = stop_rx.await;
            }),
    );
    tracing::info!(socket = %socket.display(), plugins = plugins.statuses().len(), "serving");
    observer.ready(&socket, &plugins);

    tokio::pin!(shutdown);
    let Control {
        mut reload,
        mut status,
    } = control;
    let mut config = config;
    let early = loop {
        let requested = async {
            match reload.as_mut() {
                Some(reload) => reload.requests.recv().await,
                None => std::future::pending().await,
            }
        };
        let status_asked = async {
            match status.as_mut() {
                Some(status) => status.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break None,
            ended = &mut server => break Some(ended),
            Some(()) = status_asked => {
                log_status(&current.get().plugins, &observers);
                if let Some(audit) = &observers.audit {
                    audit.reopen();
                }
            }
            Some(()) = requested => {
                let Some(reload) = reload.as_ref() else { continue };
                observer.reloading();
                let _ = reload_with(reload, &current, &mut config, &spawner, grace).await;
                observer.ready(&socket, &current.get().plugins);
            }
            Some(reply) = admin_reloads.recv() => {
                let Some(reload) = reload.as_ref() else {
                    let _ = reply.send(Err("reload is not available: this supervisor was not \
                        started from a configuration file".into()));
                    continue;
                };
                observer.reloading();
                let result = reload_with(reload, &current, &mut config, &spawner, grace).await;
                observer.ready(&socket, &current.get().plugins);
                let _ = reply.send(result);
            }
        }
    };
    let result = match early {
        Some(ended) => flatten(ended),
        None => {
            tracing::info!("shutting down: new calls get UNAVAILABLE; draining calls in flight");
            drain.start();
            observer.stopping();
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
    drop(metrics_server);
    current.get().plugins.stop(grace).await;
    if !activated && let Err(e) = layout::remove_stale_socket(&socket) {
        tracing::warn!("left the host socket in place: {e}");
    }
    tracing::info!("stopped");
    result
}

/// One line per plugin: its phase and its record (and, for a shadow plugin, how often it
/// answered and disagreed with the verdict).
fn log_status(plugins: &PluginSet, observers: &Observers) {
    for (config, plugin) in plugins.configured() {
        let snapshot = plugin.snapshot();
        let record = &snapshot.record;
        let (instance, pid) = record.instance.unzip();
        let up_ms = record.started.map(|t| t.elapsed().as_millis() as u64);
        let (shadow_answers, shadow_disagreements) =
            if config.mode == crate::files::config::PluginMode::Shadow {
                let (answers, disagreed) = observers.shadow_tally.of(&plugin.name);
                (Some(answers), Some(disagreed))
            } else {
                (None, None)
            };
        let (heartbeat_ago_ms, round_trip_us) = record
            .heartbeat
            .map(|(at, rtt)| (at.elapsed().as_millis() as u64, rtt.as_micros() as u64))
            .unzip();
        tracing::info!(
            plugin = %plugin.name,
            state = snapshot.phase.name(),
            instance,
            pid,
            up_ms,
            restarts = record.restarts,
            last_error = record.last_error.as_deref(),
            heartbeat_ago_ms,
            round_trip_us,
            shadow_answers,
            shadow_disagreements,
            "status"
        );
    }
}

/// A reload: starts what `next` adds or changes beside the running plugins (unchanged ones keep
/// their process), switches every new call to it in one step, lets the calls in flight on the
/// old generation finish, then stops what the old generation had and the new one does not.
/// Settings that shape the host socket or the runtime directory need a restart and are kept.
async fn switch(
    current: &generation::Current,
    running: Config,
    mut next: Config,
    spawner: &Spawner,
    grace: Duration,
) -> Config {
    let fixed = &running.supervisor;
    if next.supervisor.socket != fixed.socket
        || next.supervisor.runtime_dir != fixed.runtime_dir
        || next.supervisor.socket_mode != fixed.socket_mode
        || next.supervisor.host_limits != fixed.host_limits
        || next.supervisor.worker_threads != fixed.worker_threads
    {
        tracing::warn!(
            "reload: socket, runtime_dir, socket_mode, worker_threads and the host limits \
             change only with a restart; the running ones stay"
        );
        next.supervisor.socket = fixed.socket.clone();
        next.supervisor.runtime_dir = fixed.runtime_dir.clone();
        next.supervisor.socket_mode = fixed.socket_mode;
        next.supervisor.host_limits = fixed.host_limits;
        next.supervisor.worker_threads = fixed.worker_threads;
    }
    if next.audit != running.audit || next.metrics != running.metrics {
        tracing::warn!(
            "reload: [audit] and [metrics] change only with a restart; the running ones stay"
        );
        next.audit = running.audit.clone();
        next.metrics = running.metrics;
    }
    let old = current.get();
    let plugins = Arc::new(PluginSet::next(Some(&old.plugins), &next, spawner.clone()).await);
    current.switch(Generation {
        plugins: plugins.clone(),
        hooks: next.hooks.clone(),
    });
    // Calls in flight hold the old generation; it is ours alone once they have ended.
    let deadline = tokio::time::Instant::now() + drain_limit(&running);
    while Arc::strong_count(&old) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    old.plugins.stop_unless_kept(&plugins, grace).await;
    tracing::info!(plugins = next.plugins.len(), "reloaded");
    next
}

/// Loads the configuration again and, when it is valid, switches to it (see [`switch`]); the
/// number of plugins now running, or why the new configuration was refused (logged either way).
async fn reload_with(
    reload: &Reload,
    current: &generation::Current,
    config: &mut Config,
    spawner: &Spawner,
    grace: Duration,
) -> Result<usize, String> {
    match (reload.load)() {
        Ok(next) => {
            let running = config.clone();
            *config = switch(current, running, next, spawner, grace).await;
            Ok(config.plugins.len())
        }
        Err(why) => {
            tracing::error!("reload refused; the running configuration stays: {why}");
            Err(format!(
                "reload refused; the running configuration stays: {why}"
            ))
        }
    }
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn flatten(
    ended: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    match ended {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(ServeError::Io {
            context: "the host API server task".into(),
            error: io::Error::other(e),
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
