//! Reattaching to running plugins after the supervisor was killed (`[supervisor]
//! keep_plugins_on_crash = true`): the claim sockets, both their sides, and the checks on them.
//!
//! By default no plugin outlives the supervisor (spawner.rs). In this mode a plugin's reaper
//! that sees its supervisor go (its parent-death signal, its parent changed) does not end the
//! plugin: it binds a claim socket `RUNTIME_DIR/.reattach/REAPER_PID.sock` and waits up to
//! `keep_plugins_grace_ms` for a new supervisor to claim it. Unclaimed by then, it kills the
//! plugin's whole subtree and exits, as it would have at once.
//!
//! A new supervisor started in this mode connects to each claim socket before it starts any
//! plugin ([`claim_all`]). Each side checks the other with `SO_PEERCRED`: the reaper talks only
//! to a process of its own uid (the supervisor's), and the supervisor takes only a reaper of its
//! own uid whose pid and start time are the ones it says, with a plugin that is that reaper's
//! child, a session leader, and has the start time the reaper recorded (never a reused pid).
//! The reaper sends a [`Hello`] (the plugin's name, configuration fingerprint, instance,
//! pids and start times, uid, socket) with the read ends of the plugin's stdout and stderr
//! (`SCM_RIGHTS`), and the supervisor answers [`CLAIM`]. From then on the connection is the
//! reaper's report channel: the plugin's exit comes as an [`ExitReport`] with its status, and
//! an end of the connection (this supervisor died too) sends the reaper back to waiting.
//!
//! The claimed plugin is then taken over exactly like one handed over at an upgrade
//! ([`Adoptee`], with a [`Claim`]): peer check and `Describe` again before it takes calls, its
//! record carried on, a changed or removed one stopped. The plugin is never signalled while it
//! is reattached.
//!
//! The directory is mode 0700 and owned by the supervisor's uid: a sandboxed plugin (another
//! uid, and Landlock) cannot reach it, and nothing in it is readable by anyone else.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, getsockopt, recvmsg, sendmsg, sockopt,
};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::process::{Adoptee, Exit, Handed};
use super::spawner;

/// The reaper's environment variable holding its [`Keep`] as JSON; removed from the plugin's.
pub const ENV: &str = "HOOKVISOR_KEEP";
/// The claim protocol's version, in every [`Hello`].
pub const VERSION: u32 = 1;
/// The supervisor's answer that takes a reaper over.
pub const CLAIM: u8 = b'C';
/// The largest message either side reads.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// How long a supervisor waits for a reaper's hello, and a reaper for the claim.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// The directory of claim sockets in `runtime_dir`.
pub fn dir(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(".reattach")
}

/// Creates the claim directory (mode 0700) or checks an existing one: a directory, not a link,
/// owned by this process's uid, and reachable by nobody else (mode 0700 is set again if it
/// was wider).
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(io::Error::other(format!(
            "{} is owned by uid {}, not by hookvisor's uid {}",
            dir.display(),
            meta.uid(),
            nix::unistd::geteuid()
        )));
    }
    if meta.mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// What the supervisor tells a reaper when it keeps plugins: where to wait, for how long, and
/// what to say of its plugin to the supervisor that claims it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keep {
    /// The claim directory.
    pub dir: PathBuf,
    /// How long to wait for a claim, in milliseconds.
    pub grace_ms: u32,
    /// The plugin's configured name.
    pub name: String,
    /// [`crate::plugin::PluginSet`]'s fingerprint of its process-defining settings.
    pub fingerprint: String,
    /// Its instance number.
    pub instance: u32,
    /// The socket it serves on.
    pub socket: PathBuf,
    /// Its own uid, when the sandbox gave it one.
    pub uid: Option<u32>,
}

/// How the plugin ended, on the claim connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl From<Status> for Exit {
    fn from(status: Status) -> Exit {
        match status {
            Status::Code(code) => Exit::Code(code),
            Status::Signal {
                signal,
                core_dumped,
            } => Exit::Signal {
                signal,
                core_dumped,
            },
        }
    }
}

/// What a reaper says first on a claim connection (with its plugin's stdout and stderr read
/// ends, those `outputs` says it has, in that order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// [`VERSION`].
    pub version: u32,
    /// What the supervisor that started it said ([`Keep`], without the directory and grace).
    pub name: String,
    /// The configuration fingerprint.
    pub fingerprint: String,
    /// The instance number.
    pub instance: u32,
    /// The plugin's socket.
    pub socket: PathBuf,
    /// The plugin's own uid.
    pub uid: Option<u32>,
    /// The plugin and its start time (`/proc/PID/stat`).
    pub pid: i32,
    /// The plugin's start time.
    pub pid_start: u64,
    /// The reaper and its start time.
    pub reaper: i32,
    /// The reaper's start time.
    pub reaper_start: u64,
    /// How the plugin ended, when it exited while no supervisor ran.
    pub exited: Option<Status>,
    /// Which of stdout and stderr come with the message.
    pub outputs: [bool; 2],
}

