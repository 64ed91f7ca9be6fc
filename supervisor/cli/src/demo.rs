//! `hookvisor demo`: with no configuration, runs the supervisor with the example plugins (found
//! next to the `hookvisor` binary) in a temporary runtime directory, sends a scripted set of
//! calls that shows every outcome, prints a table, cleans up and exits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::output::out;
use anyhow::{Context, bail};
use hookvisor_proto::v1::hooks_client::HooksClient;
use hookvisor_proto::v1::{
    Outcome, SessionCreateRequest, SessionCreatedNotice, ToolCallContext, ToolCallRequest,
};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

use hookvisor::files::config::Config;
use hookvisor::plugin::PluginSet;
use hookvisor::serve::server::{Observer, serve};

/// The example plugins the demo runs (built by `cargo build -p hookvisor-examples`).
const PLUGINS: [&str; 6] = [
    "deny-list",
    "path-guard",
    "approval-gate",
    "session-tagger",
    "demo-crash",
    "demo-hang",
];

const WORKSPACE: &str = "/home/agent/project";

/// Runs the demo.
pub(crate) async fn run() -> anyhow::Result<()> {
    let bin_dir = std::env::current_exe()
        .context("cannot find the hookvisor executable")?
        .parent()
        .map(Path::to_path_buf)
        .context("the hookvisor executable has no directory")?;
    if let Some(missing) = PLUGINS.iter().find(|p| !bin_dir.join(p).is_file()) {
        bail!(
            "the demo needs the example plugins next to hookvisor, and {} is missing; \
             build them with `cargo build --release -p hookvisor-examples` (or run `make demo`)",
            bin_dir.join(missing).display()
        );
    }
    let dir = TempDir::new()?;
    let result = run_in(&bin_dir, dir.path()).await;
    drop(dir);
    result
}

async fn run_in(bin_dir: &Path, dir: &Path) -> anyhow::Result<()> {
    let deny_list = dir.join("deny-list.txt");
    std::fs::write(
        &deny_list,
        "# demo deny list\ntool dangerous_tool\ncommand rm -rf /\n",
    )
    .context("cannot write the demo deny list")?;
    let config = Config::parse(&demo_config(bin_dir, dir, &deny_list), None)
        .context("the built-in demo configuration is invalid")?;
    let socket = config.supervisor.socket.clone();

    out!(
        "hookvisor demo: starting {} example plugins in {}",
        PLUGINS.len(),
        dir.display()
    );
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(async move {
        let observer = Ready(Mutex::new(Some(ready_tx)));
        serve(
            config,
            async {
                let _ = stop_rx.await;
            },
            &observer,
        )
        .await
    });
    let statuses = tokio::select! {
        ready = ready_rx => ready.context("the supervisor stopped before it was ready")?,
        ended = &mut server => {
            ended.context("the supervisor task failed")??;
            bail!("the supervisor stopped before it was ready");
        }
    };
    for (name, status) in &statuses {
        out!("  plugin {name:<15} {status}");
    }
    out!("");

    let mut client = connect(&socket).await?;
    let rows = script(&mut client).await?;
    print_table(&rows);

    let _ = stop_tx.send(());
    server.await.context("the supervisor task failed")??;
    out!(
        "\nhookvisor demo: stopped the supervisor and its plugins; removed {}",
        dir.display()
    );
    Ok(())
}

/// Each plugin's name and status, as the demo prints them.
type Statuses = Vec<(String, String)>;

struct Ready(Mutex<Option<tokio::sync::oneshot::Sender<Statuses>>>);

impl Observer for Ready {
    fn ready(&self, _socket: &Path, plugins: &PluginSet) {
        let statuses = plugins
            .plugins()
            .map(|plugin| {
                let snapshot = plugin.snapshot();
                let sandbox = match snapshot.record.sandbox.as_deref() {
                    Some(report) if report.enabled => {
                        format!("  sandbox: {}", report.enforced.join(", "))
                    }
                    _ => "  sandbox: off".to_owned(),
                };
                (
                    plugin.name.to_string(),
                    format!("{}{sandbox}", snapshot.phase),
                )
            })
            .collect();
        if let Some(tx) = self.0.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(statuses);
        }
    }
}

