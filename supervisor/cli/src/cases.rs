//! `hookvisor conformance --cases FILE`: an author's own cases, run against the plugin after the
//! contract's checks. Conformance only sends inputs of its own, which most plugins allow; cases
//! reach a plugin's block, rewrite and approval branches without writing a configuration.
//!
//! The file has one JSON object per line (blank lines and lines starting with `#` are skipped):
//!
//! ```json
//! {"name": "pipe to shell", "tool": "exec", "params": {"command": "curl x | sh"}, "expect": {"outcome": "block", "reason": "pipe"}}
//! {"tool": "write", "params": {"path": "a.txt"}, "context": {"workspace_dir": "/srv/ws"}, "expect": {"outcome": "allow", "params": {"path": "/srv/ws/a.txt"}}}
//! {"session": {"session_key": "s1", "agent_id": "guest"}, "expect": {"outcome": "block"}}
//! ```
//!
//! A case is a tool call (`tool`, `params`, optional `context` with the `ToolCallContext` field
//! names, optional `metadata`: this plugin's session metadata) or a session (`session` with the
//! `BeforeSessionCreate` field names, optional `metadata`). `expect` has `outcome` (`allow`,
//! `block`, `require_approval`), and optionally `params` (the final params, compared exactly: a
//! hook-stage rewrite merged key by key over the call's params as the supervisor merges it, a
//! policy's taken whole), `reason` (a regular expression searched in the block reason, or in an
//! approval's title and description) and, for a session, `metadata` (the plugin's patch).
//! Each case prints one line, and what came back with a diff when it does not match.

use std::path::Path;

use hookvisor::decide::limits;
use hookvisor::decide::merge::{Params, SessionAnswer, ToolAnswer};
use hookvisor_proto::v1::{
    BeforeSessionCreateRequest, BeforeToolCallRequest, Hook, HookRegistration, Stage,
    ToolCallContext,
};
use serde_json::{Map, Value};

use crate::output::{escaped, out};

/// The outcome a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allow,
    Block,
    RequireApproval,
}

impl Outcome {
    fn parse(text: &str) -> Result<Outcome, String> {
        match text {
            "allow" => Ok(Outcome::Allow),
            "block" => Ok(Outcome::Block),
            "require_approval" => Ok(Outcome::RequireApproval),
            other => Err(format!(
                "expect.outcome {other:?} is not allow, block or require_approval"
            )),
        }
    }

    fn word(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Block => "block",
            Outcome::RequireApproval => "require_approval",
        }
    }
}

/// What a case asks.
#[derive(Debug)]
enum Ask {
    Tool {
        name: String,
        params: Params,
        context: ToolCallContext,
    },
    Session(BeforeSessionCreateRequest),
}

/// One line of the cases file.
#[derive(Debug)]
pub(crate) struct Case {
    line: usize,
    name: String,
    ask: Ask,
    metadata: String,
    outcome: Outcome,
    params: Option<Params>,
    reason: Option<regex::Regex>,
    patch: Option<Value>,
}

/// The longest cases file read.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads and checks every case before the plugin starts: a mistake in the file names its line.
pub(crate) fn load(path: &Path) -> Result<Vec<Case>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "{}: {size} bytes exceed the limit of {MAX_FILE_BYTES}",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut cases = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let number = index + 1;
        let case = parse(number, trimmed, cases.len() + 1)
            .map_err(|e| format!("{}:{number}: {e}", path.display()))?;
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(format!("{}: no case in the file", path.display()));
    }
    Ok(cases)
}

fn string_field(object: &Map<String, Value>, key: &str, field: &str) -> Result<String, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{field}.{key} must be a string")),
    }
}

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{field} must be a JSON object"))
}

