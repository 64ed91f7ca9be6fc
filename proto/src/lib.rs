//! The hookvisor contract (`hookvisor.v1`) as Rust types, clients and servers, generated from
//! `proto/hookvisor/v1/hookvisor.proto` (and `admin.proto`, the operators' service). Both the supervisor and the Rust plugin SDK use it.
#![forbid(unsafe_code)]
// Nothing a host, a plugin or a configuration controls may panic the daemon.
#![deny(clippy::unwrap_used, clippy::expect_used)]

/// Package `hookvisor.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("hookvisor.v1");
}

/// The compiled descriptors of `hookvisor.proto` and `admin.proto`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hookvisor_descriptor.bin"));

/// The protocol version this crate speaks (`HOOKVISOR_PROTOCOL_VERSION`, `Describe`).
pub const PROTOCOL_VERSION: u32 = 1;

/// The value of `HOOKVISOR_MAGIC_COOKIE` every plugin process is started with.
pub const MAGIC_COOKIE: &str = "d7f0c2a4-hookvisor-plugin-v1";

/// Environment variable names of the launch handshake (`docs/contract.md` §2.2).
pub mod env {
    /// Absolute path the plugin must bind and serve gRPC on.
    pub const PLUGIN_SOCKET: &str = "HOOKVISOR_PLUGIN_SOCKET";
    /// The plugin's configured name (also its metadata namespace).
    pub const PLUGIN_NAME: &str = "HOOKVISOR_PLUGIN_NAME";
    /// The protocol version, `1`.
    pub const PROTOCOL_VERSION: &str = "HOOKVISOR_PROTOCOL_VERSION";
    /// Proof that the process was started by hookvisor.
    pub const MAGIC_COOKIE: &str = "HOOKVISOR_MAGIC_COOKIE";
    /// The plugin's own state directory, writable and kept across restarts (§2.2); `HOME` and
    /// `TMPDIR` name it too.
    pub const PLUGIN_STATE_DIR: &str = "HOOKVISOR_PLUGIN_STATE_DIR";
    /// Remote mode (§2.6): the TCP address (`host:port`, port 0 for any) an SDK serves the
    /// plugin on with TLS, for a supervisor that names it by `endpoint`. Set by the operator,
    /// never by the supervisor; a process that has it and the magic cookie refuses to start.
    pub const REMOTE_LISTEN: &str = "HOOKVISOR_REMOTE_LISTEN";
    /// Remote mode: the server's certificate chain (PEM file).
    pub const TLS_CERT: &str = "HOOKVISOR_TLS_CERT";
    /// Remote mode: the server's private key (PEM file).
    pub const TLS_KEY: &str = "HOOKVISOR_TLS_KEY";
    /// Remote mode: the CA (PEM file) a client certificate must chain to; a client without one
    /// is refused (mutual TLS).
    pub const TLS_CLIENT_CA: &str = "HOOKVISOR_TLS_CLIENT_CA";
}

/// Metadata the supervisor sends with every plugin call (`docs/contract.md` §6, §9).
pub mod metadata {
    /// The host call's request id.
    pub const REQUEST_ID: &str = "x-hookvisor-request-id";
    /// The W3C trace context of the supervisor's span for this plugin call (only while tracing
    /// is on, `[tracing] otlp_endpoint`): `00-<trace id>-<span id>-<flags>`.
    pub const TRACEPARENT: &str = "traceparent";
}

/// The line an SDK in remote mode prints on stderr once it listens (the address is the one
/// bound, so `:0` tells the port): `hookvisor plugin listening on 127.0.0.1:8443 (TLS, client
/// certificates required)`.
pub const REMOTE_LISTENING: &str = "hookvisor plugin listening on";

/// The contract's limits (`docs/contract.md` §3, §7, §8). Defined once, here: the supervisor and
/// the SDKs import them.
pub mod limits {
    /// Deepest nesting of objects and arrays in a JSON value (§8).
    pub const MAX_DEPTH: usize = 32;
    /// Most values (containers and scalars) in one JSON document (§8).
    pub const MAX_NODES: usize = 4096;
    /// Most keys in one JSON object (§8).
    pub const MAX_KEYS: usize = 512;
    /// Longest JSON string (value or key), in bytes (§8).
    pub const MAX_STRING_BYTES: usize = 65_536;
    /// Largest JSON document, serialized compactly, in bytes (§8).
    pub const MAX_SERIALIZED_BYTES: usize = 262_144;
    /// Longest JSON text accepted at all, checked before parsing (§8): twice the compact size,
    /// so pretty-printed texts near the limit still pass.
    pub const MAX_TEXT_BYTES: usize = 2 * MAX_SERIALIZED_BYTES;
    /// Approval title length, in characters (§8).
    pub const MAX_APPROVAL_TITLE_CHARS: usize = 80;
    /// Approval description length, in characters (§8).
    pub const MAX_APPROVAL_DESCRIPTION_CHARS: usize = 512;
    /// Longest approval timeout, in ms (§8).
    pub const MAX_APPROVAL_TIMEOUT_MS: u32 = 600_000;
    /// The approval timeout used when a plugin gives 0 (§8).
    pub const DEFAULT_APPROVAL_TIMEOUT_MS: u32 = 120_000;
    /// Largest gRPC message from a plugin, in bytes (§8).
    pub const MAX_PLUGIN_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
    /// Longest text a plugin supplies that a verdict carries, in bytes (§7).
    pub const MAX_PLUGIN_TEXT_BYTES: usize = 4096;
    /// Most registrations in one `Describe` (§3).
    pub const MAX_REGISTRATIONS: usize = 64;
    /// Most tool names in all of one plugin's registrations (§3).
    pub const MAX_REGISTERED_TOOLS: usize = 1024;
    /// Longest tool name, from a host or in a registration, in bytes (§3, §8).
    pub const MAX_TOOL_NAME_BYTES: usize = 256;
    /// Longest context string a host sends (ids, paths, labels), in bytes (§8).
    pub const MAX_CONTEXT_BYTES: usize = 4096;
    /// Most session metadata namespaces in one host request (§8).
    pub const MAX_METADATA_NAMESPACES: usize = 256;
    /// Longest session metadata namespace name, in bytes (§8).
    pub const MAX_NAMESPACE_BYTES: usize = 256;
    /// Most session metadata text in one host request, all namespaces together, in bytes (§8).
    pub const MAX_METADATA_BYTES: usize = MAX_TEXT_BYTES;
    /// Largest request a host may send, in bytes (§8): the per-field limits above add up to a
    /// little over 1 MiB, the rest is protobuf framing.
    pub const HOST_MAX_REQUEST_BYTES: usize = 1_310_720;
}
