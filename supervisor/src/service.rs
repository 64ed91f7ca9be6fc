//! The host-facing `hookvisor.v1.Hooks` service: checks the host's input (§8), runs the stages of
//! §4 and §5 against the plugin set, and answers with the merged verdict.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hookvisor_proto::v1::hooks_server::Hooks;
use hookvisor_proto::v1::{
    BeforeSessionCreateRequest, BeforeToolCallRequest, Hook, SessionCreateRequest,
    SessionCreatedEvent, SessionCreatedNotice, SessionCreatedReceipt, SessionDecision,
    SessionVerdict, ToolCallDecision, ToolCallRequest, ToolCallVerdict,
};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::config::{HookConfig, HooksConfig};
use crate::limits;
use crate::merge::{
    self, Failed, Flow, InOrder, Merge, SessionAnswer, SessionMerge, ToolAnswer, ToolMerge,
};
use crate::plugins::{Participant, PluginSet};
use crate::request::{self, ToolCall};

/// What the supervisor keeps of the host's own deadline to answer in time: 5% of it, at least
/// 5 ms and at most 50 ms.
fn host_deadline_margin(host: Duration) -> Duration {
    (host / 20).clamp(Duration::from_millis(5), Duration::from_millis(50))
}

/// Whether the service takes new calls, and how many are in flight (§6: while draining, new
/// calls get `UNAVAILABLE` and calls in flight finish with their verdicts).
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

impl Drain {
    /// Refuses new calls from now on.
    pub fn start(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Resolves once no call is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Admits one call, unless draining. Counting first and checking second means `idle` can
    /// never miss a call that was admitted.
    fn enter(self: &Arc<Self>) -> Result<InFlight, Status> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self.clone());
        if self.draining.load(Ordering::SeqCst) {
            return Err(Status::unavailable("hookvisor is shutting down"));
        }
        Ok(guard)
    }
}

