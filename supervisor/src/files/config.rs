//! The configuration (contract §10): the TOML file an operator writes, read and validated whole at
//! load, so a running supervisor never meets a value it has to second-guess. Every error is one
//! line naming the file, the line and the key: `hookvisor.toml:12: unknown key `trused` in
//! [[plugin]] (expected one of: name, command, …)`.
//!
//! Where the contract is silent:
//! - Relative paths (`command`, `runtime_dir`, `socket`) are resolved against the directory of the
//!   configuration file (the current directory when there is no file). A bare `command` without a
//!   `/` is resolved the same way: there is no `$PATH` lookup, so what runs is the file next to the
//!   configuration, never whatever a search path happens to hold.
//! - `revalidate` is accepted only in `[hooks.before_tool_call]`; in the other hook tables it would
//!   have no effect, so it is an unknown key there.
//! - `socket_mode` is a string of octal digits (`"0660"`), never a TOML integer, so that `660`
//!   cannot silently mean decimal.
//! - A variable may be set in `env` or inherited through `inherit_env`, not both.
//! - A plugin's socket may not be the host socket, and both must fit a Unix socket address.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use hookvisor_proto::v1::Hook;
use serde::Deserialize;
use toml::Spanned;

mod remote;
mod sandbox;
pub use remote::RemoteConfig;
pub use sandbox::{
    DEFAULT_MAX_PROCESSES, DEFAULT_MEMORY_MAX_MIB, DEFAULT_PLUGIN_UIDS, PluginSandbox, SandboxMode,
    SandboxUser,
};

/// Per-hook deadline when `[hooks.*] timeout_ms` is not set.
pub const DEFAULT_HOOK_TIMEOUT_MS: u32 = 5000;
/// Upper bound of every configured timeout.
pub const MAX_TIMEOUT_MS: u32 = 600_000;
/// How long a plugin has to become ready when `start_timeout_ms` is not set.
pub const DEFAULT_START_TIMEOUT_MS: u32 = 5000;
/// Threads of the async runtime when `worker_threads` is not set: one. Measured with
/// `hookvisor bench` on 2 cores, one thread costs about a third less CPU per verdict than a
/// work-stealing runtime with a worker per core (fewer wake-ups across threads) and serves more
/// verdicts a second; on a large machine with many concurrent hosts, more workers serve more.
pub const DEFAULT_WORKER_THREADS: u32 = 1;
/// Most runtime threads.
pub const MAX_WORKER_THREADS: u32 = 256;
/// Time between SIGTERM and SIGKILL when `stop_grace_ms` is not set.
pub const DEFAULT_STOP_GRACE_MS: u32 = 2000;
/// How long plugins wait for a new supervisor after a crash, when `keep_plugins_on_crash` is on
/// and `keep_plugins_grace_ms` is not set.
pub const DEFAULT_KEEP_PLUGINS_GRACE_MS: u32 = 10_000;
/// The range of `keep_plugins_grace_ms`.
pub const KEEP_PLUGINS_GRACE_RANGE_MS: std::ops::RangeInclusive<u32> = 1000..=600_000;

/// Longest path a Unix socket address holds (`sun_path` is 108 bytes including its NUL).
const MAX_SOCKET_PATH_BYTES: usize = crate::files::layout::MAX_SOCKET_PATH_BYTES;
/// Largest configuration file read: far above any real one, and it bounds what `--config`
/// pointed at `/dev/zero` or a huge file can cost.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Longest plugin name, so names stay usable as socket file names and log labels.
const MAX_NAME_CHARS: usize = 63;
/// Variables the supervisor sets for every plugin (contract §2.2); configuration may not set them.
const RESERVED_ENV: [&str; 5] = [
    hookvisor_proto::env::PLUGIN_SOCKET,
    hookvisor_proto::env::PLUGIN_NAME,
    hookvisor_proto::env::PROTOCOL_VERSION,
    hookvisor_proto::env::MAGIC_COOKIE,
    hookvisor_proto::env::PLUGIN_STATE_DIR,
];
/// The hook names a `[[plugin]] hooks = [...]` list may use.
const HOOK_NAMES: [(&str, Hook); 3] = [
    ("before_tool_call", Hook::BeforeToolCall),
    ("before_session_create", Hook::BeforeSessionCreate),
    ("session_created", Hook::SessionCreated),
];

/// A loaded, validated configuration.
///
/// `plugins` may be empty: with no plugin configured nothing can object, so every call is allowed.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from, if any.
    pub source: Option<PathBuf>,
    /// The absolute directory relative paths resolve against: the file's, or the current
    /// directory when there is no file. Plugins run with it as their working directory.
    pub dir: PathBuf,
    /// `[supervisor]`.
    pub supervisor: SupervisorConfig,
    /// `[hooks.*]`.
    pub hooks: HooksConfig,
    /// `[[plugin]]`, in configuration order (the order that breaks priority ties).
    pub plugins: Vec<PluginConfig>,
    /// `[audit]`: the decision log, when configured.
    pub audit: Option<AuditConfig>,
    /// `[metrics]`: the Prometheus endpoint, when configured.
    pub metrics: Option<MetricsConfig>,
    /// `[tracing]`: spans exported over OTLP, when configured.
    pub tracing: Option<TracingConfig>,
}

/// `[audit]`: one JSON line per verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Where the lines go.
    pub path: AuditPath,
    /// Whether lines carry the params (they may hold secrets: off by default).
    pub log_params: bool,
    /// Lines waiting for the writer at most (1..=1048576, default 4096); past it lines are
    /// dropped and counted, never waited for.
    pub queue_lines: u32,
}

/// Lines the audit queue holds when `queue_lines` is not set.
pub const DEFAULT_AUDIT_QUEUE_LINES: u32 = 4096;
/// Most lines the audit queue may hold.
pub const MAX_AUDIT_QUEUE_LINES: u32 = 1 << 20;

/// Where audit lines are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditPath {
    /// `"-"`: standard output.
    Stdout,
    /// A file, appended to (created 0640), reopened on SIGUSR1 for rotation.
    File(PathBuf),
}

/// `[metrics]`: Prometheus text exposition over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The TCP address `GET /metrics` is served on, e.g. `127.0.0.1:9464`.
    pub listen: std::net::SocketAddr,
}

/// `[tracing]`: each verdict and each plugin call as an OpenTelemetry span, exported over
/// OTLP/gRPC (contract §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracingConfig {
    /// The collector, `http://HOST:PORT` (e.g. `http://127.0.0.1:4317`).
    pub otlp_endpoint: String,
    /// The spans' `service.name` (default `hookvisor`).
    pub service_name: String,
}

