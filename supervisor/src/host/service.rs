//! The host-facing `hookvisor.v1.Hooks` service: a thin adapter. It admits a call (or answers
//! `UNAVAILABLE` while draining), checks the host's input (`request`), works out the budget from
//! the host's `grpc-timeout`, and hands the call to the transport-free `stages` with the plugins'
//! lineup; the verdict goes back as is. Each call gets a request id (the host's, or a new one:
//! [`crate::decide::request_id`]), returned as `x-hookvisor-request-id`, and is recorded by the
//! [`Observers`] (audit log, metrics) after its verdict is sent on its way.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hookvisor_proto::v1::hooks_server::Hooks;
use hookvisor_proto::v1::{
    BlockKind, Hook, HostReport, HostReportReceipt, PluginResult, SessionCreateRequest,
    SessionCreatedNotice, SessionCreatedReceipt, SessionVerdict, ToolCallRequest, ToolCallVerdict,
};
use tokio::sync::Semaphore;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use tracing::Instrument;

use crate::decide::request;
use crate::decide::request_id::{self, RequestId};
use crate::decide::stages::{self, Budget};
use crate::decide::trace_context::{self, Verdict};
use crate::files::config::HookConfig;
use crate::host::admission::Arrived;
use crate::host::connections::HostConnInfo;
use crate::host::drain::{Drain, InFlight};
use crate::observe::audit::{self, Audit};
use crate::observe::hosts::{self, Caller, Hosts};
use crate::observe::metrics::Metrics;
use crate::observe::shadow::{self, Shadows, Tally};
use crate::observe::stats::CallStats;
use crate::observe::traces::{self, Traces};
use crate::plugin::generation::{self, Generation};

/// What records each call once it is decided (the audit log, the metrics), and what shadow
/// plugins share (the bound on their calls, the tally of their disagreements).
#[derive(Debug)]
pub struct Observers {
    /// The decision audit log, when `[audit]` is configured.
    pub audit: Option<Audit>,
    /// The metrics, when `[metrics]` is configured.
    pub metrics: Option<Arc<Metrics>>,
    /// Shadow calls in flight, across host calls ([`shadow::MAX_SHADOW_CALLS`]).
    pub shadow_slots: Arc<Semaphore>,
    /// How often each shadow plugin disagreed with the verdict.
    pub shadow_tally: Tally,
    /// Every plugin's calls, blocks, failures and recent latencies, for `ListPlugins`.
    pub calls: CallStats,
    /// The hosts that report and call (contract §4.5), for `ListHosts` and the metrics.
    pub hosts: Hosts,
    /// The span exporter, when `[tracing]` is configured.
    pub traces: Option<Traces>,
}

impl Observers {
    /// The observers `serve` configured.
    pub fn new(audit: Option<Audit>, metrics: Option<Arc<Metrics>>) -> Observers {
        Observers {
            audit,
            metrics,
            shadow_slots: Arc::new(Semaphore::new(shadow::MAX_SHADOW_CALLS)),
            shadow_tally: Tally::default(),
            calls: CallStats::default(),
            hosts: Hosts::default(),
            traces: None,
        }
    }

    /// A call's span begins (the host's `traceparent` its parent), while tracing is on.
    fn begin_trace(&self, metadata: &MetadataMap) -> Option<Arc<Verdict>> {
        self.traces
            .as_ref()
            .map(|_| Verdict::begin(trace_context::Parent::from_host(metadata)))
    }

    /// Whether anything records a call with these shadows (else nothing is kept of it).
    fn wants(&self, shadows: &Shadows) -> bool {
        self.audit.is_some() || self.metrics.is_some() || !shadows.is_empty()
    }

    /// Counts a verdict in the metrics, and every shadow answer in the metrics and the tally.
    fn verdict(
        &self,
        hook: Hook,
        outcome: i32,
        latency: Duration,
        trace: &[PluginResult],
        shadow: &[PluginResult],
    ) {
        for r in shadow {
            let disagreed = shadow::disagrees(r, outcome);
            self.shadow_tally.record(&r.plugin, disagreed);
            if let Some(metrics) = &self.metrics {
                metrics.shadow(r, disagreed);
            }
        }
        if let Some(metrics) = &self.metrics {
            metrics.verdict(hook, outcome, latency, trace);
        }
    }
}

