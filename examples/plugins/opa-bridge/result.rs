//! OPA's answer to a tool call turned into a decision: the documented result shape, checked
//! strictly. Pure (no I/O), so every shape is a unit test.
//!
//! The shape (`docs/opa.md`): the document at the data path is an object with
//! - `allow` (boolean, required): `false` blocks;
//! - `reason` (string, optional): the block's reason;
//! - `params` (object, optional, with `allow: true`): the call's params are replaced by it;
//! - `approval` (object, optional, with `allow: true`): a human is asked first; its keys are
//!   `title`, `description` (strings), `severity` (`"info"`, `"warning"`, `"critical"`) and
//!   `timeout_ms` (1..600000).
//!
//! Anything else is an error, and the call is blocked: an undefined result (OPA answers `{}`
//! when no rule produced the document), a result that is not an object, a missing `allow`, a
//! field of the wrong type, or a key not listed above (a typo such as `aproval` must not drop
//! an approval without a word).

use hookvisor_plugin::serde_json::{Map, Value};
use hookvisor_plugin::{Severity, decision, proto};

/// Longest approval timeout the contract accepts, in milliseconds (`docs/contract.md` §8).
const MAX_APPROVAL_TIMEOUT_MS: u64 = 600_000;

/// The keys a result may have.
const RESULT_KEYS: &[&str] = &["allow", "reason", "params", "approval"];
/// The keys an `approval` may have.
const APPROVAL_KEYS: &[&str] = &["title", "description", "severity", "timeout_ms"];

/// The decision for OPA's response body `body` (a Data API answer) from the document `data.PATH`
/// (`document` names it in messages, e.g. `data.hookvisor.tool_call`); the error says why the
/// answer cannot be used.
pub fn decide(body: &[u8], document: &str) -> Result<proto::ToolCallDecision, String> {
    let answer: Value = hookvisor_plugin::serde_json::from_slice(body)
        .map_err(|e| format!("OPA's answer is not JSON: {e}"))?;
    let Value::Object(mut answer) = answer else {
        return Err(format!("OPA's answer is {}, not an object", kind(&answer)));
    };
    let result = match answer.remove("result") {
        None => {
            return Err(format!(
                "{document} is undefined (no rule gave it a value, or no policy is loaded there)"
            ));
        }
        Some(Value::Object(result)) => result,
        Some(other) => {
            return Err(format!(
                "{document} is {}, not an object with `allow`",
                kind(&other)
            ));
        }
    };
    from_result(result, document)
}

/// The decision for the result object.
fn from_result(
    mut result: Map<String, Value>,
    document: &str,
) -> Result<proto::ToolCallDecision, String> {
    if let Some(key) = result.keys().find(|k| !RESULT_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "{document} has the unknown key `{key}` (expected allow, reason, params, approval)"
        ));
    }
    let allow = match result.remove("allow") {
        Some(Value::Bool(allow)) => allow,
        None => return Err(format!("{document} has no `allow` (a boolean)")),
        Some(other) => {
            return Err(format!(
                "{document}.allow is {}, not a boolean",
                kind(&other)
            ));
        }
    };
    let reason = match result.remove("reason") {
        None => None,
        Some(Value::String(reason)) => Some(reason),
        Some(other) => {
            return Err(format!(
                "{document}.reason is {}, not a string",
                kind(&other)
            ));
        }
    };
    if !allow {
        return Ok(decision::block(match reason {
            Some(reason) if !reason.trim().is_empty() => reason,
            _ => format!("denied by the OPA policy {document}"),
        }));
    }
    let mut answer = decision::allow();
    match result.remove("params") {
        None => {}
        Some(Value::Object(params)) => answer.params_json = Some(Value::Object(params).to_string()),
        Some(other) => {
            return Err(format!(
                "{document}.params is {}, not an object",
                kind(&other)
            ));
        }
    }
    match result.remove("approval") {
        None => {}
        Some(Value::Object(approval)) => {
            answer.require_approval = Some(approval_request(approval, document)?);
        }
        Some(other) => {
            return Err(format!(
                "{document}.approval is {}, not an object",
                kind(&other)
            ));
        }
    }
    Ok(answer)
}

/// The approval request an `approval` object asks for.
fn approval_request(
    mut approval: Map<String, Value>,
    document: &str,
) -> Result<proto::ApprovalRequest, String> {
    if let Some(key) = approval
        .keys()
        .find(|k| !APPROVAL_KEYS.contains(&k.as_str()))
    {
        return Err(format!(
            "{document}.approval has the unknown key `{key}` (expected title, description, severity, timeout_ms)"
        ));
    }
    let mut text = |key: &str| match approval.remove(key) {
        None => Ok(String::new()),
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(format!(
            "{document}.approval.{key} is {}, not a string",
            kind(&other)
        )),
    };
    let title = text("title")?;
    let description = text("description")?;
    let severity = match approval.remove("severity") {
        None => Severity::Unspecified,
        Some(Value::String(name)) => match name.as_str() {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "critical" => Severity::Critical,
            _ => {
                return Err(format!(
                    "{document}.approval.severity is \"{name}\" (expected info, warning or critical)"
                ));
            }
        },
        Some(other) => {
            return Err(format!(
                "{document}.approval.severity is {}, not a string",
                kind(&other)
            ));
        }
    };
    let timeout_ms = match approval.remove("timeout_ms") {
        None => 0,
        Some(value) => match value.as_u64() {
            Some(ms @ 1..=MAX_APPROVAL_TIMEOUT_MS) => ms as u32,
            _ => {
                return Err(format!(
                    "{document}.approval.timeout_ms is {value}, not an integer in 1..={MAX_APPROVAL_TIMEOUT_MS}"
                ));
            }
        },
    };
    Ok(decision::require_approval(title, description)
        .severity(severity)
        .timeout_ms(timeout_ms)
        .to_proto())
}

