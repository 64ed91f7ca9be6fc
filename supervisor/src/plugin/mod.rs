//! One configured plugin: its owner task, the snapshot calls read, and the call path.
//!
//! Each plugin instance has exactly one owner, a task (`owner`) that spawns its process, runs
//! the handshake, watches it and stops it, and that alone moves it through its phases
//! (starting → ready → exited, or failed / rejected; stopped at the end). The owner publishes a
//! [`Snapshot`] on a `watch` channel; calls read the latest one without waiting for anyone. The
//! output readers and the exit waiter of the process belong to the owner, so no task outlives
//! it, and the owner tasks belong to the [`PluginSet`].
//!
//! - [`process`]: one OS process: launch, handshake, typed exits and start failures, calls
//!   bounded by deadlines, stop.
//! - `set`: the plugins of one configuration, started together, asked for lineups, stopped.
//! - [`link`]: the connection calls go on (gRPC unary calls written on `h2`).
//! - [`peer`]: connecting to a plugin's socket, and the check of who serves it (below both
//!   `link` and `process`).
//! - `output`: the process's stdout and stderr in the log (JSON levels, rate limit).
//! - [`spawner`]: the one thread that forks plugins, each behind its [`spawner::reaper`] (the
//!   binary re-executed as a child subreaper, so no plugin process outlives the supervisor), the
//!   sweep for orphans, and the only `unsafe` code.
//! - [`sandbox`]: what each plugin may do (its own uid, Landlock, seccomp, limits), decided from
//!   its configuration and this machine, and its state and socket directories.
//! - [`generation`]: one configuration's plugins and hook settings as one value, swapped whole.

pub mod generation;
pub mod link;
mod output;
mod owner;
pub mod peer;
pub mod process;
pub mod reattach;
pub mod remote;
pub mod sandbox;
mod set;
#[allow(unsafe_code)]
pub mod spawner;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use hookvisor_proto::v1::{
    Ack, BeforeSessionCreateRequest, HookRegistration, SessionCreatedEvent, SessionDecision,
    ToolCallDecision,
};
use tokio::sync::watch;

use crate::decide::merge::Failed;
use crate::decide::stages::{Answer, Answerer, ToolAsk};

pub use link::Link;
pub use process::{Exit, MAX_MESSAGE_BYTES, Process, StartError};
pub use set::PluginSet;

/// Where a plugin is in its life.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Spawned, handshake not finished.
    Starting,
    /// Takes calls.
    Ready,
    /// Described itself with registrations the operator's configuration does not allow.
    Rejected(String),
    /// Could not start.
    Failed {
        /// Why.
        error: StartError,
        /// Its last stderr lines ("" when it printed nothing).
        stderr: String,
    },
    /// Exited after it was ready; it is restarted after a backoff.
    Exited(Exit),
    /// Was found hung (health checks or calls timing out in a row) and killed; it is restarted.
    Hung(String),
    /// Its socket was found served by another process (a call's new connection failed the peer
    /// check), so it was killed; it is restarted on a new socket.
    Unreachable(String),
    /// Failed too often within the window: no more restarts until the supervisor restarts.
    Quarantined {
        /// Failures counted in the window.
        failures: usize,
        /// The window.
        window: Duration,
        /// The last failure.
        last: Box<Phase>,
    },
    /// Stopped by the supervisor.
    Stopped,
}

impl Phase {
    /// The phase in a word or two (`ready`, `failed to start`, `quarantined` …), without the why.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Rejected(_) => "rejected",
            Phase::Failed { .. } => "failed to start",
            Phase::Exited(_) => "exited",
            Phase::Hung(_) => "hung",
            Phase::Unreachable(_) => "unreachable",
            Phase::Quarantined { .. } => "quarantined",
            Phase::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Starting => f.write_str("starting"),
            Phase::Ready => f.write_str("ready"),
            Phase::Rejected(why) => write!(f, "rejected: {why}"),
            Phase::Failed { error, stderr } if stderr.is_empty() => {
                write!(f, "failed to start: {error}")
            }
            Phase::Failed { error, stderr } => {
                write!(f, "failed to start: {error}; last stderr: {stderr}")
            }
            Phase::Exited(how) => write!(f, "exited ({how})"),
            Phase::Hung(why) => write!(f, "hung ({why})"),
            Phase::Unreachable(why) => write!(f, "unreachable ({why})"),
            Phase::Quarantined {
                failures,
                window,
                last,
            } => write!(
                f,
                "quarantined after {failures} failures in {} s; last: {last}",
                window.as_secs()
            ),
            Phase::Stopped => f.write_str("stopped"),
        }
    }
}

