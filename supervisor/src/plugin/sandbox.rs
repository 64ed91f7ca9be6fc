//! The plugin sandbox: what each plugin may do, decided from its configuration and from what
//! this machine can enforce, and the places on disk that go with it. The reaper carries the
//! decision out between fork and exec ([`crate::plugin::spawner::confine`]).
//!
//! Per sandboxed plugin (`[plugin.sandbox] enabled = true`, the default):
//! - **its own uid and gid** (when hookvisor runs as root, or holds the capabilities [`Mechanisms`] names),
//!   with no supplementary groups: from `plugin_uids` (`user = "auto"`) or a named user. The
//!   owner of its state directory is the record of its uid, so the uid is the same after a
//!   restart, a reload or an upgrade, and a removed plugin's uid stays taken as long as its
//!   state directory exists: no other plugin is ever given it;
//! - **a state directory**, `STATE_DIR/plugins/NAME` (0700, its own), given as
//!   `HOOKVISOR_PLUGIN_STATE_DIR`, `HOME` and `TMPDIR`;
//! - **a socket directory**, `RUNTIME_DIR/NAME` (0770, hookvisor's with the plugin's group), that
//!   only it and the supervisor can enter; the runtime directory is 0711 (traversable, not
//!   listable);
//! - **Landlock**: read and execute on the system's directories, its `command`, the files among
//!   its `args` and its `read` list; every right on its state and socket directories and its
//!   `write` list; no TCP unless `network = true` (connect to `connect_ports` only); no signal
//!   and no abstract Unix socket outside its own domain;
//! - **seccomp**: no socket family but Unix (and TCP, which Landlock rules, when `connect_ports`
//!   names ports) unless `network = true`; no new namespaces, io_uring, bpf or keyrings;
//! - **limits**: `RLIMIT_NPROC` (`max_processes`, with its own uid only: the count is per uid)
//!   and `RLIMIT_DATA` (`memory_max_mib`), and `no_new_privs`.
//!
//! With `sandbox = "best-effort"` a mechanism the machine lacks is reported once per plugin
//! start; with `"required"` it is a start error.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::files::config::{Config, PluginConfig, SandboxMode, SandboxUser};
use crate::plugin::spawner::confine::{self, Confinement, Landlock, SocketRule};

/// Directories every sandboxed plugin may read and execute from: the system's programs,
/// libraries and configuration, and the pseudo-files language runtimes read at start. Paths
/// missing on this machine are skipped.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/bin",
    "/sbin",
    "/etc",
    "/proc",
    "/dev/zero",
    "/dev/urandom",
    "/dev/random",
    "/dev/full",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
];
/// Files every sandboxed plugin may write.
const SYSTEM_WRITE: &[&str] = &["/dev/null"];
/// The directory below `state_dir` holding one directory per plugin.
const PLUGINS_DIR: &str = "plugins";

/// What this machine lets hookvisor enforce, found once. (Uids of their own for plugins need
/// root, or CAP_SETUID, CAP_SETGID, CAP_CHOWN, CAP_DAC_OVERRIDE and CAP_KILL.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mechanisms {
    /// hookvisor can run plugins under other uids (root, or the five capabilities above).
    pub switch_uids: bool,
    /// The kernel's Landlock ABI, 0 when it has none.
    pub landlock_abi: i32,
    /// The kernel filters system calls with seccomp.
    pub seccomp: bool,
}

impl Mechanisms {
    /// This process's mechanisms (detected on first use).
    pub fn current() -> Mechanisms {
        static CURRENT: OnceLock<Mechanisms> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let caps = status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
                .unwrap_or(0);
            // Switching uids needs SETUID and SETGID; giving each plugin its directories,
            // CHOWN; reaching its socket, DAC_OVERRIDE; stopping it, KILL.
            const NEEDED: u64 = (1 << 0) | (1 << 1) | (1 << 5) | (1 << 6) | (1 << 7);
            Mechanisms {
                switch_uids: nix::unistd::geteuid().is_root() || caps & NEEDED == NEEDED,
                landlock_abi: confine::landlock_abi(),
                seccomp: status.lines().any(|line| line.starts_with("Seccomp:")),
            }
        })
    }
}

