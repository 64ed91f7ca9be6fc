//! The sandbox keys of the configuration (contract §10): `[supervisor] sandbox`, `plugin_uids`,
//! `state_dir`, and each plugin's `sha256` and `[plugin.sandbox]` table.
//!
//! What is checked here, with the key and its line: the values' shapes, that every `read` and
//! `write` path exists, that `plugin_uids` holds no uid or gid the system already knows (a
//! plugin must never share a uid with a real user or service), that two plugins do not name
//! the same `user`, and that a named `user` exists and is not root. Whether the machine can
//! enforce each mechanism is the business of [`crate::plugin::sandbox`], at start.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Document, PluginConfig};

/// The per-plugin uids when `plugin_uids` is not set: clear of every range systemd assigns
/// (regular and homed users up to 60513, DynamicUser services 61184-65519, `nobody`, container
/// ranges from 524288: systemd's UIDS-GIDS.md calls 65536-524287 unused) and below the
/// subordinate ids of user namespaces (`/etc/subuid`, from 100000 by default). Was 61000-61999,
/// which a DynamicUser service could share from its 185th uid on.
pub const DEFAULT_PLUGIN_UIDS: (u32, u32) = (70_000, 70_999);
/// Most uids a `plugin_uids` range may hold (each is looked up at load).
pub const MAX_PLUGIN_UIDS: u32 = 65_536;
/// Lowest uid a range may start at: below it live the system's own users.
pub const MIN_PLUGIN_UID: u32 = 1000;
/// Highest uid a range may reach (`(uid_t)-1` and `-2` mean "no change" and `nobody` to
/// various tools; 2^31-1 keeps clear of both and of sign trouble).
pub const MAX_PLUGIN_UID: u32 = 0x7fff_fffe;
/// Processes (threads count too) a plugin uid may have when `max_processes` is not set.
pub const DEFAULT_MAX_PROCESSES: u32 = 64;
/// Memory a plugin process may map when `memory_max_mib` is not set.
pub const DEFAULT_MEMORY_MAX_MIB: u32 = 1024;
/// Most paths in one `read` or `write` list.
const MAX_PATHS: usize = 256;

/// `[supervisor] sandbox`: what to do when the machine lacks a mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Start anyway, with one warning per plugin naming what is not enforced (the default).
    #[default]
    BestEffort,
    /// A mechanism the machine lacks for a sandboxed plugin is a start error.
    Required,
}

/// `[plugin.sandbox] user`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SandboxUser {
    /// A uid of its own from `plugin_uids`, kept across restarts (the default).
    #[default]
    Auto,
    /// An existing user, by name, with its uid and primary gid as looked up at load.
    Named {
        /// The name as configured.
        name: String,
        /// Its uid.
        uid: u32,
        /// Its primary group.
        gid: u32,
    },
}

/// `[plugin.sandbox]`: what one plugin may do. See `docs/security.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSandbox {
    /// `enabled` (default true); false runs the plugin with the supervisor's authority.
    pub enabled: bool,
    /// Whose uid it runs under, when the supervisor may switch uids.
    pub user: SandboxUser,
    /// Extra paths it may read (and execute), absolute, existing at load.
    pub read: Vec<PathBuf>,
    /// Extra paths it may write, absolute, existing at load.
    pub write: Vec<PathBuf>,
    /// Whether it may open network sockets of every kind (default false).
    pub network: bool,
    /// TCP ports it may connect to when `network` is false.
    pub connect_ports: Vec<u16>,
    /// Processes and threads its uid may have; 0 = no limit.
    pub max_processes: u32,
    /// Memory each of its processes may map (`RLIMIT_DATA`), in MiB; 0 = no limit.
    pub memory_max_mib: u32,
}

