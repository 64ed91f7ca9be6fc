//! The operators' service, `hookvisor.v1.Admin` (`proto/hookvisor/v1/admin.proto`), on the host
//! socket beside `Hooks`: the plugin table (`ListPlugins`), a restart of one plugin
//! (`RestartPlugin`), a reload of the configuration (`Reload`, as SIGHUP), the hosts that
//! report and call (`ListHosts`, contract §4.5), and an upgrade in place (`Upgrade`, as SIGUSR2:
//! [`crate::serve::handover`]).
//!
//! Whoever may call the host socket may call this too (the socket's mode decides who). None of
//! it can let a call through: a restart blocks the plugin's calls until its new instance is
//! ready, a reload reads only the operator's file.

use std::sync::Arc;
use std::time::Duration;

use hookvisor_proto::v1::admin_server::Admin;
use hookvisor_proto::v1::{
    ListHostsRequest, ListHostsResponse, ListPluginsRequest, ListPluginsResponse, PluginStatus,
    ReloadRequest, ReloadResponse, RestartPluginRequest, RestartPluginResponse, UpgradeRequest,
    UpgradeResponse,
};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::files::config::PluginMode;
use crate::host::service::Observers;
use crate::plugin::Phase;
use crate::plugin::generation;

/// A reload asked for by `Admin/Reload`: the serve loop answers with the number of plugins now
/// running, or why the configuration was refused.
pub type ReloadReply = oneshot::Sender<Result<usize, String>>;

/// An upgrade asked for by `Admin/Upgrade`: the serve loop answers with the upgrade's id once
/// the new binary passed its check (the hand-over follows), or why it was refused.
pub type UpgradeReply = oneshot::Sender<Result<u64, String>>;

/// How an upgrade went, for `Admin/Upgrade`'s `status_of`.
#[derive(Debug, Clone)]
pub struct UpgradeStatus {
    /// Its id.
    pub id: u64,
    /// `handing over`, `done` or `failed`.
    pub state: &'static str,
    /// What happened, for a person.
    pub detail: String,
    /// For `done`: plugins configured, and how many kept their process.
    pub plugins: usize,
    /// How many kept their process.
    pub kept: usize,
}

impl UpgradeStatus {
    /// A refused or failed upgrade.
    pub fn failed(id: u64, why: String) -> UpgradeStatus {
        UpgradeStatus {
            id,
            state: "failed",
            detail: why,
            plugins: 0,
            kept: 0,
        }
    }
}

/// The last upgrades this image knows of (begun or refused here, or the one that started it).
#[derive(Debug, Clone, Default)]
pub struct UpgradeLog(Arc<std::sync::Mutex<std::collections::VecDeque<UpgradeStatus>>>);

impl UpgradeLog {
    /// Records (or updates) `status`; the last 16 are kept.
    pub fn record(&self, status: UpgradeStatus) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        log.retain(|s| s.id != status.id);
        if log.len() >= 16 {
            log.pop_front();
        }
        log.push_back(status);
    }

    fn find(&self, id: u64) -> Option<UpgradeStatus> {
        let log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().find(|s| s.id == id).cloned()
    }
}

/// How long `RestartPlugin` waits for the new instance to be ready or to fail.
const RESTART_WAIT: Duration = Duration::from_secs(60);

/// The `Admin` service.
#[derive(Debug, Clone)]
pub struct AdminService {
    generation: generation::Reader,
    observers: Arc<Observers>,
    reloads: mpsc::Sender<ReloadReply>,
    upgrades: mpsc::Sender<UpgradeReply>,
    upgrade_log: UpgradeLog,
}