/// What a JSON value is, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use hookvisor_plugin::serde_json::json;

    use super::*;

    const DOC: &str = "data.hookvisor.tool_call";

    fn decide_json(answer: Value) -> Result<proto::ToolCallDecision, String> {
        decide(answer.to_string().as_bytes(), DOC)
    }

    #[test]
    fn allow_true_is_no_opinion() {
        let d = decide_json(json!({"result": {"allow": true}})).unwrap();
        assert_eq!(d, decision::allow());
        // A reason beside an allow is only for the decision log.
        let d = decide_json(json!({"result": {"allow": true, "reason": "fine"}})).unwrap();
        assert_eq!(d, decision::allow());
    }

    #[test]
    fn allow_false_blocks_with_the_reason_or_names_the_document() {
        let d = decide_json(json!({"result": {"allow": false, "reason": "no sudo"}})).unwrap();
        assert_eq!(d, decision::block("no sudo"));
        let d = decide_json(json!({"result": {"allow": false}})).unwrap();
        assert_eq!(
            d,
            decision::block("denied by the OPA policy data.hookvisor.tool_call")
        );
    }

    #[test]
    fn params_rewrite_and_approval_asks() {
        let d = decide_json(json!({"result": {"allow": true, "params": {"path": "/a"}}})).unwrap();
        let params: Value =
            hookvisor_plugin::serde_json::from_str(d.params_json.as_deref().unwrap()).unwrap();
        assert_eq!(params, json!({"path": "/a"}));
        assert!(!d.block);

        let d = decide_json(json!({"result": {"allow": true, "approval": {
            "title": "Push?", "description": "git push", "severity": "critical", "timeout_ms": 30000
        }}}))
        .unwrap();
        let a = d.require_approval.unwrap();
        assert_eq!(
            (a.title.as_str(), a.description.as_str()),
            ("Push?", "git push")
        );
        assert_eq!(a.severity, Severity::Critical as i32);
        assert_eq!(a.timeout_ms, 30_000);

        let d = decide_json(json!({"result": {"allow": true, "approval": {}}})).unwrap();
        assert_eq!(d.require_approval.unwrap().title, "Approval required");
    }

    #[test]
    fn undefined_and_non_objects_are_errors() {
        let err = decide_json(json!({})).unwrap_err();
        assert!(
            err.starts_with("data.hookvisor.tool_call is undefined"),
            "{err}"
        );
        // OPA adds these beside a result; without one it is still undefined.
        let err = decide_json(json!({"decision_id": "x", "warning": {}})).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
        let err = decide_json(json!({"result": true})).unwrap_err();
        assert_eq!(
            err,
            "data.hookvisor.tool_call is a boolean, not an object with `allow`"
        );
        let err = decide_json(json!([1])).unwrap_err();
        assert_eq!(err, "OPA's answer is an array, not an object");
        let err = decide(b"<html>", DOC).unwrap_err();
        assert!(err.starts_with("OPA's answer is not JSON"), "{err}");
    }

    #[test]
    fn wrong_types_missing_allow_and_unknown_keys_are_errors() {
        let cases = [
            (
                json!({}),
                "data.hookvisor.tool_call has no `allow` (a boolean)",
            ),
            (
                json!({"allow": "yes"}),
                "data.hookvisor.tool_call.allow is a string, not a boolean",
            ),
            (
                json!({"allow": false, "reason": 3}),
                "data.hookvisor.tool_call.reason is a number, not a string",
            ),
            (
                json!({"allow": true, "params": [1]}),
                "data.hookvisor.tool_call.params is an array, not an object",
            ),
            (
                json!({"allow": true, "approval": true}),
                "data.hookvisor.tool_call.approval is a boolean, not an object",
            ),
            (
                json!({"allow": true, "aproval": {}}),
                "data.hookvisor.tool_call has the unknown key `aproval` (expected allow, reason, params, approval)",
            ),
            (
                json!({"allow": true, "approval": {"title": 1}}),
                "data.hookvisor.tool_call.approval.title is a number, not a string",
            ),
            (
                json!({"allow": true, "approval": {"severity": "high"}}),
                "data.hookvisor.tool_call.approval.severity is \"high\" (expected info, warning or critical)",
            ),
            (
                json!({"allow": true, "approval": {"timeout_ms": 0}}),
                "data.hookvisor.tool_call.approval.timeout_ms is 0, not an integer in 1..=600000",
            ),
            (
                json!({"allow": true, "approval": {"why": "x"}}),
                "data.hookvisor.tool_call.approval has the unknown key `why` (expected title, description, severity, timeout_ms)",
            ),
        ];
        for (result, expected) in cases {
            let err = decide_json(json!({ "result": result })).unwrap_err();
            assert_eq!(err, expected, "{result}");
        }
    }
}
