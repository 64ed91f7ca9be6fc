//! Shadow plugins (`mode = "shadow"`, contract §4.4): asked like a hook, never waited for,
//! never changing the verdict or the params; their answers and failures go to the audit line
//! and the metrics when they arrive, and into the trace (marked shadow) only if they came first.

use std::path::Path;
use std::time::{Duration, Instant};

use hookvisor_proto::v1::{Failure, Outcome};
use hookvisor_tests::harness::{PluginToml, Supervisor, metrics_sample, plugins};
use serde_json::{Value, json};

const OBSERVE: &str =
    "\n[audit]\npath = \"decisions.jsonl\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n";

/// The audit lines once `n` of them carry a `shadow` list (they are written when the shadows
/// have answered).
async fn lines_with_shadows(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l.get("shadow").is_some())
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} lines: {text}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn shadow(name: &str, fixture: &str) -> PluginToml {
    PluginToml::new(name, fixture).key("mode = \"shadow\"")
}

#[tokio::test]
async fn a_shadow_that_blocks_rewrites_or_crashes_changes_nothing() {
    let body = plugins(&[
        PluginToml::new("enforced", "fixture-recorder"),
        shadow("blocker", "fixture-recorder").action("block:shadow says no"),
        shadow("rewriter", "fixture-recorder").action(r#"rewrite:{"path":"/elsewhere"}"#),
        shadow("crasher", "fixture-exit-mid-call"),
    ]) + OBSERVE;
    let supervisor = Supervisor::start(&body).await;
    let verdict = supervisor.verdict("read", json!({"path": "a.txt"})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:?}");
    assert!(!verdict.params_changed, "{verdict:?}");
    assert_eq!(verdict.params_json, r#"{"path":"a.txt"}"#);
    assert!(verdict.block_reason.is_empty());
    // Whatever shadow entries are in the trace are marked, and none decided anything.
    for r in &verdict.trace {
        assert_eq!(r.shadow, r.plugin != "enforced", "{verdict:?}");
    }

    let line = &lines_with_shadows(&supervisor.dir().join("decisions.jsonl"), 1).await[0];
    assert_eq!(line["outcome"], "allow", "{line}");
    let plugins: Vec<&str> = line["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(plugins, ["enforced"], "{line}");
    let shadows = line["shadow"].as_array().unwrap();
    let of = |name: &str| {
        shadows
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    assert_eq!(of("blocker")["outcome"], "block");
    assert_eq!(of("blocker")["detail"], "shadow says no");
    assert_eq!(of("blocker")["disagreed"], true);
    assert_eq!(of("rewriter")["outcome"], "allow");
    assert_eq!(of("rewriter")["params_changed"], true);
    assert_eq!(of("rewriter")["disagreed"], false);
    assert_eq!(of("crasher")["failure"], "crashed");
    assert_eq!(
        of("crasher")["disagreed"],
        true,
        "a failure is the block it would be"
    );

    let metrics = supervisor.metrics().await;
    let sample = |series: &str| metrics_sample(&metrics, series);
    assert_eq!(
        sample(r#"hookvisor_shadow_disagreements_total{plugin="blocker"}"#),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            r#"hookvisor_shadow_calls_total{plugin="crasher",outcome="block",failure="crashed"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(r#"hookvisor_verdicts_total{hook="before_tool_call",outcome="allow"}"#),
        Some(1.0)
    );
    // Shadows are not counted as the verdict's plugin calls.
    assert!(
        !metrics.contains(r#"hookvisor_plugin_calls_total{plugin="blocker""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_verdict_never_waits_for_a_shadow() {
    let body = plugins(&[
        PluginToml::new("enforced", "fixture-recorder"),
        shadow("slow", "fixture-recorder")
            .env("FIXTURE_DELAY_MS", "3000")
            .timeout_ms(10_000),
    ]) + OBSERVE;
    let supervisor = Supervisor::start(&body).await;
    let verdict = supervisor.verdict("read", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
    // It had not answered when the verdict went out: not in the trace.
    assert!(
        verdict.trace.iter().all(|r| r.plugin != "slow"),
        "{verdict:?}"
    );
    // It answers later, into the audit line.
    let line = &lines_with_shadows(&supervisor.dir().join("decisions.jsonl"), 1).await[0];
    assert_eq!(line["shadow"][0]["name"], "slow");
    assert_eq!(line["shadow"][0]["outcome"], "allow");
    assert!(
        line["shadow"][0]["latency_us"].as_u64().unwrap() >= 3_000_000,
        "{line}"
    );
}

#[tokio::test]
async fn a_shadow_that_answered_first_is_in_the_trace_marked_shadow() {
    let body = plugins(&[
        PluginToml::new("slow-policy", "fixture-recorder")
            .policy()
            .env("FIXTURE_DELAY_MS", "500"),
        shadow("quick", "fixture-recorder").action("block:no"),
    ]) + OBSERVE;
    let supervisor = Supervisor::start(&body).await;
    let verdict = supervisor.verdict("read", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:?}");
    let quick = verdict
        .trace
        .iter()
        .find(|r| r.plugin == "quick")
        .unwrap_or_else(|| panic!("the shadow answered first: {verdict:?}"));
    assert!(quick.shadow);
    assert_eq!(quick.outcome(), Outcome::Block);
    assert_eq!(quick.failure(), Failure::None);
}

/// Shadow calls outlive their host calls, so a slow shadow could pile them up without end;
/// past 128 in flight a shadow is skipped (its entry says so) and verdicts go on.
#[tokio::test]
async fn shadow_calls_in_flight_are_bounded() {
    let body = plugins(&[shadow("slow", "fixture-recorder")
        .env("FIXTURE_DELAY_MS", "20000")
        .timeout_ms(30_000)])
        + "\n[hooks.before_tool_call]\ntimeout_ms = 30000\n";
    let supervisor = Supervisor::start(&body).await;
    let client = supervisor.client().await;
    let mut skipped = None;
    for i in 0..150 {
        let verdict = client
            .clone()
            .before_tool_call(hookvisor_tests::harness::tool_call(
                "read",
                json!({ "n": i }),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(verdict.outcome(), Outcome::Allow, "call {i}: {verdict:?}");
        if let Some(r) = verdict
            .trace
            .iter()
            .find(|r| r.detail.contains("shadow calls are in flight"))
        {
            skipped = Some((i, r.clone()));
            break;
        }
    }
    let (i, entry) = skipped.expect("a shadow was skipped once 128 were in flight");
    assert!(i >= 128, "skipped at call {i}");
    assert!(entry.shadow);
    assert_eq!(entry.failure(), Failure::Unavailable);
}
