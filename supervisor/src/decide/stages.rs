//! The stages of contract §4 and §5 — the policy stage, the hook stage, revalidation — run over a
//! lineup of plugins: a checked request and a budget in, a verdict with its trace out.
//!
//! Nothing here knows about tonic, sockets or processes. A plugin is an [`Answerer`]: something
//! that answers a call within a deadline or fails. The host service, the in-process tests (fake
//! answerers under tokio's paused time) and later the benchmark, the audit log and metrics all go
//! through the same functions. Deadlines are enforced here, whatever the answerer does.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hookvisor_proto::v1::{
    Ack, BeforeSessionCreateRequest, BeforeToolCallRequest, PluginResult, SessionCreateRequest,
    SessionCreatedEvent, SessionCreatedNotice, SessionCreatedReceipt, SessionDecision,
    SessionVerdict, ToolCallDecision, ToolCallVerdict,
};
use prost::Message;
use tokio::time::Instant;

use crate::decide::limits;
use crate::decide::merge::{
    self, Failed, Flow, InOrder, Merge, SessionAnswer, SessionMerge, Slot, ToolAnswer, ToolMerge,
};
use crate::decide::request::{ToolCall, canonical_object};
use crate::files::config::HookConfig;

/// A boxed future, for [`Answerer`]'s methods.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, Failed>> + Send + 'a>>;

/// A plugin as the stages see it. Each method gets the deadline the stages will wait (they
/// enforce it themselves; an answerer may stop early, never late).
pub trait Answerer: Send + Sync + fmt::Debug {
    /// `BeforeToolCall`.
    fn before_tool_call(
        &self,
        request: ToolAsk,
        deadline: Duration,
    ) -> Answer<'_, ToolCallDecision>;
    /// `BeforeSessionCreate`.
    fn before_session_create(
        &self,
        request: BeforeSessionCreateRequest,
        deadline: Duration,
    ) -> Answer<'_, SessionDecision>;
    /// `SessionCreated`.
    fn session_created(&self, event: SessionCreatedEvent, deadline: Duration) -> Answer<'_, Ack>;
}

/// A `BeforeToolCallRequest` as one plugin is asked it: the fields every plugin of a stage is
/// given alike (tool, params, context) encoded once for the stage and shared, and this plugin's
/// own. It encodes to the very bytes of the `BeforeToolCallRequest` with those fields (prost
/// writes fields in number order, and so does this), and decodes as one ([`ToolAsk::request`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolAsk {
    /// Fields 1 to 3, encoded.
    shared: Bytes,
    /// Field 4: this plugin's namespace of the session metadata.
    session_metadata_json: String,
    /// Field 5: what the supervisor will wait, in ms.
    deadline_ms: u32,
}

impl ToolAsk {
    /// Fields 1 to 3 of the request for `call` with `params_json`, encoded.
    pub fn shared(call: &ToolCall, params_json: &str) -> Bytes {
        use prost::encoding::{message, string};
        let request = &call.request;
        let mut buf = BytesMut::with_capacity(
            string::encoded_len(1, &request.tool_name)
                + prost::encoding::key_len(2)
                + prost::encoding::encoded_len_varint(params_json.len() as u64)
                + params_json.len()
                + request
                    .context
                    .as_ref()
                    .map_or(0, |c| message::encoded_len(3, c)),
        );
        if !request.tool_name.is_empty() {
            string::encode(1, &request.tool_name, &mut buf);
        }
        if !params_json.is_empty() {
            prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut buf);
            prost::encoding::encode_varint(params_json.len() as u64, &mut buf);
            buf.put_slice(params_json.as_bytes());
        }
        if let Some(context) = &request.context {
            message::encode(3, context, &mut buf);
        }
        buf.freeze()
    }

    /// The request as a plugin receives it (decoded from its encoding).
    pub fn request(&self) -> BeforeToolCallRequest {
        BeforeToolCallRequest::decode(self.encode_to_vec().as_slice()).unwrap_or_default()
    }
}

