//! One plugin process: launch (contract §2), the handshake (connect, `SO_PEERCRED`, `Describe`),
//! calls bounded by deadlines the supervisor enforces itself, and stop; with typed exits
//! ([`Exit`]) and start failures ([`StartError`]).

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use hookvisor_proto::v1::plugin_client::PluginClient;
use hookvisor_proto::v1::{DescribeRequest, PluginInfo};
use hookvisor_proto::{MAGIC_COOKIE, PROTOCOL_VERSION, env};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::Channel;

use super::link::{Link, Malformed};
use super::output::{Output, Stream};
use crate::decide::limits;
use crate::decide::merge::Failed;
use crate::files::config::PluginConfig;
use crate::plugin::reattach;
use crate::plugin::sandbox::Placement;
use crate::plugin::spawner::confine;
use crate::plugin::spawner::{self, Spawned, Spawner};

/// gRPC messages from plugins larger than this are refused (§8).
pub use super::peer::{MAX_MESSAGE_BYTES, Peer, channel};
use super::peer::{PeerMismatch, connect_checked};
use super::remote::Unreachable;

/// How a process ended: its exit code, or the signal that killed it. Displays like the
/// standard library's `ExitStatus` (`exit status: 7`, `signal: 9 (SIGKILL)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
    /// Its status could not be read.
    Unknown,
}

impl From<std::process::ExitStatus> for Exit {
    fn from(status: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal {
                signal,
                core_dumped: status.core_dumped(),
            },
            (None, None) => Exit::Unknown,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(code) => write!(f, "exit status: {code}"),
            Exit::Signal {
                signal,
                core_dumped,
            } => {
                write!(f, "signal: {signal}")?;
                if let Ok(name) = Signal::try_from(signal) {
                    write!(f, " ({})", name.as_str())?;
                }
                if core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
            Exit::Unknown => f.write_str("unknown status"),
        }
    }
}

/// Why a plugin did not become ready. [`StartError::is_permanent`] tells the failures that a
/// restart would only repeat from those that may pass next time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// The command could not be started at all.
    Spawn(String),
    /// Its stale socket could not be cleared (not a socket hookvisor owns).
    Socket(String),
    /// It exited before it was ready.
    Exited(Exit),
    /// It did not serve on its socket in time.
    NotServing {
        /// The start timeout.
        timeout: Duration,
        /// The socket it was told to serve on.
        socket: PathBuf,
    },
    /// The socket is served by a process outside the plugin's session.
    PeerMismatch(String),
    /// Connecting a client failed after the socket accepted.
    Connect(String),
    /// `Describe` did not answer in time.
    DescribeTimeout(Duration),
    /// `Describe` answered with an error.
    Describe(String),
    /// `Describe` answered another protocol version.
    Protocol(u32),
    /// It described registrations the configuration does not allow (trust, limits).
    Rejected(String),
}

impl StartError {
    /// Whether starting again cannot help: the same binary would fail the same way.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            StartError::Spawn(_)
                | StartError::Socket(_)
                | StartError::PeerMismatch(_)
                | StartError::Protocol(_)
                | StartError::Rejected(_)
        )
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Spawn(why)
            | StartError::Socket(why)
            | StartError::PeerMismatch(why)
            | StartError::Rejected(why) => f.write_str(why),
            StartError::Exited(exit) => write!(f, "exited before it was ready ({exit})"),
            StartError::NotServing { timeout, socket } => write!(
                f,
                "timed out after {} ms waiting for it to serve on {}",
                timeout.as_millis(),
                socket.display()
            ),
            StartError::Connect(why) => f.write_str(why),
            StartError::DescribeTimeout(timeout) => {
                write!(f, "Describe timed out after {} ms", timeout.as_millis())
            }
            StartError::Describe(why) => f.write_str(why),
            StartError::Protocol(version) => write!(
                f,
                "Describe answered protocol_version {version} (expected {PROTOCOL_VERSION})"
            ),
        }
    }
}

