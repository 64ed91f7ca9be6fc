//! Traces (`[tracing]`, contract §9): each verdict as an OpenTelemetry span
//! `hookvisor.<hook>`, with a child span `hookvisor.plugin_call` per plugin call, exported over
//! OTLP/gRPC to `otlp_endpoint`.
//!
//! The spans are built once the verdict is sent (from [`crate::decide::trace_context`]'s ids
//! and times, and the verdict's trace for each call's outcome) and handed to the OpenTelemetry
//! SDK's batch span processor: a bounded queue that a thread of its own empties into the OTLP
//! exporter (its connection driven by the tokio runtime). A full queue drops spans, so a slow or
//! absent collector never holds a verdict up.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use hookvisor_proto::v1::{Failure, Hook, PluginResult, Stage};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanEvents, SpanExporter, SpanLinks,
    SpanProcessor,
};

use crate::decide::trace_context::{Call, Verdict};
use crate::files::config::TracingConfig;
use crate::observe::audit;

/// Spans waiting for the exporter at most; past it new spans are dropped.
pub const MAX_QUEUED_SPANS: usize = 8192;
/// Spans sent in one export at most.
const MAX_BATCH: usize = 512;
/// How often queued spans are sent when fewer than a batch wait.
const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// How long one export may take (then it is given up and its spans lost).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("[tracing] otlp_endpoint {endpoint}: {why}")]
pub struct TracesError {
    endpoint: String,
    why: String,
}

/// The span exporter of a running supervisor.
#[derive(Debug)]
pub struct Traces {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

/// What a verdict span says besides its ids and times.
#[derive(Debug, Clone, Copy)]
pub struct Decided<'a> {
    /// The hook.
    pub hook: Hook,
    /// The tool, for `before_tool_call`.
    pub tool: Option<&'a str>,
    /// The verdict's outcome.
    pub outcome: i32,
    /// The plugin whose answer or failure decided it ("" when none did).
    pub decided_by: &'a str,
    /// Why it blocks, when it does.
    pub block_kind: i32,
    /// The host call's request id.
    pub request_id: &'a str,
}