impl prost::Message for ToolAsk {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        buf.put_slice(&self.shared);
        if !self.session_metadata_json.is_empty() {
            prost::encoding::string::encode(4, &self.session_metadata_json, buf);
        }
        if self.deadline_ms != 0 {
            prost::encoding::uint32::encode(5, &self.deadline_ms, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // Only ever encoded here; decoding goes through `BeforeToolCallRequest`.
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.shared.len()
            + if self.session_metadata_json.is_empty() {
                0
            } else {
                prost::encoding::string::encoded_len(4, &self.session_metadata_json)
            }
            + if self.deadline_ms == 0 {
                0
            } else {
                prost::encoding::uint32::encoded_len(5, &self.deadline_ms)
            }
    }

    fn clear(&mut self) {
        *self = ToolAsk::default();
    }
}

/// One plugin's part in one call.
#[derive(Debug, Clone)]
pub struct Participant {
    /// Who answers.
    pub answerer: Arc<dyn Answerer>,
    /// Its place in the merge (its configured name, stage, failure policy).
    pub slot: Slot,
    /// The deadline the plugin's own registration or configuration asks for.
    pub timeout: Option<Duration>,
    /// In the hook stage, asked at the same time as the policy stage (§4.6, `speculative`).
    pub speculative: bool,
    /// False: a rewrite of params from it is an invalid answer (`rewrites_params = false`).
    pub rewrites_params: bool,
}

/// Who takes part in one call: the policy stage and the hook stage, each in merge order.
#[derive(Debug, Clone, Default)]
pub struct Lineup {
    /// Trusted policy-stage participants, by priority descending, ties in configuration order.
    pub policies: Vec<Participant>,
    /// Every other participant, in the same order.
    pub hooks: Vec<Participant>,
    /// Shadow plugins (§4.4): asked the same question, never waited for, never merged.
    pub shadows: Vec<Participant>,
}

/// What the supervisor keeps of the host's own deadline to answer in time: 5 % of it, at least
/// 5 ms and at most 50 ms.
pub fn host_deadline_margin(host: Duration) -> Duration {
    (host / 20).clamp(Duration::from_millis(5), Duration::from_millis(50))
}

/// The time one host call may take: the host's deadline less a margin, and the hook's timeout.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    ends: Instant,
}

impl Budget {
    /// The budget of a call starting now, for a host deadline (if the host sent one) and `hook`.
    pub fn new(host: Option<Duration>, hook: &HookConfig) -> Budget {
        Budget::since(Instant::now(), host, hook)
    }

    /// The budget of a call that started at `now` (when its headers arrived: the time its body
    /// took counts against it).
    pub fn since(now: Instant, host: Option<Duration>, hook: &HookConfig) -> Budget {
        let hook_ends = now + Duration::from_millis(hook.timeout_ms.into());
        let host_ends = host
            .map(|t| now + t.saturating_sub(host_deadline_margin(t)))
            .unwrap_or(hook_ends);
        Budget {
            ends: hook_ends.min(host_ends),
        }
    }

    /// The effective deadline of one plugin call starting now (§6): the smallest of what is left
    /// and the plugin's own timeout.
    pub fn for_plugin(&self, own: Option<Duration>) -> Duration {
        let left = self.ends.saturating_duration_since(Instant::now());
        own.map_or(left, |own| own.min(left))
    }
}

fn deadline_ms(deadline: Duration) -> u32 {
    u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX)
}

/// A plugin's own namespace of the session metadata, "" when absent (§4: never another's).
fn namespace(metadata: &HashMap<String, String>, p: &Participant) -> String {
    metadata
        .get(p.slot.plugin.as_ref())
        .cloned()
        .unwrap_or_default()
}