/// What one plugin's sandbox enforces, for the log, `hookvisor status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Whether the plugin is sandboxed at all (`enabled`).
    pub enabled: bool,
    /// The uid it runs under, when it has one of its own.
    pub uid: Option<u32>,
    /// Each mechanism in force, e.g. `landlock`, `seccomp`, `max_processes 64`.
    pub enforced: Vec<String>,
    /// Each mechanism asked for that this machine cannot enforce, with why.
    pub missing: Vec<String>,
    /// Each mechanism by its metric name (`uid`, `landlock`, `landlock_tcp`,
    /// `landlock_scopes`, `seccomp`, `no_new_privs`, `max_processes`, `memory_max`, `sha256`)
    /// and whether it is enforced.
    pub mechanisms: Vec<(&'static str, bool)>,
}

/// Everything one plugin instance is started with.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Its state directory (`HOOKVISOR_PLUGIN_STATE_DIR`, `HOME`, `TMPDIR`).
    pub state_dir: PathBuf,
    /// The directory its sockets go in.
    pub socket_dir: PathBuf,
    /// The uid its socket's listener must have (peer check), when it has its own.
    pub uid: Option<u32>,
    /// What the reaper applies.
    pub confinement: Confinement,
    /// What is enforced.
    pub report: Report,
}

/// Why a plugin's sandbox cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}`: sandbox: {problem}")]
pub struct SandboxError {
    /// The plugin.
    pub plugin: String,
    /// What is wrong and what to do.
    pub problem: String,
}

/// A plugin's directories and ids, once they exist.
struct Placed<'a> {
    state: &'a Path,
    socket: &'a Path,
    ids: Option<(u32, u32)>,
}

/// Serializes uid allocation within this process (a file lock covers other processes).
static ALLOCATION: Mutex<()> = Mutex::new(());

/// The sandbox settings of one configuration.
#[derive(Debug, Clone)]
pub struct Sandboxes {
    mode: SandboxMode,
    uids: (u32, u32),
    state_dir: PathBuf,
    runtime_dir: PathBuf,
    /// The plugins' working directory (the configuration's), which relative `args` name
    /// files in.
    workdir: PathBuf,
    mechanisms: Mechanisms,
}

impl Sandboxes {
    /// The sandbox settings of `config` on this machine.
    pub fn new(config: &Config) -> Sandboxes {
        Sandboxes::of(&config.supervisor, &config.dir)
    }

    /// The sandbox settings of `supervisor` on this machine, for plugins whose working
    /// directory is `workdir`.
    pub fn of(supervisor: &crate::files::config::SupervisorConfig, workdir: &Path) -> Sandboxes {
        Sandboxes {
            mode: supervisor.sandbox,
            uids: supervisor.plugin_uids,
            state_dir: supervisor.state_dir.clone(),
            runtime_dir: supervisor.runtime_dir.clone(),
            workdir: workdir.to_path_buf(),
            mechanisms: Mechanisms::current(),
        }
    }

    /// What the plugin's sandbox would enforce here, without touching the disk.
    pub fn report(&self, plugin: &PluginConfig) -> Report {
        self.plan(plugin, None).1
    }

    /// Creates (or checks) the plugin's state and socket directories, takes its uid, and
    /// decides its confinement. With `sandbox = "required"`, a missing mechanism is an error.
    pub fn place(&self, plugin: &PluginConfig) -> Result<Placement, SandboxError> {
        let error = |problem: String| SandboxError {
            plugin: plugin.name.clone(),
            problem,
        };
        let (_, report) = self.plan(plugin, None);
        if self.mode == SandboxMode::Required && !report.missing.is_empty() {
            return Err(error(format!(
                "sandbox = \"required\", but this machine cannot enforce: {}",
                report.missing.join("; ")
            )));
        }
        let ids = if plugin.sandbox.enabled && self.mechanisms.switch_uids {
            Some(self.ids(plugin).map_err(error)?)
        } else {
            None
        };
        let state_dir = self.state_dir_of(&plugin.name);
        prepare_state_dir(&state_dir, ids).map_err(error)?;
        let socket_dir = self.runtime_dir.join(&plugin.name);
        prepare_socket_dir(&socket_dir, ids.map(|(_, gid)| gid)).map_err(error)?;
        let placed = Placed {
            state: &state_dir,
            socket: &socket_dir,
            ids,
        };
        let (confinement, report) = self.plan(plugin, Some(placed));
        Ok(Placement {
            state_dir,
            socket_dir,
            uid: ids.map(|(uid, _)| uid),
            confinement,
            report,
        })
    }

