//! Contract §4 input rule and §8 limits on what the host sends: a bad `params_json` or
//! session metadata value is refused with INVALID_ARGUMENT naming the field and the limit, and
//! no plugin is called.

use hookvisor_proto::v1::ToolCallRequest;
use hookvisor_tests::harness::{
    PluginToml, Recording, Supervisor, plugins, session_create, tool_call_raw,
};
use serde_json::{Value, json};
use tonic::Code;

async fn start(recording: &Recording) -> Supervisor {
    Supervisor::start(&plugins(&[PluginToml::new("watcher", "fixture-recorder")
        .hooks("before_tool_call,before_session_create")
        .record(recording)]))
    .await
}

async fn assert_params_refused(params_json: &str, mentions: &[&str]) {
    let mentions: Vec<&str> = ["params_json"]
        .into_iter()
        .chain(mentions.iter().copied())
        .collect();
    assert_request_refused(tool_call_raw("exec", params_json), &mentions).await;
}

/// The supervisor refuses `request` with INVALID_ARGUMENT mentioning each of `mentions`, calls
/// no plugin, and still answers a valid call afterwards.
async fn assert_request_refused(request: ToolCallRequest, mentions: &[&str]) {
    let recording = Recording::new();
    let supervisor = start(&recording).await;
    let status = supervisor
        .client()
        .await
        .before_tool_call(request)
        .await
        .expect_err("the supervisor must refuse this request");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    for needle in mentions {
        assert!(
            status.message().contains(needle),
            "{:?} does not mention {needle:?}",
            status.message()
        );
    }
    assert!(
        recording.calls().is_empty(),
        "a plugin was called: {:?}",
        recording.calls()
    );
    // A valid call afterwards still works: the refusal did not break anything.
    let verdict = supervisor
        .client()
        .await
        .before_tool_call(tool_call_raw("exec", "{}"))
        .await
        .expect("a valid call");
    assert_eq!(verdict.into_inner().trace.len(), 1);
}

fn nested(depth: usize) -> String {
    [
        "{\"a\":".repeat(depth - 1),
        "{}".to_owned(),
        "}".repeat(depth - 1),
    ]
    .concat()
}

#[tokio::test]
async fn params_that_are_not_json_are_refused() {
    assert_params_refused("{\"command\": ", &[]).await;
}

#[tokio::test]
async fn empty_params_are_refused() {
    assert_params_refused("", &[]).await;
}

#[tokio::test]
async fn params_that_are_not_an_object_are_refused() {
    assert_params_refused("[1, 2, 3]", &["object"]).await;
    assert_params_refused("\"ls\"", &["object"]).await;
}

#[tokio::test]
async fn params_with_an_overlong_string_are_refused() {
    let params = json!({"command": "x".repeat(65_537)}).to_string();
    assert_params_refused(&params, &["65536"]).await;
}

#[tokio::test]
async fn params_too_deep_are_refused() {
    assert_params_refused(&nested(33), &["32"]).await;
}

#[tokio::test]
async fn params_at_the_depth_limit_are_accepted() {
    let recording = Recording::new();
    let supervisor = start(&recording).await;
    let verdict = supervisor
        .client()
        .await
        .before_tool_call(tool_call_raw("exec", &nested(32)))
        .await
        .expect("depth 32 is within the limit");
    assert_eq!(verdict.into_inner().trace.len(), 1);
}

#[tokio::test]
async fn params_over_the_size_limit_are_refused() {
    let chunk = "x".repeat(60_000);
    let params: serde_json::Map<String, Value> =
        (0..5).map(|i| (format!("k{i}"), json!(chunk))).collect();
    assert_params_refused(&Value::Object(params).to_string(), &["262144"]).await;
}

#[tokio::test]
async fn params_with_too_many_nodes_are_refused() {
    let params = json!({"list": vec![0; 5000]}).to_string();
    assert_params_refused(&params, &["4096"]).await;
}

