//! `hookvisor call`: asks a running supervisor one question, as a host would, and prints the
//! verdict with its per-plugin trace (a table, or one JSON object with `--json`). The exit
//! status says the outcome, for scripts: 0 allowed, 2 blocked, 3 approval required, 1 error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use hookvisor::observe::audit::{block_kind_name, failure_name, outcome_name};
use hookvisor_proto::v1::hooks_client::HooksClient;
use hookvisor_proto::v1::{
    ApprovalRequest, Outcome, PluginResult, Requester, SessionCreateRequest, Stage,
    ToolCallContext, ToolCallRequest,
};
use serde_json::{Value, json};

use crate::output::{escaped, json_text, out};

/// `hookvisor call [--socket PATH] [--json] tool|session ...`
#[derive(Debug, Args)]
pub(crate) struct Options {
    /// The supervisor's host socket; default `$HOOKVISOR_SOCKET`, else `/run/hookvisor/hookvisor.sock`.
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// Print the verdict as one JSON object instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// How long to wait for the verdict (sent as the call's gRPC deadline), in ms.
    #[arg(long, global = true, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    timeout_ms: u64,
    #[command(subcommand)]
    question: Question,
}

#[derive(Debug, Subcommand)]
enum Question {
    /// May this tool call run, with these params? (`Hooks/BeforeToolCall`)
    Tool {
        /// The tool's name.
        name: String,
        /// The params, a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        #[arg(long, default_value = "")]
        session_key: String,
        #[arg(long, default_value = "")]
        session_id: String,
        #[arg(long = "agent", default_value = "")]
        agent_id: String,
        #[arg(long, default_value = "")]
        run_id: String,
        #[arg(long, default_value = "")]
        tool_call_id: String,
        #[arg(long, default_value = "")]
        workspace_dir: String,
        #[arg(long, default_value = "")]
        channel_id: String,
        /// A plugin's session metadata namespace, `NAME=JSON` (repeatable).
        #[arg(long = "metadata", value_name = "NS=JSON", value_parser = parse_metadata)]
        metadata: Vec<(String, String)>,
    },
    /// May this session be created? (`Hooks/BeforeSessionCreate`)
    Session {
        /// The session key.
        key: String,
        #[arg(long = "agent", default_value = "")]
        agent_id: String,
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long, default_value = "")]
        model: String,
        #[arg(long, default_value = "")]
        workspace_dir: String,
        /// A plugin's session metadata namespace, `NAME=JSON` (repeatable).
        #[arg(long = "metadata", value_name = "NS=JSON", value_parser = parse_metadata)]
        metadata: Vec<(String, String)>,
    },
}

fn parse_metadata(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((ns, value)) if !ns.is_empty() => Ok((ns.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAMESPACE=JSON, got {text:?}")),
    }
}

/// The socket a client command talks to: `--socket`, `$HOOKVISOR_SOCKET`, the default path.
pub(crate) fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("HOOKVISOR_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/run/hookvisor/hookvisor.sock"))
}

/// Asks, prints, and returns the exit status for the outcome.
pub(crate) async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let socket = socket_path(options.socket);
    let channel = crate::demo::connect_channel(&socket)
        .await
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    let mut client = HooksClient::new(channel);
    let timeout = Duration::from_millis(options.timeout_ms);
    let (outcome, printed) = match options.question {
        Question::Tool {
            name,
            params,
            session_key,
            session_id,
            agent_id,
            run_id,
            tool_call_id,
            workspace_dir,
            channel_id,
            metadata,
        } => {
            let mut request = tonic::Request::new(ToolCallRequest {
                tool_name: name,
                params_json: params,
                context: Some(ToolCallContext {
                    agent_id,
                    session_key,
                    session_id,
                    run_id,
                    tool_call_id,
                    workspace_dir,
                    channel_id,
                    requester: Some(Requester::default()),
                    ..Default::default()
                }),
                session_metadata: metadata.into_iter().collect::<HashMap<_, _>>(),
                dispatch: false,
            });
            request.set_timeout(timeout);
            let verdict = client
                .before_tool_call(request)
                .await
                .map_err(status_error)?
                .into_inner();
            let value = json!({
                "outcome": outcome_name(verdict.outcome),
                "block_kind": block_kind_name(verdict.block_kind),
                "block_reason": verdict.block_reason,
                "decided_by": verdict.decided_by,
                "params_json": verdict.params_json,
                "params_changed": verdict.params_changed,
                "approval": verdict.approval.as_ref().map(approval_json),
                "approval_plugin": verdict.approval_plugin,
                "trace": verdict.trace.iter().map(result_json).collect::<Vec<_>>(),
            });
            (verdict.outcome, value)
        }
        Question::Session {
            key,
            agent_id,
            label,
            model,
            workspace_dir,
            metadata,
        } => {
            let mut request = tonic::Request::new(SessionCreateRequest {
                session_key: key,
                agent_id,
                label,
                model,
                workspace_dir,
                session_metadata: metadata.into_iter().collect::<HashMap<_, _>>(),
                ..Default::default()
            });
            request.set_timeout(timeout);
            let verdict = client
                .before_session_create(request)
                .await
                .map_err(status_error)?
                .into_inner();
            let metadata: serde_json::Map<String, Value> = verdict
                .session_metadata
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            let value = json!({
                "outcome": outcome_name(verdict.outcome),
                "block_kind": block_kind_name(verdict.block_kind),
                "block_reason": verdict.block_reason,
                "decided_by": verdict.decided_by,
                "session_metadata": metadata,
                "trace": verdict.trace.iter().map(result_json).collect::<Vec<_>>(),
            });
            (verdict.outcome, value)
        }
    };
    if options.json {
        out!("{}", json_text(&printed));
    } else {
        print_human(&printed);
    }
    Ok(match Outcome::try_from(outcome) {
        Ok(Outcome::Allow) => ExitCode::SUCCESS,
        Ok(Outcome::Block) => ExitCode::from(2),
        Ok(Outcome::RequireApproval) => ExitCode::from(3),
        _ => ExitCode::FAILURE,
    })
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(
        "the supervisor answered gRPC status {:?}: {}",
        status.code(),
        status.message()
    )
}