    /// `STATE_DIR/plugins/NAME`.
    pub fn state_dir_of(&self, name: &str) -> PathBuf {
        self.state_dir.join(PLUGINS_DIR).join(name)
    }

    /// The confinement and its report; `placed` gives the directories and ids once they exist.
    fn plan(&self, plugin: &PluginConfig, placed: Option<Placed<'_>>) -> (Confinement, Report) {
        let sandbox = &plugin.sandbox;
        let mechanisms = self.mechanisms;
        let sha256 = plugin
            .sha256
            .map(|d| d.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let mut report = Report {
            enabled: sandbox.enabled,
            ..Report::default()
        };
        if sha256.is_some() {
            report.enforced.push("sha256".to_owned());
            report.mechanisms.push(("sha256", true));
        }
        if !sandbox.enabled {
            let confinement = Confinement {
                sha256,
                ..Confinement::default()
            };
            return (confinement, report);
        }
        let ids = placed.as_ref().and_then(|p| p.ids);
        let abi = mechanisms.landlock_abi;
        report.uid = ids.map(|(uid, _)| uid);
        report.mechanisms.push(("uid", mechanisms.switch_uids));
        report.mechanisms.push(("no_new_privs", true));
        report.mechanisms.push(("landlock", abi >= 1));
        report.mechanisms.push((
            "landlock_tcp",
            sandbox.network || sandbox.connect_ports.is_empty() || abi >= 4,
        ));
        report.mechanisms.push(("landlock_scopes", abi >= 6));
        report.mechanisms.push(("seccomp", mechanisms.seccomp));
        if sandbox.max_processes > 0 {
            report
                .mechanisms
                .push(("max_processes", mechanisms.switch_uids));
        }
        if sandbox.memory_max_mib > 0 {
            report.mechanisms.push(("memory_max", true));
        }
        if mechanisms.switch_uids {
            report.enforced.push(match (&sandbox.user, ids) {
                (SandboxUser::Named { name, .. }, _) => format!("user {name}"),
                (SandboxUser::Auto, Some((uid, _))) => format!("uid {uid}"),
                (SandboxUser::Auto, None) => "own uid".to_owned(),
            });
        } else {
            report.missing.push(
                "an own uid (hookvisor runs as neither root nor with CAP_SETUID, CAP_SETGID, \
                 CAP_CHOWN, CAP_DAC_OVERRIDE and CAP_KILL)"
                    .to_owned(),
            );
        }
        report.enforced.push("no_new_privs".to_owned());

        let landlock = if abi >= 1 {
            report.enforced.push(format!("landlock (abi {abi})"));
            if abi < 2 {
                report
                    .missing
                    .push("renames across directories (Landlock ABI < 2)".to_owned());
            }
            if !sandbox.network && !sandbox.connect_ports.is_empty() && abi < 4 {
                report.missing.push(
                    "connect_ports (Landlock ABI < 4 has no TCP rules): every TCP socket is \
                     refused instead"
                        .to_owned(),
                );
            }
            if abi < 6 {
                report
                    .missing
                    .push("signal and abstract-socket scoping (Landlock ABI < 6)".to_owned());
            }
            let (read, write) = match &placed {
                Some(placed) => self.paths(plugin, placed.state, placed.socket),
                None => (Vec::new(), Vec::new()),
            };
            Some(Landlock {
                read,
                write,
                connect_ports: (!sandbox.network).then(|| sandbox.connect_ports.clone()),
            })
        } else {
            report.missing.push(
                "Landlock (the kernel has none): the plugin can read what its uid can read"
                    .to_owned(),
            );
            None
        };
        // TCP sockets only for `connect_ports`, and only where Landlock rules their connect and
        // bind: a TCP socket can also listen without a bind (the kernel binds it to a free
        // port), which no Landlock ABI up to 7 sees.
        let rule = if sandbox.network {
            SocketRule::Open
        } else if !sandbox.connect_ports.is_empty() && abi >= 4 {
            SocketRule::TcpOnly
        } else {
            SocketRule::UnixOnly
        };
        let seccomp = if mechanisms.seccomp {
            report.enforced.push(
                match rule {
                    SocketRule::Open => "seccomp",
                    SocketRule::TcpOnly => "seccomp (unix and tcp sockets only)",
                    SocketRule::UnixOnly => "seccomp (unix sockets only)",
                }
                .to_owned(),
            );
            Some(rule)
        } else {
            report
                .missing
                .push("seccomp (the kernel has none)".to_owned());
            None
        };
        let max_processes = match sandbox.max_processes {
            0 => None,
            n if mechanisms.switch_uids => {
                report.enforced.push(format!("max_processes {n}"));
                Some(u64::from(n))
            }
            _ => {
                report.missing.push(
                    "max_processes (RLIMIT_NPROC counts per uid: needs an own uid)".to_owned(),
                );
                None
            }
        };
        let memory_max_bytes = match sandbox.memory_max_mib {
            0 => None,
            mib => {
                report.enforced.push(format!("memory_max_mib {mib}"));
                Some(u64::from(mib) * 1024 * 1024)
            }
        };
        let confinement = Confinement {
            ids,
            landlock,
            seccomp,
            max_processes,
            memory_max_bytes,
            no_new_privs: true,
            sha256,
            required: self.mode == SandboxMode::Required,
        };
        (confinement, report)
    }

    /// The read and write lists of a plugin's Landlock rules.
    fn paths(
        &self,
        plugin: &PluginConfig,
        state: &Path,
        socket: &Path,
    ) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let mut read: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
        read.push(plugin.command.clone());
        // An argument that names an existing file (relative ones from the working directory,
        // the configuration's) is the plugin's own: a script, its data. Directories are not
        // taken from `args` (an argument "/" would open everything): name them in `read`.
        for arg in &plugin.args {
            let path = Path::new(arg);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                self.workdir.join(path)
            };
            if !arg.is_empty() && path.is_file() {
                read.push(path);
            }
        }
        read.extend(plugin.sandbox.read.iter().cloned());
        let mut write: Vec<PathBuf> = SYSTEM_WRITE.iter().map(PathBuf::from).collect();
        write.push(state.to_path_buf());
        write.push(socket.to_path_buf());
        write.extend(plugin.sandbox.write.iter().cloned());
        (read, write)
    }

    /// The plugin's uid and gid: a named user's, or the owner of its existing state directory,
    /// or the lowest free uid of the range (gid the same number).
    fn ids(&self, plugin: &PluginConfig) -> Result<(u32, u32), String> {
        if let SandboxUser::Named { uid, gid, .. } = plugin.sandbox.user {
            return Ok((uid, gid));
        }
        let _held = ALLOCATION.lock().unwrap_or_else(|e| e.into_inner());
        let plugins = self.state_dir.join(PLUGINS_DIR);
        prepare_shared_dir(&self.state_dir, "state_dir")?;
        prepare_shared_dir(&plugins, "state directory")?;
        let _lock = lock_file(&self.state_dir.join("uids.lock"))?;
        let mine = plugins.join(&plugin.name);
        let ours = nix::unistd::geteuid().as_raw();
        if let Some(meta) = lstat(&mine)? {
            let uid = meta.uid();
            if uid != 0 && uid != ours && meta.is_dir() && !meta.file_type().is_symlink() {
                return Ok((uid, meta.gid()));
            }
        }
        let taken: std::collections::HashSet<u32> = std::fs::read_dir(&plugins)
            .map_err(|e| format!("cannot list {}: {e}", plugins.display()))?
            .flatten()
            .filter_map(|entry| entry.metadata().ok())
            .map(|meta| meta.uid())
            .collect();
        let (first, last) = self.uids;
        let uid = (first..=last)
            .find(|uid| !taken.contains(uid) && !known_id(*uid))
            .ok_or_else(|| {
                format!(
                    "every uid of plugin_uids {first}-{last} is taken (by another plugin's \
                     state directory under {}, or by a user or group of this system); widen \
                     the range",
                    plugins.display()
                )
            })?;
        // The record of the uid, made before the lock is released: a plugin placed next sees
        // it taken.
        prepare_state_dir(&mine, Some((uid, uid)))?;
        Ok((uid, uid))
    }
}

