//! The merge rules of contract §4 and §5: per-plugin results in, one verdict out.
//!
//! Everything here is pure: no I/O, no clocks (latencies are passed in). The host-facing service
//! calls plugins and feeds what they said, in merge order, into a [`ToolMerge`] or a
//! [`SessionMerge`]. Hook-stage calls run concurrently; [`InOrder`] releases their results in
//! merge order so the verdict equals the one a sequential run would give (a property test below
//! checks exactly that).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hookvisor_proto::v1::{
    ApprovalRequest, BlockKind, Failure, Outcome, PluginResult, SessionVerdict, Stage,
    ToolCallVerdict,
};
use serde_json::{Map, Value};

/// A tool call's params: always a JSON object.
pub type Params = Map<String, Value>;

/// One plugin's place in a merge.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The plugin's configured name.
    pub plugin: Arc<str>,
    /// The stage this call runs in.
    pub stage: Stage,
    /// `on_failure = "skip"`: a failure is recorded and passed over (hook stage only).
    pub skip_on_failure: bool,
}

/// How a plugin failed to give a valid answer in time (§7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The contract's failure kind.
    pub kind: Failure,
    /// What happened, phrased to follow "plugin 'NAME' ", e.g. "timed out after 200 ms".
    pub detail: String,
}

impl Failed {
    /// No answer before the deadline.
    pub fn timeout(deadline: Duration) -> Self {
        Self::new(
            Failure::Timeout,
            format!("timed out after {} ms", deadline.as_millis()),
        )
    }

    /// The process died or the connection broke during the call.
    pub fn crashed(what: impl std::fmt::Display) -> Self {
        Self::new(Failure::Crashed, format!("crashed during the call: {what}"))
    }

    /// The plugin is not ready.
    pub fn unavailable(why: impl std::fmt::Display) -> Self {
        Self::new(Failure::Unavailable, format!("is unavailable: {why}"))
    }

    /// The answer broke the contract.
    pub fn invalid(why: impl std::fmt::Display) -> Self {
        Self::new(
            Failure::InvalidResponse,
            format!("returned an invalid response: {why}"),
        )
    }

    /// The plugin answered with a non-OK gRPC status.
    pub fn error(code: impl std::fmt::Debug, message: &str) -> Self {
        Self::new(
            Failure::Error,
            format!("failed with gRPC status {code:?}: {message}"),
        )
    }

    /// The detail is capped: it can quote a plugin's own text (a status message, stderr lines).
    fn new(kind: Failure, detail: String) -> Self {
        let detail =
            crate::decide::limits::cap_string(detail, crate::decide::limits::MAX_PLUGIN_TEXT_BYTES);
        Self { kind, detail }
    }

    /// The full sentence, naming the plugin.
    pub fn sentence(&self, plugin: &str) -> String {
        format!("plugin '{plugin}' {}", self.detail)
    }
}

/// A plugin's valid answer to `BeforeToolCall` (already checked against §8).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolAnswer {
    /// A rewrite: the whole params object.
    pub params: Option<Params>,
    /// A block, with the plugin's reason (may be empty).
    pub block: Option<String>,
    /// An approval request, normalized.
    pub approval: Option<ApprovalRequest>,
}

/// A plugin's valid answer to `BeforeSessionCreate` (already checked against §8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionAnswer {
    /// A block, with the plugin's reason (may be empty).
    pub block: Option<String>,
    /// A JSON value replacing the plugin's own metadata namespace.
    pub patch: Option<String>,
}

/// What a plugin's result means for the rest of the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// The verdict is decided (a block): later results cannot change it.
    Decided,
}

/// Something that folds plugin results, in merge order, into a verdict.
pub trait Merge {
    /// The plugin's answer type.
    type Answer;
    /// Folds the result at the next position.
    fn apply(
        &mut self,
        slot: &Slot,
        result: Result<Self::Answer, Failed>,
        latency: Duration,
    ) -> Flow;
    /// Records a call that was cancelled (or not merged) because the verdict was decided.
    fn cancelled(&mut self, slot: &Slot);
}