/// A running (or exited) plugin process. The tasks that read its output and wait for its exit
/// belong to whoever spawned it (the `JoinSet` given to [`Process::spawn`]), so none outlives
/// its owner.
#[derive(Debug)]
pub struct Process {
    name: Arc<str>,
    /// The plugin (leader of its own session and process group).
    pid: Pid,
    /// Its reaper (the supervisor's child, `spawner::reaper`).
    reaper: Pid,
    /// Its own uid, when the sandbox gave it one.
    uid: Option<u32>,
    socket: PathBuf,
    exit: watch::Receiver<Option<Exit>>,
    output: Output,
    stderr_done: watch::Receiver<bool>,
    /// Copies of the read ends of its stdout and stderr pipes (close-on-exec), handed to the
    /// next image at an upgrade so the plugin's output is still read.
    output_fds: [Option<OwnedFd>; 2],
    /// The start times of the plugin and its reaper (`/proc/PID/stat`), its identity at an
    /// upgrade.
    starts: (u64, u64),
}

/// A plugin process handed over at an upgrade, with the inherited read ends of its output; or
/// one whose reaper a new supervisor claimed after a crash ([`reattach`]).
#[derive(Debug)]
pub struct Adoptee {
    /// What the earlier image said of it.
    pub handed: Handed,
    /// Its stdout and stderr pipes' read ends.
    pub output_fds: [Option<OwnedFd>; 2],
    /// The claimed reaper's report channel, when it was reattached (its reaper is not this
    /// process's child).
    pub claim: Option<reattach::Claim>,
}

/// What an upgrade hands the next image about one ready plugin process (contract §6): enough to
/// find it again (pids and start times: never a reused pid), reach it (its socket, checked
/// again), keep reading its output, and keep its record.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Handed {
    /// The configured name.
    pub name: String,
    /// [`crate::plugin::PluginSet`]'s fingerprint of its process-defining settings.
    pub fingerprint: String,
    /// Its instance number (its socket's name).
    pub instance: u32,
    /// The plugin and its start time.
    pub pid: i32,
    /// The plugin's start time (clock ticks since boot).
    pub pid_start: u64,
    /// Its reaper (the supervisor's child) and its start time.
    pub reaper: i32,
    /// The reaper's start time.
    pub reaper_start: u64,
    /// Its own uid, when the sandbox gave it one.
    pub uid: Option<u32>,
    /// The socket it serves on.
    pub socket: PathBuf,
    /// The inherited read ends of its stdout and stderr pipes (descriptor numbers).
    pub output_fds: [Option<i32>; 2],
    /// Its record.
    pub restarts: u32,
    /// Its last failure, as logged.
    pub last_error: Option<String>,
    /// How long the instance has been up, in milliseconds.
    pub uptime_ms: u64,
    /// The version its last accepted `Describe` gave.
    #[serde(default)]
    pub version: Option<String>,
}

/// A plugin that passed the handshake.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The connection calls go on; every (re)connect checks the peer again.
    pub link: Link,
    /// The handshake's connection, for the health checks.
    pub channel: Channel,
    /// What `Describe` said.
    pub info: PluginInfo,
}

/// Sets up a plugin's command as §2 says: its arguments, a cleared environment plus its `env`,
/// its `inherit_env` and the contract's variables (cookie and state directory included, `HOME`
/// and `TMPDIR` naming the state directory too), stdin from /dev/null, stdout and stderr piped,
/// the working directory; and, for its reaper, the confinement to apply.
pub fn configure(
    command: &mut Command,
    config: &PluginConfig,
    socket: &Path,
    workdir: &Path,
    placement: &Placement,
) {
    let confinement = serde_json::to_string(&placement.confinement).unwrap_or_default();
    command
        .args(&config.args)
        .env_clear()
        // Before `inherit_env` and `env`, which may name others.
        .env("HOME", &placement.state_dir)
        .env("TMPDIR", &placement.state_dir)
        .envs(
            config
                .inherit_env
                .iter()
                .filter_map(|k| Some((k, std::env::var_os(k)?))),
        )
        .envs(&config.env)
        .env(env::PLUGIN_SOCKET, socket)
        .env(env::PLUGIN_NAME, &config.name)
        .env(env::PROTOCOL_VERSION, PROTOCOL_VERSION.to_string())
        .env(env::MAGIC_COOKIE, MAGIC_COOKIE)
        .env(env::PLUGIN_STATE_DIR, &placement.state_dir)
        .env(confine::ENV, confinement)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir(workdir);
}

