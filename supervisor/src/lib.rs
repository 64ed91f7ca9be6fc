//! hookvisor runs an AI-agent host's policy plugins out of process, asks them every question the
//! host asks, and answers with one merged verdict. A plugin that crashes, hangs, answers late or
//! answers nonsense never lets a call through.
//!
//! `§N` in this crate's docs and comments refers to section N of `docs/contract.md`.
//!
//! # Layout
//! Folders in a stack: each uses only the folders listed before it (and never one after it), so
//! the tree reads from the bottom up.
//! - [`files`]: the configuration (contract §10) and the places on disk hookvisor owns.
//! - [`decide`]: limits, requests, request ids, routing, stages and merge rules: deciding, free
//!   of processes and transport.
//! - [`plugin`]: one configured plugin (owner, process, link, output, set), the spawner and its
//!   reaper (the only `unsafe` code), the sandbox, and the generation of plugins in force.
//! - [`observe`]: the audit log, metrics, per-plugin figures, shadow plugins, the hosts.
//! - [`host`]: the host socket's connections, admission, the `Hooks` service, the drain.
//! - [`serve`]: `hookvisor serve` and the `Admin` service.
//! - [`fuzzing`]: the checks the fuzz targets (`fuzz/`) and the corpus replay make on arbitrary
//!   input (it reaches into every folder, and nothing uses it).
//!
//! The `hookvisor` command (its command line, logging and `hookvisor demo`) is the
//! `hookvisor-cli` package in `supervisor/cli/`.
#![deny(unsafe_code)]
// Nothing a host, a plugin or a configuration controls may panic the daemon.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

pub mod decide;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod observe;
pub mod plugin;
pub mod serve;
