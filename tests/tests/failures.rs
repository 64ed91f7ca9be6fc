//! Contract §7 (failure is a deny) in both stages, and `on_failure = "skip"` (§4.2).

use std::time::{Duration, Instant};

use hookvisor_proto::v1::{BlockKind, Failure, Outcome, Stage, ToolCallVerdict};
use hookvisor_tests::harness::{
    PluginToml, Recording, Supervisor, plugins, step, steps, tool_call,
};
use serde_json::json;

async fn call_once(body: &str) -> (ToolCallVerdict, Duration) {
    let supervisor = Supervisor::start(body).await;
    let mut client = supervisor.client().await;
    let started = Instant::now();
    let verdict = client
        .before_tool_call(tool_call("exec", json!({"command": "ls"})))
        .await
        .expect("BeforeToolCall")
        .into_inner();
    (verdict, started.elapsed())
}

/// A hook-stage failure: one entry, a FAILURE block decided by `plugin` with `reason`
/// (which the trace's detail repeats).
fn assert_hook_failure(verdict: &ToolCallVerdict, plugin: &str, failure: Failure) {
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.block_kind(), BlockKind::Failure, "{verdict:#?}");
    assert_eq!(verdict.decided_by, plugin);
    assert_eq!(
        steps(&verdict.trace),
        vec![step(plugin, Stage::Hook, Outcome::Block, failure)],
        "{verdict:#?}"
    );
    assert_eq!(verdict.trace[0].detail, verdict.block_reason);
}

#[tokio::test]
async fn hook_that_never_answers_times_out_and_blocks() {
    let body = plugins(&[PluginToml::new("sleeper", "fixture-hang").timeout_ms(300)]);
    let (verdict, elapsed) = call_once(&body).await;
    assert_hook_failure(&verdict, "sleeper", Failure::Timeout);
    assert_eq!(
        verdict.block_reason,
        "plugin 'sleeper' timed out after 300 ms"
    );
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn hook_that_ignores_grpc_timeout_times_out_and_blocks() {
    // Like a plugin in another language or a stopped process: nothing comes back at all.
    let body = plugins(&[PluginToml::new("sleeper", "fixture-hang")
        .env("FIXTURE_IGNORE_DEADLINE", "1")
        .timeout_ms(300)]);
    let (verdict, elapsed) = call_once(&body).await;
    assert_hook_failure(&verdict, "sleeper", Failure::Timeout);
    assert_eq!(
        verdict.block_reason,
        "plugin 'sleeper' timed out after 300 ms"
    );
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn hook_that_crashes_mid_call_blocks_at_once() {
    let body = plugins(&[PluginToml::new("crasher", "fixture-exit-mid-call").timeout_ms(10_000)]);
    let (verdict, elapsed) = call_once(&body).await;
    assert_hook_failure(&verdict, "crasher", Failure::Crashed);
    assert!(
        verdict
            .block_reason
            .starts_with("plugin 'crasher' crashed during the call: "),
        "{}",
        verdict.block_reason
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "crash took {elapsed:?} to report"
    );
}

#[tokio::test]
async fn hook_answering_a_grpc_error_blocks() {
    let body = plugins(&[PluginToml::new("grumpy", "fixture-error")]);
    let (verdict, _) = call_once(&body).await;
    assert_hook_failure(&verdict, "grumpy", Failure::Error);
    assert!(
        verdict
            .block_reason
            .starts_with("plugin 'grumpy' failed with gRPC status"),
        "{}",
        verdict.block_reason
    );
    assert!(
        verdict.block_reason.contains("nope"),
        "{}",
        verdict.block_reason
    );
}

async fn assert_invalid_params(bad: &str, mentions: &[&str]) {
    let body = plugins(&[PluginToml::new("broken", "fixture-bad-params").env("FIXTURE_BAD", bad)]);
    let (verdict, _) = call_once(&body).await;
    assert_hook_failure(&verdict, "broken", Failure::InvalidResponse);
    assert!(
        verdict
            .block_reason
            .starts_with("plugin 'broken' returned an invalid response: "),
        "{bad}: {}",
        verdict.block_reason
    );
    for needle in mentions {
        assert!(
            verdict.block_reason.contains(needle),
            "{bad}: {:?} does not mention {needle:?}",
            verdict.block_reason
        );
    }
    // The request's params stand.
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&verdict.params_json).unwrap(),
        json!({"command": "ls"})
    );
}