impl Traces {
    /// Sets the exporter up; must run inside the tokio runtime (its connection is driven
    /// there). Connects lazily: a collector that is down now is not an error.
    pub fn start(config: &TracingConfig) -> Result<Traces, TracesError> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.otlp_endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TracesError {
                endpoint: config.otlp_endpoint.clone(),
                why: e.to_string(),
            })?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name(config.service_name.clone())
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        let batches = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .with_max_export_batch_size(MAX_BATCH)
            .with_scheduled_delay(EXPORT_DELAY)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batches)
            .build();
        let scope = InstrumentationScope::builder("hookvisor")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Ok(Traces { processor, scope })
    }

    /// Queues the spans of one decided call: the verdict's, and one per plugin call made under
    /// it. `trace` is the verdict's trace and `shadow` every shadow's entry, for each call's
    /// outcome; a call without an entry (cancelled before it counted) is marked cancelled.
    pub fn verdict(
        &self,
        verdict: &Verdict,
        end: SystemTime,
        decided: Decided<'_>,
        trace: &[PluginResult],
        shadow: &[PluginResult],
    ) {
        if !verdict.sampled() {
            return;
        }
        let hook = audit::hook_name(decided.hook);
        let mut attributes = Vec::with_capacity(6);
        attributes.push(KeyValue::new("hookvisor.hook", hook));
        if let Some(tool) = decided.tool {
            attributes.push(KeyValue::new("hookvisor.tool", tool.to_owned()));
        }
        attributes.push(KeyValue::new(
            "hookvisor.outcome",
            audit::outcome_name(decided.outcome),
        ));
        if !decided.decided_by.is_empty() {
            attributes.push(KeyValue::new(
                "hookvisor.decided_by",
                decided.decided_by.to_owned(),
            ));
        }
        let block_kind = audit::block_kind_name(decided.block_kind);
        if !block_kind.is_empty() {
            attributes.push(KeyValue::new("hookvisor.block_kind", block_kind));
        }
        attributes.push(KeyValue::new(
            "hookvisor.request_id",
            decided.request_id.to_owned(),
        ));
        self.processor.on_end(SpanData {
            span_context: self.context(verdict, verdict.span_id),
            parent_span_id: verdict.parent.map_or(SpanId::INVALID, SpanId::from),
            parent_span_is_remote: verdict.parent.is_some(),
            span_kind: SpanKind::Server,
            name: Cow::Borrowed(span_name(decided.hook)),
            start_time: verdict.start,
            end_time: end,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: self.scope.clone(),
        });
        let mut calls = verdict.calls();
        // The shadows' entries once they have all answered supersede those in the trace.
        let entries = (trace.iter())
            .filter(|r| !r.shadow || shadow.is_empty())
            .chain(shadow);
        for entry in entries {
            let Some(i) = calls.iter().position(|c| c.plugin.as_ref() == entry.plugin) else {
                continue; // never called (not ready, or not asked): no call, no span
            };
            let call = calls.remove(i);
            self.call(verdict, end, &call, Some(entry));
        }
        for call in &calls {
            self.call(verdict, end, call, None);
        }
    }

    /// Queues one plugin call's span.
    fn call(&self, verdict: &Verdict, end: SystemTime, call: &Call, entry: Option<&PluginResult>) {
        let mut attributes = Vec::with_capacity(7);
        attributes.push(KeyValue::new(
            "hookvisor.plugin",
            Value::String(StringValue::from(call.plugin.clone())),
        ));
        let mut status = Status::Unset;
        match entry {
            Some(r) => {
                let stage = if r.stage == Stage::Policy as i32 {
                    "policy"
                } else {
                    "hook"
                };
                attributes.push(KeyValue::new("hookvisor.stage", stage));
                attributes.push(KeyValue::new(
                    "hookvisor.outcome",
                    audit::outcome_name(r.outcome),
                ));
                if r.failure != Failure::None as i32 {
                    let failure = audit::failure_name(r.failure);
                    attributes.push(KeyValue::new("hookvisor.failure", failure));
                    status = Status::error(r.detail.clone());
                }
                attributes.push(KeyValue::new(
                    "hookvisor.latency_us",
                    i64::try_from(r.latency_us).unwrap_or(i64::MAX),
                ));
                if r.revalidation {
                    attributes.push(KeyValue::new("hookvisor.revalidation", true));
                }
                if r.shadow {
                    attributes.push(KeyValue::new("hookvisor.shadow", true));
                }
            }
            None => attributes.push(KeyValue::new("hookvisor.outcome", "cancelled")),
        }
        self.processor.on_end(SpanData {
            span_context: self.context(verdict, call.span_id),
            parent_span_id: SpanId::from(verdict.span_id),
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: Cow::Borrowed("hookvisor.plugin_call"),
            start_time: call.start,
            end_time: call.end.unwrap_or(end),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        });
    }

    fn context(&self, verdict: &Verdict, span_id: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from(verdict.trace_id),
            SpanId::from(span_id),
            TraceFlags::new(verdict.flags),
            false,
            TraceState::NONE,
        )
    }

    /// Sends every queued span now, waiting for the export (the SDK bounds it); false when it
    /// failed (the collector down, say: the spans are lost).
    pub fn flush(&self) -> bool {
        self.processor.force_flush().is_ok()
    }

    /// Sends what is queued and stops the exporter's thread.
    pub fn shutdown(&self) {
        if let Err(why) = self.processor.shutdown() {
            tracing::warn!("tracing: the last spans were not all exported: {why}");
        }
    }
}

/// The verdict span's name: `hookvisor.<hook>`.
fn span_name(hook: Hook) -> &'static str {
    match hook {
        Hook::BeforeToolCall => "hookvisor.before_tool_call",
        Hook::BeforeSessionCreate => "hookvisor.before_session_create",
        Hook::SessionCreated => "hookvisor.session_created",
        Hook::Unspecified => "hookvisor.unspecified",
    }
}