/// The one way the stages ask a plugin: `ask` with the plugin's deadline, bounded by that
/// deadline here (an answerer that never returns still fails in time), the answer checked by
/// `check`, timed.
async fn ask<D, A, Fut>(
    p: &Participant,
    budget: Budget,
    ask: impl FnOnce(Duration) -> Fut,
    check: impl FnOnce(D) -> Result<A, Failed>,
) -> (Result<A, Failed>, Duration)
where
    Fut: Future<Output = Result<D, Failed>>,
{
    let deadline = budget.for_plugin(p.timeout);
    let start = Instant::now();
    let result = match tokio::time::timeout(deadline, ask(deadline)).await {
        Ok(answer) => answer.and_then(check),
        Err(_) => Err(Failed::timeout(deadline)),
    };
    (result, start.elapsed())
}

/// Checks a plugin's tool-call answer against the contract (also `hookvisor conformance`'s
/// check of an answer).
pub fn tool_answer(decision: ToolCallDecision) -> Result<ToolAnswer, Failed> {
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
pub fn session_answer(decision: SessionDecision) -> Result<SessionAnswer, Failed> {
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

/// One tool-call plugin call, from request to checked answer. `shared` is
/// [`ToolAsk::shared`] of the params this plugin is given.
async fn ask_tool(
    p: &Participant,
    call: &ToolCall,
    shared: &Bytes,
    budget: Budget,
) -> (Result<ToolAnswer, Failed>, Duration) {
    let check = |decision: ToolCallDecision| {
        if !p.rewrites_params && decision.params_json.is_some() {
            return Err(Failed::invalid(
                "params_json is set, but the plugin is configured with rewrites_params = false",
            ));
        }
        tool_answer(decision)
    };
    ask(
        p,
        budget,
        |deadline| {
            p.answerer.before_tool_call(
                ToolAsk {
                    shared: shared.clone(),
                    session_metadata_json: namespace(&call.request.session_metadata, p),
                    deadline_ms: deadline_ms(deadline),
                },
                deadline,
            )
        },
        check,
    )
    .await
}

async fn ask_session(
    p: &Participant,
    request: &SessionCreateRequest,
    budget: Budget,
) -> (Result<SessionAnswer, Failed>, Duration) {
    ask(
        p,
        budget,
        |deadline| {
            p.answerer.before_session_create(
                BeforeSessionCreateRequest {
                    session_key: request.session_key.clone(),
                    agent_id: request.agent_id.clone(),
                    label: request.label.clone(),
                    model: request.model.clone(),
                    parent_session_key: request.parent_session_key.clone(),
                    workspace_dir: request.workspace_dir.clone(),
                    requester: request.requester.clone(),
                    session_metadata_json: namespace(&request.session_metadata, p),
                    deadline_ms: deadline_ms(deadline),
                },
                deadline,
            )
        },
        session_answer,
    )
    .await
}

/// A shadow plugin's answer to the host's tool call (its canonical params), as a trace entry
/// marked shadow. Owns what it needs, so it can run in a task of its own.
pub async fn shadow_tool_call(p: Participant, call: Arc<ToolCall>, budget: Budget) -> PluginResult {
    let shared = ToolAsk::shared(&call, &call.request.params_json);
    let (result, latency) = ask_tool(&p, &call, &shared, budget).await;
    merge::shadow_tool(&p.slot, &result, latency)
}

/// A shadow plugin's answer to a session request, as a trace entry marked shadow.
pub async fn shadow_session_create(
    p: Participant,
    request: Arc<SessionCreateRequest>,
    budget: Budget,
) -> PluginResult {
    let (result, latency) = ask_session(&p, &request, budget).await;
    merge::shadow_session(&p.slot, &result, latency)
}

/// The policy stage (or revalidation): one policy after another, params chained. Returns the
/// params text the stage ended with (the text it was given when no policy rewrote them).
async fn tool_policies<'a>(
    merge: &mut ToolMerge<'_>,
    policies: &[Participant],
    call: &ToolCall,
    budget: Budget,
    mut params_json: Cow<'a, str>,
    mut shared: Bytes,
) -> Cow<'a, str> {
    for p in policies {
        let (result, latency) = ask_tool(p, call, &shared, budget).await;
        let rewrote = matches!(
            &result,
            Ok(ToolAnswer {
                params: Some(_),
                ..
            })
        );
        if merge.apply(&p.slot, result, latency) == Flow::Decided {
            break;
        }
        if rewrote {
            params_json = Cow::Owned(canonical_object(merge.params()));
            shared = ToolAsk::shared(call, &params_json);
        }
    }
    params_json
}