impl Default for Observers {
    fn default() -> Self {
        Observers::new(None, None)
    }
}

/// The `Hooks` service.
#[derive(Debug, Clone)]
pub struct HooksService {
    generation: generation::Reader,
    drain: Arc<Drain>,
    observers: Arc<Observers>,
}

impl HooksService {
    /// A service over the current generation; new calls are refused once `drain` has started.
    pub fn new(
        generation: generation::Reader,
        drain: Arc<Drain>,
        observers: Arc<Observers>,
    ) -> Self {
        Self {
            generation,
            drain,
            observers,
        }
    }

    fn admit(&self) -> Result<InFlight, Status> {
        self.drain
            .enter()
            .map_err(|_| Status::unavailable("hookvisor is shutting down"))
    }
}

/// A plugin's version as its last accepted `Describe` gave it, for the audit line.
fn versions(generation: &Arc<Generation>) -> impl Fn(&str) -> Option<Arc<str>> + '_ {
    |name| {
        generation
            .plugins
            .plugins()
            .find(|p| &*p.name == name)
            .and_then(|p| p.snapshot().record.version)
    }
}

/// Runs `record` with every shadow answer: now when there is no shadow, else in a task of its
/// own once the shadows have answered (each bounded by its deadline), so the verdict never
/// waits for them.
fn after_shadows(shadows: Shadows, record: impl FnOnce(Vec<PluginResult>) + Send + 'static) {
    if shadows.is_empty() {
        record(Vec::new());
    } else {
        tokio::spawn(async move { record(shadows.finish().await) });
    }
}

/// The verdict with the call's request id in its metadata.
fn answer<T>(verdict: T, id: &RequestId) -> Response<T> {
    let mut response = Response::new(verdict);
    response
        .metadata_mut()
        .insert(request_id::HEADER, id.header());
    response
}

/// The calling process, from the connection's peer credentials.
fn caller<T>(request: &Request<T>) -> Option<Caller> {
    let cred = request.extensions().get::<HostConnInfo>()?.peer.peer_cred?;
    Some(Caller {
        pid: cred.pid()?,
        uid: cred.uid(),
    })
}

/// The budget of a call: the host's deadline (from `grpc-timeout`) and the hook's timeout,
/// both counted from when the call's headers arrived (the admission layer's [`Arrived`]).
fn budget<T>(request: &Request<T>, hook: &HookConfig) -> Budget {
    let host = host_timeout(request.metadata());
    match request.extensions().get::<Arrived>() {
        Some(Arrived(at)) => Budget::since(*at, host, hook),
        None => Budget::new(host, hook),
    }
}

