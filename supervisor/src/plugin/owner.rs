//! The owner of one configured plugin: the only task that changes its state. For each instance
//! it clears the socket, spawns the process, runs the handshake, applies the trust rule and
//! publishes each phase; while the instance is ready it checks its health; when the instance
//! exits, fails its start or hangs, it restarts it with exponential backoff, and past too many
//! failures in a window it quarantines the plugin. It stops the process when told to.
//! Everything a process needs running (its output readers, its exit waiter) lives in the
//! owner's `JoinSet` and ends with it.
//!
//! Between instances the last failure stays published, so calls block at once with a reason
//! that says what happened; a new instance takes calls only after the full handshake.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use hookvisor_proto::v1::HookRegistration;
use nix::unistd::Pid;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::process::{Adoptee, Connected, Process, StartError};
use super::remote::Remote;
use super::{Phase, Snapshot};
use crate::decide::routing;
use crate::files::config::{Lifecycle, MAX_INSTANCE, PluginConfig, socket_in};
use crate::files::layout;
use crate::plugin::sandbox::{Placement, Sandboxes};
use crate::plugin::spawner::Spawner;

/// What the calls tell the owner (timeouts in a row, and the signal that the plugin is hung),
/// and what an operator asks of it (a restart).
#[derive(Debug, Default)]
pub struct Watchdog {
    timeouts_in_a_row: AtomicU32,
    hung: Notify,
    restart: Notify,
    /// The pid of the instance whose socket a new connection found served by another process
    /// (0: none), and the signal for it.
    unreachable_pid: AtomicI32,
    unreachable: Notify,
}

impl Watchdog {
    /// Records that a new connection to the socket of instance `pid` reached another process
    /// (the peer check failed): that instance can no longer be reached, so the owner replaces
    /// it.
    pub fn socket_taken(&self, pid: Pid) {
        self.unreachable_pid.store(pid.as_raw(), Ordering::Relaxed);
        self.unreachable.notify_one();
    }

    /// Asks the owner to replace the instance now (or, quarantined, to start one again).
    pub fn request_restart(&self) {
        self.restart.notify_one();
    }

    /// Records how a call ended: `timed_out`, or anything else (which resets the count).
    /// `hung_after` timeouts in a row wake the owner.
    pub fn record(&self, timed_out: bool, hung_after: u32) {
        if !timed_out {
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
            return;
        }
        let n = self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= hung_after {
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
            self.hung.notify_one();
        }
    }
}

/// What an owner needs to run the instances of one plugin.
pub(super) struct Owner {
    pub config: PluginConfig,
    pub sandboxes: Sandboxes,
    pub workdir: PathBuf,
    pub spawner: Spawner,
    pub start_timeout: Duration,
    pub lifecycle: Lifecycle,
    pub watchdog: Arc<Watchdog>,
    pub publish: watch::Sender<Snapshot>,
    /// The grace period to stop with, when the supervisor stops the plugin.
    pub stop: oneshot::Receiver<Duration>,
    /// The grace period of a restart an operator asked for.
    pub stop_grace: Duration,
    /// A process an earlier image of this supervisor started and handed over at an upgrade:
    /// the first instance, checked again as at start, instead of a new one.
    pub adopt: Option<Adoptee>,
}

/// How one instance ended.
enum Ended {
    /// The supervisor stopped it.
    Stopped,
    /// An operator asked for a new instance (not a failure).
    Restarted,
    /// It failed its start, was rejected, exited or hung; `ready_for` is how long it was ready.
    Failed {
        phase: Phase,
        permanent: bool,
        ready_for: Duration,
    },
}

