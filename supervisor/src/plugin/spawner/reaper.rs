//! The per-plugin reaper: the `hookvisor` binary re-executed (`/proc/self/exe`) between the
//! supervisor and each plugin, so that no plugin process outlives the supervisor, whatever the
//! plugin does and however the supervisor ends.
//!
//! ```text
//! supervisor ── reaper (child subreaper, parent-death signal) ── plugin (own session) ── …
//! ```
//!
//! The reaper is a *child subreaper* (`PR_SET_CHILD_SUBREAPER`): every descendant of the plugin
//! whose parent dies is re-parented to the reaper, not to init, so a launcher's grandchild
//! (`sh -c`, `npx tsx`, `go run`) and a descendant that left the session with `setsid()` all stay
//! in its subtree. It holds that subtree and does three things:
//! - the plugin exits: it kills every descendant left (SIGKILL), reaps them, and exits the way
//!   the plugin did (same code, same signal), so the supervisor sees the plugin's own exit;
//! - the supervisor goes, even by SIGKILL: its parent-death signal (SIGUSR1) arrives,
//!   and it kills and reaps the whole subtree, then exits; unless the supervisor keeps plugins
//!   (`keep_plugins_on_crash`, [`crate::plugin::reattach`]): then it waits for a new supervisor
//!   to claim it for the grace period, and reports to that one instead;
//! - SIGTERM, SIGINT, SIGHUP or SIGQUIT sent to it (systemd's `KillMode=control-group`, say) is
//!   passed on to the plugin's process group.
//!
//! It reports on a pipe the spawner opened (its descriptor number is an argument): the plugin's
//! pid, or why it could not start it. The plugin keeps the identity the contract gives it: the leader of its own session
//! and process group, with stdin, stdout, stderr, environment and working directory as the
//! supervisor set them, and SIGKILL as its own parent-death signal (its parent is the reaper).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::signal::{SigSet, Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::confine::{self, Confinement, Prepared};
use crate::plugin::reattach::{self, Keep, Listening, Offer};

/// The first argument that makes the `hookvisor` binary a reaper:
/// `hookvisor __hookvisor-reaper SUPERVISOR_PID REPORT_FD PROGRAM [ARGS…]`.
pub const ARG: &str = "__hookvisor-reaper";
/// The reaper's parent-death signal: caught (blocked and waited for), unlike SIGKILL, so that
/// the reaper outlives the supervisor just long enough to take the plugin's subtree with it.
pub(super) const PARENT_DEATH: Signal = Signal::SIGUSR1;
/// Most descendants signalled in one round; the rounds repeat until none is left.
const MAX_DESCENDANTS: usize = 4096;

/// Runs the reaper and exits if this process was started as one (its first argument is
/// [`ARG`]); returns at once otherwise. A binary that serves with [`crate::serve::server`] calls this
/// first thing in `main`, before any thread or runtime starts.
pub fn main_if_reaper() {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() != Some(OsStr::new(ARG)) {
        return;
    }
    let code = reap(args.collect());
    std::process::exit(code)
}

