//! The operator's files, at the bottom of the stack: the configuration, validated whole at load
//! (contract §10), and the places hookvisor owns on disk (runtime directory, lock, host socket)
//! with the checks that refuse places another user could tamper with.
//!
//! - [`config`]: the TOML configuration.
//! - [`layout`]: the runtime directory, the lock, the host socket.
//! - [`preflight`]: what `serve` would refuse on disk, checked without side effects (it uses
//!   both; `config` uses `layout`, and `layout` uses neither).

pub mod config;
pub mod layout;
pub mod preflight;