/// `service.name` when `[tracing] service_name` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "hookvisor";

/// Whether a plugin's answers count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PluginMode {
    /// Its answers take part in the verdict (the default).
    #[default]
    Enforce,
    /// Called like a hook with the same params, but never waited for: its answer is recorded
    /// (audit, metrics) and never changes the verdict or the params.
    Shadow,
}

/// `[supervisor]`: where the supervisor listens and how it starts and stops plugins.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Host API socket; default `/run/hookvisor/hookvisor.sock`.
    pub socket: PathBuf,
    /// Directory holding the plugin sockets; default `/run/hookvisor`.
    pub runtime_dir: PathBuf,
    /// Permission bits of the host socket; default `0o600`.
    pub socket_mode: u32,
    /// How long a plugin has to become ready, 1..=600000 ms.
    pub start_timeout_ms: u32,
    /// Time between SIGTERM and SIGKILL when stopping a plugin, 0..=600000 ms.
    pub stop_grace_ms: u32,
    /// Threads of the async runtime, 1..=256: 1 runs everything on one thread (tokio's
    /// current-thread runtime), more is a work-stealing runtime with that many workers.
    pub worker_threads: u32,
    /// What hosts may hold open and in flight on the host socket.
    pub host_limits: HostLimits,
    /// How plugins are restarted, checked and quarantined.
    pub lifecycle: Lifecycle,
    /// `sandbox`: whether a mechanism the machine lacks is a start error.
    pub sandbox: SandboxMode,
    /// `plugin_uids`: the inclusive range per-plugin uids come from.
    pub plugin_uids: (u32, u32),
    /// `state_dir`: each plugin's state directory lives below it, `STATE_DIR/plugins/NAME`.
    pub state_dir: PathBuf,
    /// `keep_plugins_on_crash`: plugins outlive a supervisor that dies without stopping them,
    /// for `keep_plugins_grace_ms`, and a new supervisor reattaches to them (read at start).
    pub keep_plugins_on_crash: bool,
    /// `keep_plugins_grace_ms`: how long they wait for a new supervisor, 1000..=600000 ms.
    pub keep_plugins_grace_ms: u32,
}

/// The state directory when `state_dir` is not set: `/var/lib/hookvisor` for root, else
/// `$XDG_STATE_HOME/hookvisor` (or `$HOME/.local/state/hookvisor`), where a user's daemon keeps
/// its state.
pub fn default_state_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/hookvisor");
    }
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_STATE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join("hookvisor")
}

/// Restarts, health checks and quarantine (`[supervisor]` keys of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    /// The first delay before restarting a plugin that exited or failed its start; it doubles
    /// after each failure (with jitter) up to `restart_delay_max_ms`.
    pub restart_delay_ms: u32,
    /// The longest delay before a restart (also the delay after a permanent start failure).
    pub restart_delay_max_ms: u32,
    /// This many failures within `quarantine_window_ms` quarantine the plugin: no more
    /// restarts, and its calls keep failing closed.
    pub quarantine_after: u32,
    /// The window `quarantine_after` counts in.
    pub quarantine_window_ms: u32,
    /// How often a ready plugin's `grpc.health.v1.Health/Check` is called.
    pub health_interval_ms: u32,
    /// How long one health check may take.
    pub health_timeout_ms: u32,
    /// Failed health checks in a row, or calls timed out in a row, that make a plugin hung:
    /// its group is killed and it is restarted.
    pub hung_after: u32,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            restart_delay_ms: 100,
            restart_delay_max_ms: 30_000,
            quarantine_after: 5,
            quarantine_window_ms: 60_000,
            health_interval_ms: 5000,
            health_timeout_ms: 1000,
            hung_after: 3,
        }
    }
}

/// The bounds on what hosts may hold on the host socket (`[supervisor]` keys of the same names).
/// Together with the per-field request limits they bound the supervisor's memory whatever hosts
/// do: at most `max_calls_in_flight` requests of at most `HOST_MAX_REQUEST_BYTES` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Host connections open at once; past it a new connection is closed at once.
    pub max_connections: u32,
    /// Calls in flight on all connections together; past it `RESOURCE_EXHAUSTED`.
    pub max_calls_in_flight: u32,
    /// Calls in flight on one connection; past it `RESOURCE_EXHAUSTED`.
    pub max_calls_per_connection: u32,
    /// How long a new connection has to send the HTTP/2 preface, in ms.
    pub handshake_timeout_ms: u32,
    /// How long a connection with no call in flight may stay silent, in ms.
    pub idle_timeout_ms: u32,
    /// How long a call's request body may take to arrive after its headers, in ms; past it the
    /// call gets `DEADLINE_EXCEEDED` and frees its slot.
    pub body_timeout_ms: u32,
    /// Calls in flight beyond `max_calls_in_flight` that only `Admin` and `Health` may use, so
    /// that hosts holding every ordinary slot never lock an operator out.
    pub reserved_admin_calls: u32,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            max_connections: 128,
            max_calls_in_flight: 128,
            max_calls_per_connection: 64,
            handshake_timeout_ms: 5000,
            idle_timeout_ms: 300_000,
            body_timeout_ms: 5000,
            reserved_admin_calls: 4,
        }
    }
}

/// Upper bound of the count limits in [`HostLimits`].
const MAX_HOST_COUNT: u32 = 65_536;
/// Most slots reserved for `Admin` and `Health`.
const MAX_RESERVED_ADMIN_CALLS: u32 = 1024;

/// `[hooks.before_tool_call]`, `[hooks.before_session_create]`, `[hooks.session_created]`.
#[derive(Debug, Clone, Default)]
pub struct HooksConfig {
    /// `[hooks.before_tool_call]`.
    pub before_tool_call: HookConfig,
    /// `[hooks.before_session_create]`.
    pub before_session_create: HookConfig,
    /// `[hooks.session_created]`.
    pub session_created: HookConfig,
}

/// Settings of one hook.
#[derive(Debug, Clone)]
pub struct HookConfig {
    /// The hook's deadline, 1..=600000 ms.
    pub timeout_ms: u32,
    /// Rerun the policy stage when the hook stage changed the params (`before_tool_call` only).
    pub revalidate: bool,
}

/// What a failure of a plugin means for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The failure blocks (the default).
    Deny,
    /// The failure is recorded and passed over (non-trusted plugins only).
    Skip,
}

