//! Write a hookvisor plugin in Rust: implement [`Plugin`], call [`run`] from `main`.
//!
//! hookvisor starts every plugin as a child process and speaks gRPC (`hookvisor.v1.Plugin`) to it
//! over a Unix socket. This crate owns everything except the policy itself: the magic-cookie check,
//! binding the socket, `Describe`, the `grpc.health.v1.Health` service, JSON parsing of params and
//! metadata, SIGTERM/SIGINT and exit codes. A plugin only says which hooks it serves ([`Info`],
//! [`Registration`]) and answers them ([`decision`], [`session`]).
//!
//! # Layout
//!
//! - [`Plugin`] (this file): the trait a plugin implements; every hook has a "no opinion" default.
//! - `info`: [`Info`] and [`Registration`], which become `PluginInfo` in `Describe`.
//! - `call`: [`ToolCall`], [`SessionCreate`], [`SessionCreated`], parsed views of the requests.
//! - [`decision`] and [`session`]: constructors for answers.
//! - `server`: [`run`] and [`run_with`] (the whole process, on hookvisor's Unix socket or, with
//!   `HOOKVISOR_REMOTE_LISTEN`, on TCP with mutual TLS), [`serve`] and [`serve_remote`] (the gRPC
//!   server alone), [`RemoteTls`].
//!
//! # Example
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use hookvisor_plugin::{Info, Plugin, Registration, Severity, Stage, Status, ToolCall};
//! use hookvisor_plugin::{decision, proto};
//!
//! /// Blocks `exec` calls that use sudo and asks before any `git push`.
//! struct Careful;
//!
//! impl Plugin for Careful {
//!     fn info(&self) -> Info {
//!         Info::new("careful", env!("CARGO_PKG_VERSION")).hook(
//!             Registration::before_tool_call().stage(Stage::Hook).tools(["exec"]).timeout_ms(200),
//!         )
//!     }
//!
//!     async fn before_tool_call(&self, call: ToolCall) -> Result<proto::ToolCallDecision, Status> {
//!         let command = call.param_str("command").unwrap_or_default();
//!         if command.contains("sudo") {
//!             return Ok(decision::block("sudo is not allowed here"));
//!         }
//!         if command.starts_with("git push") {
//!             let ask = decision::require_approval("Push to a remote?", format!("`{command}`"));
//!             return Ok(ask.severity(Severity::Warning).into());
//!         }
//!         Ok(decision::allow())
//!     }
//! }
//!
//! fn main() -> ExitCode {
//!     hookvisor_plugin::run(Careful)
//! }
//! ```
//!
//! Run by hand, without hookvisor's environment, such a binary prints one line explaining that it
//! is started by hookvisor and exits with status 1.
#![forbid(unsafe_code)]
// A plugin built on the SDK must not panic on what the supervisor sends.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

use std::future::Future;

mod call;
pub mod decision;
mod info;
mod server;
pub mod session;

pub use call::{SessionCreate, SessionCreated, ToolCall};
pub use hookvisor_proto::v1 as proto;
pub use info::{Info, Registration};
pub use proto::{ApprovalDecision, Hook, Severity, Stage};
pub use serde_json;
pub use server::{Error, RemoteTls, run, run_with, serve, serve_remote};
pub use tonic::Status;

/// A hookvisor plugin: says which hooks it serves and answers them.
///
/// Every hook has a default that answers "no opinion", so a plugin implements only the hooks it
/// registers in [`Plugin::info`]. Implementations may use `async fn`; the futures must be `Send`.
/// Returning an error `Status` makes the supervisor count the call as failed, which blocks.
pub trait Plugin: Send + Sync + 'static {
    /// Name, version and hooks served; becomes `PluginInfo` in `Describe`. Called once at start.
    fn info(&self) -> Info;

    /// May this tool call run, with these params? Default: no opinion.
    fn before_tool_call(
        &self,
        call: ToolCall,
    ) -> impl Future<Output = Result<proto::ToolCallDecision, Status>> + Send {
        let _ = call;
        async { Ok(decision::allow()) }
    }

    /// May this session be created? Default: no opinion.
    fn before_session_create(
        &self,
        session: SessionCreate,
    ) -> impl Future<Output = Result<proto::SessionDecision, Status>> + Send {
        let _ = session;
        async { Ok(session::allow()) }
    }

    /// A session was created (observation only; the answer never blocks). Default: ignore it.
    fn session_created(
        &self,
        event: SessionCreated,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        let _ = event;
        async { Ok(()) }
    }
}
