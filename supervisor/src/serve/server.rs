//! `hookvisor serve`: the plugins, the host socket with `Hooks` and `grpc.health.v1.Health`, and
//! an orderly shutdown (drain, stop plugins, remove sockets). The files it uses on disk, and the
//! checks on them, are [`layout`]'s.

use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
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
use crate::observe::traces::Traces;
use crate::plugin::PluginSet;
use crate::plugin::generation::{self, Generation};
use crate::plugin::reattach;
use crate::plugin::spawner::Spawner;
use crate::serve::admin::{AdminService, ReloadReply, UpgradeLog, UpgradeReply, UpgradeStatus};
use crate::serve::handover::{self, Resumed};
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

/// `spawner`, keeping plugins after a crash when the configuration says so
/// (`keep_plugins_on_crash`), with its claim directory made ready.
fn keep_plugins(spawner: Spawner, config: &Config) -> Result<Spawner, ServeError> {
    let supervisor = &config.supervisor;
    if !supervisor.keep_plugins_on_crash {
        return Ok(spawner);
    }
    let dir = reattach::dir(&supervisor.runtime_dir);
    reattach::prepare_dir(&dir).map_err(io_error(format!(
        "the claim directory {} (keep_plugins_on_crash)",
        dir.display()
    )))?;
    Ok(spawner.keep_plugins(dir, supervisor.keep_plugins_grace_ms))
}

/// How long an upgraded image waits for the reapers it had reattached to bind their claim
/// sockets again.
const RECLAIM_LIMIT: Duration = Duration::from_secs(2);

/// The reapers waiting in `dir` for a supervisor, claimed (see [`reattach::claim_all`]).
async fn claim_all(dir: PathBuf) -> Vec<crate::plugin::process::Adoptee> {
    tokio::task::spawn_blocking(move || reattach::claim_all(&dir))
        .await
        .unwrap_or_default()
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
    /// An upgrade in place has begun (its new binary passed its check); `ready` follows from
    /// the new image, or from this one when the hand-over failed.
    fn upgrading(&self) {
        self.reloading();
    }
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
    /// Serve on the socket an earlier image of this process handed over at an upgrade, and take
    /// over its plugins ([`handover`]).
    HandedOver(Box<Resumed>),
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
    /// Upgrade in place (SIGUSR2, `Admin/Upgrade`).
    pub upgrade: Option<Upgrade>,
}