impl Default for PluginSandbox {
    fn default() -> Self {
        PluginSandbox {
            enabled: true,
            user: SandboxUser::Auto,
            read: Vec::new(),
            write: Vec::new(),
            network: false,
            connect_ports: Vec::new(),
            max_processes: DEFAULT_MAX_PROCESSES,
            memory_max_mib: DEFAULT_MEMORY_MAX_MIB,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSandbox {
    enabled: Option<bool>,
    user: Option<Spanned<String>>,
    #[serde(default)]
    read: Vec<Spanned<String>>,
    #[serde(default)]
    write: Vec<Spanned<String>>,
    network: Option<bool>,
    #[serde(default)]
    connect_ports: Vec<Spanned<i64>>,
    max_processes: Option<Spanned<i64>>,
    memory_max_mib: Option<Spanned<i64>>,
}

impl Document<'_> {
    /// `[supervisor] sandbox`.
    pub(super) fn sandbox_mode(
        &self,
        value: Option<&Spanned<String>>,
    ) -> Result<SandboxMode, ConfigError> {
        let Some(value) = value else {
            return Ok(SandboxMode::default());
        };
        match value.get_ref().as_str() {
            "best-effort" => Ok(SandboxMode::BestEffort),
            "required" => Ok(SandboxMode::Required),
            other => Err(self.key_error(
                value,
                "sandbox",
                format!(
                    "{other:?} is not a sandbox mode; expected \"best-effort\" or \"required\""
                ),
            )),
        }
    }

    /// `[supervisor] plugin_uids = "FIRST-LAST"`: within bounds, and no uid or gid in it known
    /// to the system.
    pub(super) fn plugin_uids(
        &self,
        value: Option<&Spanned<String>>,
    ) -> Result<(u32, u32), ConfigError> {
        let Some(value) = value else {
            return Ok(DEFAULT_PLUGIN_UIDS);
        };
        let text = value.get_ref();
        let parsed = text.split_once('-').and_then(|(a, b)| {
            Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?))
        });
        let Some((first, last)) = parsed else {
            return Err(self.key_error(
                value,
                "plugin_uids",
                format!("{text:?} is not a range; expected \"FIRST-LAST\", e.g. \"70000-70999\""),
            ));
        };
        if first > last || first < MIN_PLUGIN_UID || last > MAX_PLUGIN_UID {
            return Err(self.key_error(
                value,
                "plugin_uids",
                format!(
                    "{text:?}: expected FIRST <= LAST within {MIN_PLUGIN_UID}..={MAX_PLUGIN_UID}"
                ),
            ));
        }
        if last - first >= MAX_PLUGIN_UIDS {
            return Err(self.key_error(
                value,
                "plugin_uids",
                format!("{text:?} holds more than {MAX_PLUGIN_UIDS} uids"),
            ));
        }
        if let Some(taken) = known_id_in(first, last) {
            return Err(self.key_error(
                value,
                "plugin_uids",
                format!(
                    "{text:?} overlaps {taken}; plugin uids must belong to no real user or group \
                     (choose a free range, e.g. one `getent passwd` and `getent group` do not list)"
                ),
            ));
        }
        Ok((first, last))
    }

    /// `[plugin.sandbox]`, or its defaults.
    pub(super) fn plugin_sandbox(
        &self,
        raw: Option<RawSandbox>,
    ) -> Result<PluginSandbox, ConfigError> {
        let Some(raw) = raw else {
            return Ok(PluginSandbox::default());
        };
        let defaults = PluginSandbox::default();
        let user = match &raw.user {
            None => SandboxUser::Auto,
            Some(value) if value.get_ref() == "auto" => SandboxUser::Auto,
            Some(value) => self.named_user(value)?,
        };
        let network = raw.network.unwrap_or(defaults.network);
        let mut connect_ports = Vec::with_capacity(raw.connect_ports.len());
        for port in &raw.connect_ports {
            match u16::try_from(*port.get_ref()) {
                Ok(p) if p > 0 => connect_ports.push(p),
                _ => {
                    return Err(self.key_error(
                        port,
                        "connect_ports",
                        format!("{} is not a TCP port; expected 1..=65535", port.get_ref()),
                    ));
                }
            }
        }
        if network && let Some(port) = raw.connect_ports.first() {
            return Err(self.key_error(
                port,
                "connect_ports",
                "`network = true` already allows every port; list ports only with network = false",
            ));
        }
        Ok(PluginSandbox {
            enabled: raw.enabled.unwrap_or(defaults.enabled),
            user,
            read: self.existing_paths(&raw.read, "read")?,
            write: self.existing_paths(&raw.write, "write")?,
            network,
            connect_ports,
            max_processes: self
                .limit(raw.max_processes, "max_processes", 0..=1_000_000)?
                .unwrap_or(defaults.max_processes),
            memory_max_mib: self
                .limit(raw.memory_max_mib, "memory_max_mib", 0..=16 * 1024 * 1024)?
                .unwrap_or(defaults.memory_max_mib),
        })
    }