/// Parses the `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
fn host_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl Hooks for HooksService {
    async fn before_tool_call(
        &self,
        request: Request<ToolCallRequest>,
    ) -> Result<Response<ToolCallVerdict>, Status> {
        let _in_flight = self.admit()?;
        let started = Instant::now();
        let id = RequestId::from_host(request.metadata());
        let traced = self.observers.begin_trace(request.metadata());
        // One generation for the whole call, whatever a reload switches meanwhile.
        let generation = self.generation.get();
        let hook = &generation.hooks.before_tool_call;
        let budget = budget(&request, hook);
        let caller = caller(&request);
        // From here on every plugin sees, and the verdict returns, the canonical params text.
        let call = Arc::new(request::tool_call(request.into_inner())?);
        self.observers.hosts.call(
            caller,
            Some((&call.request.tool_name, call.request.dispatch)),
        );
        let lineup = generation
            .plugins
            .lineup(Hook::BeforeToolCall, Some(&call.request.tool_name));
        let shadows = || {
            Shadows::start(&lineup.shadows, &self.observers.shadow_slots, |p| {
                trace_context::scope(
                    traced.clone(),
                    stages::shadow_tool_call(p, call.clone(), budget),
                )
            })
        };
        let decide = stages::before_tool_call(&lineup, hook, &call, budget);
        let (verdict, shadows) = self
            .decide(Hook::BeforeToolCall, &id, traced.clone(), shadows, decide)
            .await;
        let tool = traced.as_ref().map(|_| call.request.tool_name.clone());
        let audit = move |audit: &Audit, record: Record<'_, ToolCallVerdict>| {
            let Record {
                id,
                verdict,
                latency,
                shadow,
                versions,
            } = record;
            audit.tool_call(id, &call.request, verdict, latency, shadow, versions);
        };
        let latency = started.elapsed();
        self.record(
            Hook::BeforeToolCall,
            &id,
            (traced, tool),
            latency,
            &generation,
            &verdict,
            shadows,
            audit,
        );
        Ok(answer(verdict, &id))
    }

    async fn before_session_create(
        &self,
        request: Request<SessionCreateRequest>,
    ) -> Result<Response<SessionVerdict>, Status> {
        let _in_flight = self.admit()?;
        let started = Instant::now();
        let id = RequestId::from_host(request.metadata());
        let traced = self.observers.begin_trace(request.metadata());
        let generation = self.generation.get();
        let budget = budget(&request, &generation.hooks.before_session_create);
        let caller = caller(&request);
        let mut request = request.into_inner();
        request::session_create(&mut request)?;
        self.observers.hosts.call(caller, None);
        let request = Arc::new(request);
        let lineup = generation.plugins.lineup(Hook::BeforeSessionCreate, None);
        let shadows = || {
            Shadows::start(&lineup.shadows, &self.observers.shadow_slots, |p| {
                trace_context::scope(
                    traced.clone(),
                    stages::shadow_session_create(p, request.clone(), budget),
                )
            })
        };
        let decide = stages::before_session_create(&lineup, &request, budget);
        let (verdict, shadows) = self
            .decide(
                Hook::BeforeSessionCreate,
                &id,
                traced.clone(),
                shadows,
                decide,
            )
            .await;
        let audit = move |audit: &Audit, record: Record<'_, SessionVerdict>| {
            let Record {
                id,
                verdict,
                latency,
                shadow,
                versions,
            } = record;
            audit.session_create(id, &request, verdict, latency, shadow, versions);
        };
        let latency = started.elapsed();
        self.record(
            Hook::BeforeSessionCreate,
            &id,
            (traced, None),
            latency,
            &generation,
            &verdict,
            shadows,
            audit,
        );
        Ok(answer(verdict, &id))
    }

    async fn session_created(
        &self,
        request: Request<SessionCreatedNotice>,
    ) -> Result<Response<SessionCreatedReceipt>, Status> {
        let _in_flight = self.admit()?;
        let started = Instant::now();
        let id = RequestId::from_host(request.metadata());
        let traced = self.observers.begin_trace(request.metadata());
        let generation = self.generation.get();
        let budget = budget(&request, &generation.hooks.session_created);
        let caller = caller(&request);
        let mut notice = request.into_inner();
        request::session_created(&mut notice)?;
        self.observers.hosts.call(caller, None);
        let lineup = generation.plugins.lineup(Hook::SessionCreated, None);
        let observe = stages::session_created(&lineup, &notice, budget);
        let (receipt, shadows) = self
            .decide(
                Hook::SessionCreated,
                &id,
                traced.clone(),
                Shadows::default,
                observe,
            )
            .await;
        let audit = move |audit: &Audit, record: Record<'_, SessionCreatedReceipt>| {
            let Record {
                id,
                verdict,
                latency,
                versions,
                ..
            } = record;
            audit.session_created(id, &notice, verdict, latency, versions);
        };
        let latency = started.elapsed();
        self.record(
            Hook::SessionCreated,
            &id,
            (traced, None),
            latency,
            &generation,
            &receipt,
            shadows,
            audit,
        );
        Ok(answer(receipt, &id))
    }

    async fn report_host(
        &self,
        request: Request<HostReport>,
    ) -> Result<Response<HostReportReceipt>, Status> {
        let _in_flight = self.admit()?;
        let caller = caller(&request);
        let report = request.into_inner();
        hosts::check(&report)?;
        self.observers.hosts.report(caller, &report)?;
        tracing::debug!(
            host = %report.host,
            kind = %report.kind,
            version = %report.version,
            interval_ms = report.interval_ms,
            stopping = report.stopping,
            "host report"
        );
        let generation = self.generation.get();
        let (mut plugins, mut ready) = (0u32, 0u32);
        for plugin in generation.plugins.plugins() {
            plugins = plugins.saturating_add(1);
            if matches!(plugin.snapshot().phase, crate::plugin::Phase::Ready) {
                ready = ready.saturating_add(1);
            }
        }
        Ok(Response::new(HostReportReceipt {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            plugins,
            plugins_ready: ready,
        }))
    }
}