#[tokio::test]
async fn params_with_too_many_keys_are_refused() {
    let params: serde_json::Map<String, Value> =
        (0..513).map(|i| (format!("k{i}"), json!(i))).collect();
    assert_params_refused(&Value::Object(params).to_string(), &["512"]).await;
}

#[tokio::test]
async fn tool_call_session_metadata_must_be_json_within_limits() {
    for (value, limit) in [("{oops".to_owned(), None), (nested(33), Some("32"))] {
        let recording = Recording::new();
        let supervisor = start(&recording).await;
        let mut request = tool_call_raw("exec", "{}");
        request.session_metadata = [("ns".to_owned(), value)].into();
        let status = supervisor
            .client()
            .await
            .before_tool_call(request)
            .await
            .expect_err("bad session metadata must be refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains("session_metadata[\"ns\"]"),
            "{:?}",
            status.message()
        );
        if let Some(limit) = limit {
            assert!(status.message().contains(limit), "{:?}", status.message());
        }
        assert!(recording.calls().is_empty());
    }
}

#[tokio::test]
async fn session_create_metadata_must_be_json() {
    let recording = Recording::new();
    let supervisor = start(&recording).await;
    let mut request = session_create("agent:agent-1:s1", &[]);
    request.session_metadata = [("ns".to_owned(), "not json".to_owned())].into();
    let status = supervisor
        .client()
        .await
        .before_session_create(request)
        .await
        .expect_err("bad session metadata must be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("session_metadata[\"ns\"]"),
        "{:?}",
        status.message()
    );
    assert!(recording.calls().is_empty());
}

// Issue 5, item 3: duplicate keys would let a policy judge other params than what runs.

#[tokio::test]
async fn params_with_a_duplicate_key_are_refused_naming_the_path() {
    assert_params_refused(
        r#"{"command":"ls","command":"rm -rf /"}"#,
        &["duplicate key \"command\" at $"],
    )
    .await;
}

#[tokio::test]
async fn a_duplicate_key_at_any_depth_is_refused() {
    assert_params_refused(
        r#"{"a":[1,{"x":1,"y":2,"x":3}]}"#,
        &["duplicate key \"x\" at $.a[1]"],
    )
    .await;
}

#[tokio::test]
async fn a_duplicate_key_spelled_with_an_escape_is_refused() {
    assert_params_refused(
        r#"{"command":"ls","\u0063ommand":"rm"}"#,
        &["duplicate key"],
    )
    .await;
}

#[tokio::test]
async fn session_metadata_with_a_duplicate_key_is_refused() {
    let recording = Recording::new();
    let supervisor = start(&recording).await;
    let mut request = session_create("agent:agent-1:s1", &[]);
    request.session_metadata = [(
        "ns".to_owned(),
        r#"{"role":"user","role":"admin"}"#.to_owned(),
    )]
    .into();
    let status = supervisor
        .client()
        .await
        .before_session_create(request)
        .await
        .expect_err("a duplicate key must be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("session_metadata[\"ns\"]")
            && status.message().contains("duplicate key \"role\""),
        "{status:?}"
    );
    assert!(recording.calls().is_empty());
}

