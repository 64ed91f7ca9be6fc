//! The files hookvisor owns on disk: the runtime directory (mode 0711, a socket directory per
//! plugin in it), its lock file, the host socket; and the checks that refuse a place another
//! user could tamper with. (The plugins' state and socket directories are [`crate::plugin::sandbox`]'s.)
//!
//! The rules, all decided before anything is created:
//! - Every directory on the way to the host socket and to the runtime directory is owned by root
//!   or by hookvisor's uid and is not writable by group or others, unless it has the sticky bit
//!   (the sticky bit stops other users renaming or deleting our entries). Otherwise another user
//!   could move the host socket aside and serve a fake `Hooks` in its place.
//! - The runtime directory is never a symlink, is owned by hookvisor's uid and gives group and
//!   others no access but search (`x`): plugins under their own uids must reach their socket
//!   directories in it, and nobody else may list it. hookvisor creates it 0711 when it is
//!   missing and never chmods a directory it did not create: an operator's shared directory is
//!   refused, not quietly tightened.
//! - hookvisor deletes only sockets it owns ([`remove_stale_socket`]), and in a plugin's socket
//!   directory those of the plugin's own uid ([`remove_plugin_socket`]); a regular file,
//!   directory, symlink or another user's socket where a socket should go is an error, never
//!   unlinked.
//!
//! [`super::preflight`] checks all of this without side effects, so `check-config` refuses exactly what
//! `serve` would refuse before starting plugins. `serve` calls it first, then the functions that
//! create (each re-checks what it created, since the filesystem can change in between).

use std::collections::HashSet;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::unistd::AccessFlags;
use tokio::net::UnixListener;

/// Longest path a Unix socket address holds (`sun_path` is 108 bytes including its NUL).
pub const MAX_SOCKET_PATH_BYTES: usize = 107;
/// The lock file in the runtime directory that keeps two supervisors apart.
pub const LOCK_FILE: &str = "hookvisor.lock";
/// The staging name's shape: `.hv` and the pid in 7 digits (Linux pids stay below 2^22, so
/// the length never varies and the length check in [`socket_path_problem`] is exact).
const STAGING_TEMPLATE: &str = ".hv0000000";
/// Permission bits that let group or others write a directory.
const GROUP_OTHER_WRITE: u32 = 0o022;
/// Permission bits that give group or others any access.
pub(super) const GROUP_OTHER_ANY: u32 = 0o077;
/// Permission bits that let group or others read or write (search alone is allowed).
const GROUP_OTHER_READ_WRITE: u32 = 0o066;
const STICKY: u32 = 0o1000;

