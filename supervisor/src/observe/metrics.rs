//! Metrics (`[metrics] listen`): counters and histograms updated as verdicts are made, plugin
//! states read at scrape time, exposed as OpenMetrics text on `GET /metrics` (Prometheus reads
//! it) by a small HTTP/1.1 server that bounds what a client can hold.
//!
//! Names (docs/operations.md, "Metrics"):
//! - `hookvisor_verdicts_total{hook,outcome}`, `hookvisor_verdict_latency_seconds{hook}`;
//! - `hookvisor_plugin_calls_total{plugin,hook,outcome,failure}`,
//!   `hookvisor_plugin_latency_seconds{plugin,hook}`;
//! - `hookvisor_plugin_up{plugin}`, `hookvisor_plugin_state{plugin,state}`,
//!   `hookvisor_plugin_restarts{plugin}`, `hookvisor_plugin_heartbeat_round_trip_seconds{plugin}`;
//! - `hookvisor_plugin_uid{plugin}` (0: no uid of its own),
//!   `hookvisor_plugin_sandbox{plugin,mechanism}` (1 enforced, 0 asked for but not enforced);
//! - `hookvisor_calls_in_flight`, `hookvisor_audit_lines_dropped_total`,
//!   `hookvisor_trace_spans_dropped_total`;
//! - `hookvisor_shadow_calls_total{plugin,outcome,failure}`,
//!   `hookvisor_shadow_disagreements_total{plugin}`;
//! - the hosts (contract §4.5): `hookvisor_host_info{host,kind,version,policy}`,
//!   `hookvisor_host_report_age_seconds{host}`, `hookvisor_host_silent{host}`,
//!   `hookvisor_host_last_call_age_seconds{host}`, `hookvisor_host_tool_calls_total{host,tool}`,
//!   `hookvisor_host_dispatch_calls_total{host}`, `hookvisor_host_unasked_runs{host,tool}`.
//!
//! Label values a host chose (host names, tool names) are escaped ([`label_value`]):
//! prometheus-client writes label values as they are, so a tool named `x"} 1` would otherwise
//! forge a series.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hookvisor_proto::v1::{Hook, HostStatus, PluginResult};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::observe::audit::{failure_name, hook_name, outcome_name};
use crate::plugin::PluginSet;