/// One plugin's result in the hook stage, with its place in merge order.
type Arrived<A> = (usize, (Result<A, Failed>, Duration));

/// A hook-stage call tagged with its place in merge order (one future type for every call).
async fn indexed<A>(
    i: usize,
    asked: impl Future<Output = (Result<A, Failed>, Duration)>,
) -> Arrived<A> {
    (i, asked.await)
}

/// The hook stage's shape: every participant called at once, results merged in order, and
/// whatever is still in flight once the verdict is decided cancelled (dropping a call's future
/// cancels it: for a real plugin, its HTTP/2 stream is reset). The results that `arrived`
/// already (speculative hooks that answered during the policy stage) are offered first, then
/// the `pending` calls as they answer.
async fn in_order<M, Fut>(
    merge: &mut M,
    participants: &[Participant],
    arrived: Vec<Arrived<M::Answer>>,
    mut pending: FuturesUnordered<Fut>,
) where
    M: Merge,
    Fut: Future<Output = Arrived<M::Answer>>,
{
    let slots: Vec<_> = participants.iter().map(|p| p.slot.clone()).collect();
    let mut order = InOrder::new(merge, &slots);
    let mut decided = false;
    for (i, (result, latency)) in arrived {
        if order.offer(i, result, latency) == Flow::Decided {
            decided = true;
            break;
        }
    }
    while !decided && let Some((i, (result, latency))) = pending.next().await {
        decided = order.offer(i, result, latency) == Flow::Decided;
    }
    drop(pending);
    order.finish();
}

/// Runs `stage` (the policy stage) while driving the speculative hook calls in `early`, keeping
/// what they answer in the meantime. Nothing of theirs is merged here: the stage decides first.
async fn beside<T, A, Fut>(
    stage: impl Future<Output = T>,
    early: &mut FuturesUnordered<Fut>,
    arrived: &mut Vec<Arrived<A>>,
) -> T
where
    Fut: Future<Output = Arrived<A>>,
{
    if early.is_empty() {
        return stage.await;
    }
    let mut stage = std::pin::pin!(stage);
    loop {
        tokio::select! {
            biased;
            done = &mut stage => return done,
            Some(answered) = early.next(), if !early.is_empty() => arrived.push(answered),
        }
    }
}

