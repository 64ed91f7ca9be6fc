//! The hand-over of an upgrade (`hookvisor upgrade`, `Admin/Upgrade`, SIGUSR2): the installed
//! `hookvisor` binary replaces the running one **in place**, and every plugin keeps its process.
//!
//! Why in place (`execve` in the same process) and not a second process given the sockets over
//! `SCM_RIGHTS`: every plugin runs behind a reaper whose parent-death signal and child-subreaper
//! role tie it to *this* process (spawner.rs). A second process could take the sockets but not
//! the reapers: they would see their parent go and take the plugins with them, or need a
//! lifetime of their own that a hostile plugin could outlive. With `execve` the pid stays (so
//! systemd needs no `MAINPID=`), `PR_SET_CHILD_SUBREAPER` stays, and the reapers stay this
//! process's children: `execve` ends every other thread, the spawner thread among them, and a
//! reaper then gets its parent-death signal, finds its parent's pid unchanged (its parent is now
//! the thread that called `execve`, which takes the process's pid) and carries on (reaper.rs).
//! The new image waits for each adopted reaper itself ([`Spawner::wait_adopted`]), so plugin
//! exits are still reported with their status.
//!
//! What crosses the `execve`: the host listener (connections queue in its backlog meanwhile),
//! the runtime directory's lock, the metrics listener, each ready plugin's output pipes, and one
//! sealed memfd holding the versioned [`State`] (pids with their start times, sockets, records).
//! Each is close-on-exec until the moment of `execve` and closed again if it fails; none is ever
//! in the runtime directory or on disk, and none reaches a plugin (the spawner closes every
//! inherited descriptor before a reaper runs).
//!
//! Before anything is handed over, the new binary is run once as a child ([`check`]): it must
//! load the configuration and say it reads this hand-over's [`VERSION`]. A binary that fails or
//! answers anything else is refused, and the running image serves on. The same binary is
//! compared (device, inode, size, mtime) just before `execve`.
//!
//! [`Spawner::wait_adopted`]: crate::plugin::spawner::Spawner::wait_adopted

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{FcntlArg, FdFlag, SealFlag, fcntl};
use nix::sys::signal::{SigSet, Signal};

use crate::plugin::process::{Adoptee, Handed};
use crate::plugin::spawner;

/// The hand-over's format. A binary reads only the versions it lists in its check's answer;
/// an upgrade to one that does not read this one is refused.
pub const VERSION: u32 = 1;
/// `hookvisor __hookvisor-upgrade-check VERSION ACTIVATED_PATH|- serve ARGS…`: the new binary,
/// run once as a child before the hand-over. Prints [`CHECK_REPLY`] and the versions it reads.
pub const CHECK_ARG: &str = "__hookvisor-upgrade-check";
/// `hookvisor __hookvisor-resume MEMFD serve ARGS…`: the new image after `execve`.
pub const RESUME_ARG: &str = "__hookvisor-resume";
/// The first word of the check's answer: `hookvisor-handover 1`.
pub const CHECK_REPLY: &str = "hookvisor-handover";
/// The largest state read (a plugin's entry is well under 1 KiB).
const MAX_STATE_BYTES: u64 = 4 << 20;
/// How long the new binary's check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// What the memfd holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct State {
    version: u32,
    /// The upgrade's id, for `Admin/Upgrade`'s `status_of`.
    id: u64,
    host_fd: i32,
    /// The host socket's path, and whether systemd passed it in (then it is not ours to remove).
    host_path: PathBuf,
    activated: bool,
    lock_fd: i32,
    metrics_fd: Option<i32>,
    /// The next plugin instance number.
    next_instance: u32,
    plugins: Vec<Handed>,
    /// When the old image stopped accepting, and when it called `execve` (microseconds since
    /// the epoch): where an upgrade's pause goes, in the new image's log.
    stopped_us: u64,
    exec_us: u64,
}

/// What the new image takes over.
#[derive(Debug)]
pub struct Resumed {
    /// The upgrade's id.
    pub id: u64,
    /// The host listener.
    pub host: std::os::unix::net::UnixListener,
    /// Its path.
    pub host_path: PathBuf,
    /// Whether systemd passed it in (socket activation).
    pub activated: bool,
    /// The runtime directory's lock (the open file description that holds it).
    pub lock: File,
    /// The metrics listener, when there was one.
    pub metrics: Option<std::net::TcpListener>,
    /// The next plugin instance number.
    pub next_instance: u32,
    /// The ready plugins handed over.
    pub plugins: Vec<Adoptee>,
    /// The command line to parse: the program, then `serve …` as it was started.
    pub args: Vec<OsString>,
    /// When the old image stopped accepting, and when it called `execve`.
    pub stopped: std::time::SystemTime,
    /// When the old image called `execve`.
    pub exec: std::time::SystemTime,
}

