//! hookvisor runs an AI-agent host's policy plugins out of process, asks them every question the
//! host asks, and answers with one merged verdict. A plugin that crashes, hangs, answers late or
//! answers nonsense never lets a call through.
//!
//! `§N` in this crate's docs and comments refers to section N of `docs/contract.md`.
//!
//! # Layout
//! - [`admin`]: the operators' `hookvisor.v1.Admin` service on the host socket: the plugin
//!   table, a restart of one plugin, a reload, the hosts.
//! - [`admission`]: the bounds on host calls in flight (`RESOURCE_EXHAUSTED`), and tonic's
//!   decode failures answered as `INVALID_ARGUMENT`.
//! - [`audit`]: the decision audit log, one JSON line per verdict, written off the decision path.
//! - [`hosts`]: the hosts that report (`ReportHost`) and call: who they are, their calls per
//!   tool, silence and unasked runs (§4.5), bounded whatever they send.
//! - [`config`]: the TOML configuration, validated whole at load (contract §10).
//! - [`connections`]: the host socket's accept loop: connection limit, handshake and idle
//!   timeouts, back-off on accept errors.
//! - [`layout`]: the files hookvisor owns on disk (runtime directory, lock, host socket) and the
//!   checks that refuse places another user could tamper with; `preflight` for `check-config`.
//! - [`limits`]: the JSON and approval limits of §8, for host input and plugin answers alike.
//! - [`metrics`]: counters and histograms of verdicts and plugin calls, plugin states at scrape
//!   time, served as OpenMetrics text on `GET /metrics`.
//! - [`merge`]: the merge rules of §4 and §5, pure: per-plugin results in, verdict out.
//! - [`spawner`]: the one thread that forks plugins, each behind its [`spawner::reaper`] (the
//!   binary re-executed as a child subreaper, so no plugin process outlives the supervisor),
//!   the sweep for orphans, and the only `unsafe` code.
//! - [`plugin`]: one configured plugin: its owner task (the only one that changes its state), the
//!   snapshot calls read (phase and [`plugin::Record`]), its process ([`plugin::process`]:
//!   launch, handshake, typed exits, deadline-bounded calls, stop), the connection its calls go
//!   on ([`plugin::link`]: unary gRPC written on `h2`), its output in the log (levels, rate
//!   limit) and the set of plugins ([`plugin::PluginSet`]).
//! - [`sandbox`]: what each plugin may do (its own uid, Landlock, seccomp, limits), decided
//!   from its configuration and this machine, and its state and socket directories.
//! - [`routing`]: who takes part in a call (§3), pure: the trust rule, registration limits,
//!   the lineup.
//! - [`request`]: the host's requests checked against the limits, JSON made canonical.
//! - [`request_id`]: each host call's request id, taken from the host or made, carried to every
//!   plugin call as `x-hookvisor-request-id`.
//! - [`stages`]: the stages of §4 and §5 over a lineup of answerers, free of transport:
//!   a checked request and a budget in, a verdict with its trace out.
//! - [`stats`]: per-plugin calls, blocks, failures and recent latencies, for the admin service.
//! - [`shadow`]: shadow plugins, asked in tasks of their own and never waited for; the bound on
//!   their calls and the tally of their disagreements.
//! - [`generation`]: one configuration's plugins and hook settings as one value, swapped whole.
//! - [`drain`]: the shutdown drain of §6 (new calls refused, calls in flight counted).
//! - [`fuzzing`]: the checks the fuzz targets (`fuzz/`) and the corpus replay make on arbitrary
//!   input: the §8 parser, a plugin's response, the configuration, the audit line.
//! - [`service`]: the host-facing `hookvisor.v1.Hooks` service, a thin adapter over `stages`.
//! - [`server`]: `hookvisor serve`: sockets, health, drain and shutdown.
//!
//! The `hookvisor` command (its command line, logging and `hookvisor demo`) is the
//! `hookvisor-cli` package in `supervisor/cli/`.
#![deny(unsafe_code)]
// Nothing a host, a plugin or a configuration controls may panic the daemon.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

pub mod admin;
pub mod admission;
pub mod audit;
pub mod config;
pub mod connections;
pub mod drain;
#[doc(hidden)]
pub mod fuzzing;
pub mod generation;
pub mod hosts;
pub mod layout;
pub mod limits;
pub mod merge;
pub mod metrics;
pub mod plugin;
pub mod request;
pub mod request_id;
pub mod routing;
pub mod sandbox;
pub mod server;
pub mod service;
pub mod shadow;
#[allow(unsafe_code)]
pub mod spawner;
pub mod stages;
pub mod stats;