impl Owner {
    /// Runs instances of the plugin until the supervisor stops it.
    pub async fn run(mut self) {
        let mut failures: VecDeque<Instant> = VecDeque::new();
        let mut delay = self.first_delay();
        loop {
            let ended = match self.adopt.take() {
                Some(adoptee) => self.adopted(adoptee).await,
                None if self.config.remote.is_some() => self.remote_instance(next_instance()).await,
                None => self.instance(next_instance()).await,
            };
            let (phase, permanent, ready_for) = match ended {
                Ended::Stopped => return,
                Ended::Restarted => {
                    tracing::info!(plugin = %self.config.name, "restarting, as asked");
                    self.publish.send_modify(|s| s.record.restarts += 1);
                    failures.clear();
                    delay = self.first_delay();
                    continue;
                }
                Ended::Failed {
                    phase,
                    permanent,
                    ready_for,
                } => (phase, permanent, ready_for),
            };
            if ready_for >= self.max_delay() {
                // It stayed ready for a while: what came before no longer counts.
                failures.clear();
                delay = self.first_delay();
            }
            let now = Instant::now();
            failures.push_back(now);
            let window = Duration::from_millis(self.lifecycle.quarantine_window_ms.into());
            while failures
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) > window)
            {
                failures.pop_front();
            }
            if failures.len() >= self.lifecycle.quarantine_after as usize {
                let phase = Phase::Quarantined {
                    failures: failures.len(),
                    window,
                    last: Box::new(phase),
                };
                tracing::error!(plugin = %self.config.name,
                    "{phase}; no more restarts until the supervisor restarts or an operator asks");
                self.publish_phase(phase);
                if !self.wait_for_restart().await {
                    return;
                }
                tracing::info!(plugin = %self.config.name, "starting again after quarantine, as asked");
                failures.clear();
                delay = self.first_delay();
                continue;
            }
            let wait = if permanent {
                self.max_delay()
            } else {
                jitter(delay)
            };
            tracing::warn!(plugin = %self.config.name, delay_ms = wait.as_millis() as u64,
                "restarting after: {phase}");
            self.publish_phase(phase);
            self.publish.send_modify(|s| s.record.restarts += 1);
            delay = (delay * 2).min(self.max_delay());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // An operator's restart skips the backoff.
                () = self.watchdog.restart.notified() => {}
                _ = &mut self.stop => {
                    self.publish_phase(Phase::Stopped);
                    return;
                }
            }
        }
    }

    fn first_delay(&self) -> Duration {
        Duration::from_millis(self.lifecycle.restart_delay_ms.into())
    }

    fn max_delay(&self) -> Duration {
        Duration::from_millis(self.lifecycle.restart_delay_max_ms.into())
    }

    /// Publishes `phase`, keeping the registrations that count (§3: the last accepted ones
    /// count while the plugin restarts).
    fn publish_phase(&self, phase: Phase) {
        self.publish.send_modify(|s| {
            if !matches!(phase, Phase::Starting | Phase::Ready | Phase::Stopped) {
                s.record.last_error = Some(phase.to_string());
            }
            s.phase = phase;
            s.ready = None;
        });
    }

    /// Says once per owner what the plugin's sandbox does not enforce (or that it is off), and
    /// publishes what it does for `status` and the metrics.
    fn report_sandbox(&mut self, placement: &Placement) {
        let report = &placement.report;
        let changed = self
            .publish
            .borrow()
            .record
            .sandbox
            .as_deref()
            .is_none_or(|r| r != report);
        if !changed {
            return;
        }
        if !report.enabled {
            tracing::warn!(plugin = %self.config.name,
                "sandbox disabled ([plugin.sandbox] enabled = false): the plugin runs with \
                 hookvisor's own uid and authority");
        } else if !report.missing.is_empty() {
            tracing::warn!(plugin = %self.config.name, enforced = %report.enforced.join(", "),
                "sandbox: not enforced on this machine: {}", report.missing.join("; "));
        } else {
            tracing::info!(plugin = %self.config.name, "sandbox: {}", report.enforced.join(", "));
        }
        let report = Arc::new(report.clone());
        self.publish
            .send_modify(|s| s.record.sandbox = Some(report));
    }

    /// Runs one instance from spawn to its end.
    async fn instance(&mut self, instance: u32) -> Ended {
        let mut tasks = JoinSet::new();
        let failed = |error: StartError, stderr: String| {
            let permanent = error.is_permanent();
            Ended::Failed {
                phase: Phase::Failed { error, stderr },
                permanent,
                ready_for: Duration::ZERO,
            }
        };
        let placement = match self.sandboxes.place(&self.config) {
            Ok(placement) => placement,
            Err(e) => return failed(StartError::Spawn(e.to_string()), String::new()),
        };
        self.report_sandbox(&placement);
        let uid = placement.uid;
        let socket = socket_in(&placement.socket_dir, instance);
        if let Err(e) = layout::remove_plugin_socket(&socket, uid) {
            return failed(StartError::Socket(e.to_string()), String::new());
        }
        let process = match Process::spawn(
            &self.spawner,
            &self.config,
            &socket,
            &self.workdir,
            &placement,
            &mut tasks,
        )
        .await
        {
            Ok(process) => Arc::new(process),
            Err(error) => return failed(error, String::new()),
        };
        self.publish.send_modify(|s| {
            s.record.instance = Some((instance, process.pid().as_raw()));
            s.record.started = Some(Instant::now());
            s.record.heartbeat = None;
        });
        self.run_instance(process, socket, instance, tasks).await
    }

    /// Takes over the process an upgrade handed over (see [`Process::adopt`]) and runs it as an
    /// instance whose handshake is still to come: the peer check and `Describe` run again, as
    /// at start, and the plugin takes calls only once they pass. Its record (instance number,
    /// restarts, last error, uptime) carries on.
    async fn adopted(&mut self, adoptee: Adoptee) -> Ended {
        let mut tasks = JoinSet::new();
        let Adoptee {
            handed,
            output_fds,
            claim,
        } = adoptee;
        let reattached = claim.is_some();
        if let Ok(placement) = self.sandboxes.place(&self.config) {
            self.report_sandbox(&placement);
        }
        let started = Instant::now()
            .checked_sub(Duration::from_millis(handed.uptime_ms))
            .unwrap_or_else(Instant::now);
        self.publish.send_modify(|s| {
            s.record.restarts = handed.restarts;
            s.record.last_error.clone_from(&handed.last_error);
            // Known already: the warnings of a first start are not repeated.
            s.record.version = handed.version.as_deref().map(Arc::from);
            s.record.instance = Some((handed.instance, handed.pid));
            s.record.started = Some(started);
            s.record.heartbeat = None;
        });
        let process = match Process::adopt(&self.spawner, &handed, output_fds, claim, &mut tasks) {
            Ok(process) => Arc::new(process),
            Err(error) => {
                tracing::warn!(plugin = %self.config.name, pid = handed.pid, "{error}");
                return Ended::Failed {
                    phase: Phase::Failed {
                        error,
                        stderr: String::new(),
                    },
                    permanent: false,
                    ready_for: Duration::ZERO,
                };
            }
        };
        tracing::info!(plugin = %self.config.name, pid = handed.pid, instance = handed.instance,
            "{}; checking it again",
            if reattached { "reattached after a crash of the supervisor" }
            else { "taken over from the previous image" });
        self.run_instance(process, handed.socket.clone(), handed.instance, tasks)
            .await
    }

    /// Runs a spawned (or adopted) instance from its handshake to its end.
    async fn run_instance(
        &mut self,
        process: Arc<Process>,
        socket: PathBuf,
        instance: u32,
        tasks: JoinSet<()>,
    ) -> Ended {
        // The output readers and the exit waiter live as long as the instance.
        let _tasks = tasks;
        let uid = process.peer().uid;
        let failed = |error: StartError, stderr: String| {
            let permanent = error.is_permanent();
            Ended::Failed {
                phase: Phase::Failed { error, stderr },
                permanent,
                ready_for: Duration::ZERO,
            }
        };
        let connected = tokio::select! {
            connected = process.handshake(&socket, self.start_timeout) => connected,
            grace = &mut self.stop => {
                return self.stopped(&process, &socket, grace.unwrap_or_default()).await;
            }
        };
        let connected = match connected {
            Ok(connected) => connected,
            Err(error) => {
                process.stop(Duration::ZERO).await;
                let stderr = process.stderr_tail().await;
                remove_socket(&socket, uid);
                return failed(error, stderr);
            }
        };
        let registrations = match routing::accept(&self.config, &connected.info.hooks) {
            Ok(registrations) => registrations,
            Err(why) => {
                process.stop(Duration::ZERO).await;
                remove_socket(&socket, uid);
                return rejected(why);
            }
        };
        tracing::info!(plugin = %self.config.name, pid = process.pid().as_raw(), instance,
            version = %crate::decide::limits::cap_text(&connected.info.version, 128),
            hooks = registrations.len(), "ready");
        self.described(&connected);
        self.publish_ready(registrations, connected.link, Some(process.clone()));
        let ready_at = Instant::now();

        let ended = tokio::select! {
            exit = process.wait_exit() => Ended::Failed {
                phase: Phase::Exited(exit),
                permanent: false,
                ready_for: ready_at.elapsed(),
            },
            why = hang(self.lifecycle, self.watchdog.clone(), connected.channel, &self.publish) => {
                tracing::error!(plugin = %self.config.name, pid = process.pid().as_raw(),
                    "hung ({why}); killing its process group");
                process.stop(Duration::ZERO).await;
                Ended::Failed {
                    phase: Phase::Hung(why),
                    permanent: false,
                    ready_for: ready_at.elapsed(),
                }
            }
            () = socket_taken(&self.watchdog, process.pid()) => {
                let why = "a new connection to its socket reached another process";
                tracing::error!(plugin = %self.config.name, pid = process.pid().as_raw(),
                    "{why}; killing its process group to start it again on a new socket");
                process.stop(Duration::ZERO).await;
                Ended::Failed {
                    phase: Phase::Unreachable(why.to_owned()),
                    permanent: false,
                    ready_for: ready_at.elapsed(),
                }
            }
            grace = &mut self.stop => {
                return self.stopped(&process, &socket, grace.unwrap_or_default()).await;
            }
            () = self.watchdog.restart.notified() => {
                // No call may go to the instance being stopped.
                self.publish_phase(Phase::Starting);
                process.stop(self.stop_grace).await;
                remove_socket(&socket, uid);
                return Ended::Restarted;
            }
        };
        // Children it left behind in its group go too.
        process.stop(Duration::ZERO).await;
        remove_socket(&socket, uid);
        ended
    }

    /// Publishes the version an accepted `Describe` gave, and says once per plugin when it
    /// describes itself by another name.
    fn described(&self, connected: &Connected) {
        let first_start = self.publish.borrow().record.version.is_none();
        if first_start && connected.info.name != self.config.name.as_ref() {
            // Once per plugin: the configured name is what counts (logs, traces, the metadata
            // namespace), but an author who reads their own name nowhere is left guessing.
            tracing::warn!(plugin = %self.config.name,
                "describes itself as {:?}: hookvisor knows it by its configured name '{}' (in logs, \
                 traces, metrics and its session metadata namespace)",
                crate::decide::limits::cap_text(&connected.info.name, 128), self.config.name);
        }
        let version: Arc<str> = Arc::from(crate::decide::limits::cap_text(
            &connected.info.version,
            128,
        ));
        self.publish
            .send_modify(|s| s.record.version = Some(version));
    }

    /// Dials a remote plugin (contract §2.6) and runs it from its handshake to its end. No
    /// process: nothing to spawn, confine, watch for an exit or kill; a hang or an operator's
    /// restart drops the connection, and the next instance dials again (reading the TLS
    /// files again, so a renewed certificate is taken), with the same backoff and quarantine.
    async fn remote_instance(&mut self, instance: u32) -> Ended {
        let failed = |error: StartError| {
            let permanent = error.is_permanent();
            Ended::Failed {
                phase: Phase::Failed {
                    error,
                    stderr: String::new(),
                },
                permanent,
                ready_for: Duration::ZERO,
            }
        };
        let Some(config) = self.config.remote.clone() else {
            return failed(StartError::Spawn("no endpoint configured".to_owned()));
        };
        let remote = match Remote::load(&config) {
            Ok(remote) => Arc::new(remote),
            Err(why) => return failed(StartError::Spawn(why)),
        };
        self.publish.send_modify(|s| {
            s.record.instance = Some((instance, 0));
            s.record.started = Some(Instant::now());
            s.record.heartbeat = None;
        });
        let connected = tokio::select! {
            connected = remote.handshake(self.start_timeout) => connected,
            _ = &mut self.stop => {
                self.publish_phase(Phase::Stopped);
                return Ended::Stopped;
            }
        };
        let connected = match connected {
            Ok(connected) => connected,
            Err(error) => return failed(error),
        };
        let registrations = match routing::accept(&self.config, &connected.info.hooks) {
            Ok(registrations) => registrations,
            Err(why) => return rejected(why),
        };
        tracing::info!(plugin = %self.config.name, endpoint = %remote.endpoint(), instance,
            version = %crate::decide::limits::cap_text(&connected.info.version, 128),
            hooks = registrations.len(), "ready");
        self.described(&connected);
        self.publish_ready(registrations, connected.link, None);
        let ready_at = Instant::now();
        tokio::select! {
            why = hang(self.lifecycle, self.watchdog.clone(), connected.channel, &self.publish) => {
                tracing::error!(plugin = %self.config.name, endpoint = %remote.endpoint(),
                    "hung ({why}); dropping its connections to dial again");
                Ended::Failed {
                    phase: Phase::Hung(why),
                    permanent: false,
                    ready_for: ready_at.elapsed(),
                }
            }
            _ = &mut self.stop => {
                self.publish_phase(Phase::Stopped);
                tracing::info!(plugin = %self.config.name, "stopped (connections closed)");
                Ended::Stopped
            }
            () = self.watchdog.restart.notified() => {
                self.publish_phase(Phase::Starting);
                Ended::Restarted
            }
        }
    }

    fn publish_ready(
        &self,
        registrations: Arc<[HookRegistration]>,
        link: super::Link,
        process: Option<Arc<Process>>,
    ) {
        // A new instance starts with no timeouts counted and no socket taken (a signal about an
        // earlier instance must not end this one, were that instance's pid ever reused).
        self.watchdog.timeouts_in_a_row.store(0, Ordering::Relaxed);
        self.watchdog.unreachable_pid.store(0, Ordering::Relaxed);
        self.publish.send_modify(|s| {
            s.phase = Phase::Ready;
            s.registrations = Some(registrations);
            s.ready = Some((link, process));
        });
    }

    /// A start failure with nothing left to do (quarantined): wait until the supervisor stops.
    /// Quarantined: waits for an operator's restart (true) or the supervisor's stop (false).
    async fn wait_for_restart(&mut self) -> bool {
        tokio::select! {
            () = self.watchdog.restart.notified() => true,
            _ = &mut self.stop => {
                self.publish_phase(Phase::Stopped);
                false
            }
        }
    }

    /// Stops the process (SIGTERM to its group, `grace`, SIGKILL) and publishes `Stopped`.
    async fn stopped(&self, process: &Process, socket: &std::path::Path, grace: Duration) -> Ended {
        self.publish_phase(Phase::Stopped);
        let how = process.stop(grace).await;
        tracing::info!(plugin = %self.config.name, "stopped ({how})");
        remove_socket(socket, process.peer().uid);
        Ended::Stopped
    }
}