/// The resumed image's state when this process was started by an upgrade's `execve` (its first
/// argument is [`RESUME_ARG`]), `None` otherwise. Run first thing in `main`, before any thread
/// or file: it takes the inherited descriptors. An unreadable hand-over is an error (the
/// plugins, this process's children, then end with it: fail closed).
pub fn resume_from_args() -> Option<Result<Resumed, String>> {
    let mut args = std::env::args_os();
    let program = args.next()?;
    if args.next().as_deref() != Some(OsStr::new(RESUME_ARG)) {
        return None;
    }
    // As soon as possible: no process of another uid may read this one through /proc.
    let _ = nix::sys::prctl::set_dumpable(false);
    let memfd = args.next();
    let rest: Vec<OsString> = std::iter::once(program).chain(args).collect();
    Some(read_state(memfd.as_deref()).and_then(|state| take(state, rest)))
}

fn read_state(memfd: Option<&OsStr>) -> Result<State, String> {
    let fd = memfd
        .and_then(|n| std::str::from_utf8(n.as_bytes()).ok()?.parse::<i32>().ok())
        .ok_or("the hand-over descriptor is missing")?;
    let fd = spawner::take_inherited(fd).map_err(|e| format!("the hand-over: {e}"))?;
    let seals = fcntl(&fd, FcntlArg::F_GET_SEALS)
        .map_err(|e| format!("the hand-over is not a sealed memfd: {e}"))?;
    if !SealFlag::from_bits_truncate(seals).contains(SealFlag::F_SEAL_WRITE) {
        return Err("the hand-over memfd is not sealed against writes".into());
    }
    let mut text = Vec::new();
    File::from(fd)
        .take(MAX_STATE_BYTES)
        .read_to_end(&mut text)
        .map_err(|e| format!("reading the hand-over: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("the hand-over is not JSON: {e}"))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        other => {
            return Err(format!(
                "the hand-over is version {}, and this binary reads version {VERSION} only",
                other.map_or_else(|| "(none)".to_owned(), |v| v.to_string())
            ));
        }
    }
    serde_json::from_value(value).map_err(|e| format!("the hand-over: {e}"))
}

/// Takes each descriptor the state names, once.
fn take(state: State, args: Vec<OsString>) -> Result<Resumed, String> {
    let mut numbers: Vec<i32> = vec![state.host_fd, state.lock_fd];
    numbers.extend(state.metrics_fd);
    numbers.extend(
        state
            .plugins
            .iter()
            .flat_map(|p| p.output_fds.iter().flatten()),
    );
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != numbers.len() {
        return Err("the hand-over names a descriptor twice".into());
    }
    let fd = |n: i32, what: &str| {
        spawner::take_inherited(n).map_err(|e| format!("the hand-over's {what}: {e}"))
    };
    let host = std::os::unix::net::UnixListener::from(fd(state.host_fd, "host socket")?);
    let lock = File::from(fd(state.lock_fd, "runtime directory lock")?);
    let metrics = match state.metrics_fd {
        Some(n) => Some(std::net::TcpListener::from(fd(n, "metrics listener")?)),
        None => None,
    };
    let mut plugins = Vec::with_capacity(state.plugins.len());
    for handed in state.plugins {
        let [out, err] = handed.output_fds;
        let out = out.map(|n| fd(n, "plugin output")).transpose()?;
        let err = err.map(|n| fd(n, "plugin output")).transpose()?;
        plugins.push(Adoptee {
            handed,
            output_fds: [out, err],
            claim: None,
        });
    }
    Ok(Resumed {
        id: state.id,
        host,
        host_path: state.host_path,
        activated: state.activated,
        lock,
        metrics,
        next_instance: state.next_instance,
        plugins,
        args,
        stopped: from_micros(state.stopped_us),
        exec: from_micros(state.exec_us),
    })
}

/// The new binary's check: `hookvisor __hookvisor-upgrade-check …` (see [`CHECK_ARG`]).
#[derive(Debug)]
pub struct CheckArgs {
    /// The hand-over version the running supervisor writes.
    pub version: String,
    /// The host socket systemd passed in, if it did.
    pub activated: Option<PathBuf>,
    /// The command line to check: the program, then `serve …`.
    pub args: Vec<OsString>,
}