/// What the three answers have in common, for [`HooksService::decide`] and
/// [`HooksService::record`].
trait Decided: Clone + Send + Sync + 'static {
    /// The outcome (an observation is always allowed).
    fn outcome_code(&self) -> i32;
    /// The plugin whose failure blocked, and the reason, when a failure blocked.
    fn failure(&self) -> Option<(&str, &str)>;
    /// The plugin whose answer or failure decided ("" when none did), and the block kind.
    fn decided_by(&self) -> (&str, i32);
    /// The per-plugin trace.
    fn trace_entries(&mut self) -> &mut Vec<PluginResult>;
    /// The per-plugin trace, read.
    fn trace(&self) -> &[PluginResult];
}

macro_rules! decided {
    ($verdict:ty) => {
        impl Decided for $verdict {
            fn outcome_code(&self) -> i32 {
                self.outcome
            }
            fn failure(&self) -> Option<(&str, &str)> {
                (self.block_kind == BlockKind::Failure as i32)
                    .then(|| (self.decided_by.as_str(), self.block_reason.as_str()))
            }
            fn decided_by(&self) -> (&str, i32) {
                (self.decided_by.as_str(), self.block_kind)
            }
            fn trace_entries(&mut self) -> &mut Vec<PluginResult> {
                &mut self.trace
            }
            fn trace(&self) -> &[PluginResult] {
                &self.trace
            }
        }
    };
}
decided!(ToolCallVerdict);
decided!(SessionVerdict);

impl Decided for SessionCreatedReceipt {
    fn outcome_code(&self) -> i32 {
        hookvisor_proto::v1::Outcome::Allow as i32
    }
    fn failure(&self) -> Option<(&str, &str)> {
        None
    }
    fn decided_by(&self) -> (&str, i32) {
        ("", BlockKind::Unspecified as i32)
    }
    fn trace_entries(&mut self) -> &mut Vec<PluginResult> {
        &mut self.trace
    }
    fn trace(&self) -> &[PluginResult] {
        &self.trace
    }
}

/// What a verdict span says of a decided call.
fn decided<'a, V: Decided>(
    hook: Hook,
    tool: Option<&'a str>,
    id: &'a RequestId,
    verdict: &'a V,
) -> traces::Decided<'a> {
    let (decided_by, block_kind) = verdict.decided_by();
    traces::Decided {
        hook,
        tool,
        outcome: verdict.outcome_code(),
        decided_by,
        block_kind,
        request_id: id.as_str(),
    }
}

/// What an audit line is made of, once the shadows have answered.
struct Record<'a, V> {
    id: &'a RequestId,
    verdict: &'a V,
    latency: Duration,
    shadow: &'a [PluginResult],
    versions: &'a dyn Fn(&str) -> Option<Arc<str>>,
}

impl HooksService {
    /// Decides one call in its request-id scope, log span and (tracing on) trace context:
    /// starts its shadows (they run in tasks of their own), awaits `decide`, logs a block by a
    /// failing plugin, and adds the shadow answers that came first to the trace.
    async fn decide<V: Decided>(
        &self,
        hook: Hook,
        id: &RequestId,
        traced: Option<Arc<Verdict>>,
        shadows: impl FnOnce() -> Shadows,
        decide: impl Future<Output = V>,
    ) -> (V, Shadows) {
        let work = async {
            let shadows = shadows();
            let mut verdict = decide.await;
            if let Some((plugin, reason)) = verdict.failure() {
                tracing::warn!(plugin, "blocked: {reason}");
            }
            let arrived = shadows.arrived();
            verdict.trace_entries().extend(arrived);
            (verdict, shadows)
        };
        let span = tracing::info_span!("call", hook = audit::hook_name(hook), request_id = %id);
        let work = trace_context::scope(traced, work);
        request_id::scope(id.clone(), work).instrument(span).await
    }

