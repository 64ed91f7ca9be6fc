//! Proof that the gate runs (contract §4.5): a host reports itself on the real socket, the
//! supervisor attributes its calls by the caller's pid, and `hookvisor status` and the metrics
//! show the host, its calls per tool, the runs it reported beyond what it asked, and its silence.
//! Hostile reports and tool names are refused or escaped.

use std::time::{Duration, Instant};

use hookvisor_proto::v1::{HostReport, Outcome, ToolCount};
use hookvisor_tests::harness::{
    PluginToml, Supervisor, metrics_sample as sample, plugins, repo_root, run_hookvisor, tool_call,
};
use serde_json::{Value, json};

fn body() -> String {
    plugins(&[PluginToml::new("guard", "fixture-recorder")
        .policy()
        .action("block-tool:danger")])
        + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n"
}

fn report(host: &str, interval_ms: u32) -> HostReport {
    HostReport {
        host: host.into(),
        kind: "openclaw".into(),
        version: "2026.9.6".into(),
        policy_id: "hookvisor".into(),
        adapter_version: "0.1.0".into(),
        interval_ms,
        ..HostReport::default()
    }
}

fn hosts(supervisor: &Supervisor) -> Vec<Value> {
    let socket = supervisor.socket().to_string_lossy().into_owned();
    let (status, out, err) = run_hookvisor(&["status", "--json", "--socket", &socket]);
    assert!(status.success(), "{out}{err}");
    let parsed: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    parsed["hosts"].as_array().expect("hosts").clone()
}

fn host<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|h| h["host"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {list:?}"))
}

