//! The hookvisor contract (`hookvisor.v1`) as Rust types, clients and servers, generated from
//! `proto/hookvisor/v1/hookvisor.proto`. Both the supervisor and the Rust plugin SDK use it.
#![forbid(unsafe_code)]

/// Package `hookvisor.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("hookvisor.v1");
}

/// The protocol version this crate speaks (`HOOKVISOR_PROTOCOL_VERSION`, `Describe`).
pub const PROTOCOL_VERSION: u32 = 1;

/// The value of `HOOKVISOR_MAGIC_COOKIE` every plugin process is started with.
pub const MAGIC_COOKIE: &str = "d7f0c2a4-hookvisor-plugin-v1";

/// Environment variable names of the launch handshake (contract §2.2).
pub mod env {
    /// Absolute path the plugin must bind and serve gRPC on.
    pub const PLUGIN_SOCKET: &str = "HOOKVISOR_PLUGIN_SOCKET";
    /// The plugin's configured name (also its metadata namespace).
    pub const PLUGIN_NAME: &str = "HOOKVISOR_PLUGIN_NAME";
    /// The protocol version, `1`.
    pub const PROTOCOL_VERSION: &str = "HOOKVISOR_PROTOCOL_VERSION";
    /// Proof that the process was started by hookvisor.
    pub const MAGIC_COOKIE: &str = "HOOKVISOR_MAGIC_COOKIE";
}