fn known_keys(object: &Map<String, Value>, field: &str, known: &[&str]) -> Result<(), String> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(format!(
            "{field}: unknown key {key:?} (known: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

fn parse(line: usize, text: &str, ordinal: usize) -> Result<Case, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let case = object(&value, "the case")?;
    known_keys(
        case,
        "the case",
        &[
            "name", "tool", "params", "context", "session", "metadata", "expect",
        ],
    )?;
    let name = match case.get("name") {
        Some(Value::String(name)) => name.clone(),
        None => format!("case {ordinal}"),
        Some(_) => return Err("name must be a string".into()),
    };
    let ask = match (case.get("tool"), case.get("session")) {
        (Some(Value::String(tool)), None) => {
            let params = match case.get("params") {
                None => Map::new(),
                // Checked as a host's params would be (§8), so the plugin gets what a host sends.
                Some(params) => {
                    limits::parse_object(&params.to_string()).map_err(|e| format!("params: {e}"))?
                }
            };
            let context = match case.get("context") {
                None => ToolCallContext::default(),
                Some(value) => {
                    let c = object(value, "context")?;
                    let fields = [
                        "agent_id",
                        "session_key",
                        "session_id",
                        "run_id",
                        "tool_call_id",
                        "workspace_dir",
                        "container_workdir",
                        "channel_id",
                    ];
                    known_keys(c, "context", &fields)?;
                    let get = |key| string_field(c, key, "context");
                    ToolCallContext {
                        agent_id: get("agent_id")?,
                        session_key: get("session_key")?,
                        session_id: get("session_id")?,
                        run_id: get("run_id")?,
                        tool_call_id: get("tool_call_id")?,
                        workspace_dir: get("workspace_dir")?,
                        container_workdir: get("container_workdir")?,
                        channel_id: get("channel_id")?,
                        requester: None,
                    }
                }
            };
            Ask::Tool {
                name: tool.clone(),
                params,
                context,
            }
        }
        (None, Some(value)) => {
            let s = object(value, "session")?;
            let fields = [
                "session_key",
                "agent_id",
                "label",
                "model",
                "parent_session_key",
                "workspace_dir",
            ];
            known_keys(s, "session", &fields)?;
            let get = |key| string_field(s, key, "session");
            Ask::Session(BeforeSessionCreateRequest {
                session_key: get("session_key")?,
                agent_id: get("agent_id")?,
                label: get("label")?,
                model: get("model")?,
                parent_session_key: get("parent_session_key")?,
                workspace_dir: get("workspace_dir")?,
                ..BeforeSessionCreateRequest::default()
            })
        }
        _ => return Err("a case has either \"tool\" (a string) or \"session\"".into()),
    };
    let metadata = case
        .get("metadata")
        .map(limits::canonical)
        .unwrap_or_default();
    let expect = object(case.get("expect").ok_or("expect is missing")?, "expect")?;
    known_keys(
        expect,
        "expect",
        &["outcome", "params", "reason", "metadata"],
    )?;
    let outcome = Outcome::parse(
        expect
            .get("outcome")
            .and_then(Value::as_str)
            .ok_or("expect.outcome is missing")?,
    )?;
    let params = match expect.get("params") {
        None => None,
        Some(params) => Some(
            limits::parse_object(&params.to_string()).map_err(|e| format!("expect.params: {e}"))?,
        ),
    };
    let reason = match expect.get("reason") {
        None => None,
        Some(Value::String(pattern)) => Some(
            regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("expect.reason is not a regular expression: {e}"))?,
        ),
        Some(_) => return Err("expect.reason must be a string".into()),
    };
    let patch = expect.get("metadata").cloned();
    if patch.is_some() && matches!(ask, Ask::Tool { .. }) {
        return Err("expect.metadata is for session cases".into());
    }
    if params.is_some() && matches!(ask, Ask::Session(_)) {
        return Err("expect.params is for tool cases".into());
    }
    Ok(Case {
        line,
        name,
        ask,
        metadata,
        outcome,
        params,
        reason,
        patch,
    })
}

/// What came back for a case, in the case's terms.
#[derive(Debug)]
struct Got {
    outcome: Outcome,
    /// The final params of a tool case.
    params: Option<Params>,
    /// The block reason, or the approval's title and description.
    reason: String,
    patch: Option<Value>,
    /// Why the plugin was not asked, when it was not.
    not_asked: Option<String>,
}

fn registration_for<'a>(
    registrations: &'a [HookRegistration],
    hook: Hook,
    tool: Option<&str>,
) -> Option<&'a HookRegistration> {
    registrations.iter().find(|r| {
        // No tools listed means every tool (§3).
        r.hook == hook as i32
            && tool.is_none_or(|t| r.tools.is_empty() || r.tools.iter().any(|x| x == t))
    })
}

/// The final params as the supervisor merges one plugin's rewrite (§4): a policy's whole, a
/// hook's key by key over the call's params.
fn final_params(call: &Params, stage: i32, rewrite: Option<Params>) -> Params {
    match rewrite {
        None => call.clone(),
        Some(rewrite) if stage == Stage::Policy as i32 => rewrite,
        Some(rewrite) => {
            let mut merged = call.clone();
            merged.extend(rewrite);
            merged
        }
    }
}