/// One `[[plugin]]`.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// Name, metadata namespace and socket file name; `[a-z0-9-]{1,63}`, unique.
    pub name: String,
    /// Absolute path of the executable (relative ones resolved against the configuration's directory).
    pub command: PathBuf,
    /// Arguments after the command.
    pub args: Vec<String>,
    /// May register for the policy stage.
    pub trusted: bool,
    /// Overrides the priority the plugin registers with.
    pub priority: Option<i32>,
    /// Overrides the timeout the plugin registers with, 1..=600000 ms.
    pub timeout_ms: Option<u32>,
    /// What a failure of this plugin means.
    pub on_failure: OnFailure,
    /// Variables set in the plugin's environment.
    pub env: BTreeMap<String, String>,
    /// Variables passed through from the supervisor's environment.
    pub inherit_env: Vec<String>,
    /// The hooks it may take part in; `None` means whatever it registers for.
    pub hooks: Option<Vec<Hook>>,
    /// `mode`: enforce (default) or shadow.
    pub mode: PluginMode,
    /// `sha256`: the digest `command` must have, checked on the very file executed.
    pub sha256: Option<[u8; 32]>,
    /// `[plugin.sandbox]`.
    pub sandbox: PluginSandbox,
    /// `speculative`: in the hook stage, asked at the same time as the policy stage (§4.6).
    pub speculative: bool,
    /// `rewrites_params`: false makes a rewrite of params from this plugin an invalid answer.
    pub rewrites_params: bool,
    /// `endpoint` and `[plugin.tls]`: a remote plugin, reached over TCP with mutual TLS and
    /// never started (§2.6); `command` is then empty.
    pub remote: Option<RemoteConfig>,
}

impl PluginConfig {
    /// A plugin named `name` running `command` with every other key at its default (for tools
    /// that start one plugin without a configuration file: `conformance`, `bench`).
    pub fn new(name: &str, command: PathBuf) -> PluginConfig {
        PluginConfig {
            name: name.to_owned(),
            command,
            args: Vec::new(),
            trusted: false,
            priority: None,
            timeout_ms: None,
            on_failure: OnFailure::Deny,
            env: BTreeMap::new(),
            inherit_env: Vec::new(),
            hooks: None,
            mode: PluginMode::Enforce,
            sha256: None,
            sandbox: PluginSandbox::default(),
            speculative: false,
            rewrites_params: true,
            remote: None,
        }
    }
}

/// Why a configuration could not be loaded. Displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. The I/O error is part of the message, so it is not also a
    /// `source` (which would print it twice in an error chain).
    #[error("{file}: {context}: {error}")]
    Io {
        /// The file, as given.
        file: String,
        /// What was being done, e.g. `cannot read`.
        context: &'static str,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{file}{}: {message}", .line.map(|line| format!(":{line}")).unwrap_or_default())]
    Invalid {
        /// The file, as given, or `<config>` when parsed from a string.
        file: String,
        /// 1-based line of the offending key, when known.
        line: Option<usize>,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            socket: PathBuf::from("/run/hookvisor/hookvisor.sock"),
            runtime_dir: PathBuf::from("/run/hookvisor"),
            socket_mode: 0o600,
            start_timeout_ms: DEFAULT_START_TIMEOUT_MS,
            stop_grace_ms: DEFAULT_STOP_GRACE_MS,
            worker_threads: DEFAULT_WORKER_THREADS,
            host_limits: HostLimits::default(),
            lifecycle: Lifecycle::default(),
            sandbox: SandboxMode::default(),
            plugin_uids: DEFAULT_PLUGIN_UIDS,
            state_dir: default_state_dir(),
            keep_plugins_on_crash: false,
            keep_plugins_grace_ms: DEFAULT_KEEP_PLUGINS_GRACE_MS,
        }
    }
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            timeout_ms: DEFAULT_HOOK_TIMEOUT_MS,
            revalidate: true,
        }
    }
}

impl Config {
    /// Reads (at most [`MAX_CONFIG_BYTES`]), parses and validates the file at `path`. It need
    /// not be a regular file (`--config /dev/stdin` works); it must be UTF-8.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let file = path.display().to_string();
        let io = |error| ConfigError::Io {
            file: file.clone(),
            context: "cannot read",
            error,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::Invalid {
                file,
                line: None,
                message: format!(
                    "the file is larger than 1 MiB ({MAX_CONFIG_BYTES} bytes); is it the \
                     configuration?"
                ),
            });
        }
        let text = String::from_utf8(bytes).map_err(|err| {
            let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
            ConfigError::Invalid {
                file: file.clone(),
                line: Some(1 + valid.iter().filter(|&&b| b == b'\n').count()),
                message: "the file is not UTF-8 text".to_owned(),
            }
        })?;
        Config::parse(&text, Some(path))
    }

    /// Parses and validates `text`; relative paths resolve against `source`'s directory, or the
    /// current directory when there is no `source`.
    pub fn parse(text: &str, source: Option<&Path>) -> Result<Config, ConfigError> {
        let file = source.map_or_else(|| "<config>".to_owned(), |path| path.display().to_string());
        let dir = source
            .and_then(Path::parent)
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base_dir = std::path::absolute(dir).map_err(|error| ConfigError::Io {
            file: file.clone(),
            context: "cannot resolve its directory",
            error,
        })?;
        let doc = Document {
            file,
            text,
            base_dir,
            line_starts: std::cell::OnceCell::new(),
        };
        let raw = doc.deserialize()?;
        let mut config = doc.validate(raw)?;
        config.source = source.map(Path::to_path_buf);
        Ok(config)
    }

    /// The settings of `hook`; `Hook::Unspecified` gets those of `before_tool_call`.
    pub fn hook(&self, hook: Hook) -> &HookConfig {
        match hook {
            Hook::Unspecified | Hook::BeforeToolCall => &self.hooks.before_tool_call,
            Hook::BeforeSessionCreate => &self.hooks.before_session_create,
            Hook::SessionCreated => &self.hooks.session_created,
        }
    }

    /// The socket instance `instance` of `plugin` is told to serve on:
    /// `runtime_dir/NAME/INSTANCE.sock`, in the plugin's own socket directory. Each instance
    /// has its own, so a new instance can start beside the old one (a reload, a restart)
    /// without touching its socket.
    pub fn plugin_socket(&self, plugin: &PluginConfig, instance: u32) -> PathBuf {
        socket_in(&self.supervisor.runtime_dir.join(&plugin.name), instance)
    }

    /// The plugin whose socket directory is `path`, or holds it, if any.
    pub fn plugin_of_socket(&self, path: &Path) -> Option<&PluginConfig> {
        let runtime_dir = self.supervisor.runtime_dir.as_path();
        let dir = if path.parent() == Some(runtime_dir) {
            path
        } else {
            path.parent()
                .filter(|dir| dir.parent() == Some(runtime_dir))?
        };
        let name = dir.file_name()?.to_str()?;
        self.plugins.iter().find(|p| p.name == name)
    }
}

