//! `hookvisor status`, `hookvisor reload`, `hookvisor upgrade` and `hookvisor restart PLUGIN`: the operators'
//! `hookvisor.v1.Admin` service of a running supervisor, as a table or (`--json`) JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use hookvisor_proto::v1::admin_client::AdminClient;
use hookvisor_proto::v1::{
    Hook, HostStatus, ListHostsRequest, ListPluginsRequest, PluginStatus, ReloadRequest,
    RestartPluginRequest, Stage, UpgradeRequest,
};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::output::{escaped, json_text, out};

/// Where the supervisor is, and how to print.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The supervisor's host socket; default `$HOOKVISOR_SOCKET`, else `/run/hookvisor/hookvisor.sock`.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

async fn client(target: &Target) -> anyhow::Result<AdminClient<Channel>> {
    let socket = crate::call::socket_path(target.socket.clone());
    let channel = crate::demo::connect_channel(&socket)
        .await
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    Ok(AdminClient::new(channel))
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(
        "the supervisor answered gRPC status {:?}: {}",
        status.code(),
        status.message()
    )
}

/// `hookvisor status`: the plugin table, then the hosts that reported or called.
pub(crate) async fn status(target: Target) -> anyhow::Result<ExitCode> {
    let mut client = client(&target).await?;
    let mut request = tonic::Request::new(ListPluginsRequest {});
    request.set_timeout(Duration::from_secs(10));
    let plugins = client
        .list_plugins(request)
        .await
        .map_err(status_error)?
        .into_inner()
        .plugins;
    let mut request = tonic::Request::new(ListHostsRequest {});
    request.set_timeout(Duration::from_secs(10));
    let hosts = client
        .list_hosts(request)
        .await
        .map_err(status_error)?
        .into_inner()
        .hosts;
    if target.json {
        let plugins: Vec<Value> = plugins.iter().map(plugin_json).collect();
        let hosts: Vec<Value> = hosts.iter().map(host_json).collect();
        out!(
            "{}",
            json_text(&json!({ "plugins": plugins, "hosts": hosts }))
        );
    } else {
        print_table(&plugins);
        print_hosts(&hosts);
    }
    Ok(ExitCode::SUCCESS)
}

