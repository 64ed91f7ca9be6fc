//! Deciding, free of processes and transport: the limits of §8, the host's requests checked and
//! made canonical, request ids, who takes part in a call, the stages over a lineup of answerers,
//! and the merge rules. Uses only [`crate::files`].
//!
//! - [`limits`]: the JSON and approval limits of §8, for host input and plugin answers alike.
//! - [`request`]: the host's requests checked against the limits, JSON made canonical.
//! - [`request_id`]: each host call's request id, taken from the host or made.
//! - [`trace_context`]: each host call's W3C trace context and plugin-call spans, while tracing
//!   is on.
//! - [`routing`]: who takes part in a call (§3): the trust rule, registration limits, the lineup.
//! - [`stages`]: the stages of §4 and §5 over a lineup of answerers.
//! - [`merge`]: the merge rules of §4 and §5, pure: per-plugin results in, verdict out.

pub mod limits;
pub mod merge;
pub mod request;
pub mod request_id;
pub mod routing;
pub mod stages;
pub mod trace_context;