impl Process {
    /// Starts the plugin as §2 says: cleared environment plus the contract's variables, its own
    /// session and process group (set up by the spawner), stdin from /dev/null, stdout and stderr
    /// logged line by line. The output readers and the exit waiter run in `tasks`.
    pub async fn spawn(
        spawner: &Spawner,
        config: &PluginConfig,
        socket: &Path,
        workdir: &Path,
        placement: &Placement,
        tasks: &mut JoinSet<()>,
    ) -> Result<Process, StartError> {
        let keep = spawner.kept().map(|(dir, grace_ms)| reattach::Keep {
            dir: dir.to_path_buf(),
            grace_ms,
            name: config.name.clone(),
            fingerprint: super::set::fingerprint(config),
            instance: socket
                .file_stem()
                .and_then(|s| s.to_str()?.parse().ok())
                .unwrap_or(0),
            socket: socket.to_path_buf(),
            uid: placement.uid,
        });
        let configure = |command: &mut Command| {
            configure(command, config, socket, workdir, placement);
            // Set here alone (never from the plugin's `env`): it changes what the reaper does.
            match &keep {
                Some(keep) => command.env(reattach::ENV, reattach::env_value(keep)),
                None => command.env_remove(reattach::ENV),
            };
        };
        let Spawned {
            reaper: mut child,
            plugin: pid,
        } = spawner
            .spawn(&config.command, configure)
            .await
            .map_err(|e| {
                StartError::Spawn(format!("cannot start {}: {e}", config.command.display()))
            })?;
        let name: Arc<str> = Arc::from(config.name.as_str());
        let reaper = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw)
            .ok_or(StartError::Exited(Exit::Unknown))?;

