//! Responses that are HTTP/2 but not valid gRPC (issue 8: the supervisor's own unary client on
//! `h2`). Each must block the call as an invalid response (or the plugin's error, when it sent
//! a status), quickly, name the plugin and what was wrong, and leave the supervisor serving.

use std::time::{Duration, Instant};

use hookvisor_proto::v1::{BlockKind, Failure, Outcome};
use hookvisor_tests::harness::{PluginToml, Supervisor, entry, plugins};
use serde_json::json;

/// Starts a supervisor whose one policy answers with `how` (see `fixture-raw-grpc`), calls it
/// twice, and checks both calls are blocked as `failure` with `detail` in the reason.
async fn blocked(how: &str, failure: Failure, detail: &str) {
    blocked_within(how, 10_000, failure, detail).await;
}

/// [`blocked`] with the plugin's `timeout_ms`.
async fn blocked_within(how: &str, timeout_ms: u32, failure: Failure, detail: &str) {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("raw", "fixture-raw-grpc")
        .env("FIXTURE_RAW", how)
        .policy()
        .timeout_ms(timeout_ms)]))
    .await;
    // Twice: the first bad answer must not cost the next call (no panic, no lost connection).
    for _ in 0..2 {
        let started = Instant::now();
        let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
        let elapsed = started.elapsed();
        assert_eq!(verdict.outcome(), Outcome::Block, "{how}: {verdict:#?}");
        assert_eq!(
            verdict.block_kind(),
            BlockKind::Failure,
            "{how}: {verdict:#?}"
        );
        assert_eq!(verdict.decided_by, "raw");
        let result = entry(&verdict.trace, "raw");
        assert_eq!(result.failure(), failure, "{how}: {}", result.detail);
        assert!(result.detail.contains(detail), "{how}: {}", result.detail);
        assert!(
            verdict.block_reason.contains("raw"),
            "{}",
            verdict.block_reason
        );
        // Far within the plugin's 10 s timeout: nothing waits for more than is coming.
        assert!(elapsed < Duration::from_secs(5), "{how}: took {elapsed:?}");
    }
}

#[tokio::test]
async fn two_messages_are_an_invalid_response() {
    blocked(
        "two-messages",
        Failure::InvalidResponse,
        "more than one message",
    )
    .await;
}

#[tokio::test]
async fn a_status_without_a_message_is_an_invalid_response() {
    blocked("no-message", Failure::InvalidResponse, "has no message").await;
}

#[tokio::test]
async fn a_response_without_grpc_status_is_an_invalid_response() {
    blocked(
        "no-status",
        Failure::InvalidResponse,
        "without a grpc-status",
    )
    .await;
}

#[tokio::test]
async fn a_compressed_message_is_an_invalid_response() {
    blocked("compressed", Failure::InvalidResponse, "compressed").await;
}

#[tokio::test]
async fn a_message_cut_short_is_an_invalid_response() {
    blocked(
        "cut-short",
        Failure::InvalidResponse,
        "ended inside a message",
    )
    .await;
}

/// The declared length is refused before anything more is read or buffered.
#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_at_once() {
    blocked(
        "over-limit",
        Failure::InvalidResponse,
        "larger than 4194304 bytes",
    )
    .await;
}

#[tokio::test]
async fn an_undecodable_message_is_an_invalid_response() {
    blocked("undecodable", Failure::InvalidResponse, "does not decode").await;
}

/// tonic 0.14.9's client panics on a `grpc-status-details-bin` that is not base64; the
/// supervisor reads the status and its message and never the details.
#[tokio::test]
async fn malformed_status_details_are_ignored_and_the_status_kept() {
    blocked(
        "bad-details",
        Failure::Error,
        "PermissionDenied: denied here",
    )
    .await;
}

#[tokio::test]
async fn an_http_error_status_is_the_plugins_error() {
    blocked("http-404", Failure::Error, "Unimplemented").await;
}

/// Two `grpc-status` values (`0` and `7`) are not read as the first one: no allow from them.
#[tokio::test]
async fn two_grpc_statuses_are_an_invalid_response() {
    blocked(
        "two-statuses",
        Failure::InvalidResponse,
        "more than one grpc-status",
    )
    .await;
}

/// A message followed by silence (no trailers, no end of stream) is a timeout at the plugin's
/// deadline, not an answer.
#[tokio::test]
async fn a_response_that_never_ends_times_out() {
    blocked_within(
        "never-ends",
        300,
        Failure::Timeout,
        "timed out after 300 ms",
    )
    .await;
}

/// Response headers followed by silence: a timeout too.
#[tokio::test]
async fn response_headers_alone_time_out() {
    blocked_within(
        "headers-only",
        300,
        Failure::Timeout,
        "timed out after 300 ms",
    )
    .await;
}

/// A plugin whose call connection allows no streams at all (`SETTINGS_MAX_CONCURRENT_STREAMS`
/// 0): the call waits for a stream that never comes and is a timeout at the plugin's deadline.
#[tokio::test]
async fn a_connection_that_allows_no_streams_times_out() {
    blocked_within(
        "no-streams",
        300,
        Failure::Timeout,
        "timed out after 300 ms",
    )
    .await;
}

/// A plugin that never opens its stream window: the request body is never sent, the plugin
/// never answers, and the call is a timeout at the plugin's deadline.
#[tokio::test]
async fn a_stream_window_never_opened_times_out() {
    blocked_within("no-window", 300, Failure::Timeout, "timed out after 300 ms").await;
}