/// The reaper's life. Returns its exit code, or does not return when it re-raises the signal
/// that killed the plugin.
fn reap(args: Vec<OsString>) -> i32 {
    let mut args = args.into_iter();
    let mut number = || args.next().and_then(|n| n.to_str()?.parse::<i32>().ok());
    let (parent, report) = (number().map(Pid::from_raw), number().and_then(report_pipe));
    let (Some(parent), Some(mut report), Some(program)) = (parent, report, args.next()) else {
        eprintln!(
            "hookvisor reaper: started by hand? usage: hookvisor {ARG} SUPERVISOR_PID REPORT_FD \
             PROGRAM [ARGS…], REPORT_FD a pipe"
        );
        return 2;
    };
    let _ = nix::sys::prctl::set_name(c"hookvisor-reap");
    // Its environment is the plugin's (secrets included) and its job is the plugin's
    // subtree: no process of another uid, nor one under a Landlock domain, may read or trace it.
    let _ = nix::sys::prctl::set_dumpable(false);
    let signals: SigSet = [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        PARENT_DEATH,
    ]
    .into_iter()
    .collect();
    if let Err(e) = signals.thread_block() {
        let _ = writeln!(report, "error cannot block signals: {e}");
        return 1;
    }
    // Until the block above, the parent-death signal would have ended us; now it waits for
    // `sigwait`. The supervisor may have gone before either: then there is nothing to do.
    if nix::unistd::getppid() != parent {
        return 1;
    }
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        let _ = writeln!(report, "error cannot become a child subreaper: {e}");
        return 1;
    }
    let keep = match reattach::keep_from_env() {
        Ok(keep) => keep,
        Err(e) => {
            let _ = writeln!(report, "error {e}");
            return 1;
        }
    };
    // Opened before the plugin starts, close-on-exec: it never holds them.
    let outputs = match keep {
        Some(_) => [reattach::output_read_end(1), reattach::output_read_end(2)],
        None => [None, None],
    };
    let plugin = match spawn_plugin(&program, args) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = writeln!(report, "error {e}");
            return 127;
        }
    };
    let _ = writeln!(report, "{plugin}");
    drop(report);
    if let Some(keep) = keep {
        let offer = Offer::new(&keep, plugin, outputs);
        return reap_keeping(plugin, parent, &signals, &keep, &offer);
    }

    loop {
        let Ok(signal) = signals.wait() else {
            // sigwait fails only on an invalid set; never spin on it.
            kill_subtree();
            return 1;
        };
        match signal {
            Signal::SIGCHLD => {
                if let Some(status) = reap_exited(plugin) {
                    kill_subtree();
                    return exit_like(status);
                }
            }
            // Sent by anyone else (it is an ordinary signal), it means nothing.
            s if s == PARENT_DEATH => {
                if nix::unistd::getppid() != parent {
                    kill_subtree();
                    return 1;
                }
            }
            other => {
                let _ = killpg(plugin, other);
            }
        }
    }
}

/// Descriptor `fd`, if it is the pipe the spawner passed, made close-on-exec so the plugin does
/// not inherit it.
fn report_pipe(fd: i32) -> Option<File> {
    if fd <= 2 {
        return None;
    }
    let fd = {
        // Is the descriptor open at all? (`fcntl(F_GETFD)` touches nothing.)
        // SAFETY: F_GETFD on a raw descriptor number reads its flags and nothing else.
        #[allow(unsafe_code)]
        let open = unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) } != -1;
        if !open {
            return None;
        }
        // SAFETY: the descriptor is open and nothing else in this process owns it: the reaper
        // runs first thing in `main`, before any file is opened, and it was inherited from the
        // spawner for this use alone. From here on this `OwnedFd` is its one owner.
        #[allow(unsafe_code)]
        unsafe {
            OwnedFd::from_raw_fd(fd)
        }
    };
    let file = File::from(fd);
    let is_pipe = file.metadata().ok().is_some_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_fifo()
    });
    if !is_pipe {
        // Not ours: give the descriptor back untouched rather than close it.
        std::mem::forget(file);
        return None;
    }
    fcntl(&file, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).ok()?;
    Some(file)
}

