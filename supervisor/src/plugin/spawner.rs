//! The one thread that forks plugin processes, the per-plugin [`reaper`], and the `unsafe` code
//! of the supervisor (this module and its child alone).
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process
//! (prctl(2): "the parent is the thread that created this process"). Forking from a tokio worker would kill plugins whenever the runtime retires
//! that worker, so every plugin is forked from a dedicated thread that lives as long as the
//! [`Spawner`]. Dropping the spawner ends the thread, and with it every plugin it started: the
//! same thing that happens when the supervisor dies.
//!
//! What the spawner forks is a [`reaper`] (this binary again), which starts the plugin as its
//! child and takes the plugin's whole subtree with it when the plugin exits or the supervisor
//! goes, however it goes (SIGKILL included). The plugin is the leader of a new session (and so
//! of a new process group). The session is the plugin's identity in the readiness check: any
//! process of a session can join another process group of that session with `setpgid(2)`, but
//! no process can join a session it was not born into, so "the listener is in the plugin's
//! session" cannot be faked by another plugin.
//!
//! The supervisor is itself a child subreaper: should a reaper be killed (a hostile plugin can
//! SIGKILL it, it runs under the same uid), its orphans come to the supervisor, which kills and
//! reaps every child that is not one of its reapers.
//!
//! With `[supervisor] keep_plugins_on_crash = true` ([`Spawner::keep_plugins`]) a reaper that
//! sees the supervisor go waits for a new one to claim it instead ([`crate::plugin::reattach`]);
//! the reapers a supervisor claimed that way are not its children, and are known to it here
//! ([`reattached`]) so that their plugins still count as its descendants.

pub mod confine;
pub mod reaper;
mod seccomp;

use std::collections::HashSet;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// The longest a reaper may take to report the plugin it started.
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the supervisor looks for orphans even without a SIGCHLD.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

struct Job {
    command: Command,
    report: OwnedFd,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// Forks plugin processes (through their reapers) from one long-lived thread.
#[derive(Debug, Clone)]
pub struct Spawner {
    jobs: mpsc::Sender<Job>,
    /// The pids of the reapers alive: the supervisor's only legitimate children.
    reapers: Arc<Mutex<HashSet<i32>>>,
    /// Where reapers wait after a crash, and for how long, when plugins are kept.
    keep: Option<Arc<(PathBuf, u32)>>,
}

/// A plugin started behind its reaper.
#[derive(Debug)]
pub struct Spawned {
    /// The reaper: the supervisor's child, whose exit status is the plugin's.
    pub reaper: Child,
    /// The plugin process: the leader of its own session and process group.
    pub plugin: Pid,
}

impl Spawner {
    /// Starts the spawner thread, makes the supervisor a child subreaper and starts the sweep
    /// for orphans on `runtime`. The spawner thread enters `runtime` so that spawned children
    /// are reaped by tokio (their `wait()` futures are awaited on the runtime).
    pub fn start(runtime: tokio::runtime::Handle) -> io::Result<Spawner> {
        Spawner::start_adopting(runtime, &[])
    }

    /// [`Spawner::start`] in a supervisor that re-executed itself for an upgrade: `adopted` are
    /// the reapers the previous image started (still this process's children, `execve` keeps
    /// them), known to the sweep from its first round so that it never takes them for orphans.
    pub fn start_adopting(runtime: tokio::runtime::Handle, adopted: &[Pid]) -> io::Result<Spawner> {
        nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let reapers = Arc::new(Mutex::new(
            adopted
                .iter()
                .map(|pid| pid.as_raw())
                .collect::<HashSet<i32>>(),
        ));
        let known = reapers.clone();
        let sweeps = runtime.clone();
        thread::Builder::new()
            .name("hookvisor-spawner".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                for mut job in queue {
                    prepare_child(&mut job.command, job.report.as_raw_fd());
                    // The sweep must never see a reaper it does not know yet.
                    let spawned = {
                        let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
                        let spawned = job.command.spawn();
                        if let Some(pid) = spawned.as_ref().ok().and_then(Child::id) {
                            known.insert(pid as i32);
                        }
                        spawned
                    };
                    drop(job.report);
                    // The caller may have given up (its start was cancelled): kill what nobody
                    // will own.
                    if let Err(Ok(mut child)) = job.reply.send(spawned) {
                        let _ = child.start_kill();
                    }
                }
            })?;
        let sweeper = Arc::downgrade(&reapers);
        sweeps.spawn(sweep_orphans(sweeper));
        Ok(Spawner {
            jobs,
            reapers,
            keep: None,
        })
    }