/// The check's arguments when this process is an upgrade's check, `None` otherwise.
pub fn check_args() -> Option<CheckArgs> {
    let mut args = std::env::args_os();
    let program = args.next()?;
    if args.next().as_deref() != Some(OsStr::new(CHECK_ARG)) {
        return None;
    }
    let version = args.next()?.to_string_lossy().into_owned();
    let activated = args.next().filter(|a| a != "-").map(PathBuf::from);
    Some(CheckArgs {
        version,
        activated,
        args: std::iter::once(program).chain(args).collect(),
    })
}

/// Who a binary file is: it must be the same at `execve` as at its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinaryId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

/// The [`BinaryId`] of `path`.
pub fn binary_id(path: &Path) -> io::Result<BinaryId> {
    let meta = std::fs::metadata(path)?;
    Ok(BinaryId {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
    })
}

/// Runs `binary` as the check (see [`CHECK_ARG`]) with the command line `serve_args` (`serve
/// …`, without the program): it must exit 0 and list [`VERSION`]. Says why not, in a sentence
/// that names the binary.
pub async fn check(
    spawner: &spawner::Spawner,
    binary: &Path,
    activated: Option<&Path>,
    serve_args: &[OsString],
) -> Result<BinaryId, String> {
    let name = binary.display();
    let before = binary_id(binary).map_err(|e| format!("the new binary {name}: {e}"))?;
    let mut command = tokio::process::Command::new(binary);
    command
        .arg(CHECK_ARG)
        .arg(VERSION.to_string())
        .arg(activated.map_or_else(|| OsString::from("-"), |p| p.as_os_str().to_owned()))
        .args(serve_args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(CHECK_TIMEOUT, spawner.output_of(&mut command)).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("the new binary {name} cannot be run: {e}")),
        Err(_) => {
            return Err(format!(
                "the new binary {name} did not finish its check within {} s",
                CHECK_TIMEOUT.as_secs()
            ));
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail = crate::decide::limits::cap_text(stderr.trim(), 1024).into_owned();
    if !output.status.success() {
        return Err(format!(
            "the new binary {name} failed its check ({}){}",
            output.status,
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            }
        ));
    }
    let versions: Option<Vec<&str>> = stdout.lines().find_map(|line| {
        let rest = line.strip_prefix(CHECK_REPLY)?.trim();
        Some(rest.split(',').map(str::trim).collect())
    });
    let Some(versions) = versions else {
        return Err(format!(
            "the new binary {name} did not answer the hand-over check (a hookvisor without \
             upgrades, or not hookvisor at all)"
        ));
    };
    if !versions.contains(&VERSION.to_string().as_str()) {
        return Err(format!(
            "the new binary {name} reads hand-over version(s) {}, and this supervisor writes \
             version {VERSION}: upgrade through a release that reads both, or restart",
            crate::decide::limits::cap_text(&versions.join(", "), 128)
        ));
    }
    let after = binary_id(binary).map_err(|e| format!("the new binary {name}: {e}"))?;
    if after != before {
        return Err(format!(
            "the new binary {name} changed while it was checked"
        ));
    }
    Ok(before)
}

/// Everything ready to cross the `execve`: the sealed memfd and the descriptors it names, each
/// a fresh copy, close-on-exec until [`exec`] clears it. Dropping it closes them all.
#[derive(Debug)]
pub struct Outgoing {
    memfd: OwnedFd,
    inherited: Vec<OwnedFd>,
}

/// What the running image hands over.
pub struct Handover<'a> {
    /// The upgrade's id.
    pub id: u64,
    /// The host listener.
    pub host: BorrowedFd<'a>,
    /// Its path, and whether systemd passed it in.
    pub host_path: &'a Path,
    /// Whether systemd passed it in.
    pub activated: bool,
    /// The runtime directory's lock.
    pub lock: BorrowedFd<'a>,
    /// The metrics listener.
    pub metrics: Option<BorrowedFd<'a>>,
    /// The next plugin instance number.
    pub next_instance: u32,
    /// Each ready plugin with fresh copies of its output descriptors.
    pub plugins: Vec<(Handed, [Option<OwnedFd>; 2])>,
    /// When the server stopped accepting.
    pub stopped: std::time::SystemTime,
}

