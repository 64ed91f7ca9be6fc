//! Answers to `before_tool_call`: allow, block, rewrite the params, or ask for approval.
//!
//! Each returns a [`proto::ToolCallDecision`]; its fields are public, so a plugin that wants to
//! combine answers (rewrite *and* ask) can set them directly.

use serde_json::{Map, Value};

use crate::proto;
use crate::{ApprovalDecision, Severity};

/// Longest approval title the contract accepts, in characters (`docs/contract.md` §8).
pub const MAX_TITLE_CHARS: usize = hookvisor_proto::limits::MAX_APPROVAL_TITLE_CHARS;
/// Longest approval description the contract accepts, in characters (`docs/contract.md` §8).
pub const MAX_DESCRIPTION_CHARS: usize = hookvisor_proto::limits::MAX_APPROVAL_DESCRIPTION_CHARS;

/// No opinion: the call proceeds as far as this plugin is concerned.
pub fn allow() -> proto::ToolCallDecision {
    proto::ToolCallDecision::default()
}

/// Block the call; `reason` is shown to the agent and the operator.
pub fn block(reason: impl Into<String>) -> proto::ToolCallDecision {
    proto::ToolCallDecision {
        block: true,
        block_reason: reason.into(),
        ..Default::default()
    }
}

/// Replace the call's params with `params` (the whole object).
pub fn rewrite(params: Map<String, Value>) -> proto::ToolCallDecision {
    proto::ToolCallDecision {
        params_json: Some(Value::Object(params).to_string()),
        ..Default::default()
    }
}

/// Ask a human before the call runs; refine with [`Approval`]'s setters, finish with `.into()`.
pub fn require_approval(title: impl Into<String>, description: impl Into<String>) -> Approval {
    Approval {
        title: title.into(),
        description: description.into(),
        severity: Severity::Unspecified,
        timeout_ms: 0,
        allowed_decisions: Vec::new(),
    }
}

/// An approval request under construction; converts into a [`proto::ToolCallDecision`].
///
/// The title and description are cut to the contract's limits ([`MAX_TITLE_CHARS`],
/// [`MAX_DESCRIPTION_CHARS`]) with a trailing `…`, so a long text never turns an approval into a
/// failure. An empty title becomes `Approval required`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    title: String,
    description: String,
    severity: Severity,
    timeout_ms: u32,
    allowed_decisions: Vec<ApprovalDecision>,
}

impl Approval {
    /// Sets the severity shown to the approver.
    #[must_use]
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Sets how long to wait for the approver (1..=600000 ms; 0 means the default, 120000).
    #[must_use]
    pub fn timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.timeout_ms = timeout_ms;
        self
    }

    /// Limits the approver's choices (default: allow once, allow always, deny).
    #[must_use]
    pub fn allowed_decisions(
        mut self,
        decisions: impl IntoIterator<Item = ApprovalDecision>,
    ) -> Self {
        self.allowed_decisions = decisions.into_iter().collect();
        self
    }

    /// The `ApprovalRequest`, with title and description cut to the contract's limits.
    pub fn to_proto(&self) -> proto::ApprovalRequest {
        let title = if self.title.trim().is_empty() {
            "Approval required"
        } else {
            &self.title
        };
        proto::ApprovalRequest {
            title: truncate(title, MAX_TITLE_CHARS),
            description: truncate(&self.description, MAX_DESCRIPTION_CHARS),
            severity: self.severity.into(),
            timeout_ms: self.timeout_ms,
            allowed_decisions: self.allowed_decisions.iter().map(|&d| d.into()).collect(),
        }
    }
}

impl From<Approval> for proto::ToolCallDecision {
    fn from(approval: Approval) -> Self {
        proto::ToolCallDecision {
            require_approval: Some(approval.to_proto()),
            ..Default::default()
        }
    }
}

impl From<Approval> for proto::ApprovalRequest {
    fn from(approval: Approval) -> Self {
        approval.to_proto()
    }
}

/// `text` cut to at most `max_chars` characters, ending in `…` when cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn allow_is_all_unset() {
        assert_eq!(allow(), proto::ToolCallDecision::default());
    }

    #[test]
    fn block_carries_the_reason() {
        let d = block("no");
        assert!(d.block);
        assert_eq!(d.block_reason, "no");
        assert_eq!(d.params_json, None);
    }

    #[test]
    fn rewrite_serializes_the_whole_object() {
        let Value::Object(map) = json!({"path": "/a", "n": 1}) else {
            unreachable!()
        };
        let d = rewrite(map);
        let back: Value = serde_json::from_str(d.params_json.as_deref().unwrap()).unwrap();
        assert_eq!(back, json!({"path": "/a", "n": 1}));
        assert!(!d.block);
    }

    #[test]
    fn approval_sets_severity_timeout_and_decisions() {
        let d: proto::ToolCallDecision = require_approval("Run exec?", "ls -la")
            .severity(Severity::Warning)
            .timeout_ms(30_000)
            .allowed_decisions([ApprovalDecision::AllowOnce, ApprovalDecision::Deny])
            .into();
        let a = d.require_approval.unwrap();
        assert_eq!(a.title, "Run exec?");
        assert_eq!(a.description, "ls -la");
        assert_eq!(a.severity, Severity::Warning as i32);
        assert_eq!(a.timeout_ms, 30_000);
        assert_eq!(a.allowed_decisions, [1, 3]);
        assert!(!d.block);
    }

    #[test]
    fn approval_texts_are_cut_to_the_limits() {
        let a = require_approval("t".repeat(200), "é".repeat(1000)).to_proto();
        assert_eq!(a.title.chars().count(), MAX_TITLE_CHARS);
        assert!(a.title.ends_with('…'));
        assert_eq!(a.description.chars().count(), MAX_DESCRIPTION_CHARS);
        assert_eq!(
            require_approval("", "").to_proto().title,
            "Approval required"
        );
    }

    #[test]
    fn truncate_keeps_short_text_and_counts_chars() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("ééé", 3), "ééé");
        assert_eq!(truncate("abc", 0), "…");
    }
}
