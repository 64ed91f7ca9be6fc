//! The limits of contract §8: the shape of JSON values (params, session metadata, patches), the
//! one canonical JSON text every party gets, the bounds of approval requests, and the cap on
//! texts a plugin supplies. Pure functions: used on host input and on plugin answers alike.
//!
//! JSON texts are parsed in one pass that enforces the limits as it goes ([`parse_value`]): the
//! text's byte length is checked before anything is parsed, and the first breach of depth, node
//! count, keys per object or string length stops the parser, so the cost of a hostile text is
//! bounded by the limits, not by its size. Duplicate keys are refused at any depth: serde_json
//! would keep the last, other readers (Go's gjson, simdjson on-demand) keep the first, and two
//! parties must never judge different values from one text.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io;

use hookvisor_proto::v1::{ApprovalDecision, ApprovalRequest, Severity};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

// The contract's numbers live once, in the proto crate (`docs/contract.md` §8).
pub use hookvisor_proto::limits::{
    DEFAULT_APPROVAL_TIMEOUT_MS, MAX_APPROVAL_DESCRIPTION_CHARS as MAX_APPROVAL_DESCRIPTION,
    MAX_APPROVAL_TIMEOUT_MS, MAX_APPROVAL_TITLE_CHARS as MAX_APPROVAL_TITLE, MAX_DEPTH, MAX_KEYS,
    MAX_NODES, MAX_PLUGIN_TEXT_BYTES, MAX_SERIALIZED_BYTES, MAX_STRING_BYTES, MAX_TEXT_BYTES,
    MAX_TOOL_NAME_BYTES,
};

/// How many bytes of a key an error message quotes (keys may be 64 KiB; messages stay short).
const KEY_BYTES_IN_MESSAGES: usize = 64;

/// Why a JSON text was refused. Display gives the reason without the field name; callers prefix
/// the field (`params_json: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not parseable.
    #[error("not valid JSON ({0})")]
    Syntax(String),
    /// Parsed, but the contract wants an object.
    #[error("must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// Over one of the limits.
    #[error("{what} {found} exceeds the limit of {limit}")]
    TooLarge {
        /// What was measured.
        what: &'static str,
        /// The measurement.
        found: usize,
        /// The limit.
        limit: usize,
    },
    /// One object names the same key twice (compared after unescaping).
    #[error("duplicate key {} at {path}", quote_capped(key))]
    DuplicateKey {
        /// The key, unescaped.
        key: String,
        /// Where the object holding it is, JSONPath-like (`$`, `$.a[2]`, `$["other key"]`).
        path: String,
    },
}

/// Parses a JSON value and checks it against every limit of §8, refusing duplicate keys.
pub fn parse_value(text: &str) -> Result<Value, JsonError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(too_large("text size (bytes)", text.len(), MAX_TEXT_BYTES));
    }
    let mut state = ParseState::default();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = ValueSeed {
        state: &mut state,
        depth: 1,
    }
    .deserialize(&mut deserializer)
    // Anything after the value (`{} x`, `{}{}`) is a syntax error, as with `serde_json::from_str`.
    .and_then(|value| deserializer.end().map(|()| value));
    let value = parsed.map_err(|e| state.into_error(e))?;
    check_serialized_size(&value)?;
    Ok(value)
}

/// Parses a JSON object (params) and checks it against every limit of §8.
pub fn parse_object(text: &str) -> Result<Map<String, Value>, JsonError> {
    match parse_value(text)? {
        Value::Object(map) => Ok(map),
        other => Err(JsonError::NotAnObject(kind(&other))),
    }
}

/// Checks a value built in memory (a merge result, say) against every limit of §8.
///
/// `text_len` is no longer used: the serialized size is always measured, because a short text
/// can serialize longer than it was written (`1e15` becomes `1000000000000000.0`). The
/// measurement writes nothing anywhere, and the walk before it bounds its cost.
pub fn check_value(value: &Value, _text_len: usize) -> Result<(), JsonError> {
    let mut nodes = 0;
    walk(value, 1, &mut nodes)?;
    check_serialized_size(value)
}

