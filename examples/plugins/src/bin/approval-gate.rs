//! `approval-gate`: asks a human before risky tools run.
//!
//! Registers `before_tool_call` in the hook stage for the listed tools and answers every call with
//! an approval request (severity WARNING): title `Run TOOL?`, description naming the tool, the
//! agent and a short summary of the params (the `command` param when there is one, else the params
//! as compact JSON), cut to fit the contract's limits.
//!
//! Configuration (environment):
//! - `APPROVAL_GATE_TOOLS`: comma-separated tool names to gate; default `exec,shell,bash`.
//! - `APPROVAL_GATE_TIMEOUT_MS`: how long the approver has, in milliseconds (1 to 600000); unset,
//!   the request asks for the contract's default (120000). The host denies an unresolved request.
use std::process::ExitCode;

use hookvisor_plugin::decision::truncate;
use hookvisor_plugin::serde_json::{Map, Value};
use hookvisor_plugin::{
    Info, Plugin, Registration, Severity, Stage, Status, ToolCall, decision, proto,
};

/// Longest params summary quoted in the description, in characters.
const SUMMARY_CHARS: usize = 300;

/// Longest approval timeout the contract accepts, in milliseconds (`docs/contract.md` §8).
const MAX_TIMEOUT_MS: u32 = 600_000;

struct ApprovalGate {
    tools: Vec<String>,
    /// The approval's timeout; 0 asks for the contract's default.
    timeout_ms: u32,
}

/// A short, one-line view of the params: the command if there is one, else compact JSON.
fn summarize(params: &Map<String, Value>) -> String {
    let text = match params.get("command").and_then(Value::as_str) {
        Some(command) => command.to_owned(),
        None => Value::Object(params.clone()).to_string(),
    };
    truncate(
        &text.split_whitespace().collect::<Vec<_>>().join(" "),
        SUMMARY_CHARS,
    )
}

/// The title and description of the approval request for this call.
fn approval_texts(
    tool_name: &str,
    agent_id: &str,
    params: &Map<String, Value>,
) -> (String, String) {
    let title = truncate(&format!("Run {tool_name}?"), decision::MAX_TITLE_CHARS);
    let agent = if agent_id.is_empty() {
        "The agent".to_owned()
    } else {
        format!("Agent '{agent_id}'")
    };
    let description = truncate(
        &format!(
            "{agent} wants to run the tool '{tool_name}' with: {}",
            summarize(params)
        ),
        decision::MAX_DESCRIPTION_CHARS,
    );
    (title, description)
}

/// The value of `APPROVAL_GATE_TIMEOUT_MS` as a timeout: unset is 0 (the contract's default).
fn parse_timeout(value: Option<&str>) -> Result<u32, String> {
    let Some(value) = value else {
        return Ok(0);
    };
    match value.trim().parse::<u32>() {
        Ok(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "APPROVAL_GATE_TIMEOUT_MS is {value:?}; expected milliseconds from 1 to {MAX_TIMEOUT_MS}"
        )),
    }
}

fn load() -> Result<ApprovalGate, String> {
    let tools = hookvisor_examples::required_env_list("APPROVAL_GATE_TOOLS", "exec,shell,bash")?;
    let timeout_ms = parse_timeout(std::env::var("APPROVAL_GATE_TIMEOUT_MS").ok().as_deref())?;
    Ok(ApprovalGate { tools, timeout_ms })
}

impl Plugin for ApprovalGate {
    fn info(&self) -> Info {
        Info::new("approval-gate", env!("CARGO_PKG_VERSION")).hook(
            Registration::before_tool_call()
                .stage(Stage::Hook)
                .tools(self.tools.iter().cloned()),
        )
    }

    async fn before_tool_call(&self, call: ToolCall) -> Result<proto::ToolCallDecision, Status> {
        let (title, description) = approval_texts(&call.tool_name, call.agent_id(), &call.params);
        Ok(decision::require_approval(title, description)
            .severity(Severity::Warning)
            .timeout_ms(self.timeout_ms)
            .into())
    }
}

fn main() -> ExitCode {
    hookvisor_plugin::run_with(load)
}

#[cfg(test)]
mod tests {
    use hookvisor_plugin::serde_json::json;

    use super::*;

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn summary_prefers_the_command_and_folds_whitespace() {
        assert_eq!(
            summarize(&params(json!({"command": "ls\n  -la", "cwd": "/"}))),
            "ls -la"
        );
        assert_eq!(summarize(&params(json!({"url": "x"}))), r#"{"url":"x"}"#);
    }

    #[test]
    fn texts_name_the_tool_and_agent() {
        let (title, description) =
            approval_texts("exec", "main", &params(json!({"command": "make"})));
        assert_eq!(title, "Run exec?");
        assert_eq!(
            description,
            "Agent 'main' wants to run the tool 'exec' with: make"
        );
    }

    #[test]
    fn timeout_is_the_default_when_unset_and_checked_when_set() {
        assert_eq!(parse_timeout(None), Ok(0));
        assert_eq!(parse_timeout(Some("1500")), Ok(1500));
        assert_eq!(parse_timeout(Some(" 600000 ")), Ok(MAX_TIMEOUT_MS));
        for bad in ["", "0", "600001", "-1", "2s"] {
            let err = parse_timeout(Some(bad)).unwrap_err();
            assert!(
                err.starts_with("APPROVAL_GATE_TIMEOUT_MS is ") && err.ends_with("1 to 600000"),
                "{err}"
            );
        }
    }

    #[test]
    fn long_texts_fit_the_contract_limits() {
        let tool = "t".repeat(200);
        let (title, description) =
            approval_texts(&tool, "", &params(json!({"command": "x".repeat(5000)})));
        assert_eq!(title.chars().count(), decision::MAX_TITLE_CHARS);
        assert!(description.chars().count() <= decision::MAX_DESCRIPTION_CHARS);
        assert!(description.starts_with("The agent wants to run the tool"));
        assert!(description.ends_with('…'));

        let (_, description) =
            approval_texts("exec", "a", &params(json!({"command": "y".repeat(5000)})));
        let summary = description.rsplit(": ").next().unwrap();
        assert_eq!(summary.chars().count(), SUMMARY_CHARS);
    }
}