        let output = Output::new(name.clone());
        let (stderr_done_tx, stderr_done) = watch::channel(false);
        let output_fds = [
            child
                .stdout
                .as_ref()
                .and_then(|o| o.as_fd().try_clone_to_owned().ok()),
            child
                .stderr
                .as_ref()
                .and_then(|o| o.as_fd().try_clone_to_owned().ok()),
        ];
        let starts = (
            spawner::identity(pid).map_or(0, |i| i.start),
            spawner::identity(reaper).map_or(0, |i| i.start),
        );
        if let Some(out) = child.stdout.take() {
            let output = output.clone();
            tasks.spawn(async move { output.forward(out, Stream::Stdout).await });
        }
        if let Some(err) = child.stderr.take() {
            let output = output.clone();
            tasks.spawn(async move {
                output.forward(err, Stream::Stderr).await;
                let _ = stderr_done_tx.send(true);
            });
        }
        let (exit_tx, exit) = watch::channel(None);
        let spawner = spawner.clone();
        tasks.spawn(async move {
            // The reaper exits the way the plugin did, once it has cleared the plugin's subtree.
            let status = match child.wait().await {
                Ok(status) => Exit::from(status),
                Err(_) => Exit::Unknown,
            };
            spawner.forget(reaper);
            let _ = exit_tx.send(Some(status));
        });
        tracing::debug!(plugin = %name, pid = pid.as_raw(), "started");
        Ok(Process {
            name,
            pid,
            reaper,
            uid: placement.uid,
            socket: socket.to_path_buf(),
            exit,
            output,
            stderr_done,
            output_fds,
            starts,
        })
    }

    /// Takes over a plugin process an earlier image of this supervisor started, after an
    /// upgrade's `execve` (`handed`, with the inherited read ends of its output pipes): checks
    /// that its reaper is this process's child and its plugin the reaper's child and a session
    /// leader, each with the start time recorded (never a reused pid), then reads its output and
    /// waits for its reaper's exit again. The plugin is not signalled; the caller runs the
    /// handshake again before it takes calls.
    ///
    /// With a `claim` (a reaper claimed after a crash, [`reattach`]), the reaper is not this
    /// process's child: [`reattach::claim_all`] checked it and its plugin, and the plugin's exit
    /// comes on the claim connection.
    pub fn adopt(
        spawner: &Spawner,
        handed: &Handed,
        output_fds: [Option<OwnedFd>; 2],
        claim: Option<reattach::Claim>,
        tasks: &mut JoinSet<()>,
    ) -> Result<Process, StartError> {
        let (pid, reaper) = (Pid::from_raw(handed.pid), Pid::from_raw(handed.reaper));
        let lost = |what: String| StartError::Spawn(format!("not taken over: {what}"));
        let waited = match claim {
            Some(claim) => {
                if let Some(exit) = claim.exited {
                    let _ = claim.exit();
                    return Err(StartError::Exited(exit));
                }
                let exit = claim
                    .exit()
                    .map_err(|e| lost(format!("cannot wait for its reaper's report: {e}")))?;
                Box::pin(async move { exit.await.unwrap_or(Exit::Unknown) })
                    as std::pin::Pin<Box<dyn Future<Output = Exit> + Send>>
            }
            None => {
                match spawner::identity(reaper) {
                    Some(id)
                        if id.ppid == Pid::this().as_raw() && id.start == handed.reaper_start => {}
                    _ => {
                        return Err(lost(format!(
                            "its reaper (pid {reaper}) is no longer this supervisor's child"
                        )));
                    }
                }
                // From here the reaper is ours: whatever happens, it is waited for.
                let waited = spawner
                    .wait_adopted(reaper)
                    .map_err(|e| lost(format!("cannot wait for its reaper: {e}")))?;
                Box::pin(async move {
                    match waited.await {
                        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => Exit::Code(code),
                        Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, core_dumped)) => {
                            Exit::Signal {
                                signal: signal as i32,
                                core_dumped,
                            }
                        }
                        _ => Exit::Unknown,
                    }
                })
            }
        };
        let plugin_ok = spawner::identity(pid).is_some_and(|id| {
            id.ppid == reaper.as_raw() && id.sid == pid.as_raw() && id.start == handed.pid_start
        });
        let name: Arc<str> = Arc::from(handed.name.as_str());
        let output = Output::new(name.clone());
        let (stderr_done_tx, stderr_done) = watch::channel(false);
        let [out, err] = output_fds;
        let copies = [
            out.as_ref().and_then(|f| f.try_clone().ok()),
            err.as_ref().and_then(|f| f.try_clone().ok()),
        ];
        if let Some(reader) = out.and_then(|fd| pipe_reader(fd).ok()) {
            let output = output.clone();
            tasks.spawn(async move { output.forward(reader, Stream::Stdout).await });
        }
        match err.and_then(|fd| pipe_reader(fd).ok()) {
            Some(reader) => {
                let output = output.clone();
                tasks.spawn(async move {
                    output.forward(reader, Stream::Stderr).await;
                    let _ = stderr_done_tx.send(true);
                });
            }
            None => {
                let _ = stderr_done_tx.send(true);
            }
        }
        let (exit_tx, exit) = watch::channel(None);
        tasks.spawn(async move {
            let _ = exit_tx.send(Some(waited.await));
        });
        let process = Process {
            name,
            pid,
            reaper,
            uid: handed.uid,
            socket: handed.socket.clone(),
            exit,
            output,
            stderr_done,
            output_fds: copies,
            starts: (handed.pid_start, handed.reaper_start),
        };
        if !plugin_ok {
            // Its reaper is ours and the plugin is not what was handed over: end the subtree.
            let _ = nix::sys::signal::kill(reaper, Signal::SIGKILL);
            return Err(lost(format!(
                "pid {pid} is no longer the plugin its reaper started"
            )));
        }
        tracing::debug!(plugin = %process.name, pid = pid.as_raw(), "taken over");
        Ok(process)
    }

    /// What an upgrade hands over of this process: its identity and a fresh copy of each of its
    /// output descriptors (close-on-exec until the hand-over clears it).
    pub fn handed(&self) -> (Handed, [Option<OwnedFd>; 2]) {
        let fds = [
            self.output_fds[0].as_ref().and_then(|f| f.try_clone().ok()),
            self.output_fds[1].as_ref().and_then(|f| f.try_clone().ok()),
        ];
        let handed = Handed {
            name: self.name.to_string(),
            fingerprint: String::new(),
            instance: 0,
            pid: self.pid.as_raw(),
            pid_start: self.starts.0,
            reaper: self.reaper.as_raw(),
            reaper_start: self.starts.1,
            uid: self.uid,
            socket: self.socket.clone(),
            output_fds: [None, None],
            restarts: 0,
            last_error: None,
            uptime_ms: 0,
            version: None,
        };
        (handed, fds)
    }

    /// The process id (also its process group and session id).
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Who must listen on its socket.
    pub fn peer(&self) -> Peer {
        Peer {
            pid: self.pid,
            uid: self.uid,
        }
    }

    /// The socket it was told to serve on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// How the process ended, once it has.
    pub fn exited(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// A receiver that changes when the process exits.
    pub fn exit_watch(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.clone()
    }

    /// Resolves when the process has exited.
    pub async fn wait_exit(&self) -> Exit {
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(status) => status.unwrap_or(Exit::Unknown),
            Err(_) => Exit::Unknown,
        }
    }

    /// The last stderr lines, for start-failure messages ("" when it printed nothing). Waits a
    /// moment for a process that just exited to have its output read to the end.
    pub async fn stderr_tail(&self) -> String {
        let mut done = self.stderr_done.clone();
        if self.exited().is_some() {
            let _ = tokio::time::timeout(Duration::from_millis(200), done.wait_for(|d| *d)).await;
        }
        self.output.stderr_tail()
    }

    /// The handshake of §2.4: the socket accepts a connection from the child or a process in its
    /// session, and `Describe` answers protocol 1, all within `timeout`.
    pub async fn handshake(
        &self,
        socket: &Path,
        timeout: Duration,
    ) -> Result<Connected, StartError> {
        let deadline = Instant::now() + timeout;
        let mut exit = self.exit.clone();
        loop {
            if let Some(status) = self.exited() {
                return Err(StartError::Exited(status));
            }
            match connect_checked(socket, self.peer()).await {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Err(StartError::PeerMismatch(e.to_string()));
                }
                Err(_) if Instant::now() >= deadline => {
                    return Err(StartError::NotServing {
                        timeout,
                        socket: socket.to_path_buf(),
                    });
                }
                Err(_) => {
                    let pause = Instant::now() + Duration::from_millis(10);
                    tokio::select! {
                        _ = tokio::time::sleep_until(pause.min(deadline)) => {}
                        _ = exit.changed() => {}
                    }
                }
            }
        }

        let channel = self
            .connect_by(deadline, timeout, socket, channel(socket, self.peer()))
            .await?;
        let mut client = plugin_client(channel.clone());
        let left = deadline.saturating_duration_since(Instant::now());
        let request = DescribeRequest {
            protocol_version: PROTOCOL_VERSION,
        };
        let info = match self.bounded(left, client.describe(request)).await {
            Some(Ok(info)) => info.into_inner(),
            Some(Err(status)) => {
                return Err(StartError::Describe(format!(
                    "Describe failed with gRPC status {:?}: {}",
                    status.code(),
                    limits::cap_text(status.message(), 512)
                )));
            }
            None => return Err(self.why_no_answer(StartError::DescribeTimeout(timeout))),
        };
        if info.protocol_version != PROTOCOL_VERSION {
            return Err(StartError::Protocol(info.protocol_version));
        }
        // The calls go on a connection of their own (`link`); the handshake's serves the
        // health checks.
        let link = self
            .connect_by(
                deadline,
                timeout,
                socket,
                Link::connect(socket, self.peer()),
            )
            .await?;
        Ok(Connected {
            link,
            channel,
            info,
        })
    }

    /// Makes a connection to `socket` with `connect` by `deadline` (the handshake's, which
    /// `timeout` set), or says why not.
    async fn connect_by<T, E: fmt::Display>(
        &self,
        deadline: Instant,
        timeout: Duration,
        socket: &Path,
        connect: impl Future<Output = Result<T, E>>,
    ) -> Result<T, StartError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.bounded(left, connect).await {
            Some(Ok(connection)) => Ok(connection),
            Some(Err(e)) => Err(StartError::Connect(format!(
                "cannot connect to {}: {e}",
                socket.display()
            ))),
            None => Err(self.why_no_answer(StartError::DescribeTimeout(timeout))),
        }
    }

    /// Runs `work` until `limit` passes or the process exits (`None` in both cases).
    async fn bounded<T>(&self, limit: Duration, work: impl Future<Output = T>) -> Option<T> {
        let mut exit = self.exit.clone();
        tokio::select! {
            out = tokio::time::timeout(limit, work) => out.ok(),
            _ = exit.wait_for(Option::is_some) => None,
        }
    }

    fn why_no_answer(&self, timed_out: StartError) -> StartError {
        match self.exited() {
            Some(status) => StartError::Exited(status),
            None => timed_out,
        }
    }

    /// Stops the plugin: SIGTERM to its process group, `grace`, then SIGKILL (§2.5). Returns
    /// how it ended. Its reaper then kills whatever else of its subtree is left (a launcher's
    /// server, a descendant that left the group with `setsid`) and exits; a reaper that does
    /// not (stopped by a hostile plugin, say) is killed, and the supervisor sweeps its orphans.
    pub async fn stop(&self, grace: Duration) -> Exit {
        if let Some(status) = self.exited() {
            return status;
        }
        let _ = killpg(self.pid, Signal::SIGTERM);
        if let Ok(status) = tokio::time::timeout(grace, self.wait_exit()).await {
            return status;
        }
        if !grace.is_zero() {
            tracing::warn!(plugin = %self.name, grace_ms = grace.as_millis() as u64,
                "did not stop within its grace period; sending SIGKILL to its process group");
        }
        let _ = killpg(self.pid, Signal::SIGKILL);
        if let Ok(status) = tokio::time::timeout(REAPER_GRACE, self.wait_exit()).await {
            return status;
        }
        tracing::warn!(plugin = %self.name, reaper = self.reaper.as_raw(),
            "its reaper did not exit after the plugin was killed; killing the reaper and what \
             is left of the plugin's processes");
        // The reaper's subtree first, while it still links them to the reaper; the sweep would
        // find them later, but the supervisor may be about to exit.
        for pid in crate::plugin::spawner::descendants(self.reaper, 4096) {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        let _ = nix::sys::signal::kill(self.reaper, Signal::SIGKILL);
        self.wait_exit().await
    }
}