/// An instance whose `Describe` the configuration does not allow (trust, limits).
fn rejected(why: String) -> Ended {
    Ended::Failed {
        phase: Phase::Rejected(why),
        permanent: true,
        ready_for: Duration::ZERO,
    }
}

/// Resolves when the ready instance is hung: `hung_after` failed health checks in a row, or
/// `hung_after` calls timed out in a row. Says which.
async fn hang(
    lifecycle: Lifecycle,
    watchdog: Arc<Watchdog>,
    channel: Channel,
    publish: &watch::Sender<Snapshot>,
) -> String {
    let interval = Duration::from_millis(lifecycle.health_interval_ms.into());
    let timeout = Duration::from_millis(lifecycle.health_timeout_ms.into());
    let hung_after = lifecycle.hung_after;
    let health = async {
        let mut client = HealthClient::new(channel);
        let mut failed_in_a_row = 0;
        let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
        loop {
            tick.tick().await;
            let request = HealthCheckRequest {
                service: String::new(),
            };
            let asked = Instant::now();
            let healthy = matches!(
                tokio::time::timeout(timeout, client.check(request)).await,
                Ok(Ok(response)) if response.get_ref().status() == ServingStatus::Serving
            );
            if healthy {
                let now = Instant::now();
                publish.send_modify(|s| s.record.heartbeat = Some((now, now - asked)));
            }
            failed_in_a_row = if healthy { 0 } else { failed_in_a_row + 1 };
            if failed_in_a_row >= hung_after {
                return format!("{failed_in_a_row} health checks failed in a row");
            }
        }
    };
    tokio::select! {
        why = health => why,
        () = watchdog.hung.notified() => format!("{hung_after} calls timed out in a row"),
    }
}