#[derive(Debug, Clone)]
struct Block {
    reason: String,
    kind: BlockKind,
    by: Arc<str>,
}

/// One trace entry before it becomes a [`PluginResult`].
fn entry(slot: &Slot, outcome: Outcome, latency: Duration) -> PluginResult {
    PluginResult {
        plugin: slot.plugin.to_string(),
        stage: slot.stage as i32,
        outcome: outcome as i32,
        failure: Failure::None as i32,
        detail: String::new(),
        latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        params_changed: false,
        revalidation: false,
        shadow: false,
    }
}

/// Applies §4/§7 to a failure: a block (policy stage, or hook stage without skip) recorded in
/// `block`, or a skip.
fn fold_failure(
    slot: &Slot,
    failed: &Failed,
    latency: Duration,
    block: &mut Option<Block>,
) -> (Flow, PluginResult) {
    let sentence = failed.sentence(&slot.plugin);
    let skip = slot.skip_on_failure && slot.stage != Stage::Policy;
    let mut result = entry(
        slot,
        if skip { Outcome::Allow } else { Outcome::Block },
        latency,
    );
    result.failure = failed.kind as i32;
    if skip {
        result.detail = format!("skipped (on_failure = \"skip\"): {sentence}");
        return (Flow::Continue, result);
    }
    // One reason for both stages: it names the plugin once and says what happened (the host
    // shows it to a person; a bare "policy evaluation failed (timeout)" left the cause in the
    // audit log only).
    result.detail = sentence.clone();
    *block = Some(Block {
        reason: sentence,
        kind: BlockKind::Failure,
        by: slot.plugin.clone(),
    });
    (Flow::Decided, result)
}

fn plugin_block(slot: &Slot, reason: &str) -> Block {
    let reason = if reason.is_empty() {
        format!("blocked by {}", slot.plugin)
    } else {
        reason.to_string()
    };
    Block {
        reason,
        kind: BlockKind::Policy,
        by: slot.plugin.clone(),
    }
}

fn cancelled_entry(slot: &Slot) -> PluginResult {
    let mut result = entry(slot, Outcome::Unspecified, Duration::ZERO);
    result.detail = "cancelled: the verdict was decided before this plugin's turn".into();
    result
}

/// The merge of one `BeforeToolCall` (§4): policy stage, hook stage, revalidation. It borrows
/// the host's params and copies them only when a plugin's rewrite must be merged over them.
#[derive(Debug, Clone)]
pub struct ToolMerge<'a> {
    original: &'a Params,
    /// The params as the policy stage left them (what policies chain and hooks see).
    params: Cow<'a, Params>,
    /// The winning hook-stage rewrite, merged key by key over `params` at the end.
    hook_rewrite: Option<Params>,
    approval: Option<(Arc<str>, ApprovalRequest)>,
    block: Option<Block>,
    revalidating: bool,
    trace: Vec<PluginResult>,
}

impl<'a> ToolMerge<'a> {
    /// Starts a merge for the host's params.
    pub fn new(params: &'a Params) -> Self {
        Self {
            original: params,
            params: Cow::Borrowed(params),
            hook_rewrite: None,
            approval: None,
            block: None,
            revalidating: false,
            trace: Vec::new(),
        }
    }

    /// The params the next plugin sees: policies see the chain so far; hooks see what the
    /// policy stage left (never another hook's rewrite).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Whether something blocked already.
    pub fn is_blocked(&self) -> bool {
        self.block.is_some()
    }

    /// Whether the hook stage changed the params, so the policies must see them again (§4.3):
    /// its rewrite sets a key to something the policy stage's params do not have.
    pub fn needs_revalidation(&self) -> bool {
        self.block.is_none()
            && !self.revalidating
            && self
                .hook_rewrite
                .as_ref()
                .is_some_and(|rewrite| rewrite.iter().any(|(k, v)| self.params.get(k) != Some(v)))
    }

