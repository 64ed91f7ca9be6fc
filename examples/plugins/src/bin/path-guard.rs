//! `path-guard`: keeps file tools inside the session's workspace.
//!
//! Registers `before_tool_call` in the hook stage for the file tools. For each of the params `path`
//! and `file_path` that is a string, it resolves the path against the call context's
//! `workspace_dir` and normalizes it lexically (`.` and `..` folded; the filesystem is not touched,
//! so symlinks are not followed). A path that ends up outside the workspace is blocked; a path
//! that was relative or not normalized is rewritten to the absolute normalized form (the whole
//! params object is returned with only those keys replaced). Calls without those params pass.
//! A call with a path but no (or a relative) `workspace_dir` in its context is blocked.
//!
//! Configuration (environment):
//! - `PATH_GUARD_TOOLS`: comma-separated tool names to guard; default `read,write,edit`.
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use hookvisor_plugin::serde_json::{Map, Value};
use hookvisor_plugin::{Info, Plugin, Registration, Stage, Status, ToolCall, decision, proto};

const PATH_KEYS: [&str; 2] = ["path", "file_path"];

struct PathGuard {
    tools: Vec<String>,
}

/// `path` with `.` and `..` folded, without touching the filesystem; `..` at the root stays there.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The absolute normalized form of `path` inside `workspace`, or why it is refused.
fn resolve(workspace: &str, path: &str) -> Result<String, String> {
    if workspace.is_empty() {
        return Err("no workspace_dir in the call context".to_owned());
    }
    if !Path::new(workspace).is_absolute() {
        return Err(format!(
            "workspace_dir '{workspace}' is not an absolute path"
        ));
    }
    let root = normalize(Path::new(workspace));
    let resolved = normalize(&root.join(path));
    if !resolved.starts_with(&root) {
        return Err(format!("path '{path}' escapes the workspace '{workspace}'"));
    }
    Ok(resolved.to_string_lossy().into_owned())
}

/// Params with every path key resolved: `Ok(None)` when nothing changes, `Err` with a block reason.
fn guard(
    workspace: &str,
    params: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, String> {
    let mut rewritten = params.clone();
    let mut changed = false;
    for key in PATH_KEYS {
        let Some(path) = params.get(key).and_then(Value::as_str) else {
            continue;
        };
        let resolved = resolve(workspace, path)?;
        if resolved != path {
            rewritten.insert(key.to_owned(), Value::String(resolved));
            changed = true;
        }
    }
    Ok(changed.then_some(rewritten))
}

fn load() -> Result<PathGuard, String> {
    let tools = hookvisor_examples::required_env_list("PATH_GUARD_TOOLS", "read,write,edit")?;
    Ok(PathGuard { tools })
}

impl Plugin for PathGuard {
    fn info(&self) -> Info {
        Info::new("path-guard", env!("CARGO_PKG_VERSION")).hook(
            Registration::before_tool_call()
                .stage(Stage::Hook)
                .tools(self.tools.iter().cloned()),
        )
    }

    async fn before_tool_call(&self, call: ToolCall) -> Result<proto::ToolCallDecision, Status> {
        Ok(match guard(call.workspace_dir(), &call.params) {
            Ok(None) => decision::allow(),
            Ok(Some(params)) => decision::rewrite(params),
            Err(reason) => decision::block(reason),
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

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c/")), Path::new("/a/c"));
        assert_eq!(normalize(Path::new("/../..")), Path::new("/"));
    }

    #[test]
    fn resolves_relative_paths_inside_the_workspace() {
        assert_eq!(resolve("/ws", "src/main.rs").unwrap(), "/ws/src/main.rs");
        assert_eq!(resolve("/ws/", "./a/../b").unwrap(), "/ws/b");
        assert_eq!(resolve("/ws", "/ws/x/../y").unwrap(), "/ws/y");
        assert_eq!(resolve("/ws", "").unwrap(), "/ws");
    }

    #[test]
    fn refuses_paths_that_escape() {
        assert_eq!(
            resolve("/ws", "../etc/passwd").unwrap_err(),
            "path '../etc/passwd' escapes the workspace '/ws'"
        );
        assert!(resolve("/ws", "/etc/passwd").is_err());
        assert!(
            resolve("/ws", "/ws2/file").is_err(),
            "a sibling with the same prefix is outside"
        );
        assert!(
            resolve("/ws", "a/../../ws/b").is_ok(),
            "leaving and re-entering is inside"
        );
    }

    #[test]
    fn refuses_without_an_absolute_workspace() {
        assert_eq!(
            resolve("", "a").unwrap_err(),
            "no workspace_dir in the call context"
        );
        assert!(resolve("ws", "a").is_err());
    }

    #[test]
    fn guard_rewrites_only_changed_path_keys() {
        let params = json!({"path": "a/b", "file_path": "/ws/c", "content": "x"});
        let out = guard("/ws", params.as_object().unwrap()).unwrap().unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"path": "/ws/a/b", "file_path": "/ws/c", "content": "x"})
        );

        let already = json!({"path": "/ws/a"});
        assert_eq!(guard("/ws", already.as_object().unwrap()), Ok(None));
        let no_path = json!({"content": "x"});
        assert_eq!(guard("", no_path.as_object().unwrap()), Ok(None));
    }

    #[test]
    fn guard_blocks_when_any_path_escapes() {
        let params = json!({"path": "ok", "file_path": "../../x"});
        assert!(guard("/ws", params.as_object().unwrap()).is_err());
    }
}