/// Starts the plugin as the leader of a new session, with SIGKILL as its parent-death signal,
/// confined as the supervisor decided ([`confine::ENV`], removed from the plugin's environment).
fn spawn_plugin(program: &OsStr, args: impl Iterator<Item = OsString>) -> Result<Pid, String> {
    let reaper = Pid::this();
    let confinement: Confinement = match std::env::var_os(confine::ENV) {
        None => Confinement::default(),
        Some(json) => serde_json::from_slice(json.as_encoded_bytes())
            .map_err(|e| format!("cannot read its sandbox from {}: {e}", confine::ENV))?,
    };
    let mut prepared = Prepared::new(&confinement, program)?;
    let mut command = Command::new(prepared.program(program));
    command
        .arg0(program)
        .args(args)
        .env_remove(confine::ENV)
        .env_remove(reattach::ENV);
    if let Some((uid, gid)) = confinement.ids {
        // No supplementary group may reach the plugin. The standard library drops them only
        // when it runs as root; a hookvisor with CAP_SETGID but another uid drops them here,
        // in the reaper, which needs none (it fails closed without the capability).
        nix::unistd::setgroups(&[])
            .map_err(|e| format!("cannot drop the supplementary groups: {e}"))?;
        // setgid, then setuid, before the closure below.
        command.uid(uid).gid(gid);
    }
    // SAFETY: this process has one thread (the reaper never starts another), so the closure
    // running between fork and exec cannot meet a lock held by another thread; even so it only
    // makes system calls (pthread_sigmask, setsid, prctl, getppid, setrlimit,
    // landlock_restrict_self, seccomp's prctl, close_range, fcntl) and allocates nothing:
    // `Prepared` built everything before the fork.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            // The plugin must not inherit the signals the reaper blocks for `sigwait`: with
            // SIGTERM blocked, no plugin would ever see its stop request (the standard library
            // does not reset the mask on this path). `pthread_sigmask` is async-signal-safe.
            SigSet::empty().thread_set_mask()?;
            nix::unistd::setsid()?;
            // After the uid switch: a change of credentials clears the parent-death signal.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if nix::unistd::getppid() != reaper {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            prepared.apply()
        });
    }
    let child = command.spawn().map_err(|e| e.to_string())?;
    let pid = i32::try_from(child.id()).map_err(|e| format!("pid out of range: {e}"))?;
    Ok(Pid::from_raw(pid))
}

/// Whom the reaper reports to, when the supervisor keeps plugins.
enum Owner {
    /// The supervisor that started it, its parent (it reads the reaper's exit status).
    Parent,
    /// Nobody: waiting for a claim until `until`; `offered` is a connection that has the hello
    /// and has not answered yet.
    Waiting {
        listening: Listening,
        until: std::time::Instant,
        offered: Option<std::os::unix::net::UnixStream>,
    },
    /// A supervisor that claimed it: the plugin's exit goes on this connection.
    Claimed(std::os::unix::net::UnixStream),
}