/// The reaper's report of the plugin's exit, on a claimed connection.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ExitReport {
    /// How the plugin ended.
    pub exit: Status,
}

/// A claimed reaper's connection: its report channel. Held by [`Claim::exit`]'s thread until
/// the reaper reports the plugin's exit or goes.
#[derive(Debug)]
pub struct Claim {
    stream: UnixStream,
    reaper: Pid,
    /// How the plugin ended, when it exited before the claim.
    pub exited: Option<Exit>,
}

impl Claim {
    /// Waits, on a thread of its own, for the reaper's report of the plugin's exit; the status
    /// arrives on the receiver (`Exit::Unknown` when the reaper went without one).
    pub fn exit(self) -> io::Result<tokio::sync::oneshot::Receiver<Exit>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let Claim {
            stream,
            reaper,
            exited,
        } = self;
        if let Some(exit) = exited {
            spawner::forget_reattached(reaper);
            let _ = tx.send(exit);
            return Ok(rx);
        }
        std::thread::Builder::new()
            .name("hookvisor-claim".into())
            .spawn(move || {
                let _ = stream.set_read_timeout(None);
                let exit = match read_message(&stream, &mut Vec::new()) {
                    Ok(Some(text)) => serde_json::from_slice::<ExitReport>(&text)
                        .map_or(Exit::Unknown, |r| r.exit.into()),
                    _ => Exit::Unknown,
                };
                spawner::forget_reattached(reaper);
                let _ = tx.send(exit);
            })?;
        Ok(rx)
    }
}

/// Claims every reaper waiting in `dir` (run before any plugin starts, on a blocking thread):
/// each one that passes the checks becomes an [`Adoptee`] with its [`Claim`]; one that does not
/// is left alone (it ends its plugin when its grace period passes) and said why in the log. A
/// socket nobody listens on any more is removed.
pub fn claim_all(dir: &Path) -> Vec<Adoptee> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut claimed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "sock") {
            continue;
        }
        match claim(&path) {
            Ok(adoptee) => claimed.push(adoptee),
            Err(Refused::Gone) => {
                let _ = std::fs::remove_file(&path);
            }
            Err(Refused::Why(why)) => {
                tracing::warn!(socket = %path.display(), "not reattached: {why}");
            }
        }
    }
    claimed
}