/// A pipe's read end inherited across `execve`, as a reader on the runtime.
fn pipe_reader(fd: OwnedFd) -> io::Result<tokio::net::unix::pipe::Receiver> {
    tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
}

/// How long a reaper may take to clear its plugin's subtree and exit once the plugin is killed.
const REAPER_GRACE: Duration = Duration::from_secs(2);

pub(super) fn plugin_client(channel: Channel) -> PluginClient<Channel> {
    PluginClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Makes one call, bounded by the supervisor's own deadline and by the process's life: a plugin
/// that dies mid-call fails the call at once, not at the deadline. `send(left, attempt)` sends
/// the request with what is left of the deadline; attempts after the first must go on a
/// connection of their own.
///
/// A call whose HTTP/2 connection broke while the process is still running (a response with
/// headers far over the limit, say: HTTP/2 cannot refuse that on one stream alone, so it tears
/// the connection down) is sent again on a fresh connection, up to `MAX_ATTEMPTS` times in all
/// and within the same deadline, each on a connection of its own: the calls that shared the
/// connection with a bad response are kept, and the bad response itself fails again (on its
/// own connection, hurting no other call) and is reported as what it is. (A plugin may
/// so see a call twice; only when its own connection broke mid-call.)
///
/// `exit` is `None` for a remote plugin (contract §2.6): it has no process to exit, and a broken
/// connection is reported as such at once.
pub async fn call<T, F, Fut>(
    exit: Option<watch::Receiver<Option<Exit>>>,
    deadline: Duration,
    timer: Timer,
    mut send: F,
) -> Result<T, Failed>
where
    F: FnMut(Duration, u64) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let started = Instant::now();
    let mut attempt = 1;
    loop {
        let left = if attempt == 1 {
            deadline
        } else {
            deadline.saturating_sub(started.elapsed())
        };
        match call_once(&exit, left, deadline, timer, send(left, attempt)).await {
            Err(Ended::ConnectionLost(failed)) => {
                let pause = Duration::from_millis(10 * attempt);
                if attempt == MAX_ATTEMPTS
                    || started.elapsed() + pause >= deadline
                    || exited(exit.as_ref())
                {
                    return Err(failed);
                }
                tracing::debug!(
                    attempt,
                    "sending a call again on a fresh connection: {}",
                    failed.detail
                );
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            other => return other.map_err(Ended::into_failed),
        }
    }
}

/// Who ends a call at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// [`call`] starts a timer of its own.
    Own,
    /// The caller drops the call when its deadline passes, as the stages do for every plugin
    /// call: one timer per call, not two.
    Caller,
}