    /// Starts revalidation: policies now chain from the hook stage's final params.
    pub fn begin_revalidation(&mut self) {
        self.params = Cow::Owned(self.merged().into_owned());
        self.hook_rewrite = None;
        self.revalidating = true;
    }

    /// A hook's rewrite is merged key by key over the policy stage's params; each is within the
    /// limits of §8, but their union may not be (1024 keys, twice the size). Such a rewrite is
    /// an invalid response of the plugin that made it.
    fn check_merged_size(&self, slot: &Slot, answer: ToolAnswer) -> Result<ToolAnswer, Failed> {
        let Some(rewrite) = &answer.params else {
            return Ok(answer);
        };
        if slot.stage == Stage::Policy || self.approval.is_some() {
            return Ok(answer);
        }
        let mut merged = self.params.clone().into_owned();
        merged.extend(rewrite.iter().map(|(k, v)| (k.clone(), v.clone())));
        crate::decide::limits::check_value(&Value::Object(merged), 0).map_err(|e| {
            Failed::invalid(format!(
                "params_json merged over the policy stage's params: {e}"
            ))
        })?;
        Ok(answer)
    }

    /// The hook stage's winning rewrite merged key by key over the policy stage's params.
    fn merged(&self) -> Cow<'_, Params> {
        match &self.hook_rewrite {
            None => Cow::Borrowed(&*self.params),
            Some(rewrite) => {
                let mut out = self.params.clone().into_owned();
                for (k, v) in rewrite {
                    out.insert(k.clone(), v.clone());
                }
                Cow::Owned(out)
            }
        }
    }

    /// The verdict. `original_text` is the host's params text, returned as-is when nothing
    /// changed them.
    pub fn finish(self, original_text: &str) -> ToolCallVerdict {
        let final_params = self.merged();
        let params_changed = *final_params != *self.original;
        let params_json = if params_changed {
            crate::decide::request::canonical_object(&final_params)
        } else {
            original_text.to_string()
        };
        let outcome = match (&self.block, &self.approval) {
            (Some(_), _) => Outcome::Block,
            (None, Some(_)) => Outcome::RequireApproval,
            (None, None) => Outcome::Allow,
        };
        let (approval_plugin, approval) = match self.approval {
            Some((plugin, approval)) => (plugin.to_string(), Some(approval)),
            None => (String::new(), None),
        };
        let (block_reason, block_kind, decided_by) = match self.block {
            Some(b) => (b.reason, b.kind, b.by.to_string()),
            None => (String::new(), BlockKind::Unspecified, String::new()),
        };
        ToolCallVerdict {
            outcome: outcome as i32,
            params_json,
            params_changed,
            block_reason,
            block_kind: block_kind as i32,
            decided_by,
            approval,
            approval_plugin,
            trace: self.trace,
        }
    }

    fn fold_answer(&mut self, slot: &Slot, answer: ToolAnswer, result: &mut PluginResult) -> Flow {
        if let Some(reason) = answer.block {
            result.outcome = Outcome::Block as i32;
            self.block = Some(plugin_block(slot, &reason));
            return Flow::Decided;
        }
        let mut notes = Vec::new();
        if let Some(rewrite) = answer.params {
            match &self.approval {
                Some((by, _)) => notes.push(format!(
                    "params rewrite ignored: params are frozen by the approval request of '{by}'"
                )),
                None => {
                    result.params_changed = rewrite != *self.params;
                    if slot.stage == Stage::Policy {
                        self.params = Cow::Owned(rewrite);
                    } else {
                        self.hook_rewrite = Some(rewrite);
                    }
                }
            }
        }
        if let Some(approval) = answer.approval {
            result.outcome = Outcome::RequireApproval as i32;
            match &self.approval {
                Some((by, _)) => {
                    notes.push(format!("approval request ignored: '{by}' asked first"))
                }
                None => self.approval = Some((slot.plugin.clone(), approval)),
            }
        }
        result.detail = notes.join("; ");
        Flow::Continue
    }
}