/// How `serve` upgrades: the installed binary and the command line it re-executes
/// ([`handover`]).
pub struct Upgrade {
    /// One message per upgrade asked for by signal (SIGUSR2).
    pub requests: tokio::sync::mpsc::Receiver<()>,
    /// The installed binary: the path this process was started from (a package that upgrades
    /// replaces the file there).
    pub binary: PathBuf,
    /// The command line after the program: `serve …`, as it was started.
    pub args: Vec<OsString>,
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

/// The host API server on one listener, and the way to stop it gracefully (HTTP/2 GOAWAY).
struct HostServer {
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HostServer {
    /// Stops accepting and closes every connection gracefully (GOAWAY, calls in flight finish)
    /// once the server has taken every connection already accepted.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Moves the hosts (contract §6): stops accepting, sends every connection a two-phase
    /// GOAWAY, and ends once each call taken has its verdict written. A connection still open
    /// [`CONNECTION_CLOSE_WAIT`] later has calls in flight, or a host that does not answer
    /// HTTP/2's PING (a frozen process): its calls finish (within `limit`) and have a moment
    /// to be written, then the server ends without it, so one such host cannot hold everyone
    /// else's calls in the backlog for long.
    async fn close(&mut self, drain: &Drain, limit: Duration) -> Result<(), ServeError> {
        self.stop();
        if let Ok(ended) = tokio::time::timeout(CONNECTION_CLOSE_WAIT, &mut self.task).await {
            return flatten(ended);
        }
        if tokio::time::timeout(limit, drain.idle()).await.is_err() {
            tracing::warn!(
                limit_ms = limit.as_millis() as u64,
                "calls still in flight after the drain limit"
            );
        }
        match tokio::time::timeout(CONNECTION_CLOSE_WAIT, &mut self.task).await {
            Ok(ended) => flatten(ended),
            Err(_) => {
                tracing::warn!(
                    "a host connection did not close after GOAWAY (a host that does not answer \
                     HTTP/2's PING); closing it"
                );
                self.task.abort();
                Ok(())
            }
        }
    }
}

/// [`serve`] on `host` (the configured socket, one systemd passed in, or one handed over at an
/// upgrade), answering `control`'s requests.
pub async fn serve_on(
    config: Config,
    host: HostSocket,
    control: Control,
    shutdown: impl Future<Output = ()>,
    observer: &dyn Observer,
) -> Result<(), ServeError> {
    let (host, resumed) = match host {
        HostSocket::HandedOver(resumed) => {
            let Resumed {
                id,
                host,
                host_path,
                activated,
                lock,
                metrics,
                next_instance,
                plugins,
                args: _,
                stopped,
                exec,
            } = *resumed;
            let (listener, host) = if activated {
                (HostSocket::Activated(host), None)
            } else {
                (HostSocket::Bind, Some(host))
            };
            let taken = Taken {
                id,
                host,
                host_path,
                lock,
                metrics,
                next_instance,
                plugins,
                stopped,
                exec,
            };
            (listener, Some(taken))
        }
        host => (host, None),
    };
    // Nothing is created before everything that would be refused is known.
    match &host {
        HostSocket::Bind if resumed.is_none() => preflight::preflight(&config)?,
        _ => preflight::preflight_activated(&config)?,
    }
    crate::plugin::sandbox::preflight(&config)?;
    // No process of another uid, nor a plugin of the same uid (Landlock), may read this
    // process's memory or environment through /proc or trace it.
    let _ = nix::sys::prctl::set_dumpable(false);
    connections::raise_nofile_limit();
    layout::prepare_runtime_dir(&config.supervisor.runtime_dir)?;
    // Held until the end: two supervisors must never share plugin sockets. After an upgrade,
    // the open file that holds it was handed over.
    let lock = match &resumed {
        Some(taken) => {
            let file = taken
                .lock
                .try_clone()
                .map_err(io_error("the runtime directory lock"))?;
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
                |(_, errno)| ServeError::Io {
                    context: "the runtime directory lock handed over".into(),
                    error: errno.into(),
                },
            )?
        }
        None => layout::lock_runtime_dir(&config.supervisor.runtime_dir)?,
    };
    if matches!(host, HostSocket::Bind) && resumed.is_none() {
        layout::check_host_socket_free(&config.supervisor.socket)?;
    }
    // Before any plugin starts: an audit log that cannot be opened stops `serve` here.
    let audit = match &config.audit {
        Some(audit) => Some(Audit::start(audit).map_err(io_error("[audit] path"))?),
        None => None,
    };
    let handed_metrics = resumed
        .as_ref()
        .and_then(|t| t.metrics.as_ref())
        .and_then(|l| l.try_clone().ok());
    let metrics_listener = match &config.metrics {
        Some(metrics) => Some(match handed_metrics {
            Some(listener)
                if listener.local_addr().ok() == Some(metrics.listen)
                    || metrics.listen.port() == 0 =>
            {
                listener
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(listener))
                    .map_err(io_error("[metrics] listener handed over"))?
            }
            _ => metrics::bind(metrics.listen)
                .await
                .map_err(io_error("[metrics] listen"))?,
        }),
        None => None,
    };
    let metrics_fd = metrics_listener
        .as_ref()
        .and_then(|l| l.as_fd().try_clone_to_owned().ok());
    let metrics = metrics_listener.as_ref().map(|_| Arc::new(Metrics::new()));
    let traces = match &config.tracing {
        Some(tracing) => Some(Traces::start(tracing).map_err(|e| ServeError::Io {
            context: "[tracing]".into(),
            error: io::Error::other(e),
        })?),
        None => None,
    };
    let observers = Arc::new(Observers {
        traces,
        ..Observers::new(audit, metrics)
    });
    let grace = Duration::from_millis(config.supervisor.stop_grace_ms.into());
    let (spawner, plugins, upgraded) = match resumed {
        Some(Taken {
            id,
            host,
            host_path,
            next_instance,
            plugins,
            stopped,
            exec,
            ..
        }) => {
            let reapers: Vec<_> = plugins
                .iter()
                .map(|p| nix::unistd::Pid::from_raw(p.handed.reaper))
                .collect();
            let spawner = Spawner::start_adopting(tokio::runtime::Handle::current(), &reapers)
                .map_err(io_error("cannot start the spawner thread"))?;
            let spawner = keep_plugins(spawner, &config)?;
            // Plugins this image had reattached lost their claim at `execve`: claimed again,
            // instead of their hand-over (their reapers are not this process's children).
            let mut plugins = plugins;
            if let Some((dir, _)) = spawner.kept() {
                let dir = dir.to_path_buf();
                let (mut claimed, handed) = tokio::task::spawn_blocking(move || {
                    let claimed = reattach::claim_again(&dir, &plugins, RECLAIM_LIMIT);
                    (claimed, plugins)
                })
                .await
                .map_err(|e| ServeError::Io {
                    context: "claiming reattached plugins again".into(),
                    error: io::Error::other(e),
                })?;
                plugins = handed;
                // The hand-over has their records; the claim, their live connection.
                for claim in &mut claimed {
                    let record = plugins
                        .iter()
                        .find(|p| p.handed.reaper == claim.handed.reaper);
                    if let Some(record) = record {
                        let (to, from) = (&mut claim.handed, &record.handed);
                        to.restarts = from.restarts;
                        to.last_error.clone_from(&from.last_error);
                        to.version.clone_from(&from.version);
                        to.uptime_ms = from.uptime_ms;
                    }
                }
                plugins.retain(|p| !claimed.iter().any(|c| c.handed.reaper == p.handed.reaper));
                claimed.append(&mut plugins);
                plugins = claimed;
            }
            let floor = plugins.iter().map(|p| p.handed.instance).max().unwrap_or(0);
            PluginSet::continue_instances_after(floor.max(next_instance.saturating_sub(1)));
            let handed = plugins.len();
            let (set, kept) = PluginSet::resume(&config, spawner.clone(), plugins, grace).await;
            let ms = |from: std::time::SystemTime, to: std::time::SystemTime| {
                to.duration_since(from).map_or(0, |d| d.as_millis() as u64)
            };
            let now = std::time::SystemTime::now();
            let (drain_ms, takeover_ms) = (ms(stopped, exec), ms(exec, now));
            tracing::info!(
                kept,
                handed,
                configured = config.plugins.len(),
                drain_ms,
                takeover_ms,
                "upgraded in place: plugins taken over"
            );
            let outcome = UpgradeStatus {
                id,
                state: "done",
                detail: format!(
                    "{} serves; {kept} of {} plugins kept their process; not accepting for \
                     {drain_ms} ms (hosts' calls finishing) + {takeover_ms} ms (execve to \
                     plugins checked again)",
                    std::env::current_exe()
                        .map_or_else(|_| "hookvisor".into(), |p| p.display().to_string()),
                    config.plugins.len()
                ),
                plugins: config.plugins.len(),
                kept,
            };
            (spawner, Arc::new(set), Some((outcome, host, host_path)))
        }
        None => {
            let spawner = Spawner::start(tokio::runtime::Handle::current())
                .map_err(io_error("cannot start the spawner thread"))?;
            let spawner = keep_plugins(spawner, &config)?;
            let claimed = match spawner.kept() {
                Some((dir, _)) => claim_all(dir.to_path_buf()).await,
                None => Vec::new(),
            };
            let set = if claimed.is_empty() {
                PluginSet::start(&config, spawner.clone()).await
            } else {
                let floor = claimed.iter().map(|p| p.handed.instance).max().unwrap_or(0);
                PluginSet::continue_instances_after(floor);
                let found = claimed.len();
                let (set, kept) = PluginSet::resume(&config, spawner.clone(), claimed, grace).await;
                tracing::info!(
                    kept,
                    found,
                    configured = config.plugins.len(),
                    "reattached to plugins a killed supervisor left running"
                );
                set
            };
            (spawner, Arc::new(set), None)
        }
    };

