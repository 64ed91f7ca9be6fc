//! The limits of contract §8: the shape of JSON values (params, session metadata, patches) and the
//! bounds of approval requests. Pure functions: used on host input and on plugin answers alike.

use std::fmt;

use hookvisor_proto::v1::{ApprovalDecision, ApprovalRequest, Severity};
use serde_json::{Map, Value};

/// Deepest nesting of objects and arrays.
pub const MAX_DEPTH: usize = 32;
/// Most values (containers and scalars) in one document.
pub const MAX_NODES: usize = 4096;
/// Most keys in one object.
pub const MAX_KEYS: usize = 512;
/// Longest string (value or key), in bytes.
pub const MAX_STRING_BYTES: usize = 65_536;
/// Largest document, serialized compactly, in bytes.
pub const MAX_SERIALIZED_BYTES: usize = 262_144;
/// Approval title length, in characters.
pub const MAX_APPROVAL_TITLE: usize = 80;
/// Approval description length, in characters.
pub const MAX_APPROVAL_DESCRIPTION: usize = 512;
/// Longest approval timeout, in ms.
pub const MAX_APPROVAL_TIMEOUT_MS: u32 = 600_000;
/// The approval timeout used when a plugin gives 0.
pub const DEFAULT_APPROVAL_TIMEOUT_MS: u32 = 120_000;
/// Longest tool name a host may send, in bytes (the contract is silent; this keeps traces sane).
pub const MAX_TOOL_NAME_BYTES: usize = 256;

/// Why a JSON text was refused. Display gives the reason without the field name; callers prefix
/// the field (`params_json: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not parseable.
    Syntax(String),
    /// Parsed, but the contract wants an object.
    NotAnObject(&'static str),
    /// Parsed, but over one of the limits.
    TooLarge {
        /// What was measured.
        what: &'static str,
        /// The measurement.
        found: usize,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax(e) => write!(f, "not valid JSON ({e})"),
            JsonError::NotAnObject(found) => write!(f, "must be a JSON object, got {found}"),
            JsonError::TooLarge { what, found, limit } => {
                write!(f, "{what} {found} exceeds the limit of {limit}")
            }
        }
    }
}

impl std::error::Error for JsonError {}

/// Parses a JSON value and checks it against every limit of §8.
pub fn parse_value(text: &str) -> Result<Value, JsonError> {
    let value: Value = serde_json::from_str(text).map_err(|e| JsonError::Syntax(e.to_string()))?;
    check_value(&value, text.len())?;
    Ok(value)
}

/// Parses a JSON object (params) and checks it against every limit of §8.
pub fn parse_object(text: &str) -> Result<Map<String, Value>, JsonError> {
    match parse_value(text)? {
        Value::Object(map) => Ok(map),
        other => Err(JsonError::NotAnObject(kind(&other))),
    }
}

/// Checks an already-parsed value; `text_len` is the length of the text it came from (a fast
/// path: a text within the size limit cannot serialize larger).
pub fn check_value(value: &Value, text_len: usize) -> Result<(), JsonError> {
    let mut nodes = 0;
    walk(value, 1, &mut nodes)?;
    if text_len > MAX_SERIALIZED_BYTES {
        let size = serde_json::to_vec(value)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_SERIALIZED_BYTES {
            return Err(too_large(
                "serialized size (bytes)",
                size,
                MAX_SERIALIZED_BYTES,
            ));
        }
    }
    Ok(())
}

