//! The set of plugins and their states: who is ready, who takes part in which call (§3), and
//! the calls themselves. Per-plugin state lives here and only here.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::join_all;
use hookvisor_proto::v1::plugin_client::PluginClient;
use hookvisor_proto::v1::{
    Ack, BeforeSessionCreateRequest, BeforeToolCallRequest, Hook, HookRegistration,
    SessionCreatedEvent, SessionDecision, Stage, ToolCallDecision,
};
use tonic::transport::Channel;

use crate::config::{Config, OnFailure, PluginConfig};
use crate::limits::MAX_TOOL_NAME_BYTES;
use crate::merge::{Failed, Slot};
use crate::plugin::{self, Process};
use crate::spawner::Spawner;
use crate::stages::{Answer, Answerer, Lineup, Participant};

/// Where a plugin is in its life.
#[derive(Debug, Clone)]
pub enum Status {
    /// Spawned, handshake not finished.
    Starting,
    /// Takes calls.
    Ready,
    /// Described itself with registrations the operator's configuration does not allow.
    Rejected(String),
    /// Could not start (the cause and its last stderr lines).
    Failed(String),
    /// Exited after it was ready. (Restarts come with the lifecycle work; until then it stays
    /// unavailable and its calls block.)
    Exited(String),
    /// Stopped by the supervisor.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Starting => f.write_str("starting"),
            Status::Ready => f.write_str("ready"),
            Status::Rejected(why) => write!(f, "rejected: {why}"),
            Status::Failed(why) => write!(f, "failed to start: {why}"),
            Status::Exited(how) => write!(f, "exited ({how})"),
            Status::Stopped => f.write_str("stopped"),
        }
    }
}

#[derive(Debug)]
struct State {
    status: Status,
    /// The last accepted registrations; `None` until the first accepted `Describe`, during
    /// which the plugin counts as registered for every blocking hook and tool.
    registrations: Option<Arc<[HookRegistration]>>,
    client: Option<PluginClient<Channel>>,
    process: Option<Arc<Process>>,
}

/// One configured plugin and its state.
#[derive(Debug)]
pub struct Plugin {
    /// Its configuration.
    pub config: PluginConfig,
    /// Its configured name, shared by every trace entry.
    pub name: Arc<str>,
    socket: PathBuf,
    state: RwLock<State>,
}

/// Every configured plugin, in configuration order.
#[derive(Debug)]
pub struct PluginSet {
    plugins: Vec<Arc<Plugin>>,
    spawner: Spawner,
    /// Every plugin's working directory: the configuration's directory.
    workdir: PathBuf,
}

impl PluginSet {
    /// Starts every plugin concurrently and waits until each is ready or has failed.
    pub async fn start(config: &Config, spawner: Spawner) -> PluginSet {
        let plugins = config
            .plugins
            .iter()
            .map(|p| {
                Arc::new(Plugin {
                    config: p.clone(),
                    name: Arc::from(p.name.as_str()),
                    socket: config.plugin_socket(p),
                    state: RwLock::new(State {
                        status: Status::Starting,
                        registrations: None,
                        client: None,
                        process: None,
                    }),
                })
            })
            .collect();
        let set = PluginSet {
            plugins,
            spawner,
            workdir: config.dir.clone(),
        };
        let timeout = Duration::from_millis(config.supervisor.start_timeout_ms.into());
        join_all(set.plugins.iter().map(|p| set.launch(p.clone(), timeout))).await;
        set
    }

    async fn launch(&self, plugin: Arc<Plugin>, timeout: Duration) {
        let name = plugin.name.clone();
        if let Err(e) = crate::layout::remove_stale_socket(&plugin.socket) {
            let why = e.to_string();
            tracing::error!(plugin = %name, "failed to start: {why}");
            plugin.set_status(Status::Failed(why));
            return;
        }
        let process = match Process::spawn(
            &self.spawner,
            &plugin.config,
            &plugin.socket,
            &self.workdir,
        )
        .await
        {
            Ok(process) => Arc::new(process),
            Err(why) => {
                tracing::error!(plugin = %name, "failed to start: {why}");
                plugin.set_status(Status::Failed(why));
                return;
            }
        };
        plugin.update(|s| s.process = Some(process.clone()));
        let connected = match process.handshake(&plugin.socket, timeout).await {
            Ok(connected) => connected,
            Err(why) => {
                process.stop(Duration::ZERO).await;
                let why = with_stderr(why, &process.stderr_tail().await);
                tracing::error!(plugin = %name, "failed to start: {why}");
                plugin.set_status(Status::Failed(why));
                return;
            }
        };
        if let Err(why) = plugin.accept(&connected.info.hooks) {
            tracing::error!(plugin = %name, "rejected: {why}");
            process.stop(Duration::ZERO).await;
            plugin.set_status(Status::Rejected(why));
            return;
        }
        plugin.update(|s| {
            s.client = Some(connected.client);
            s.status = Status::Ready;
        });
        tracing::info!(plugin = %name, pid = process.pid().as_raw(),
            version = ?short(&connected.info.version), hooks = connected.info.hooks.len(), "ready");

        let watcher = plugin.clone();
        tokio::spawn(async move {
            let how = process.wait_exit().await;
            let was_ready = watcher.update(|s| {
                let ready = matches!(s.status, Status::Ready);
                if ready {
                    s.status = Status::Exited(how.clone());
                    s.client = None;
                }
                ready
            });
            if was_ready {
                tracing::warn!(plugin = %watcher.name,
                    "exited ({how}); it stays unavailable and its calls block");
            }
        });
    }