/// The one canonical JSON text of a value: compact, object keys in sorted order (serde_json's
/// `Map` is a `BTreeMap` in this build: the `preserve_order` feature must stay off). Every plugin
/// and the host get these bytes for a value, never a text of their own choosing.
pub fn canonical(value: &Value) -> String {
    value.to_string()
}

/// Cuts a text a plugin supplied to at most `max` bytes, marker included, on a character
/// boundary. A text that fits comes back unchanged (borrowed).
pub fn cap_text(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let marker = format!(" …[cut, {} bytes in all]", text.len());
    let keep = floor_char_boundary(text, max.saturating_sub(marker.len()));
    let mut capped = String::with_capacity(keep + marker.len());
    capped.push_str(&text[..keep]);
    capped.push_str(&marker);
    // Only when `max` is shorter than the marker itself: cut the marker too.
    capped.truncate(floor_char_boundary(&capped, max));
    Cow::Owned(capped)
}

/// [`cap_text`] for an owned text: no copy when it fits.
pub fn cap_string(text: String, max: usize) -> String {
    match cap_text(&text, max) {
        Cow::Borrowed(_) => text,
        Cow::Owned(capped) => capped,
    }
}

/// The largest index `<= index` (and `<= text.len()`) that is a character boundary of `text`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    // Terminates: 0 is always a boundary, and a UTF-8 character is at most 4 bytes.
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// Refuses a value whose compact serialization is over [`MAX_SERIALIZED_BYTES`].
fn check_serialized_size(value: &Value) -> Result<(), JsonError> {
    let mut counter = ByteCounter(0);
    // Serializing a `Value` into a writer that never fails cannot fail: the error is unreachable,
    // and if it ever happened the size counts as unmeasurable, so the value is refused.
    let size = match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    };
    if size > MAX_SERIALIZED_BYTES {
        return Err(too_large(
            "serialized size (bytes)",
            size,
            MAX_SERIALIZED_BYTES,
        ));
    }
    Ok(())
}

/// A writer that only counts bytes.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the one-pass parser keeps across levels.
#[derive(Default)]
struct ParseState {
    /// Values seen so far (pre-order, as [`walk`] counts them).
    nodes: usize,
    /// The limit breach that stopped the parser. serde_json turns a visitor's error into a string
    /// with " at line X column Y" appended; this keeps the structured error and its exact message.
    error: Option<JsonError>,
    /// Where the breach happened, innermost step first: filled in only while unwinding from an
    /// error, so a successful parse pays nothing for paths.
    trail: Vec<Step>,
}

/// One step of a path from the root to a value.
enum Step {
    Key(String),
    Index(usize),
}

impl ParseState {
    /// Records `error` as the reason the parse stops, and gives serde_json an error to unwind with.
    fn fail<E: de::Error>(&mut self, error: JsonError) -> E {
        self.error = Some(error);
        E::custom("JSON limit breached")
    }

    fn count_node<E: de::Error>(&mut self) -> Result<(), E> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.fail(too_large("node count", self.nodes, MAX_NODES)));
        }
        Ok(())
    }

    /// Records a step while unwinding from one of our own errors.
    fn unwinding_through(&mut self, step: Step) {
        if self.error.is_some() {
            self.trail.push(step);
        }
    }

    /// The error to report for a failed parse: ours if one of our checks stopped it, else
    /// serde_json's syntax error.
    fn into_error(self, serde_error: serde_json::Error) -> JsonError {
        match self.error {
            Some(JsonError::DuplicateKey { key, .. }) => JsonError::DuplicateKey {
                key,
                path: format_path(self.trail.iter().rev()),
            },
            Some(error) => error,
            None => JsonError::Syntax(serde_error.to_string()),
        }
    }
}