fn walk(value: &Value, depth: usize, nodes: &mut usize) -> Result<(), JsonError> {
    *nodes += 1;
    if *nodes > MAX_NODES {
        return Err(too_large("node count", *nodes, MAX_NODES));
    }
    match value {
        Value::String(s) => check_string(s),
        Value::Array(items) => {
            check_depth(depth)?;
            items.iter().try_for_each(|v| walk(v, depth + 1, nodes))
        }
        Value::Object(map) => {
            check_depth(depth)?;
            if map.len() > MAX_KEYS {
                return Err(too_large("keys in one object", map.len(), MAX_KEYS));
            }
            map.iter().try_for_each(|(k, v)| {
                check_string(k)?;
                walk(v, depth + 1, nodes)
            })
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn check_depth(depth: usize) -> Result<(), JsonError> {
    if depth > MAX_DEPTH {
        return Err(too_large("nesting depth", depth, MAX_DEPTH));
    }
    Ok(())
}

fn check_string(s: &str) -> Result<(), JsonError> {
    if s.len() > MAX_STRING_BYTES {
        return Err(too_large(
            "string length (bytes)",
            s.len(),
            MAX_STRING_BYTES,
        ));
    }
    Ok(())
}

fn too_large(what: &'static str, found: usize, limit: usize) -> JsonError {
    JsonError::TooLarge { what, found, limit }
}

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

/// Checks an approval request against §8 and fills in its defaults: timeout 0 becomes 120000,
/// empty `allowed_decisions` becomes all three, unspecified severity becomes warning.
pub fn normalize_approval(mut approval: ApprovalRequest) -> Result<ApprovalRequest, String> {
    let title_chars = approval.title.chars().count();
    if title_chars == 0 || title_chars > MAX_APPROVAL_TITLE {
        return Err(format!(
            "approval title has {title_chars} characters (allowed 1..{MAX_APPROVAL_TITLE})"
        ));
    }
    let description_chars = approval.description.chars().count();
    if description_chars > MAX_APPROVAL_DESCRIPTION {
        return Err(format!(
            "approval description has {description_chars} characters (limit {MAX_APPROVAL_DESCRIPTION})"
        ));
    }
    if approval.timeout_ms == 0 {
        approval.timeout_ms = DEFAULT_APPROVAL_TIMEOUT_MS;
    } else if approval.timeout_ms > MAX_APPROVAL_TIMEOUT_MS {
        return Err(format!(
            "approval timeout_ms {} is out of bounds (allowed 1..{MAX_APPROVAL_TIMEOUT_MS}, 0 for the default)",
            approval.timeout_ms
        ));
    }
    match Severity::try_from(approval.severity) {
        Ok(Severity::Unspecified) => approval.severity = Severity::Warning as i32,
        Ok(_) => {}
        Err(_) => {
            return Err(format!(
                "approval severity {} is unknown",
                approval.severity
            ));
        }
    }
    let mut decisions = Vec::with_capacity(3);
    for &raw in &approval.allowed_decisions {
        match ApprovalDecision::try_from(raw) {
            Ok(ApprovalDecision::Unspecified) | Err(_) => {
                return Err(format!(
                    "approval allowed_decisions has an invalid value {raw}"
                ));
            }
            Ok(_) if decisions.contains(&raw) => {}
            Ok(_) => decisions.push(raw),
        }
    }
    if decisions.is_empty() {
        decisions = vec![
            ApprovalDecision::AllowOnce as i32,
            ApprovalDecision::AllowAlways as i32,
            ApprovalDecision::Deny as i32,
        ];
    }
    approval.allowed_decisions = decisions;
    Ok(approval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    #[test]
    fn objects_within_limits_parse() {
        let map = parse_object(r#"{"path": "/tmp/x", "n": [1, 2, {"a": null}]}"#).expect("valid");
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn each_limit_is_enforced_and_named() {
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "not valid JSON"),
            ("[1]".into(), "must be a JSON object, got an array"),
            ("\"s\"".into(), "must be a JSON object, got a string"),
            (
                format!("{{\"a\": {}}}", nested(32)),
                "nesting depth 33 exceeds the limit of 32",
            ),
            (
                format!("{{\"a\": [{}]}}", vec!["1"; 4096].join(",")),
                "node count 4097 exceeds the limit of 4096",
            ),
            (
                format!(
                    "{{{}}}",
                    (0..513)
                        .map(|i| format!("\"k{i}\": 1"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                "keys in one object 513 exceeds the limit of 512",
            ),
            (
                format!("{{\"a\": \"{}\"}}", "x".repeat(65_537)),
                "string length (bytes) 65537 exceeds the limit of 65536",
            ),
            (
                format!(
                    "{{{}}}",
                    (0..5)
                        .map(|i| format!("\"k{i}\": \"{}\"", "x".repeat(60_000)))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                "serialized size (bytes) 300041 exceeds the limit of 262144",
            ),
        ];
        for (text, want) in cases {
            let err = parse_object(&text).expect_err(want).to_string();
            assert!(err.contains(want), "got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn limits_are_inclusive() {
        assert!(parse_object(&format!("{{\"a\": {}}}", nested(31))).is_ok());
        assert!(parse_object(&format!("{{\"a\": \"{}\"}}", "x".repeat(65_536))).is_ok());
        // Whitespace does not count towards the serialized size.
        let padded = format!("{{\"a\": 1{}}}", " ".repeat(300_000));
        assert!(parse_object(&padded).is_ok());
    }

    fn approval(title: &str) -> ApprovalRequest {
        ApprovalRequest {
            title: title.into(),
            ..Default::default()
        }
    }

    #[test]
    fn approval_defaults_are_filled_in() {
        let a = normalize_approval(approval("Run exec?")).expect("valid");
        assert_eq!(a.timeout_ms, DEFAULT_APPROVAL_TIMEOUT_MS);
        assert_eq!(a.allowed_decisions, vec![1, 2, 3]);
        assert_eq!(a.severity, Severity::Warning as i32);
    }

    #[test]
    fn approval_bounds_are_enforced() {
        let long_description = ApprovalRequest {
            description: "d".repeat(513),
            ..approval("t")
        };
        let long_timeout = ApprovalRequest {
            timeout_ms: 600_001,
            ..approval("t")
        };
        let bad_decision = ApprovalRequest {
            allowed_decisions: vec![0],
            ..approval("t")
        };
        let cases = [
            (approval(""), "title has 0 characters"),
            (approval(&"é".repeat(81)), "title has 81 characters"),
            (long_description, "description has 513 characters"),
            (long_timeout, "timeout_ms 600001 is out of bounds"),
            (bad_decision, "invalid value 0"),
        ];
        for (input, want) in cases {
            let err = normalize_approval(input).expect_err(want);
            assert!(err.contains(want), "got {err:?}, want {want:?}");
        }
        assert!(normalize_approval(approval(&"é".repeat(80))).is_ok());
    }
}

// TEMP (lead): replaced by the hard-json branch at merge.
/// Longest text a plugin supplies that a verdict carries (block reasons, status texts).
pub const MAX_PLUGIN_TEXT_BYTES: usize = 4096;

/// `text` cut on a char boundary to at most `max` bytes, marked as cut.
pub fn cap_text(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let marker = format!(" …[cut, {} bytes in all]", text.len());
    let mut end = max.saturating_sub(marker.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}{marker}", &text[..end]))
}

// TEMP (lead): replaced by the hard-json branch at merge.
/// Longest JSON text accepted at all.
pub const MAX_TEXT_BYTES: usize = 2 * MAX_SERIALIZED_BYTES;
/// The canonical text of a value.
pub fn canonical(value: &Value) -> String {
    value.to_string()
}
