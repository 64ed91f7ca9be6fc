//! Black-box tests for hookvisor: the real `hookvisor` binary, real fixture plugin processes, real
//! Unix sockets.
//!
//! # Layout
//!
//! - [`fixture`]: what the fixture plugins (`src/bin/fixture-*.rs`) share: reading their
//!   behaviour from `FIXTURE_*` variables, `Describe`, serving on `HOOKVISOR_PLUGIN_SOCKET`
//!   until SIGTERM, and the [`fixture::Recorder`] plugin most tests talk to.
//! - [`harness`]: what the tests in `tests/*.rs` share: starting a supervisor on a fresh
//!   configuration ([`harness::Supervisor`]), building `[[plugin]]` entries
//!   ([`harness::PluginToml`]), requests, and reading what recorder plugins saw.
//! - [`languages`]: where the plugins in Python, TypeScript and Go are once built.
//! - [`pki`]: certificates made at test time for remote plugins (TLS servers in each language).
//! - [`outside`]: what the package tests share: a directory outside the checkout, a command run
//!   to its end with a deadline.
//!
//! Fixtures use the generated `hookvisor_proto` server directly, not the plugin SDK, so a test
//! failure points at the supervisor and a fixture can break the contract on purpose.

pub mod fixture;
pub mod harness;
pub mod languages;
pub mod outside;
pub mod pki;