/// Resolves when a call found the socket of instance `pid` served by another process (a
/// signal left over from an earlier instance is ignored).
async fn socket_taken(watchdog: &Watchdog, pid: Pid) {
    loop {
        watchdog.unreachable.notified().await;
        if watchdog.unreachable_pid.load(Ordering::Relaxed) == pid.as_raw() {
            return;
        }
    }
}

/// Instance numbers, counted across every plugin and generation of this supervisor, so a new
/// instance never takes an old one's socket name (a reload starts one beside the other).
static NEXT_INSTANCE: AtomicU32 = AtomicU32::new(1);

fn next_instance() -> u32 {
    let n = NEXT_INSTANCE
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(if n >= MAX_INSTANCE { 1 } else { n + 1 })
        })
        .unwrap_or(1);
    n.clamp(1, MAX_INSTANCE)
}

fn remove_socket(socket: &std::path::Path, uid: Option<u32>) {
    // Only a socket hookvisor or the plugin owns is removed; anything else stays where it is.
    let _ = layout::remove_plugin_socket(socket, uid);
}

/// `delay` give or take 10 %, so plugins that failed together do not restart in lockstep.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let permille = 900 + u64::from(nanos % 201);
    let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(ms.saturating_mul(permille) / 1000)
}

/// Makes the next instance numbers start after `floor` (the highest an earlier image of this
/// supervisor used), so no new instance takes the socket name of one handed over.
pub fn continue_instances_after(floor: u32) {
    let next = if floor >= MAX_INSTANCE { 1 } else { floor + 1 };
    NEXT_INSTANCE.fetch_max(next, Ordering::Relaxed);
}

/// The next instance number this supervisor will give (for the hand-over at an upgrade).
pub fn peek_next_instance() -> u32 {
    NEXT_INSTANCE.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signal about an earlier instance never ends a later one.
    #[tokio::test(start_paused = true)]
    async fn socket_taken_ignores_other_instances() {
        let watchdog = Watchdog::default();
        watchdog.socket_taken(Pid::from_raw(100));
        let later = tokio::time::timeout(
            Duration::from_secs(1),
            socket_taken(&watchdog, Pid::from_raw(200)),
        );
        assert!(later.await.is_err(), "resolved for another instance");
        watchdog.socket_taken(Pid::from_raw(200));
        let this = tokio::time::timeout(
            Duration::from_secs(1),
            socket_taken(&watchdog, Pid::from_raw(200)),
        );
        assert!(this.await.is_ok(), "did not resolve for its own instance");
    }
}
