//! Issue 5 from a hostile plugin's side: what it answers can neither make the verdict
//! undeliverable, nor pass for a crash, nor cost every later call, nor forge the log.

use std::time::{Duration, Instant};

use hookvisor_proto::v1::{BlockKind, Failure, Outcome};
use hookvisor_tests::harness::{PluginToml, Recording, Supervisor, entry, plugins, tool_call};
use serde_json::json;

/// Item 5: a 4,194,000-byte block reason made the verdict larger than the host's 4 MiB decode
/// limit, so the host got OUT_OF_RANGE and no verdict. It is cut, marked, and delivered.
#[tokio::test]
async fn a_block_reason_of_four_megabytes_is_cut_and_delivered() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("loud", "fixture-oversized")
        .env("FIXTURE_OVERSIZED", "reason")
        .env("FIXTURE_BYTES", "4194000")]))
    .await;
    let verdict = supervisor.verdict("big", json!({})).await;
    assert_eq!(
        verdict.outcome(),
        Outcome::Block,
        "{}",
        verdict.block_reason
    );
    assert_eq!(verdict.block_kind(), BlockKind::Policy);
    assert_eq!(verdict.decided_by, "loud");
    assert!(
        verdict.block_reason.len() <= 4096,
        "{}",
        verdict.block_reason.len()
    );
    assert!(
        verdict.block_reason.starts_with("xxxx")
            && verdict
                .block_reason
                .ends_with("[cut, 4194000 bytes in all]"),
        "{}",
        &verdict.block_reason[verdict.block_reason.len() - 60..]
    );
}

/// Item 11: a status text too large for an HTTP/2 header is refused by HTTP/2 on that stream.
/// The plugin is alive: that is an invalid response, not a crash, and its other call goes on.
#[tokio::test]
async fn an_oversized_status_text_is_an_invalid_response_and_other_calls_go_on() {
    oversized_status_leaves_other_calls_alone("20000").await;
}

/// Item 11, far over the limit: HTTP/2 tears the whole connection down (it cannot refuse that
/// on one stream alone). The call that shared the connection is sent again and still answered.
#[tokio::test]
async fn a_status_text_that_breaks_the_connection_does_not_fail_other_calls() {
    oversized_status_leaves_other_calls_alone("300000").await;
}

async fn oversized_status_leaves_other_calls_alone(bytes: &str) {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("loud", "fixture-oversized")
        .env("FIXTURE_OVERSIZED", "status")
        .env("FIXTURE_BYTES", bytes)
        .env("FIXTURE_DELAY_MS", "1000")
        .record(&recording)]))
    .await;
    let mut slow_client = supervisor.client().await;
    let mut big_client = slow_client.clone();
    let slow = tokio::spawn(async move {
        slow_client
            .before_tool_call(tool_call("ls", json!({})))
            .await
            .map(|r| r.into_inner())
    });
    // The slow call is in flight at the plugin, on the connection the bad answer will use.
    assert_eq!(recording.wait_calls("loud", 1).await.len(), 1);
    let big = big_client
        .before_tool_call(tool_call("big", json!({})))
        .await
        .expect("BeforeToolCall big")
        .into_inner();
    assert_eq!(big.outcome(), Outcome::Block);
    let result = entry(&big.trace, "loud");
    assert_eq!(
        result.failure(),
        Failure::InvalidResponse,
        "{}",
        result.detail
    );
    assert!(result.detail.contains("HTTP/2"), "{}", result.detail);
    assert!(result.detail.len() <= 4096 + 64, "{}", result.detail.len());
    let slow = slow.await.expect("join").expect("BeforeToolCall ls");
    assert_eq!(slow.outcome(), Outcome::Allow, "{slow:#?}");
    // And the calls after it: on the same connection, or on a new one when HTTP/2 tore that
    // one down (the supervisor reconnects, peer check included, as for the first).
    for _ in 0..2 {
        let later = supervisor.verdict("ls", json!({})).await;
        assert_eq!(later.outcome(), Outcome::Allow, "{later:#?}");
    }
}