    /// Makes the reapers of the plugins started from here on outlive this supervisor for
    /// `grace_ms`, waiting for a claim in `dir` (`keep_plugins_on_crash`).
    pub fn keep_plugins(mut self, dir: PathBuf, grace_ms: u32) -> Spawner {
        self.keep = Some(Arc::new((dir, grace_ms)));
        self
    }

    /// The claim directory and grace period, when plugins are kept.
    pub fn kept(&self) -> Option<(&Path, u32)> {
        self.keep.as_deref().map(|(dir, ms)| (dir.as_path(), *ms))
    }

    /// Starts `program` behind a reaper from the spawner thread, and waits for the reaper to
    /// report the plugin's pid. `configure` adds the plugin's arguments, environment, working
    /// directory and stdio, which the reaper passes on to the plugin unchanged. The reaper is
    /// killed (and its plugin with it) if the returned [`Child`] is dropped before it exits.
    pub async fn spawn(
        &self,
        program: &Path,
        configure: impl FnOnce(&mut Command),
    ) -> io::Result<Spawned> {
        let (reader, writer) = io::pipe()?;
        let mut command = Command::new("/proc/self/exe");
        command
            .arg(reaper::ARG)
            .arg(Pid::this().to_string())
            .arg(writer.as_raw_fd().to_string())
            .arg(program);
        configure(&mut command);
        command.kill_on_drop(true);
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                command,
                report: OwnedFd::from(writer),
                reply,
            })
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        let reaper = answer
            .await
            .map_err(|_| io::Error::other("the spawner thread dropped the request"))??;
        let report = tokio::time::timeout(REPORT_TIMEOUT, read_report(reader)).await;
        let plugin = match report {
            Ok(Ok(line)) => parse_report(&line),
            Ok(Err(e)) => Err(io::Error::other(format!(
                "reading its reaper's report: {e}"
            ))),
            Err(_) => Err(io::Error::other(format!(
                "its reaper did not report within {} s",
                REPORT_TIMEOUT.as_secs()
            ))),
        };
        match plugin {
            Ok(plugin) => Ok(Spawned { reaper, plugin }),
            Err(e) => {
                // Dropped, so killed; tokio reaps it.
                if let Some(pid) = reaper.id().and_then(|id| i32::try_from(id).ok()) {
                    self.forget(Pid::from_raw(pid));
                }
                Err(e)
            }
        }
    }

    /// Waits, on a thread of its own, for `reaper` (a child adopted across an upgrade's
    /// `execve`, which tokio did not spawn and so does not reap) to exit, and reaps it. The
    /// status arrives on the receiver; the reaper is then forgotten.
    pub fn wait_adopted(&self, reaper: Pid) -> io::Result<oneshot::Receiver<WaitStatus>> {
        let (tx, rx) = oneshot::channel();
        let reapers = Arc::downgrade(&self.reapers);
        thread::Builder::new()
            .name("hookvisor-adopted".into())
            .spawn(move || {
                let status = loop {
                    match waitpid(reaper, None) {
                        Err(nix::errno::Errno::EINTR) => continue,
                        Ok(status) => break status,
                        // ECHILD: not (or no longer) our child; nothing to report but that.
                        Err(_) => break WaitStatus::StillAlive,
                    }
                };
                if let Some(reapers) = reapers.upgrade() {
                    let mut known = reapers.lock().unwrap_or_else(|e| e.into_inner());
                    known.remove(&reaper.as_raw());
                }
                let _ = tx.send(status);
            })?;
        Ok(rx)
    }

    /// Runs `command` to completion as a child the sweep leaves alone (it is not a reaper, and
    /// would otherwise be taken for an orphan and killed): an upgrade's check of the new binary.
    pub async fn output_of(&self, command: &mut Command) -> io::Result<std::process::Output> {
        let child = {
            let mut known = self.reapers.lock().unwrap_or_else(|e| e.into_inner());
            let child = command.spawn()?;
            if let Some(pid) = child.id() {
                known.insert(pid as i32);
            }
            child
        };
        /// Forgets the child however the wait ends (a timeout drops it, and kills it).
        struct Forget<'a>(&'a Spawner, Option<Pid>);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                if let Some(pid) = self.1 {
                    self.0.forget(pid);
                }
            }
        }
        let _forget = Forget(self, child.id().map(|id| Pid::from_raw(id as i32)));
        child.wait_with_output().await
    }

    /// Forgets a reaper that has exited (its pid may be reused).
    pub fn forget(&self, reaper: Pid) {
        let mut known = self.reapers.lock().unwrap_or_else(|e| e.into_inner());
        known.remove(&reaper.as_raw());
    }
}