/// Every plugin sees, and the host gets back, one canonical text: the bytes that were judged.
#[tokio::test]
async fn every_plugin_gets_the_same_canonical_params() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("policy", "fixture-recorder")
            .policy()
            .record(&recording),
        PluginToml::new("hook", "fixture-recorder").record(&recording),
    ]))
    .await;
    let verdict = supervisor
        .client()
        .await
        .before_tool_call(tool_call_raw(
            "exec",
            "{ \"b\" : 1,\n \"a\": {\"y\": 2, \"x\": 1} }",
        ))
        .await
        .expect("a valid call")
        .into_inner();
    let canonical = r#"{"a":{"x":1,"y":2},"b":1}"#;
    assert_eq!(verdict.params_json, canonical);
    assert!(!verdict.params_changed);
    let seen: Vec<String> = recording
        .calls()
        .iter()
        .map(|c| c["params_json"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(seen, vec![canonical.to_owned(), canonical.to_owned()]);
}

/// Issue 18, defect 2: every number was rounded to an f64, so `12345678901234567890` reached
/// plugins as `12345678901234567000` while the verdict said `params_changed = false`, and a host
/// that honours that flag ran a value the plugins never judged. Each number now keeps its value
/// and its digits, at every plugin and in the verdict (the canonical form writes an exponent as
/// `e+N`); and a rewrite keeps the numbers a plugin returns.
#[tokio::test]
async fn numbers_reach_plugins_and_the_verdict_exactly() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("policy", "fixture-recorder")
            .policy()
            .record(&recording),
        PluginToml::new("hook", "fixture-recorder").record(&recording),
    ]))
    .await;
    let numbers = r#"{"big": 12345678901234567890, "neg": -12345678901234567890123,
        "long": 0.1000000000000000000000000001, "zero": -0.0, "exp": 1E3, "huge": 1e400,
        "tiny": 5e-324, "list": [1.50, 0, -0]}"#;
    let verdict = supervisor
        .client()
        .await
        .before_tool_call(tool_call_raw("exec", numbers))
        .await
        .expect("a valid call")
        .into_inner();
    let canonical = r#"{"big":12345678901234567890,"exp":1e+3,"huge":1e+400,"list":[1.50,0,-0],"long":0.1000000000000000000000000001,"neg":-12345678901234567890123,"tiny":5e-324,"zero":-0.0}"#;
    assert_eq!(verdict.params_json, canonical);
    assert!(!verdict.params_changed);
    let seen: Vec<String> = recording
        .calls()
        .iter()
        .map(|c| c["params_json"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(seen, vec![canonical.to_owned(), canonical.to_owned()]);

    // A policy's rewrite keeps its numbers too, and the hook after it sees them.
    drop(supervisor);
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("policy", "fixture-recorder")
            .policy()
            .action(r#"rewrite:{"id": 98765432109876543210, "ratio": 0.30000000000000000001}"#),
        PluginToml::new("hook", "fixture-recorder").record(&recording),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", serde_json::json!({})).await;
    let rewritten = r#"{"id":98765432109876543210,"ratio":0.30000000000000000001}"#;
    assert_eq!(verdict.params_json, rewritten);
    assert!(verdict.params_changed);
    assert_eq!(recording.calls()[0]["params_json"], rewritten);
}

// Issue 5, item 7: the byte size is checked before parsing.

#[tokio::test]
async fn params_of_megabytes_are_refused_before_parsing() {
    // 3.6 MB with 330,000 keys: refused for its size (here by the host decode limit, before any
    // byte of it is parsed as JSON).
    let text = format!(
        "{{{}}}",
        (0..330_000)
            .map(|i| format!("\"k{i}\":1"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_request_refused(tool_call_raw("exec", &text), &["1310720"]).await;
}

#[tokio::test]
async fn params_over_the_text_size_limit_are_refused_before_parsing() {
    let text = format!("{{\"a\": \"{}\"}}", "x".repeat(600_000));
    assert_params_refused(
        &text,
        &["text size (bytes) 600009 exceeds the limit of 524288"],
    )
    .await;
}

#[tokio::test]
async fn an_overlong_context_string_is_refused_naming_the_field() {
    let mut request = tool_call_raw("exec", "{}");
    if let Some(context) = request.context.as_mut() {
        context.workspace_dir = "/".repeat(5000);
    }
    assert_request_refused(
        request,
        &["context.workspace_dir: length 5000 exceeds the limit of 4096 bytes"],
    )
    .await;
}

#[tokio::test]
async fn too_many_session_metadata_namespaces_are_refused() {
    let mut request = tool_call_raw("exec", "{}");
    request.session_metadata = (0..300)
        .map(|i| (format!("ns{i}"), "1".to_owned()))
        .collect();
    assert_request_refused(
        request,
        &["session_metadata: 300 namespaces exceed the limit of 256"],
    )
    .await;
}