/// Item 5 for status texts that do fit a header: cut to 4 KiB in the verdict.
#[tokio::test]
async fn a_long_status_text_is_cut() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("loud", "fixture-oversized")
        .env("FIXTURE_OVERSIZED", "status")
        .env("FIXTURE_BYTES", "12000")]))
    .await;
    let verdict = supervisor.verdict("big", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Block);
    let result = entry(&verdict.trace, "loud");
    assert_eq!(result.failure(), Failure::Error, "{}", result.detail);
    // The sentence: "plugin 'loud' failed with gRPC status Internal: " and the cut text.
    assert!(result.detail.len() <= 4096 + 64, "{}", result.detail.len());
    assert!(
        result.detail.contains("12000 bytes in all"),
        "{}",
        result.detail
    );
}

/// Item 12: 360,000 tool names cost 50 MB and 2 ms on every call. Past the limits the plugin
/// is rejected with the reason, and fails closed.
#[tokio::test]
async fn a_plugin_registering_too_many_tool_names_is_rejected() {
    let tools: Vec<String> = (0..1500).map(|i| format!("t{i}")).collect();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("greedy", "fixture-recorder").env("FIXTURE_TOOLS", &tools.join(","))
    ]))
    .await;
    let started = Instant::now();
    let verdict = supervisor.verdict("t1", json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    let result = entry(&verdict.trace, "greedy");
    assert_eq!(result.failure(), Failure::Unavailable);
    assert!(
        result
            .detail
            .contains("registered 1500 tool names (limit 1024)"),
        "{}",
        result.detail
    );
}

/// Item 3 from the plugin's side: a rewrite with a duplicate key is an invalid response.
#[tokio::test]
async fn a_rewrite_with_a_duplicate_key_is_an_invalid_response() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("sneaky", "fixture-recorder")
        .action(r#"rewrite:{"command":"ls","command":"rm -rf /"}"#)]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    let result = entry(&verdict.trace, "sneaky");
    assert_eq!(result.failure(), Failure::InvalidResponse);
    assert!(
        result.detail.contains("duplicate key \"command\""),
        "{}",
        result.detail
    );
}

/// Item 13: a carriage return (or any control character) in a plugin's output cannot forge or
/// hide a log line: it is logged escaped.
#[tokio::test]
async fn plugin_output_cannot_carry_control_characters_into_the_log() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("chatty", "fixture-recorder")
        .env("FIXTURE_SAY", "hello\rFORGED \u{1b}[2Kline")]))
    .await;
    let line = supervisor
        .log_line_with(&["chatty", "FORGED"])
        .await
        .unwrap_or_else(|| panic!("no output line: {}", supervisor.log()));
    assert!(line.contains("hello\\rFORGED \\u{1b}[2Kline"), "{line:?}");
    let raw = std::fs::read_to_string(supervisor.dir().join("stderr.log")).unwrap_or_default();
    assert!(
        !raw.contains("hello\rFORGED"),
        "a raw carriage return reached the log"
    );
    // A log written to a file carries no escape sequence at all: the plugin's is escaped, and
    // the supervisor's own colours are for terminals only.
    assert!(
        !raw.contains('\u{1b}'),
        "an escape sequence reached the log file"
    );
}

/// Issue 7, item 6: a plugin's JSON log line keeps its level, message and fields; a plain line
/// is info on stdout and warn on stderr.
#[tokio::test]
async fn plugin_json_lines_keep_their_level_and_plain_stderr_is_a_warning() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new(
        "structured",
        "fixture-recorder",
    )
    .env(
        "FIXTURE_SAY",
        r#"{"level":"error","msg":"disk on fire","disk":"sda","time":"t"}"#,
    )
    .env("FIXTURE_GRUMBLE", "plain grumble on stderr")]))
    .await;
    let json = supervisor
        .log_line_with(&["structured", "disk on fire"])
        .await
        .unwrap_or_else(|| panic!("no JSON line: {}", supervisor.log()));
    assert!(
        json.contains("ERROR hookvisor::plugin_output: disk on fire"),
        "{json:?}"
    );
    assert!(
        json.contains(r#"fields={"disk":"sda","time":"t"}"#),
        "{json:?}"
    );
    let plain = supervisor
        .log_line_with(&["structured", "plain grumble"])
        .await
        .unwrap_or_else(|| panic!("no stderr line: {}", supervisor.log()));
    assert!(
        plain.contains(" WARN hookvisor::plugin_output: plain grumble on stderr"),
        "{plain:?}"
    );
}

