//! The top: `hookvisor serve` (sockets, health, reloads, drain and shutdown) and the operators'
//! `hookvisor.v1.Admin` service.
//!
//! - [`server`]: `hookvisor serve`.
//! - [`admin`]: the plugin table, a restart of one plugin, a reload, the hosts.

pub mod admin;
pub mod server;