/// Why a file or directory hookvisor would use is refused. Every variant displays as one line
/// naming the path; none has a `source`, so an error chain never prints a cause twice.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A filesystem operation failed.
    #[error("{what} {}: cannot {doing}: {error}", path.display())]
    Io {
        /// What the path is for, e.g. `runtime directory`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What was being done, e.g. `create it`.
        doing: &'static str,
        /// What the operating system said.
        error: io::Error,
    },
    /// A directory on the way to `target` could be written by another user.
    #[error(
        "{what} {}: directory {} (owner uid {owner}, mode {mode:04o}) {problem}",
        target.display(), dir.display()
    )]
    UnsafeDirectory {
        /// What `target` is, e.g. `host socket`.
        what: &'static str,
        /// The path being protected.
        target: PathBuf,
        /// The directory that fails the rule.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its permission bits (with the sticky bit).
        mode: u32,
        /// Which rule it breaks and why that matters.
        problem: String,
    },
    /// The runtime directory exists but is not one hookvisor may use.
    #[error("runtime directory {}: {problem}", path.display())]
    RuntimeDir {
        /// The configured `runtime_dir`.
        path: PathBuf,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// Something that is not a socket hookvisor owns sits where hookvisor would put one.
    #[error("`{}` exists and is not a socket hookvisor owns; refusing to delete it", path.display())]
    NotOurSocket {
        /// The path.
        path: PathBuf,
    },
    /// The host socket path cannot be used as configured.
    #[error("host socket {}: {problem}", path.display())]
    HostSocket {
        /// The host socket path (from `socket` or `--socket`).
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Another process answers on the host socket.
    #[error("host socket {}: another process is serving on it", path.display())]
    HostSocketBusy {
        /// The host socket path.
        path: PathBuf,
    },
    /// Another supervisor holds the runtime directory's lock.
    #[error("another hookvisor is using the runtime directory {} (it holds {})", dir.display(), lock.display())]
    Locked {
        /// The runtime directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// A plugin's `command` cannot be run.
    #[error("plugin `{plugin}`: command {}: {problem}", command.display())]
    Command {
        /// The plugin's name.
        plugin: String,
        /// The resolved command path.
        command: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

/// Why `path` cannot be the host socket's path, if it cannot: the socket is bound first under
/// a staging name in the same directory ([`staging_path`]), so both must fit a Unix socket
/// address.
pub fn socket_path_problem(path: &Path) -> Option<String> {
    let len = path.as_os_str().len();
    if path.file_name().is_none() {
        return Some("the path has no file name".to_owned());
    }
    if len > MAX_SOCKET_PATH_BYTES {
        return Some(format!(
            "socket path `{}` is {len} bytes; a Unix socket path holds at most \
             {MAX_SOCKET_PATH_BYTES}",
            path.display()
        ));
    }
    let staging = path.with_file_name(STAGING_TEMPLATE);
    let staging_len = staging.as_os_str().len();
    if staging_len > MAX_SOCKET_PATH_BYTES {
        return Some(format!(
            "socket path `{}`: hookvisor binds it first as `{}` ({staging_len} bytes) and \
             renames it into place; a Unix socket path holds at most {MAX_SOCKET_PATH_BYTES}: \
             shorten the directory",
            path.display(),
            staging.display()
        ));
    }
    None
}

/// The lock file of `runtime_dir`.
pub fn lock_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(LOCK_FILE)
}

/// The name the host socket is bound under before it is renamed into place: `.hv<pid>` in the
/// same directory, short and of fixed length.
pub fn staging_path(socket: &Path) -> PathBuf {
    socket.with_file_name(format!(".hv{:07}", std::process::id()))
}

/// Creates the runtime directory with mode 0711 (missing parents with the default mode), or
/// accepts an existing one that already follows the rules; never changes one it did not create.
pub fn prepare_runtime_dir(dir: &Path) -> Result<(), LayoutError> {
    let io = |doing| move |error| io_error("runtime directory", dir, doing, error);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io("create its parent directories"))?;
        check_directories(parent, "runtime directory", dir)?;
    }
    let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(io("create it")(e)),
    };
    if created {
        // Ours: the umask may have taken bits the owner needs; nobody else can have entered.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .map_err(io("set its mode to 0711"))?;
    }
    match lstat(dir, "runtime directory", "inspect it")? {
        Some(meta) => check_runtime_dir(dir, &meta),
        None => Err(io("inspect it")(io::Error::from(io::ErrorKind::NotFound))),
    }
}

/// Takes an exclusive lock on `hookvisor.lock` in the runtime directory, so a second supervisor
/// configured with the same directory stops before it touches the first one's plugin sockets.
pub fn lock_runtime_dir(dir: &Path) -> Result<Flock<File>, LayoutError> {
    let path = lock_path(dir);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(&path)
        .map_err(|error| io_error("runtime directory lock", &path, "open it", error))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == Errno::EWOULDBLOCK {
            LayoutError::Locked {
                dir: dir.to_path_buf(),
                lock: path.clone(),
            }
        } else {
            io_error("runtime directory lock", &path, "lock it", errno.into())
        }
    })
}