#[tokio::test]
async fn rewrite_that_is_not_json_is_invalid() {
    assert_invalid_params("not-json", &["params_json"]).await;
}

#[tokio::test]
async fn rewrite_that_is_an_array_is_invalid() {
    assert_invalid_params("array", &["params_json", "JSON object"]).await;
}

#[tokio::test]
async fn rewrite_over_the_size_limit_is_invalid() {
    assert_invalid_params("huge", &["params_json", "262144"]).await;
}

#[tokio::test]
async fn a_message_over_4_mib_is_refused() {
    assert_invalid_params("oversize", &["larger than 4194304 bytes"]).await;
}

#[tokio::test]
async fn rewrite_over_the_depth_limit_is_invalid() {
    assert_invalid_params("deep", &["params_json", "32"]).await;
}

async fn assert_invalid_approval(bad: &str, mentions: &[&str]) {
    let body = plugins(&[PluginToml::new("asker", "fixture-bad-approval").env("FIXTURE_BAD", bad)]);
    let (verdict, _) = call_once(&body).await;
    assert_hook_failure(&verdict, "asker", Failure::InvalidResponse);
    assert!(
        verdict
            .block_reason
            .starts_with("plugin 'asker' returned an invalid response: "),
        "{bad}: {}",
        verdict.block_reason
    );
    for needle in mentions {
        assert!(
            verdict.block_reason.contains(needle),
            "{bad}: {:?} does not mention {needle:?}",
            verdict.block_reason
        );
    }
}

#[tokio::test]
async fn approval_with_empty_title_is_invalid() {
    assert_invalid_approval("empty-title", &["title"]).await;
}

#[tokio::test]
async fn approval_with_long_title_is_invalid() {
    assert_invalid_approval("long-title", &["title", "80"]).await;
}

#[tokio::test]
async fn approval_with_long_description_is_invalid() {
    assert_invalid_approval("long-description", &["description", "512"]).await;
}

#[tokio::test]
async fn approval_with_timeout_over_the_cap_is_invalid() {
    assert_invalid_approval("timeout", &["timeout_ms", "600000"]).await;
}

async fn assert_policy_failure(fixture: &str, timeout_ms: u32, what: &str, failure: Failure) {
    let recording = Recording::new();
    let body = plugins(&[
        PluginToml::new("guard", fixture)
            .policy()
            .timeout_ms(timeout_ms),
        PluginToml::new("observer", "fixture-recorder").record(&recording),
    ]);
    let (verdict, elapsed) = call_once(&body).await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.block_kind(), BlockKind::Failure);
    assert_eq!(verdict.decided_by, "guard");
    // One reason naming the plugin once and saying what happened (the trace's detail).
    assert!(
        verdict
            .block_reason
            .starts_with(&format!("plugin 'guard' {what}")),
        "{}",
        verdict.block_reason
    );
    assert_eq!(verdict.block_reason, verdict.trace[0].detail);
    assert_eq!(
        steps(&verdict.trace),
        vec![step("guard", Stage::Policy, Outcome::Block, failure)],
        "a failed policy ends everything: {verdict:#?}"
    );
    assert!(recording.calls_of("observer").is_empty());
    if failure == Failure::Crashed {
        assert!(elapsed < Duration::from_secs(2), "crash took {elapsed:?}");
    }
}

#[tokio::test]
async fn policy_timeout_blocks_with_policy_failure_reason() {
    assert_policy_failure("fixture-hang", 300, "timed out after ", Failure::Timeout).await;
}

