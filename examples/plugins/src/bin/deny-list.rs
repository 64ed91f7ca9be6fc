//! `deny-list`: a trusted policy that blocks tools by name and shell commands by pattern.
//!
//! Registers `before_tool_call` in the policy stage for every tool, so hookvisor must be configured
//! with `trusted = true` for it (otherwise the supervisor rejects it and, fail-closed, blocks).
//!
//! Configuration (environment):
//! - `HOOKVISOR_DENY_LIST`: path of the list file, required. A relative path is resolved against
//!   the plugin's working directory. The file is read once at start; a missing, unreadable or
//!   malformed file stops the plugin with exit 1 (fail closed: hookvisor then blocks every call).
//!
//! File format, one rule per line; blank lines and lines starting with `#` are ignored:
//! - `tool NAME`: block the tool called exactly `NAME`;
//! - `command PATTERN`: block any call whose `command` param (a string, as `exec`, `shell`, `bash`
//!   and the like take) contains `PATTERN`. Matching is a plain substring match after collapsing
//!   runs of whitespace to one space, so `rm  -rf /` matches `command rm -rf /`. It is a guard
//!   rail, not a sandbox: an agent determined to hide a command can.
use std::process::ExitCode;

use hookvisor_plugin::serde_json::{Map, Value};
use hookvisor_plugin::{Info, Plugin, Registration, Stage, Status, ToolCall, decision, proto};

/// The parsed list file.
#[derive(Debug, Default, PartialEq, Eq)]
struct DenyList {
    tools: Vec<String>,
    commands: Vec<String>,
}

impl DenyList {
    /// Parses the list file; the error names the line.
    fn parse(text: &str) -> Result<Self, String> {
        let mut list = Self::default();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (kind, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let value = collapse_whitespace(value);
            match kind {
                _ if value.is_empty() => {
                    return Err(format!("line {}: `{kind}` needs a value", index + 1));
                }
                "tool" => list.tools.push(value),
                "command" => list.commands.push(value),
                _ => {
                    return Err(format!(
                        "line {}: unknown rule `{kind}` (expected `tool NAME` or `command PATTERN`)",
                        index + 1
                    ));
                }
            }
        }
        Ok(list)
    }

    /// Why this call is denied, or `None` when it may run.
    fn check(&self, tool_name: &str, params: &Map<String, Value>) -> Option<String> {
        if self.tools.iter().any(|t| t == tool_name) {
            return Some(format!("tool '{tool_name}' is on the deny list"));
        }
        let command = collapse_whitespace(params.get("command")?.as_str()?);
        self.commands
            .iter()
            .find(|pattern| command.contains(pattern.as_str()))
            .map(|pattern| format!("command matches deny pattern '{pattern}'"))
    }
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn load() -> Result<DenyList, String> {
    let path = std::env::var_os("HOOKVISOR_DENY_LIST").ok_or(
        "HOOKVISOR_DENY_LIST is not set; set it to the deny list file in the plugin's env",
    )?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read deny list {}: {e}", path.display()))?;
    DenyList::parse(&text).map_err(|e| format!("deny list {}: {e}", path.display()))
}

impl Plugin for DenyList {
    fn info(&self) -> Info {
        Info::new("deny-list", env!("CARGO_PKG_VERSION")).hook(
            Registration::before_tool_call()
                .stage(Stage::Policy)
                .priority(100),
        )
    }

    async fn before_tool_call(&self, call: ToolCall) -> Result<proto::ToolCallDecision, Status> {
        Ok(match self.check(&call.tool_name, &call.params) {
            Some(reason) => decision::block(reason),
            None => decision::allow(),
        })
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
    fn parses_rules_comments_and_blank_lines() {
        let list =
            DenyList::parse("# header\n\ntool dangerous_tool\ncommand  rm   -rf /  \n").unwrap();
        assert_eq!(list.tools, ["dangerous_tool"]);
        assert_eq!(list.commands, ["rm -rf /"]);
    }

    #[test]
    fn rejects_unknown_rules_and_empty_values_naming_the_line() {
        let err = DenyList::parse("tool a\nfile /etc").unwrap_err();
        assert!(err.starts_with("line 2: unknown rule `file`"), "{err}");
        let err = DenyList::parse("command").unwrap_err();
        assert_eq!(err, "line 1: `command` needs a value");
    }

    #[test]
    fn the_shipped_example_list_parses() {
        let list = DenyList::parse(include_str!("../../../deny-list.txt")).unwrap();
        assert!(list.tools.contains(&"dangerous_tool".to_owned()));
        let call = params(json!({"command": "rm -rf / --no-preserve-root"}));
        assert!(list.check("exec", &call).is_some());
    }

    #[test]
    fn blocks_tools_by_exact_name() {
        let list = DenyList::parse("tool exec").unwrap();
        assert_eq!(
            list.check("exec", &Map::new()).as_deref(),
            Some("tool 'exec' is on the deny list")
        );
        assert_eq!(list.check("exec2", &Map::new()), None);
    }

    #[test]
    fn blocks_commands_containing_a_pattern() {
        let list = DenyList::parse("command rm -rf /").unwrap();
        let reason = Some("command matches deny pattern 'rm -rf /'".to_owned());
        assert_eq!(
            list.check("exec", &params(json!({"command": "sudo rm -rf /"}))),
            reason
        );
        assert_eq!(
            list.check("bash", &params(json!({"command": "rm  -rf\t/"}))),
            reason
        );
        assert_eq!(
            list.check("exec", &params(json!({"command": "rm -rf ./build"}))),
            None
        );
        assert_eq!(
            list.check("exec", &params(json!({"command": ["rm -rf /"]}))),
            None
        );
        assert_eq!(
            list.check("read", &params(json!({"path": "rm -rf /"}))),
            None
        );
    }
}