/// Builds one `Value` at `depth` (the root is at depth 1), enforcing the limits while parsing.
struct ValueSeed<'s> {
    state: &'s mut ParseState,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.state.count_node()?;
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        self.state.count_node()?;
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        self.state.count_node()?;
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        self.state.count_node()?;
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        self.state.count_node()?;
        // serde_json's parser never yields a non-finite number; refuse rather than invent one.
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        self.state.count_node()?;
        check_string(value).map_err(|e| self.state.fail(e))?;
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        self.state.count_node()?;
        check_string(&value).map_err(|e| self.state.fail(e))?;
        Ok(Value::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let state = self.state;
        state.count_node()?;
        check_depth(self.depth).map_err(|e| state.fail(e))?;
        let mut items = Vec::new();
        loop {
            let seed = ValueSeed {
                state: &mut *state,
                depth: self.depth + 1,
            };
            match seq.next_element_seed(seed) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => {
                    state.unwinding_through(Step::Index(items.len()));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let state = self.state;
        let first = map.next_key::<String>()?;
        // With `arbitrary_precision`, serde_json hands a number over as a map of one entry
        // under its private token, the number's text as the value (given as an owned string,
        // [`NumberText`]); a JSON object that spells that key itself is refused, never taken
        // for a number.
        if first.as_deref() == Some(NUMBER_TOKEN) {
            let text = map.next_value_seed(NumberText)?.ok_or_else(|| {
                state.fail(JsonError::Syntax(format!(
                    "the key {NUMBER_TOKEN:?} is reserved"
                )))
            })?;
            state.count_node()?;
            let number = text
                .parse::<Number>()
                .map_err(|e| state.fail(JsonError::Syntax(e.to_string())))?;
            return Ok(Value::Number(number));
        }
        state.count_node()?;
        check_depth(self.depth).map_err(|e| state.fail(e))?;
        let mut object = Map::new();
        let mut next = first;
        while let Some(key) = next.take() {
            if object.len() >= MAX_KEYS {
                return Err(state.fail(too_large(
                    "keys in one object",
                    object.len() + 1,
                    MAX_KEYS,
                )));
            }
            check_string(&key).map_err(|e| state.fail(e))?;
            // Anywhere in an object: sorted first in the canonical text, it would turn the
            // object into a number for the next reader.
            if key == NUMBER_TOKEN {
                return Err(state.fail(JsonError::Syntax(format!(
                    "the key {NUMBER_TOKEN:?} is reserved"
                ))));
            }
            if object.contains_key(&key) {
                return Err(state.fail(JsonError::DuplicateKey {
                    key,
                    path: String::new(),
                }));
            }
            let seed = ValueSeed {
                state: &mut *state,
                depth: self.depth + 1,
            };
            match map.next_value_seed(seed) {
                Ok(value) => {
                    object.insert(key, value);
                }
                Err(e) => {
                    state.unwinding_through(Step::Key(key));
                    return Err(e);
                }
            }
            next = map.next_key::<String>()?;
        }
        Ok(Value::Object(object))
    }
}

/// serde_json's private key under which `arbitrary_precision` passes a number as a map.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// The value under [`NUMBER_TOKEN`]: `Some(text)` when serde_json passes a number (it gives the
/// text as an owned `String`), `None` when the JSON text itself holds an object with that key
/// (its value then comes as a borrowed or escaped string, or as anything else).
struct NumberText;

impl<'de> DeserializeSeed<'de> for NumberText {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NumberText {
    type Value = Option<String>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a number")
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(Some(text))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `$` then `.name` for simple keys, `["other key"]` for the rest, `[i]` for array items.
fn format_path<'a>(steps: impl Iterator<Item = &'a Step>) -> String {
    let mut path = String::from("$");
    for step in steps {
        // Writing to a String cannot fail.
        let _ = match step {
            Step::Key(key) if is_simple_key(key) => write!(path, ".{key}"),
            Step::Key(key) => write!(path, "[{}]", quote_capped(key)),
            Step::Index(index) => write!(path, "[{index}]"),
        };
    }
    path
}

/// `[A-Za-z_][A-Za-z0-9_]*`, short enough to show whole.
fn is_simple_key(key: &str) -> bool {
    let mut chars = key.chars();
    key.len() <= KEY_BYTES_IN_MESSAGES
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A key as a JSON string literal for messages and logs: at most [`KEY_BYTES_IN_MESSAGES`] bytes
/// of it (then `…` after the closing quote), with control, line-separator and bidirectional
/// formatting characters escaped so a key cannot forge or reorder log lines.
fn quote_capped(key: &str) -> String {
    let shown = &key[..floor_char_boundary(key, KEY_BYTES_IN_MESSAGES)];
    let mut quoted = String::with_capacity(shown.len() + 8);
    quoted.push('"');
    for c in shown.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() || is_invisible_format(c) => {
                // Every such character is in the Basic Multilingual Plane: one \u escape.
                let _ = write!(quoted, "\\u{:04x}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    if shown.len() < key.len() {
        quoted.push('…');
    }
    quoted
}

/// Zero-width, line/paragraph separator and bidirectional formatting characters.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
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

    fn duplicate(text: &str) -> (String, String) {
        match parse_value(text) {
            Err(JsonError::DuplicateKey { key, path }) => (key, path),
            other => panic!("{text}: want a duplicate key, got {other:?}"),
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_with_their_path() {
        // The attack of issue 5 item 3: a first-key reader judges `ls`, a JS host runs `rm -rf /`.
        let err = parse_object(r#"{"command": "ls", "command": "rm -rf /"}"#).expect_err("dup");
        assert_eq!(err.to_string(), r#"duplicate key "command" at $"#);
        let cases = [
            (r#"{"a": {"b": 1, "b": 2}}"#, "b", "$.a"),
            (
                r#"{"a": [0, 1, {"command": 1, "command": 2}]}"#,
                "command",
                "$.a[2]",
            ),
            (r#"[[], [{"x": [{"k": 1, "k": 1}]}]]"#, "k", "$[1][0].x[0]"),
            (
                r#"{"other key": [{"x": 1, "x": 1}]}"#,
                "x",
                r#"$["other key"][0]"#,
            ),
            (
                r#"{"1a": {"x\ny": {"k": 1, "k": 1}}}"#,
                "k",
                r#"$["1a"]["x\ny"]"#,
            ),
            // Compared after unescaping: \u0063 is "c".
            (
                r#"{"command": "ls", "\u0063ommand": "rm -rf /"}"#,
                "command",
                "$",
            ),
            (r#"{"a\/b": 1, "a/b": 2}"#, "a/b", "$"),
            (r#"{"": 1, "": 2}"#, "", "$"),
        ];
        for (text, want_key, want_path) in cases {
            let (key, path) = duplicate(text);
            assert_eq!(
                (key.as_str(), path.as_str()),
                (want_key, want_path),
                "{text}"
            );
        }
        let err = parse_value(r#"{"a": [0, 1, {"command": 1, "command": 2}]}"#).expect_err("dup");
        assert_eq!(err.to_string(), r#"duplicate key "command" at $.a[2]"#);
    }

    #[test]
    fn the_same_key_in_different_objects_is_fine() {
        let text =
            r#"{"k": {"k": 1}, "b": {"k": 2}, "c": [{"k": 1}, {"k": 2}], "d": [{"k": {"k": 0}}]}"#;
        let value = parse_value(text).expect("no object repeats a key");
        assert_eq!(value, serde_json::from_str::<Value>(text).expect("valid"));
    }

    #[test]
    fn keys_in_messages_are_capped_and_escaped() {
        let long = "k".repeat(10_000);
        let text = format!(r#"{{"{long}": {{"x": 1, "x": 2}}, "{long}": 1}}"#);
        let (_, path) = duplicate(&text);
        assert!(path.len() < 100, "path {path:?} is not capped");
        assert!(path.ends_with("\"…]"), "{path}");
        let text = format!(r#"{{"{long}": 1, "{long}": 2}}"#);
        let message = parse_value(&text).expect_err("dup").to_string();
        assert!(message.len() < 100, "message {message:?} is not capped");
        // A key cannot forge a log line or reorder the text around it.
        let text = r#"{"a\r\nINFO allowed\u202e\u0007": {"x": 1, "x": 2}}"#;
        let (_, path) = duplicate(text);
        assert_eq!(path, r#"$["a\r\nINFO allowed\u202e\u0007"]"#);
    }

    #[test]
    fn text_size_is_checked_before_parsing() {
        // Issue 5 item 7: 3.6 MB with 330,000 keys cost 162 ms before any limit applied.
        let text = format!(
            "{{{}}}",
            (0..330_000)
                .map(|i| format!("\"k{i}\":1"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(text.len() > 3_600_000);
        let err = parse_object(&text).expect_err("over the text size");
        assert_eq!(
            err,
            JsonError::TooLarge {
                what: "text size (bytes)",
                found: text.len(),
                limit: MAX_TEXT_BYTES,
            }
        );
        // Bad syntax past the limit does not matter: nothing is parsed.
        assert!(parse_value(&"[".repeat(MAX_TEXT_BYTES + 1)).is_err());
        let at_limit = format!("{{\"a\": 1{}}}", " ".repeat(MAX_TEXT_BYTES - 8));
        assert_eq!(at_limit.len(), MAX_TEXT_BYTES);
        assert!(parse_object(&at_limit).is_ok());
    }

    /// A text just under `MAX_TEXT_BYTES` built of `item(i)` separated by commas in `open`/`close`.
    fn fill(open: &str, close: &str, item: impl Fn(usize) -> String) -> (String, usize) {
        let mut text = String::from(open);
        let mut count = 0;
        loop {
            let next = item(count);
            if text.len() + next.len() + 1 + close.len() > MAX_TEXT_BYTES {
                break;
            }
            if count > 0 {
                text.push(',');
            }
            text.push_str(&next);
            count += 1;
        }
        text.push_str(close);
        (text, count)
    }

    #[test]
    fn limits_stop_the_parser_at_the_first_breach() {
        // As many distinct keys as fit: a parse-then-walk would report the whole count; the
        // one-pass parser stops at key 513.
        let (text, keys) = fill("{", "}", |i| format!("\"{i:x}\":0"));
        assert!(keys > 50_000, "{keys} keys");
        assert_eq!(
            parse_object(&text).expect_err("too many keys").to_string(),
            "keys in one object 513 exceeds the limit of 512"
        );
        let (text, nodes) = fill("[", "]", |_| "0".into());
        assert!(nodes > 200_000, "{nodes} nodes");
        assert_eq!(
            parse_value(&text).expect_err("too many nodes").to_string(),
            "node count 4097 exceeds the limit of 4096"
        );
        let (text, _) = fill("{\"a\":[", "]}", |i| format!("{{\"k\":{i}}}"));
        assert_eq!(
            parse_value(&text).expect_err("too many nodes").to_string(),
            "node count 4097 exceeds the limit of 4096"
        );
        // Our depth limit fires long before serde_json's own recursion limit (128).
        let text = "[".repeat(MAX_TEXT_BYTES);
        assert_eq!(
            parse_value(&text).expect_err("too deep").to_string(),
            "nesting depth 33 exceeds the limit of 32"
        );
        let text = format!("{{\"a\": \"{}", "x".repeat(MAX_TEXT_BYTES - 10));
        assert_eq!(
            parse_value(&text)
                .expect_err("unterminated")
                .to_string()
                .split(" at line")
                .next(),
            Some("not valid JSON (EOF while parsing a string")
        );
        let text = format!("[\"{}\"]", "x".repeat(MAX_STRING_BYTES + 1));
        assert_eq!(
            parse_value(&text).expect_err("long string").to_string(),
            "string length (bytes) 65537 exceeds the limit of 65536"
        );
        let text = format!("{{\"{}\": 1}}", "\\u0078".repeat(MAX_STRING_BYTES + 1));
        assert_eq!(
            parse_value(&text).expect_err("long key").to_string(),
            "string length (bytes) 65537 exceeds the limit of 65536"
        );
    }

    #[test]
    fn syntax_errors_stay_syntax_errors() {
        for text in [
            "",
            "{} x",
            "{}{}",
            r#"{"a": 1,}"#,
            "[1,]",
            r#"{"a" 1}"#,
            r#"{"a": "\ud800"}"#,
            "{\"a\": \"\u{1}\"}",
            "[NaN]",
            "{\"a\": 01}",
        ] {
            let err = parse_value(text).expect_err(text);
            assert!(matches!(err, JsonError::Syntax(_)), "{text}: {err:?}");
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn serialized_size_is_measured_not_the_texts() {
        // Numbers keep their text, so the canonical form is never longer than the text; what
        // counts is still the canonical size: a text with room to spare in whitespace passes,
        // one whose content is over the limit does not, whatever the text's length.
        let content = format!(
            "{{\"s\": [\"{x}\", \"{x}\", \"{x}\", \"{x}\", \"{x}\"]}}",
            x = "x".repeat(65_000),
        );
        assert!(content.len() > MAX_SERIALIZED_BYTES);
        let err = parse_value(&content).expect_err("over the serialized size");
        assert!(
            err.to_string().starts_with("serialized size (bytes) "),
            "{err}"
        );
        let value: Value = serde_json::from_str(&content).expect("valid");
        assert!(check_value(&value, content.len()).is_err());
        let spaced = format!(
            "{{\"s\": [\"{x}\", {pad}\"{x}\"]}}",
            x = "x".repeat(65_000),
            pad = " ".repeat(MAX_SERIALIZED_BYTES),
        );
        assert!(spaced.len() > MAX_SERIALIZED_BYTES);
        assert!(parse_value(&spaced).is_ok());
    }

    /// Every number keeps its value exactly and its digits as written (no rounding to a
    /// double); the canonical form spells an exponent `e+N` or `e-N`.
    #[test]
    fn numbers_keep_their_digits_exactly() {
        for (number, canonical_text) in [
            ("12345678901234567890", "12345678901234567890"),
            ("-12345678901234567890123", "-12345678901234567890123"),
            (
                "0.1000000000000000000000000001",
                "0.1000000000000000000000000001",
            ),
            ("-0.0", "-0.0"),
            ("-0", "-0"),
            ("1.50", "1.50"),
            ("1e3", "1e+3"),
            ("1E3", "1e+3"),
            ("1e+3", "1e+3"),
            ("1e400", "1e+400"),
            ("-1e-400", "-1e-400"),
            (
                "123456789012345678901234567890.123456789e-5",
                "123456789012345678901234567890.123456789e-5",
            ),
            ("0", "0"),
            ("5e-324", "5e-324"),
        ] {
            let text = format!("{{\"n\":{number},\"a\":[{number}]}}");
            let value = parse_value(&text).unwrap_or_else(|e| panic!("{number}: {e}"));
            assert_eq!(
                canonical(&value),
                format!("{{\"a\":[{canonical_text}],\"n\":{canonical_text}}}"),
                "{number}"
            );
        }
    }

    /// The private key under which serde_json passes a number to a visitor is refused when a
    /// JSON text spells it, in any form and at any place: a host cannot make plugins see a
    /// number where its own copy holds an object.
    #[test]
    fn an_object_that_spells_the_number_key_is_refused() {
        for text in [
            r#"{"n": {"$serde_json::private::Number": "1"}}"#,
            r#"{"n": {"\u0024serde_json::private::Number": "1"}}"#,
            r#"{"n": {"$serde_json::private::Number": "1", "b": 2}}"#,
            r#"{"n": {"$serde_json::private::Number": 1}}"#,
            r#"{"n": {"$serde_json::private::Number": {"a": 1}}}"#,
            r#"{"$serde_json::private::Number": "1"}"#,
        ] {
            let err = parse_value(text).expect_err(text);
            assert!(matches!(err, JsonError::Syntax(_)), "{text}: {err:?}");
        }
        // Not first either: sorted first in the canonical text, it would make the object a
        // number for the next reader (found by the fuzzer, `fuzz/corpus/json/`).
        for text in [
            r#"{"n": {"a": 1, "$serde_json::private::Number": "1"}}"#,
            r#"{"n":34567890,"$serde_json::private::Number":5e-324,"d":0.1e+4}"#,
        ] {
            let err = parse_value(text).expect_err(text);
            assert!(matches!(err, JsonError::Syntax(_)), "{text}: {err:?}");
        }
    }

    /// The duplicate-key rule holds with numbers as maps under the hood.
    #[test]
    fn duplicate_keys_are_still_refused_next_to_numbers() {
        let err = parse_value(r#"{"a": 1e400, "b": [12345678901234567890], "a": -0.0}"#)
            .expect_err("duplicate");
        assert!(matches!(err, JsonError::DuplicateKey { .. }), "{err:?}");
    }

    #[test]
    fn canonical_is_compact_with_sorted_keys() {
        let value =
            parse_value("{ \"b\" : [1, 2.5, \"\\u00e9\\/\"], \"a\" : {\"z\": null, \"y\": true} }")
                .expect("valid");
        assert_eq!(
            canonical(&value),
            r#"{"a":{"y":true,"z":null},"b":[1,2.5,"é/"]}"#
        );
    }

    #[test]
    fn cap_text_keeps_short_texts_and_cuts_long_ones_on_char_boundaries() {
        assert!(matches!(cap_text("fits", 4), Cow::Borrowed("fits")));
        let reason = "é".repeat(5000);
        let capped = cap_text(&reason, MAX_PLUGIN_TEXT_BYTES);
        assert!(capped.len() <= MAX_PLUGIN_TEXT_BYTES);
        assert!(capped.ends_with(" …[cut, 10000 bytes in all]"), "{capped}");
        assert!(capped.len() > MAX_PLUGIN_TEXT_BYTES - 4);
        // Every max, over 1- to 4-byte characters: never over, always a prefix plus the marker.
        let text = "aé€😀".repeat(40);
        let marker = format!(" …[cut, {} bytes in all]", text.len());
        for max in 0..=text.len() + 2 {
            let capped = cap_text(&text, max);
            assert!(capped.len() <= max, "max {max}: {} bytes", capped.len());
            if max >= text.len() {
                assert_eq!(capped, text.as_str());
            } else if max >= marker.len() {
                let kept = capped.strip_suffix(&marker).expect("marked as cut");
                assert!(text.starts_with(kept));
                assert!(max - capped.len() < 4, "max {max}: cut too much");
            } else {
                assert!(marker.starts_with(capped.as_ref()), "max {max}: {capped:?}");
            }
        }
        assert_eq!(cap_string("short".into(), 10), "short");
        assert_eq!(cap_string("x".repeat(5000), 100).len(), 100);
    }

    mod roundtrip {
        use super::super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter)
        }

        fn float() -> impl Strategy<Value = f64> {
            // Without serde_json's `float_roundtrip` feature its parser may be one ULP off for
            // some floats; the property is about our parser, so keep floats that serde_json
            // itself round-trips.
            any::<f64>().prop_filter("serde_json round-trips it", |f| {
                serde_json::to_string(f)
                    .ok()
                    .and_then(|t| serde_json::from_str::<f64>(&t).ok())
                    == Some(*f)
            })
        }

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                float().prop_map(Value::from),
                text().prop_map(Value::String),
            ];
            leaf.prop_recursive(8, 256, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                    prop::collection::btree_map(text(), inner, 0..8)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn canonical_text_parses_back_to_the_same_value(value in json()) {
                prop_assert!(check_value(&value, 0).is_ok());
                let text = canonical(&value);
                prop_assert_eq!(parse_value(&text), Ok(value.clone()));
                let pretty = serde_json::to_string_pretty(&value).expect("serializable");
                prop_assert_eq!(parse_value(&pretty), Ok(value));
            }
        }
    }
}
