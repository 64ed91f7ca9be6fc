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
        let exporter = Otlp::new(config).map_err(|why| TracesError {
            endpoint: config.otlp_endpoint.clone(),
            why,
        })?;
        let batches = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .with_max_export_batch_size(MAX_BATCH)
            .with_scheduled_delay(EXPORT_DELAY)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batches)
            .build();
        let scope = InstrumentationScope::builder(SCOPE)
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

/// The instrumentation scope's name.
const SCOPE: &str = "hookvisor";

/// The OTLP/gRPC trace exporter the batch span processor sends to: each batch encoded straight
/// from the SDK's spans into one `ExportTraceServiceRequest` (protobuf written field by field:
/// no copy of the batch, no intermediate messages; the OTLP crate's exporter cost more CPU per
/// span than the whole of the rest of a verdict's tracing) and sent with tonic as one unary
/// call, never retried: a batch the collector does not take is dropped and counted.
#[derive(Debug)]
struct Otlp {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
    /// The `Resource` and the `InstrumentationScope` messages, encoded once.
    resource: Vec<u8>,
    scope: Vec<u8>,
}

/// `TraceService/Export`.
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl Otlp {
    fn new(config: &TracingConfig) -> Result<Otlp, String> {
        let channel = tonic::transport::Endpoint::from_shared(config.otlp_endpoint.clone())
            .map_err(|e| e.to_string())?
            .timeout(EXPORT_TIMEOUT)
            .connect_timeout(EXPORT_TIMEOUT)
            .connect_lazy();
        let mut resource = Vec::new();
        for (key, value) in [
            ("service.name", config.service_name.as_str()),
            ("service.version", env!("CARGO_PKG_VERSION")),
        ] {
            message(&mut resource, 1, |kv| {
                key_value(kv, key, &Value::from(value.to_owned()))
            });
        }
        let mut scope = Vec::new();
        string(&mut scope, 1, SCOPE);
        string(&mut scope, 2, env!("CARGO_PKG_VERSION"));
        Ok(Otlp {
            grpc: tonic::client::Grpc::new(channel),
            resource,
            scope,
        })
    }

    /// One `ExportTraceServiceRequest` of `batch`.
    fn encode(&self, batch: &[SpanData]) -> Vec<u8> {
        // The spans first (each through one reused scratch buffer), then the envelopes whose
        // lengths they decide, then one copy of the spans behind them.
        let mut spans = Vec::with_capacity(batch.len() * 256);
        let mut scratch = Vec::with_capacity(512);
        for span in batch {
            scratch.clear();
            encode_span(&mut scratch, span);
            bytes(&mut spans, 2, &scratch);
        }
        let scope_spans = field_len(self.scope.len()) + spans.len();
        let resource_spans = field_len(self.resource.len()) + field_len(scope_spans);
        let mut request = Vec::with_capacity(field_len(resource_spans));
        length_prefix(&mut request, 1, resource_spans);
        bytes(&mut request, 1, &self.resource);
        length_prefix(&mut request, 2, scope_spans);
        bytes(&mut request, 1, &self.scope);
        request.extend_from_slice(&spans);
        request
    }
}

impl SpanExporter for Otlp {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        use opentelemetry_sdk::error::OTelSdkError;
        let body = bytes::Bytes::from(self.encode(&batch));
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static(EXPORT);
        match grpc.unary(tonic::Request::new(body), path, Raw).await {
            Ok(_) => Ok(()),
            Err(status) => {
                DROPPED.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Err(OTelSdkError::InternalFailure(format!(
                    "{:?}: {}",
                    status.code(),
                    status.message()
                )))
            }
        }
    }
}

/// Spans the collector did not take (its batch failed), since the start.
static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Spans a failed export lost since the start (full-queue drops are not seen here).
pub fn dropped() -> u64 {
    DROPPED.load(std::sync::atomic::Ordering::Relaxed)
}