fn demo_config(bin_dir: &Path, dir: &Path, deny_list: &Path) -> String {
    let bin = |name: &str| toml_string(&bin_dir.join(name));
    format!(
        r#"
[supervisor]
socket = {socket}
runtime_dir = {runtime}
# Every plugin runs sandboxed (the default): as root, each under a uid of its own from
# plugin_uids, with its state here; without root, Landlock and seccomp alone.
state_dir = {state}

[hooks.before_tool_call]
timeout_ms = 2000

[[plugin]]
name = "deny-list"
command = {deny}
trusted = true
priority = 100
timeout_ms = 500
env = {{ HOOKVISOR_DENY_LIST = {list} }}
[plugin.sandbox]
read = [{list}]

[[plugin]]
name = "path-guard"
command = {guard}
priority = 50

[[plugin]]
name = "approval-gate"
command = {gate}
priority = 10

[[plugin]]
name = "session-tagger"
command = {tagger}
env = {{ SESSION_TAGGER_BLOCK_AGENTS = "intruder", SESSION_TAGGER_LABELS = "demo,hookvisor" }}

[[plugin]]
name = "demo-crash"
command = {crash}
timeout_ms = 10000

[[plugin]]
name = "demo-hang"
command = {hang}
timeout_ms = 300
"#,
        socket = toml_string(&dir.join("host.sock")),
        runtime = toml_string(&dir.join("run")),
        state = toml_string(&dir.join("state")),
        list = toml_string(deny_list),
        deny = bin("deny-list"),
        guard = bin("path-guard"),
        gate = bin("approval-gate"),
        tagger = bin("session-tagger"),
        crash = bin("demo-crash"),
        hang = bin("demo-hang"),
    )
}

pub(crate) fn toml_string(path: &Path) -> String {
    serde_json::Value::String(path.display().to_string()).to_string()
}

async fn connect(socket: &Path) -> anyhow::Result<HooksClient<Channel>> {
    let channel = connect_channel(socket)
        .await
        .context("cannot connect to the demo supervisor")?;
    Ok(HooksClient::new(channel))
}

/// A gRPC channel on a Unix socket.
pub(crate) async fn connect_channel(socket: &Path) -> anyhow::Result<Channel> {
    let socket = socket.to_path_buf();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await?;
    Ok(channel)
}

/// One line of the table.
struct Row {
    hook: &'static str,
    tool: String,
    outcome: String,
    decided_by: String,
    reason: String,
    latency: Duration,
}

fn tool_call(tool: &str, params: serde_json::Value) -> ToolCallRequest {
    ToolCallRequest {
        tool_name: tool.into(),
        params_json: params.to_string(),
        context: Some(ToolCallContext {
            agent_id: "main".into(),
            session_key: "agent:main:demo".into(),
            workspace_dir: WORKSPACE.into(),
            ..Default::default()
        }),
        session_metadata: HashMap::new(),
        dispatch: false,
    }
}

fn outcome_name(outcome: i32) -> String {
    match Outcome::try_from(outcome) {
        Ok(Outcome::Allow) => "allow",
        Ok(Outcome::Block) => "BLOCK",
        Ok(Outcome::RequireApproval) => "approval",
        _ => "?",
    }
    .into()
}

