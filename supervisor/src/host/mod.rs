//! The host side: the host socket's connections (limits and timeouts), admission of calls, the
//! `hookvisor.v1.Hooks` service, and the shutdown drain. Uses every folder below it.
//!
//! - [`connections`]: the accept loop: connection limit, handshake and idle timeouts, back-off.
//! - [`admission`]: the bounds on host calls in flight, and decode failures as `INVALID_ARGUMENT`.
//! - [`service`]: the `Hooks` service, a thin adapter over [`crate::decide::stages`].
//! - [`drain`]: the shutdown drain of §6 (new calls refused, calls in flight counted).

pub mod admission;
pub mod connections;
pub mod drain;
pub mod service;