/// `BeforeToolCall` (§4): the policy stage, the hook stage, revalidation. Speculative hooks
/// (§4.6) are asked with the host's params as the policy stage starts; their answers are merged
/// in the hook stage, in the same order as if asked after it, and only when the policy stage
/// neither blocked (they are then cancelled) nor rewrote the params (they are then asked again
/// with the params the policies ended with: configuration forbids that case, this keeps the
/// result equal to the sequential one even so).
pub async fn before_tool_call(
    lineup: &Lineup,
    hook: &HookConfig,
    call: &ToolCall,
    budget: Budget,
) -> ToolCallVerdict {
    let mut merge = ToolMerge::new(&call.params);
    let original = call.request.params_json.as_str();
    let hooks = &lineup.hooks;
    // What every plugin given the host's params is sent, encoded once.
    let original_shared = ToolAsk::shared(call, original);
    let hook_shared: Bytes; // declared before the calls that borrow it: dropped after them
    let mut early: FuturesUnordered<_> = hooks
        .iter()
        .enumerate()
        .filter(|(_, p)| p.speculative)
        .map(|(i, p)| indexed(i, ask_tool(p, call, &original_shared, budget)))
        .collect();
    let mut arrived = Vec::new();
    // The host's params are canonical already (`request`), and so is every rewrite: the text
    // the policies ended with is what the hooks see, without serializing it again.
    let policies = tool_policies(
        &mut merge,
        &lineup.policies,
        call,
        budget,
        Cow::Borrowed(original),
        original_shared.clone(),
    );
    let policy_params = beside(policies, &mut early, &mut arrived).await;
    if !merge.is_blocked() && !hooks.is_empty() {
        let rewritten = matches!(policy_params, Cow::Owned(_));
        if rewritten {
            early.clear();
            arrived.clear();
            hook_shared = ToolAsk::shared(call, &policy_params);
        } else {
            hook_shared = original_shared.clone();
        }
        for (i, p) in hooks.iter().enumerate() {
            if rewritten || !p.speculative {
                early.push(indexed(i, ask_tool(p, call, &hook_shared, budget)));
            }
        }
        in_order(&mut merge, hooks, arrived, early).await;
    } else {
        drop(early); // blocked: the speculative calls still in flight are cancelled now
    }
    if hook.revalidate && merge.needs_revalidation() {
        merge.begin_revalidation();
        let params = Cow::Owned(canonical_object(merge.params()));
        let shared = ToolAsk::shared(call, &params);
        tool_policies(&mut merge, &lineup.policies, call, budget, params, shared).await;
    }
    merge.finish(original)
}

/// The session policy stage: one policy after another.
async fn session_policies(
    merge: &mut SessionMerge,
    policies: &[Participant],
    request: &SessionCreateRequest,
    budget: Budget,
) {
    for p in policies {
        let (result, latency) = ask_session(p, request, budget).await;
        if merge.apply(&p.slot, result, latency) == Flow::Decided {
            break;
        }
    }
}

/// `BeforeSessionCreate` (§5): the policy stage, then the hook stage; no revalidation. Every
/// plugin sees the host's request whatever the policies answer, so a speculative hook's answer
/// is the one it would give after the policy stage; it is cancelled if a policy blocks.
pub async fn before_session_create(
    lineup: &Lineup,
    request: &SessionCreateRequest,
    budget: Budget,
) -> SessionVerdict {
    let mut merge = SessionMerge::new(request.session_metadata.clone());
    let hooks = &lineup.hooks;
    let mut early: FuturesUnordered<_> = hooks
        .iter()
        .enumerate()
        .filter(|(_, p)| p.speculative)
        .map(|(i, p)| indexed(i, ask_session(p, request, budget)))
        .collect();
    let mut arrived = Vec::new();
    let policies = session_policies(&mut merge, &lineup.policies, request, budget);
    beside(policies, &mut early, &mut arrived).await;
    if !merge.is_blocked() && !hooks.is_empty() {
        for (i, p) in hooks.iter().enumerate() {
            if !p.speculative {
                early.push(indexed(i, ask_session(p, request, budget)));
            }
        }
        in_order(&mut merge, hooks, arrived, early).await;
    }
    merge.finish()
}

/// `SessionCreated` (§5): an observation, delivered to every subscriber at once; never blocks.
pub async fn session_created(
    lineup: &Lineup,
    notice: &SessionCreatedNotice,
    budget: Budget,
) -> SessionCreatedReceipt {
    let subscribers = lineup.policies.iter().chain(&lineup.hooks);
    let trace = futures_util::future::join_all(subscribers.map(|p| async move {
        let (result, latency) = ask(
            p,
            budget,
            |deadline| {
                p.answerer.session_created(
                    SessionCreatedEvent {
                        session_key: notice.session_key.clone(),
                        session_id: notice.session_id.clone(),
                        agent_id: notice.agent_id.clone(),
                        session_metadata_json: namespace(&notice.session_metadata, p),
                    },
                    deadline,
                )
            },
            |_: Ack| Ok(()),
        )
        .await;
        merge::observation(&p.slot, result, latency)
    }))
    .await;
    SessionCreatedReceipt { trace }
}

#[cfg(test)]
mod tests;
