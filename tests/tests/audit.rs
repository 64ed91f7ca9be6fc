//! The decision audit log (`[audit]`): one JSON line per verdict with the right fields, params
//! only when enabled, the request id from the host to the plugins and back, rotation on SIGUSR1,
//! and a writer that never holds a decision up, even when its file blocks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::Outcome;
use hookvisor_tests::harness::{
    PluginToml, Recording, Supervisor, TestDir, metrics_sample, plugins, toml_string, tool_call,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// The lines of `path` once there are at least `n` (polling, with a deadline).
async fn lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let parsed: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if parsed.len() >= n || Instant::now() > deadline {
            assert!(
                parsed.len() >= n,
                "{} of {n} lines in {}",
                parsed.len(),
                path.display()
            );
            return parsed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn audit_table(path: &str, extra: &str) -> String {
    format!("\n[audit]\npath = {}\n{extra}\n", toml_string(path))
}

fn four_outcomes() -> String {
    plugins(&[
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .action("block-tool:danger"),
        PluginToml::new("asker", "fixture-recorder")
            .action("approve:Ask first?")
            .env("FIXTURE_TOOLS", "ask"),
        PluginToml::new("sleeper", "fixture-hang")
            .timeout_ms(100)
            .env("FIXTURE_TOOLS", "slow"),
    ])
}

#[tokio::test]
async fn one_line_per_verdict_with_its_fields_and_no_params() {
    let body = four_outcomes() + &audit_table("decisions.jsonl", "");
    let supervisor = Supervisor::start(&body).await;
    let path = supervisor.dir().join("decisions.jsonl");
    for (tool, outcome) in [
        ("read", Outcome::Allow),
        ("danger", Outcome::Block),
        ("ask", Outcome::RequireApproval),
        ("slow", Outcome::Block),
    ] {
        let verdict = supervisor.verdict(tool, json!({"secret": "hunter2"})).await;
        assert_eq!(verdict.outcome(), outcome, "{tool}: {verdict:?}");
    }
    let lines = lines(&path, 4).await;
    let by_tool = |tool: &str| {
        lines
            .iter()
            .find(|l| l["tool"] == tool)
            .unwrap_or_else(|| panic!("no line for {tool}: {lines:?}"))
    };
    for line in &lines {
        assert_eq!(line["hook"], "before_tool_call");
        assert!(line["ts"].as_str().unwrap().ends_with('Z'), "{line}");
        assert_eq!(line["request_id"].as_str().unwrap().len(), 24, "{line}");
        assert!(line["latency_us"].as_u64().is_some(), "{line}");
        assert!(
            line.get("params").is_none(),
            "params logged by default: {line}"
        );
        assert!(!line.to_string().contains("hunter2"), "{line}");
        let guard = &line["plugins"][0];
        assert_eq!(guard["name"], "guard");
        assert_eq!(guard["version"], "0.0.0-test");
        assert_eq!(guard["stage"], "policy");
        assert!(guard["latency_us"].as_u64().is_some(), "{line}");
    }
    assert_eq!(by_tool("read")["outcome"], "allow");
    assert_eq!(by_tool("read")["session_key"], "agent:agent-1:main");
    let blocked = by_tool("danger");
    assert_eq!(blocked["outcome"], "block");
    assert_eq!(blocked["block_kind"], "policy");
    assert_eq!(blocked["decided_by"], "guard");
    assert!(!blocked["reason"].as_str().unwrap().is_empty(), "{blocked}");
    let asked = by_tool("ask");
    assert_eq!(asked["outcome"], "require_approval");
    assert_eq!(asked["plugins"][1]["name"], "asker");
    assert_eq!(asked["plugins"][1]["outcome"], "require_approval");
    let failed = by_tool("slow");
    assert_eq!(failed["outcome"], "block");
    assert_eq!(failed["block_kind"], "failure");
    assert_eq!(failed["decided_by"], "sleeper");
    assert_eq!(failed["plugins"][1]["failure"], "timeout");
}

#[tokio::test]
async fn params_are_logged_only_when_enabled() {
    let body =
        plugins(&[PluginToml::new("rewriter", "fixture-recorder")
            .action(r#"merge:{"path":"/abs/a.txt"}"#)])
            + &audit_table("decisions.jsonl", "log_params = true");
    let supervisor = Supervisor::start(&body).await;
    supervisor.verdict("read", json!({"path": "a.txt"})).await;
    let line = &lines(&supervisor.dir().join("decisions.jsonl"), 1).await[0];
    assert_eq!(line["params"], json!({"path": "a.txt"}), "{line}");
    assert_eq!(
        line["final_params"],
        json!({"path": "/abs/a.txt"}),
        "{line}"
    );
    assert_eq!(line["params_changed"], true, "{line}");
}

#[tokio::test]
async fn the_request_id_goes_from_the_host_to_the_plugins_the_audit_and_back() {
    let recording = Recording::new();
    let body = plugins(&[PluginToml::new("seen", "fixture-recorder").record(&recording)])
        + &audit_table("decisions.jsonl", "");
    let supervisor = Supervisor::start(&body).await;
    let mut request = tonic::Request::new(tool_call("read", json!({})));
    request
        .metadata_mut()
        .insert("x-hookvisor-request-id", "host-req-42".parse().unwrap());
    let response = supervisor
        .client()
        .await
        .before_tool_call(request)
        .await
        .unwrap();
    assert_eq!(
        response.metadata().get("x-hookvisor-request-id").unwrap(),
        "host-req-42"
    );
    let calls = recording.wait_calls("seen", 1).await;
    assert_eq!(calls[0]["request_id"], "host-req-42", "{calls:?}");
    let line = &lines(&supervisor.dir().join("decisions.jsonl"), 1).await[0];
    assert_eq!(line["request_id"], "host-req-42");

    // An id a host could use to inject text is replaced by one of ours.
    let mut request = tonic::Request::new(tool_call("read", json!({})));
    request
        .metadata_mut()
        .insert("x-hookvisor-request-id", "a\"b".parse().unwrap());
    let response = supervisor
        .client()
        .await
        .before_tool_call(request)
        .await
        .unwrap();
    let id = response.metadata().get("x-hookvisor-request-id").unwrap();
    assert_eq!(id.len(), 24, "{id:?}");
    let calls = recording.wait_calls("seen", 2).await;
    assert_eq!(calls[1]["request_id"], id.to_str().unwrap());
}

#[tokio::test]
async fn sigusr1_reopens_the_log_for_rotation() {
    let body =
        plugins(&[PluginToml::new("p", "fixture-recorder")]) + &audit_table("decisions.jsonl", "");
    let supervisor = Supervisor::start(&body).await;
    let path = supervisor.dir().join("decisions.jsonl");
    supervisor.verdict("before-rotation", json!({})).await;
    lines(&path, 1).await;
    let rotated = supervisor.dir().join("decisions.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    supervisor.signal(Signal::SIGUSR1);
    // The reopen is asynchronous: keep asking until a line lands in the new file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() && Instant::now() < deadline {
        supervisor.verdict("after-rotation", json!({})).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    supervisor.verdict("after-rotation", json!({})).await;
    let new = lines(&path, 1).await;
    assert!(new.iter().all(|l| l["tool"] == "after-rotation"), "{new:?}");
    let old = lines(&rotated, 1).await;
    assert_eq!(old[0]["tool"], "before-rotation");
}

/// A FIFO nobody reads: the writer's first writes fill the pipe, then it blocks for good.
fn stuck_fifo(dir: &TestDir) -> (PathBuf, std::fs::File) {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("stuck.fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    (path, reader)
}

#[tokio::test]
async fn a_blocked_writer_never_holds_a_decision_up() {
    let fifo_dir = TestDir::new();
    let (fifo, _reader) = stuck_fifo(&fifo_dir);
    let body = plugins(&[PluginToml::new("p", "fixture-recorder")])
        + &audit_table(&fifo.display().to_string(), "queue_lines = 8")
        + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let supervisor = Supervisor::start(&body).await;
    // Far more than the pipe (64 KiB) and the queue hold: 16 hosts, 25 calls each, each call
    // with a deadline.
    let padding = "x".repeat(2000);
    let client = supervisor.client().await;
    let mut hosts = tokio::task::JoinSet::new();
    for host in 0..16 {
        let mut client = client.clone();
        let padding = padding.clone();
        hosts.spawn(async move {
            for i in 0..25 {
                let params = json!({ "host": host, "n": i, "pad": padding });
                let mut request = tonic::Request::new(tool_call("read", params));
                request.set_timeout(Duration::from_secs(5));
                let verdict = client.before_tool_call(request).await;
                let verdict = verdict.expect("a verdict in time").into_inner();
                assert_eq!(verdict.outcome(), Outcome::Allow);
            }
        });
    }
    let mut done = 0;
    while let Some(host) = hosts.join_next().await {
        host.expect("every host got all its verdicts");
        done += 1;
    }
    assert_eq!(done, 16);
    assert!(
        supervisor.log_contains("dropping lines").await,
        "{}",
        supervisor.log()
    );
    let metrics = supervisor.metrics().await;
    let dropped = metrics_sample(&metrics, "hookvisor_audit_lines_dropped_total");
    assert!(dropped.is_some_and(|n| n > 0.0), "{metrics}");
}

/// `serve --log-format json`: every line the supervisor logs is one JSON object, and the log
/// lines of a call carry its request id.
#[tokio::test]
async fn the_json_log_carries_the_request_id() {
    let body = plugins(&[PluginToml::new("slow", "fixture-hang").timeout_ms(100)]);
    let supervisor = Supervisor::builder(&body)
        .serve_arg("--log-format")
        .serve_arg("json")
        .start()
        .await;
    let mut request = tonic::Request::new(tool_call("read", json!({})));
    request
        .metadata_mut()
        .insert("x-hookvisor-request-id", "json-log-1".parse().unwrap());
    let verdict = supervisor
        .client()
        .await
        .before_tool_call(request)
        .await
        .unwrap();
    assert_eq!(verdict.into_inner().outcome(), Outcome::Block);
    let log = supervisor.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.starts_with("----") && !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["fields"].is_object()),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == "json-log-1"),
        "no line of the call carries its request id: {log}"
    );
}

/// Runs `hookvisor serve` on a configuration whose `[audit]` is `audit`: it must refuse to
/// start, saying why. Returns what it printed.
fn serve_refuses(dir: &TestDir, audit: &str) -> String {
    let config = dir.join("bad.toml");
    let text = format!(
        "[supervisor]\nsocket = {}\nruntime_dir = {}\n\n[audit]\npath = {}\n",
        toml_string(&dir.join("host.sock").display().to_string()),
        toml_string(&dir.join("run").display().to_string()),
        toml_string(audit)
    );
    std::fs::write(&config, text).unwrap();
    let (status, out, err) = hookvisor_tests::harness::run_hookvisor(&[
        "serve",
        "--config",
        &config.display().to_string(),
    ]);
    assert!(
        !status.success(),
        "serve started with audit path {audit}: {out}{err}"
    );
    assert!(!dir.join("host.sock").exists(), "the host socket was bound");
    err
}

/// Another local user can plant a name in a shared directory; a careless configuration can
/// point at a FIFO nobody reads or at a directory. None of it is written to, or waited on.
#[test]
fn an_audit_path_that_is_not_hookvisors_own_file_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new();
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();

    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let err = serve_refuses(&dir, &link.display().to_string());
    assert!(
        err.contains("[audit] path") && err.contains("symlink"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

    let theirs = dir.join("theirs.jsonl");
    std::fs::write(&theirs, "").unwrap();
    nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let err = serve_refuses(&dir, &theirs.display().to_string());
    assert!(err.contains("belongs to uid 65534"), "{err}");

    let open = dir.join("open.jsonl");
    std::fs::write(&open, "").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = serve_refuses(&dir, &open.display().to_string());
    assert!(err.contains("lets group or others write it"), "{err}");

    let fifo = dir.join("nobody-reads.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = serve_refuses(&dir, &fifo.display().to_string());
    assert!(err.contains("[audit] path"), "{err}");

    let err = serve_refuses(&dir, &dir.path().display().to_string());
    assert!(err.contains("[audit] path"), "{err}");
}

/// Issue 18, defect 4: with the audit file in a directory others can write, another user moved
/// and deleted it while verdicts went into a file nobody would read. The host socket's
/// directory rule applies to the audit file, and a file with a second hard link is refused.
#[test]
fn an_audit_file_others_could_move_or_that_has_another_name_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new();
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = serve_refuses(&dir, &shared.join("decisions.jsonl").display().to_string());
    assert!(
        err.contains("audit log") && err.contains("writable by group or others"),
        "{err}"
    );
    assert!(!shared.join("decisions.jsonl").exists(), "it was created");

    let log = dir.join("decisions.jsonl");
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::hard_link(&log, dir.join("elsewhere.jsonl")).unwrap();
    let err = serve_refuses(&dir, &log.display().to_string());
    assert!(err.contains("2 hard links"), "{err}");
}

/// Issue 18, defect 5: on a full disk lines were lost with `dropped=0`, and a line cut short
/// merged with the next. A file size limit on the running supervisor (`prlimit --fsize`) makes
/// its writes fail as a full disk would: every line not written is counted as dropped (metric,
/// and an `"event":"dropped"` line once writes work again), and writing starts again on a line
/// boundary. The supervisor lives on (the limit's SIGXFSZ is not its end).
#[tokio::test]
async fn failed_audit_writes_are_counted_and_lines_never_merge() {
    let body = plugins(&[PluginToml::new("watcher", "fixture-recorder")])
        + &audit_table("decisions.jsonl", "")
        + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let supervisor = Supervisor::start(&body).await;
    let path = supervisor.dir().join("decisions.jsonl");
    let calls = |n: usize| {
        let supervisor = &supervisor;
        async move {
            for i in 0..n {
                let verdict = supervisor.verdict(&format!("t{i}"), json!({})).await;
                assert_eq!(verdict.outcome(), Outcome::Allow);
            }
        }
    };
    calls(3).await;
    let written = lines(&path, 3).await.len();
    let size = std::fs::metadata(&path).unwrap().len();
    let limit = |soft: String| {
        // The soft limit alone: raising a hard limit back needs CAP_SYS_RESOURCE.
        let status = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", supervisor.pid()))
            .arg(format!("--fsize={soft}:unlimited"))
            .status()
            .expect("prlimit (util-linux)");
        assert!(status.success());
    };
    // Room for about half a line more: the next write is cut short, the rest fail.
    limit((size + 150).to_string());
    calls(20).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = supervisor.metrics().await;
        let dropped =
            metrics_sample(&metrics, "hookvisor_audit_lines_dropped_total").unwrap_or(0.0);
        if dropped >= 20.0 || Instant::now() > deadline {
            assert_eq!(dropped, 20.0, "{metrics}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        supervisor.log_contains("cannot write the audit log").await,
        "{}",
        supervisor.log_tail()
    );
    limit("unlimited".to_owned());
    calls(2).await;
    // Every line is whole JSON but the one cut short, which stands on a line of its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (verdicts, dropped_event, cut) = loop {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut verdicts = 0;
        let mut dropped_event = None;
        let mut cut = 0;
        for line in text.lines() {
            match serde_json::from_str::<Value>(line) {
                Ok(v) if v["event"] == "dropped" => dropped_event = Some(v),
                Ok(v) if v.get("request_id").is_some() => verdicts += 1,
                Ok(v) => panic!("an unexpected line: {v}"),
                Err(_) => cut += 1,
            }
        }
        if verdicts >= written + 2 && dropped_event.is_some() || Instant::now() > deadline {
            break (verdicts, dropped_event, cut);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        verdicts,
        written + 2,
        "the lines before and after the failure"
    );
    assert!(cut <= 1, "{cut} broken lines");
    let event = dropped_event.expect("an \"event\":\"dropped\" line");
    assert_eq!(event["dropped_total"], 20, "{event}");
    assert!(supervisor.health().await.is_ok(), "the supervisor lives on");
}