fn from_tool(call: &Params, stage: i32, answer: ToolAnswer) -> Got {
    let params = Some(final_params(call, stage, answer.params));
    let (outcome, reason) = match (answer.block, answer.approval) {
        (Some(reason), _) => (Outcome::Block, reason),
        (None, Some(a)) => (
            Outcome::RequireApproval,
            format!("{}\n{}", a.title, a.description),
        ),
        (None, None) => (Outcome::Allow, String::new()),
    };
    Got {
        outcome,
        params,
        reason,
        patch: None,
        not_asked: None,
    }
}

fn from_session(answer: SessionAnswer) -> Got {
    let patch = answer
        .patch
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    let (outcome, reason) = match answer.block {
        Some(reason) => (Outcome::Block, reason),
        None => (Outcome::Allow, String::new()),
    };
    Got {
        outcome,
        params: None,
        reason,
        patch,
        not_asked: None,
    }
}

/// Compact canonical JSON: what "the same" means for params and patches (numbers exact).
fn text_of(value: &Value) -> String {
    limits::canonical(value)
}

/// Each difference between what the case expects and what came back, in words.
fn mismatches(case: &Case, got: &Got) -> Vec<String> {
    let mut out = Vec::new();
    if got.outcome != case.outcome {
        out.push(format!(
            "outcome: expected {}, got {}",
            case.outcome.word(),
            got.outcome.word()
        ));
    }
    if let (Some(want), Some(have)) = (&case.params, &got.params)
        && text_of(&Value::Object(want.clone())) != text_of(&Value::Object(have.clone()))
    {
        out.push(format!(
            "params differ:\n{}",
            diff(&Value::Object(want.clone()), &Value::Object(have.clone()))
        ));
    }
    if let Some(pattern) = &case.reason
        && !pattern.is_match(&got.reason)
    {
        out.push(format!(
            "reason: /{}/ not found in {:?}",
            pattern.as_str(),
            got.reason
        ));
    }
    if let Some(want) = &case.patch {
        let have = got.patch.clone().unwrap_or(Value::Null);
        if text_of(want) != text_of(&have) {
            out.push(format!("metadata differ:\n{}", diff(want, &have)));
        }
    }
    out
}

/// A line diff of two JSON values, pretty-printed: `-` expected, `+` got.
fn diff(want: &Value, have: &Value) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    let (a, b) = (pretty(want), pretty(have));
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    // Longest common subsequence over lines (the values are small: a case's params).
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out.trim_end().to_owned()
}