/// The largest instance number a plugin socket name carries; instance numbers wrap around to 1
/// after it (at most two instances of a plugin are alive at once).
pub const MAX_INSTANCE: u32 = 99_999;

/// The socket of instance `instance` in a plugin's socket directory: `DIR/INSTANCE.sock`.
pub fn socket_in(socket_dir: &Path, instance: u32) -> PathBuf {
    socket_dir.join(format!("{instance}.sock"))
}

// The file as serde sees it. Values that need checking beyond their TOML type are `Spanned`, so
// an error can name their line; integers are `i64` so a range error can say what was written.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    supervisor: RawSupervisor,
    #[serde(default)]
    hooks: RawHooks,
    #[serde(default)]
    plugin: Vec<RawPlugin>,
    audit: Option<RawAudit>,
    metrics: Option<RawMetrics>,
    tracing: Option<RawTracing>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: Spanned<String>,
    #[serde(default)]
    log_params: bool,
    queue_lines: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTracing {
    otlp_endpoint: Spanned<String>,
    service_name: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSupervisor {
    socket: Option<Spanned<String>>,
    runtime_dir: Option<Spanned<String>>,
    socket_mode: Option<Spanned<String>>,
    start_timeout_ms: Option<Spanned<i64>>,
    stop_grace_ms: Option<Spanned<i64>>,
    worker_threads: Option<Spanned<i64>>,
    max_connections: Option<Spanned<i64>>,
    max_calls_in_flight: Option<Spanned<i64>>,
    max_calls_per_connection: Option<Spanned<i64>>,
    handshake_timeout_ms: Option<Spanned<i64>>,
    idle_timeout_ms: Option<Spanned<i64>>,
    body_timeout_ms: Option<Spanned<i64>>,
    reserved_admin_calls: Option<Spanned<i64>>,
    restart_delay_ms: Option<Spanned<i64>>,
    restart_delay_max_ms: Option<Spanned<i64>>,
    quarantine_after: Option<Spanned<i64>>,
    quarantine_window_ms: Option<Spanned<i64>>,
    health_interval_ms: Option<Spanned<i64>>,
    health_timeout_ms: Option<Spanned<i64>>,
    hung_after: Option<Spanned<i64>>,
    sandbox: Option<Spanned<String>>,
    plugin_uids: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    keep_plugins_on_crash: Option<bool>,
    keep_plugins_grace_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    #[serde(default)]
    before_tool_call: RawToolCallHook,
    #[serde(default)]
    before_session_create: RawHook,
    #[serde(default)]
    session_created: RawHook,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawToolCallHook {
    timeout_ms: Option<Spanned<i64>>,
    revalidate: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHook {
    timeout_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: Spanned<String>,
    command: Option<Spanned<String>>,
    endpoint: Option<Spanned<String>>,
    tls: Option<remote::RawTls>,
    #[serde(default)]
    args: Vec<Spanned<String>>,
    #[serde(default)]
    trusted: bool,
    priority: Option<Spanned<i64>>,
    timeout_ms: Option<Spanned<i64>>,
    on_failure: Option<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    inherit_env: Vec<Spanned<String>>,
    hooks: Option<Vec<Spanned<String>>>,
    mode: Option<Spanned<String>>,
    sha256: Option<Spanned<String>>,
    sandbox: Option<sandbox::RawSandbox>,
    speculative: Option<Spanned<bool>>,
    rewrites_params: Option<bool>,
}

/// The text being loaded, with what is needed to resolve its paths and place its errors.
struct Document<'a> {
    file: String,
    text: &'a str,
    base_dir: PathBuf,
    /// Where each line after the first starts, made once on first use: every plugin's line is
    /// looked up, and counting from the start each time made a large file quadratic (a
    /// 1 MiB configuration of 22,000 plugins took 8 s to check).
    line_starts: std::cell::OnceCell<Vec<usize>>,
}

impl Document<'_> {
    fn deserialize(&self) -> Result<RawConfig, ConfigError> {
        let deserializer = toml::de::Deserializer::parse(self.text).map_err(|err| {
            // Quote what the parser stopped at when it is short, e.g. the key of "duplicate key".
            let at = err
                .span()
                .and_then(|span| self.text.get(span))
                .filter(|s| !s.is_empty() && s.len() <= 40 && !s.contains('\n'))
                .map(|s| format!(" at `{s}`"))
                .unwrap_or_default();
            self.error(err.span(), format!("invalid TOML: {}{at}", err.message()))
        })?;
        RawConfig::deserialize(deserializer).map_err(|err| self.shape_error(&err))
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let socket_at = (raw.supervisor.socket.as_ref())
            .or(raw.supervisor.runtime_dir.as_ref())
            .map(Spanned::span);
        let supervisor = self.supervisor(raw.supervisor)?;
        let lock = crate::files::layout::lock_path(&supervisor.runtime_dir);
        if supervisor.socket == lock {
            return Err(self.error(
                socket_at,
                format!(
                    "key `socket`: `{}` is the runtime directory's lock file; the host socket \
                     needs a path of its own",
                    lock.display()
                ),
            ));
        }
        let hooks = HooksConfig {
            before_tool_call: HookConfig {
                timeout_ms: self.hook_timeout(raw.hooks.before_tool_call.timeout_ms)?,
                revalidate: raw.hooks.before_tool_call.revalidate.unwrap_or(true),
            },
            before_session_create: HookConfig {
                timeout_ms: self.hook_timeout(raw.hooks.before_session_create.timeout_ms)?,
                ..HookConfig::default()
            },
            session_created: HookConfig {
                timeout_ms: self.hook_timeout(raw.hooks.session_created.timeout_ms)?,
                ..HookConfig::default()
            },
        };
        let mut plugins: Vec<PluginConfig> = Vec::with_capacity(raw.plugin.len());
        let mut lines = Vec::with_capacity(raw.plugin.len());
        let mut name_lines: BTreeMap<String, usize> = BTreeMap::new();
        let mut speculative = Vec::new();
        for raw in raw.plugin {
            let name_line = self.line(raw.name.span().start);
            if let Some(first) = name_lines.get(raw.name.get_ref()) {
                return Err(self.error(
                    Some(raw.name.span()),
                    format!(
                        "plugin name `{}` is already used by the [[plugin]] on line {first}; \
                         names must be unique",
                        raw.name.get_ref()
                    ),
                ));
            }
            let speculative_at = raw.speculative.as_ref().map(Spanned::span);
            let plugin = self.plugin(raw, &supervisor)?;
            if plugin.speculative {
                speculative.push((plugins.len(), speculative_at));
            }
            name_lines.insert(plugin.name.clone(), name_line);
            lines.push(name_line);
            plugins.push(plugin);
        }
        self.distinct_users(&plugins, &lines)?;
        self.speculation_is_safe(&plugins, &speculative, &name_lines)?;
        let audit = match raw.audit {
            None => None,
            Some(audit) => Some(AuditConfig {
                path: if audit.path.get_ref() == "-" {
                    AuditPath::Stdout
                } else {
                    AuditPath::File(self.path(&audit.path, "path")?)
                },
                log_params: audit.log_params,
                queue_lines: match audit.queue_lines {
                    None => DEFAULT_AUDIT_QUEUE_LINES,
                    Some(value) => match u32::try_from(*value.get_ref()) {
                        Ok(n) if (1..=MAX_AUDIT_QUEUE_LINES).contains(&n) => n,
                        _ => {
                            return Err(self.key_error(
                                &value,
                                "queue_lines",
                                format!(
                                    "{} is out of range; expected 1..={MAX_AUDIT_QUEUE_LINES}",
                                    value.get_ref()
                                ),
                            ));
                        }
                    },
                },
            }),
        };
        let metrics = match raw.metrics {
            None => None,
            Some(metrics) => Some(MetricsConfig {
                listen: metrics.listen.get_ref().parse().map_err(|_| {
                    self.key_error(
                        &metrics.listen,
                        "listen",
                        format!(
                            "{:?} is not an address and port, e.g. \"127.0.0.1:9464\"",
                            metrics.listen.get_ref()
                        ),
                    )
                })?,
            }),
        };
        Ok(Config {
            source: None,
            dir: self.base_dir.clone(),
            supervisor,
            hooks,
            plugins,
            audit,
            metrics,
            tracing: raw.tracing.map(|t| self.tracing(t)).transpose()?,
        })
    }

    /// `[tracing]`: the collector's URL (`http`, a host, a port, nothing else) and the name.
    fn tracing(&self, raw: RawTracing) -> Result<TracingConfig, ConfigError> {
        let url = raw.otlp_endpoint.get_ref();
        let bad = |why: &str| {
            self.key_error(
                &raw.otlp_endpoint,
                "otlp_endpoint",
                format!("{url:?} {why}; expected http://HOST:PORT, e.g. \"http://127.0.0.1:4317\""),
            )
        };
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(if url.starts_with("https://") {
                bad(
                    "uses https, which this build does not export over (run a collector on \
                     this machine, reached over http, and let it forward with TLS)",
                )
            } else {
                bad("is not an http:// URL")
            });
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let parsed = authority.parse::<http::uri::Authority>().ok();
        match parsed {
            _ if authority.is_empty() => return Err(bad("names no host")),
            _ if authority.contains(['/', '?', '#', '@']) => {
                return Err(bad("has more than a host and a port"));
            }
            None => return Err(bad("has no valid host and port")),
            Some(a) if a.host().is_empty() => return Err(bad("names no host")),
            Some(a) if a.port_u16().is_none_or(|p| p == 0) => {
                return Err(bad("names no port (OTLP/gRPC's is 4317)"));
            }
            Some(_) => {}
        }
        let service_name = match raw.service_name {
            None => DEFAULT_SERVICE_NAME.to_owned(),
            Some(name) => {
                let text = name.get_ref();
                if text.is_empty() || text.len() > 128 || text.chars().any(char::is_control) {
                    return Err(self.key_error(
                        &name,
                        "service_name",
                        format!("{text:?} must be 1 to 128 bytes with no control characters"),
                    ));
                }
                text.clone()
            }
        };
        Ok(TracingConfig {
            otlp_endpoint: format!("http://{authority}"),
            service_name,
        })
    }

    fn lifecycle(
        &self,
        raw: [Option<Spanned<i64>>; 7],
        defaults: Lifecycle,
    ) -> Result<Lifecycle, ConfigError> {
        let [delay, delay_max, after, window, interval, timeout, hung] = raw;
        let lifecycle = Lifecycle {
            restart_delay_ms: self
                .millis(delay, "restart_delay_ms", 1)?
                .unwrap_or(defaults.restart_delay_ms),
            restart_delay_max_ms: self
                .millis(delay_max, "restart_delay_max_ms", 1)?
                .unwrap_or(defaults.restart_delay_max_ms),
            quarantine_after: self
                .count(after, "quarantine_after")?
                .unwrap_or(defaults.quarantine_after),
            quarantine_window_ms: self
                .millis(window, "quarantine_window_ms", 1)?
                .unwrap_or(defaults.quarantine_window_ms),
            health_interval_ms: self
                .millis(interval, "health_interval_ms", 1)?
                .unwrap_or(defaults.health_interval_ms),
            health_timeout_ms: self
                .millis(timeout, "health_timeout_ms", 1)?
                .unwrap_or(defaults.health_timeout_ms),
            hung_after: self
                .count(hung, "hung_after")?
                .unwrap_or(defaults.hung_after),
        };
        Ok(lifecycle)
    }

    fn supervisor(&self, mut raw: RawSupervisor) -> Result<SupervisorConfig, ConfigError> {
        let raw_lifecycle = [
            raw.restart_delay_ms.take(),
            raw.restart_delay_max_ms.take(),
            raw.quarantine_after.take(),
            raw.quarantine_window_ms.take(),
            raw.health_interval_ms.take(),
            raw.health_timeout_ms.take(),
            raw.hung_after.take(),
        ];
        let defaults = SupervisorConfig::default();
        let socket = match &raw.socket {
            Some(socket) => self.socket_path(socket)?,
            None => defaults.socket,
        };
        let runtime_dir = match &raw.runtime_dir {
            Some(dir) => self.path(dir, "runtime_dir")?,
            None => defaults.runtime_dir,
        };
        let socket_mode = match &raw.socket_mode {
            Some(mode) => self.socket_mode(mode)?,
            None => defaults.socket_mode,
        };
        let state_dir = match &raw.state_dir {
            Some(dir) => self.path(dir, "state_dir")?,
            None => defaults.state_dir,
        };
        Ok(SupervisorConfig {
            socket,
            runtime_dir,
            socket_mode,
            start_timeout_ms: self
                .millis(raw.start_timeout_ms, "start_timeout_ms", 1)?
                .unwrap_or(DEFAULT_START_TIMEOUT_MS),
            stop_grace_ms: self
                .millis(raw.stop_grace_ms, "stop_grace_ms", 0)?
                .unwrap_or(DEFAULT_STOP_GRACE_MS),
            worker_threads: match raw.worker_threads {
                None => DEFAULT_WORKER_THREADS,
                Some(value) => match u32::try_from(*value.get_ref()) {
                    Ok(n) if (1..=MAX_WORKER_THREADS).contains(&n) => n,
                    _ => {
                        return Err(self.key_error(
                            &value,
                            "worker_threads",
                            format!(
                                "{} is out of range; expected 1..={MAX_WORKER_THREADS}",
                                value.get_ref()
                            ),
                        ));
                    }
                },
            },
            host_limits: HostLimits {
                max_connections: self
                    .count(raw.max_connections, "max_connections")?
                    .unwrap_or(defaults.host_limits.max_connections),
                max_calls_in_flight: self
                    .count(raw.max_calls_in_flight, "max_calls_in_flight")?
                    .unwrap_or(defaults.host_limits.max_calls_in_flight),
                max_calls_per_connection: self
                    .count(raw.max_calls_per_connection, "max_calls_per_connection")?
                    .unwrap_or(defaults.host_limits.max_calls_per_connection),
                handshake_timeout_ms: self
                    .millis(raw.handshake_timeout_ms, "handshake_timeout_ms", 1)?
                    .unwrap_or(defaults.host_limits.handshake_timeout_ms),
                idle_timeout_ms: self
                    .millis(raw.idle_timeout_ms, "idle_timeout_ms", 1)?
                    .unwrap_or(defaults.host_limits.idle_timeout_ms),
                body_timeout_ms: self
                    .millis(raw.body_timeout_ms, "body_timeout_ms", 1)?
                    .unwrap_or(defaults.host_limits.body_timeout_ms),
                reserved_admin_calls: match raw.reserved_admin_calls {
                    None => defaults.host_limits.reserved_admin_calls,
                    Some(value) => match u32::try_from(*value.get_ref()) {
                        Ok(n) if n <= MAX_RESERVED_ADMIN_CALLS => n,
                        _ => {
                            return Err(self.key_error(
                                &value,
                                "reserved_admin_calls",
                                format!(
                                    "{} is out of range; expected 0..={MAX_RESERVED_ADMIN_CALLS}",
                                    value.get_ref()
                                ),
                            ));
                        }
                    },
                },
            },
            lifecycle: self.lifecycle(raw_lifecycle, defaults.lifecycle)?,
            sandbox: self.sandbox_mode(raw.sandbox.as_ref())?,
            plugin_uids: self.plugin_uids(raw.plugin_uids.as_ref())?,
            state_dir,
            keep_plugins_on_crash: raw.keep_plugins_on_crash.unwrap_or(false),
            keep_plugins_grace_ms: match raw.keep_plugins_grace_ms {
                None => DEFAULT_KEEP_PLUGINS_GRACE_MS,
                Some(value) => match u32::try_from(*value.get_ref()) {
                    Ok(ms) if KEEP_PLUGINS_GRACE_RANGE_MS.contains(&ms) => ms,
                    _ => {
                        return Err(self.key_error(
                            &value,
                            "keep_plugins_grace_ms",
                            format!(
                                "{} is out of range; expected {}..={} milliseconds",
                                value.get_ref(),
                                KEEP_PLUGINS_GRACE_RANGE_MS.start(),
                                KEEP_PLUGINS_GRACE_RANGE_MS.end()
                            ),
                        ));
                    }
                },
            },
        })
    }

    fn count(&self, value: Option<Spanned<i64>>, key: &str) -> Result<Option<u32>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        match u32::try_from(*value.get_ref()) {
            Ok(n) if (1..=MAX_HOST_COUNT).contains(&n) => Ok(Some(n)),
            _ => Err(self.key_error(
                &value,
                key,
                format!(
                    "{} is out of range; expected 1..={MAX_HOST_COUNT}",
                    value.get_ref()
                ),
            )),
        }
    }

    fn hook_timeout(&self, raw: Option<Spanned<i64>>) -> Result<u32, ConfigError> {
        Ok(self
            .millis(raw, "timeout_ms", 1)?
            .unwrap_or(DEFAULT_HOOK_TIMEOUT_MS))
    }

    fn plugin(
        &self,
        mut raw: RawPlugin,
        supervisor: &SupervisorConfig,
    ) -> Result<PluginConfig, ConfigError> {
        let name = self.plugin_name(&raw.name)?;
        // The longest name an instance socket can have.
        let socket_dir = supervisor.runtime_dir.join(&name);
        let socket = socket_in(&socket_dir, MAX_INSTANCE);
        if supervisor.socket.starts_with(&socket_dir) {
            return Err(self.key_error(
                &raw.name,
                "name",
                format!(
                    "the plugin's socket directory `{}` would hold or be the host socket; rename \
                     the plugin or move `socket` in [supervisor]",
                    socket_dir.display()
                ),
            ));
        }
        self.check_socket_len(
            &socket,
            &raw.name,
            "name",
            "; shorten `runtime_dir` or the plugin name",
        )?;

        let remote = match &raw.endpoint {
            Some(endpoint) => Some(self.remote(
                endpoint,
                raw.tls.take(),
                remote::ProcessKeys {
                    command: raw.command.as_ref(),
                    args: raw.args.first(),
                    sha256: raw.sha256.as_ref(),
                    env: raw.env.keys().next(),
                    inherit_env: raw.inherit_env.first(),
                    sandbox: raw.sandbox.is_some(),
                },
            )?),
            None if raw.tls.is_some() => {
                return Err(self.key_error(
                    &raw.name,
                    "tls",
                    "[plugin.tls] is for a remote plugin: add an `endpoint` or remove the table",
                ));
            }
            None => None,
        };
        let command = match (&raw.command, &remote) {
            (Some(command), _) => self.path(command, "command")?,
            (None, Some(_)) => PathBuf::new(),
            (None, None) => {
                return Err(self.key_error(
                    &raw.name,
                    "command",
                    "missing: a plugin needs a `command` to start, or an `endpoint` to reach",
                ));
            }
        };
        let mut args = Vec::with_capacity(raw.args.len());
        for arg in raw.args {
            self.no_nul(&arg, "args")?;
            args.push(arg.into_inner());
        }

        let priority = match raw.priority {
            Some(priority) => Some(i32::try_from(*priority.get_ref()).map_err(|_| {
                self.key_error(
                    &priority,
                    "priority",
                    format!(
                        "{} does not fit; expected {}..={}",
                        priority.get_ref(),
                        i32::MIN,
                        i32::MAX
                    ),
                )
            })?),
            None => None,
        };
        let timeout_ms = self.millis(raw.timeout_ms, "timeout_ms", 1)?;

        let on_failure = match &raw.on_failure {
            None => OnFailure::Deny,
            Some(value) => match value.get_ref().as_str() {
                "deny" => OnFailure::Deny,
                "skip" if raw.trusted => {
                    return Err(self.key_error(
                        value,
                        "on_failure",
                        "\"skip\" is only allowed for plugins that are not trusted",
                    ));
                }
                "skip" => OnFailure::Skip,
                other => {
                    return Err(self.key_error(
                        value,
                        "on_failure",
                        format!("{other:?} is not a failure policy; expected \"deny\" or \"skip\""),
                    ));
                }
            },
        };

        let mut env = BTreeMap::new();
        for (key, value) in raw.env {
            self.env_name(&key, "env")?;
            self.no_nul(&value, "env")?;
            env.insert(key.into_inner(), value.into_inner());
        }
        let mut inherit_env = Vec::with_capacity(raw.inherit_env.len());
        for var in raw.inherit_env {
            self.env_name(&var, "inherit_env")?;
            if env.contains_key(var.get_ref()) {
                return Err(self.key_error(
                    &var,
                    "inherit_env",
                    format!(
                        "`{}` is also set in `env`; a variable is either set or inherited",
                        var.get_ref()
                    ),
                ));
            }
            inherit_env.push(var.into_inner());
        }

        let hooks = raw
            .hooks
            .map(|entries| self.hook_list(&entries))
            .transpose()?;
        let mode = match &raw.mode {
            None => PluginMode::Enforce,
            Some(value) => match value.get_ref().as_str() {
                "enforce" => PluginMode::Enforce,
                "shadow" if raw.trusted => {
                    return Err(self.key_error(
                        value,
                        "mode",
                        "a shadow plugin never runs in the policy stage; it cannot be trusted",
                    ));
                }
                "shadow" => PluginMode::Shadow,
                other => {
                    return Err(self.key_error(
                        value,
                        "mode",
                        format!("{other:?} is not a mode; expected \"enforce\" or \"shadow\""),
                    ));
                }
            },
        };

        let speculative = match &raw.speculative {
            Some(value) if *value.get_ref() => {
                let problem = if raw.trusted {
                    "a trusted plugin may run in the policy stage, which is never speculative; \
                     `speculative` is for hook plugins"
                } else if mode == PluginMode::Shadow {
                    "a shadow plugin is never waited for, so `speculative` would change nothing"
                } else {
                    ""
                };
                if !problem.is_empty() {
                    return Err(self.key_error(value, "speculative", problem));
                }
                true
            }
            _ => false,
        };

        Ok(PluginConfig {
            name,
            command,
            args,
            trusted: raw.trusted,
            priority,
            timeout_ms,
            on_failure,
            env,
            inherit_env,
            hooks,
            mode,
            sha256: self.sha256(raw.sha256.as_ref(), "sha256")?,
            sandbox: self.plugin_sandbox(raw.sandbox)?,
            speculative,
            rewrites_params: raw.rewrites_params.unwrap_or(true),
            remote,
        })
    }

    /// A speculative hook is asked with the host's params while the policy stage runs (§4.6), so
    /// it would see params before a policy could rewrite (redact) them: every trusted plugin
    /// that can be a policy of a hook it takes part in must be declared `rewrites_params =
    /// false` (a rewrite from it is then an invalid answer). Session hooks see the host's
    /// request whatever the policies answer, so only `before_tool_call` matters here.
    fn speculation_is_safe(
        &self,
        plugins: &[PluginConfig],
        speculative: &[(usize, Option<Range<usize>>)],
        name_lines: &BTreeMap<String, usize>,
    ) -> Result<(), ConfigError> {
        let on_tool_calls = |p: &PluginConfig| {
            p.hooks
                .as_ref()
                .is_none_or(|h| h.contains(&Hook::BeforeToolCall))
        };
        // One pass for the policy and one for the speculative hooks: a configuration with
        // thousands of plugins is checked in linear time.
        let Some(policy) = plugins
            .iter()
            .find(|p| p.trusted && p.rewrites_params && on_tool_calls(p))
        else {
            return Ok(());
        };
        for (index, at) in speculative {
            let Some(hook) = plugins.get(*index).filter(|p| on_tool_calls(p)) else {
                continue;
            };
            let line = name_lines.get(&policy.name).copied().unwrap_or(0);
            return Err(self.error(
                at.clone(),
                format!(
                    "key `speculative`: plugin `{}` would be asked with the host's params \
                     before the trusted plugin `{}` (line {line}) could rewrite them; set \
                     `rewrites_params = false` on `{}` or remove `speculative`",
                    hook.name, policy.name, policy.name
                ),
            ));
        }
        Ok(())
    }

    fn plugin_name(&self, name: &Spanned<String>) -> Result<String, ConfigError> {
        let text = name.get_ref();
        let valid = text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let problem = if text.is_empty() {
            "plugin name is empty; it must match [a-z0-9-]+".to_owned()
        } else if !valid {
            format!("plugin name `{text}` must match [a-z0-9-]+")
        } else if text.len() > MAX_NAME_CHARS {
            format!(
                "plugin name `{text}` is {} characters; at most {MAX_NAME_CHARS} are allowed",
                text.len()
            )
        } else {
            return Ok(text.clone());
        };
        Err(self.error(Some(name.span()), problem))
    }

    /// A `hooks = [...]` list, in the order written, repeats dropped.
    fn hook_list(&self, entries: &[Spanned<String>]) -> Result<Vec<Hook>, ConfigError> {
        let mut hooks = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(&(_, hook)) = HOOK_NAMES.iter().find(|(name, _)| name == entry.get_ref())
            else {
                let names: Vec<String> = HOOK_NAMES
                    .iter()
                    .map(|(name, _)| format!("{name:?}"))
                    .collect();
                let problem = format!(
                    "{:?} is not a hook; expected one of {}",
                    entry.get_ref(),
                    names.join(", ")
                );
                return Err(self.key_error(entry, "hooks", problem));
            };
            if !hooks.contains(&hook) {
                hooks.push(hook);
            }
        }
        Ok(hooks)
    }

    fn env_name(&self, var: &Spanned<String>, key: &str) -> Result<(), ConfigError> {
        let name = var.get_ref();
        let problem = if name.is_empty() {
            "a variable name must not be empty".to_owned()
        } else if name.contains(['=', '\0']) {
            format!("variable name {name:?} must not contain '=' or NUL")
        } else if RESERVED_ENV.contains(&name.as_str()) {
            format!("`{name}` is set by hookvisor itself and cannot be configured")
        } else {
            return Ok(());
        };
        Err(self.key_error(var, key, problem))
    }

    fn no_nul(&self, value: &Spanned<String>, key: &str) -> Result<(), ConfigError> {
        if value.get_ref().contains('\0') {
            return Err(self.key_error(
                value,
                key,
                format!("{:?} contains a NUL byte", value.get_ref()),
            ));
        }
        Ok(())
    }

    /// A path from the file; relative ones are joined onto the configuration's directory.
    fn path(&self, value: &Spanned<String>, key: &str) -> Result<PathBuf, ConfigError> {
        if value.get_ref().is_empty() {
            return Err(self.key_error(value, key, "the path must not be empty"));
        }
        self.no_nul(value, key)?;
        let path = self.base_dir.join(value.get_ref());
        Ok(path
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect())
    }

    /// The host socket: it and the staging name it is first bound under must fit a Unix
    /// socket address (see [`crate::files::layout::socket_path_problem`]).
    fn socket_path(&self, value: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        let path = self.path(value, "socket")?;
        if let Some(problem) = crate::files::layout::socket_path_problem(&path) {
            return Err(self.key_error(value, "socket", problem));
        }
        Ok(path)
    }

    fn check_socket_len(
        &self,
        path: &Path,
        at: &Spanned<String>,
        key: &str,
        hint: &str,
    ) -> Result<(), ConfigError> {
        let len = path.as_os_str().len();
        if len > MAX_SOCKET_PATH_BYTES {
            return Err(self.key_error(
                at,
                key,
                format!(
                    "socket path `{}` is {len} bytes; a Unix socket path holds at most \
                     {MAX_SOCKET_PATH_BYTES}{hint}",
                    path.display()
                ),
            ));
        }
        Ok(())
    }

    fn socket_mode(&self, value: &Spanned<String>) -> Result<u32, ConfigError> {
        let text = value.get_ref();
        let octal =
            !text.is_empty() && text.len() <= 4 && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match u32::from_str_radix(text, 8) {
            Ok(mode) if octal && mode <= 0o777 => Ok(mode),
            _ => Err(self.key_error(
                value,
                "socket_mode",
                format!("{text:?} is not a permission mode; expected octal digits up to \"0777\", like \"0660\""),
            )),
        }
    }

    /// A duration in milliseconds, checked against `min..=MAX_TIMEOUT_MS`.
    fn millis(
        &self,
        value: Option<Spanned<i64>>,
        key: &str,
        min: u32,
    ) -> Result<Option<u32>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        match u32::try_from(*value.get_ref()) {
            Ok(ms) if (min..=MAX_TIMEOUT_MS).contains(&ms) => Ok(Some(ms)),
            _ => Err(self.key_error(
                &value,
                key,
                format!(
                    "{} is out of range; expected {min}..={MAX_TIMEOUT_MS} milliseconds",
                    value.get_ref()
                ),
            )),
        }
    }

    /// Rewords a serde error from toml (unknown key, missing key, wrong type) into this module's
    /// one-line form. toml exposes the key path only through its `Display` without input, and
    /// serde's unknown-field message lists the expected keys in backticks; both are read here.
    fn shape_error(&self, err: &toml::de::Error) -> ConfigError {
        let mut bare = err.clone();
        bare.set_input(None);
        let rendered = bare.to_string();
        let path: Vec<&str> = rendered
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("in `")?.strip_suffix('`'))
            .map(|path| path.split('.').collect())
            .unwrap_or_default();
        let table = match path.as_slice() {
            [] => "at the top level".to_owned(),
            ["plugin"] => "in [[plugin]]".to_owned(),
            path => format!("in [{}]", path.join(".")),
        };
        let message = err.message();
        let message = if message.starts_with("unknown field `") {
            // "unknown field `KEY`, expected one of `a`, `b`": quoted names sit at odd positions.
            let mut quoted = message.split('`').skip(1).step_by(2);
            let key = quoted.next().unwrap_or_default();
            let expected: Vec<&str> = quoted.collect();
            match expected.as_slice() {
                [] => format!("unknown key `{key}` {table} (no keys are allowed here)"),
                [only] => format!("unknown key `{key}` {table} (expected: {only})"),
                all => format!(
                    "unknown key `{key}` {table} (expected one of: {})",
                    all.join(", ")
                ),
            }
        } else if let Some(key) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            format!("missing required key `{key}` {table}")
        } else if path.is_empty() {
            message.to_owned()
        } else {
            format!("key `{}`: {message}", path.join("."))
        };
        self.error(err.span(), message)
    }

    fn key_error<T>(
        &self,
        value: &Spanned<T>,
        key: &str,
        problem: impl std::fmt::Display,
    ) -> ConfigError {
        self.error(Some(value.span()), format!("key `{key}`: {problem}"))
    }

    fn error(&self, span: Option<Range<usize>>, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            line: span.map(|span| self.line(span.start)),
            // Keys may be quoted strings holding line breaks; the message stays one line.
            message: message.replace('\n', "\\n").replace('\r', "\\r"),
        }
    }

    /// The 1-based line holding byte `offset`.
    fn line(&self, offset: usize) -> usize {
        let starts = self.line_starts.get_or_init(|| {
            self.text
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1)
                .collect()
        });
        // Newlines before `offset`: the line starts at or before it.
        1 + starts.partition_point(|&start| start <= offset.min(self.text.len()))
    }
}

#[cfg(test)]
mod tests;