#[tokio::test]
async fn policy_crash_blocks_with_policy_failure_reason() {
    assert_policy_failure(
        "fixture-exit-mid-call",
        10_000,
        "crashed during the call",
        Failure::Crashed,
    )
    .await;
}

#[tokio::test]
async fn policy_grpc_error_blocks_with_policy_failure_reason() {
    assert_policy_failure(
        "fixture-error",
        5_000,
        "failed with gRPC status ",
        Failure::Error,
    )
    .await;
}

#[tokio::test]
async fn policy_invalid_response_blocks_with_policy_failure_reason() {
    let recording = Recording::new();
    let body = plugins(&[
        PluginToml::new("guard", "fixture-bad-params")
            .policy()
            .env("FIXTURE_BAD", "array"),
        PluginToml::new("observer", "fixture-recorder").record(&recording),
    ]);
    let (verdict, _) = call_once(&body).await;
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.block_kind(), BlockKind::Failure);
    assert_eq!(verdict.decided_by, "guard");
    assert!(
        verdict
            .block_reason
            .starts_with("plugin 'guard' returned an invalid response: "),
        "{}",
        verdict.block_reason
    );
    assert_eq!(
        steps(&verdict.trace),
        vec![step(
            "guard",
            Stage::Policy,
            Outcome::Block,
            Failure::InvalidResponse
        )]
    );
    assert!(recording.calls_of("observer").is_empty());
}

#[tokio::test]
async fn skipped_timeout_is_recorded_and_passed_over() {
    let body = plugins(&[
        PluginToml::new("sleeper", "fixture-hang")
            .timeout_ms(300)
            .priority(100)
            .key("on_failure = \"skip\""),
        PluginToml::new("editor", "fixture-recorder")
            .priority(10)
            .action("merge:{\"edited\":true}"),
    ]);
    let (verdict, _) = call_once(&body).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    assert_eq!(verdict.block_reason, "");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&verdict.params_json).unwrap(),
        json!({"command": "ls", "edited": true})
    );
    let sleeper = &verdict.trace[0];
    assert_eq!(sleeper.plugin, "sleeper");
    assert_eq!(sleeper.failure(), Failure::Timeout);
    assert!(sleeper.detail.starts_with("skipped"), "{}", sleeper.detail);
    assert_ne!(sleeper.outcome(), Outcome::Block);
    assert_eq!(verdict.trace[1].plugin, "editor");
    assert_eq!(verdict.trace[1].outcome(), Outcome::Allow);
    assert!(verdict.trace[1].params_changed);
}

#[tokio::test]
async fn skipped_crash_does_not_block() {
    let body =
        plugins(
            &[PluginToml::new("crasher", "fixture-exit-mid-call").key("on_failure = \"skip\"")],
        );
    let (verdict, elapsed) = call_once(&body).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    assert_eq!(verdict.trace.len(), 1);
    assert_eq!(verdict.trace[0].failure(), Failure::Crashed);
    assert!(
        verdict.trace[0].detail.starts_with("skipped"),
        "{}",
        verdict.trace[0].detail
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn on_failure_skip_is_refused_for_trusted_plugins() {
    let dir = hookvisor_tests::harness::TestDir::new();
    let config = dir.join("hookvisor.toml");
    let body = format!(
        "[supervisor]\nsocket = \"{0}/h.sock\"\nruntime_dir = \"{0}/run\"\n{1}",
        dir.path().display(),
        plugins(&[PluginToml::new("guard", "fixture-recorder")
            .policy()
            .key("on_failure = \"skip\"")])
    );
    std::fs::write(&config, body).unwrap();
    let (status, stdout, stderr) = hookvisor_tests::harness::run_hookvisor(&[
        "check-config",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(status.code(), Some(64), "{stdout}{stderr}");
    let text = format!("{stdout}{stderr}");
    assert!(text.contains("on_failure"), "{text}");
}