/// [`claim_all`] in a supervisor that re-executed itself for an upgrade after it had reattached
/// plugins: their claims ended with the old image, and their reapers bind their claim sockets
/// again a moment later. Claims until every reaper of `handed` that is not this process's child
/// is claimed, or `limit` passes.
pub fn claim_again(dir: &Path, handed: &[Adoptee], limit: Duration) -> Vec<Adoptee> {
    let us = Pid::this().as_raw();
    let mut waiting: Vec<i32> = handed
        .iter()
        .map(|a| a.handed.reaper)
        .filter(|r| spawner::identity(Pid::from_raw(*r)).is_some_and(|id| id.ppid != us))
        .collect();
    let deadline = std::time::Instant::now() + limit;
    let mut claimed = Vec::new();
    loop {
        let found = claim_all(dir);
        waiting.retain(|r| !found.iter().any(|a| a.handed.reaper == *r));
        claimed.extend(found);
        if waiting.is_empty() || std::time::Instant::now() >= deadline {
            return claimed;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

enum Refused {
    /// Nobody listens there.
    Gone,
    Why(String),
}

/// Connects to one claim socket, checks the reaper and its plugin, and claims it.
fn claim(path: &Path) -> Result<Adoptee, Refused> {
    let stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ) =>
        {
            return Err(Refused::Gone);
        }
        Err(e) => return Err(Refused::Why(format!("cannot connect: {e}"))),
    };
    let why = |s: String| Refused::Why(s);
    let cred = getsockopt(&stream, sockopt::PeerCredentials)
        .map_err(|e| why(format!("cannot read its peer's credentials: {e}")))?;
    let us = nix::unistd::geteuid().as_raw();
    if cred.uid() != us {
        return Err(why(format!(
            "served by uid {}, not by hookvisor's uid {us}",
            cred.uid()
        )));
    }
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(|e| why(e.to_string()))?;
    let mut fds = Vec::new();
    let text = match read_message(&stream, &mut fds) {
        Ok(Some(text)) => text,
        Ok(None) => return Err(why("the reaper closed the connection".into())),
        Err(e) => return Err(why(format!("reading its hello: {e}"))),
    };
    let hello: Hello = serde_json::from_slice(&text)
        .map_err(|e| why(format!("its hello is not what version {VERSION} says: {e}")))?;
    if hello.version != VERSION {
        return Err(why(format!(
            "it speaks claim version {}, this supervisor {VERSION}",
            hello.version
        )));
    }
    let reaper = Pid::from_raw(hello.reaper);
    if cred.pid() != hello.reaper {
        return Err(why(format!(
            "served by pid {}, not by the reaper it names (pid {reaper})",
            cred.pid()
        )));
    }
    match spawner::identity(reaper) {
        Some(id) if id.start == hello.reaper_start => {}
        _ => {
            return Err(why(format!(
                "pid {reaper} does not have the start time its hello says"
            )));
        }
    }
    let exited = hello.exited.map(Exit::from);
    if exited.is_none() {
        let pid = Pid::from_raw(hello.pid);
        let plugin_ok = spawner::identity(pid).is_some_and(|id| {
            id.ppid == reaper.as_raw() && id.sid == pid.as_raw() && id.start == hello.pid_start
        });
        if !plugin_ok {
            return Err(why(format!(
                "pid {pid} is not the plugin its reaper (pid {reaper}) started"
            )));
        }
    }
    let mut fds = fds.into_iter();
    let [out, err] = hello.outputs;
    let output_fds = [
        if out { fds.next() } else { None },
        if err { fds.next() } else { None },
    ];
    (&stream)
        .write_all(&[CLAIM])
        .map_err(|e| why(format!("claiming it: {e}")))?;
    spawner::reattached(reaper);
    let handed = Handed {
        name: hello.name,
        fingerprint: hello.fingerprint,
        instance: hello.instance,
        pid: hello.pid,
        pid_start: hello.pid_start,
        reaper: hello.reaper,
        reaper_start: hello.reaper_start,
        uid: hello.uid,
        socket: hello.socket,
        output_fds: [None, None],
        restarts: 0,
        last_error: None,
        uptime_ms: uptime_ms(hello.pid_start),
        version: None,
    };
    Ok(Adoptee {
        handed,
        output_fds,
        claim: Some(Claim {
            stream,
            reaper,
            exited,
        }),
    })
}

/// How long a process that started at `start` (clock ticks since boot) has run.
fn uptime_ms(start: u64) -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/uptime") else {
        return 0;
    };
    let Some(up) = text
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
    else {
        return 0;
    };
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64;
    let ms = (up - start as f64 / ticks) * 1000.0;
    if ms > 0.0 { ms as u64 } else { 0 }
}

/// Reads one newline-ended message (at most [`MAX_MESSAGE_BYTES`]); descriptors that come with
/// it go to `fds`. `None` at the end of the stream.
fn read_message(stream: &UnixStream, fds: &mut Vec<OwnedFd>) -> io::Result<Option<Vec<u8>>> {
    let mut text = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
        let (bytes, truncated) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(io::Error::from)?;
            for cmsg in msg.cmsgs().map_err(io::Error::from)? {
                if let ControlMessageOwned::ScmRights(received) = cmsg {
                    fds.extend(received.into_iter().map(spawner::own_received));
                }
            }
            (msg.bytes, msg.flags.contains(MsgFlags::MSG_CTRUNC))
        };
        if truncated {
            return Err(io::Error::other("more descriptors than expected"));
        }
        if bytes == 0 {
            return Ok(None);
        }
        text.extend_from_slice(&buf[..bytes]);
        if let Some(end) = text.iter().position(|b| *b == b'\n') {
            text.truncate(end);
            return Ok(Some(text));
        }
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(io::Error::other("a message over 16 KiB"));
        }
    }
}

// The reaper's side.

/// The reaper's claim socket, bound while it waits for a supervisor.
#[derive(Debug)]
pub struct Listening {
    listener: UnixListener,
    path: PathBuf,
}