/// What the supervisor keeps about a plugin besides its phase: for operators (the status dump
/// on SIGUSR1, later the admin interface), never for decisions.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The current (or last) instance number, and its process id.
    pub instance: Option<(u32, i32)>,
    /// When the current (or last) instance was started.
    pub started: Option<Instant>,
    /// Restarts since the supervisor started it (or a reload replaced it).
    pub restarts: u32,
    /// The last failure (start failure, rejection, exit, hang), as logged.
    pub last_error: Option<String>,
    /// When the ready instance last answered a health check, and how long that took.
    pub heartbeat: Option<(Instant, Duration)>,
    /// The version its last accepted `Describe` gave (cut to 128 bytes).
    pub version: Option<Arc<str>>,
    /// What its sandbox enforces (set when an instance is placed).
    pub sandbox: Option<Arc<crate::plugin::sandbox::Report>>,
}

/// What the owner publishes and every call reads: the phase, the registrations that count, and
/// the way to call a ready instance.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Where the plugin is in its life.
    pub phase: Phase,
    /// Its record (instance, restarts, last error, heartbeat).
    pub record: Record,
    /// The last accepted registrations; `None` until the first accepted `Describe`, during
    /// which the plugin counts as registered for every blocking hook and tool.
    pub registrations: Option<Arc<[HookRegistration]>>,
    /// The call connection and process of the ready instance (no process: a remote plugin).
    ready: Option<(Link, Option<Arc<Process>>)>,
}

impl Snapshot {
    fn starting() -> Snapshot {
        Snapshot {
            phase: Phase::Starting,
            record: Record::default(),
            registrations: None,
            ready: None,
        }
    }

    /// The process id of the current instance, while it is ready.
    pub fn pid(&self) -> Option<i32> {
        self.ready
            .as_ref()
            .and_then(|(_, p)| p.as_ref())
            .map(|p| p.pid().as_raw())
    }
}

/// One configured plugin, as calls see it.
#[derive(Debug)]
pub struct Plugin {
    /// Its configured name, shared by every trace entry. (Its configuration is the set's: a
    /// reload that keeps the process changes per-call settings there: `PluginSet::configured`.)
    pub name: Arc<str>,
    snapshot: watch::Receiver<Snapshot>,
    watchdog: Arc<owner::Watchdog>,
    hung_after: u32,
}

impl Plugin {
    /// The latest snapshot its owner published.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// Its current phase.
    pub fn phase(&self) -> Phase {
        self.snapshot.borrow().phase.clone()
    }

    /// Asks its owner for a new instance now (stopping the current one with the grace period);
    /// a quarantined plugin is started again.
    pub fn restart(&self) {
        self.watchdog.request_restart();
    }