/// Refuses a host socket another process is serving on (checked before any plugin starts, and
/// again just before binding).
pub fn check_host_socket_free(path: &Path) -> Result<(), LayoutError> {
    if path.exists() && std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(LayoutError::HostSocketBusy {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Binds the host socket with `mode`, without a moment where it has looser permissions at its
/// final name: bind under [`staging_path`], chmod, then rename into place. Creates missing parent
/// directories (default mode) and checks the whole way to it again once they exist.
pub fn bind_host_socket(path: &Path, mode: u32) -> Result<UnixListener, LayoutError> {
    let io = |doing| move |error| io_error("host socket", path, doing, error);
    let parent = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(io("create its directory"))?;
    check_directories(parent, "host socket", path)?;
    check_host_socket_free(path)?;
    remove_stale_socket(path)?;
    let staging = staging_path(path);
    remove_stale_socket(&staging)?;
    let listener = UnixListener::bind(&staging).map_err(io("bind it"))?;
    let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
        .and_then(|()| std::fs::rename(&staging, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(io("put it in place")(e));
    }
    Ok(listener)
}

/// Removes a leftover socket at `path` before something binds there: nothing there is fine, a
/// socket owned by hookvisor's uid is unlinked, anything else is refused and left alone.
pub fn remove_stale_socket(path: &Path) -> Result<(), LayoutError> {
    remove_plugin_socket(path, None)
}

/// [`remove_stale_socket`] in a plugin's socket directory, where a socket of the plugin's own
/// uid (`plugin_uid`) is also removed.
pub fn remove_plugin_socket(path: &Path, plugin_uid: Option<u32>) -> Result<(), LayoutError> {
    let Some(meta) = lstat(path, "socket", "inspect it")? else {
        return Ok(());
    };
    let plugins = meta.file_type().is_socket() && Some(meta.uid()) == plugin_uid;
    if !is_our_socket(&meta) && !plugins {
        return Err(LayoutError::NotOurSocket {
            path: path.to_path_buf(),
        });
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io_error("socket", path, "remove it", e))
        }
        _ => Ok(()),
    }
}

pub(super) fn host_socket(path: &Path, problem: String) -> LayoutError {
    LayoutError::HostSocket {
        path: path.to_path_buf(),
        problem,
    }
}

fn io_error(what: &'static str, path: &Path, doing: &'static str, error: io::Error) -> LayoutError {
    LayoutError::Io {
        what,
        path: path.to_path_buf(),
        doing,
        error,
    }
}

fn our_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

pub(super) fn is_our_socket(meta: &Metadata) -> bool {
    meta.file_type().is_socket() && meta.uid() == our_uid()
}

/// `lstat(path)`; `None` when nothing is there.
pub(super) fn lstat(
    path: &Path,
    what: &'static str,
    doing: &'static str,
) -> Result<Option<Metadata>, LayoutError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(what, path, doing, e)),
    }
}

/// The rules for an existing runtime directory (checked with `lstat`, so a symlink is seen).
pub(super) fn check_runtime_dir(dir: &Path, meta: &Metadata) -> Result<(), LayoutError> {
    let refuse = |problem: String| {
        Err(LayoutError::RuntimeDir {
            path: dir.to_path_buf(),
            problem,
        })
    };
    let mode = meta.mode() & 0o7777;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(dir)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "?".to_owned());
        return refuse(format!(
            "is a symbolic link (to {target}); hookvisor does not follow links here: \
             name the real directory in runtime_dir"
        ));
    }
    if !meta.is_dir() {
        return refuse("exists and is not a directory".to_owned());
    }
    if meta.uid() != our_uid() {
        return refuse(format!(
            "is owned by uid {}, not by hookvisor's uid {}; other users' processes could \
             reach the plugin sockets: give hookvisor a directory of its own",
            meta.uid(),
            our_uid()
        ));
    }
    if mode & GROUP_OTHER_READ_WRITE != 0 {
        return refuse(format!(
            "has mode {mode:04o}; it must give group and others no access but search, and \
             hookvisor does not change a directory it did not create: chmod 0711 {} (under \
             systemd: RuntimeDirectoryMode=0711), or name a subdirectory for hookvisor to \
             create, e.g. runtime_dir = \"{}/plugins\"",
            dir.display(),
            dir.display()
        ));
    }
    Ok(())
}

/// The host socket's rule for the directories on the way to the audit log (`dir` holds `log`).
pub fn check_audit_directories(dir: &Path, log: &Path) -> Result<(), LayoutError> {
    check_directories(dir, "audit log", log)
}