/// How many times one call is sent at most, when connections break under a live plugin.
const MAX_ATTEMPTS: u64 = 3;

/// How one attempt ended, when it did not answer.
enum Ended {
    /// The call failed.
    Failed(Failed),
    /// The connection was torn down by an HTTP/2 protocol error while the process lives.
    ConnectionLost(Failed),
}

impl Ended {
    fn into_failed(self) -> Failed {
        match self {
            Ended::Failed(failed) | Ended::ConnectionLost(failed) => failed,
        }
    }
}

/// One attempt, bounded by `left`; failures report the call's whole `deadline`.
async fn call_once<T>(
    exit: &Option<watch::Receiver<Option<Exit>>>,
    left: Duration,
    deadline: Duration,
    timer: Timer,
    work: impl Future<Output = Result<T, Status>>,
) -> Result<T, Ended> {
    let exited = {
        let exit = exit.clone();
        async move {
            let Some(mut exit) = exit else {
                return std::future::pending().await;
            };
            let status = exit.wait_for(Option::is_some).await;
            status.ok().and_then(|s| *s).unwrap_or(Exit::Unknown)
        }
    };
    let ends = Instant::now() + left;
    let bounded = async {
        match timer {
            Timer::Own => tokio::time::timeout(left, work).await.ok(),
            Timer::Caller => Some(work.await),
        }
    };
    tokio::select! {
        biased;
        out = bounded => match out {
            Some(Ok(response)) => Ok(response),
            // A plugin that honours `grpc-timeout` gives up 20 ms after the supervisor's own
            // deadline. When the supervisor's thread was held up past that (a loaded machine),
            // the plugin's DEADLINE_EXCEEDED or CANCELLED arrives before the supervisor's timer
            // is seen; it is the same timeout.
            Some(Err(status)) if gave_up_at_deadline(&status) && Instant::now() >= ends => {
                Err(Ended::Failed(Failed::timeout(deadline)))
            }
            Some(Err(status)) => Err(classify(&status, exit).await),
            None => Err(Ended::Failed(Failed::timeout(deadline))),
        },
        status = exited => Err(Ended::Failed(Failed::crashed(format!("the process exited ({status})")))),
    }
}

