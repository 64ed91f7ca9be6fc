//! The top: `hookvisor serve` (sockets, health, reloads, drain and shutdown) and the operators'
//! `hookvisor.v1.Admin` service.
//!
//! - [`server`]: `hookvisor serve`.
//! - [`admin`]: the plugin table, a restart of one plugin, a reload, the hosts, an upgrade.
//! - [`handover`]: an upgrade in place: the new binary's check, and what crosses its `execve`.

pub mod admin;
pub mod handover;
pub mod server;