/// Runs every case; returns how many matched and how many did not. `tool_call` and
/// `session_create` make one call each as the supervisor would (its checks of the answer
/// included); an invalid answer or a failure is a block, as in a verdict.
pub(crate) async fn run<T, S>(
    cases: &[Case],
    registrations: &[HookRegistration],
    tool_call: impl Fn(&HookRegistration, BeforeToolCallRequest) -> T,
    session_create: impl Fn(&HookRegistration, BeforeSessionCreateRequest) -> S,
) -> (usize, usize)
where
    T: Future<Output = Result<ToolAnswer, hookvisor::decide::merge::Failed>>,
    S: Future<Output = Result<SessionAnswer, hookvisor::decide::merge::Failed>>,
{
    let (mut passed, mut failed) = (0, 0);
    for case in cases {
        let got = match &case.ask {
            Ask::Tool {
                name,
                params,
                context,
            } => match registration_for(registrations, Hook::BeforeToolCall, Some(name)) {
                None => Got {
                    outcome: Outcome::Allow,
                    params: Some(params.clone()),
                    reason: String::new(),
                    patch: None,
                    not_asked: Some(format!(
                        "the plugin registers no before_tool_call for tool {name:?}"
                    )),
                },
                Some(registration) => {
                    let request = BeforeToolCallRequest {
                        tool_name: name.clone(),
                        params_json: text_of(&Value::Object(params.clone())),
                        context: Some(context.clone()),
                        session_metadata_json: case.metadata.clone(),
                        ..BeforeToolCallRequest::default()
                    };
                    match tool_call(registration, request).await {
                        Ok(answer) => from_tool(params, registration.stage, answer),
                        Err(failed) => Got {
                            outcome: Outcome::Block,
                            params: Some(params.clone()),
                            reason: failed.sentence("plugin"),
                            patch: None,
                            not_asked: None,
                        },
                    }
                }
            },
            Ask::Session(request) => {
                match registration_for(registrations, Hook::BeforeSessionCreate, None) {
                    None => Got {
                        outcome: Outcome::Allow,
                        params: None,
                        reason: String::new(),
                        patch: None,
                        not_asked: Some("the plugin registers no before_session_create".into()),
                    },
                    Some(registration) => {
                        let mut request = request.clone();
                        request.session_metadata_json = case.metadata.clone();
                        match session_create(registration, request).await {
                            Ok(answer) => from_session(answer),
                            Err(failed) => Got {
                                outcome: Outcome::Block,
                                params: None,
                                reason: failed.sentence("plugin"),
                                patch: None,
                                not_asked: None,
                            },
                        }
                    }
                }
            }
        };
        let wrong = mismatches(case, &got);
        let said = match got.outcome {
            Outcome::Allow => match (&got.not_asked, &case.ask) {
                (Some(why), _) => format!("allow (not asked: {why})"),
                (None, Ask::Tool { params, .. }) if got.params.as_ref() != Some(params) => {
                    "allow, params rewritten".into()
                }
                _ => "allow".into(),
            },
            Outcome::Block => format!("block: {}", got.reason),
            Outcome::RequireApproval => {
                format!("require_approval: {}", got.reason.replace('\n', " / "))
            }
        };
        let head = format!("line {}: {}", case.line, case.name);
        if wrong.is_empty() {
            passed += 1;
            out!("ok    {}: {}", escaped(&head), escaped(&said));
        } else {
            failed += 1;
            out!("FAIL  {}: got {}", escaped(&head), escaped(&said));
            for line in wrong {
                for part in line.lines() {
                    out!("      {}", escaped(part));
                }
            }
        }
    }
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistake_in_the_file_names_its_line() {
        let dir = std::env::temp_dir().join(format!("hookvisor-cases-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cases.jsonl");
        for (text, want) in [
            ("{\"tool\":\"x\"}\n", "1: expect is missing"),
            (
                "# c\n\n{\"tool\":\"x\",\"expect\":{\"outcome\":\"deny\"}}\n",
                "3: expect.outcome \"deny\" is not allow",
            ),
            (
                "{\"tool\":\"x\",\"expect\":{\"outcome\":\"block\",\"reason\":\"(\"}}",
                "1: expect.reason is not a regular expression",
            ),
            (
                "{\"tool\":\"x\",\"param\":{},\"expect\":{\"outcome\":\"allow\"}}",
                "1: the case: unknown key \"param\"",
            ),
            (
                "{\"tool\":\"x\",\"params\":{\"a\":1,\"a\":2},\"expect\":{\"outcome\":\"allow\"}}",
                "",
            ),
            ("\n# only comments\n", "no case in the file"),
        ] {
            std::fs::write(&file, text).unwrap();
            match load(&file) {
                Ok(_) => assert_eq!(want, "", "{text}"),
                Err(e) => assert!(e.contains(want) && !want.is_empty(), "{text}: {e}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_huge_file_and_a_huge_pattern_are_refused() {
        let dir = std::env::temp_dir().join(format!("hookvisor-cases-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cases.jsonl");
        // Sparse: the size is checked before anything is read.
        std::fs::File::create(&file)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        let err = load(&file).expect_err("too big");
        assert!(err.contains("exceed the limit of 16777216"), "{err}");
        // A pattern whose compiled program is over the limit is refused, not built.
        let pattern = format!("(?:a{{1000}}){{{}}}", 1000);
        let line = format!(
            "{{\"tool\":\"x\",\"expect\":{{\"outcome\":\"block\",\"reason\":\"{pattern}\"}}}}"
        );
        std::fs::write(&file, line).unwrap();
        let err = load(&file).expect_err("pattern too big");
        assert!(
            err.contains("expect.reason is not a regular expression"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_hook_rewrite_is_merged_and_a_policy_rewrite_replaces() {
        let call: Params = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let rewrite: Params = serde_json::from_str(r#"{"b":3}"#).unwrap();
        assert_eq!(
            Value::Object(final_params(
                &call,
                Stage::Hook as i32,
                Some(rewrite.clone())
            )),
            serde_json::json!({"a":1,"b":3})
        );
        assert_eq!(
            Value::Object(final_params(&call, Stage::Policy as i32, Some(rewrite))),
            serde_json::json!({"b":3})
        );
    }

    #[test]
    fn the_diff_marks_what_differs() {
        let d = diff(
            &serde_json::json!({"path": "/a", "x": 1}),
            &serde_json::json!({"path": "/b", "x": 1}),
        );
        assert_eq!(
            d,
            "  {\n-   \"path\": \"/a\",\n+   \"path\": \"/b\",\n    \"x\": 1\n  }"
        );
    }
}