    let activated = matches!(host, HostSocket::Activated(_));
    let (upgraded, handed_host) = match upgraded {
        Some((outcome, host, path)) => (Some(outcome), host.map(|h| (h, path))),
        None => (None, None),
    };
    let handed_path = handed_host.as_ref().map(|(_, path)| path.clone());
    let listener = match (host, handed_host) {
        (HostSocket::Bind, Some((listener, _))) | (HostSocket::Activated(listener), _) => listener
            .set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(listener))
            .map_err(io_error("the host socket passed in")),
        (HostSocket::Bind, None) => {
            layout::bind_host_socket(&config.supervisor.socket, config.supervisor.socket_mode)
                .map_err(ServeError::from)
        }
        (HostSocket::HandedOver(_), _) => Err(ServeError::Io {
            context: "the host socket handed over".into(),
            error: io::Error::other("taken twice"),
        }),
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
        _ => match &handed_path {
            Some(path) => path.clone(),
            None => config.supervisor.socket.clone(),
        },
    };
    // A copy of the listener outlives each server on it: an upgrade hands it over, and a failed
    // one serves on it again. Connections wait in its backlog between the two.
    let host_fd = listener
        .as_fd()
        .try_clone_to_owned()
        .map_err(io_error("the host socket"))?;

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
    let (admin_upgrades_tx, mut admin_upgrades) = tokio::sync::mpsc::channel::<UpgradeReply>(4);
    let upgrades = UpgradeLog::default();
    if let Some(outcome) = upgraded {
        upgrades.record(outcome);
    }
    let admin = AdminServer::new(AdminService::new(
        reader.clone(),
        observers.clone(),
        admin_reloads_tx,
        admin_upgrades_tx,
        upgrades.clone(),
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
    let router = tonic::transport::Server::builder()
        // HTTP/2's own bound on streams; the admission layer answers RESOURCE_EXHAUSTED
        // below it, so hosts are told rather than queued.
        .max_concurrent_streams(limits.max_calls_per_connection.saturating_mul(2))
        .http2_keepalive_interval(None)
        .layer(AdmissionLayer::new(&limits))
        .add_service(health_service)
        .add_service(hooks)
        .add_service(admin)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let start_server = |listener: UnixListener| {
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // The server stops when its incoming stream ends (the accept loop told to stop), never
        // by a signal of its own: so it takes every connection accepted before, instead of
        // leaving one accepted and unserved. The shutdown future is there for tonic's graceful
        // close of the open connections (GOAWAY) once the stream has ended.
        let task = tokio::spawn(router.clone().serve_with_incoming_shutdown(
            connections::incoming(listener, limits, stop_rx),
            std::future::pending::<()>(),
        ));
        HostServer {
            task,
            stop: Some(stop),
        }
    };
    let mut server = start_server(listener);
    tracing::info!(socket = %socket.display(), plugins = plugins.statuses().len(), "serving");
    observer.ready(&socket, &plugins);

    tokio::pin!(shutdown);
    let Control {
        mut reload,
        mut status,
        mut upgrade,
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
        let upgrade_signalled = async {
            match upgrade.as_mut() {
                Some(upgrade) => upgrade.requests.recv().await,
                None => std::future::pending().await,
            }
        };
        let asked_upgrade = tokio::select! {
            _ = &mut shutdown => break None,
            ended = &mut server.task => break Some(flatten(ended)),
            Some(()) = status_asked => {
                log_status(&current.get().plugins, &observers);
                if let Some(audit) = &observers.audit {
                    audit.reopen();
                }
                continue;
            }
            Some(()) = requested => {
                let Some(reload) = reload.as_ref() else { continue };
                observer.reloading();
                let _ = reload_with(reload, &current, &mut config, &spawner, grace).await;
                observer.ready(&socket, &current.get().plugins);
                continue;
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
                continue;
            }
            Some(()) = upgrade_signalled => None,
            Some(reply) = admin_upgrades.recv() => Some(reply),
        };
        let Some(upgrade) = upgrade.as_ref() else {
            if let Some(reply) = asked_upgrade {
                let _ = reply.send(Err("upgrade is not available: this supervisor was not \
                    started by the hookvisor command"
                    .into()));
            }
            continue;
        };
        let id = handover::new_id();
        tracing::info!(id, binary = %upgrade.binary.display(), "upgrade asked for: checking the new binary");
        let activated_path = activated.then_some(socket.as_path());
        let checked = tokio::select! {
            checked = handover::check(&spawner, &upgrade.binary, activated_path, &upgrade.args) => checked,
            () = &mut shutdown => {
                if let Some(reply) = asked_upgrade {
                    let _ = reply.send(Err("hookvisor is shutting down".into()));
                }
                break None;
            }
        };
        let checked = match checked {
            Ok(checked) => checked,
            Err(why) => {
                tracing::error!("upgrade refused; this binary serves on: {why}");
                let why = format!("upgrade refused; the running supervisor serves on: {why}");
                upgrades.record(UpgradeStatus::failed(id, why.clone()));
                if let Some(reply) = asked_upgrade {
                    let _ = reply.send(Err(why));
                }
                continue;
            }
        };
        upgrades.record(UpgradeStatus {
            id,
            state: "handing over",
            detail: format!("handing over to {}", upgrade.binary.display()),
            plugins: 0,
            kept: 0,
        });
        if let Some(reply) = asked_upgrade {
            let _ = reply.send(Ok(id));
        }
        observer.upgrading();
        // Hosts are moved, not refused (§6): the server stops accepting (connections wait in
        // the listener's backlog for the new image), tells every connection to go away in two
        // phases (HTTP/2 GOAWAY), and ends once the calls in flight have their verdicts.
        let stopped = std::time::SystemTime::now();
        if let Err(e) = server.close(&drain, drain_limit(&config)).await {
            tracing::warn!("the host API server ended with: {e}");
        }
        // The audit writer and its queue end at `execve`: every verdict's line is written first.
        flush_audit(&observers);
        end_traces(&observers, false).await;
        let plugins_now = current.get().plugins.clone();
        let outgoing = handover::prepare(handover::Handover {
            id,
            host: host_fd.as_fd(),
            host_path: &socket,
            activated,
            lock: lock.as_fd(),
            metrics: metrics_fd.as_ref().map(AsFd::as_fd),
            next_instance: PluginSet::next_instance(),
            plugins: plugins_now.handover(),
            stopped,
        });
        let why = match outgoing {
            Ok(outgoing) => handover::exec(outgoing, &upgrade.binary, checked, &upgrade.args),
            Err(e) => format!("cannot write the hand-over: {e}; not upgraded"),
        };
        // Still here: the old image serves on, on the same listener.
        tracing::error!("upgrade failed; this binary serves on: {why}");
        upgrades.record(UpgradeStatus::failed(id, why));
        let again = host_fd
            .try_clone()
            .map(std::os::unix::net::UnixListener::from)
            .and_then(|l| {
                l.set_nonblocking(true)?;
                UnixListener::from_std(l)
            });
        match again {
            Ok(listener) => server = start_server(listener),
            Err(e) => {
                break Some(Err(ServeError::Io {
                    context: "serving again after a failed upgrade".into(),
                    error: e,
                }));
            }
        }
        observer.ready(&socket, &current.get().plugins);
    };
    let result = match early {
        Some(result) => result,
        None if activated => {
            // Under socket activation the listener stays open in systemd's hands and the next
            // supervisor accepts what queues meanwhile: hosts are moved, as at an upgrade (§6).
            tracing::info!(
                "shutting down: host connections are sent GOAWAY; calls in flight finish"
            );
            observer.stopping();
            server.close(&drain, drain_limit(&config)).await
        }
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
            server.stop();
            match tokio::time::timeout(CONNECTION_CLOSE_WAIT, &mut server.task).await {
                Ok(ended) => flatten(ended),
                Err(_) => {
                    server.task.abort();
                    Ok(())
                }
            }
        }
    };
    drop(metrics_server);
    flush_audit(&observers);
    end_traces(&observers, true).await;
    current.get().plugins.stop(grace).await;
    if !activated && let Err(e) = layout::remove_stale_socket(&socket) {
        tracing::warn!("left the host socket in place: {e}");
    }
    drop(lock);
    tracing::info!("stopped");
    result
}