impl Merge for ToolMerge<'_> {
    type Answer = ToolAnswer;

    fn apply(
        &mut self,
        slot: &Slot,
        result: Result<ToolAnswer, Failed>,
        latency: Duration,
    ) -> Flow {
        let result = result.and_then(|answer| self.check_merged_size(slot, answer));
        let (flow, mut entry) = match result {
            Err(failed) => fold_failure(slot, &failed, latency, &mut self.block),
            Ok(answer) => {
                let mut entry = entry(slot, Outcome::Allow, latency);
                (self.fold_answer(slot, answer, &mut entry), entry)
            }
        };
        entry.revalidation = self.revalidating;
        self.trace.push(entry);
        flow
    }

    fn cancelled(&mut self, slot: &Slot) {
        let mut entry = cancelled_entry(slot);
        entry.revalidation = self.revalidating;
        self.trace.push(entry);
    }
}

/// The merge of one `BeforeSessionCreate` (§5): blocks, and patches of each plugin's own
/// metadata namespace.
#[derive(Debug, Clone)]
pub struct SessionMerge {
    metadata: HashMap<String, String>,
    block: Option<Block>,
    trace: Vec<PluginResult>,
}

impl SessionMerge {
    /// Starts a merge over the host's session metadata.
    pub fn new(metadata: HashMap<String, String>) -> Self {
        Self {
            metadata,
            block: None,
            trace: Vec::new(),
        }
    }

    /// The metadata namespace a plugin sees ("" when absent).
    pub fn namespace(&self, plugin: &str) -> &str {
        self.metadata.get(plugin).map_or("", String::as_str)
    }

    /// Whether something blocked already.
    pub fn is_blocked(&self) -> bool {
        self.block.is_some()
    }

    /// The verdict.
    pub fn finish(self) -> SessionVerdict {
        let (outcome, block_reason, block_kind, decided_by) = match self.block {
            Some(b) => (Outcome::Block, b.reason, b.kind, b.by.to_string()),
            None => (
                Outcome::Allow,
                String::new(),
                BlockKind::Unspecified,
                String::new(),
            ),
        };
        SessionVerdict {
            outcome: outcome as i32,
            block_reason,
            block_kind: block_kind as i32,
            decided_by,
            session_metadata: self.metadata,
            trace: self.trace,
        }
    }
}

impl Merge for SessionMerge {
    type Answer = SessionAnswer;

    fn apply(
        &mut self,
        slot: &Slot,
        result: Result<SessionAnswer, Failed>,
        latency: Duration,
    ) -> Flow {
        let (flow, entry) = match result {
            Err(failed) => fold_failure(slot, &failed, latency, &mut self.block),
            Ok(SessionAnswer {
                block: Some(reason),
                ..
            }) => {
                self.block = Some(plugin_block(slot, &reason));
                (Flow::Decided, entry(slot, Outcome::Block, latency))
            }
            Ok(SessionAnswer { block: None, patch }) => {
                let mut entry = entry(slot, Outcome::Allow, latency);
                if let Some(patch) = patch {
                    entry.detail = "patched its metadata namespace".into();
                    self.metadata.insert(slot.plugin.to_string(), patch);
                }
                (Flow::Continue, entry)
            }
        };
        self.trace.push(entry);
        flow
    }

    fn cancelled(&mut self, slot: &Slot) {
        self.trace.push(cancelled_entry(slot));
    }
}

