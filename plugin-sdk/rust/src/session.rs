//! Answers to `before_session_create`: allow, block, or patch this plugin's metadata namespace.

use serde_json::Value;

use crate::proto;

/// No opinion: the session may be created and this plugin's metadata is left as it is.
pub fn allow() -> proto::SessionDecision {
    proto::SessionDecision::default()
}

/// Refuse the session; `reason` is shown to the agent and the operator.
pub fn block(reason: impl Into<String>) -> proto::SessionDecision {
    proto::SessionDecision {
        block: true,
        block_reason: reason.into(),
        ..Default::default()
    }
}

/// Replace this plugin's namespace of the session metadata with `value`.
pub fn patch(value: Value) -> proto::SessionDecision {
    proto::SessionDecision {
        metadata_json: Some(value.to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn constructors() {
        assert_eq!(allow(), proto::SessionDecision::default());
        let b = block("nope");
        assert!(b.block);
        assert_eq!(b.block_reason, "nope");
        let p = patch(json!({"labels": ["a"]}));
        assert!(!p.block);
        assert_eq!(p.metadata_json.as_deref(), Some(r#"{"labels":["a"]}"#));
    }
}