/// One `Span` message's fields.
fn encode_span(out: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    bytes(out, 1, &context.trace_id().to_bytes());
    bytes(out, 2, &context.span_id().to_bytes());
    if span.parent_span_id != SpanId::INVALID {
        bytes(out, 4, &span.parent_span_id.to_bytes());
    }
    string(out, 5, &span.name);
    let kind = match span.span_kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    varint_field(out, 6, kind);
    fixed64(out, 7, unix_nanos(span.start_time));
    fixed64(out, 8, unix_nanos(span.end_time));
    for kv in &span.attributes {
        let key = kv.key.as_str();
        length_prefix(out, 9, field_len(key.len()) + field_len(any_len(&kv.value)));
        key_value(out, key, &kv.value);
    }
    if let Status::Error { description } = &span.status {
        message(out, 15, |out| {
            string(out, 2, description);
            varint_field(out, 3, 2);
        });
    }
    // Flags: the trace flags, and whether the parent is remote (known).
    let remote = if span.parent_span_is_remote {
        0x300
    } else {
        0x100
    };
    prost::encoding::encode_key(16, prost::encoding::WireType::ThirtyTwoBit, out);
    out.extend_from_slice(&(u32::from(context.trace_flags().to_u8()) | remote).to_le_bytes());
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A `KeyValue` message's fields (lengths computed, nothing allocated but for a value of a
/// kind hookvisor never sets).
fn key_value(out: &mut Vec<u8>, key: &str, value: &Value) {
    string(out, 1, key);
    length_prefix(out, 2, any_len(value));
    match value {
        Value::String(text) => string(out, 1, text.as_str()),
        Value::Bool(b) => varint_field(out, 2, u64::from(*b)),
        // int64 on the wire: two's complement as a varint.
        Value::I64(n) => varint_field(out, 3, *n as u64),
        Value::F64(x) => {
            prost::encoding::encode_key(4, prost::encoding::WireType::SixtyFourBit, out);
            out.extend_from_slice(&x.to_le_bytes());
        }
        other => string(out, 1, &other.to_string()),
    }
}

/// The size of the `AnyValue` message [`key_value`] writes for `value`.
fn any_len(value: &Value) -> usize {
    match value {
        Value::String(text) => field_len(text.as_str().len()),
        Value::Bool(_) => 2,
        Value::I64(n) => 1 + prost::encoding::encoded_len_varint(*n as u64),
        Value::F64(_) => 9,
        other => field_len(other.to_string().len()),
    }
}

/// The size of a length-delimited field (tag under 16) whose content is `len` bytes.
fn field_len(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

/// A length-delimited field's tag and length; its `len` bytes follow.
fn length_prefix(out: &mut Vec<u8>, tag: u32, len: usize) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(len as u64, out);
}

/// A length-delimited field written by `fields` (into a scratch buffer, then copied: messages
/// here are small).
fn message(out: &mut Vec<u8>, tag: u32, fields: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::with_capacity(64);
    fields(&mut inner);
    bytes(out, tag, &inner);
}

fn bytes(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

fn string(out: &mut Vec<u8>, tag: u32, value: &str) {
    bytes(out, tag, value.as_bytes());
}

fn varint_field(out: &mut Vec<u8>, tag: u32, value: u64) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::Varint, out);
    prost::encoding::encode_varint(value, out);
}

fn fixed64(out: &mut Vec<u8>, tag: u32, value: u64) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::SixtyFourBit, out);
    out.extend_from_slice(&value.to_le_bytes());
}

/// A gRPC codec for a request already encoded, and a response whose content is not needed
/// (`ExportTraceServiceResponse`'s partial success is not acted on).
#[derive(Debug, Clone, Copy)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = bytes::Bytes;
    type Decode = ();
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = ();
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        use bytes::Buf;
        src.advance(src.remaining());
        Ok(Some(()))
    }
}