    /// A receiver of its snapshots, to wait for a phase.
    pub fn watch(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    /// The registrations that count now (`None`: every blocking hook and tool).
    pub fn registrations(&self) -> Option<Arc<[HookRegistration]>> {
        self.snapshot.borrow().registrations.clone()
    }

    /// The call connection and process of a ready plugin, or why it cannot take calls.
    fn ready(&self) -> Result<(Link, Option<Arc<Process>>), Failed> {
        let snapshot = self.snapshot.borrow();
        match (&snapshot.phase, &snapshot.ready) {
            (Phase::Ready, Some((client, process))) => Ok((client.clone(), process.clone())),
            (phase, _) => Err(Failed::unavailable(phase)),
        }
    }

    /// The one way to call a ready plugin: `path` (a [`link`] constant) with `request`,
    /// bounded by `deadline`.
    async fn call<Req, Resp>(
        &self,
        path: &'static str,
        request: Req,
        deadline: Duration,
    ) -> Result<Resp, Failed>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        // While tracing is on, this call's span: its id goes to the plugin as `traceparent`,
        // and its end is recorded when the call ends or is dropped.
        let span = crate::decide::trace_context::begin_call(&self.name);
        let (shared, process) = self.ready()?;
        // The stages bound every call by its deadline and drop it when that passes (the only
        // timer of the call: `Timer::Caller`). A call dropped at or past its deadline timed
        // out, and counts toward `hung_after`.
        let mut unfinished = Unfinished {
            watchdog: &self.watchdog,
            hung_after: self.hung_after,
            ends: Instant::now() + deadline,
            armed: true,
        };
        let id = crate::decide::request_id::current();
        let tags = id.as_ref().map(|id| link::Tags {
            request_id: id.as_str(),
            traceparent: span.as_ref().map(|span| span.traceparent()),
        });
        let (request, shared) = (&request, &shared);
        let result = process::call(
            process.as_ref().map(|p| p.exit_watch()),
            deadline,
            process::Timer::Caller,
            // `grpc-timeout` says a little more than the supervisor's own deadline, so that the
            // supervisor's timer is the one that fires (HEADER_SLACK).
            |left, attempt| shared.attempt(attempt, path, request, left + HEADER_SLACK, tags),
        )
        .await;
        unfinished.armed = false;
        let timed_out =
            matches!(&result, Err(f) if f.kind == hookvisor_proto::v1::Failure::Timeout);
        self.watchdog.record(timed_out, self.hung_after);
        // The plugin was ready (above), so the one way a call now ends unavailable is a new
        // connection that failed the peer check (`process::classify`).
        if let Some(process) = &process
            && matches!(&result, Err(f) if f.kind == hookvisor_proto::v1::Failure::Unavailable)
        {
            self.watchdog.socket_taken(process.pid());
        }
        result
    }
}

/// How close to its deadline a dropped call counts as timed out: the stages' timer starts
/// microseconds before the call does, far less than this.
const DEADLINE_SLACK: Duration = Duration::from_millis(5);

/// Counts a call dropped unfinished at or past its deadline as timed out (see [`Plugin::call`]);
/// one dropped earlier (its verdict was decided without it) counts for nothing.
struct Unfinished<'a> {
    watchdog: &'a owner::Watchdog,
    hung_after: u32,
    ends: Instant,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        // The outer timer started a little before `ends` was taken: allow for that.
        if self.armed && Instant::now() + DEADLINE_SLACK >= self.ends {
            self.watchdog.record(true, self.hung_after);
        }
    }
}

impl Answerer for Plugin {
    fn before_tool_call(
        &self,
        request: ToolAsk,
        deadline: Duration,
    ) -> Answer<'_, ToolCallDecision> {
        Box::pin(self.call(link::BEFORE_TOOL_CALL, request, deadline))
    }

    fn before_session_create(
        &self,
        request: BeforeSessionCreateRequest,
        deadline: Duration,
    ) -> Answer<'_, SessionDecision> {
        Box::pin(self.call(link::BEFORE_SESSION_CREATE, request, deadline))
    }

    fn session_created(&self, event: SessionCreatedEvent, deadline: Duration) -> Answer<'_, Ack> {
        Box::pin(self.call(link::SESSION_CREATED, event, deadline))
    }
}

/// How much later than the supervisor's own deadline the `grpc-timeout` header says: the
/// plugin can stop working when the answer no longer matters, and the supervisor's own timer
/// still fires first (so the failure is reported as a timeout). The host call's request id
/// goes along as `x-hookvisor-request-id` (contract §6), so the plugin's logs, the
/// supervisor's and the audit line correlate.
const HEADER_SLACK: Duration = Duration::from_millis(20);