/// Whether `status` is what a plugin's gRPC server answers when the `grpc-timeout` budget ran
/// out (sent by the plugin: it has no source on this side).
fn gave_up_at_deadline(status: &Status) -> bool {
    std::error::Error::source(status).is_none()
        && matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        )
}

/// How long a broken connection waits for the process's exit status, to report it.
const EXIT_REPORT_WAIT: Duration = Duration::from_millis(100);

/// Says what happened to a call that ended in a non-OK status. A status decoded from the
/// plugin's trailers is the plugin's own error. One made on our side of the connection (it
/// carries a source error) is told apart by its cause, so that a live plugin is never reported
/// as crashed for a response that was not gRPC or broke HTTP/2's limits:
/// - the response is not valid gRPC (`link`'s [`Malformed`]): an invalid response;
/// - the process exited: a crash;
/// - HTTP/2 refused the response (headers over the limit, a malformed frame): an invalid
///   response;
/// - a new connection reached a process that is not the plugin ([`PeerMismatch`]: another
///   process took over the socket's path): the plugin is unavailable, and the call is not
///   sent again;
/// - otherwise the connection broke under a live process: reported as such.
async fn classify(status: &Status, exit: &Option<watch::Receiver<Option<Exit>>>) -> Ended {
    let cause = match std::error::Error::source(status) {
        Some(source) => Cause::of(source),
        None if exited(exit.as_ref()) => Cause::Transport,
        None => return Ended::Failed(Failed::error(status.code(), &cap(status.message()))),
    };
    match cause {
        Cause::Malformed(what) => Ended::Failed(Failed::invalid(cap(&what))),
        Cause::PeerMismatch(what) => {
            tracing::warn!("a reconnection reached another process: {what}");
            Ended::Failed(Failed::unavailable(format!(
                "its socket is served by another process ({what})"
            )))
        }
        Cause::Unreachable(what) => Ended::Failed(Failed::unavailable(cap(&what))),
        _ if exited(exit.as_ref()) => Ended::Failed(exited_or_broke(status, exit).await),
        Cause::Http2 { text, go_away } => {
            let failed = Failed::invalid(format!(
                "the response broke HTTP/2 ({}); the process is still running",
                cap(&text)
            ));
            if go_away {
                Ended::ConnectionLost(failed)
            } else {
                Ended::Failed(failed)
            }
        }
        Cause::Transport => match exited_or_broke(status, exit).await {
            failed if exited(exit.as_ref()) => Ended::Failed(failed),
            failed => Ended::ConnectionLost(failed),
        },
    }
}