/// Whether the system knows `id` as a user or a group.
fn known_id(id: u32) -> bool {
    matches!(
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(id)),
        Ok(Some(_))
    ) || matches!(
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(id)),
        Ok(Some(_))
    )
}

fn lstat(path: &Path) -> Result<Option<Metadata>, String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot inspect {}: {e}", path.display())),
    }
}

fn lock_file(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cannot lock {}: {e}", path.display()))
}

/// A directory of hookvisor's that plugin uids traverse but cannot list: created 0711 (with
/// its parents), or an existing one owned by hookvisor's uid (or root) that no one else can
/// write and that others can traverse.
fn prepare_shared_dir(dir: &Path, what: &str) -> Result<(), String> {
    let created = match std::fs::DirBuilder::new()
        .recursive(false)
        .mode(0o711)
        .create(dir)
    {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir.parent().unwrap_or(Path::new("/")))
                .map_err(|e| format!("{what} {}: cannot create it: {e}", dir.display()))?;
            return prepare_shared_dir(dir, what);
        }
        Err(e) => return Err(format!("{what} {}: cannot create it: {e}", dir.display())),
    };
    if created {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| format!("{what} {}: cannot set its mode: {e}", dir.display()))?;
    }
    let meta = lstat(dir)?.ok_or_else(|| format!("{what} {} vanished", dir.display()))?;
    let ours = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.file_type().is_symlink() {
        return Err(format!("{what} {} is not a directory", dir.display()));
    }
    if meta.uid() != ours && meta.uid() != 0 {
        return Err(format!(
            "{what} {} is owned by uid {}, not by hookvisor's uid {ours} or root",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{what} {} has mode {:04o}: others could rename plugins' directories; chmod 0711 it",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The plugin's state directory: owned by its uid (0700), or by hookvisor's when it has none.
fn prepare_state_dir(dir: &Path, ids: Option<(u32, u32)>) -> Result<(), String> {
    if let Some(parent) = dir.parent() {
        if let Some(root) = parent.parent() {
            prepare_shared_dir(root, "state_dir")?;
        }
        prepare_shared_dir(parent, "state directory")?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                format!(
                    "state directory {}: cannot set its mode: {e}",
                    dir.display()
                )
            })?;
            if let Some((uid, gid)) = ids {
                std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).map_err(|e| {
                    format!(
                        "state directory {}: cannot give it to uid {uid}: {e}",
                        dir.display()
                    )
                })?;
            }
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "state directory {}: cannot create it: {e}",
                dir.display()
            ));
        }
    }
    let meta = lstat(dir)?.ok_or_else(|| format!("state directory {} vanished", dir.display()))?;
    let owner = ids.map_or_else(|| nix::unistd::geteuid().as_raw(), |(uid, _)| uid);
    if !meta.is_dir() || meta.file_type().is_symlink() {
        return Err(format!(
            "state directory {} is not a directory",
            dir.display()
        ));
    }
    // Root (a plugin with the sandbox off, run as root) may use any; anyone else its own.
    let usable = meta.uid() == owner || (ids.is_none() && owner == 0);
    if !usable {
        return Err(format!(
            "state directory {} is owned by uid {}, but the plugin runs as uid {owner}: move it \
             aside (its owner is the record of the plugin's uid) or chown it",
            dir.display(),
            meta.uid()
        ));
    }
    Ok(())
}

