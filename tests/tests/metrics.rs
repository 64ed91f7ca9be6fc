//! `[metrics]`: scraped over HTTP after real traffic, the counters, histograms and plugin states
//! say what happened.

use std::time::{Duration, Instant};

use hookvisor_proto::v1::Outcome;
use hookvisor_tests::harness::{
    PluginToml, Supervisor, http_get, metrics_sample as sample, plugins,
};
use serde_json::json;

#[tokio::test]
async fn counts_states_and_latencies_after_traffic() {
    let body = plugins(&[
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .action("block-tool:danger"),
        PluginToml::new("sleeper", "fixture-hang")
            .timeout_ms(100)
            .env("FIXTURE_TOOLS", "slow"),
    ]) + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let supervisor = Supervisor::start(&body).await;
    for (tool, outcome) in [
        ("read", Outcome::Allow),
        ("read", Outcome::Allow),
        ("danger", Outcome::Block),
        ("slow", Outcome::Block),
    ] {
        assert_eq!(supervisor.verdict(tool, json!({})).await.outcome(), outcome);
    }
    let text = supervisor.metrics().await;
    let expect = |series: &str, value: f64| {
        assert_eq!(sample(&text, series), Some(value), "{series} in:\n{text}");
    };
    expect(
        r#"hookvisor_verdicts_total{hook="before_tool_call",outcome="allow"}"#,
        2.0,
    );
    expect(
        r#"hookvisor_verdicts_total{hook="before_tool_call",outcome="block"}"#,
        2.0,
    );
    expect(
        r#"hookvisor_plugin_calls_total{plugin="guard",hook="before_tool_call",outcome="block",failure="none"}"#,
        1.0,
    );
    expect(
        r#"hookvisor_plugin_calls_total{plugin="sleeper",hook="before_tool_call",outcome="block",failure="timeout"}"#,
        1.0,
    );
    expect(
        r#"hookvisor_verdict_latency_seconds_count{hook="before_tool_call"}"#,
        4.0,
    );
    expect(
        r#"hookvisor_plugin_latency_seconds_count{plugin="guard",hook="before_tool_call"}"#,
        4.0,
    );
    expect(r#"hookvisor_plugin_up{plugin="guard"}"#, 1.0);
    expect(
        r#"hookvisor_plugin_state{plugin="guard",state="ready"}"#,
        1.0,
    );
    expect(r#"hookvisor_plugin_restarts{plugin="sleeper"}"#, 0.0);
    expect("hookvisor_calls_in_flight", 0.0);
    expect("hookvisor_audit_lines_dropped_total", 0.0);
}

#[tokio::test]
async fn only_get_metrics_is_served() {
    let body = plugins(&[PluginToml::new("p", "fixture-recorder")])
        + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let supervisor = Supervisor::start(&body).await;
    let address = supervisor.metrics_address().await;
    let (status, _) = tokio::task::spawn_blocking(move || http_get(&address, "/other"))
        .await
        .unwrap();
    assert!(status.contains(" 404 "), "{status}");
    // A client that connects and says nothing does not hold the endpoint: others still get in.
    let address = supervisor.metrics_address().await;
    let idle: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    let started = Instant::now();
    let (status, _) = tokio::task::spawn_blocking(move || http_get(&address, "/metrics"))
        .await
        .unwrap();
    assert!(
        status.contains(" 200 "),
        "{status} after {:?}",
        started.elapsed()
    );
    drop(idle);
}

/// A metrics address already in use stops `serve` before any plugin starts, naming it.
#[test]
fn a_metrics_address_in_use_is_refused_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let dir = hookvisor_tests::harness::TestDir::new();
    let config = dir.join("hookvisor.toml");
    std::fs::write(
        &config,
        format!(
            "[supervisor]\nsocket = \"{}\"\nruntime_dir = \"{}\"\n\n[metrics]\nlisten = \"{address}\"\n",
            dir.join("host.sock").display(),
            dir.join("run").display()
        ),
    )
    .unwrap();
    let (status, out, err) = hookvisor_tests::harness::run_hookvisor(&[
        "serve",
        "--config",
        &config.display().to_string(),
    ]);
    assert!(!status.success(), "{out}{err}");
    assert!(
        err.contains("[metrics] listen") && err.contains(&address.to_string()),
        "{err}"
    );
}

/// Issue 18, defect 9: 32 idle clients held all 16 slots and no scrape was answered for a
/// second (until their header timeout). A newcomer now takes the slot of the oldest connection
/// that has sent nothing: the scrape is answered at once, and the idle ones are closed.
#[tokio::test]
async fn idle_clients_cannot_starve_a_scrape() {
    let body = plugins(&[PluginToml::new("p", "fixture-recorder")])
        + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let supervisor = Supervisor::start(&body).await;
    let address = supervisor.metrics_address().await;
    let idle: Vec<_> = (0..32)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    // Let the server take up the idle ones first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for attempt in 0..3 {
        let address = address.clone();
        let started = Instant::now();
        let (status, _) = tokio::task::spawn_blocking(move || http_get(&address, "/metrics"))
            .await
            .unwrap();
        let took = started.elapsed();
        assert!(status.contains(" 200 "), "{status}");
        // Well under the 2 s an idle client may take to send its request.
        assert!(
            took < Duration::from_millis(1000),
            "scrape {attempt} took {took:?}"
        );
    }
    drop(idle);
}

/// A `listen` address that is not loopback is said at start.
#[tokio::test]
async fn a_metrics_address_that_is_not_loopback_is_warned_about() {
    let body = plugins(&[PluginToml::new("p", "fixture-recorder")])
        + "\n[metrics]\nlisten = \"0.0.0.0:0\"\n";
    let supervisor = Supervisor::start(&body).await;
    assert!(
        supervisor
            .log_contains("[metrics] listen is not a loopback address")
            .await,
        "{}",
        supervisor.log_tail()
    );
}