fn approval_json(approval: &ApprovalRequest) -> Value {
    json!({
        "title": approval.title,
        "description": approval.description,
        "severity": approval.severity().as_str_name(),
        "timeout_ms": approval.timeout_ms,
        "allowed_decisions": approval
            .allowed_decisions()
            .map(|d| d.as_str_name())
            .collect::<Vec<_>>(),
    })
}

fn result_json(r: &PluginResult) -> Value {
    json!({
        "plugin": r.plugin,
        "stage": if r.stage == Stage::Policy as i32 { "policy" } else { "hook" },
        "outcome": outcome_name(r.outcome),
        "failure": failure_name(r.failure),
        "detail": r.detail,
        "latency_us": r.latency_us,
        "params_changed": r.params_changed,
        "revalidation": r.revalidation,
    })
}

/// The verdict for a person: the outcome line, then one line per plugin. Every text is
/// escaped: reasons, params, metadata, titles and details are the plugins' own words.
fn print_human(verdict: &Value) {
    let text = |value: &Value| escaped(value.as_str().unwrap_or_default()).into_owned();
    let mut head = text(&verdict["outcome"]);
    if head == "block" {
        head = format!(
            "block ({}) by {}: {}",
            text(&verdict["block_kind"]),
            text(&verdict["decided_by"]),
            text(&verdict["block_reason"])
        );
    } else if head == "require_approval" {
        head = format!(
            "require_approval by {}: {}",
            text(&verdict["approval_plugin"]),
            text(&verdict["approval"]["title"])
        );
    }
    out!("outcome: {head}");
    if let Some(params) = verdict["params_json"].as_str() {
        let changed = if verdict["params_changed"] == json!(true) {
            " (changed)"
        } else {
            ""
        };
        out!("params:  {}{changed}", escaped(params));
    }
    if let Some(metadata) = verdict.get("session_metadata") {
        out!("metadata: {}", json_text(metadata));
    }
    let trace = verdict["trace"].as_array().cloned().unwrap_or_default();
    if trace.is_empty() {
        out!("trace:   (no plugin took part)");
        return;
    }
    out!("trace:");
    let width = trace
        .iter()
        .map(|r| text(&r["plugin"]).chars().count())
        .max()
        .unwrap_or(0);
    for r in &trace {
        let name = text(&r["plugin"]);
        let stage = text(&r["stage"]);
        let stage = if r["revalidation"] == json!(true) {
            format!("{stage}*")
        } else {
            stage
        };
        let outcome = match r["failure"].as_str() {
            Some(failure) if !failure.is_empty() => text(&r["failure"]),
            _ => text(&r["outcome"]),
        };
        // Which plugin's rewrite the final params carry.
        let detail = match (r["params_changed"] == json!(true), text(&r["detail"])) {
            (true, detail) if detail.is_empty() => "rewrote the params".to_owned(),
            (true, detail) => format!("rewrote the params; {detail}"),
            (false, detail) => detail,
        };
        out!(
            "  {name:<width$}  {stage:<7} {outcome:<17} {:>8} µs  {detail}",
            r["latency_us"].as_u64().unwrap_or_default()
        );
    }
}