/// One admitted call; dropping it ends the call.
struct InFlight(Arc<Drain>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The `Hooks` service.
#[derive(Debug, Clone)]
pub struct HooksService {
    plugins: Arc<PluginSet>,
    hooks: Arc<HooksConfig>,
    drain: Arc<Drain>,
}

impl HooksService {
    /// A service over `plugins`; new calls are refused once `drain` has started.
    pub fn new(plugins: Arc<PluginSet>, hooks: HooksConfig, drain: Arc<Drain>) -> Self {
        Self {
            plugins,
            hooks: Arc::new(hooks),
            drain,
        }
    }

    fn admit(&self) -> Result<InFlight, Status> {
        self.drain.enter()
    }
}

/// The time a call may take: the host's deadline less a margin, and the hook's timeout.
#[derive(Debug, Clone, Copy)]
struct Budget {
    ends: Instant,
}

impl Budget {
    fn new(metadata: &MetadataMap, hook: &HookConfig) -> Budget {
        let now = Instant::now();
        let hook_ends = now + Duration::from_millis(hook.timeout_ms.into());
        let host_ends = host_timeout(metadata)
            .map(|t| now + t.saturating_sub(host_deadline_margin(t)))
            .unwrap_or(hook_ends);
        Budget {
            ends: hook_ends.min(host_ends),
        }
    }

    /// The effective deadline of one plugin call starting now (§6).
    fn for_plugin(&self, own: Option<Duration>) -> Duration {
        let left = self.ends.saturating_duration_since(Instant::now());
        own.map_or(left, |own| own.min(left))
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

/// A plugin's own namespace of the session metadata, "" when absent (§4: never another's).
fn namespace(metadata: &HashMap<String, String>, p: &Participant) -> String {
    metadata
        .get(p.plugin.name.as_ref())
        .cloned()
        .unwrap_or_default()
}

/// Checks a plugin's tool-call answer against the contract.
fn tool_answer(decision: ToolCallDecision) -> Result<ToolAnswer, Failed> {
    let params = match decision.params_json {
        Some(text) => Some(
            limits::parse_object(&text).map_err(|e| Failed::invalid(format!("params_json {e}")))?,
        ),
        None => None,
    };
    let approval = match decision.require_approval {
        Some(approval) => Some(limits::normalize_approval(approval).map_err(Failed::invalid)?),
        None => None,
    };
    let block = decision.block.then(|| capped(decision.block_reason));
    Ok(ToolAnswer {
        params,
        block,
        approval,
    })
}

/// Checks a plugin's session answer against the contract.
fn session_answer(decision: SessionDecision) -> Result<SessionAnswer, Failed> {
    let patch = match decision.metadata_json {
        Some(text) => {
            let value = limits::parse_value(&text)
                .map_err(|e| Failed::invalid(format!("metadata_json {e}")))?;
            Some(limits::canonical(&value))
        }
        None => None,
    };
    Ok(SessionAnswer {
        block: decision.block.then(|| capped(decision.block_reason)),
        patch,
    })
}

/// A block reason as the verdict carries it: at most `MAX_PLUGIN_TEXT_BYTES`, so no plugin can
/// make its own verdict too large to deliver.
fn capped(reason: String) -> String {
    limits::cap_string(reason, limits::MAX_PLUGIN_TEXT_BYTES)
}

fn deadline_ms(deadline: Duration) -> u32 {
    u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX)
}

impl HooksService {
    /// One tool-call plugin call, from request to checked answer.
    async fn ask_tool(
        &self,
        p: &Participant,
        request: &ToolCallRequest,
        params_json: &str,
        budget: Budget,
    ) -> (Result<ToolAnswer, Failed>, Duration) {
        let deadline = budget.for_plugin(p.timeout);
        let call = BeforeToolCallRequest {
            tool_name: request.tool_name.clone(),
            params_json: params_json.to_string(),
            context: request.context.clone(),
            session_metadata_json: namespace(&request.session_metadata, p),
            deadline_ms: deadline_ms(deadline),
        };
        let start = Instant::now();
        let result = p
            .plugin
            .before_tool_call(call, deadline)
            .await
            .and_then(tool_answer);
        (result, start.elapsed())
    }

    /// The policy stage (or revalidation): one policy after another, params chained.
    async fn tool_policies(
        &self,
        merge: &mut ToolMerge,
        policies: &[Participant],
        request: &ToolCallRequest,
        budget: Budget,
        mut params_json: Cow<'_, str>,
    ) {
        for p in policies {
            let (result, latency) = self.ask_tool(p, request, &params_json, budget).await;
            let rewrote = matches!(
                &result,
                Ok(ToolAnswer {
                    params: Some(_),
                    ..
                })
            );
            if merge.apply(&p.call, result, latency) == Flow::Decided {
                return;
            }
            if rewrote {
                params_json = Cow::Owned(Value::Object(merge.params().clone()).to_string());
            }
        }
    }

    /// The hook stage: every hook concurrently, merged in order, the rest cancelled once the
    /// verdict is decided.
    async fn tool_hooks(
        &self,
        merge: &mut ToolMerge,
        hooks: &[Participant],
        request: &ToolCallRequest,
        budget: Budget,
        params_json: &str,
    ) {
        concurrently(merge, hooks, |p| {
            self.ask_tool(p, request, params_json, budget)
        })
        .await;
    }

    async fn ask_session(
        &self,
        p: &Participant,
        request: &SessionCreateRequest,
        budget: Budget,
    ) -> (Result<SessionAnswer, Failed>, Duration) {
        let deadline = budget.for_plugin(p.timeout);
        let call = BeforeSessionCreateRequest {
            session_key: request.session_key.clone(),
            agent_id: request.agent_id.clone(),
            label: request.label.clone(),
            model: request.model.clone(),
            parent_session_key: request.parent_session_key.clone(),
            workspace_dir: request.workspace_dir.clone(),
            requester: request.requester.clone(),
            session_metadata_json: namespace(&request.session_metadata, p),
            deadline_ms: deadline_ms(deadline),
        };
        let start = Instant::now();
        let result = p
            .plugin
            .before_session_create(call, deadline)
            .await
            .and_then(session_answer);
        (result, start.elapsed())
    }
}

/// The hook stage's shape: every participant called at once, results merged in order, and
/// whatever is still in flight once the verdict is decided cancelled (dropping a call's future
/// resets its HTTP/2 stream).
async fn concurrently<'a, M, F, Fut>(merge: &mut M, participants: &'a [Participant], ask: F)
where
    M: Merge,
    F: Fn(&'a Participant) -> Fut,
    Fut: Future<Output = (Result<M::Answer, Failed>, Duration)>,
{
    let calls: Vec<_> = participants.iter().map(|p| p.call.clone()).collect();
    let mut pending: FuturesUnordered<_> = participants
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let asked = ask(p);
            async move { (i, asked.await) }
        })
        .collect();
    let mut order = InOrder::new(merge, &calls);
    while let Some((i, (result, latency))) = pending.next().await {
        if order.offer(i, result, latency) == Flow::Decided {
            break;
        }
    }
    drop(pending);
    order.finish();
}