impl AdminService {
    /// A service over the current generation; reloads and upgrades are sent to the serve loop
    /// on `reloads` and `upgrades`, and upgrades' outcomes read from `upgrade_log`.
    pub fn new(
        generation: generation::Reader,
        observers: Arc<Observers>,
        reloads: mpsc::Sender<ReloadReply>,
        upgrades: mpsc::Sender<UpgradeReply>,
        upgrade_log: UpgradeLog,
    ) -> Self {
        Self {
            generation,
            observers,
            reloads,
            upgrades,
            upgrade_log,
        }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn list_plugins(
        &self,
        _request: Request<ListPluginsRequest>,
    ) -> Result<Response<ListPluginsResponse>, Status> {
        let generation = self.generation.get();
        let plugins = generation
            .plugins
            .configured()
            .map(|(config, plugin)| {
                let snapshot = plugin.snapshot();
                let record = &snapshot.record;
                let figures = self.observers.calls.of(&plugin.name);
                let shadow = config.mode == PluginMode::Shadow;
                let (shadow_answers, shadow_disagreements) = if shadow {
                    self.observers.shadow_tally.of(&plugin.name)
                } else {
                    (0, 0)
                };
                let (heartbeat_age_ms, heartbeat_round_trip_us) =
                    record.heartbeat.map_or((0, 0), |(at, rtt)| {
                        (millis(at.elapsed()), rtt.as_micros() as u64)
                    });
                PluginStatus {
                    name: plugin.name.to_string(),
                    version: record.version.as_deref().unwrap_or("").to_owned(),
                    state: snapshot.phase.name().to_owned(),
                    pid: snapshot.pid().unwrap_or(0),
                    endpoint: config
                        .remote
                        .as_ref()
                        .map(|r| r.endpoint.clone())
                        .unwrap_or_default(),
                    trusted: config.trusted,
                    registrations: snapshot
                        .registrations
                        .as_deref()
                        .map(<[_]>::to_vec)
                        .unwrap_or_default(),
                    restarts: record.restarts,
                    last_error: record.last_error.clone().unwrap_or_default(),
                    heartbeat_age_ms,
                    heartbeat_round_trip_us,
                    calls: figures.calls,
                    blocks: figures.blocks,
                    failures: figures.failures,
                    p50_latency_us: figures.p50_us,
                    p99_latency_us: figures.p99_us,
                    mode: if shadow { "shadow" } else { "enforce" }.to_owned(),
                    shadow_answers,
                    shadow_disagreements,
                    uptime_ms: record.started.map_or(0, |t| millis(t.elapsed())),
                    sandboxed: record.sandbox.as_ref().is_some_and(|s| s.enabled),
                    uid: record.sandbox.as_ref().and_then(|s| s.uid).unwrap_or(0),
                    sandbox_enforced: record
                        .sandbox
                        .as_ref()
                        .map(|s| s.enforced.clone())
                        .unwrap_or_default(),
                    sandbox_missing: record
                        .sandbox
                        .as_ref()
                        .map(|s| s.missing.clone())
                        .unwrap_or_default(),
                }
            })
            .collect();
        Ok(Response::new(ListPluginsResponse { plugins }))
    }

    async fn restart_plugin(
        &self,
        request: Request<RestartPluginRequest>,
    ) -> Result<Response<RestartPluginResponse>, Status> {
        let name = request.into_inner().name;
        if name.is_empty() || name.len() > 63 {
            return Err(Status::invalid_argument(format!(
                "name: a plugin name is 1..63 bytes, got {}",
                name.len()
            )));
        }
        let generation = self.generation.get();
        let Some(plugin) = generation.plugins.find(&name) else {
            let known: Vec<&str> = generation.plugins.plugins().map(|p| &*p.name).collect();
            return Err(Status::not_found(format!(
                "no plugin named '{}' (configured: {})",
                crate::decide::limits::cap_text(&name, 63),
                known.join(", ")
            )));
        };
        let mut watch = plugin.watch();
        let before = watch.borrow().record.instance;
        tracing::info!(plugin = %plugin.name, "restart asked for through the admin service");
        plugin.restart();
        // Ready, or failed, with a new instance.
        let changed = watch.wait_for(|s| {
            matches!(s.phase, Phase::Stopped)
                || (s.record.instance != before && !matches!(s.phase, Phase::Starting))
        });
        match tokio::time::timeout(RESTART_WAIT, changed).await {
            Ok(Ok(snapshot)) => Ok(Response::new(RestartPluginResponse {
                state: snapshot.phase.to_string(),
                pid: snapshot.pid().unwrap_or(0),
            })),
            Ok(Err(_)) => Err(Status::unavailable("the plugin's owner has stopped")),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "the new instance was neither ready nor failed within {} s",
                RESTART_WAIT.as_secs()
            ))),
        }
    }

    async fn reload(
        &self,
        _request: Request<ReloadRequest>,
    ) -> Result<Response<ReloadResponse>, Status> {
        let (reply, answer) = oneshot::channel();
        self.reloads
            .send(reply)
            .await
            .map_err(|_| Status::unavailable("hookvisor is shutting down"))?;
        match answer.await {
            Ok(Ok(plugins)) => Ok(Response::new(ReloadResponse {
                plugins: u32::try_from(plugins).unwrap_or(u32::MAX),
            })),
            Ok(Err(why)) => Err(Status::failed_precondition(why)),
            Err(_) => Err(Status::unavailable("hookvisor is shutting down")),
        }
    }

    async fn upgrade(
        &self,
        request: Request<UpgradeRequest>,
    ) -> Result<Response<UpgradeResponse>, Status> {
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        let answer = |status: UpgradeStatus| UpgradeResponse {
            id: status.id,
            state: status.state.to_owned(),
            detail: status.detail,
            pid,
            plugins: u32::try_from(status.plugins).unwrap_or(u32::MAX),
            plugins_kept: u32::try_from(status.kept).unwrap_or(u32::MAX),
        };
        let status_of = request.into_inner().status_of;
        if status_of != 0 {
            let status = self.upgrade_log.find(status_of).unwrap_or(UpgradeStatus {
                id: status_of,
                state: "unknown",
                detail: "this supervisor knows no upgrade of that id".into(),
                plugins: 0,
                kept: 0,
            });
            return Ok(Response::new(answer(status)));
        }
        tracing::info!("upgrade asked for through the admin service");
        let (reply, answered) = oneshot::channel();
        self.upgrades
            .send(reply)
            .await
            .map_err(|_| Status::unavailable("hookvisor is shutting down"))?;
        match answered.await {
            Ok(Ok(id)) => Ok(Response::new(answer(self.upgrade_log.find(id).unwrap_or(
                UpgradeStatus {
                    id,
                    state: "handing over",
                    detail: String::new(),
                    plugins: 0,
                    kept: 0,
                },
            )))),
            Ok(Err(why)) => Err(Status::failed_precondition(why)),
            Err(_) => Err(Status::unavailable("hookvisor is shutting down")),
        }
    }

    async fn list_hosts(
        &self,
        _request: Request<ListHostsRequest>,
    ) -> Result<Response<ListHostsResponse>, Status> {
        Ok(Response::new(ListHostsResponse {
            hosts: self.observers.hosts.list(),
        }))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