async fn script(client: &mut HooksClient<Channel>) -> anyhow::Result<Vec<Row>> {
    use serde_json::json;
    let calls = [
        (
            "web_search",
            json!({"query": "rust tonic unix socket"}),
            "allowed",
        ),
        (
            "exec",
            json!({"command": "rm -rf / --no-preserve-root"}),
            "trusted policy",
        ),
        ("read", json!({"path": "notes/todo.md"}), "rewrite"),
        (
            "write",
            json!({"path": "../../etc/passwd", "content": "x"}),
            "path escape",
        ),
        ("exec", json!({"command": "ls -la"}), "approval"),
        ("crash-me", json!({}), "plugin crashes mid-call"),
        ("crash-me", json!({}), "plugin is gone"),
        ("hang-me", json!({}), "plugin hangs"),
    ];
    let mut rows = Vec::new();
    for (tool, params, _what) in calls {
        let start = Instant::now();
        let verdict = client
            .before_tool_call(tool_call(tool, params))
            .await?
            .into_inner();
        let latency = start.elapsed();
        let reason = match Outcome::try_from(verdict.outcome) {
            Ok(Outcome::Block) => verdict.block_reason.clone(),
            Ok(Outcome::RequireApproval) => format!(
                "asks: {}",
                verdict.approval.as_ref().map_or("", |a| a.title.as_str())
            ),
            _ if verdict.params_changed => format!("params rewritten: {}", verdict.params_json),
            _ => String::new(),
        };
        let decided_by = if verdict.approval_plugin.is_empty() || !verdict.decided_by.is_empty() {
            verdict.decided_by
        } else {
            verdict.approval_plugin
        };
        rows.push(Row {
            hook: "before_tool_call",
            tool: tool.into(),
            outcome: outcome_name(verdict.outcome),
            decided_by,
            reason,
            latency,
        });
    }

    for agent in ["main", "intruder"] {
        let request = SessionCreateRequest {
            session_key: format!("agent:{agent}:demo"),
            agent_id: agent.into(),
            model: "demo-model".into(),
            workspace_dir: WORKSPACE.into(),
            ..Default::default()
        };
        let start = Instant::now();
        let verdict = client.before_session_create(request).await?.into_inner();
        let latency = start.elapsed();
        let reason = if verdict.outcome == Outcome::Block as i32 {
            verdict.block_reason
        } else {
            let mut metadata: Vec<_> = verdict.session_metadata.into_iter().collect();
            metadata.sort();
            metadata
                .iter()
                .map(|(k, v)| format!("metadata[{k}] = {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        rows.push(Row {
            hook: "before_session_create",
            tool: format!("(agent {agent})"),
            outcome: outcome_name(verdict.outcome),
            decided_by: verdict.decided_by,
            reason,
            latency,
        });
    }

    let start = Instant::now();
    let receipt = client
        .session_created(SessionCreatedNotice {
            session_key: "agent:main:demo".into(),
            session_id: "s-1".into(),
            agent_id: "main".into(),
            session_metadata: HashMap::new(),
        })
        .await?
        .into_inner();
    let latency = start.elapsed();
    let told: Vec<_> = receipt.trace.iter().map(|r| r.plugin.as_str()).collect();
    rows.push(Row {
        hook: "session_created",
        tool: "(agent main)".into(),
        outcome: "observed".into(),
        decided_by: String::new(),
        reason: format!("delivered to {}", told.join(", ")),
        latency,
    });
    Ok(rows)
}

fn print_table(rows: &[Row]) {
    const REASON_WIDTH: usize = 70;
    let header = ["hook", "tool", "outcome", "decided by", "latency", "reason"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.hook.to_string(),
                r.tool.clone(),
                r.outcome.clone(),
                r.decided_by.clone(),
                format_latency(r.latency),
                shorten(&r.reason, REASON_WIDTH),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let padded: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out!("{}", crate::output::escaped(padded.join("  ").trim_end()));
    };
    line(&header.map(String::from));
    line(&widths.map(|w| "-".repeat(w)));
    for row in &cells {
        line(row);
    }
}

fn format_latency(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let cut: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// A private temporary directory, removed on drop. (Short path: socket addresses are short.)
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> anyhow::Result<TempDir> {
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let path = base.join(format!("hookvisor-{}-{attempt}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).context(format!("cannot create {}", path.display())),
            }
        }
        bail!("cannot create a temporary directory in {}", base.display())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