/// What a status made on our side of the connection came from.
enum Cause {
    /// The response is not valid gRPC ([`Malformed`]).
    Malformed(String),
    /// HTTP/2 refused the stream (`go_away`: the whole connection).
    Http2 { text: String, go_away: bool },
    /// A new connection failed the peer check.
    PeerMismatch(String),
    /// A remote plugin could not be reached (TCP, TLS, its identity).
    Unreachable(String),
    /// Anything else: the connection broke.
    Transport,
}

impl Cause {
    fn of(source: &(dyn std::error::Error + 'static)) -> Cause {
        let mut cause = Some(source);
        let mut found = Cause::Transport;
        while let Some(err) = cause {
            if let Some(Malformed(what)) = err.downcast_ref::<Malformed>() {
                return Cause::Malformed(what.clone());
            }
            // `io::Error`'s own `source` skips the error it wraps: look inside.
            if let Some(PeerMismatch(what)) = err
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<PeerMismatch>())
            {
                return Cause::PeerMismatch(what.clone());
            }
            if let Some(Unreachable(what)) = err
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<Unreachable>())
            {
                return Cause::Unreachable(what.clone());
            }
            if let Some(h2) = err.downcast_ref::<h2::Error>()
                && !h2.is_io()
                && (h2.is_library() || h2.is_go_away() || h2.is_reset())
            {
                found = Cause::Http2 {
                    text: h2.to_string(),
                    go_away: h2.is_go_away(),
                };
            }
            cause = err.source();
        }
        found
    }
}

/// The crash report of a call whose connection ended: the exit status when the process has
/// exited (waiting briefly for it), else "the connection broke".
async fn exited_or_broke(status: &Status, exit: &Option<watch::Receiver<Option<Exit>>>) -> Failed {
    let Some(mut exit) = exit.clone() else {
        return Failed::unavailable(format!(
            "the connection to the remote plugin broke ({})",
            cap(status.message())
        ));
    };
    let waited = tokio::time::timeout(EXIT_REPORT_WAIT, exit.wait_for(Option::is_some)).await;
    match waited {
        Ok(Ok(how)) => Failed::crashed(format!(
            "the process exited ({})",
            how.unwrap_or(Exit::Unknown)
        )),
        _ => Failed::crashed(format!("the connection broke ({})", cap(status.message()))),
    }
}

/// Whether the process (if there is one) has exited.
fn exited(exit: Option<&watch::Receiver<Option<Exit>>>) -> bool {
    exit.is_some_and(|exit| exit.borrow().is_some())
}

/// A text a plugin controls, cut so that the sentence quoting it stays within the length a
/// verdict carries (`Failed` caps the whole sentence too, as a backstop).
fn cap(text: &str) -> std::borrow::Cow<'_, str> {
    limits::cap_text(text, limits::MAX_PLUGIN_TEXT_BYTES - 256)
}