impl Listening {
    /// Binds `DIR/PID.sock` (a stale file of that name is replaced: the pid is this live
    /// process's) with mode 0600, non-blocking.
    pub fn bind(keep: &Keep) -> io::Result<Listening> {
        let path = keep.dir.join(format!("{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        listener.set_nonblocking(true)?;
        Ok(Listening { listener, path })
    }

    /// The listening descriptor, to poll.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// A connection waiting, from a process of this reaper's uid; one of another uid is closed
    /// (and said so on stderr, which is the plugin's output in the supervisor's log).
    pub fn accept(&self) -> Option<UnixStream> {
        let (stream, _) = self.listener.accept().ok()?;
        let us = nix::unistd::geteuid().as_raw();
        match getsockopt(&stream, sockopt::PeerCredentials) {
            Ok(cred) if cred.uid() == us => {
                stream.set_nonblocking(false).ok()?;
                stream.set_write_timeout(Some(ANSWER_TIMEOUT)).ok()?;
                Some(stream)
            }
            Ok(cred) => {
                eprintln!(
                    "hookvisor reaper: refused a claim from pid {} as uid {} (not uid {us})",
                    cred.pid(),
                    cred.uid()
                );
                None
            }
            Err(_) => None,
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What a waiting reaper offers: everything of [`Hello`] but the exit, and the output read ends.
#[derive(Debug)]
pub struct Offer {
    /// The hello, `exited` filled in when it is sent.
    pub hello: Hello,
    /// The read ends of the plugin's stdout and stderr.
    pub outputs: [Option<File>; 2],
}

impl Offer {
    /// The offer for `plugin`, started by this reaper as `keep` says. The read ends are opened
    /// from the reaper's own stdout and stderr, which are the plugin's pipes: opening a pipe
    /// through `/proc/self/fd` gives a new read end of the same pipe. The reaper holds them (and
    /// so the plugin never writes to a pipe without a reader while no supervisor runs), and
    /// passes them to the supervisor that claims it.
    pub fn new(keep: &Keep, plugin: Pid, outputs: [Option<File>; 2]) -> Offer {
        let start = |pid: Pid| spawner::identity(pid).map_or(0, |i| i.start);
        Offer {
            hello: Hello {
                version: VERSION,
                name: keep.name.clone(),
                fingerprint: keep.fingerprint.clone(),
                instance: keep.instance,
                socket: keep.socket.clone(),
                uid: keep.uid,
                pid: plugin.as_raw(),
                pid_start: start(plugin),
                reaper: Pid::this().as_raw(),
                reaper_start: start(Pid::this()),
                exited: None,
                outputs: [outputs[0].is_some(), outputs[1].is_some()],
            },
            outputs,
        }
    }

    /// Sends the hello on `stream`, with the output read ends.
    pub fn send(&self, stream: &UnixStream, exited: Option<Status>) -> io::Result<()> {
        let mut hello = self.hello.clone();
        hello.exited = exited;
        let mut text = serde_json::to_vec(&hello).map_err(io::Error::other)?;
        text.push(b'\n');
        let fds: Vec<i32> = self
            .outputs
            .iter()
            .flatten()
            .map(|f| f.as_raw_fd())
            .collect();
        let rights = [ControlMessage::ScmRights(&fds)];
        let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
        let sent = sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(&text)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(io::Error::from)?;
        if sent < text.len() {
            (&*stream).write_all(&text[sent..])?;
        }
        Ok(())
    }
}

/// The read end of the pipe that descriptor `fd` (1 or 2) of this process writes to, opened
/// close-on-exec; `None` when it is not a pipe.
pub fn output_read_end(fd: i32) -> Option<File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let path = PathBuf::from(format!("/proc/self/fd/{fd}"));
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.file_type().is_fifo() {
        return None;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .ok()
}

/// What a claimed (or offered) connection says: the claim byte, its end, or nothing yet.
pub fn read_claim(stream: &UnixStream) -> Option<bool> {
    let mut byte = [0u8; 1];
    match (&*stream).read(&mut byte) {
        Ok(0) => Some(false),
        Ok(_) => Some(byte[0] == CLAIM),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(_) => Some(false),
    }
}

/// Reports the plugin's exit on a claimed connection.
pub fn send_exit(stream: &UnixStream, exit: Status) {
    if let Ok(mut text) = serde_json::to_vec(&ExitReport { exit }) {
        text.push(b'\n');
        let _ = sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(&text)],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        );
    }
}

/// The [`Keep`] in this reaper's environment, if the supervisor keeps plugins.
pub fn keep_from_env() -> Result<Option<Keep>, String> {
    match std::env::var_os(ENV) {
        None => Ok(None),
        Some(json) => serde_json::from_slice(json.as_encoded_bytes())
            .map(Some)
            .map_err(|e| format!("cannot read {ENV}: {e}")),
    }
}

/// The value of [`ENV`] for a plugin's reaper.
pub fn env_value(keep: &Keep) -> OsString {
    OsString::from(serde_json::to_string(keep).unwrap_or_default())
}