/// The plugin's socket directory `RUNTIME/NAME`: hookvisor's, with the plugin's group and mode
/// 0770 when the plugin has a gid of its own (0700 otherwise). Only the plugin and the supervisor
/// can enter it, and the plugin cannot change its mode or owner.
fn prepare_socket_dir(dir: &Path, gid: Option<u32>) -> Result<(), String> {
    let what = || format!("socket directory {}", dir.display());
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("{}: cannot create it: {e}", what())),
    }
    let meta = lstat(dir)?.ok_or_else(|| format!("{} vanished", what()))?;
    let ours = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.file_type().is_symlink() || meta.uid() != ours {
        return Err(format!(
            "{} is not a directory of hookvisor's own (the runtime directory is hookvisor's: \
             nothing else should have put it there)",
            what()
        ));
    }
    let mode = if gid.is_some() { 0o770 } else { 0o700 };
    std::os::unix::fs::lchown(
        dir,
        None,
        Some(gid.unwrap_or_else(|| nix::unistd::getegid().as_raw())),
    )
    .map_err(|e| format!("{}: cannot set its group: {e}", what()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: cannot set its mode: {e}", what()))?;
    Ok(())
}

/// Checks what `serve` would refuse about the sandbox before starting anything: with
/// `sandbox = "required"`, a mechanism this machine lacks for a sandboxed plugin; and, where
/// plugins get their own uids, a plugin `command` (or the working directory, the runtime
/// directory, the state directory) that another uid cannot reach.
pub fn preflight(config: &Config) -> Result<(), SandboxError> {
    let sandboxes = Sandboxes::new(config);
    // A remote plugin (contract §2.6) runs on its own machine: nothing here confines it.
    for plugin in config.plugins.iter().filter(|p| p.remote.is_none()) {
        let error = |problem: String| SandboxError {
            plugin: plugin.name.clone(),
            problem,
        };
        let report = sandboxes.report(plugin);
        if sandboxes.mode == SandboxMode::Required && !report.missing.is_empty() {
            return Err(error(format!(
                "sandbox = \"required\", but this machine cannot enforce: {}",
                report.missing.join("; ")
            )));
        }
        if !(plugin.sandbox.enabled && sandboxes.mechanisms.switch_uids) {
            continue;
        }
        let (uid, gid) = match plugin.sandbox.user {
            SandboxUser::Named { uid, gid, .. } => (Some(uid), Some(gid)),
            SandboxUser::Auto => (None, None),
        };
        let who = match &plugin.sandbox.user {
            SandboxUser::Named { name, .. } => format!("user `{name}`"),
            SandboxUser::Auto => "its own uid".to_owned(),
        };
        let reach = |path: &Path, what: &str| {
            reachable(path, uid, gid).map_err(|why| {
                error(format!(
                    "{what} {} cannot be reached by {who}: {why}",
                    path.display()
                ))
            })
        };
        reach(&plugin.command, "command")?;
        reach(&config.dir, "working directory")?;
        for dir in [&config.supervisor.runtime_dir, &config.supervisor.state_dir] {
            // What exists of it: hookvisor creates the rest, traversable.
            if let Some(existing) = dir.ancestors().find(|d| d.exists()) {
                reach(existing, "the way to")?;
            }
        }
        if plugin.sha256.is_some()
            && let Ok(meta) = std::fs::metadata(&plugin.command)
        {
            let ours = nix::unistd::geteuid().as_raw();
            if (meta.uid() != 0 && meta.uid() != ours) || meta.mode() & 0o022 != 0 {
                return Err(error(format!(
                    "command {} is pinned with sha256 but may be written by uid {} or by group or \
                     others (mode {:04o}); a pinned file must be writable by root or hookvisor's \
                     user alone",
                    plugin.command.display(),
                    meta.uid(),
                    meta.mode() & 0o7777
                )));
            }
        }
    }
    Ok(())
}

/// Whether a process of `uid`/`gid` (no supplementary groups; `None` for a fresh uid that owns
/// nothing) can search every directory on the way to `path` and execute (or search) `path`.
fn reachable(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), String> {
    let allows = |meta: &Metadata, bit: u32| {
        let mode = meta.mode();
        if Some(meta.uid()) == uid {
            mode & (bit << 6) != 0
        } else if Some(meta.gid()) == gid {
            mode & (bit << 3) != 0
        } else {
            mode & bit != 0
        }
    };
    let real = std::fs::canonicalize(path).map_err(|e| format!("cannot resolve it: {e}"))?;
    let mut dirs: Vec<&Path> = real.ancestors().skip(1).collect();
    dirs.reverse();
    for dir in dirs {
        let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !allows(&meta, 0o1) {
            return Err(format!(
                "directory {} (owner uid {}, mode {:04o}) cannot be searched by others; install \
                 the plugin where every uid can reach it, e.g. under /opt or /usr/lib",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ));
        }
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("{e}"))?;
    if !allows(&meta, 0o1) {
        return Err(format!(
            "{} (owner uid {}, mode {:04o}) is not executable by others",
            real.display(),
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}