/// How long the end of the process (or an upgrade's `execve`) waits for the audit writer.
const AUDIT_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// Waits for the audit log's queued lines to be written (bounded: a writer stuck on a full disk
/// or a pipe nobody reads must not hold the process), and says so when they were not.
fn flush_audit(observers: &Observers) {
    if let Some(audit) = &observers.audit
        && !audit.flush(AUDIT_FLUSH_LIMIT)
    {
        tracing::warn!(
            limit_ms = AUDIT_FLUSH_LIMIT.as_millis() as u64,
            "audit log: the writer did not write every queued line in time; they are lost"
        );
    }
}

/// How long the end of the process (or an upgrade's `execve`) waits for the span exporter.
const TRACES_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// Exports the queued spans (bounded: a collector that is down must not hold the process), on
/// a blocking thread, as the export's connection needs the runtime meanwhile; `last`: and stops
/// the exporter.
async fn end_traces(observers: &Arc<Observers>, last: bool) {
    if observers.traces.is_none() {
        return;
    }
    let observers = observers.clone();
    let flush = tokio::task::spawn_blocking(move || match &observers.traces {
        Some(traces) if last => {
            traces.shutdown();
            true
        }
        Some(traces) => traces.flush(),
        None => true,
    });
    if !matches!(
        tokio::time::timeout(TRACES_FLUSH_LIMIT, flush).await,
        Ok(Ok(true))
    ) {
        tracing::warn!(
            limit_ms = TRACES_FLUSH_LIMIT.as_millis() as u64,
            "tracing: the queued spans were not all exported; they are lost"
        );
    }
}

/// What an earlier image handed over, as `serve_on` takes it apart.
struct Taken {
    id: u64,
    /// The host listener, when it is not systemd's (that one came as `HostSocket::Activated`).
    host: Option<std::os::unix::net::UnixListener>,
    host_path: PathBuf,
    lock: std::fs::File,
    metrics: Option<std::net::TcpListener>,
    next_instance: u32,
    plugins: Vec<crate::plugin::process::Adoptee>,
    /// When the old image stopped accepting, and when it called `execve`.
    stopped: std::time::SystemTime,
    exec: std::time::SystemTime,
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
    if next.audit != running.audit
        || next.metrics != running.metrics
        || next.tracing != running.tracing
    {
        tracing::warn!(
            "reload: [audit], [metrics] and [tracing] change only with a restart (or an \
             upgrade in place); the running ones stay"
        );
        next.audit = running.audit.clone();
        next.metrics = running.metrics;
        next.tracing = running.tracing.clone();
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