/// Reads the reaper's one line (at most 512 bytes) on a blocking thread.
async fn read_report(reader: io::PipeReader) -> io::Result<String> {
    tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        reader.take(512).read_to_string(&mut line)?;
        Ok(line)
    })
    .await
    .map_err(io::Error::other)?
}

/// `PID\n`, or `error WHY\n`.
fn parse_report(line: &str) -> io::Result<Pid> {
    let line = line.trim_end();
    if let Some(why) = line.strip_prefix("error ") {
        return Err(io::Error::other(why.to_owned()));
    }
    match line.parse::<i32>() {
        Ok(pid) if pid > 0 => Ok(Pid::from_raw(pid)),
        _ if line.is_empty() => Err(io::Error::other(
            "its reaper exited before starting it (is this binary calling \
             hookvisor::spawner::reaper::main_if_reaper?)",
        )),
        _ => Err(io::Error::other(format!(
            "its reaper reported {line:?}, not a pid"
        ))),
    }
}

/// Makes the reaper the leader of a new session, makes it receive [`reaper::PARENT_DEATH`]
/// when the spawner thread (and so the supervisor) goes away, and lets it inherit the report
/// pipe's write end (`report`).
fn prepare_child(command: &mut Command, report: i32) {
    let parent = Pid::this();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed. It makes five system calls, setsid(2), prctl(2),
    // getppid(2), close_range(2) and fcntl(2), all async-signal-safe; it allocates nothing and takes no locks
    // (nix's wrappers are thin and the error paths build an io::Error from a raw errno, which
    // does not allocate). setsid cannot fail here: a freshly forked child is never a process
    // group leader. Clearing close-on-exec touches the child's descriptor table only, and the
    // number is the same there as in the parent.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid()?;
            nix::sys::prctl::set_pdeathsig(reaper::PARENT_DEATH)?;
            // The supervisor may have died between fork and prctl; the signal would then never
            // come. Exit like the signal would have made us.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            // Nothing the supervisor holds (the host socket, a second socket-activation
            // socket, plugin connections) reaches the reaper, and so the plugin: only stdio
            // and the report pipe.
            confine::close_inherited()?;
            if nix::libc::fcntl(report, nix::libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Kills and reaps, on every SIGCHLD and every second, each child of the supervisor that is
/// not a known reaper: the orphans of a reaper that was killed. Ends with the spawner.
async fn sweep_orphans(reapers: Weak<Mutex<HashSet<i32>>>) {
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
    loop {
        match sigchld.as_mut() {
            Some(signal) => {
                let _ = tokio::time::timeout(SWEEP_INTERVAL, signal.recv()).await;
            }
            None => tokio::time::sleep(SWEEP_INTERVAL).await,
        }
        let Some(reapers) = reapers.upgrade() else {
            return;
        };
        let known = reapers.lock().unwrap_or_else(|e| e.into_inner());
        for child in children(Pid::this()) {
            if known.contains(&child.as_raw()) {
                continue;
            }
            if kill(child, Signal::SIGKILL).is_ok() {
                tracing::warn!(
                    pid = child.as_raw(),
                    "killed an orphaned plugin descendant (its reaper was killed)"
                );
            }
            let _ = waitpid(child, Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// The children of `pid` (of every one of its threads).
fn children(pid: Pid) -> Vec<Pid> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .flat_map(|task| {
            std::fs::read_to_string(task.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok())
                .map(Pid::from_raw)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether `pid` is a descendant of this process (a reaper, a plugin or anything a plugin
/// started: orphans are re-parented to their reaper, a child subreaper, so the chain of parents
/// of every plugin process leads here). `Ok(None)` when `pid` (or one of its ancestors) is gone;
/// an error when `/proc` cannot be read (out of descriptors, say).
pub fn is_our_descendant(pid: Pid) -> io::Result<Option<bool>> {
    let us = Pid::this();
    let mut current = pid;
    let claimed = REATTACHED
        .lock()
        .map(|set| set.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    // Parent chains are short; the bound only guards against a cycle read mid-change.
    for _ in 0..256 {
        if current == us {
            return Ok(Some(current != pid));
        }
        if claimed.contains(&current.as_raw()) {
            return Ok(Some(true));
        }
        if current.as_raw() <= 1 {
            return Ok(Some(false));
        }
        let stat = match std::fs::read_to_string(format!("/proc/{current}/stat")) {
            Ok(stat) => stat,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so read after the
        // last ')'.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            return Ok(None);
        };
        current = Pid::from_raw(ppid);
    }
    Ok(None)
}

/// The reapers this supervisor claimed after a crash of the one that started them
/// ([`crate::plugin::reattach`]): not its children, but their subtrees are its plugins.
static REATTACHED: Mutex<std::collections::BTreeSet<i32>> =
    Mutex::new(std::collections::BTreeSet::new());

/// Records `reaper` as claimed (see [`REATTACHED`]).
pub fn reattached(reaper: Pid) {
    let mut set = REATTACHED.lock().unwrap_or_else(|e| e.into_inner());
    set.insert(reaper.as_raw());
}

/// Forgets a claimed reaper that has reported its plugin's exit or gone.
pub fn forget_reattached(reaper: Pid) {
    let mut set = REATTACHED.lock().unwrap_or_else(|e| e.into_inner());
    set.remove(&reaper.as_raw());
}

/// Takes ownership of a descriptor the kernel just gave this process (`SCM_RIGHTS`).
pub fn own_received(fd: RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was installed in this process's table by `recvmsg` a moment ago and was
    // returned to the caller alone: nothing else knows the number, so this `OwnedFd` is its one
    // owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The descendants of `root` (not `root` itself), breadth first, at most `max` of them.
pub(crate) fn descendants(root: Pid, max: usize) -> Vec<Pid> {
    let mut seen = vec![root];
    let mut next = 0;
    while next < seen.len() && seen.len() <= max {
        let pid = seen[next];
        next += 1;
        for child in children(pid) {
            if !seen.contains(&child) && seen.len() <= max {
                seen.push(child);
            }
        }
    }
    seen.into_iter().skip(1).collect()
}

/// What `/proc/PID/stat` says of a process: its parent, its session and its start time (clock
/// ticks since boot, which with the pid names one process for the life of the machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The parent's pid.
    pub ppid: i32,
    /// The session id.
    pub sid: i32,
    /// The start time, in clock ticks since boot.
    pub start: u64,
}

/// The [`Identity`] of `pid`, or `None` when it is gone (or `/proc` cannot say).
pub fn identity(pid: Pid) -> Option<Identity> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the last ')': state(0) ppid(1) pgrp(2) session(3) … starttime(19).
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(Identity {
        ppid: rest.get(1)?.parse().ok()?,
        sid: rest.get(3)?.parse().ok()?,
        start: rest.get(19)?.parse().ok()?,
    })
}

/// Takes ownership of descriptor `fd`, inherited across `execve` for an upgrade's hand-over.
/// Refuses stdio, a descriptor that is not open, and (the caller's promise) any number it
/// takes twice: each number of the hand-over is taken once, first thing at start.
pub fn take_inherited(fd: i32) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd <= 2 {
        return Err(io::Error::other(format!(
            "descriptor {fd} is stdio, not a hand-over"
        )));
    }
    // SAFETY: F_GETFD reads the descriptor's flags and touches nothing else.
    let open = unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) } != -1;
    if !open {
        return Err(io::Error::other(format!("descriptor {fd} is not open")));
    }
    // SAFETY: the descriptor is open, and nothing else in this process owns it: it was
    // inherited across execve for the hand-over alone, and the hand-over names each number once
    // and is read before anything else opens a file (the caller checks the numbers are
    // distinct). From here on this `OwnedFd` is its one owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Close-on-exec again, as every descriptor of ours: the next upgrade hands over fresh
    // copies, and nothing else may inherit this one.
    nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok(owned)
}