/// Issue 7, item 6: a plugin flooding stdout and stderr (thousands of lines a second) is held
/// to 100 lines a second after a burst of 500, and the log says how many lines were dropped.
#[tokio::test]
async fn a_flooding_plugin_is_rate_limited_and_the_drops_are_counted() {
    let started = std::time::Instant::now();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("flood", "fixture-flood").timeout_ms(2000)
    ]))
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let dropped = loop {
        if let Some(line) = supervisor.log_line_with(&["flood", "dropped"]).await {
            break line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no drop count: {}",
            supervisor.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(dropped.contains("lines of output"), "{dropped:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let log = supervisor.log();
    let forwarded = log
        .lines()
        .filter(|l| l.contains("plugin_output") && l.contains("plugin=\"flood\""))
        .filter(|l| !l.contains("dropped"))
        .count();
    // The burst, the rate over the time the plugin ran, and some slack.
    let bound = 500.0 + 100.0 * elapsed + 50.0;
    assert!(
        (forwarded as f64) <= bound,
        "{forwarded} lines forwarded in {elapsed:.1} s (bound {bound:.0})"
    );
    let verdict = supervisor.verdict("exec", serde_json::json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
}

/// Another plugin's helper takes over this plugin's socket path after the supervisor connected
/// to it. When HTTP/2 tears the connection down (an oversized status), the supervisor's next
/// connection reaches the helper: it fails the peer check (the helper is not in the plugin's
/// session), the call blocks as unavailable, and the helper is never called. The plugin, now
/// unreachable on that path, is killed and started again on a new socket, and answers again.
/// (Both outside the sandbox: this is the peer check behind it, see `tests/sandbox.rs`.)
#[tokio::test]
async fn a_reconnection_that_reaches_a_hijacked_socket_fails_the_peer_check() {
    let victim = Recording::new();
    let hijack = Recording::new();
    let go = hijack.path().with_file_name("go");
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("victim", "fixture-oversized")
            .env("FIXTURE_OVERSIZED", "status")
            .env("FIXTURE_BYTES", "300000")
            .unsandboxed()
            .record(&victim),
        // Registered for sessions only: any tool call in its recording is the helper's.
        PluginToml::new("hijacker", "fixture-hijack")
            .env("FIXTURE_VICTIM", "victim")
            .env("FIXTURE_HIJACK_AFTER", &go.display().to_string())
            .hooks("before_session_create")
            .unsandboxed()
            .record(&hijack),
    ]))
    .await;
    let first = supervisor.verdict("ls", json!({})).await;
    assert_eq!(first.outcome(), Outcome::Allow, "{first:#?}");
    assert_eq!(victim.calls_of("victim").len(), 1);

    std::fs::write(&go, "go").expect("writing the trigger");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(hijack.path())
        .unwrap_or_default()
        .contains(r#""hijack":"bound""#)
    {
        assert!(Instant::now() < deadline, "the helper never bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Tears the victim's connection down; the call is sent again on a new connection, which
    // reaches the helper. Then calls block (unavailable) until the new instance is ready.
    let big = supervisor.verdict("big", json!({})).await;
    assert_eq!(big.outcome(), Outcome::Block, "{big:#?}");
    let mut details = vec![entry(&big.trace, "victim").detail.clone()];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let after = supervisor.verdict("ls", json!({})).await;
        if after.outcome() == Outcome::Allow {
            break;
        }
        assert_eq!(after.block_kind(), BlockKind::Failure, "{after:#?}");
        let result = entry(&after.trace, "victim");
        assert_eq!(result.failure(), Failure::Unavailable, "{}", result.detail);
        details.push(result.detail.clone());
        assert!(
            Instant::now() < deadline,
            "never answered again: {details:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        details
            .iter()
            .any(|d| d.contains("its socket is served by another process (peer mismatch")),
        "{details:#?}"
    );
    assert!(
        hijack.calls().is_empty(),
        "the helper must never be called: {:?}",
        hijack.calls()
    );
    // Answered by a new instance of the victim.
    assert_eq!(victim.calls_of("victim").len(), 2);
    let log = supervisor.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ready plugin=victim") && l.contains("instance=3")),
        "{log}"
    );
    assert!(
        supervisor
            .log_line_with(&["victim", "reached another process"])
            .await
            .is_some(),
        "{}",
        supervisor.log()
    );
}