/// Checks every existing directory on the way to `dir` (and `dir` itself): owned by root or by
/// us, not writable by group or others unless sticky. Symlinks on the way are followed, but
/// each must itself be owned by root or us, and the directories the link leads through are
/// checked as well. Missing parts are skipped: whoever creates them later (hookvisor) checks
/// again once they exist.
pub(super) fn check_directories(
    dir: &Path,
    what: &'static str,
    target: &Path,
) -> Result<(), LayoutError> {
    let uid = our_uid();
    let mut checked: HashSet<PathBuf> = HashSet::new();
    let unsafe_dir = |path: &Path, meta: &Metadata, problem: String| LayoutError::UnsafeDirectory {
        what,
        target: target.to_path_buf(),
        dir: path.to_path_buf(),
        owner: meta.uid(),
        mode: meta.mode() & 0o7777,
        problem,
    };
    for prefix in dir.ancestors() {
        let Some(meta) = lstat(prefix, what, "inspect a directory on its path")? else {
            continue;
        };
        if meta.file_type().is_symlink() && meta.uid() != 0 && meta.uid() != uid {
            return Err(unsafe_dir(
                prefix,
                &meta,
                format!(
                    "is a symbolic link owned by uid {}; its owner could point it elsewhere",
                    meta.uid()
                ),
            ));
        }
        let real = std::fs::canonicalize(prefix)
            .map_err(|e| io_error(what, prefix, "resolve a directory on its path", e))?;
        for real_dir in real.ancestors() {
            if !checked.insert(real_dir.to_path_buf()) {
                continue;
            }
            let meta = std::fs::metadata(real_dir)
                .map_err(|e| io_error(what, real_dir, "inspect a directory on its path", e))?;
            let mode = meta.mode();
            if !meta.is_dir() {
                return Err(unsafe_dir(real_dir, &meta, "is not a directory".to_owned()));
            }
            if meta.uid() != 0 && meta.uid() != uid {
                return Err(unsafe_dir(
                    real_dir,
                    &meta,
                    format!(
                        "is owned by neither root nor hookvisor's uid {uid}; its owner could \
                         replace what hookvisor puts below it"
                    ),
                ));
            }
            if mode & GROUP_OTHER_WRITE != 0 && mode & STICKY == 0 {
                return Err(unsafe_dir(
                    real_dir,
                    &meta,
                    "is writable by group or others and has no sticky bit, so another user \
                     could rename hookvisor's files and put their own in place; use a \
                     directory only root or hookvisor's user can write"
                        .to_owned(),
                ));
            }
        }
    }
    Ok(())
}

/// A plugin's command must exist, be a regular file (after symlinks) and be executable by us.
pub(super) fn check_command(plugin: &str, command: &Path) -> Result<(), LayoutError> {
    let refuse = |problem: String| {
        Err(LayoutError::Command {
            plugin: plugin.to_owned(),
            command: command.to_path_buf(),
            problem,
        })
    };
    let meta = match std::fs::metadata(command) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return refuse("does not exist".to_owned());
        }
        Err(e) => return refuse(format!("cannot inspect it: {e}")),
    };
    if meta.is_dir() {
        return refuse("is a directory, not an executable file".to_owned());
    }
    if !meta.is_file() {
        return refuse("is not a regular file".to_owned());
    }
    if let Err(errno) = nix::unistd::access(command, AccessFlags::X_OK) {
        return refuse(format!(
            "is not executable by hookvisor's user (uid {}, mode {:04o}): {}",
            our_uid(),
            meta.mode() & 0o7777,
            errno.desc()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_name_has_a_fixed_length() {
        let staging = staging_path(Path::new("/run/hookvisor/hookvisor.sock"));
        assert_eq!(staging.parent(), Some(Path::new("/run/hookvisor")));
        let name = staging.file_name().map(|n| n.len());
        assert_eq!(name, Some(STAGING_TEMPLATE.len()));
    }

    #[test]
    fn socket_path_limit_counts_the_staging_name() {
        // Parent of 96 bytes: staging is 96 + 1 + 10 = 107 bytes, which fits.
        let parent = format!("/{}", "d".repeat(95));
        let fits = PathBuf::from(format!("{parent}/{}", "s".repeat(10)));
        assert_eq!(fits.as_os_str().len(), 107);
        assert_eq!(socket_path_problem(&fits), None);
        // One more byte of directory and the staging name no longer fits.
        let long = PathBuf::from(format!("{parent}d/s"));
        assert!(long.as_os_str().len() < 107);
        let problem = socket_path_problem(&long).expect("staging path too long");
        assert!(problem.contains("shorten the directory"), "{problem}");
        let too_long = PathBuf::from(format!("/{}", "x".repeat(107)));
        assert!(socket_path_problem(&too_long).is_some());
        assert!(socket_path_problem(Path::new("/")).is_some());
    }

    #[test]
    fn errors_print_their_cause_once() {
        let err = io_error(
            "runtime directory",
            Path::new("/nowhere"),
            "create it",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(std::error::Error::source(&err).is_none());
        let text = err.to_string();
        assert_eq!(text.matches("ermission denied").count(), 1, "{text}");
    }
}