#[tonic::async_trait]
impl Hooks for HooksService {
    async fn before_tool_call(
        &self,
        request: Request<ToolCallRequest>,
    ) -> Result<Response<ToolCallVerdict>, Status> {
        let _in_flight = self.admit()?;
        let hook = &self.hooks.before_tool_call;
        let budget = Budget::new(request.metadata(), hook);
        // From here on every plugin sees, and the verdict returns, the canonical params text.
        let ToolCall { request, params } = request::tool_call(request.into_inner())?;

        let (policies, hooks) = self
            .plugins
            .participants(Hook::BeforeToolCall, Some(&request.tool_name));
        let mut merge = ToolMerge::new(params);
        let original = Cow::Borrowed(request.params_json.as_str());
        self.tool_policies(&mut merge, &policies, &request, budget, original)
            .await;
        if !merge.is_blocked() && !hooks.is_empty() {
            let policy_params = Value::Object(merge.params().clone()).to_string();
            self.tool_hooks(&mut merge, &hooks, &request, budget, &policy_params)
                .await;
        }
        if hook.revalidate && merge.needs_revalidation() {
            merge.begin_revalidation();
            let params = Cow::Owned(Value::Object(merge.params().clone()).to_string());
            self.tool_policies(&mut merge, &policies, &request, budget, params)
                .await;
        }
        Ok(Response::new(merge.finish(&request.params_json)))
    }

    async fn before_session_create(
        &self,
        request: Request<SessionCreateRequest>,
    ) -> Result<Response<SessionVerdict>, Status> {
        let _in_flight = self.admit()?;
        let budget = Budget::new(request.metadata(), &self.hooks.before_session_create);
        let mut request = request.into_inner();
        request::session_create(&mut request)?;

        let (policies, hooks) = self.plugins.participants(Hook::BeforeSessionCreate, None);
        let mut merge = SessionMerge::new(request.session_metadata.clone());
        for p in &policies {
            let (result, latency) = self.ask_session(p, &request, budget).await;
            if merge.apply(&p.call, result, latency) == Flow::Decided {
                break;
            }
        }
        if !merge.is_blocked() && !hooks.is_empty() {
            concurrently(&mut merge, &hooks, |p| {
                self.ask_session(p, &request, budget)
            })
            .await;
        }
        Ok(Response::new(merge.finish()))
    }

    async fn session_created(
        &self,
        request: Request<SessionCreatedNotice>,
    ) -> Result<Response<SessionCreatedReceipt>, Status> {
        let _in_flight = self.admit()?;
        let budget = Budget::new(request.metadata(), &self.hooks.session_created);
        let mut notice = request.into_inner();
        request::session_created(&mut notice)?;
        let (policies, hooks) = self.plugins.participants(Hook::SessionCreated, None);
        let subscribers: Vec<_> = policies.into_iter().chain(hooks).collect();
        let trace = futures_util::future::join_all(subscribers.iter().map(|p| {
            let event = SessionCreatedEvent {
                session_key: notice.session_key.clone(),
                session_id: notice.session_id.clone(),
                agent_id: notice.agent_id.clone(),
                session_metadata_json: namespace(&notice.session_metadata, p),
            };
            async move {
                let deadline = budget.for_plugin(p.timeout);
                let start = Instant::now();
                let result = p.plugin.session_created(event, deadline).await.map(drop);
                merge::observation(&p.call, result, start.elapsed())
            }
        }))
        .await;
        Ok(Response::new(SessionCreatedReceipt { trace }))
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

    #[test]
    fn the_effective_deadline_is_the_smallest() {
        let hook = HookConfig {
            timeout_ms: 1000,
            revalidate: true,
        };
        let budget = Budget::new(&with_timeout("300m"), &hook);
        let d = budget.for_plugin(None);
        assert!(
            d <= Duration::from_millis(295) && d > Duration::from_millis(200),
            "{d:?}"
        );
        assert_eq!(
            budget.for_plugin(Some(Duration::from_millis(50))),
            Duration::from_millis(50)
        );
        let d = Budget::new(&MetadataMap::new(), &hook).for_plugin(None);
        assert!(
            d <= Duration::from_millis(1000) && d > Duration::from_millis(900),
            "{d:?}"
        );
    }
}