/// Writes the state into a sealed memfd and gathers the descriptors it names.
pub fn prepare(handover: Handover<'_>) -> io::Result<Outgoing> {
    let mut inherited = Vec::new();
    let mut keep = |fd: OwnedFd| {
        let n = fd.as_raw_fd();
        inherited.push(fd);
        n
    };
    let host_fd = keep(handover.host.try_clone_to_owned()?);
    let lock_fd = keep(handover.lock.try_clone_to_owned()?);
    let metrics_fd = match handover.metrics {
        Some(fd) => Some(keep(fd.try_clone_to_owned()?)),
        None => None,
    };
    let mut plugins = Vec::with_capacity(handover.plugins.len());
    for (mut handed, [out, err]) in handover.plugins {
        handed.output_fds = [out.map(&mut keep), err.map(&mut keep)];
        plugins.push(handed);
    }
    let state = State {
        version: VERSION,
        id: handover.id,
        host_fd,
        host_path: handover.host_path.to_path_buf(),
        activated: handover.activated,
        lock_fd,
        metrics_fd,
        next_instance: handover.next_instance,
        plugins,
        stopped_us: micros(handover.stopped),
        exec_us: micros(std::time::SystemTime::now()),
    };
    let text = serde_json::to_vec(&state).map_err(io::Error::other)?;
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let memfd = memfd_create(
        c"hookvisor-handover",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut file = File::from(memfd);
    file.write_all(&text)?;
    file.rewind()?;
    let seals = SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_SEAL;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(Outgoing {
        memfd: OwnedFd::from(file),
        inherited,
    })
}

/// Replaces this process's image with `binary` (checked as `id`), handing over `outgoing`;
/// `serve_args` is the command line after the program (`serve …`). Returns only when that
/// failed, with this process intact (every thread still runs) and the copies closed.
pub fn exec(outgoing: Outgoing, binary: &Path, id: BinaryId, serve_args: &[OsString]) -> String {
    let name = binary.display();
    match binary_id(binary) {
        Ok(now) if now == id => {}
        Ok(_) => return format!("the new binary {name} changed after its check; not upgraded"),
        Err(e) => return format!("the new binary {name}: {e}; not upgraded"),
    }
    let inheritable = |fd: BorrowedFd<'_>| fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()));
    let all = std::iter::once(&outgoing.memfd).chain(&outgoing.inherited);
    for fd in all {
        if let Err(e) = inheritable(fd.as_fd()) {
            return format!("cannot pass a descriptor to the new binary: {e}; not upgraded");
        }
    }
    let Ok(path) = std::ffi::CString::new(binary.as_os_str().as_bytes()) else {
        return format!("the new binary's path {name} holds a NUL byte; not upgraded");
    };
    let mut argv: Vec<std::ffi::CString> = vec![
        path.clone(),
        c_arg(OsStr::new(RESUME_ARG)),
        c_arg(OsStr::new(&outgoing.memfd.as_raw_fd().to_string())),
    ];
    argv.extend(serve_args.iter().map(|a| c_arg(a)));
    // Until the new image has its handlers, these signals would end it (their default action):
    // they wait, blocked, instead (the mask crosses execve; the new image unblocks them).
    let held = held_signals();
    let _ = held.thread_block();
    tracing::info!(binary = %name, "handing over: executing the new binary in place");
    let failed = nix::unistd::execv(&path, &argv);
    let _ = held.thread_unblock();
    // Closed with `outgoing`: the copies never outlive a failed hand-over.
    drop(outgoing);
    match failed {
        Err(e) => format!("executing the new binary {name} failed: {e}; not upgraded"),
        Ok(never) => match never {},
    }
}

/// The signals held across the `execve`: [`unhold_signals`] in the new image lets them in.
fn held_signals() -> SigSet {
    [
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGTERM,
        Signal::SIGINT,
    ]
    .into_iter()
    .collect()
}

/// Unblocks, on the calling thread, the signals the previous image held across the `execve`,
/// once their handlers are installed (a signal sent during the hand-over is delivered now).
pub fn unhold_signals() {
    let _ = held_signals().thread_unblock();
}

fn c_arg(arg: &OsStr) -> std::ffi::CString {
    // Arguments came from this process's own command line (no NUL can be in one).
    std::ffi::CString::new(arg.as_bytes()).unwrap_or_default()
}

fn micros(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn from_micros(us: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_micros(us)
}

/// A fresh upgrade id: non-zero, and unlike the last ones.
pub fn new_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}