/// The reaper's life when the supervisor keeps plugins (`keep`): as in [`reap`] while its
/// parent lives; after that, the claim socket (see [`reattach`]). Never signals the plugin
/// while a claim is pending or made; kills its subtree when the grace period passes unclaimed.
fn reap_keeping(plugin: Pid, parent: Pid, signals: &SigSet, keep: &Keep, offer: &Offer) -> i32 {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use std::os::fd::AsFd;

    let grace = std::time::Duration::from_millis(keep.grace_ms.into());
    let Ok(signalfd) =
        SignalFd::with_flags(signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    else {
        kill_subtree();
        return 1;
    };
    let mut owner = Owner::Parent;
    // How the plugin ended, while no supervisor was there to hear it.
    let mut exited: Option<reattach::Status> = None;
    let wait = || -> Option<Owner> {
        match Listening::bind(keep) {
            Ok(listening) => Some(Owner::Waiting {
                listening,
                until: std::time::Instant::now() + grace,
                offered: None,
            }),
            Err(e) => {
                eprintln!(
                    "hookvisor reaper: cannot wait for a new supervisor in {}: {e}",
                    keep.dir.display()
                );
                None
            }
        }
    };
    loop {
        let ready = {
            let mut fds = vec![PollFd::new(signalfd.as_fd(), PollFlags::POLLIN)];
            let mut timeout = PollTimeout::NONE;
            match &owner {
                Owner::Parent => {}
                Owner::Waiting {
                    listening,
                    until,
                    offered,
                } => {
                    fds.push(PollFd::new(listening.as_fd(), PollFlags::POLLIN));
                    if let Some(stream) = offered {
                        fds.push(PollFd::new(stream.as_fd(), PollFlags::POLLIN));
                    }
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
                }
                Owner::Claimed(stream) => {
                    fds.push(PollFd::new(stream.as_fd(), PollFlags::POLLIN));
                }
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => {
                    kill_subtree();
                    return 1;
                }
            }
            let ready: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(false)).collect();
            ready
        };
        if ready.first() == Some(&true) {
            while let Ok(Some(info)) = signalfd.read_signal() {
                let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                match signal {
                    Signal::SIGCHLD => {
                        let Some(status) = reap_exited(plugin) else {
                            continue;
                        };
                        kill_subtree();
                        let reported = match status {
                            WaitStatus::Exited(_, code) => reattach::Status::Code(code),
                            WaitStatus::Signaled(_, signal, core_dumped) => {
                                reattach::Status::Signal {
                                    signal: signal as i32,
                                    core_dumped,
                                }
                            }
                            _ => reattach::Status::Code(1),
                        };
                        match &owner {
                            Owner::Parent => return exit_like(status),
                            Owner::Claimed(stream) => {
                                reattach::send_exit(stream, reported);
                                return exit_like(status);
                            }
                            // Told to whoever claims it within the grace period.
                            Owner::Waiting { .. } => exited = Some(reported),
                        }
                    }
                    s if s == PARENT_DEATH => {
                        if matches!(owner, Owner::Parent) && nix::unistd::getppid() != parent {
                            match wait() {
                                Some(waiting) => owner = waiting,
                                None => {
                                    kill_subtree();
                                    return 1;
                                }
                            }
                        }
                    }
                    other => {
                        if exited.is_none() {
                            let _ = killpg(plugin, other);
                        }
                    }
                }
            }
        }
        let mut next = None;
        match &mut owner {
            Owner::Parent => {}
            Owner::Waiting {
                listening,
                until,
                offered,
            } => {
                if ready.get(2) == Some(&true)
                    && let Some(stream) = offered.take()
                {
                    match reattach::read_claim(&stream) {
                        Some(true) if exited.is_some() => return 1,
                        Some(true) => next = Some(Owner::Claimed(stream)),
                        Some(false) => {}
                        None => *offered = Some(stream),
                    }
                }
                if next.is_none() && ready.get(1) == Some(&true) {
                    while let Some(stream) = listening.accept() {
                        if offer.send(&stream, exited).is_ok() {
                            // The newest connection is the one answered.
                            *offered = Some(stream);
                        }
                    }
                }
                if next.is_none() && std::time::Instant::now() >= *until {
                    eprintln!(
                        "hookvisor reaper: no supervisor claimed plugin `{}` (pid {plugin})                          within {} ms; ending it",
                        keep.name, keep.grace_ms
                    );
                    kill_subtree();
                    return 1;
                }
            }
            Owner::Claimed(stream) => {
                if ready.get(1) == Some(&true) && reattach::read_claim(stream) == Some(false) {
                    // That supervisor is gone too: wait for the next one.
                    match wait() {
                        Some(waiting) => next = Some(waiting),
                        None => {
                            kill_subtree();
                            return 1;
                        }
                    }
                }
            }
        }
        if let Some(next) = next {
            owner = next;
        }
    }
}

/// Reaps every child that has exited (the plugin, or an orphan re-parented here); returns the
/// plugin's status once it is among them.
fn reap_exited(plugin: Pid) -> Option<WaitStatus> {
    let mut found = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(status) if status.pid() == Some(plugin) => found = Some(status),
            Ok(_) => {}
        }
    }
}

/// Kills every descendant with SIGKILL and reaps them, round after round (a process killed
/// mid-fork may leave a child that is re-parented here), until this process has no child.
fn kill_subtree() {
    loop {
        for pid in super::descendants(Pid::this(), MAX_DESCENDANTS) {
            let _ = kill(pid, Signal::SIGKILL);
        }
        match waitpid(None, None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return, // ECHILD: nothing left.
        }
    }
}

/// Exits as the plugin did: with its code, or killed by its signal (without a core dump of
/// the reaper's own).
fn exit_like(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => {
            let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
            let _ = SigSet::from(signal).thread_unblock();
            let _ = kill(Pid::this(), signal);
            128 + signal as i32
        }
        _ => 1,
    }
}
