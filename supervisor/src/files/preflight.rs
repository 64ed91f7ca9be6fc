//! `check-config`'s and `serve`'s checks before anything starts: everything on disk the
//! configuration names that `serve` would refuse, checked without creating or deleting
//! anything. Here, above both [`super::config`] and [`super::layout`], so that the layout never
//! needs the configuration.

use std::path::Path;

use super::config::Config;
use super::layout::{
    GROUP_OTHER_ANY, LayoutError, check_command, check_directories, check_runtime_dir, host_socket,
    is_our_socket, lock_path, lstat, socket_path_problem,
};

/// Checks, without creating or deleting anything, everything `serve` refuses before it starts
/// plugins: the host socket's path and directories, the runtime directory, and every plugin
/// command. (A busy host socket or a held lock are states, not configuration: `serve` checks
/// those itself, so `check-config` works while a supervisor runs.)
pub fn preflight(config: &Config) -> Result<(), LayoutError> {
    check_host_socket_path(config)?;
    preflight_activated(config)
}

/// [`preflight`] for a host socket that systemd passed in (socket activation): the configured
/// `socket` path is not used, so only the runtime directory and the plugins are checked.
pub fn preflight_activated(config: &Config) -> Result<(), LayoutError> {
    let runtime_dir = &config.supervisor.runtime_dir;
    if let Some(meta) = lstat(runtime_dir, "runtime directory", "inspect it")? {
        check_runtime_dir(runtime_dir, &meta)?;
    }
    if let Some(parent) = runtime_dir.parent() {
        check_directories(parent, "runtime directory", runtime_dir)?;
    }
    // The owner of each plugin's state directory is the record of its uid: nobody else may be
    // able to move it aside.
    let state_dir = &config.supervisor.state_dir;
    if !config.plugins.is_empty()
        && let Some(parent) = state_dir.parent()
    {
        check_directories(parent, "state directory", state_dir)?;
    }
    // A remote plugin (contract §2.6) has no command; its TLS files are checked by
    // `crate::plugin::remote::check`.
    for plugin in config.plugins.iter().filter(|p| p.remote.is_none()) {
        check_command(&plugin.name, &plugin.command)?;
    }
    Ok(())
}

/// [`preflight_activated`], and the host socket's rule for the directories on the way to the
/// socket systemd passed in (`socket`, its path): whoever could write one of them could move the
/// socket aside and answer in hookvisor's place.
pub fn preflight_activated_at(config: &Config, socket: &Path) -> Result<(), LayoutError> {
    let dir = socket.parent().unwrap_or(Path::new("/"));
    check_directories(dir, "host socket", socket)?;
    preflight_activated(config)
}

/// The checks on the configured host socket path and the directories above it.
fn check_host_socket_path(config: &Config) -> Result<(), LayoutError> {
    let supervisor = &config.supervisor;
    let socket = &supervisor.socket;
    let runtime_dir = &supervisor.runtime_dir;
    if let Some(problem) = socket_path_problem(socket) {
        return Err(host_socket(socket, problem));
    }
    if *socket == lock_path(runtime_dir) {
        return Err(host_socket(
            socket,
            "is the runtime directory's lock file; choose another path".to_owned(),
        ));
    }
    if let Some(plugin) = config.plugin_of_socket(socket) {
        return Err(host_socket(
            socket,
            format!("is plugin `{}`'s socket; choose another path", plugin.name),
        ));
    }
    if supervisor.socket_mode & GROUP_OTHER_ANY != 0 && socket.starts_with(runtime_dir) {
        return Err(host_socket(
            socket,
            format!(
                "socket_mode \"{:04o}\" shares it, but it is inside the runtime directory {}, \
                 which only hookvisor's user may list (0711); put runtime_dir in a \
                 subdirectory, e.g. runtime_dir = \"/run/hookvisor/plugins\"",
                supervisor.socket_mode,
                runtime_dir.display()
            ),
        ));
    }
    let socket_dir = socket.parent().unwrap_or(Path::new("/"));
    check_directories(socket_dir, "host socket", socket)?;
    if let Some(meta) = lstat(socket, "host socket", "inspect it")?
        && !is_our_socket(&meta)
    {
        return Err(LayoutError::NotOurSocket {
            path: socket.clone(),
        });
    }
    Ok(())
}