    /// `sha256 = "HEX"` (or another SHA-256 key, `key`): 64 hexadecimal digits.
    pub(super) fn sha256(
        &self,
        value: Option<&Spanned<String>>,
        key: &str,
    ) -> Result<Option<[u8; 32]>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        let text = value.get_ref();
        let mut digest = [0u8; 32];
        let valid = text.len() == 64
            && text.is_ascii()
            && digest.iter_mut().enumerate().all(|(i, byte)| {
                u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                    .map(|b| *byte = b)
                    .is_ok()
            });
        if !valid {
            return Err(self.key_error(
                value,
                key,
                format!("{text:?} is not a SHA-256 digest; expected 64 hexadecimal digits"),
            ));
        }
        Ok(Some(digest))
    }

    /// Two plugins may not run as the same named user: they could then signal and trace each
    /// other, the very thing a uid per plugin is for.
    pub(super) fn distinct_users(
        &self,
        plugins: &[PluginConfig],
        lines: &[usize],
    ) -> Result<(), ConfigError> {
        for (i, plugin) in plugins.iter().enumerate() {
            let SandboxUser::Named { name, .. } = &plugin.sandbox.user else {
                continue;
            };
            let first = plugins[..i].iter().position(|other| {
                matches!(&other.sandbox.user, SandboxUser::Named { name: n, .. } if n == name)
            });
            if let Some(first) = first {
                return Err(ConfigError::Invalid {
                    file: self.file.clone(),
                    line: lines.get(i).copied(),
                    message: format!(
                        "plugin `{}`: key `user`: user `{name}` is already the user of plugin \
                         `{}`; plugins sharing a uid could signal and trace each other",
                        plugin.name, plugins[first].name
                    ),
                });
            }
        }
        Ok(())
    }

    fn named_user(&self, value: &Spanned<String>) -> Result<SandboxUser, ConfigError> {
        let name = value.get_ref();
        match nix::unistd::User::from_name(name) {
            Ok(Some(user)) if user.uid.is_root() => Err(self.key_error(
                value,
                "user",
                format!("`{name}` is root; a sandboxed plugin never runs as root"),
            )),
            Ok(Some(user)) => Ok(SandboxUser::Named {
                name: name.clone(),
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            }),
            Ok(None) => Err(self.key_error(
                value,
                "user",
                format!("no user is named `{name}`; use \"auto\" or an existing user"),
            )),
            Err(e) => Err(self.key_error(value, "user", format!("cannot look up `{name}`: {e}"))),
        }
    }

    fn existing_paths(
        &self,
        values: &[Spanned<String>],
        key: &str,
    ) -> Result<Vec<PathBuf>, ConfigError> {
        if let Some(extra) = values.get(MAX_PATHS) {
            return Err(self.key_error(extra, key, format!("more than {MAX_PATHS} paths")));
        }
        let mut paths = Vec::with_capacity(values.len());
        for value in values {
            let path = self.path(value, key)?;
            if let Err(e) = std::fs::metadata(&path) {
                return Err(self.key_error(
                    value,
                    key,
                    format!("`{}` cannot be used: {e}", path.display()),
                ));
            }
            paths.push(path);
        }
        Ok(paths)
    }

    fn limit(
        &self,
        value: Option<Spanned<i64>>,
        key: &str,
        range: std::ops::RangeInclusive<u32>,
    ) -> Result<Option<u32>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        match u32::try_from(*value.get_ref()) {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(self.key_error(
                &value,
                key,
                format!(
                    "{} is out of range; expected {}..={} (0 = no limit)",
                    value.get_ref(),
                    range.start(),
                    range.end()
                ),
            )),
        }
    }
}

/// Ranges up to this many ids are also looked up id by id through NSS (a directory service
/// that cannot be listed); larger ones only against the local databases.
const LOOKUP_EACH_UP_TO: u32 = 4096;

/// A user or group the system knows with an id in `first..=last`, in words. The local databases
/// (`/etc/passwd`, `/etc/group`) are read once whatever the range; each id is looked up through
/// NSS only in ranges of at most [`LOOKUP_EACH_UP_TO`] ids. Looking up every id of a 65536-id
/// range took 35 s (two lookups per id, each a scan of the files): found by the config fuzzer as
/// a slow input, and a `check-config` or a reload that long is a stall.
fn known_id_in(first: u32, last: u32) -> Option<String> {
    for (file, kind) in [("/etc/passwd", "uid"), ("/etc/group", "gid")] {
        if let Some(found) = local_id_in(file, kind, first, last) {
            return Some(found);
        }
    }
    if last - first < LOOKUP_EACH_UP_TO {
        return (first..=last).find_map(known_id);
    }
    None
}

/// The first entry of a passwd- or group-format file whose id (third field) is in the range.
fn local_id_in(file: &str, kind: &str, first: u32, last: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        let what = if kind == "uid" { "user" } else { "group" };
        (first..=last)
            .contains(&id)
            .then(|| format!("{kind} {id} ({what} `{name}`)"))
    })
}

/// "uid N (NAME)" or "gid N (NAME)" when the system knows `id` as a user or a group.
fn known_id(id: u32) -> Option<String> {
    if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(id)) {
        return Some(format!("uid {id} (user `{}`)", user.name));
    }
    if let Ok(Some(group)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(id)) {
        return Some(format!("gid {id} (group `{}`)", group.name));
    }
    None
}