    /// Records a decided call: the per-plugin figures at once; the metrics, the shadow tally and
    /// the audit line (written by `audit`) once its shadows have answered, without holding the
    /// verdict up. Nothing is copied when nothing records. The spans (tracing on, `traced`: the
    /// verdict's and the tool's) are queued now, or once the shadows have answered.
    #[allow(clippy::too_many_arguments)]
    fn record<V: Decided>(
        &self,
        hook: Hook,
        id: &RequestId,
        traced: (Option<Arc<Verdict>>, Option<String>),
        latency: Duration,
        generation: &Arc<Generation>,
        verdict: &V,
        shadows: Shadows,
        audit: impl FnOnce(&Audit, Record<'_, V>) + Send + 'static,
    ) {
        self.observers.calls.record(verdict.trace());
        let (span, tool) = traced;
        let mut span = span.map(|span| (span, SystemTime::now()));
        if shadows.is_empty()
            && let Some((traces, (span, end))) = self.observers.traces.as_ref().zip(span.take())
        {
            let decided = decided(hook, tool.as_deref(), id, verdict);
            traces.verdict(&span, end, decided, verdict.trace(), &[]);
        }
        if !self.observers.wants(&shadows) {
            return;
        }
        let observers = self.observers.clone();
        let (verdict, generation, id) = (verdict.clone(), generation.clone(), id.clone());
        after_shadows(shadows, move |shadow| {
            if let Some((traces, (span, end))) = observers.traces.as_ref().zip(span) {
                let decided = decided(hook, tool.as_deref(), &id, &verdict);
                traces.verdict(&span, end, decided, verdict.trace(), &shadow);
            }
            let outcome = verdict.outcome_code();
            observers.verdict(hook, outcome, latency, verdict.trace(), &shadow);
            if let Some(log) = &observers.audit {
                let versions = versions(&generation);
                let record = Record {
                    id: &id,
                    verdict: &verdict,
                    latency,
                    shadow: &shadow,
                    versions: &versions,
                };
                audit(log, record);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("grpc-timeout", value.parse().expect("ascii"));
        m
    }

    #[test]
    fn grpc_timeout_header_parses() {
        assert_eq!(
            host_timeout(&with_timeout("250m")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            host_timeout(&with_timeout("2S")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            host_timeout(&with_timeout("1H")),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            host_timeout(&with_timeout("7u")),
            Some(Duration::from_micros(7))
        );
        assert_eq!(host_timeout(&with_timeout("123456789m")), None, "9 digits");
        assert_eq!(host_timeout(&with_timeout("m")), None);
        assert_eq!(host_timeout(&with_timeout("5x")), None);
        assert_eq!(host_timeout(&MetadataMap::new()), None);
    }

    /// Under paused time the budget is exact: 300 ms less 5 % (15 ms).
    #[tokio::test(start_paused = true)]
    async fn the_host_deadline_margin_is_pinned() {
        let hook = HookConfig {
            timeout_ms: 10_000,
            revalidate: true,
        };
        for (header, left_ms) in [
            ("300m", 285),
            ("50m", 45),
            ("1S", 950),
            ("5S", 4950),
            ("20S", 10_000),
        ] {
            let left = Budget::new(host_timeout(&with_timeout(header)), &hook).for_plugin(None);
            assert_eq!(
                left,
                Duration::from_millis(left_ms),
                "grpc-timeout {header}"
            );
        }
    }

    #[test]
    fn the_effective_deadline_is_the_smallest() {
        let hook = HookConfig {
            timeout_ms: 1000,
            revalidate: true,
        };
        let host = Budget::new(host_timeout(&with_timeout("300m")), &hook);
        let d = host.for_plugin(None);
        assert!(
            d <= Duration::from_millis(295) && d > Duration::from_millis(200),
            "{d:?}"
        );
        assert_eq!(
            host.for_plugin(Some(Duration::from_millis(50))),
            Duration::from_millis(50)
        );
        let d = Budget::new(host_timeout(&MetadataMap::new()), &hook).for_plugin(None);
        assert!(
            d <= Duration::from_millis(1000) && d > Duration::from_millis(900),
            "{d:?}"
        );
    }
}