/// Latency buckets, in seconds: 50 µs to 10 s.
const BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    hook: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    hook: &'static str,
    outcome: &'static str,
    failure: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginHookLabels {
    plugin: String,
    hook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    plugin: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MechanismLabels {
    plugin: String,
    mechanism: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    plugin: String,
    outcome: &'static str,
    failure: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostInfoLabels {
    host: String,
    kind: String,
    version: String,
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostToolLabels {
    host: String,
    tool: String,
}

/// A label value a host chose, made safe for the exposition: printable ASCII stays, except `"`,
/// `\` and `%`; every other byte is written `%XX`.
pub fn label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (b == b' ' || b.is_ascii_graphic()) && !matches!(b, b'"' | b'\\' | b'%') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The hosts' metrics, set from `Hosts::list` at each scrape.
#[derive(Debug)]
struct HostMetrics {
    info: Family<HostInfoLabels, Gauge>,
    report_age: Family<HostLabels, Gauge<f64, AtomicU64>>,
    silent: Family<HostLabels, Gauge>,
    last_call_age: Family<HostLabels, Gauge<f64, AtomicU64>>,
    tool_calls: Family<HostToolLabels, Counter>,
    dispatch_calls: Family<HostLabels, Counter>,
    unasked_runs: Family<HostToolLabels, Gauge>,
}

impl HostMetrics {
    fn register(registry: &mut Registry) -> HostMetrics {
        let metrics = HostMetrics {
            info: Family::default(),
            report_age: Family::default(),
            silent: Family::default(),
            last_call_age: Family::default(),
            tool_calls: Family::default(),
            dispatch_calls: Family::default(),
            unasked_runs: Family::default(),
        };
        registry.register(
            "host_info",
            "1 for each host that reported, with what it said it is",
            metrics.info.clone(),
        );
        registry.register(
            "host_report_age_seconds",
            "Time since the host's last report",
            metrics.report_age.clone(),
        );
        registry.register(
            "host_silent",
            "1 when the host's last report is over three of its intervals late and it did not say it was stopping",
            metrics.silent.clone(),
        );
        registry.register(
            "host_last_call_age_seconds",
            "Time since the host's last call",
            metrics.last_call_age.clone(),
        );
        registry.register(
            "host_tool_calls",
            "Tool calls decided for the host, by tool (past 128 tools: _other); dispatch calls apart",
            metrics.tool_calls.clone(),
        );
        registry.register(
            "host_dispatch_calls",
            "Calls the host marked as only dispatching another tool call",
            metrics.dispatch_calls.clone(),
        );
        registry.register(
            "host_unasked_runs",
            "Runs of the tool the host's processes reported beyond the calls they asked about",
            metrics.unasked_runs.clone(),
        );
        metrics
    }

    fn set(&self, hosts: &[HostStatus]) {
        self.info.clear();
        self.report_age.clear();
        self.silent.clear();
        self.last_call_age.clear();
        self.tool_calls.clear();
        self.dispatch_calls.clear();
        self.unasked_runs.clear();
        for status in hosts {
            let host = label_value(&status.host);
            let labels = HostLabels { host: host.clone() };
            let seconds = |ms: u64| Duration::from_millis(ms).as_secs_f64();
            if !status.kind.is_empty() || status.report_age_ms > 0 {
                self.info
                    .get_or_create(&HostInfoLabels {
                        host: host.clone(),
                        kind: label_value(&status.kind),
                        version: label_value(&status.version),
                        policy: label_value(&status.policy_id),
                    })
                    .set(1);
                self.report_age
                    .get_or_create(&labels)
                    .set(seconds(status.report_age_ms));
                self.silent
                    .get_or_create(&labels)
                    .set(i64::from(status.silent));
            }
            if status.last_call_age_ms > 0 || status.calls > 0 {
                self.last_call_age
                    .get_or_create(&labels)
                    .set(seconds(status.last_call_age_ms));
            }
            self.dispatch_calls
                .get_or_create(&labels)
                .inc_by(status.dispatch_calls);
            for tool in &status.tools {
                let labels = HostToolLabels {
                    host: host.clone(),
                    tool: label_value(&tool.tool),
                };
                if tool.calls > 0 {
                    self.tool_calls.get_or_create(&labels).inc_by(tool.calls);
                }
                if tool.ran > 0 || tool.asked > 0 {
                    self.unasked_runs
                        .get_or_create(&labels)
                        .set(i64::try_from(tool.unasked_runs).unwrap_or(i64::MAX));
                }
            }
        }
    }
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Every metric, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    verdicts: Family<VerdictLabels, Counter>,
    verdict_latency: Family<HookLabels, Histogram, fn() -> Histogram>,
    plugin_calls: Family<CallLabels, Counter>,
    plugin_latency: Family<PluginHookLabels, Histogram, fn() -> Histogram>,
    plugin_up: Family<PluginLabels, Gauge>,
    plugin_state: Family<StateLabels, Gauge>,
    plugin_restarts: Family<PluginLabels, Gauge>,
    heartbeat: Family<PluginLabels, Gauge<f64, AtomicU64>>,
    plugin_uid: Family<PluginLabels, Gauge>,
    plugin_sandbox: Family<MechanismLabels, Gauge>,
    in_flight: Gauge,
    audit_dropped: Counter,
    audit_dropped_seen: AtomicU64,
    spans_dropped: Counter,
    spans_dropped_seen: AtomicU64,
    shadow_calls: Family<ShadowLabels, Counter>,
    shadow_disagreements: Family<PluginLabels, Counter>,
    hosts: HostMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hookvisor");
        let verdicts = Family::default();
        registry.register(
            "verdicts",
            "Verdicts given, by hook and outcome",
            verdicts.clone(),
        );
        let verdict_latency: Family<HookLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(histogram);
        registry.register(
            "verdict_latency_seconds",
            "Time from a host call's arrival to its verdict, by hook",
            verdict_latency.clone(),
        );
        let plugin_calls = Family::default();
        registry.register(
            "plugin_calls",
            "Plugin calls, by plugin, hook, what it answered and how it failed (none)",
            plugin_calls.clone(),
        );
        let plugin_latency: Family<PluginHookLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(histogram);
        registry.register(
            "plugin_latency_seconds",
            "Time from sending a plugin call to its end, by plugin and hook",
            plugin_latency.clone(),
        );
        let plugin_up = Family::default();
        registry.register(
            "plugin_up",
            "1 when the plugin is ready for calls, else 0",
            plugin_up.clone(),
        );
        let plugin_state = Family::default();
        registry.register(
            "plugin_state",
            "1 for the plugin's current state (starting, ready, exited, hung, unreachable, failed to start, rejected, quarantined, stopped)",
            plugin_state.clone(),
        );
        let plugin_restarts = Family::default();
        registry.register(
            "plugin_restarts",
            "Restarts of the plugin since it was started (or replaced by a reload)",
            plugin_restarts.clone(),
        );
        let heartbeat = Family::default();
        registry.register(
            "plugin_heartbeat_round_trip_seconds",
            "Round trip of the plugin's last successful health check",
            heartbeat.clone(),
        );
        let plugin_uid = Family::default();
        registry.register(
            "plugin_uid",
            "The uid the plugin runs under when it has one of its own, else 0",
            plugin_uid.clone(),
        );
        let plugin_sandbox = Family::default();
        registry.register(
            "plugin_sandbox",
            "Each sandbox mechanism of the plugin: 1 enforced, 0 asked for but not enforced on this machine",
            plugin_sandbox.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "calls_in_flight",
            "Host calls being decided now",
            in_flight.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_lines_dropped",
            "Audit lines dropped because the audit writer was behind",
            audit_dropped.clone(),
        );
        let spans_dropped = Counter::default();
        registry.register(
            "trace_spans_dropped",
            "Spans ([tracing]) lost because the collector did not take their batch",
            spans_dropped.clone(),
        );
        let shadow_calls = Family::default();
        registry.register(
            "shadow_calls",
            "Calls of shadow plugins, by plugin, what it answered and how it failed (none)",
            shadow_calls.clone(),
        );
        let shadow_disagreements = Family::default();
        registry.register(
            "shadow_disagreements",
            "Shadow answers whose outcome differed from the verdict's",
            shadow_disagreements.clone(),
        );
        let hosts = HostMetrics::register(&mut registry);
        Metrics {
            hosts,
            registry,
            verdicts,
            verdict_latency,
            plugin_calls,
            plugin_latency,
            plugin_up,
            plugin_state,
            plugin_restarts,
            heartbeat,
            plugin_uid,
            plugin_sandbox,
            in_flight,
            audit_dropped,
            audit_dropped_seen: AtomicU64::new(0),
            spans_dropped,
            spans_dropped_seen: AtomicU64::new(0),
            shadow_calls,
            shadow_disagreements,
        }
    }

    /// Counts one verdict and the plugin calls of its trace.
    pub fn verdict(&self, hook: Hook, outcome: i32, latency: Duration, trace: &[PluginResult]) {
        let hook = hook_name(hook);
        self.verdicts
            .get_or_create(&VerdictLabels {
                hook,
                outcome: outcome_name(outcome),
            })
            .inc();
        self.verdict_latency
            .get_or_create(&HookLabels { hook })
            .observe(latency.as_secs_f64());
        for r in trace.iter().filter(|r| !r.shadow) {
            self.plugin_calls
                .get_or_create(&CallLabels {
                    plugin: r.plugin.clone(),
                    hook,
                    outcome: outcome_name(r.outcome),
                    failure: failure_or_none(r.failure),
                })
                .inc();
            self.plugin_latency
                .get_or_create(&PluginHookLabels {
                    plugin: r.plugin.clone(),
                    hook,
                })
                .observe(r.latency_us as f64 / 1e6);
        }
    }

    /// Counts one shadow answer (or failure) and whether its outcome differed from the verdict's.
    pub fn shadow(&self, result: &PluginResult, disagreed: bool) {
        self.shadow_calls
            .get_or_create(&ShadowLabels {
                plugin: result.plugin.clone(),
                outcome: outcome_name(result.outcome),
                failure: failure_or_none(result.failure),
            })
            .inc();
        if disagreed {
            self.shadow_disagreements
                .get_or_create(&PluginLabels {
                    plugin: result.plugin.clone(),
                })
                .inc();
        }
    }

    /// The exposition, with the plugins' states, the hosts, the calls in flight and the audit
    /// drops read now.
    pub fn render(
        &self,
        plugins: &PluginSet,
        hosts: &[HostStatus],
        in_flight: usize,
        audit_dropped: u64,
    ) -> String {
        self.hosts.set(hosts);
        // Plugins a reload removed must not linger.
        self.plugin_up.clear();
        self.plugin_state.clear();
        self.plugin_restarts.clear();
        self.heartbeat.clear();
        self.plugin_uid.clear();
        self.plugin_sandbox.clear();
        for plugin in plugins.plugins() {
            let snapshot = plugin.snapshot();
            let labels = PluginLabels {
                plugin: plugin.name.to_string(),
            };
            let ready = matches!(snapshot.phase, crate::plugin::Phase::Ready);
            self.plugin_up.get_or_create(&labels).set(i64::from(ready));
            self.plugin_state
                .get_or_create(&StateLabels {
                    plugin: plugin.name.to_string(),
                    state: snapshot.phase.name(),
                })
                .set(1);
            self.plugin_restarts
                .get_or_create(&labels)
                .set(i64::from(snapshot.record.restarts));
            if let Some((_, rtt)) = snapshot.record.heartbeat {
                self.heartbeat.get_or_create(&labels).set(rtt.as_secs_f64());
            }
            if let Some(sandbox) = &snapshot.record.sandbox {
                self.plugin_uid
                    .get_or_create(&labels)
                    .set(i64::from(sandbox.uid.unwrap_or(0)));
                for &(mechanism, enforced) in &sandbox.mechanisms {
                    self.plugin_sandbox
                        .get_or_create(&MechanismLabels {
                            plugin: plugin.name.to_string(),
                            mechanism,
                        })
                        .set(i64::from(enforced));
                }
            }
        }
        self.in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        let seen = self
            .audit_dropped_seen
            .swap(audit_dropped, Ordering::Relaxed);
        self.audit_dropped
            .inc_by(audit_dropped.saturating_sub(seen));
        let spans = crate::observe::traces::dropped();
        let seen = self.spans_dropped_seen.swap(spans, Ordering::Relaxed);
        self.spans_dropped.inc_by(spans.saturating_sub(seen));
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

fn failure_or_none(failure: i32) -> &'static str {
    match failure_name(failure) {
        "" => "none",
        name => name,
    }
}

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;
/// The longest a client may take to send its request's head: a client that connects and says
/// nothing gives its slot back this soon.
const HEADER_LIMIT: Duration = Duration::from_secs(2);
/// The longest one connection may take, request to response.
const CONNECTION_LIMIT: Duration = Duration::from_secs(10);

/// Binds `listen` (an error names it); warns when it is no loopback address.
pub async fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    if !listen.ip().is_loopback() {
        tracing::warn!(%listen, "[metrics] listen is not a loopback address: whoever can reach \
            it reads the plugins' names, states and figures, and can hold its connections; \
            prefer 127.0.0.1 or ::1 behind a scraper that forwards");
    }
    TcpListener::bind(listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {listen} for metrics: {e}"),
        )
    })
}

