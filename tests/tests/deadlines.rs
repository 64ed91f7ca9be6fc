//! Contract §6: the effective deadline is the smallest of the host's remaining deadline (less a
//! margin), the hook's `timeout_ms` and the plugin's `timeout_ms`; plugins are told it in
//! `deadline_ms`; the supervisor enforces it itself.

use std::time::{Duration, Instant};

use hookvisor_proto::v1::{BlockKind, Failure, Outcome};
use hookvisor_tests::harness::{PluginToml, Recording, Supervisor, plugins, tool_call};
use serde_json::json;

async fn seen_deadline(body: &str, recording: &Recording, host_timeout: Option<Duration>) -> u64 {
    let supervisor = Supervisor::start(body).await;
    let mut request = tonic::Request::new(tool_call("exec", json!({})));
    if let Some(timeout) = host_timeout {
        request.set_timeout(timeout);
    }
    let verdict = supervisor
        .client()
        .await
        .before_tool_call(request)
        .await
        .expect("BeforeToolCall")
        .into_inner();
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    let calls = recording.calls_of("clock");
    assert_eq!(calls.len(), 1);
    calls[0]["deadline_ms"].as_u64().expect("deadline_ms")
}

#[tokio::test]
async fn default_hook_deadline_is_5000_ms() {
    let recording = Recording::new();
    let body = plugins(&[PluginToml::new("clock", "fixture-recorder").record(&recording)]);
    let deadline = seen_deadline(&body, &recording, None).await;
    assert!(
        (4500..=5000).contains(&deadline),
        "deadline_ms = {deadline}"
    );
}

#[tokio::test]
async fn hook_timeout_bounds_the_deadline() {
    let recording = Recording::new();
    let body = format!(
        "[hooks.before_tool_call]\ntimeout_ms = 1500\n{}",
        plugins(&[PluginToml::new("clock", "fixture-recorder").record(&recording)])
    );
    let deadline = seen_deadline(&body, &recording, None).await;
    assert!(
        (1000..=1500).contains(&deadline),
        "deadline_ms = {deadline}"
    );
}

#[tokio::test]
async fn plugin_timeout_bounds_the_deadline() {
    let recording = Recording::new();
    let body = plugins(&[PluginToml::new("clock", "fixture-recorder")
        .timeout_ms(300)
        .record(&recording)]);
    let deadline = seen_deadline(&body, &recording, None).await;
    assert!((200..=300).contains(&deadline), "deadline_ms = {deadline}");
}

#[tokio::test]
async fn host_deadline_bounds_the_deadline() {
    let recording = Recording::new();
    let body = plugins(&[PluginToml::new("clock", "fixture-recorder").record(&recording)]);
    let deadline = seen_deadline(&body, &recording, Some(Duration::from_millis(2000))).await;
    assert!((1000..2000).contains(&deadline), "deadline_ms = {deadline}");
}

#[tokio::test]
async fn configured_timeout_overrides_the_plugins_own() {
    // The plugin asks for 100 ms but answers after 250 ms; the operator allows 1000 ms.
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("slowpoke", "fixture-slow")
        .env("FIXTURE_TIMEOUT_MS", "100")
        .env("FIXTURE_DELAY_MS", "250")
        .timeout_ms(1000)]))
    .await;
    let verdict = supervisor
        .client()
        .await
        .before_tool_call(tool_call("exec", json!({})))
        .await
        .expect("BeforeToolCall")
        .into_inner();
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
}

#[tokio::test]
async fn plugins_own_timeout_applies_when_not_configured() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("slowpoke", "fixture-slow")
        .env("FIXTURE_TIMEOUT_MS", "200")
        .env("FIXTURE_DELAY_MS", "3000")]))
    .await;
    let verdict = supervisor
        .client()
        .await
        .before_tool_call(tool_call("exec", json!({})))
        .await
        .expect("BeforeToolCall")
        .into_inner();
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(
        verdict.block_reason,
        "plugin 'slowpoke' timed out after 200 ms"
    );
}

#[tokio::test]
async fn supervisor_answers_before_the_host_deadline() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("sleeper", "fixture-hang").timeout_ms(10_000)
    ]))
    .await;
    let mut request = tonic::Request::new(tool_call("exec", json!({})));
    request.set_timeout(Duration::from_millis(1000));
    let mut client = supervisor.client().await;
    let started = Instant::now();
    let verdict = client
        .before_tool_call(request)
        .await
        .expect("a verdict, not DEADLINE_EXCEEDED")
        .into_inner();
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.block_kind(), BlockKind::Failure);
    assert_eq!(verdict.trace[0].failure(), Failure::Timeout, "{verdict:#?}");
    let prefix = "plugin 'sleeper' timed out after ";
    let ms: u64 = verdict
        .block_reason
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(" ms"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", verdict.block_reason));
    assert!((500..1000).contains(&ms), "{ms}");
}

#[tokio::test]
async fn slow_answer_within_the_deadline_counts() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("slowpoke", "fixture-slow")
        .env("FIXTURE_DELAY_MS", "400")
        .action("block:late but valid")
        .timeout_ms(2000)]))
    .await;
    let verdict = supervisor
        .client()
        .await
        .before_tool_call(tool_call("exec", json!({})))
        .await
        .expect("BeforeToolCall")
        .into_inner();
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.block_kind(), BlockKind::Policy);
    assert_eq!(verdict.block_reason, "late but valid");
}