    /// The plugins taking part in `hook` for `tool`, split into the policy stage and the hook
    /// stage, each by priority descending, ties in configuration order.
    pub fn lineup(&self, hook: Hook, tool: Option<&str>) -> Lineup {
        let mut policy = Vec::new();
        let mut hooks = Vec::new();
        for plugin in &self.plugins {
            let config = &plugin.config;
            if config
                .hooks
                .as_ref()
                .is_some_and(|allowed| !allowed.contains(&hook))
            {
                continue;
            }
            let configured_timeout = config.timeout_ms.map(|ms| Duration::from_millis(ms.into()));
            let mut add = |stage: Stage, priority: i32, timeout: Option<Duration>| {
                let participant = Participant {
                    answerer: plugin.clone(),
                    slot: Slot {
                        plugin: plugin.name.clone(),
                        stage,
                        skip_on_failure: config.on_failure == OnFailure::Skip && !config.trusted,
                    },
                    timeout,
                };
                let list = if stage == Stage::Policy {
                    &mut policy
                } else {
                    &mut hooks
                };
                if !list
                    .iter()
                    .any(|(_, p): &(i32, Participant)| p.slot.plugin == plugin.name)
                {
                    list.push((priority, participant));
                }
            };
            match plugin.registrations() {
                None if hook != Hook::SessionCreated => {
                    let stage = if config.trusted {
                        Stage::Policy
                    } else {
                        Stage::Hook
                    };
                    add(stage, config.priority.unwrap_or(0), configured_timeout);
                }
                None => {}
                Some(registrations) => {
                    for r in registrations.iter().filter(|r| r.hook == hook as i32) {
                        if tool
                            .is_some_and(|t| !r.tools.is_empty() && !r.tools.iter().any(|x| x == t))
                        {
                            continue;
                        }
                        let stage = match r.stage() {
                            Stage::Policy => Stage::Policy,
                            Stage::Hook | Stage::Unspecified => Stage::Hook,
                        };
                        let own =
                            (r.timeout_ms > 0).then(|| Duration::from_millis(r.timeout_ms.into()));
                        add(
                            stage,
                            config.priority.unwrap_or(r.priority),
                            configured_timeout.or(own),
                        );
                    }
                }
            }
        }
        // A stable sort keeps configuration order among equal priorities.
        let order = |mut list: Vec<(i32, Participant)>| {
            list.sort_by_key(|(priority, _)| std::cmp::Reverse(*priority));
            list.into_iter().map(|(_, p)| p).collect()
        };
        Lineup {
            policies: order(policy),
            hooks: order(hooks),
        }
    }

    /// Every plugin with its status, in configuration order.
    pub fn statuses(&self) -> Vec<(Arc<str>, Status)> {
        self.plugins
            .iter()
            .map(|p| (p.name.clone(), p.status()))
            .collect()
    }

    /// Stops every plugin (SIGTERM to its group, `grace`, SIGKILL) and removes its socket.
    pub async fn stop(&self, grace: Duration) {
        join_all(self.plugins.iter().map(|plugin| async move {
            let process = plugin.update(|s| {
                s.status = Status::Stopped;
                s.client = None;
                s.process.take()
            });
            if let Some(process) = process {
                let how = process.stop(grace).await;
                tracing::info!(plugin = %plugin.name, "stopped ({how})");
            }
            let _ = crate::layout::remove_stale_socket(&plugin.socket);
        }))
        .await;
    }
}

/// A plugin's self-description as logged: its own text, kept short.
fn short(text: &str) -> std::borrow::Cow<'_, str> {
    crate::limits::cap_text(text, 128)
}

/// Most registrations one plugin may describe.
pub const MAX_REGISTRATIONS: usize = 64;
/// Most tool names in all of one plugin's registrations.
pub const MAX_REGISTERED_TOOLS: usize = 1024;