#[tokio::test]
async fn a_reporting_host_is_listed_with_its_calls_per_tool_and_its_unasked_runs() {
    let supervisor = Supervisor::start(&body()).await;
    let mut client = supervisor.client().await;
    let mut hello = report("gw-1", 60_000);
    // This process asked about `exec` twice and ran it three times: one run went around.
    hello.tools = vec![ToolCount {
        tool: "exec".into(),
        asked: 2,
        ran: 3,
    }];
    let receipt = client
        .report_host(hello)
        .await
        .expect("report")
        .into_inner();
    assert_eq!((receipt.plugins, receipt.plugins_ready), (1, 1));
    assert!(!receipt.version.is_empty());

    // Calls from this process (the pid that reported), on other connections too.
    for _ in 0..2 {
        assert_eq!(
            supervisor.verdict("exec", json!({})).await.outcome(),
            Outcome::Allow
        );
    }
    let mut outer = tool_call("tool_call", json!({"name": "exec"}));
    outer.dispatch = true;
    client.before_tool_call(outer).await.expect("dispatch call");
    // A call from another process that never reported.
    let socket = supervisor.socket().to_string_lossy().into_owned();
    let (status, out, err) = run_hookvisor(&["call", "--socket", &socket, "tool", "danger"]);
    assert_eq!(status.code(), Some(2), "a block: {out}{err}");

    let list = hosts(&supervisor);
    let gw = host(&list, "gw-1");
    assert_eq!(gw["kind"], "openclaw");
    assert_eq!(gw["version"], "2026.9.6");
    assert_eq!(gw["policy_id"], "hookvisor");
    assert_eq!(gw["pid"], i64::from(std::process::id() as i32));
    assert_eq!(gw["calls"], 2, "{gw}");
    assert_eq!(gw["dispatch_calls"], 1, "{gw}");
    assert_eq!(gw["silent"], false);
    assert_eq!(gw["unasked_runs"], 1);
    assert_eq!(
        gw["tools"],
        json!([{"tool": "exec", "calls": 2, "asked": 2, "ran": 3, "unasked_runs": 1}])
    );
    let other = host(&list, "unreported");
    assert_eq!(other["calls"], 1);
    assert_eq!(other["tools"][0]["tool"], "danger");

    let (status, table, _) = run_hookvisor(&["status", "--socket", &socket]);
    assert!(status.success());
    assert!(table.contains("gw-1: calls per tool: exec 2"), "{table}");
    assert!(
        table.contains("gw-1: WARNING: tool 'exec' ran 1 time(s) more than hookvisor was asked"),
        "{table}"
    );

    let text = supervisor.metrics().await;
    for (series, value) in [
        (
            r#"hookvisor_host_info{host="gw-1",kind="openclaw",version="2026.9.6",policy="hookvisor"}"#,
            1.0,
        ),
        (
            r#"hookvisor_host_tool_calls_total{host="gw-1",tool="exec"}"#,
            2.0,
        ),
        (r#"hookvisor_host_dispatch_calls_total{host="gw-1"}"#, 1.0),
        (
            r#"hookvisor_host_unasked_runs{host="gw-1",tool="exec"}"#,
            1.0,
        ),
        (r#"hookvisor_host_silent{host="gw-1"}"#, 0.0),
        (
            r#"hookvisor_host_tool_calls_total{host="unreported",tool="danger"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in:\n{text}");
    }
}

#[tokio::test]
async fn a_host_whose_reports_stop_is_silent_until_it_says_it_stops() {
    let supervisor = Supervisor::start(&body()).await;
    let mut client = supervisor.client().await;
    client
        .report_host(report("gw-quiet", 100))
        .await
        .expect("report");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if host(&hosts(&supervisor), "gw-quiet")["silent"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "never silent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = supervisor.metrics().await;
    assert_eq!(
        sample(&text, r#"hookvisor_host_silent{host="gw-quiet"}"#),
        Some(1.0),
        "{text}"
    );
    let socket = supervisor.socket().to_string_lossy().into_owned();
    let (_, table, _) = run_hookvisor(&["status", "--socket", &socket]);
    assert!(
        table.contains("gw-quiet: WARNING: no report for"),
        "{table}"
    );

    let mut last = report("gw-quiet", 100);
    last.stopping = true;
    client.report_host(last).await.expect("last report");
    let gw = host(&hosts(&supervisor), "gw-quiet").clone();
    assert_eq!(
        (gw["silent"].clone(), gw["stopping"].clone()),
        (json!(false), json!(true))
    );
}

#[tokio::test]
async fn hostile_reports_are_refused_and_host_chosen_labels_are_escaped() {
    let supervisor = Supervisor::start(&body()).await;
    let mut client = supervisor.client().await;
    let cases: Vec<(HostReport, &str)> = vec![
        (report("", 1000), "host: must not be empty"),
        (
            report(&"h".repeat(129), 1000),
            "host: length 129 exceeds the limit of 128 bytes",
        ),
        (
            report("gw\n1", 1000),
            "host: must not contain control characters",
        ),
        (report("unreported", 1000), "host: 'unreported' is reserved"),
        (
            report("gw", 3_600_001),
            "interval_ms: 3600001 exceeds the limit of 3600000",
        ),
        (
            HostReport {
                tools: vec![ToolCount::default(); 257],
                ..report("gw", 1000)
            },
            "tools: 257 entries exceed the limit of 256",
        ),
        (
            HostReport {
                version: "\u{1b}]0;owned\u{7}".into(),
                ..report("gw", 1000)
            },
            "version: must not contain control characters",
        ),
    ];
    for (bad, message) in cases {
        let status = client.report_host(bad).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{message}");
        assert_eq!(status.message(), message);
    }
    // Past 64 hosts that all still report, a new name is refused.
    for i in 0..64 {
        client
            .report_host(report(&format!("h{i}"), 60_000))
            .await
            .expect("room");
    }
    let status = client
        .report_host(report("one-too-many", 60_000))
        .await
        .expect_err("full");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);

    // A tool name built to forge a series stays one escaped label value.
    let forged = "x\"} 1\nhookvisor_forged 1\n#";
    assert_eq!(
        supervisor.verdict(forged, json!({})).await.outcome(),
        Outcome::Allow
    );
    let text = supervisor.metrics().await;
    assert!(!text.contains("\nhookvisor_forged"), "{text}");
    assert!(
        text.contains(r#"tool="x%22} 1%0Ahookvisor_forged 1%0A#"} 1"#),
        "{text}"
    );
}

/// docs/hosts.md's alert rules and metric table name only series a supervisor serves.
#[tokio::test]
async fn the_documented_alert_rules_and_metrics_exist() {
    let doc = std::fs::read_to_string(repo_root().join("docs/hosts.md")).expect("docs/hosts.md");
    let supervisor = Supervisor::start(&body()).await;
    let mut client = supervisor.client().await;
    let mut hello = report("gw-doc", 60_000);
    hello.tools = vec![ToolCount {
        tool: "exec".into(),
        asked: 1,
        ran: 1,
    }];
    client.report_host(hello).await.expect("report");
    let mut outer = tool_call("tool_call", json!({}));
    outer.dispatch = true;
    client.before_tool_call(outer).await.expect("dispatch");
    supervisor.verdict("exec", json!({})).await;
    let text = supervisor.metrics().await;
    let mut names: Vec<&str> = doc
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("hookvisor_host_"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 7, "{names:?}");
    for name in names {
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!("{name}{{"))),
            "{name} documented but not served:\n{text}"
        );
    }
}