/// The connections being served, so that an idle one can give its slot to a newcomer.
#[derive(Default)]
struct Served {
    next: u64,
    /// Each connection: its number, whether its request head has arrived, its task.
    connections: Vec<(
        u64,
        Arc<std::sync::atomic::AtomicBool>,
        tokio::task::AbortHandle,
    )>,
}

impl Served {
    /// Ends the oldest connection that has not sent its request head yet, if any.
    fn shed_idle(&mut self) -> bool {
        self.connections.retain(|(_, _, task)| !task.is_finished());
        let idle = self
            .connections
            .iter()
            .position(|(_, asked, _)| !asked.load(Ordering::Relaxed));
        match idle {
            Some(i) => {
                let (_, _, task) = self.connections.remove(i);
                task.abort();
                true
            }
            None => false,
        }
    }
}

/// Serves `GET /metrics` on `listener` with what `render` returns, until the task is dropped:
/// HTTP/1.1, one request per connection, at most [`MAX_CONNECTIONS`] at once, each within
/// [`CONNECTION_LIMIT`]. When every slot is held, a newcomer takes the slot of the oldest
/// connection that has not sent its request yet: idle clients cannot starve a scrape.
pub async fn serve(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving metrics on http://{address}/metrics");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let served = Arc::new(std::sync::Mutex::new(Served::default()));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let shed = served
                    .lock()
                    .map(|mut served| served.shed_idle())
                    .unwrap_or(false);
                // An aborted task gives its slot back when it is dropped, at once; without
                // an idle one to shed, wait for a connection to finish (each is bounded).
                let waited = if shed {
                    tokio::time::timeout(Duration::from_secs(1), slots.clone().acquire_owned())
                        .await
                        .ok()
                } else {
                    Some(slots.clone().acquire_owned().await)
                };
                match waited {
                    Some(Ok(permit)) => permit,
                    Some(Err(_)) => return,
                    None => continue,
                }
            }
        };
        let render = render.clone();
        let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = asked.clone();
        // Held until the connection is listed: its task cannot forget it before.
        let Ok(mut listed) = served.lock() else {
            return;
        };
        listed.next += 1;
        let id = listed.next;
        let forget = served.clone();
        let task = tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request: Request<_>| {
                seen.store(true, Ordering::Relaxed);
                let render = render.clone();
                async move { Ok::<_, Infallible>(respond(&request, &*render)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_LIMIT)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIMIT, connection).await;
            if let Ok(mut served) = forget.lock() {
                served.connections.retain(|(n, _, _)| *n != id);
            }
        });
        listed.connections.push((id, asked, task.abort_handle()));
    }
}

fn respond<B>(request: &Request<B>, render: &dyn Fn() -> String) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "hookvisor serves /metrics\n".into(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