/// Bounds what one `Describe` may cost every later call (participants are worked out per call):
/// past a limit the plugin is rejected, with the reason.
fn check_registration_limits(name: &str, described: &[HookRegistration]) -> Result<(), String> {
    if described.len() > MAX_REGISTRATIONS {
        return Err(format!(
            "plugin '{name}' described {} registrations (limit {MAX_REGISTRATIONS})",
            described.len()
        ));
    }
    let tools: usize = described.iter().map(|r| r.tools.len()).sum();
    if tools > MAX_REGISTERED_TOOLS {
        return Err(format!(
            "plugin '{name}' registered {tools} tool names (limit {MAX_REGISTERED_TOOLS})"
        ));
    }
    if let Some(long) = described
        .iter()
        .flat_map(|r| &r.tools)
        .find(|t| t.is_empty() || t.len() > MAX_TOOL_NAME_BYTES)
    {
        return Err(format!(
            "plugin '{name}' registered a tool name of {} bytes (allowed 1..={MAX_TOOL_NAME_BYTES})",
            long.len()
        ));
    }
    Ok(())
}

fn with_stderr(why: String, tail: &str) -> String {
    if tail.is_empty() {
        why
    } else {
        format!("{why}; last stderr: {tail}")
    }
}

impl Plugin {
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut state)
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        let state = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&state)
    }

    fn set_status(&self, status: Status) {
        self.update(|s| s.status = status);
    }

    /// Its current status.
    pub fn status(&self) -> Status {
        self.read(|s| s.status.clone())
    }

    fn registrations(&self) -> Option<Arc<[HookRegistration]>> {
        self.read(|s| s.registrations.clone())
    }

    /// Applies §3's trust rule and the registration limits to what `Describe` said, narrowed by
    /// the configured `hooks`.
    fn accept(&self, described: &[HookRegistration]) -> Result<(), String> {
        check_registration_limits(&self.name, described)?;
        if !self.config.trusted && described.iter().any(|r| r.stage == Stage::Policy as i32) {
            return Err(format!(
                "plugin '{}' requested the policy stage but is not trusted",
                self.name
            ));
        }
        let mut accepted = Vec::with_capacity(described.len());
        for r in described {
            match Hook::try_from(r.hook) {
                Ok(Hook::Unspecified) | Err(_) => {
                    tracing::warn!(plugin = %self.name, hook = r.hook, "ignoring a registration for an unknown hook");
                }
                Ok(hook)
                    if self
                        .config
                        .hooks
                        .as_ref()
                        .is_some_and(|h| !h.contains(&hook)) => {}
                Ok(_) => accepted.push(r.clone()),
            }
        }
        self.update(|s| s.registrations = Some(accepted.into()));
        Ok(())
    }

    /// The client and process of a ready plugin, or why it cannot take calls.
    fn ready(&self) -> Result<(PluginClient<Channel>, Arc<Process>), Failed> {
        self.read(|s| match (&s.status, &s.client, &s.process) {
            (Status::Ready, Some(client), Some(process)) => Ok((client.clone(), process.clone())),
            (status, _, _) => Err(Failed::unavailable(status)),
        })
    }

    /// The one way to call a ready plugin: `rpc` with `request`, bounded by `deadline`.
    async fn call<Req, Resp, F, Fut>(
        &self,
        request: Req,
        deadline: Duration,
        rpc: F,
    ) -> Result<Resp, Failed>
    where
        Req: Clone + Send + Sync,
        Resp: Send,
        F: Fn(PluginClient<Channel>, tonic::Request<Req>) -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>> + Send,
    {
        let (shared, process) = self.ready()?;
        let pid = process.pid();
        let rpc = &rpc;
        let request = &request;
        plugin::call(process.exit_watch(), deadline, |left, attempt| {
            let shared = shared.clone();
            async move {
                let client = if attempt == 1 {
                    shared
                } else {
                    plugin::client(&self.socket, pid)
                        .await
                        .map_err(|e| tonic::Status::from_error(Box::new(e)))?
                };
                rpc(client, with_timeout(request.clone(), left)).await
            }
        })
        .await
    }
}

impl Answerer for Plugin {
    fn before_tool_call(
        &self,
        request: BeforeToolCallRequest,
        deadline: Duration,
    ) -> Answer<'_, ToolCallDecision> {
        Box::pin(
            self.call(request, deadline, |mut client, request| async move {
                client.before_tool_call(request).await
            }),
        )
    }

    fn before_session_create(
        &self,
        request: BeforeSessionCreateRequest,
        deadline: Duration,
    ) -> Answer<'_, SessionDecision> {
        Box::pin(
            self.call(request, deadline, |mut client, request| async move {
                client.before_session_create(request).await
            }),
        )
    }

    fn session_created(&self, event: SessionCreatedEvent, deadline: Duration) -> Answer<'_, Ack> {
        Box::pin(self.call(event, deadline, |mut client, event| async move {
            client.session_created(event).await
        }))
    }
}

/// How much later than the supervisor's own deadline the `grpc-timeout` header says.
const HEADER_SLACK: Duration = Duration::from_millis(20);

/// Sends `grpc-timeout` so the plugin can stop working when the answer no longer matters. The
/// supervisor enforces the deadline itself; the header is set a little later because tonic's
/// client also honours it, and the supervisor's own timer must be the one that fires (so the
/// failure is reported as a timeout, not as a broken connection).
fn with_timeout<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline + HEADER_SLACK);
    request
}