/// The trace entry of a shadow plugin's tool-call answer (or failure): what it would have said;
/// a failure counts as the block it would have been.
pub fn shadow_tool(
    slot: &Slot,
    result: &Result<ToolAnswer, Failed>,
    latency: Duration,
) -> PluginResult {
    shadow_entry(
        slot,
        latency,
        result.as_ref().map(|answer| {
            let outcome = if answer.block.is_some() {
                Outcome::Block
            } else if answer.approval.is_some() {
                Outcome::RequireApproval
            } else {
                Outcome::Allow
            };
            (outcome, answer.block.as_deref(), answer.params.is_some())
        }),
    )
}

/// The trace entry of a shadow plugin's session answer (or failure).
pub fn shadow_session(
    slot: &Slot,
    result: &Result<SessionAnswer, Failed>,
    latency: Duration,
) -> PluginResult {
    shadow_entry(
        slot,
        latency,
        result.as_ref().map(|answer| {
            let outcome = if answer.block.is_some() {
                Outcome::Block
            } else {
                Outcome::Allow
            };
            (outcome, answer.block.as_deref(), false)
        }),
    )
}

/// A shadow's entry from what it said (outcome, block reason, whether it rewrote) or how it
/// failed.
fn shadow_entry(
    slot: &Slot,
    latency: Duration,
    said: Result<(Outcome, Option<&str>, bool), &Failed>,
) -> PluginResult {
    let mut e = match said {
        Ok((outcome, reason, rewrote)) => {
            let mut e = entry(slot, outcome, latency);
            e.detail = reason.unwrap_or_default().to_owned();
            e.params_changed = rewrote;
            e
        }
        Err(failed) => {
            let mut e = entry(slot, Outcome::Block, latency);
            e.failure = failed.kind as i32;
            e.detail = failed.sentence(&slot.plugin);
            e
        }
    };
    e.shadow = true;
    e
}

/// The trace entry of an observation (`SessionCreated`): never a block.
pub fn observation(slot: &Slot, result: Result<(), Failed>, latency: Duration) -> PluginResult {
    let mut result_entry = entry(slot, Outcome::Allow, latency);
    if let Err(failed) = result {
        result_entry.failure = failed.kind as i32;
        result_entry.detail = failed.sentence(&slot.plugin);
    }
    result_entry
}

/// A result that arrived, with its latency.
type Arrived<A> = (Result<A, Failed>, Duration);

/// Merges results that arrive in any order exactly as a sequential run would: each result is
/// held until every earlier position has been merged.
pub struct InOrder<'a, M: Merge> {
    merge: &'a mut M,
    slots: &'a [Slot],
    held: Vec<Option<Arrived<M::Answer>>>,
    next: usize,
    decided: bool,
}

impl<'a, M: Merge> InOrder<'a, M> {
    /// Starts merging results for `slots`, which are in merge order.
    pub fn new(merge: &'a mut M, slots: &'a [Slot]) -> Self {
        let held = slots.iter().map(|_| None).collect();
        Self {
            merge,
            slots,
            held,
            next: 0,
            decided: false,
        }
    }

    /// Offers the result at `index`; returns [`Flow::Decided`] once the verdict cannot change,
    /// after which the caller cancels what is still in flight.
    pub fn offer(
        &mut self,
        index: usize,
        result: Result<M::Answer, Failed>,
        latency: Duration,
    ) -> Flow {
        if self.decided {
            return Flow::Decided;
        }
        if let Some(slot) = self.held.get_mut(index) {
            *slot = Some((result, latency));
        }
        while let Some(Some((result, latency))) = self.held.get_mut(self.next).map(Option::take) {
            let slot = &self.slots[self.next];
            self.next += 1;
            if self.merge.apply(slot, result, latency) == Flow::Decided {
                self.decided = true;
                return Flow::Decided;
            }
        }
        Flow::Continue
    }

    /// Ends the stage: every position not merged is recorded as cancelled.
    pub fn finish(self) {
        for slot in &self.slots[self.next..] {
            self.merge.cancelled(slot);
        }
    }
}

#[cfg(test)]
mod tests;
