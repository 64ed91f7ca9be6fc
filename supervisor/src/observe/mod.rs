//! What records the decisions, off the decision path: the audit log, the metrics, per-plugin
//! figures, shadow plugins and the hosts that report (§4.5). Uses [`crate::files`],
//! [`crate::decide`] and [`crate::plugin`].
//!
//! - [`audit`]: one JSON line per verdict, written by a thread of its own.
//! - [`metrics`]: counters, histograms and states, served as OpenMetrics text.
//! - [`stats`]: per-plugin calls, blocks, failures and recent latencies, for `ListPlugins`.
//! - [`shadow`]: shadow plugins, asked in tasks of their own and never waited for.
//! - [`hosts`]: the hosts that report and call: who they are, calls per tool, silence.
//! - [`traces`]: each verdict and plugin call as an OpenTelemetry span, exported over OTLP.

pub mod audit;
pub mod hosts;
pub mod metrics;
pub mod shadow;
pub mod stats;
pub mod traces;