/// `hookvisor reload`.
pub(crate) async fn reload(target: Target) -> anyhow::Result<ExitCode> {
    let mut request = tonic::Request::new(ReloadRequest {});
    request.set_timeout(Duration::from_secs(120));
    let answer = client(&target)
        .await?
        .reload(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if target.json {
        out!("{}", json!({ "reloaded": true, "plugins": answer.plugins }));
    } else {
        out!("reloaded: {} plugins", answer.plugins);
    }
    Ok(ExitCode::SUCCESS)
}

/// `hookvisor restart PLUGIN`.
pub(crate) async fn restart(target: Target, name: String) -> anyhow::Result<ExitCode> {
    let mut request = tonic::Request::new(RestartPluginRequest { name: name.clone() });
    request.set_timeout(Duration::from_secs(120));
    let answer = client(&target)
        .await?
        .restart_plugin(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if target.json {
        out!(
            "{}",
            json_text(&json!({ "plugin": name, "state": answer.state, "pid": answer.pid }))
        );
    } else {
        out!(
            "{}: {} (pid {})",
            escaped(&name),
            escaped(&answer.state),
            answer.pid
        );
    }
    Ok(if answer.state == "ready" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How long `hookvisor upgrade` waits for the new binary to serve.
const UPGRADE_WAIT: Duration = Duration::from_secs(120);

/// `hookvisor upgrade`: asks for the upgrade, then asks the supervisor (on new connections:
/// its old ones are closed by the hand-over) how it ended.
pub(crate) async fn upgrade(target: Target) -> anyhow::Result<ExitCode> {
    let mut request = tonic::Request::new(UpgradeRequest { status_of: 0 });
    request.set_timeout(Duration::from_secs(60));
    let begun = client(&target)
        .await?
        .upgrade(request)
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    let deadline = tokio::time::Instant::now() + UPGRADE_WAIT;
    let mut last = begun.clone();
    while last.state == "handing over" && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Ok(mut admin) = client(&target).await else {
            continue;
        };
        let mut request = tonic::Request::new(UpgradeRequest {
            status_of: begun.id,
        });
        request.set_timeout(Duration::from_secs(10));
        if let Ok(answer) = admin.upgrade(request).await {
            last = answer.into_inner();
        }
    }
    let done = last.state == "done";
    if target.json {
        out!(
            "{}",
            json_text(&json!({
                "upgraded": done,
                "state": last.state,
                "detail": last.detail,
                "pid": last.pid,
                "plugins": last.plugins,
                "plugins_kept": last.plugins_kept,
            }))
        );
    } else if done {
        out!(
            "upgraded (pid {}): {} of {} plugins kept their process",
            last.pid,
            last.plugins_kept,
            last.plugins
        );
    } else if last.state == "handing over" {
        anyhow::bail!(
            "the supervisor did not say how the upgrade ended within {} s",
            UPGRADE_WAIT.as_secs()
        );
    } else {
        anyhow::bail!("upgrade {}: {}", last.state, last.detail);
    }
    Ok(if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn hooks_of(p: &PluginStatus) -> String {
    let list: Vec<String> = p
        .registrations
        .iter()
        .map(|r| {
            let hook =
                Hook::try_from(r.hook).map_or("unknown", hookvisor::observe::audit::hook_name);
            let stage = if r.stage == Stage::Policy as i32 {
                "policy "
            } else {
                ""
            };
            if r.tools.is_empty() {
                format!("{stage}{hook}")
            } else {
                format!("{stage}{hook}({})", r.tools.join(","))
            }
        })
        .collect();
    list.join(" ")
}

fn plugin_json(p: &PluginStatus) -> Value {
    json!({
        "name": p.name,
        "version": p.version,
        "state": p.state,
        "pid": p.pid,
        "endpoint": (!p.endpoint.is_empty()).then_some(&p.endpoint),
        "trusted": p.trusted,
        "mode": p.mode,
        "hooks": hooks_of(p),
        "restarts": p.restarts,
        "last_error": p.last_error,
        "uptime_ms": p.uptime_ms,
        "heartbeat_age_ms": p.heartbeat_age_ms,
        "heartbeat_round_trip_us": p.heartbeat_round_trip_us,
        "calls": p.calls,
        "blocks": p.blocks,
        "failures": p.failures,
        "p50_latency_us": p.p50_latency_us,
        "p99_latency_us": p.p99_latency_us,
        "shadow_answers": p.shadow_answers,
        "shadow_disagreements": p.shadow_disagreements,
        "sandbox": {
            "enabled": p.sandboxed,
            "uid": (p.uid != 0).then_some(p.uid),
            "enforced": p.sandbox_enforced,
            "missing": p.sandbox_missing,
        },
    })
}

fn print_table(plugins: &[PluginStatus]) {
    let header = [
        "plugin",
        "version",
        "state",
        "pid",
        "uid",
        "mode",
        "restarts",
        "calls",
        "blocks",
        "failures",
        "p50",
        "p99",
        "heartbeat",
        "hooks",
    ];
    // Every cell escaped: the version and the tools are the plugin's own words.
    let rows: Vec<[String; 14]> = plugins
        .iter()
        .map(|p| {
            let mode = match (p.trusted, p.mode.as_str()) {
                (_, "shadow") => format!(
                    "shadow ({}/{} disagreed)",
                    p.shadow_disagreements, p.shadow_answers
                ),
                (true, _) => "trusted".into(),
                _ => "hook".into(),
            };
            let heartbeat = if p.heartbeat_age_ms == 0 {
                "-".into()
            } else {
                format!(
                    "{} s ago, {} µs",
                    p.heartbeat_age_ms / 1000,
                    p.heartbeat_round_trip_us
                )
            };
            let row = [
                p.name.clone(),
                p.version.clone(),
                p.state.clone(),
                if !p.endpoint.is_empty() {
                    "remote".into()
                } else if p.pid == 0 {
                    "-".into()
                } else {
                    p.pid.to_string()
                },
                if p.uid == 0 {
                    "-".into()
                } else {
                    p.uid.to_string()
                },
                mode,
                p.restarts.to_string(),
                p.calls.to_string(),
                p.blocks.to_string(),
                p.failures.to_string(),
                format!("{} µs", p.p50_latency_us),
                format!("{} µs", p.p99_latency_us),
                heartbeat,
                hooks_of(p),
            ];
            row.map(|cell| escaped(&cell).into_owned())
        })
        .collect();
    table(&header, &rows);
    for p in plugins {
        let name = escaped(&p.name);
        if !p.sandboxed {
            out!("{name}: sandbox: off");
        } else if p.sandbox_missing.is_empty() {
            out!(
                "{name}: sandbox: {}",
                escaped(&p.sandbox_enforced.join(", "))
            );
        } else {
            out!(
                "{name}: sandbox: {}; not enforced: {}",
                escaped(&p.sandbox_enforced.join(", ")),
                escaped(&p.sandbox_missing.join("; "))
            );
        }
    }
    for p in plugins.iter().filter(|p| !p.last_error.is_empty()) {
        out!(
            "{}: last error: {}",
            escaped(&p.name),
            escaped(&p.last_error)
        );
    }
}

/// Prints `rows` (already escaped) under `header`, each column as wide as its widest cell.
fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.to_vec());
    }
}

fn age(ms: u64) -> String {
    if ms == 0 {
        "-".into()
    } else {
        format!("{} s ago", ms / 1000)
    }
}

fn host_json(h: &HostStatus) -> Value {
    let tools: Vec<Value> = h
        .tools
        .iter()
        .map(|t| {
            json!({
                "tool": t.tool, "calls": t.calls, "asked": t.asked, "ran": t.ran,
                "unasked_runs": t.unasked_runs,
            })
        })
        .collect();
    json!({
        "host": h.host,
        "kind": h.kind,
        "version": h.version,
        "policy_id": h.policy_id,
        "adapter_version": h.adapter_version,
        "pid": h.pid,
        "uid": h.uid,
        "report_age_ms": h.report_age_ms,
        "last_call_age_ms": h.last_call_age_ms,
        "interval_ms": h.interval_ms,
        "silent": h.silent,
        "stopping": h.stopping,
        "calls": h.calls,
        "dispatch_calls": h.dispatch_calls,
        "unasked_runs": h.unasked_runs,
        "tools": tools,
    })
}

/// The hosts: who they said they are, when they last reported and called, their calls, and
/// every warning (silent, runs hookvisor was not asked about).
fn print_hosts(hosts: &[HostStatus]) {
    out!("");
    if hosts.is_empty() {
        out!("hosts: none has reported or called yet");
        return;
    }
    let header = [
        "host",
        "kind",
        "version",
        "policy",
        "pid",
        "reported",
        "last call",
        "calls",
        "dispatch",
        "state",
    ];
    let rows: Vec<[String; 10]> = hosts
        .iter()
        .map(|h| {
            let state = if h.silent {
                "SILENT"
            } else if h.stopping {
                "stopped"
            } else if h.report_age_ms == 0 && h.kind.is_empty() {
                "unreported"
            } else {
                "ok"
            };
            [
                h.host.clone(),
                h.kind.clone(),
                h.version.clone(),
                h.policy_id.clone(),
                if h.pid == 0 {
                    "-".into()
                } else {
                    h.pid.to_string()
                },
                age(h.report_age_ms),
                age(h.last_call_age_ms),
                h.calls.to_string(),
                h.dispatch_calls.to_string(),
                state.into(),
            ]
            .map(|cell| escaped(&cell).into_owned())
        })
        .collect();
    table(&header, &rows);
    for h in hosts {
        let name = escaped(&h.host);
        let tools: Vec<String> = h
            .tools
            .iter()
            .filter(|t| t.calls > 0)
            .map(|t| format!("{} {}", escaped(&t.tool), t.calls))
            .collect();
        if !tools.is_empty() {
            out!("{name}: calls per tool: {}", tools.join(", "));
        }
        for t in h.tools.iter().filter(|t| t.unasked_runs > 0) {
            out!(
                "{name}: WARNING: tool '{}' ran {} time(s) more than hookvisor was asked about it",
                escaped(&t.tool),
                t.unasked_runs
            );
        }
        if h.silent {
            out!(
                "{name}: WARNING: no report for {} s (interval {} ms): is its gateway still asking hookvisor?",
                h.report_age_ms / 1000,
                h.interval_ms
            );
        }
    }
}
